/*
 * jb_fence.c: see jb_fence.h. The filter is classic BPF, assembled here so that nothing runs between fork and
 * exec but system calls (no libseccomp).
 */
#define _GNU_SOURCE
#include "jb_fence.h"

#include <endian.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/btrfs.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* file_setattr(2) (Linux 6.17) has the same number on every architecture; the C library may not know it yet. */
#define JB_NR_FILE_SETATTR 469

#if defined(__x86_64__)
#define JB_NATIVE_ARCH AUDIT_ARCH_X86_64
/* The i386 system calls an x86_64 process can still make (int 0x80), and x32's numbers (bit 30 set). */
#define JB_COMPAT_ARCH AUDIT_ARCH_I386
#define JB_COMPAT_NR_IOCTL 54
#define JB_X32_BIT 0x40000000U
#define JB_X32_NR_IOCTL (JB_X32_BIT | 514U)
#elif defined(__aarch64__)
#define JB_NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "jb_fence.c: no seccomp architecture for this target"
#endif

/* The low 32 bits of the ioctl request: the kernel takes it as an unsigned int, whatever the upper half holds. */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define JB_ARG1_LOW (offsetof(struct seccomp_data, args) + sizeof(__u64))
#else
#define JB_ARG1_LOW (offsetof(struct seccomp_data, args) + sizeof(__u64) + sizeof(__u32))
#endif

#define LOAD(offset) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (offset))
#define JUMP_IF(value, yes, no) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (value), (yes), (no))
#define RETURN(action) BPF_STMT(BPF_RET | BPF_K, (action))
#define REFUSE RETURN(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define ALLOW RETURN(SECCOMP_RET_ALLOW)

/* The request checks: the ioctl requests refused. Seven comparisons, then ALLOW; a match jumps to the REFUSE
 * that follows. */
#define REQUEST_CHECKS                                                                                        \
    LOAD(JB_ARG1_LOW), JUMP_IF(FS_IOC_FSSETXATTR, 7, 0), JUMP_IF((__u32)FS_IOC_SETFLAGS, 6, 0),               \
        JUMP_IF(FS_IOC32_SETFLAGS, 5, 0), JUMP_IF(BTRFS_IOC_SNAP_CREATE, 4, 0),                               \
        JUMP_IF(BTRFS_IOC_SUBVOL_CREATE, 3, 0), JUMP_IF(BTRFS_IOC_SNAP_CREATE_V2, 2, 0),                      \
        JUMP_IF(BTRFS_IOC_SUBVOL_CREATE_V2, 1, 0), ALLOW, REFUSE

int jb_install_quota_fence(void) {
    /* Jump offsets count the instructions skipped; the index of each instruction is on its right. */
    struct sock_filter program[] = {
        LOAD(offsetof(struct seccomp_data, arch)), /* 0 */
#if defined(JB_COMPAT_ARCH)
        JUMP_IF(JB_NATIVE_ARCH, 2, 0),                      /* 1: → 4 */
        JUMP_IF(JB_COMPAT_ARCH, 8, 0),                      /* 2: → 11 */
        RETURN(SECCOMP_RET_ERRNO | ENOSYS),                 /* 3: an architecture this build does not know */
        LOAD(offsetof(struct seccomp_data, nr)),            /* 4: x86_64 and x32 */
        JUMP_IF(__NR_ioctl, 9, 0),                          /* 5: → 15 */
        JUMP_IF(JB_X32_BIT | __NR_ioctl, 8, 0),             /* 6: → 15 */
        JUMP_IF(JB_X32_NR_IOCTL, 7, 0),                     /* 7: → 15 */
        JUMP_IF(JB_NR_FILE_SETATTR, 15, 0),                 /* 8: → 24 */
        JUMP_IF(JB_X32_BIT | JB_NR_FILE_SETATTR, 14, 0),    /* 9: → 24 */
        ALLOW,                                              /* 10 */
        LOAD(offsetof(struct seccomp_data, nr)),            /* 11: i386 */
        JUMP_IF(JB_COMPAT_NR_IOCTL, 2, 0),                  /* 12: → 15 */
        JUMP_IF(JB_NR_FILE_SETATTR, 10, 0),                 /* 13: → 24 */
        ALLOW,                                              /* 14 */
        REQUEST_CHECKS,                                     /* 15-23, REFUSE at 24 */
#else
        JUMP_IF(JB_NATIVE_ARCH, 1, 0),                      /* 1: → 3 */
        RETURN(SECCOMP_RET_ERRNO | ENOSYS),                 /* 2: a compat architecture */
        LOAD(offsetof(struct seccomp_data, nr)),            /* 3 */
        JUMP_IF(__NR_ioctl, 2, 0),                          /* 4: → 7 */
        JUMP_IF(JB_NR_FILE_SETATTR, 10, 0),                 /* 5: → 16 */
        ALLOW,                                              /* 6 */
        REQUEST_CHECKS,                                     /* 7-15, REFUSE at 16 */
#endif
    };
    struct sock_fprog filter = {.len = (unsigned short)(sizeof program / sizeof program[0]), .filter = program};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) != 0) return errno;
    return 0;
}
