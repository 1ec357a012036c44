#!/bin/sh
# The HTCondor USER_JOB_WRAPPER (examples/htcondor/jobbox-wrapper.sh) as the job's user on a cgroup v2 node,
# inside the VM of scripts/vm/run-v2-checks.sh: the mode HTCondor uses on current nodes, which the build machines
# (v1 controllers) cannot show. As the starter does (reference/htcondor.md sections 1 and 2.2), this check
# makes <BASE_CGROUP>/<uniq>.slice/<uniq>.scope, enables memory, pids, cpu and io on the slice, hands the slice,
# its cgroup.procs and cgroup.subtree_control to the job's user, puts the wrapper in the .scope, writes the ads
# and runs the wrapper as that user. Prints `PASS htcondor-wrapper-<check>` or `FAIL htcondor-wrapper-<check>: ...`.
set -u
CG=/sys/fs/cgroup
WRAPPER=/jobbox/examples/htcondor/jobbox-wrapper.sh
EXECUTE=/srv/execute           # not below /tmp: a scratch dir there would keep the job from a private /tmp
SCRATCH=$EXECUTE/dir_1/scratch
BASE=$CG/htcondor
SLICE=$BASE/slot1_1.slice
SCOPE=$SLICE/slot1_1.scope
MARKER=jobbox-vm-marker

if [ ! -x /bin/bash ] || [ ! -f "$WRAPPER" ]; then
    echo "FAIL htcondor-wrapper-setup: bash or $WRAPPER is missing from the initramfs"
    exit 0
fi

# --- the starter's part ---------------------------------------------------------------------------------------
mkdir -p "$SCRATCH" "$SCOPE"
chown 1000:1000 "$SCRATCH"
chmod 0700 "$SCRATCH"
cat >"$SCRATCH/.job.ad" <<'AD'
ClusterId = 7
ProcId = 0
Owner = "job"
RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage * 3 / 2, 32)
AD
# HTCondor's default RequestMemory is an expression: cg-exec --from-job-ad takes the slot's Memory and Cpus.
printf 'Memory = 64\nCpus = 1\n' >"$SCRATCH/.machine.ad"
cat >"$EXECUTE/job.sh" <<'JOB'
#!/bin/sh
cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "cgroup=$cgroup"
echo "memory_max=$(cat "/sys/fs/cgroup${cgroup%/*}/memory.max" 2>&1)"
echo "uid=$(id -u)"
echo "pid=$$"
echo "job" >/tmp/jobbox-vm-marker
dd if=/dev/zero of=/tmp/jobbox-vm-marker.data bs=1M count=8 2>/dev/null
JOB
chmod 0755 "$EXECUTE" "$EXECUTE/dir_1" "$EXECUTE/job.sh"
for controller in memory pids cpu io; do
    echo "+$controller" >"$BASE/cgroup.subtree_control"
    echo "+$controller" >"$SLICE/cgroup.subtree_control"
done
chown 1000:1000 "$SLICE" "$SLICE/cgroup.procs" "$SLICE/cgroup.subtree_control"

# busybox's setpriv cannot change uids; its su can, with the starter's environment only (env -i).
# shellcheck disable=SC2016 # the inner shells expand their own arguments
sh -c 'echo $$ >"$1/cgroup.procs" && exec su -s /bin/sh job -c '\''cd "$1" && exec env -i PATH=/bin:/usr/bin \
        _CONDOR_SCRATCH_DIR="$1" _CONDOR_JOB_AD="$1/.job.ad" _CONDOR_MACHINE_AD="$1/.machine.ad" \
        _CONDOR_WRAPPER_ERROR_FILE="$1/.job_wrapper_failure" CONDOR_STARTER_PID="$2" JOBBOX_BIN=/jobbox/bin \
        /bin/bash "$3" "$4"'\'' starter "$2" "$3" "$4" "$5"' \
    starter "$SCOPE" "$SCRATCH" "$$" "$WRAPPER" "$EXECUTE/job.sh" \
    </dev/null >"$EXECUTE/stdout" 2>"$EXECUTE/stderr"
status=$?

# --- the checks -----------------------------------------------------------------------------------------------
check() {
    name=$1
    shift
    if reason=$("$@" 2>&1); then echo "PASS htcondor-wrapper-$name"; else echo "FAIL htcondor-wrapper-$name: $reason"; fi
}
seen() { sed -n "s/^$1=//p" "$EXECUTE/stdout"; }

ran() {
    [ "$status" = 0 ] || { echo "status $status; stderr: $(tr '\n' ' ' <"$EXECUTE/stderr")"; return 1; }
    [ ! -e "$SCRATCH/.job_wrapper_failure" ] || { echo "error file: $(cat "$SCRATCH/.job_wrapper_failure")"; return 1; }
    [ "$(seen uid)" = 1000 ] || { echo "job ran as uid '$(seen uid)'"; return 1; }
}
# cg-exec put the job below the slice it was delegated (its leaf main), with the slot's Memory as the hard limit.
own_cgroup() {
    [ "$(seen cgroup)" = /htcondor/slot1_1.slice/jobbox/job_7_0/main ] || { echo "job's cgroup: '$(seen cgroup)'"; return 1; }
}
removed() {
    [ ! -e "$SLICE/jobbox/job_7_0" ] || { echo "$SLICE/jobbox/job_7_0 is still there"; return 1; }
}
private_tmp() {
    [ "$(cat "$SCRATCH/tmp/$MARKER" 2>&1)" = job ] || { echo "no marker in the scratch dir's tmp"; return 1; }
    [ ! -e "/tmp/$MARKER" ] || { echo "the job wrote to the node's /tmp"; return 1; }
}
pid_view() {
    [ "$(seen pid)" -le 3 ] 2>/dev/null || { echo "the job's pid is '$(seen pid)'"; return 1; }
}
# jobstat read the slice (all of the job's own cgroups): the figures of every controller are there.
figures() {
    ad=$SCRATCH/.jobbox/job.ad
    [ -s "$ad" ] || { echo "no $ad; stderr: $(tr '\n' ' ' <"$EXECUTE/stderr")"; return 1; }
    for name in MemoryPeakKb RemoteUserCpu NumPids; do
        grep -q "^$name = " "$ad" || { echo "$name missing: $(tr '\n' ' ' <"$ad")"; return 1; }
    done
}
memory_limit() {
    [ "$(seen memory_max)" = $((64 << 20)) ] || { echo "memory.max of the job's cgroup: '$(seen memory_max)'"; return 1; }
}
check runs ran
check own-cgroup own_cgroup
check cgroup-removed removed
check private-tmp private_tmp
check pid-view pid_view
check figures figures
check memory-limit memory_limit

# --- cleanup ------------------------------------------------------------------------------------------------------
find "$BASE" -depth -type d -exec rmdir {} + 2>/dev/null
rm -rf "$EXECUTE"
