/*
 * See jb_nsexec.h. Everything after the clone runs in a single-threaded child that shares nothing with Swift:
 * only system calls and async-signal-safe libc functions, nothing allocated, no stdio. Identity changes use raw
 * system calls so glibc's all-threads setxid machinery (which would consult the parent's thread list) stays out.
 */
#define _GNU_SOURCE
#include "jb_nsexec.h"
#include "jb_fence.h"
#include "jb_init.h"
#include "clinux.h"
#include "jb_open.h"
#include "jb_process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* close_range(2) (Linux 5.9, CLOSE_RANGE_CLOEXEC 5.11), called by number: glibc has a wrapper only from 2.34. */
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define JB_CLOSE_RANGE_CLOEXEC (1U << 2)

/* 32-bit architectures have 16-bit legacy calls under the plain names. */
#ifdef SYS_setgroups32
#define JB_SYS_SETGROUPS SYS_setgroups32
#define JB_SYS_SETRESUID SYS_setresuid32
#define JB_SYS_SETRESGID SYS_setresgid32
#define JB_SYS_GETRESUID SYS_getresuid32
#define JB_SYS_GETRESGID SYS_getresgid32
#else
#define JB_SYS_SETGROUPS SYS_setgroups
#define JB_SYS_SETRESUID SYS_setresuid
#define JB_SYS_SETRESGID SYS_setresgid
#define JB_SYS_GETRESUID SYS_getresuid
#define JB_SYS_GETRESGID SYS_getresgid
#endif

static int fail(struct jb_nsexec_failure *failure, int stage, int index, int error) {
    failure->stage = stage;
    failure->index = index;
    failure->error = error;
    return -1;
}

/* Writes the decimal digits of VALUE at OUT; returns the count. */
static size_t put_decimal(char *out, unsigned long value) {
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
    return n;
}

/* "/proc/self/fd/N": the path through which a mount reaches exactly the file FD was opened on. */
static void descriptor_path(char out[40], int fd) {
    static const char prefix[] = "/proc/self/fd/";
    memcpy(out, prefix, sizeof prefix - 1);
    size_t n = sizeof prefix - 1;
    n += put_decimal(out + n, (unsigned long)fd);
    out[n] = '\0';
}

static void close_keeping_errno(int fd) {
    int saved = errno;
    close(fd);
    errno = saved;
}

static int write_whole_file(const char *path, const char *text, size_t length) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t written;
    do written = write(fd, text, length); while (written < 0 && errno == EINTR);
    if (written != (ssize_t)length) {
        if (written >= 0) errno = EIO;
        close_keeping_errno(fd);
        return -1;
    }
    return close(fd);
}

/* "ID ID 1\n": map exactly one id to itself. */
static int write_id_map(const char *path, unsigned long id) {
    char line[64];
    size_t n = put_decimal(line, id);
    line[n++] = ' ';
    n += put_decimal(line + n, id);
    memcpy(line + n, " 1\n", 3);
    n += 3;
    return write_whole_file(path, line, n);
}

/* The caller's own uid and gid, mapped to themselves, in a new user namespace of the calling process. Without
 * privilege the kernel wants setgroups denied before gid_map is written. */
static int enter_user_namespace(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure) {
    if (unshare(JB_CLONE_NEWUSER) != 0) return fail(failure, JB_NSEXEC_USER_NAMESPACE, 0, errno);
    if (write_whole_file("/proc/self/setgroups", "deny", 4) != 0 && errno != ENOENT)
        return fail(failure, JB_NSEXEC_ID_MAP, 0, errno);
    if (write_id_map("/proc/self/uid_map", (unsigned long)plan->map_uid) != 0)
        return fail(failure, JB_NSEXEC_ID_MAP, 1, errno);
    if (write_id_map("/proc/self/gid_map", (unsigned long)plan->map_gid) != 0)
        return fail(failure, JB_NSEXEC_ID_MAP, 2, errno);
    return 0;
}

/* The absolute PATH opened (O_PATH) without following any symlink on the way. */
static int open_without_symlinks(const char *path, int last_may_be_file) {
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return -1;
    int fd = jb_open_no_symlinks(root, path, O_PATH, last_may_be_file);
    close_keeping_errno(root);
    return fd;
}

