#!/bin/bash
# jobbox-prolog.sh: Slurm Prolog (slurmd runs it as root once per job on the node, before the job's first step).
#
#   Prolog=/usr/local/share/doc/jobbox/examples/slurm/jobbox-prolog.sh
#   Epilog=/usr/local/share/doc/jobbox/examples/slurm/jobbox-epilog.sh
#
# The root half of jobbox under Slurm: cg-exec --delegate-to makes the job's cgroup with the job's memory and
# CPUs as slurmctld recorded them, and lets the job's user move its own processes in (nothing else); the prolog
# makes a scratch directory for the job's private /tmp. jobbox-job.sh, the job's own wrapper, joins the cgroup
# (cg-exec --join) and runs the job under ns-exec; jobbox-epilog.sh records the figures and removes it all.
# It leaves $JOBBOX_SLURM_DIR/jobs/<job id>, the job's scratch dir, owned by the job's user, mode 0700 (a chroot
# for $JOBBOX_CHROOT needs $JOBBOX_SLURM_DIR/jobs as a mount point: chroot-tool's CHROOT_MOUNT_POINTS).
#
# On a cgroup v2 node (and for the unified cgroup of a hybrid one, which netacct --node counts the network by) the
# kernel lets a process move only if it may write cgroup.procs of the common ancestor of both cgroups (root's):
# the job script's cg-exec --join asks the node service (netacct --node) to move it, so on v2 nodes it must run.
#
# A failure is one line on stderr (slurmd's log) and status 1: Slurm then drains the node with "Prolog error"
# and requeues the job. Whatever the prolog had made is removed first.
#
# Settings (slurmd gives a Prolog a fixed environment: set them in a two-line shim that Prolog= names):
#   JOBBOX_BIN         directory holding the tools, put first in PATH (default: the tools on PATH)
#   JOBBOX_CONFIG      jobbox.conf for the tools (they default to /etc/jobbox/jobbox.conf)
#   JOBBOX_SLURM_DIR   per-job state and the final figures (default /var/lib/jobbox/slurm)
set -euo pipefail
umask 022
PATH=${JOBBOX_BIN:+$JOBBOX_BIN:}$PATH
fail() {
    echo "jobbox-prolog: job ${SLURM_JOB_ID:-?}: $*" >&2
    exit 1
}

job=${SLURM_JOB_ID:?} uid=${SLURM_JOB_UID:?} gid=${SLURM_JOB_GID:?}
case $job in *[!0-9]* | '') fail "SLURM_JOB_ID '$job' is not a job number" ;; esac
jobs=${JOBBOX_SLURM_DIR:-/var/lib/jobbox/slurm}/jobs

# The job's memory: slurmctld's record (a Prolog's environment has no SLURM_MEM_*). MinMemoryNode is per node,
# MinMemoryCPU per allocated CPU; Slurm's suffixes are powers of 1024, as jobbox's are. 0 means no limit.
cpus=${SLURM_JOB_CPUS_PER_NODE:-}
cpus=${cpus%%[!0-9]*}
record=$(scontrol show job -o "$job" 2>/dev/null) || fail "scontrol show job failed"
memory=$(printf '%s\n' "$record" | tr ' ' '\n' | sed -n 's/^MinMemoryNode=\([0-9][0-9]*[KMGT]\{0,1\}\)$/\1/p')
per_cpu=$(printf '%s\n' "$record" | tr ' ' '\n' | sed -n 's/^MinMemoryCPU=\([0-9][0-9]*\)M$/\1/p')
if [ -z "$memory" ] && [ -n "$per_cpu" ] && [ -n "$cpus" ]; then memory=$((per_cpu * cpus))M; fi
case $memory in 0 | 0[KMGT]) memory= ;; esac

mkdir -p "$jobs"
rm -rf --one-file-system "${jobs:?}/$job"
install -d -m 0700 -o "$uid" -g "$gid" "$jobs/$job"
if ! cg-exec --job "$job" ${memory:+--memory "$memory"} ${cpus:+--cpus "$cpus"} --delegate-to "$uid"; then
    rm -rf "${jobs:?}/$job"
    fail "cg-exec could not make the job's cgroup (its reason is above)"
fi
