/* See jb_init.h. Runs after fork in a single-threaded child: only async-signal-safe calls, nothing allocated. */
#define _GNU_SOURCE
#include "jb_init.h"
#include "clinux.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>

static volatile sig_atomic_t supervised_job;

static void forward_to_job(int sig) {
    int saved = errno;
    pid_t job = (pid_t)supervised_job;
    /* 0 would mean the whole process group: never. */
    if (job > 0) kill(job, sig);
    errno = saved;
}

int jb_init_supervise(pid_t job, const sigset_t *unblocked_mask) {
    supervised_job = job;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward_to_job;
    action.sa_flags = SA_RESTART;
    sigfillset(&action.sa_mask);
    sigset_t forwarded;
    jb_forwarded_signal_set(&forwarded);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&forwarded, sig) == 1) sigaction(sig, &action, NULL);
    /* An inherited SIG_IGN for SIGCHLD would make the kernel reap children itself and hide the job's status. */
    struct sigaction child_default;
    memset(&child_default, 0, sizeof child_default);
    child_default.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &child_default, NULL);
    sigprocmask(SIG_SETMASK, unblocked_mask, NULL);

    for (;;) {
        int status;
        pid_t ended = waitpid(-1, &status, 0);
        if (ended == job) {
            supervised_job = 0;
            return status;
        }
        if (ended < 0 && errno == ECHILD) {
            /* Cannot happen while the job lives; report it as the init's own failure. */
            supervised_job = 0;
            return 125 << 8;
        }
        /* Another process ended (an orphan the namespace handed to PID 1), or EINTR: keep going. */
    }
}
