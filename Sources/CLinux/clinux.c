/* See clinux.h. This file must stay free of anything that allocates after fork. */
#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <grp.h>
#include <poll.h>
#include <time.h>
#include <sys/signalfd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int jb_shell_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 125;
}

int jb_unshare(int flags) { return unshare(flags); }
int jb_setns(int fd, int nstype) { return setns(fd, nstype); }
int jb_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int jb_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int jb_cgroup_fs_kind(const char *path) {
    struct statfs buf;
    if (statfs(path, &buf) != 0) return -1;
    if (buf.f_type == JB_CGROUP2_SUPER_MAGIC) return 2;
    if (buf.f_type == JB_CGROUP_SUPER_MAGIC) return 1;
    return 0;
}

/* execvpe without its ENOEXEC fallback to /bin/sh surprises: a script without #! fails as it should. */
int jb_exec(const char *file, char *const argv[], char *const envp[]) {
    char *const *env = envp ? envp : environ;
    if (file == NULL || file[0] == '\0') return ENOENT;
    if (strchr(file, '/') != NULL) {
        execve(file, argv, env);
        return errno;
    }
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0') path = "/usr/local/bin:/usr/bin:/bin";
    size_t file_len = strlen(file);
    int saved = ENOENT;
    char buf[PATH_MAX];
    for (const char *p = path;; ) {
        const char *end = strchrnul(p, ':');
        size_t dir_len = (size_t)(end - p);
        if (dir_len + 1 + file_len + 1 <= sizeof buf) {
            if (dir_len == 0) {
                memcpy(buf, file, file_len + 1);
            } else {
                memcpy(buf, p, dir_len);
                buf[dir_len] = '/';
                memcpy(buf + dir_len + 1, file, file_len + 1);
            }
            execve(buf, argv, env);
            switch (errno) {
            case EACCES: saved = EACCES; break;
            case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: break;
            default: return errno;
            }
        }
        if (*end == '\0') break;
        p = end + 1;
    }
    return saved;
}

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* fork(2) that starts the child in the cgroup open at CGROUP_FD (clone3 with CLONE_INTO_CGROUP, Linux 5.7): no
 * migration afterwards, whose write to cgroup.procs waits for an RCU grace period (tens of ms). The raw system
 * call skips glibc's fork handlers: only for single-threaded callers, as every jobbox tool is. */
