/*
 * jb_chroot.h: what chroot-tool needs from Linux that Swift's Glibc module does not import (renameat2 and
 * syncfs are declared only under _GNU_SOURCE), and a signal catcher that remembers an interruption and passes
 * it on to a whole process group, which jb_forward_signals cannot (it forwards to one positive pid).
 */
#ifndef JOBBOX_JB_CHROOT_H
#define JOBBOX_JB_CHROOT_H

#include <sys/types.h>

#include "clinux.h"

/* renameat2(..., RENAME_NOREPLACE): fails with EEXIST instead of replacing NEWPATH (rename(2) would replace
 * an empty directory). */
int jb_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/* syncfs(2): flushes the filesystem holding FD. */
int jb_syncfs(int fd);

/*
 * Catch HUP, INT, QUIT and TERM: the handler records the signal (jb_interrupt_signal) and sends it on to the
 * current target (jb_interrupt_set_target: a pid, or -pgid for a process group; 0 for none). The handler
 * only calls kill(2). Blocking calls are not restarted, so a wait returns EINTR and the caller can look.
 * Signals the caller ignores stay ignored (nohup); the caught ones are unblocked.
 */
int jb_interrupt_install(void);
void jb_interrupt_set_target(pid_t target);
/* The first signal caught since jb_interrupt_install, or 0. */
int jb_interrupt_signal(void);
/* Restore the default dispositions. */
int jb_interrupt_uninstall(void);

#endif
