/*
 * jb_nsexec.h: everything ns-exec does from the first namespace call to the exec of the job, in C, because no
 * Swift may run between fork and exec. Swift resolves users, reads the configuration, checks paths and builds a
 * flat plan (struct jb_nsexec_plan); this code only carries the plan out and reports the first step that failed.
 *
 * The job starts with no signal blocked, whatever the caller had blocked (a launcher's thread often blocks
 * some, and posix_spawn passes them on): it must be able to receive what ns-exec forwards to it.
 *
 * Two ways to run a plan:
 *   - jb_nsexec_exec: in the calling process, which becomes the job (no new PID namespace);
 *   - jb_nsexec_spawn: in a child cloned into a new PID namespace, which is the job's init (PID 1) or, with
 *     run_init 0, the job itself. The caller stays outside, forwards signals and waits for it.
 */
#ifndef JOBBOX_JB_NSEXEC_H
#define JOBBOX_JB_NSEXEC_H

#include <stdint.h>
#include <sys/types.h>

#include "jb_open.h"


/* What a mount operation does. */
enum jb_mount_kind {
    JB_MOUNT_SLAVE = 1, /* every mount becomes a recursive slave of the host's: host changes come in, none go out */
    JB_MOUNT_BIND = 2,  /* bind source over target */
    JB_MOUNT_PROC = 3,  /* a fresh proc (of the new PID namespace) on target */
    JB_MOUNT_TMPFS = 4, /* a fresh tmpfs on target, with data as its options */
    JB_MOUNT_PIVOT = 5, /* target (a host path) becomes the root; the old root is detached */
    JB_MOUNT_READ_ONLY = 6, /* remount the bind mount at target read-only, keeping its nosuid, nodev, noexec and
                             * atime flags (the kernel refuses to drop flags locked in a less privileged namespace) */
    JB_MOUNT_MKDIR = 7,     /* make directory data (one name, mode 0755) in the directory target: a mount point on
                             * a tmpfs the plan mounted just before, never in a tree that outlives the job */
};

/* How a path of a mount operation is found, at the moment the operation runs (inside the new mount namespace). */
enum jb_path_base {
    JB_PATH_HOST = 0,    /* an absolute path; symlinks are followed unless the op pins it or says target_no_symlinks */
    JB_PATH_SCRATCH = 1, /* relative to the plan's scratch dir; no component may be a symlink */
    JB_PATH_IN_ROOT = 2, /* relative to the plan's new_root; symlinks resolve inside it, never out of it */
};

/* A host path the caller opened by GuardedPath's rule (a symlink followed only where root made it), for the new
 * mount namespace to open again: it needs a descriptor of its own (a bind's source must be a mount of its
 * namespace), so it walks PATH, what the caller's descriptor resolved to, without following any symlink, and
 * takes nothing but the same file (DEVICE, INODE): a step the job's user can write cannot be swapped in between. */
struct jb_pinned_path {
    const char *path; /* NULL: none */
    uint64_t device;
    uint64_t inode;
};

/* One mount operation. Paths are opened (O_PATH) first and the mount goes through /proc/self/fd/N, so what was
 * checked is what gets mounted, whatever is renamed or planted meanwhile. */
struct jb_mount_op {
    int kind;          /* enum jb_mount_kind */
    int recursive;     /* JB_MOUNT_BIND: MS_REC */
    int source_base;   /* enum jb_path_base */
    const char *source;
    struct jb_pinned_path pinned_source; /* JB_PATH_HOST: the source as the caller checked it (path NULL: none) */
    int target_base;   /* enum jb_path_base */
    const char *target;
    struct jb_pinned_path pinned_target; /* JB_PATH_HOST: the target as the caller checked it (path NULL: none) */
    int target_no_symlinks; /* follow no symlink: the target lies below an earlier mount (perhaps the job's files) */
    const char *data;  /* JB_MOUNT_TMPFS: mount options */
};

/* The whole plan. Zero-initialise, then fill in what is wanted. Nothing is allocated while it runs. */
struct jb_nsexec_plan {
    /* A user namespace first, mapping map_uid and map_gid to themselves (the caller's own ids). */
    int user_namespace;
    uid_t map_uid;
    gid_t map_gid;

    /* JB_CLONE_NEW* flags of the other namespaces (never JB_CLONE_NEWUSER). With JB_CLONE_NEWPID the plan must
     * be run with jb_nsexec_spawn. */
    int namespaces;
    /* With a new PID namespace: jobbox's init is PID 1 and the job its child (else the job is PID 1 itself). */
    int run_init;

    /* Mount operations, in order, in the new mount namespace. */
    const struct jb_mount_op *mounts;
    int mount_count;
    struct jb_pinned_path scratch; /* base of JB_PATH_SCRATCH (path NULL: none) */
    const char *new_root;    /* base of JB_PATH_IN_ROOT */