static pid_t jb_fork_into_cgroup(int cgroup_fd) {
    struct {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
    } args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;
    return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

static void child_fail(int fd, int err) {
    ssize_t ignored = write(fd, &err, sizeof err);
    (void)ignored;
    _exit(125);
}

pid_t jb_spawn(const char *file, char *const argv[], char *const envp[], const struct jb_spawn_options *opts,
               int *exec_error_fd) {
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) return -1;
    sigset_t all, old;
    sigfillset(&all);
    /* Block every signal across fork so no handler of the parent runs in the child before it resets them. */
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = (opts && (opts->flags & JB_SPAWN_CGROUP)) ? jb_fork_into_cgroup(opts->cgroup_fd) : fork();
    if (pid == 0) {
        close(err_pipe[0]);
        for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (opts) {
            for (int i = 0; i < 4; i++)
                if (opts->close_fds[i] >= 0) close(opts->close_fds[i]);
            if (opts->death_signal > 0 && prctl(PR_SET_PDEATHSIG, opts->death_signal, 0, 0, 0) != 0)
                child_fail(err_pipe[1], errno);
            if (opts->unshare_flags && unshare(opts->unshare_flags) != 0) child_fail(err_pipe[1], errno);
            if ((opts->flags & JB_SPAWN_SETNS) && setns(opts->netns_fd, CLONE_NEWNET) != 0) child_fail(err_pipe[1], errno);
            /* In the child, never around the fork in the parent: the parent's own 0-2 are shared by its threads
             * (the tests call the tools' code from many at once). Each is copied above 2 first, so no dup2
             * overwrites another that is still to be placed. */
            static const int stdio_flags[3] = {JB_SPAWN_STDIN, JB_SPAWN_STDOUT, JB_SPAWN_STDERR};
            const int stdio_fds[3] = {opts->stdin_fd, opts->stdout_fd, opts->stderr_fd};
            int copies[3] = {-2, -2, -2};
            for (int i = 0; i < 3; i++)
                if ((opts->flags & stdio_flags[i]) && (copies[i] = fcntl(stdio_fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
                    child_fail(err_pipe[1], errno);
            for (int i = 0; i < 3; i++)
                if (copies[i] >= 0 && dup2(copies[i], i) != i) child_fail(err_pipe[1], errno);
            if (opts->flags & JB_SPAWN_SETIDS) {
                /* Never root: the point is to act with the job's rights only. Groups first, while still root. */
                if (opts->uid == 0 || opts->gid == 0) child_fail(err_pipe[1], EPERM);
                if (setgroups(0, NULL) != 0 || setresgid(opts->gid, opts->gid, opts->gid) != 0 ||
                    setresuid(opts->uid, opts->uid, opts->uid) != 0)
                    child_fail(err_pipe[1], errno);
                if (setuid(0) == 0) child_fail(err_pipe[1], EPERM);
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(err_pipe[1], errno);
                /* Changing ids cleared the death signal; arm it again, and go if the parent already went. */
                if (opts->death_signal > 0) {
                    if (prctl(PR_SET_PDEATHSIG, opts->death_signal, 0, 0, 0) != 0) child_fail(err_pipe[1], errno);
                    if (getppid() != parent) _exit(125);
                }
            }
            if (opts->ready_fd >= 0) {
                char byte = 1;
                if (write(opts->ready_fd, &byte, 1) != 1) child_fail(err_pipe[1], errno);
                close(opts->ready_fd);
            }
            if (opts->go_fd >= 0) {
                char byte;
                ssize_t n;
                do n = read(opts->go_fd, &byte, 1); while (n < 0 && errno == EINTR);
                if (n != 1) _exit(125);
                close(opts->go_fd);
            }
        }
        child_fail(err_pipe[1], jb_exec(file, argv, envp));
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(err_pipe[1]);
    if (pid < 0) {
        close(err_pipe[0]);
        errno = fork_errno;
        return -1;
    }
    *exec_error_fd = err_pipe[0];
    return pid;
}

int jb_exec_result(int fd) {
    int err = 0;
    ssize_t n;
    do n = read(fd, &err, sizeof err); while (n < 0 && errno == EINTR);
    close(fd);
    return n == (ssize_t)sizeof err ? err : 0;
}

static volatile sig_atomic_t forward_target;
static const int forwarded_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
#define FORWARDED_COUNT (sizeof forwarded_signals / sizeof forwarded_signals[0])

void jb_forwarded_signal_set(sigset_t *set) {
    sigemptyset(set);
    for (size_t i = 0; i < FORWARDED_COUNT; i++) sigaddset(set, forwarded_signals[i]);
}

static void forward_handler(int sig) {
    pid_t target = (pid_t)forward_target;
    int saved = errno;
    if (target > 0) kill(target, sig);
    errno = saved;
}

int jb_forward_signals(pid_t pid) {
    forward_target = pid;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = pid > 0 ? forward_handler : SIG_DFL;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < FORWARDED_COUNT; i++)
        if (sigaction(forwarded_signals[i], &action, NULL) != 0) return -1;
    return 0;
}

pid_t jb_wait_pid(pid_t pid, int *status, int options) {
    pid_t r;
    do r = waitpid(pid, status, options); while (r < 0 && errno == EINTR);
    return r;
}

long jb_random_bytes(void *buffer, size_t count) {
    /* The system call, not glibc's getrandom wrapper: it stays within EL9's glibc symbol versions. */
    long result;
    do { result = syscall(SYS_getrandom, buffer, count, 0); } while (result < 0 && errno == EINTR);
    return result;
}

int jb_is_secure_exec(void) { return getauxval(AT_SECURE) != 0; }

int jb_wait_child_timeout(pid_t pid, int timeout_ms) {
    sigset_t forwarded;
    jb_forwarded_signal_set(&forwarded);
    /* A signalfd only sees signals that are blocked; unblocked ones act as they always do. */
    int sfd = signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long deadline = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    int result = -1;
    int saved = ETIMEDOUT;
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int r;
        do r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT); while (r < 0 && errno == EINTR);
        if (r < 0) { saved = errno; break; }
        if (info.si_pid == pid) { result = 0; break; }
        if (sfd >= 0) {
            struct signalfd_siginfo taken;
            if (read(sfd, &taken, sizeof taken) == (ssize_t)sizeof taken) { result = (int)taken.ssi_signo; break; }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = deadline - ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (left <= 0) { saved = ETIMEDOUT; break; }
        struct pollfd fds[2];
        int count = 0;
        if (pidfd >= 0) fds[count++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (sfd >= 0) fds[count++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        /* Without a pidfd (kernels before 5.3) look again every 100 ms. */
        int slice = pidfd >= 0 ? (left > 0x7fffffff ? 0x7fffffff : (int)left) : (left > 100 ? 100 : (int)left);
        if (poll(fds, (nfds_t)count, slice) < 0 && errno != EINTR) { saved = errno; break; }
    }
    if (sfd >= 0) close(sfd);
    if (pidfd >= 0) close(pidfd);
    if (result < 0) errno = saved;
    return result;
}

int jb_format_real(char *buffer, size_t size, double value) { return snprintf(buffer, size, "%.16G", value); }
