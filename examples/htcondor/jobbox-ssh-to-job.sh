#!/bin/bash
# jobbox-ssh-to-job.sh: puts a condor_ssh_to_job session inside the job's namespaces.
#
# condor_ssh_to_job makes the starter run an sshd as the job's user, with the job's environment and working
# directory, next to the job but outside the namespaces jobbox-wrapper.sh made for it. In the sshd
# configuration HTCondor writes for that sshd (the template SSH_TO_JOB_SSHD_CONFIG_TEMPLATE names; copy the
# default one and add the line), make this script the ForceCommand:
#
#   ForceCommand /usr/local/share/jobbox/examples/htcondor/jobbox-ssh-to-job.sh
#
# Then the session runs in the job: its PID view, its private /tmp, its cgroup, and it is killed when the job
# ends. This works for jobs jobbox-wrapper.sh ran as the job's user (USER_JOB_WRAPPER: ns-exec --userns --pid),
# since the sshd runs as that user too; a job the wrapper ran as root can only be attached to by root.
#
# The job is ClusterId.ProcId of $_CONDOR_JOB_AD (the job's environment has it), the id ns-exec recorded it
# under; the command is the one ssh was given, else a login shell.
set -u
me=jobbox-ssh-to-job
ns_exec=${JOBBOX_BIN:+$JOBBOX_BIN/}ns-exec
shell=${SHELL:-/bin/sh}
ad=${_CONDOR_JOB_AD-}
cluster=$(sed -n 's/^ClusterId *= *\([0-9][0-9]*\) *$/\1/p' "$ad" 2>/dev/null | head -n 1)
proc=$(sed -n 's/^ProcId *= *\([0-9][0-9]*\) *$/\1/p' "$ad" 2>/dev/null | head -n 1)
# The session: the command ssh was given, else a login shell.
set -- "$shell" -l
if [ -n "${SSH_ORIGINAL_COMMAND-}" ]; then set -- "$shell" -c "$SSH_ORIGINAL_COMMAND"; fi
if [ -z "$cluster" ] || [ -z "$proc" ]; then
    echo "$me: no ClusterId and ProcId in \$_CONDOR_JOB_AD ('$ad'); an ordinary session follows" >&2
    exec "$@"
fi
exec "$ns_exec" --attach "$cluster.$proc" -- "$@"