    int loopback_up;      /* bring lo up (in a new network namespace) */
    const char *hostname; /* set in the new UTS namespace (NULL: keep) */

    /* The job's identity: supplementary groups, then gid, then uid, then a check that root cannot come back. */
    int switch_identity;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;

    /* Close every descriptor above 2 but keep_fds before the job runs (set when the job's user or root changes,
     * so nothing the launcher opened reaches the job). The job's process marks them close-on-exec right before
     * the exec (a failed exec can still report); the init, which never execs, closes them. */
    int close_fds;
    const int *keep_fds;
    int keep_fd_count;

    int no_new_privs;         /* PR_SET_NO_NEW_PRIVS before exec */
    int quota_fence;          /* jb_install_quota_fence before the identity change (the scratch dir has a quota) */
    const char *workdir;      /* chdir here last (NULL: stay) */
    int workdir_optional;     /* a failing chdir to workdir is not an error */

    const char *file;         /* searched in PATH when it has no slash */
    char *const *argv;
    char *const *envp;        /* NULL: the current environment */
};

/* The step that failed. */
enum jb_nsexec_stage {
    JB_NSEXEC_OK = 0,
    JB_NSEXEC_USER_NAMESPACE = 1, /* unshare(CLONE_NEWUSER) */
    JB_NSEXEC_ID_MAP = 2,         /* index 0: /proc/self/setgroups, 1: uid_map, 2: gid_map */
    JB_NSEXEC_UNSHARE = 3,        /* unshare of the other namespaces */
    JB_NSEXEC_CLONE = 4,          /* clone into the new PID namespace */
    JB_NSEXEC_SIGNALS = 5,        /* signal set-up */
    JB_NSEXEC_PARENT_GONE = 6,    /* ns-exec died before the job started */
    JB_NSEXEC_MOUNT_SOURCE = 7,   /* opening the source of mount index */
    JB_NSEXEC_MOUNT_TARGET = 8,   /* opening the target of mount index */
    JB_NSEXEC_MOUNT = 9,          /* the mount (or pivot) of mount index */
    JB_NSEXEC_LOOPBACK = 10,
    JB_NSEXEC_HOSTNAME = 11,
    JB_NSEXEC_SETGROUPS = 12,
    JB_NSEXEC_SETGID = 13,
    JB_NSEXEC_SETUID = 14,
    JB_NSEXEC_IRREVERSIBLE = 15,  /* the old ids or root could be regained */
    JB_NSEXEC_NO_NEW_PRIVS = 16,
    JB_NSEXEC_DEATH_SIGNAL = 17,
    JB_NSEXEC_WORKDIR = 18,
    JB_NSEXEC_INIT_FORK = 19,     /* the init could not fork the job */
    JB_NSEXEC_EXEC = 20,
    JB_NSEXEC_DESCRIPTORS = 21,   /* closing the inherited descriptors */
    JB_NSEXEC_FENCE = 22,         /* installing the scratch-quota fence */
};

/* What went wrong: the stage, the errno, and for mounts the index of the operation. */
struct jb_nsexec_failure {
    int stage;
    int error;
    int index;
};

/*
 * Carries out PLAN in the calling process and execs the job. Returns only on failure (with *FAILURE filled in),
 * possibly already inside the new namespaces, chroot and identity: the caller reports and exits.
 */
int jb_nsexec_exec(const struct jb_nsexec_plan *plan, struct jb_nsexec_failure *failure);

/*
 * Carries out PLAN in a child cloned into new namespaces (PID included). Returns the child's pid, or -1 with
 * *FAILURE filled in when nothing was started. *REPORT_FD gets the read end of a close-on-exec pipe; after the
 * child has ended, jb_nsexec_read_report() on it tells whether a step failed. From the return on, HUP, INT, QUIT,
 * TERM, USR1 and USR2 sent to the caller are forwarded to the child, and the child is killed (SIGKILL, taking its
 * whole PID namespace with it) when the caller dies.
 */
pid_t jb_nsexec_spawn(const struct jb_nsexec_plan *plan, int *report_fd, struct jb_nsexec_failure *failure);

/* Reads the child's report from FD (and closes it): 1 when a step failed (*FAILURE filled in), 0 otherwise. */
int jb_nsexec_read_report(int fd, struct jb_nsexec_failure *failure);

/* Sets the close-on-exec flag of every open descriptor from 3 up the slow way, for kernels before 5.11 that
 * lack close_range(CLOSE_RANGE_CLOEXEC): /proc/self/fd read with raw getdents64 (nothing allocated), or,
 * without a /proc, every number below the descriptor limit. Async-signal-safe. 0, or -1 with errno. */
int jb_mark_descriptors_slowly(void);

/* Sets the close-on-exec flag of every open descriptor from 3 up: close_range(CLOSE_RANGE_CLOEXEC), else
 * jb_mark_descriptors_slowly. Async-signal-safe. 0, or -1 with errno. */
int jb_mark_descriptors_cloexec(void);

#endif
