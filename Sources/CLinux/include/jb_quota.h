/*
 * jb_quota.h: the kernel's quota interfaces for a job's scratch directory, each called on a descriptor of the
 * directory (never a path: the directory's contents are the job's). Two back ends: btrfs qgroups (the directory is
 * a subvolume; its level-0 qgroup 0/<subvolume id> limits it) and project quotas (XFS, ext4 with the project
 * feature: the directory carries a project id that its new files inherit). Each call returns 0, or -1 with errno.
 */
#ifndef JOBBOX_JB_QUOTA_H
#define JOBBOX_JB_QUOTA_H

#include <stdint.h>

/* statfs f_type of the file systems with a back end. */
#define JB_BTRFS_SUPER_MAGIC 0x9123683EU
#define JB_XFS_SUPER_MAGIC 0x58465342U
#define JB_EXT4_SUPER_MAGIC 0xEF53U

/* The inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
#define JB_BTRFS_SUBVOLUME_ROOT_INODE 256

/* The id of the subvolume holding FD's file (BTRFS_IOC_INO_LOOKUP), which is also its level-0 qgroup's id. */
int jb_btrfs_subvolume_id(int fd, uint64_t *id);

/* Sets (MAX_REFERENCED, bytes) or clears (UINT64_MAX) the referenced-bytes limit of qgroup 0/QGROUPID on FD's file
 * system (BTRFS_IOC_QGROUP_LIMIT; CAP_SYS_ADMIN). ENOTCONN: quotas are off on that file system. */
int jb_btrfs_qgroup_limit(int fd, uint64_t qgroupid, uint64_t max_referenced);

/* What btrfs counts for qgroup 0/QGROUPID (the quota tree's INFO and LIMIT items, read with
 * BTRFS_IOC_TREE_SEARCH; CAP_SYS_ADMIN): referenced and exclusive bytes, and the referenced limit (UINT64_MAX when
 * none). ENOENT: no such qgroup; ENOTCONN: quotas are off (no quota tree). */
struct jb_btrfs_qgroup {
    uint64_t referenced;
    uint64_t exclusive;
    uint64_t max_referenced;
};
int jb_btrfs_qgroup_read(int fd, uint64_t qgroupid, struct jb_btrfs_qgroup *out);

/* FD's project id and whether new files in it inherit it (FS_IOC_FSGETXATTR). */
int jb_project_get(int fd, uint32_t *project, int *inherit);

/* Sets FD's project id and the inherit flag (FS_IOC_FSSETXATTR), keeping its other flags. */
int jb_project_set(int fd, uint32_t project, int inherit);

/* Whether FD's file system enforces project quota limits (quotactl_fd(Q_XGETQSTATV, PRJQUOTA)): 1 enforced, 0
 * counted but not enforced (ext4 with the quota feature mounted without prjquota) or not even counted, -1 with
 * errno. A file system without quotas at all answers ENOSYS as a kernel without quotactl_fd does: see
 * jb_quotactl_fd_exists. */
int jb_project_quota_enforced(int fd);

/* Whether this kernel has quotactl_fd (Linux 5.14): 1 or 0. */
int jb_quotactl_fd_exists(void);

/* A project's usage and hard limits on FD's file system (quotactl_fd(Q_GETQUOTA, PRJQUOTA)): bytes used, inodes
 * used, the block limit in bytes and the inode limit (0: none). An id the file system never saw reads as zeros.
 * ESRCH: project quotas are off; ENOSYS: the kernel has no quotactl_fd (before 5.14). */
struct jb_project_quota {
    uint64_t bytes;
    uint64_t inodes;
    uint64_t byte_limit;
    uint64_t inode_limit;
};
int jb_project_quota_get(int fd, uint32_t project, struct jb_project_quota *out);

/* Sets a project's hard limits (quotactl_fd(Q_SETQUOTA, PRJQUOTA); soft limits 0): BYTE_LIMIT rounded up to the
 * kernel's 1 KiB quota blocks; 0 for no limit. */
int jb_project_quota_set(int fd, uint32_t project, uint64_t byte_limit, uint64_t inode_limit);

#endif
