/*
 * jb_attach.h: ns-exec --attach, the C side. The calling process joins a running job's cgroups and namespaces
 * (through a pidfd of the job's init: setns(pidfd, flags), Linux 5.8 and later); a child forked after that is in
 * the job's PID namespace, enters the job's root and working directory, becomes the job's user and execs the
 * command. Nothing runs between fork and exec but system calls.
 */
#ifndef JOBBOX_JB_ATTACH_H
#define JOBBOX_JB_ATTACH_H

#include <sys/types.h>

struct jb_attach_plan {
    int pidfd;                /* the job's init */
    int namespaces;           /* JB_CLONE_NEW* of the namespaces to join (those that differ from the caller's) */
    const int *cgroup_fds;    /* cgroup.procs files of the job's cgroups, opened for writing; "0" joins */
    int cgroup_count;
    int root_fd;              /* the init's root (/proc/PID/root), entered with fchdir and chroot(".") */
    int cwd_fd;               /* the init's working directory (/proc/PID/cwd) */

    int switch_identity;      /* supplementary groups, gid, uid, as the job's own init did */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    int no_new_privs;
    int quota_fence;          /* jb_install_quota_fence: the job's init runs under it (its scratch dir has a quota) */
    int close_fds;            /* mark every descriptor above 2 close-on-exec: root is becoming the job's user */

    const char *file;         /* searched in PATH when it has no slash */
    char *const *argv;
    char *const *envp;        /* NULL: the current environment */
};

/* Where an attach failed. */
enum jb_attach_stage {
    JB_ATTACH_OK = 0,
    JB_ATTACH_CGROUP = 1,   /* writing to cgroup_fds[index] */
    JB_ATTACH_SETNS = 2,
    JB_ATTACH_FORK = 3,
    JB_ATTACH_ROOT = 4,
    JB_ATTACH_CWD = 5,
    JB_ATTACH_IDENTITY = 6,
    JB_ATTACH_EXEC = 7,
    JB_ATTACH_FENCE = 8,
    JB_ATTACH_DESCRIPTORS = 9, /* marking the caller's descriptors close-on-exec */
};

struct jb_attach_failure {
    int stage;  /* enum jb_attach_stage */
    int index;
    int error;  /* errno */
};

/*
 * Joins the cgroups and namespaces in this process, then forks the command's process. Returns its pid, and in
 * *REPORT_FD the read end of a close-on-exec pipe for jb_attach_read_report; -1 with FAILURE filled when a step
 * in this process failed.
 */
pid_t jb_attach_spawn(const struct jb_attach_plan *plan, int *report_fd, struct jb_attach_failure *failure);

/* Blocks until the child has exec'd (returns 0, FD closed) or failed (returns 1 with FAILURE filled). */
int jb_attach_read_report(int fd, struct jb_attach_failure *failure);

#endif
