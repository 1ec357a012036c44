/*
 * jb_open.h: opening paths without following a symlink out of a directory, for ns-exec's mount plan (in the
 * child, between fork and exec), the job directories and chroot-tool's mount points.
 */
#ifndef JOBBOX_JB_OPEN_H
#define JOBBOX_JB_OPEN_H

/* O_PATH, which glibc's fcntl.h hides behind _GNU_SOURCE (the value of every architecture but alpha, parisc and
 * sparc). */
#define JB_O_PATH 010000000

/* openat2(ROOT_FD, PATH, FLAGS) with RESOLVE_IN_ROOT: PATH is looked up as if ROOT_FD were "/", so no symlink or
 * ".." leads out of it. Kernels without openat2 (before 5.6) fall back to a walk that refuses every symlink. */
int jb_open_in_root(int root_fd, const char *path, int flags);

/* As jb_open_in_root, but no symlink is followed at all (RESOLVE_NO_SYMLINKS): for a path that may pass through
 * a directory the job's user can write, where a symlink would be the user's. */
int jb_open_in_root_no_symlinks(int root_fd, const char *path, int flags);

/* Opens PATH relative to DIR_FD one component at a time, refusing symlinks in every component (ENOTDIR or
 * ELOOP). The result is a directory unless LAST_MAY_BE_FILE. FLAGS are added to each open (e.g. O_PATH). */
int jb_open_no_symlinks(int dir_fd, const char *path, int flags, int last_may_be_file);

#endif
