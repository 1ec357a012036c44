/* See jb_chroot.h. */
#define _GNU_SOURCE
#include "jb_chroot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int jb_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}

int jb_syncfs(int fd) { return syncfs(fd); }

static volatile sig_atomic_t interrupt_target;
static volatile sig_atomic_t interrupt_caught;
static const int interrupt_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};

static void interrupt_handler(int sig) {
    int saved = errno;
    if (interrupt_caught == 0) interrupt_caught = sig;
    pid_t target = (pid_t)interrupt_target;
    if (target != 0) kill(target, sig);
    errno = saved;
}

/* Installs HANDLER for the interrupt signals, except those the caller ignores (nohup ignores HUP, a shell's
 * background job INT and QUIT: the user asked for the build to go on), and unblocks them (a process started
 * from a thread that blocks signals, as a thread pool's do, inherits that mask). */
static int set_dispositions(void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = 0; /* no SA_RESTART: a blocked read or wait returns EINTR */
    sigemptyset(&action.sa_mask);
    sigset_t handled;
    sigemptyset(&handled);
    for (size_t i = 0; i < sizeof interrupt_signals / sizeof interrupt_signals[0]; i++) {
        struct sigaction old;
        if (sigaction(interrupt_signals[i], NULL, &old) != 0) return -1;
        if (old.sa_handler == SIG_IGN) continue;
        if (sigaction(interrupt_signals[i], &action, NULL) != 0) return -1;
        sigaddset(&handled, interrupt_signals[i]);
    }
    return handler == SIG_DFL ? 0 : sigprocmask(SIG_UNBLOCK, &handled, NULL);
}

int jb_interrupt_install(void) {
    interrupt_caught = 0;
    interrupt_target = 0;
    return set_dispositions(interrupt_handler);
}

void jb_interrupt_set_target(pid_t target) { interrupt_target = target; }

int jb_interrupt_signal(void) { return (int)interrupt_caught; }

int jb_interrupt_uninstall(void) {
    interrupt_target = 0;
    return set_dispositions(SIG_DFL);
}