/* PINNED opened in this mount namespace (O_PATH; see struct jb_pinned_path), or -1 with errno (ESTALE: another
 * file is at the path now). */
static int open_pinned(const struct jb_pinned_path *pinned, int last_may_be_file) {
    int fd = open_without_symlinks(pinned->path, last_may_be_file);
    if (fd < 0) return -1;
    struct stat info;
    if (fstat(fd, &info) != 0) {
        close_keeping_errno(fd);
        return -1;
    }
    if ((uint64_t)info.st_dev != pinned->device || (uint64_t)info.st_ino != pinned->inode) {
        close(fd);
        errno = ESTALE;
        return -1;
    }
    return fd;
}

/* Opens a path of a mount operation as O_PATH, as its base says (see enum jb_path_base). SCRATCH_FD is the scratch
 * directory, opened before the first mount: a directory mounted under scratch may cover the scratch dir's own
 * path (scratch below /tmp), and its contents must still come from the real one. */
static int open_mount_path(const struct jb_nsexec_plan *plan, int scratch_fd, int base, const char *path, const struct jb_pinned_path *pinned,
                           int no_symlinks) {
    switch (base) {
    case JB_PATH_HOST:
        if (pinned->path != NULL) return open_pinned(pinned, 1);
        return no_symlinks ? open_without_symlinks(path, 1) : open(path, O_PATH | O_CLOEXEC);
    case JB_PATH_SCRATCH:
        if (scratch_fd < 0) break;
        return jb_open_no_symlinks(scratch_fd, path, O_PATH, 0);
    case JB_PATH_IN_ROOT: {
        if (plan->new_root == NULL) break;
        /* Opened afresh each time: after the new root is bound onto itself, this reaches the bind, not what it
         * covers. */
        int dir = open(plan->new_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) return -1;
        int fd = no_symlinks ? jb_open_in_root_no_symlinks(dir, path, O_PATH) : jb_open_in_root(dir, path, O_PATH);
        close_keeping_errno(dir);
        return fd;
    }
    default:
        break;
    }
    errno = EINVAL;
    return -1;
}

/* Makes TARGET the root: chdir into it, stack the old root on it with pivot_root(".", "."), then detach the old
 * root, so nothing of the host's tree stays reachable. */
static int pivot_into(const char *target, int index, struct jb_nsexec_failure *failure) {
    int fd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(failure, JB_NSEXEC_MOUNT_TARGET, index, errno);
    int result = fchdir(fd);
    close_keeping_errno(fd);
    if (result != 0 || jb_pivot_root(".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
        return fail(failure, JB_NSEXEC_MOUNT, index, errno);
    return 0;
}

/* MS_REMOUNT|MS_BIND|MS_RDONLY of the mount FD is the root of, with the per-mount flags it has now: a remount
 * sets them all, and one that would clear nosuid, nodev, noexec or an atime flag locked by a less privileged
 * mount namespace fails with EPERM. */
static int remount_read_only(int fd, const char *path) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    unsigned long keep = 0;
    if (info.f_flags & ST_NOSUID) keep |= MS_NOSUID;
    if (info.f_flags & ST_NODEV) keep |= MS_NODEV;
    if (info.f_flags & ST_NOEXEC) keep |= MS_NOEXEC;
    if (info.f_flags & ST_NOATIME) keep |= MS_NOATIME;
    if (info.f_flags & ST_NODIRATIME) keep |= MS_NODIRATIME;
    if (info.f_flags & ST_RELATIME) keep |= MS_RELATIME;
    return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL);
}

