#!/bin/bash
# jobbox-job.sh: runs a Slurm job's command through jobbox's tools, as the job's user.
#
#   sbatch --mem=2G -c 1 jobbox-job.sh ./my-job arg...       (the batch step)
#   srun jobbox-job.sh ./my-step arg...                        (a step inside an allocation)
#
# With jobbox-prolog.sh as the cluster's Prolog: cg-exec --join moves the command into the job's cgroup (the
# job's memory and CPU limits), ns-exec --userns --pid --mount gives it its own PID view and /tmp, /var/tmp from
# the prolog's scratch dir (and the chroot $JOBBOX_CHROOT names, from NAMED_CHROOT); afterwards jobstat's
# figures of the job's cgroup go to jobbox-<job id>.ad in the working directory (JOBBOX_AD_FILE changes that,
# "" skips it). It exits with the command's status. Without the prolog it runs ns-exec alone and says so.
#
# Its own failures are one line on stderr and status 125, as the tools' are. Settings: JOBBOX_BIN, JOBBOX_CONFIG,
# JOBBOX_SLURM_DIR as for jobbox-prolog.sh (sbatch passes the submitting environment on: export them first).
set -u
PATH=${JOBBOX_BIN:+$JOBBOX_BIN:}$PATH
fail() {
    echo "jobbox-job: $*" >&2
    exit 125
}

[ $# -ge 1 ] || fail "usage: jobbox-job.sh COMMAND [ARG...]"
# Slurm's PMI-1 hands an MPI task its connection to slurmstepd as descriptor $PMI_FD: ns-exec closes the
# descriptors it is not told to keep whenever it changes the job's user or root, so name it.
case ${PMI_FD-} in '') keep=() ;; *[!0-9]*) fail "PMI_FD '$PMI_FD' is not a descriptor number" ;; *) keep=(--keep-fd "$PMI_FD") ;; esac
job=${SLURM_JOB_ID-}
case $job in *[!0-9]* | '') fail "not in a Slurm job: \$SLURM_JOB_ID is '${job}'" ;; esac
scratch=${JOBBOX_SLURM_DIR:-/var/lib/jobbox/slurm}/jobs/$job
ns_exec=(ns-exec --userns --pid --mount --job "$job" ${JOBBOX_CHROOT:+--chroot "$JOBBOX_CHROOT"} ${keep[@]+"${keep[@]}"})
if [ ! -d "$scratch" ]; then
    echo "jobbox-job: no jobbox prolog ran for job $job ($scratch): no job cgroup, no private /tmp" >&2
    exec "${ns_exec[@]}" -- "$@"
fi
set -- cg-exec --job "$job" --join -- "${ns_exec[@]}" --scratch "$scratch" -- "$@"
ad_file=${JOBBOX_AD_FILE-jobbox-$job.ad}
[ -n "$ad_file" ] || exec "$@"

# Signals slurmstepd sends (scancel, the time limit) go on to the job; its stdin stays the job's, on a
# descriptor bash picks (10 or above), so it cannot be PMI_FD.
child='' pending=''
for signal in HUP INT QUIT TERM USR1 USR2; do
    # shellcheck disable=SC2064 # $signal now, $child when the signal comes
    trap "if [ -n \"\$child\" ]; then kill -s $signal \"\$child\" 2>/dev/null; else pending=$signal; fi" "$signal"
done
exec {stdin_copy}<&0
(trap - HUP INT QUIT TERM USR1 USR2 && exec "$@" <&"$stdin_copy" {stdin_copy}<&-) &
child=$!
exec {stdin_copy}<&-
[ -z "$pending" ] || kill -s "$pending" "$child" 2>/dev/null
while wait "$child"; status=$?; kill -0 "$child" 2>/dev/null; do :; done
trap - HUP INT QUIT TERM USR1 USR2

if jobstat --job "$job" > "$ad_file.tmp"; then
    mv -f "$ad_file.tmp" "$ad_file"
else
    rm -f "$ad_file.tmp"
    echo "jobbox-job: no figures (jobstat's reason is above)" >&2
fi
exit "$status"
