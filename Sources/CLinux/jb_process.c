/* See jb_process.h. */
#define _GNU_SOURCE
#include <poll.h>
#include "jb_process.h"
#include "clinux.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int jb_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

ssize_t jb_write_without_sigpipe(int fd, const void *buffer, size_t length) {
    sigset_t pipe_signal, previous;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous) != 0) return -1;
    const char *bytes = buffer;
    size_t done = 0;
    int saved = 0;
    while (done < length) {
        ssize_t written = write(fd, bytes + done, length - done);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) {
            saved = written < 0 ? errno : EIO;
            break;
        }
        done += (size_t)written;
    }
    /* A SIGPIPE already pending before the call was blocked by the caller and is theirs: only one this write
     * raised is taken (there is none when every byte went through). */
    if (saved == EPIPE && !sigismember(&previous, SIGPIPE)) {
        const struct timespec now = {0, 0};
        while (sigtimedwait(&pipe_signal, NULL, &now) == SIGPIPE) {}
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (saved != 0) {
        errno = saved;
        return -1;
    }
    return (ssize_t)length;
}

int jb_release_child(int fd) { return jb_write_without_sigpipe(fd, "g", 1) == 1 ? 1 : -1; }

int jb_block_forwarded_signals(int block) {
    sigset_t set;
    jb_forwarded_signal_set(&set);
    return sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* The caller's mask from before jb_hold_forwarded_signals, and whether the signals are held. One of each per
 * process: only the single-threaded job tools hold signals, once, while they set a job up. */
static sigset_t held_caller_mask;
static int holding;

int jb_hold_forwarded_signals(void) {
    sigset_t set;
    jb_forwarded_signal_set(&set);
    if (sigprocmask(SIG_BLOCK, &set, &held_caller_mask) != 0) return -1;
    holding = 1;
    return 0;
}

int jb_held_signal(void) {
    sigset_t pending, forwarded;
    if (!holding || sigpending(&pending) != 0) return 0;
    jb_forwarded_signal_set(&forwarded);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&forwarded, sig) == 1 && sigismember(&pending, sig) == 1 && sigismember(&held_caller_mask, sig) != 1)
            return sig;
    return 0;
}

int jb_release_forwarded_signals(void) {
    if (!holding) return 0;
    holding = 0;
    return sigprocmask(SIG_SETMASK, &held_caller_mask, NULL);
}

int jb_child_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT); while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
int jb_pidfd_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

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

/* The low end of the main thread's stack: the start of the [stack] line of /proc/self/maps (0 when not found). */
static uintptr_t stack_low_end(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buffer[8192];
    uintptr_t low = 0;
    size_t used = 0;
    for (;;) {
        ssize_t count = read(fd, buffer + used, sizeof buffer - 1 - used);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        used += (size_t)count;
        buffer[used] = 0;
        char *line = buffer;
        char *end;
        while ((end = strchr(line, '\n')) != NULL) {
            *end = 0;
            if (strstr(line, "[stack]") != NULL) low = (uintptr_t)strtoull(line, NULL, 16);
            line = end + 1;
        }
        used = strlen(line);
        memmove(buffer, line, used);
    }
    close(fd);
    return low;
}

/* The frame of a function the caller calls: below the caller's stack pointer, whatever the compiler does with the
 * caller's own frame. */
__attribute__((noinline)) static uintptr_t below_caller_stack_pointer(void) { return (uintptr_t)__builtin_frame_address(0); }

/*
 * The part of the main thread's stack below the current stack pointer is dead (set-up went deeper than waiting
 * ever does): its pages are dropped, and fault back in as zeroes if a later call goes that deep again. 4 KiB stay
 * for the madvise call itself.
 */
static int release_unused_stack(void) {
    uintptr_t low = stack_low_end();
    uintptr_t sp = below_caller_stack_pointer();
    if (low == 0 || sp < low + 8192) return 0;
    uintptr_t below = (sp - 4096) & ~(uintptr_t)4095;
    return madvise((void *)low, below - low, MADV_DONTNEED) == 0;
}

int jb_release_free_memory(void) {
    int released = release_unused_stack();
#ifdef __GLIBC__
    released |= malloc_trim(0);
#endif
    return released;
}
