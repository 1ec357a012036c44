/*
 * clinux.h: the parts of Linux and glibc that Swift's Glibc module does not import (macros, variadic calls,
 * declarations behind _GNU_SOURCE), and the code that must run between fork and exec, where no Swift may run.
 * Every function is prefixed jb_; every one returns -1 with errno set on failure unless it says otherwise.
 */
#ifndef JOBBOX_CLINUX_H
#define JOBBOX_CLINUX_H

#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdint.h>

/* Namespace flags, hidden behind _GNU_SOURCE in glibc's sched.h. */
#define JB_CLONE_NEWNS     0x00020000
#define JB_CLONE_NEWCGROUP 0x02000000
#define JB_CLONE_NEWUTS    0x04000000
#define JB_CLONE_NEWIPC    0x08000000
#define JB_CLONE_NEWUSER   0x10000000
#define JB_CLONE_NEWPID    0x20000000
#define JB_CLONE_NEWNET    0x40000000

/* Filesystem magic numbers from linux/magic.h, for telling cgroup v1 and v2 mounts apart by statfs. */
#define JB_CGROUP_SUPER_MAGIC  0x27e0eb
#define JB_CGROUP2_SUPER_MAGIC 0x63677270
#define JB_TMPFS_MAGIC         0x01021994

/*
 * The status a shell reports for a wait status: the exit code, or 128+N for death by signal N (125 for
 * anything else). The one conversion: C needs it after fork, Swift calls it through ExitStatus.fromWaitStatus.
 */
int jb_shell_status(int status);

/*
 * The signals jobbox forwards to a job (HUP, INT, QUIT, TERM, USR1, USR2): jb_forward_signals, the job's init,
 * ns-exec's and netacct's waiting parents all use this one set. Fills SET with them.
 */
void jb_forwarded_signal_set(sigset_t *set);

/* Thin wrappers for calls Swift cannot reach (variadic, or declared only under _GNU_SOURCE). */
int jb_unshare(int flags);
int jb_setns(int fd, int nstype);
int jb_pivot_root(const char *new_root, const char *put_old);
int jb_pipe2(int fds[2], int flags);
int jb_cgroup_fs_kind(const char *path); /* 1: cgroup v1, 2: cgroup2, 0: neither, -1: error */

/*
 * Exec FILE (searched in PATH when it has no slash) with ARGV and ENVP (NULL: the current environment).
 * Returns only on failure, with the errno of the most telling attempt (as execvp does, EACCES is kept over a
 * later ENOENT).
 */
int jb_exec(const char *file, char *const argv[], char *const envp[]);

/* What jb_spawn's child does between fork and exec. Zero-initialise, then set what you need. */
struct jb_spawn_options {
    int unshare_flags;   /* JB_CLONE_NEW* the child unshares right after fork */
    int ready_fd;        /* the child writes one byte here once it has unshared (-1: none) */
    int go_fd;           /* the child reads one byte here before exec; EOF makes it _exit(125) (-1: none) */
    int death_signal;    /* sent to the child when the parent dies (0: none) */
    int close_fds[4];    /* descriptors the child closes first (-1: unused slot) */
    int flags;           /* JB_SPAWN_*: which of the fields below apply (0: none) */
    int stdin_fd;        /* JB_SPAWN_STDIN: made the child's stdin */
    int stdout_fd;       /* JB_SPAWN_STDOUT: made the child's stdout */
    int stderr_fd;       /* JB_SPAWN_STDERR: made the child's stderr */
    int netns_fd;        /* JB_SPAWN_SETNS: the child enters this network namespace (before dropping root) */
    uid_t uid;           /* JB_SPAWN_SETIDS: the child drops every supplementary group and becomes GID and UID */
    gid_t gid;           /* (then no_new_privs; the death signal is armed again, as changing ids clears it) */
    int cgroup_fd;       /* JB_SPAWN_CGROUP: the child starts in this cgroup2 cgroup (clone3 CLONE_INTO_CGROUP; fails
                            with ENOSYS, E2BIG or EINVAL on kernels without it, and the caller moves the child itself) */
};
#define JB_SPAWN_STDIN  1
#define JB_SPAWN_SETNS  2
#define JB_SPAWN_SETIDS 4
#define JB_SPAWN_STDOUT 8
#define JB_SPAWN_CGROUP 16
#define JB_SPAWN_STDERR 32

/*
 * Fork; the child resets signal dispositions and the signal mask, applies OPTS, then jb_exec(FILE, ARGV, ENVP).
 * Returns the child's pid (or -1). *EXEC_ERROR_FD gets the read end of a close-on-exec pipe: jb_exec_result()
 * on it tells whether the exec happened. All memory is allocated by the caller before the call.
 */
pid_t jb_spawn(const char *file, char *const argv[], char *const envp[], const struct jb_spawn_options *opts,
               int *exec_error_fd);

/*
 * Waits up to TIMEOUT_MS for child PID to exit, without reaping it. Returns 0 once it has exited; the number of a
 * signal jb_forward_signals forwards (HUP, INT, QUIT, TERM, USR1, USR2) when one arrives while the caller keeps
 * them blocked (it is taken, through a signalfd: the caller decides what it means); -1 with errno ETIMEDOUT when
 * the time runs out, or another errno. Signals the caller has not blocked keep their dispositions.
 */
int jb_wait_child_timeout(pid_t pid, int timeout_ms);

/* Blocks until the child of jb_spawn has exec'd (returns 0) or failed to (returns its errno); closes FD. */
int jb_exec_result(int fd);

/*
 * Forward HUP, INT, QUIT, TERM, USR1 and USR2 to PID (and, when PID is 0, stop forwarding and restore the
 * default dispositions). The handler is C: it only calls kill(2), which is async-signal-safe.
 */
int jb_forward_signals(pid_t pid);

/* waitpid that retries on EINTR; returns the pid or -1. */
pid_t jb_wait_pid(pid_t pid, int *status, int options);

/* Fills BUFFER with COUNT bytes from the kernel's random pool (getrandom(2)); returns the count or -1. */
long jb_random_bytes(void *buffer, size_t count);

/*
 * 1 when the kernel ran this program with privileges its caller lacks (setuid, setgid or file capabilities:
 * the auxiliary vector's AT_SECURE), else 0.
 */
int jb_is_secure_exec(void);

/*
 * VALUE as "%.16G" in BUFFER of SIZE bytes, as HTCondor writes reals; the length printf returns. A C call
 * because Swift's varargs (CVarArg existentials) cost more than the formatting.
 */
int jb_format_real(char *buffer, size_t size, double value);

#include "jb_service.h"

#endif