static int run_mount(const struct jb_nsexec_plan *plan, int index, int scratch_fd, struct jb_nsexec_failure *failure) {
    const struct jb_mount_op *op = &plan->mounts[index];
    char source_path[40], target_path[40];
    int source = -1, target = -1, result;
    switch (op->kind) {
    case JB_MOUNT_SLAVE:
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) return fail(failure, JB_NSEXEC_MOUNT, index, errno);
        return 0;
    case JB_MOUNT_PIVOT:
        return pivot_into(op->target, index, failure);
    case JB_MOUNT_BIND:
        source = open_mount_path(plan, scratch_fd, op->source_base, op->source, &op->pinned_source, 0);
        if (source < 0) return fail(failure, JB_NSEXEC_MOUNT_SOURCE, index, errno);
        break;
    case JB_MOUNT_PROC:
    case JB_MOUNT_TMPFS:
    case JB_MOUNT_READ_ONLY:
    case JB_MOUNT_MKDIR:
        break;
    default:
        return fail(failure, JB_NSEXEC_MOUNT, index, EINVAL);
    }
    target = open_mount_path(plan, scratch_fd, op->target_base, op->target, &op->pinned_target, op->target_no_symlinks);
    if (target < 0) {
        if (source >= 0) close_keeping_errno(source);
        return fail(failure, JB_NSEXEC_MOUNT_TARGET, index, errno);
    }
    descriptor_path(target_path, target);
    if (op->kind == JB_MOUNT_MKDIR) {
        result = op->data != NULL && strchr(op->data, '/') == NULL ? mkdirat(target, op->data, 0755) : (errno = EINVAL, -1);
    } else if (op->kind == JB_MOUNT_READ_ONLY) {
        result = remount_read_only(target, target_path);
    } else if (op->kind == JB_MOUNT_BIND) {
        descriptor_path(source_path, source);
        result = mount(source_path, target_path, NULL, MS_BIND | (op->recursive ? MS_REC : 0), NULL);
    } else if (op->kind == JB_MOUNT_PROC) {
        result = mount("proc", target_path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    } else {
        result = mount("tmpfs", target_path, "tmpfs", MS_NOSUID | MS_NODEV, op->data);
    }
    int mount_errno = errno;
    if (source >= 0) close(source);
    close(target);
    return result == 0 ? 0 : fail(failure, JB_NSEXEC_MOUNT, index, mount_errno);
}

static int bring_loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    memcpy(request.ifr_name, "lo", 3);
    int result = ioctl(s, SIOCGIFFLAGS, &request);
    if (result == 0) {
        request.ifr_flags |= IFF_UP;
        result = ioctl(s, SIOCSIFFLAGS, &request);
    }
    close_keeping_errno(s);
    return result;
}

/* Everything inside the new namespaces that needs privilege: mounts, loopback, hostname. */
static int set_up_namespaces(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure) {
    int scratch_fd = -1;
    if (plan->mount_count > 0 && plan->scratch.path != NULL) {
        scratch_fd = open_pinned(&plan->scratch, 0);
        if (scratch_fd < 0) return fail(failure, JB_NSEXEC_MOUNT_SOURCE, -1, errno);
    }
    for (int i = 0; i < plan->mount_count; i++) {
        if (run_mount(plan, i, scratch_fd, failure) != 0) {
            if (scratch_fd >= 0) close(scratch_fd);
            return -1;
        }
    }
    if (scratch_fd >= 0) close(scratch_fd);
    if (plan->loopback_up && bring_loopback_up() != 0) return fail(failure, JB_NSEXEC_LOOPBACK, 0, errno);
    if (plan->hostname != NULL && sethostname(plan->hostname, strlen(plan->hostname)) != 0)
        return fail(failure, JB_NSEXEC_HOSTNAME, 0, errno);
    return 0;
}

