/* See jb_service.h. */
#define _GNU_SOURCE
#include "jb_service.h"
#include "jb_process.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int jb_peer_identity(int fd, uid_t *uid, pid_t *pid, int *pidfd) {
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    *pidfd = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return -1;
    *uid = credentials.uid;
    *pid = credentials.pid;
    int peer = -1;
    size = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &peer, &size) == 0 && peer >= 0) {
        *pidfd = peer;
        return 0;
    }
    if (credentials.pid > 0) *pidfd = (int)syscall(SYS_pidfd_open, credentials.pid, 0);
    if (*pidfd < 0) *pidfd = -1;
    return 0;
}

int jb_peer_uid(int fd, uid_t *uid) {
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return -1;
    *uid = credentials.uid;
    return 0;
}

int jb_pidfd_alive(int pidfd) {
    if (pidfd < 0) return 0;
    /* EPERM: alive, only not ours to signal (a service without CAP_KILL). */
    return jb_pidfd_signal(pidfd, 0) == 0 || errno == EPERM ? 1 : 0;
}

int jb_shutdown_signalfd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int jb_read_signalfd(int fd) {
    struct signalfd_siginfo info;
    ssize_t count;
    do count = read(fd, &info, sizeof info); while (count < 0 && errno == EINTR);
    return count == (ssize_t)sizeof info ? (int)info.ssi_signo : 0;
}

#define JB_BPF_FS_MAGIC 0xcafe4a11

int jb_is_bpffs(const char *path) {
    struct statfs buf;
    if (statfs(path, &buf) != 0) return -1;
    return buf.f_type == JB_BPF_FS_MAGIC ? 1 : 0;
}

int jb_mount_bpffs(const char *path) { return mount("bpf", path, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700"); }

int jb_unix_stream_socket(void) { return socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int jb_accept_nonblocking(int listener) { return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }
