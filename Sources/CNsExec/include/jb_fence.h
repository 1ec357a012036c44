/*
 * jb_fence.h: the scratch-quota fence, a seccomp filter for a job whose scratch directory has a quota.
 *
 * A quota on the scratch directory counts what the job writes there, but the kernel lets a file's owner move its
 * files out of the count: on XFS and ext4 by giving a file another project id or clearing a directory's
 * project-inherit flag (FS_IOC_FSSETXATTR, FS_IOC_SETFLAGS, the file_setattr system call), on btrfs by creating a
 * subvolume or snapshot inside the scratch directory (its data goes to a new qgroup with no limit). Outside a user
 * namespace nothing else stops the owner, so the fence refuses exactly those calls with EPERM and lets everything
 * else through. It is inherited by every process the job starts and cannot be removed.
 */
#ifndef JOBBOX_JB_FENCE_H
#define JOBBOX_JB_FENCE_H

/*
 * Installs the fence on the calling thread (and so on everything it execs and forks). Needs CAP_SYS_ADMIN in the
 * caller's user namespace or no_new_privs already set. Returns 0, or the errno of the failed call.
 */
int jb_install_quota_fence(void);

#endif
