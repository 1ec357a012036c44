#!/bin/bash
# jobbox-job.sh: runs a Slurm job's command through jobbox's tools, as the job's user.
#
#   sbatch --mem=2G -c 1 jobbox-job.sh ./my-job arg...       (the batch step)
#   srun jobbox-job.sh ./my-step arg...                        (a step inside an allocation)
#
# With jobbox-prolog.sh as the cluster's Prolog:
#   1. it moves itself into the job's cgroup the prolog made (memory and CPU limits from the job's request), so
#      everything the job starts is accounted and limited there, and removed by the epilog;
#   2. runs COMMAND under ns-exec --userns --pid --mount with the prolog's scratch dir: its own PID view, and
#      /tmp and /var/tmp that are the job's alone and vanish with it;
#   3. afterwards writes jobstat's figures of the job's cgroup to jobbox-<job id>.ad in the working directory
#      (set JOBBOX_AD_FILE to change that, or to "" to skip), and exits with COMMAND's status.
# Without the prolog (no state for this job) it only does step 2 without the scratch dir: the job keeps the
# node's /tmp and slurmd's cgroups, and there are no figures of its own to report.
#
# Its own failures are one line on stderr (the job's error file) and status 125, as the tools' are.
# Settings: JOBBOX_BIN, JOBBOX_CONFIG and JOBBOX_SLURM_DIR as for jobbox-prolog.sh; sbatch passes the
# submitting environment on, so exporting them before sbatch is enough.
set -u

me=jobbox-job
fail() {
    echo "$me: $*" >&2
    exit 125
}

find_tool() {
    if [ -n "${JOBBOX_BIN-}" ]; then found=$JOBBOX_BIN/$1; else found=$(command -v "$1" || true); fi
    if [ -z "$found" ] || [ ! -x "$found" ]; then found=$(cd "$(dirname "$0")/../../../../bin" 2>/dev/null && pwd)/$1; fi
    [ -x "$found" ] || fail "$1 not found (set JOBBOX_BIN)"
}

# The same as in the HTCondor wrapper: figures from hierarchies in which this process shares the cgroup of its
# parent (slurmstepd, which stays in slurmd's) count more than this job, so they are left out.
shared_with_parent() {
    awk -F: 'NR == FNR { own[$1] = $3; next }
             ($1 in own) && own[$1] == $3 { print ($2 == "" ? "unified" : $2) }' /proc/self/cgroup "/proc/$PPID/cgroup" |
        tr ',\n' '  '
}

drop_figures_of() {
    pattern='^$'
    for controller in $1; do
        case $controller in
            memory) pattern="$pattern|^(MemoryUsage|ResidentSetSize|MemoryPeakKb|MemoryCacheKb|MemorySwapKb|OOMKills)[ =]" ;;
            cpuacct) pattern="$pattern|^(RemoteUserCpu|RemoteSysCpu)[ =]" ;;
            cpu) pattern="$pattern|^CpuThrottledSeconds[ =]" ;;
            blkio) pattern="$pattern|^Block[A-Za-z]*[ =]" ;;
            pids) pattern="$pattern|^NumPids[ =]" ;;
            unified) pattern="$pattern|^[A-Za-z]*Pressure[A-Za-z0-9]*[ =]" ;;
        esac
    done
    grep -Ev "$pattern"
    return 0
}

[ $# -ge 1 ] || fail "usage: jobbox-job.sh COMMAND [ARG...]"
# Slurm's PMI-1 hands an MPI task its connection to slurmstepd as descriptor $PMI_FD: ns-exec closes the
# descriptors it is not told to keep whenever it changes the job's user or root, so name it.
keep=()
case ${PMI_FD-} in '') ;; *[!0-9]*) fail "PMI_FD '$PMI_FD' is not a descriptor number" ;; *) keep=(--keep-fd "$PMI_FD") ;; esac
job=${SLURM_JOB_ID-}
case $job in *[!0-9]* | '') fail "not in a Slurm job: \$SLURM_JOB_ID is '${job}'" ;; esac
state=${JOBBOX_SLURM_DIR:-/var/lib/jobbox/slurm}/jobs/$job
find_tool ns-exec
ns_exec=$found

if [ ! -f "$state/cgroups" ]; then
    echo "$me: no jobbox prolog ran for job $job ($state): no job cgroup, no private /tmp" >&2
    exec "$ns_exec" --userns --pid --mount --job "$job" ${keep[@]+"${keep[@]}"} -- "$@"
fi

while IFS= read -r dir; do
    [ -n "$dir" ] || continue
    # $$ is this shell even inside the command substitution: the write moves the wrapper, and so the job.
    if ! error=$({ echo "$$" > "$dir/cgroup.procs"; } 2>&1); then
        fail "cannot join the job's cgroup $dir: ${error##*: }"
    fi
done < "$state/cgroups"

ad_file=${JOBBOX_AD_FILE-jobbox-$job.ad}
if [ -z "$ad_file" ]; then
    exec "$ns_exec" --userns --pid --mount --job "$job" --scratch "$state/scratch" ${keep[@]+"${keep[@]}"} -- "$@"
fi
find_tool jobstat
jobstat=$found

# Signals slurmstepd sends (scancel, time limit) go on to the job; its stdin stays the job's.
child=
pending=
# shellcheck disable=SC2317 # called from the traps
forward_signal() {
    if [ -n "$child" ]; then kill -s "$1" "$child" 2>/dev/null; else pending=$1; fi
}
for signal in HUP INT QUIT TERM USR1 USR2; do
    # shellcheck disable=SC2064 # expand $signal now
    trap "forward_signal $signal" "$signal"
done
# The job's stdin, kept on a descriptor bash picks (10 or above), so it cannot be PMI_FD.
exec {stdin_copy}<&0
(trap - HUP INT QUIT TERM USR1 USR2 && exec "$ns_exec" --userns --pid --mount --job "$job" --scratch "$state/scratch" ${keep[@]+"${keep[@]}"} -- "$@" <&"$stdin_copy" {stdin_copy}<&-) &
child=$!
exec {stdin_copy}<&-
if [ -n "$pending" ]; then kill -s "$pending" "$child" 2>/dev/null; fi
while :; do
    wait "$child"
    status=$?
    kill -0 "$child" 2>/dev/null || break
done
trap - HUP INT QUIT TERM USR1 USR2

shared=$(shared_with_parent)
if ad=$("$jobstat" --self); then
    printf '%s\n' "$ad" | drop_figures_of "$shared" > "$ad_file.tmp" && mv -f "$ad_file.tmp" "$ad_file" ||
        echo "$me: cannot write $ad_file" >&2
else
    echo "$me: no figures (jobstat's reason is above)" >&2
fi
exit "$status"