/* Supplementary groups, then gid, then uid; then proof that neither the old ids nor root can come back. */
static int switch_identity(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure) {
    uid_t uid = plan->uid;
    gid_t gid = plan->gid;
    /* Keep-caps would let the permitted set survive the uid change. */
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return fail(failure, JB_NSEXEC_SETUID, 0, errno);
    if (syscall(JB_SYS_SETGROUPS, (size_t)plan->group_count, plan->groups) != 0)
        return fail(failure, JB_NSEXEC_SETGROUPS, 0, errno);
    if (syscall(JB_SYS_SETRESGID, gid, gid, gid) != 0) return fail(failure, JB_NSEXEC_SETGID, 0, errno);
    if (syscall(JB_SYS_SETRESUID, uid, uid, uid) != 0) return fail(failure, JB_NSEXEC_SETUID, 0, errno);
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (syscall(JB_SYS_GETRESUID, &ruid, &euid, &suid) != 0 || syscall(JB_SYS_GETRESGID, &rgid, &egid, &sgid) != 0)
        return fail(failure, JB_NSEXEC_IRREVERSIBLE, 0, errno);
    if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
        return fail(failure, JB_NSEXEC_IRREVERSIBLE, 0, 0);
    if (uid != 0) {
        if (syscall(JB_SYS_SETRESUID, (uid_t)-1, (uid_t)0, (uid_t)-1) == 0) return fail(failure, JB_NSEXEC_IRREVERSIBLE, 1, 0);
        if (gid != 0 && syscall(JB_SYS_SETRESGID, (gid_t)-1, (gid_t)0, (gid_t)-1) == 0)
            return fail(failure, JB_NSEXEC_IRREVERSIBLE, 2, 0);
    }
    return 0;
}

/* The last steps before exec (or before the init forks the job): the quota fence (while root may still install
 * it), identity, no_new_privs, working directory. */
static int finish_process(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure) {
    if (plan->quota_fence) {
        int error = jb_install_quota_fence();
        if (error != 0) return fail(failure, JB_NSEXEC_FENCE, 0, error);
    }
    if (plan->switch_identity && switch_identity(plan, failure) != 0) return -1;
    if (plan->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail(failure, JB_NSEXEC_NO_NEW_PRIVS, 0, errno);
    if (plan->workdir != NULL && chdir(plan->workdir) != 0 && !plan->workdir_optional)
        return fail(failure, JB_NSEXEC_WORKDIR, 0, errno);
    return 0;
}

/* See jb_nsexec.h. */
int jb_mark_descriptors_slowly(void) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        char buffer[4096];
        long n;
        while ((n = syscall(SYS_getdents64, dir, buffer, sizeof buffer)) > 0) {
            for (long offset = 0; offset < n;) {
                /* struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name. */
                unsigned short length;
                memcpy(&length, buffer + offset + 16, sizeof length);
                const char *name = buffer + offset + 19;
                long fd = 0;
                int digits = 0;
                for (; *name >= '0' && *name <= '9' && fd < INT_MAX / 10; name++, digits++) fd = fd * 10 + (*name - '0');
                if (digits > 0 && *name == '\0' && fd > 2 && fd != dir) fcntl((int)fd, F_SETFD, FD_CLOEXEC);
                offset += length;
            }
        }
        close_keeping_errno(dir);
        if (n == 0) return 0;
    }
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    rlim_t top = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > (1 << 20) ? (1 << 20) : limit.rlim_max;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur > top) top = limit.rlim_cur;
    for (rlim_t fd = 3; fd < top; fd++) fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* See jb_nsexec.h. */
int jb_mark_descriptors_cloexec(void) {
    if (syscall(SYS_close_range, 3U, ~0U, JB_CLOSE_RANGE_CLOEXEC) == 0) return 0;
    if (errno != ENOSYS && errno != EINVAL) return -1;
    return jb_mark_descriptors_slowly();
}

/* Right before the job's exec, when its user or root changed: every descriptor above 2 the launcher left open
 * (an fd of /etc/shadow, of the host's /) is marked close-on-exec, but the plan's keep_fds, which must be open
 * (checked by ns-exec). Marked, not closed, so a failed exec can still be reported. */
static int seal_descriptors(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure) {
    if (!plan->close_fds) return 0;
    if (jb_mark_descriptors_cloexec() != 0) return fail(failure, JB_NSEXEC_DESCRIPTORS, 0, errno);
    for (int i = 0; i < plan->keep_fd_count; i++)
        if (fcntl(plan->keep_fds[i], F_SETFD, 0) != 0) return fail(failure, JB_NSEXEC_DESCRIPTORS, 2, errno);
    return 0;
}

/* The init never execs: it closes what the job must not have and it does not need. */
static void close_descriptors(void) {
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
    if (jb_mark_descriptors_slowly() != 0) return;
    /* Everything is close-on-exec now; the init still holds them. Close the slow way. */
    struct rlimit limit;
    rlim_t top = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (1 << 20) ? limit.rlim_cur : (1 << 20);
    for (rlim_t fd = 3; fd < top; fd++) close((int)fd);
}

