/* See jb_process.h. */
#define _GNU_SOURCE
#include <poll.h>
#include "jb_process.h"
#include "clinux.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <errno.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int jb_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int jb_block_forwarded_signals(int block) {
    sigset_t set;
    jb_forwarded_signal_set(&set);
    return sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int jb_child_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT); while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

int jb_pidfd_exited(int pidfd)
{
    struct pollfd poll_fd = {.fd = pidfd, .events = POLLIN, .revents = 0};
    int ready;
    do {
        ready = poll(&poll_fd, 1, 0);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return -1;
    return ready > 0 ? 1 : 0;
}
