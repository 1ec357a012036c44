/*
 * jb_service.h: who is at the other end of a Unix socket, and the shutdown signals of a long-running service
 * (netacct --node).
 */
#ifndef JOBBOX_JB_SERVICE_H
#define JOBBOX_JB_SERVICE_H

#include <sys/types.h>

/*
 * The credentials the kernel recorded when the peer of the connected Unix socket FD connected (SO_PEERCRED), and a
 * pidfd for that process: SO_PEERPIDFD where the kernel has it (6.5), which names exactly the connecting process;
 * else pidfd_open of its pid, which names whatever holds that pid now (a reused pid is then possible, though only
 * after the connecting process is gone). 0, or -1 with errno. *PIDFD is -1 when no pidfd could be had.
 */
int jb_peer_identity(int fd, uid_t *uid, pid_t *pid, int *pidfd);

/* The uid the kernel recorded when the peer of the connected Unix socket FD connected (SO_PEERCRED), no pidfd
 * taken. 0, or -1 with errno. */
int jb_peer_uid(int fd, uid_t *uid);

/* 1 when the process of PIDFD has not exited, 0 when it has (or the pidfd is -1), checked with pidfd_send_signal(0). */
int jb_pidfd_alive(int pidfd);

/*
 * Blocks TERM, INT and HUP and returns a non-blocking signalfd that reads them (-1 with errno), and ignores PIPE (a
 * client that goes away mid-answer is an EPIPE, not a death).
 */
int jb_shutdown_signalfd(void);

/* Reads one signal from the signalfd FD: its number, or 0 when none is pending. */
int jb_read_signalfd(int fd);

/* A non-blocking, close-on-exec Unix stream socket: fd or -1 with errno. */
int jb_unix_stream_socket(void);

/* accept4 of LISTENER, the new socket non-blocking and close-on-exec: fd or -1 with errno. */
int jb_accept_nonblocking(int listener);

/* 1 when PATH is on a bpf filesystem, 0 when not, -1 with errno when it cannot be told. */
int jb_is_bpffs(const char *path);

/* Mounts a bpf filesystem at PATH, mode 0700 (nosuid, nodev, noexec). 0 or -1 with errno. */
int jb_mount_bpffs(const char *path);

#endif
