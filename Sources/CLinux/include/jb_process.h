/*
 * jb_process.h: process helpers for the tools that start jobs: a pidfd to wait on with a timeout, and holding
 * the forwarded signals while the job's environment is being made.
 */
#ifndef JOBBOX_JB_PROCESS_H
#define JOBBOX_JB_PROCESS_H

#include <sys/types.h>

/* pidfd_open(2): a descriptor that polls readable when PID exits (close-on-exec). -1 with errno on failure. */
int jb_pidfd_open(pid_t pid);

/*
 * Writes LENGTH bytes of BUFFER to the pipe FD (retried on EINTR and after a short write): LENGTH, or -1 with
 * errno. A reader that went away (a child that died before reading) makes the write fail with EPIPE, and SIGPIPE,
 * whose default action would end the writer half-way, is blocked for the write and taken if it came. Not SIG_IGN:
 * an ignored SIGPIPE would pass through exec to the job.
 */
ssize_t jb_write_without_sigpipe(int fd, const void *buffer, size_t length);

/*
 * The one byte that lets a held child go on, written to its pipe FD by jb_write_without_sigpipe: 1, or -1 with
 * errno; a child killed from outside before it read the byte is then reaped and reported by the caller instead
 * of ending the tool with its set-up still made.
 */
int jb_release_child(int fd);

/*
 * Blocks (BLOCK != 0) or unblocks the signals jb_forward_signals forwards (HUP, INT, QUIT, TERM, USR1, USR2),
 * so one that arrives while the job is being set up waits until it can be forwarded instead of killing the
 * tool half-way. 0 or -1 with errno.
 */
int jb_block_forwarded_signals(int block);

/*
 * For the tools that set a job up before it runs (cg-exec, ns-exec): blocks the forwarded signals and remembers
 * the caller's mask, so a signal that arrives during the set-up waits instead of killing the tool half-way.
 * jb_held_signal then names one that arrived (and that the caller had not blocked itself), 0 when none did;
 * jb_release_forwarded_signals restores the caller's mask, and a held signal then acts as it would have.
 * 0 or -1 with errno.
 */
int jb_hold_forwarded_signals(void);
int jb_held_signal(void);
int jb_release_forwarded_signals(void);

/*
 * Whether child PID has exited, without reaping it (waitid with WNOWAIT | WNOHANG): 1 exited, 0 still running,
 * -1 with errno on failure. Lets the parent stop forwarding signals before the pid can be reused.
 */
int jb_child_exited(pid_t pid);

/* Whether the process of PIDFD has exited (the pidfd polls readable): 1 exited, 0 running, -1 with errno. */
int jb_pidfd_exited(int pidfd);

/* pidfd_send_signal(2): SIG to the process of PIDFD (0 only checks it). 0, or -1 with errno (ESRCH: it has exited). */
int jb_pidfd_signal(int pidfd, int sig);

/*
 * Gives the kernel back the free pages of malloc's heap (malloc_trim(0), where the C library has it) and the
 * pages of the main thread's stack below the caller's frame, so a parent that waits for the whole of a job keeps
 * only the memory it still uses. Call it from the main thread. 1 when something was released.
 */
int jb_release_free_memory(void);

#endif
