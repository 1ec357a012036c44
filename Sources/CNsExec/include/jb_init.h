/*
 * jb_init.h: jobbox's init, PID 1 of a job's PID namespace.
 *
 * The kernel gives PID 1 two duties and one privilege: it adopts every orphan of the namespace (and must reap
 * it), it ignores every signal it has no handler for (even SIGKILL sent from inside), and when it exits the
 * kernel kills every other process of the namespace. So the init forwards the usual job-control signals to the
 * job, reaps whatever ends, and exits with the job's status as soon as the job ends, which tears down whatever
 * the job left running (a double-forked daemon included).
 */
#ifndef JOBBOX_JB_INIT_H
#define JOBBOX_JB_INIT_H

#include <signal.h>
#include <sys/types.h>

/*
 * Supervises JOB: forwards the signals of jb_forwarded_signal_set (clinux.h) to it, reaps every child, and
 * returns JOB's wait status once JOB has ended. The forwarded signals must be blocked from before JOB was forked
 * until this call, so none is lost; they are unblocked here (the mask becomes UNBLOCKED_MASK).
 */
int jb_init_supervise(pid_t job, const sigset_t *unblocked_mask);

#endif