static int exec_status(int error) { return error == ENOENT || error == ENOTDIR ? 127 : 126; }

int jb_nsexec_exec(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure) {
    memset(failure, 0, sizeof *failure);
    if (plan->namespaces & JB_CLONE_NEWPID) return fail(failure, JB_NSEXEC_UNSHARE, 0, EINVAL);
    if (plan->user_namespace && enter_user_namespace(plan, failure) != 0) return -1;
    if (plan->namespaces != 0 && unshare(plan->namespaces) != 0) return fail(failure, JB_NSEXEC_UNSHARE, 0, errno);
    if (set_up_namespaces(plan, failure) != 0 || finish_process(plan, failure) != 0) return -1;
    if (seal_descriptors(plan, failure) != 0) return -1;
    sigset_t none;
    sigemptyset(&none);
    sigset_t caller_mask;
    sigprocmask(SIG_SETMASK, &none, &caller_mask);
    int error = jb_exec(plan->file, plan->argv, plan->envp);
    sigprocmask(SIG_SETMASK, &caller_mask, NULL);
    return fail(failure, JB_NSEXEC_EXEC, 0, error);
}

static void __attribute__((noreturn)) report_and_exit(int report_fd, const struct jb_nsexec_failure *failure) {
    ssize_t ignored = write(report_fd, failure, sizeof *failure);
    (void)ignored;
    _exit(failure->stage == JB_NSEXEC_EXEC ? exec_status(failure->error) : 125);
}

/* Whether ns-exec (the only holder of the go pipe's write end) has died: its end closed. */
static int parent_gone(int go_fd) {
    struct pollfd watch = {.fd = go_fd, .events = POLLIN, .revents = 0};
    int ready;
    do ready = poll(&watch, 1, 0); while (ready < 0 && errno == EINTR);
    return ready > 0 && (watch.revents & (POLLHUP | POLLERR)) != 0;
}

/* The job's last steps: descriptors sealed, no signal blocked, exec; a failure goes to REPORT_FD. */
static void __attribute__((noreturn)) exec_job(const struct jb_nsexec_plan *plan, int report_fd) {
    struct jb_nsexec_failure failure;
    memset(&failure, 0, sizeof failure);
    if (seal_descriptors(plan, &failure) != 0) report_and_exit(report_fd, &failure);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    fail(&failure, JB_NSEXEC_EXEC, 0, jb_exec(plan->file, plan->argv, plan->envp));
    report_and_exit(report_fd, &failure);
}

/* What the init's job process is started with. */
struct job_start {
    const struct jb_nsexec_plan *plan;
    int report_fd;
};

/* The job's process runs here on a stack of its own, in the init's memory until its exec (CLONE_VM |
 * CLONE_VFORK, as posix_spawn does): a fork would copy the page tables of a Swift process for a child that only
 * execs (0.1-0.5 ms of a job's start across runs, most of what the init cost). The init is suspended meanwhile,
 * and the child writes nothing of the init's but errno and its own frames on this stack; jb_exec allocates
 * nothing. */
static int start_job(void *argument) {
    const struct job_start *start = argument;
    exec_job(start->plan, start->report_fd);
}

/* PID 1 of the new namespace: set up, become the job's user, then either exec the job (no init) or fork it and
 * supervise it. Every signal is blocked on entry; the init and the job end up with none blocked. */
