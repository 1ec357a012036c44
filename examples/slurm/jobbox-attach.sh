#!/bin/bash
# jobbox-attach.sh: puts an ssh session that pam_slurm_adopt adopted into a job inside that job's namespaces.
#
# pam_slurm_adopt (in sshd's PAM account stack) moves the session into the cgroup of the user's job on this
# node, but the session still sees the node's /tmp and every process. Make this script sshd's ForceCommand for
# the users concerned (a Match block in sshd_config), and the session lands where the job runs: its PID view,
# its private /tmp and /var/tmp, its directory:
#
#   Match Group hpcusers
#       ForceCommand /usr/local/share/jobbox/examples/slurm/jobbox-attach.sh
#
# The job is the one pam_slurm_adopt picked (its id is in this process's cgroup path, job_<id>, where Slurm's
# cgroup plugins made one), else the user's only job recorded on this node; the command
# is the one ssh was given ($SSH_ORIGINAL_COMMAND, run by the user's shell), else a login shell. jobbox-job.sh
# runs every step with `ns-exec --job <job id>`, which records the job for `ns-exec --attach` in the user's own
# directory; the session attaches to the most recently started step. Without such a job this falls back to an
# ordinary session, saying so.
set -u
me=jobbox-attach
ns_exec=${JOBBOX_BIN:+$JOBBOX_BIN/}ns-exec

# The job pam_slurm_adopt adopted this session into: .../job_<id>/step_extern in the cgroup path.
job=$(sed -n 's|.*/job_\([0-9][0-9]*\)/.*|\1|p' /proc/self/cgroup | head -n 1)
if [ -z "$job" ]; then
    # Where ns-exec keeps an unprivileged user's records: $XDG_RUNTIME_DIR/jobbox, else /tmp/jobbox-<uid>.
    records=/tmp/jobbox-$(id -u)
    if [ -n "${XDG_RUNTIME_DIR-}" ] && [ -O "$XDG_RUNTIME_DIR" ]; then records=$XDG_RUNTIME_DIR/jobbox; fi
    set -- "$records"/job_*
    if [ $# -eq 1 ] && [ -f "$1" ]; then job=${1##*/job_}; fi
fi
shell=${SHELL:-/bin/sh}
# The session: the command ssh was given, else a login shell.
set -- "$shell" -l
if [ -n "${SSH_ORIGINAL_COMMAND-}" ]; then set -- "$shell" -c "$SSH_ORIGINAL_COMMAND"; fi
if [ -z "$job" ]; then
    echo "$me: this session was adopted into no Slurm job; an ordinary session follows" >&2
    exec "$@"
fi
exec "$ns_exec" --attach "$job" -- "$@"
