/*
 * jb_devices.h: cg-exec's device fence on the unified hierarchy, a BPF_PROG_TYPE_CGROUP_DEVICE program assembled
 * here from a flat rule list and loaded with jb_bpf_prog_load, the bpf() system call's loader netacct's programs
 * share (no libbpf: cg-exec stays lean, and a program of a few compares needs no compiler or ELF loader).
 */
#ifndef JOBBOX_JB_DEVICES_H
#define JOBBOX_JB_DEVICES_H

#include <stddef.h>
#include <stdint.h>

/* Device types and access bits, the kernel's BPF_DEVCG_* values. */
#define JB_DEVICE_BLOCK 1
#define JB_DEVICE_CHAR  2
#define JB_DEVICE_MKNOD 1
#define JB_DEVICE_READ  2
#define JB_DEVICE_WRITE 4
/* A major or minor that matches every number. */
#define JB_DEVICE_ANY   UINT32_MAX

/* One rule: a device (type 0 matches both) whose requested access lies within ACCESS gets VERDICT (1 allow,
 * 0 deny). The first matching rule decides. */
struct jb_device_rule {
    uint32_t type;
    uint32_t major;
    uint32_t minor;
    uint32_t access;
    uint32_t verdict;
};

/* The most rules one program takes (far below the verifier's instruction limit). */
#define JB_DEVICE_MAX_RULES 512

/*
 * Assembles the program for RULES (COUNT of them, then DEFAULT_VERDICT for every device no rule matches), loads
 * it and attaches it to the cgroup directory CGROUP_FD with BPF_F_ALLOW_MULTI, so that programs above still run
 * and a job that may attach its own below can only narrow the fence. The program's descriptor is closed: the
 * attachment keeps it, and it goes when the cgroup is freed. On failure returns -1 with errno, and COMPLAINT
 * (COMPLAINT_SIZE bytes, more than 0; JB_BPF_COMPLAINT_SIZE holds any) has the verifier's last complaint when it
 * refused the program, else "".
 */
int jb_device_fence_attach(int cgroup_fd, const struct jb_device_rule *rules, size_t count, uint32_t default_verdict, char *complaint,
                           size_t complaint_size);

/* major(3) and minor(3), macros Swift cannot call. */
uint32_t jb_dev_major(uint64_t dev);
uint32_t jb_dev_minor(uint64_t dev);

/* The number of BPF_CGROUP_DEVICE programs attached directly to CGROUP_FD (for tests and checks), or -1. */
int jb_device_fence_count(int cgroup_fd);

#endif