static void __attribute__((noreturn)) run_child(const struct jb_nsexec_plan *plan, int report_fd, int go_fd) {
    sigset_t none;
    sigemptyset(&none);
    struct jb_nsexec_failure failure;
    memset(&failure, 0, sizeof failure);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fail(&failure, JB_NSEXEC_DEATH_SIGNAL, 0, errno);
        report_and_exit(report_fd, &failure);
    }
    /* ns-exec writes one byte once it forwards signals to us; EOF means it died before it could. */
    char go;
    ssize_t n;
    do n = read(go_fd, &go, 1); while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);

    if (set_up_namespaces(plan, &failure) != 0 || finish_process(plan, &failure) != 0)
        report_and_exit(report_fd, &failure);
    /* A change of uid or gid clears the parent-death signal: set it again, then make sure the parent did not die
     * in between (it would have gone unnoticed). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fail(&failure, JB_NSEXEC_DEATH_SIGNAL, 1, errno);
        report_and_exit(report_fd, &failure);
    }
    if (parent_gone(go_fd)) _exit(125);

    if (!plan->run_init) exec_job(plan, report_fd);

    prctl(PR_SET_NAME, "ns-exec-init", 0, 0, 0);
    /* The job process's stack, in this frame, which lasts as long as the init: its deepest frames are jb_exec's
     * and the descriptor walk's 4 KiB buffers. Not static: every ns-exec would map it, with or without --pid. */
    char job_stack[64 * 1024] __attribute__((aligned(16)));
    struct job_start start = {.plan = plan, .report_fd = report_fd};
    pid_t job = clone(start_job, job_stack + sizeof job_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
    if (job < 0) {
        fail(&failure, JB_NSEXEC_INIT_FORK, 0, errno);
        report_and_exit(report_fd, &failure);
    }
    /* Only the job may still report (its exec failure); ns-exec reads the pipe after we are gone. */
    close(report_fd);
    if (plan->close_fds) close_descriptors();
    _exit(jb_shell_status(jb_init_supervise(job, &none)));
}

pid_t jb_nsexec_spawn(const struct jb_nsexec_plan *plan, int *report_fd, struct jb_nsexec_failure *failure) {
    memset(failure, 0, sizeof *failure);
    int report[2], go[2];
    if (pipe2(report, O_CLOEXEC) != 0) return fail(failure, JB_NSEXEC_CLONE, 0, errno);
    if (pipe2(go, O_CLOEXEC) != 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        return fail(failure, JB_NSEXEC_CLONE, 0, saved);
    }
    if (plan->user_namespace && enter_user_namespace(plan, failure) != 0) {
        close(report[0]);
        close(report[1]);
        close(go[0]);
        close(go[1]);
        return -1;
    }
    sigset_t all, caller_mask;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &caller_mask);
    /* A raw clone, as fork but with the namespace flags: the child is PID 1 of the new PID namespace. */
    pid_t child = (pid_t)syscall(SYS_clone, SIGCHLD | plan->namespaces, 0, 0, 0, 0);
    if (child == 0) {
        close(report[0]);
        close(go[1]);
        run_child(plan, report[1], go[0]);
    }
    int clone_errno = errno;
    close(report[1]);
    close(go[0]);
    if (child < 0) {
        sigprocmask(SIG_SETMASK, &caller_mask, NULL);
        close(report[0]);
        close(go[1]);
        return fail(failure, JB_NSEXEC_CLONE, 0, clone_errno);
    }
    int forward_errno = jb_forward_signals(child) == 0 ? 0 : errno;
    /* A forwarder must receive what it forwards, whatever the caller blocked (a thread of a multi-threaded
     * launcher often has them blocked, and posix_spawn passes that on). */
    sigset_t forwarded, mask = caller_mask;
    jb_forwarded_signal_set(&forwarded);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&forwarded, sig) == 1) sigdelset(&mask, sig);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    if (forward_errno != 0) {
        /* The child reads EOF on the go pipe and exits. */
        close(go[1]);
        close(report[0]);
        jb_wait_pid(child, NULL, 0);
        return fail(failure, JB_NSEXEC_SIGNALS, 0, forward_errno);
    }
    /* A child killed meanwhile is reaped and reported by the caller's wait, not by ns-exec's death of SIGPIPE. */
    (void)jb_release_child(go[1]);
    /* go[1] stays open as long as ns-exec lives: its closing is how the child notices ns-exec's death. */
    *report_fd = report[0];
    return child;
}

int jb_nsexec_read_report(int fd, struct jb_nsexec_failure *failure) {
    ssize_t n;
    do n = read(fd, failure, sizeof *failure); while (n < 0 && errno == EINTR);
    close(fd);
    if (n == (ssize_t)sizeof *failure) return 1;
    memset(failure, 0, sizeof *failure);
    return 0;
}
