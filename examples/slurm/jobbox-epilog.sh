#!/bin/bash
# jobbox-epilog.sh: Slurm Epilog (slurmd runs it as root once per job on the node, after the job ended), the
# counterpart of jobbox-prolog.sh:
#   1. jobstat's figures of the whole job (every step, the wrapper, anything left) go to
#      $JOBBOX_SLURM_DIR/ads/<job id>.ad (long-form ClassAd);
#   2. cg-exec --remove kills whatever the job left behind and removes its cgroup;
#   3. the job's scratch dir (its private /tmp), the prolog's mark, is removed.
# Only a failure of step 2 (processes that survive killing) fails the epilog: Slurm then drains the node, which
# is what it does itself with unkillable processes. Settings as for jobbox-prolog.sh.
set -uo pipefail
umask 022
PATH=${JOBBOX_BIN:+$JOBBOX_BIN:}$PATH
me=jobbox-epilog

job=${SLURM_JOB_ID:?}
case $job in *[!0-9]* | '') echo "$me: SLURM_JOB_ID '$job' is not a job number" >&2; exit 1 ;; esac
dir=${JOBBOX_SLURM_DIR:-/var/lib/jobbox/slurm}
state=$dir/jobs/$job
# No prolog record: jobbox did not set this job up (e.g. the prolog was added while it ran).
[ -d "$state" ] || exit 0

mkdir -p "$dir/ads"
if jobstat --job "$job" > "$dir/ads/$job.ad.tmp"; then
    mv -f "$dir/ads/$job.ad.tmp" "$dir/ads/$job.ad"
else
    rm -f "$dir/ads/$job.ad.tmp"
    echo "$me: job $job: no figures (jobstat's reason is above)" >&2
fi
status=0
cg-exec --remove --job "$job" || status=1
rm -rf --one-file-system "$state"
exit "$status"
