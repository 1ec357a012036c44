/* See jb_quota.h. */
#define _GNU_SOURCE
#include "jb_quota.h"

#include <errno.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/dqblk_xfs.h>
#include <linux/fs.h>
#include <linux/quota.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif

int jb_btrfs_subvolume_id(int fd, uint64_t *id) {
    struct btrfs_ioctl_ino_lookup_args args;
    memset(&args, 0, sizeof args);
    args.treeid = 0;
    args.objectid = BTRFS_FIRST_FREE_OBJECTID;
    if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &args) != 0) return -1;
    *id = args.treeid;
    return 0;
}

int jb_btrfs_qgroup_limit(int fd, uint64_t qgroupid, uint64_t max_referenced) {
    struct btrfs_ioctl_qgroup_limit_args args;
    memset(&args, 0, sizeof args);
    args.qgroupid = qgroupid;
    /* The flag with UINT64_MAX clears the limit (the kernel's CLEAR_VALUE). */
    args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
    args.lim.max_rfer = max_referenced;
    return ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &args) == 0 ? 0 : -1;
}

/* Reads the one item of TYPE with offset QGROUPID from the quota tree; 1 found, 0 not, -1 error. */
static int qgroup_item(int fd, uint8_t type, uint64_t qgroupid, void *item, size_t item_size) {
    struct btrfs_ioctl_search_args args;
    memset(&args, 0, sizeof args);
    args.key.tree_id = BTRFS_QUOTA_TREE_OBJECTID;
    args.key.min_objectid = 0;
    args.key.max_objectid = 0;
    args.key.min_type = type;
    args.key.max_type = type;
    args.key.min_offset = qgroupid;
    args.key.max_offset = qgroupid;
    args.key.max_transid = UINT64_MAX;
    args.key.nr_items = 1;
    if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) != 0) {
        /* No quota tree: quotas are off. */
        if (errno == ENOENT) errno = ENOTCONN;
        return -1;
    }
    if (args.key.nr_items < 1) return 0;
    struct btrfs_ioctl_search_header header;
    memcpy(&header, args.buf, sizeof header);
    if (header.type != type || header.offset != qgroupid || header.len < item_size) return 0;
    memcpy(item, args.buf + sizeof header, item_size);
    return 1;
}

int jb_btrfs_qgroup_read(int fd, uint64_t qgroupid, struct jb_btrfs_qgroup *out) {
    struct btrfs_qgroup_info_item info;
    int found = qgroup_item(fd, BTRFS_QGROUP_INFO_KEY, qgroupid, &info, sizeof info);
    if (found < 0) return -1;
    if (found == 0) {
        errno = ENOENT;
        return -1;
    }
    /* On-disk items are little-endian, as is every host jobbox builds for (x86_64, aarch64). */
    out->referenced = info.rfer;
    out->exclusive = info.excl;
    out->max_referenced = UINT64_MAX;
    struct btrfs_qgroup_limit_item limit;
    found = qgroup_item(fd, BTRFS_QGROUP_LIMIT_KEY, qgroupid, &limit, sizeof limit);
    if (found < 0) return -1;
    if (found == 1 && (limit.flags & BTRFS_QGROUP_LIMIT_MAX_RFER)) out->max_referenced = limit.max_rfer;
    return 0;
}

int jb_project_get(int fd, uint32_t *project, int *inherit) {
    struct fsxattr attributes;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &attributes) != 0) return -1;
    *project = attributes.fsx_projid;
    *inherit = (attributes.fsx_xflags & FS_XFLAG_PROJINHERIT) != 0;
    return 0;
}

int jb_project_set(int fd, uint32_t project, int inherit) {
    struct fsxattr attributes;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &attributes) != 0) return -1;
    attributes.fsx_projid = project;
    if (inherit)
        attributes.fsx_xflags |= FS_XFLAG_PROJINHERIT;
    else
        attributes.fsx_xflags &= ~(unsigned)FS_XFLAG_PROJINHERIT;
    return ioctl(fd, FS_IOC_FSSETXATTR, &attributes) == 0 ? 0 : -1;
}

int jb_project_quota_enforced(int fd) {
    struct fs_quota_statv state;
    memset(&state, 0, sizeof state);
    state.qs_version = FS_QSTATV_VERSION1;
    if (syscall(SYS_quotactl_fd, fd, QCMD(Q_XGETQSTATV, PRJQUOTA), 0, &state) != 0) return -1;
    return (state.qs_flags & FS_QUOTA_PDQ_ENFD) != 0;
}

int jb_quotactl_fd_exists(void) {
    /* An invalid descriptor: EBADF from a kernel that has the call, ENOSYS from one that has not. */
    return !(syscall(SYS_quotactl_fd, -1, QCMD(Q_GETQUOTA, PRJQUOTA), 0, NULL) != 0 && errno == ENOSYS);
}

int jb_project_quota_get(int fd, uint32_t project, struct jb_project_quota *out) {
    struct if_dqblk block;
    memset(&block, 0, sizeof block);
    if (syscall(SYS_quotactl_fd, fd, QCMD(Q_GETQUOTA, PRJQUOTA), project, &block) != 0) {
        /* XFS: no dquot for this id yet. */
        if (errno != ENOENT) return -1;
        memset(&block, 0, sizeof block);
    }
    out->bytes = block.dqb_curspace;
    out->inodes = block.dqb_curinodes;
    out->byte_limit = block.dqb_bhardlimit << QIF_DQBLKSIZE_BITS;
    out->inode_limit = block.dqb_ihardlimit;
    return 0;
}

int jb_project_quota_set(int fd, uint32_t project, uint64_t byte_limit, uint64_t inode_limit) {
    struct if_dqblk block;
    memset(&block, 0, sizeof block);
    block.dqb_bhardlimit = (byte_limit + QIF_DQBLKSIZE - 1) >> QIF_DQBLKSIZE_BITS;
    block.dqb_ihardlimit = inode_limit;
    block.dqb_valid = QIF_LIMITS;
    return syscall(SYS_quotactl_fd, fd, QCMD(Q_SETQUOTA, PRJQUOTA), project, &block) == 0 ? 0 : -1;
}
