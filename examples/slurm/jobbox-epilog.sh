#!/bin/bash
# jobbox-epilog.sh: Slurm Epilog (slurmd runs it as root once per job on the node, after the job ended), the
# counterpart of jobbox-prolog.sh:
#   1. jobstat's figures of the whole job (every step, the wrapper, anything left) go to
#      $JOBBOX_SLURM_DIR/ads/<job id>.ad (long-form ClassAd);
#   2. cg-exec --remove kills whatever the job left behind and removes its cgroup;
#   3. the job's state dir, with its scratch dir (the job's private /tmp), is removed.
# Only a failure of step 2 (processes that survive killing) fails the epilog: Slurm then drains the node, which
# is what it does itself with unkillable processes. Settings as for jobbox-prolog.sh.
set -uo pipefail
umask 022

me=jobbox-epilog
find_tool() {
    if [ -n "${JOBBOX_BIN-}" ]; then found=$JOBBOX_BIN/$1; else found=$(command -v "$1" || true); fi
    if [ -z "$found" ] || [ ! -x "$found" ]; then found=$(cd "$(dirname "$0")/../../../../bin" 2>/dev/null && pwd)/$1; fi
    [ -x "$found" ] || { echo "$me: job ${SLURM_JOB_ID:-?}: $1 not found (set JOBBOX_BIN)" >&2; exit 1; }
}

job=${SLURM_JOB_ID:?}
case $job in *[!0-9]* | '') echo "$me: SLURM_JOB_ID '$job' is not a job number" >&2; exit 1 ;; esac
dir=${JOBBOX_SLURM_DIR:-/var/lib/jobbox/slurm}
state=$dir/jobs/$job
find_tool jobstat
jobstat=$found
find_tool cg-exec
cg_exec=$found

# No prolog record: jobbox did not set this job up (e.g. the prolog was added while it ran).
[ -d "$state" ] || exit 0

mkdir -p "$dir/ads"
# On a hybrid node the job never joins the v2 tree (see jobbox-prolog.sh), so its pressure figures are not the job's.
drop=
[ -f /sys/fs/cgroup/cgroup.controllers ] || drop='Pressure'
if ad=$("$jobstat" --job "$job"); then
    printf '%s\n' "$ad" | grep -v "${drop:-^$}" > "$dir/ads/$job.ad.tmp" || true
    mv -f "$dir/ads/$job.ad.tmp" "$dir/ads/$job.ad"
else
    echo "$me: job $job: no figures (jobstat's reason is above)" >&2
fi

status=0
"$cg_exec" --remove --job "$job" || status=1
rm -rf --one-file-system "$state"
exit "$status"
