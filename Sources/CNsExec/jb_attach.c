/*
 * jb_attach.c: see jb_attach.h.
 */
#define _GNU_SOURCE
#include "jb_attach.h"
#include "jb_fence.h"
#include "jb_nsexec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clinux.h"

static pid_t fail(struct jb_attach_failure *failure, int stage, int index, int error)
{
    failure->stage = stage;
    failure->index = index;
    failure->error = error;
    return -1;
}

/* In the child: reports the failed step over FD and exits 125. */
static void child_fail(int fd, int stage, int error)
{
    struct jb_attach_failure failure = {stage, 0, error};
    ssize_t ignored = write(fd, &failure, sizeof(failure));
    (void)ignored;
    _exit(125);
}

pid_t jb_attach_spawn(const struct jb_attach_plan *plan, int *report_fd, struct jb_attach_failure *failure)
{
    memset(failure, 0, sizeof(*failure));
    for (int i = 0; i < plan->cgroup_count; i++) {
        if (write(plan->cgroup_fds[i], "0", 1) != 1) return fail(failure, JB_ATTACH_CGROUP, i, errno);
    }
    if (plan->namespaces != 0 && setns(plan->pidfd, plan->namespaces) != 0) return fail(failure, JB_ATTACH_SETNS, 0, errno);

    int pipe_fds[2];
    if (jb_pipe2(pipe_fds, O_CLOEXEC) != 0) return fail(failure, JB_ATTACH_FORK, 0, errno);
    pid_t child = fork();
    if (child < 0) {
        int error = errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return fail(failure, JB_ATTACH_FORK, 0, error);
    }
    if (child > 0) {
        close(pipe_fds[1]);
        *report_fd = pipe_fds[0];
        return child;
    }

    /* The child: a process of the job's PID namespace from here on. */
    int report = pipe_fds[1];
    close(pipe_fds[0]);
    sigset_t none;
    sigemptyset(&none);
    sigset_t forwarded;
    jb_forwarded_signal_set(&forwarded);
    for (int signal_number = 1; signal_number < NSIG; signal_number++) {
        if (sigismember(&forwarded, signal_number) == 1) signal(signal_number, SIG_DFL);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (fchdir(plan->root_fd) != 0 || chroot(".") != 0) child_fail(report, JB_ATTACH_ROOT, errno);
    if (fchdir(plan->cwd_fd) != 0) child_fail(report, JB_ATTACH_CWD, errno);
    close(plan->root_fd);
    close(plan->cwd_fd);
    /* What the caller left open (a root-only file, a host directory) must not reach the job's user. */
    if (plan->close_fds && jb_mark_descriptors_cloexec() != 0) child_fail(report, JB_ATTACH_DESCRIPTORS, errno);
    /* The fence needs CAP_SYS_ADMIN or no_new_privs: root installs it before becoming the job's user, anyone else
     * after no_new_privs (always set for them). */
    int fence_error = plan->quota_fence && plan->switch_identity ? jb_install_quota_fence() : 0;
    if (fence_error != 0) child_fail(report, JB_ATTACH_FENCE, fence_error);
    if (plan->switch_identity) {
        if (setgroups((size_t)plan->group_count, plan->groups) != 0 || setresgid(plan->gid, plan->gid, plan->gid) != 0 ||
            setresuid(plan->uid, plan->uid, plan->uid) != 0)
            child_fail(report, JB_ATTACH_IDENTITY, errno);
        /* Root must not come back. */
        if (plan->uid != 0 && setuid(0) == 0) child_fail(report, JB_ATTACH_IDENTITY, EPERM);
    }
    /* The attached command dies with ns-exec (armed after the identity change, which clears it). */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (plan->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report, JB_ATTACH_IDENTITY, errno);
    fence_error = plan->quota_fence && !plan->switch_identity ? jb_install_quota_fence() : 0;
    if (fence_error != 0) child_fail(report, JB_ATTACH_FENCE, fence_error);
    int error = jb_exec(plan->file, plan->argv, plan->envp);
    child_fail(report, JB_ATTACH_EXEC, error);
    return -1;
}

int jb_attach_read_report(int fd, struct jb_attach_failure *failure)
{
    ssize_t count;
    do {
        count = read(fd, failure, sizeof(*failure));
    } while (count < 0 && errno == EINTR);
    close(fd);
    return count == (ssize_t)sizeof(*failure) ? 1 : 0;
}
