#!/bin/bash
# jobbox-prolog.sh: Slurm Prolog (slurmd runs it as root once per job on the node, before the job's first step).
#
#   Prolog=/usr/local/share/doc/jobbox/examples/slurm/jobbox-prolog.sh
#   Epilog=/usr/local/share/doc/jobbox/examples/slurm/jobbox-epilog.sh
#
# The root half of jobbox under Slurm. It makes the job's cgroup with cg-exec (the job's memory and CPUs as
# slurmctld recorded them), hands the job's user the right to move its own processes in (cgroup.procs), and
# makes a scratch directory for the job's private /tmp. jobbox-job.sh, the job's own wrapper, joins the cgroup
# and runs the job under ns-exec; jobbox-epilog.sh gathers the figures and removes it all.
#
# What it leaves, in $JOBBOX_SLURM_DIR/jobs/<job id>/ (root-owned, readable by all):
#   cgroups    the job's cgroup directories, one per line, whose cgroup.procs the job's user may write
#   scratch/   owned by the job's user, mode 0700: ns-exec binds <scratch>/tmp over /tmp, <scratch>/var/tmp
#              over /var/tmp
#
# Joining works on cgroup v1 and hybrid nodes. On a cgroup v2 node the kernel lets a process move only if it may
# write cgroup.procs of the common ancestor of both cgroups (slurmd's, root's), so there Slurm's own
# task/cgroup plugin must place the job; this prolog still makes the scratch dir and says so in slurmd's log.
#
# A failure is one line on stderr (slurmd's log) and status 1: Slurm then drains the node with "Prolog error"
# and requeues the job. Whatever the prolog had made is removed first.
#
# Settings (slurmd gives a Prolog a fixed environment, so set them in a two-line shim that Prolog= names:
# `export JOBBOX_CONFIG=...; exec .../jobbox-prolog.sh`):
#   JOBBOX_BIN         directory holding the tools (default: PATH, then ../../../../bin from this script)
#   JOBBOX_CONFIG      jobbox.conf for the tools (they default to /etc/jobbox/jobbox.conf)
#   JOBBOX_SLURM_DIR   per-job state and the final figures (default /var/lib/jobbox/slurm)
set -euo pipefail
umask 022

me=jobbox-prolog
fail() {
    echo "$me: job ${SLURM_JOB_ID:-?}: $*" >&2
    exit 1
}

find_tool() {
    if [ -n "${JOBBOX_BIN-}" ]; then found=$JOBBOX_BIN/$1; else found=$(command -v "$1" || true); fi
    if [ -z "$found" ] || [ ! -x "$found" ]; then found=$(cd "$(dirname "$0")/../../../../bin" 2>/dev/null && pwd)/$1; fi
    [ -x "$found" ] || fail "$1 not found (set JOBBOX_BIN)"
}

job=${SLURM_JOB_ID:?}
uid=${SLURM_JOB_UID:?}
gid=${SLURM_JOB_GID:?}
case $job in *[!0-9]* | '') fail "SLURM_JOB_ID '$job' is not a job number" ;; esac
state=${JOBBOX_SLURM_DIR:-/var/lib/jobbox/slurm}/jobs/$job
find_tool cg-exec
cg_exec=$found

# The job's memory: slurmctld's record (a Prolog's environment has no SLURM_MEM_*). MinMemoryNode is per node,
# MinMemoryCPU per allocated CPU; Slurm's suffixes are powers of 1024, as jobbox's are. 0 means no limit.
cpus=${SLURM_JOB_CPUS_PER_NODE:-}
cpus=${cpus%%[!0-9]*}
record=$(scontrol show job -o "$job" 2>/dev/null) || fail "scontrol show job failed"
memory=$(printf '%s\n' "$record" | tr ' ' '\n' | sed -n 's/^MinMemoryNode=\([0-9][0-9]*[KMGT]\{0,1\}\)$/\1/p')
per_cpu=$(printf '%s\n' "$record" | tr ' ' '\n' | sed -n 's/^MinMemoryCPU=\([0-9][0-9]*\)M$/\1/p')
if [ -z "$memory" ] && [ -n "$per_cpu" ] && [ -n "$cpus" ]; then memory=$((per_cpu * cpus))M; fi
case $memory in 0 | 0[KMGT]) memory= ;; esac

undo() {
    "$cg_exec" --remove --job "$job" >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap 'undo' ERR

rm -rf "$state"
mkdir -p "$state"
install -d -m 0700 -o "$uid" -g "$gid" "$state/scratch"

# cg-exec makes the job's cgroup in every hierarchy it needs and runs a command there: that command's
# /proc/self/cgroup names the directories, straight from the kernel.
if ! placed=$("$cg_exec" --job "$job" ${memory:+--memory "$memory"} ${cpus:+--cpus "$cpus"} -- cat /proc/self/cgroup); then
    undo
    fail "cg-exec could not make the job's cgroup (its reason is above)"
fi

unified=
[ ! -f /sys/fs/cgroup/cgroup.controllers ] || unified=/sys/fs/cgroup
: > "$state/cgroups"
while IFS=: read -r _ controllers path; do
    case $path in */job_"$job" | */job_"$job"/*) ;; *) continue ;; esac
    if [ -z "$controllers" ]; then
        # The kernel lets a process move between v2 cgroups only if it may write cgroup.procs of their common
        # ancestor: the job's user cannot. On a hybrid node that tree has no controller that matters (at most
        # hugetlb); on a v2 node it has them all.
        if [ "$unified" = /sys/fs/cgroup ]; then
            echo "$me: job $job: cgroup v2 node: the job's user cannot move into $path; use task/cgroup to place jobs" >&2
        fi
        continue
    elif [ -d "/sys/fs/cgroup/$controllers" ]; then
        dir=/sys/fs/cgroup/$controllers$path
    else
        dir=/sys/fs/cgroup/${controllers%%,*}$path
    fi
    [ -d "$dir" ] || { undo; fail "cg-exec reported $path, but $dir is not a directory"; }
    # Delegation as HTCondor does it on v1: the job's user may move its own processes in, nothing else.
    chown "$uid" "$dir/cgroup.procs"
    [ ! -e "$dir/tasks" ] || chown "$uid" "$dir/tasks"
    echo "$dir" >> "$state/cgroups"
done <<< "$placed"
