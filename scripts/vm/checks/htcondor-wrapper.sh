#!/bin/sh
# The HTCondor USER_JOB_WRAPPER (examples/htcondor/jobbox-wrapper.sh) as the job's user on a cgroup v2 node,
# inside the VM of scripts/vm/run-v2-checks.sh: the mode HTCondor uses on current nodes, which the build machines
# (v1 controllers) cannot show. As the starter does (reference/htcondor.md sections 1 and 2.2), each job gets
# <BASE_CGROUP>/<slot>.slice/<slot>.scope, memory, pids, cpu and io enabled on the slice, the slice, its
# cgroup.procs and cgroup.subtree_control handed to the job's user, the wrapper in the .scope, the ads in its
# scratch dir, and the wrapper run as that user. The node has a jobbox.conf of its own (JOBBOX_CONFIG), naming a
# busybox tree in NAMED_CHROOT, and the node service (netacct --node) counting below <BASE_CGROUP>. One job per
# row of the README's table (examples/htcondor/README.md):
#   1  a plain job: its cgroup with the slot's memory, private /tmp, PID view, memory and CPU figures
#   2  RequestedChroot: the named chroot, read-only, /tmp the scratch dir's, nothing left in it
#   3  known traffic (scripts/vm/lib/traffic.sh): the node service's network bytes in the final figures
#   4  RequestedChroot naming no chroot: the failing step's one line in the error file, the job not run
# and after them nothing left behind: no job's cgroup, no process of the job's user. Prints
# `PASS htcondor-wrapper-<row>` or `FAIL htcondor-wrapper-<row>: ...`.
set -u
# shellcheck source=scripts/vm/lib/traffic.sh
. "${TRAFFIC_LIB:-/jobbox/lib/traffic.sh}"
CG=/sys/fs/cgroup
WRAPPER=/jobbox/examples/htcondor/jobbox-wrapper.sh
EXECUTE=/srv/execute # not below /tmp: a scratch dir there would keep the job from a private /tmp
BASE=$CG/htcondor
NODE=/run/jbhtc$$ # root's: the node's jobbox.conf, the service's state and socket
CONF=$NODE/jobbox.conf
CHROOT=/srv/chroot/vmtiny
CHROOT_NAME=VMTINY
MARKER=jobbox-vm-marker
DATAGRAMS=20
DATAGRAM_SIZE=1000

if [ ! -x /bin/bash ] || [ ! -f "$WRAPPER" ]; then
    echo "FAIL htcondor-wrapper-setup: bash or $WRAPPER is missing from the initramfs"
    exit 0
fi

# shellcheck disable=SC2317 # called by the trap below
cleanup() {
    traffic_node_stop "$CONF"
    find "$BASE" -depth -type d -exec rmdir {} + 2>/dev/null
    rm -rf "$EXECUTE" "$NODE" "${CHROOT%/*}"
}
trap cleanup EXIT

# --- the node ---------------------------------------------------------------------------------------------------
mkdir -p "$EXECUTE" "$BASE" "$NODE"
chmod 0755 "$EXECUTE" "$NODE"
cat >"$CONF" <<CONF
STATE_DIR = $NODE/state
NAMED_CHROOT = $CHROOT_NAME=$CHROOT
CHROOT_MOUNT_POINTS = $EXECUTE
NETWORK_INTERNAL = $TRAFFIC_NETWORK_INTERNAL
NETWORK_ACCOUNTING_CGROUP = ${BASE#"$CG"}
NETACCT_PIN_DIR = /sys/fs/bpf/jbhtc$$
NETACCT_SOCKET = $NODE/run/netacct.sock
CONF
chmod 0644 "$CONF"
traffic_prepare "$NODE"
# The chroot: busybox and its applets, root's, with the mount points chroot-tool would make (EXECUTE among them,
# from CHROOT_MOUNT_POINTS).
mkdir -p "$CHROOT/bin" "$CHROOT/etc" "$CHROOT/proc" "$CHROOT/dev" "$CHROOT/run" "$CHROOT/tmp" "$CHROOT/var/tmp" "$CHROOT$EXECUTE"
chmod 1777 "$CHROOT/tmp" "$CHROOT/var/tmp"
cp /bin/busybox "$CHROOT/bin/busybox"
chroot "$CHROOT" /bin/busybox --install -s /bin
echo "PRETTY_NAME=\"jobbox VM chroot $CHROOT_NAME\"" >"$CHROOT/etc/os-release"
chroot_before=$(find "$CHROOT" | sort)
traffic_node_start "$CONF"

# --- the jobs ---------------------------------------------------------------------------------------------------
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
# Run in the chroot, with its busybox: the starter transfers it into the scratch dir.
cat >"$EXECUTE/chroot-job.sh" <<'JOB'
#!/bin/sh
echo "release=$(cat /etc/os-release)"
echo "uid=$(id -u)"
echo "pid=$$"
set -- /proc/[0-9]*
echo "processes=$#"
echo job >/tmp/chroot-file && echo "tmp=written"
if (echo planted >/etc/planted) 2>/dev/null; then echo "etc=writable"; else echo "etc=read-only"; fi
JOB
cat >"$EXECUTE/network-job.sh" <<JOB
#!/bin/bash
echo "uid=\$(id -u)"
$TRAFFIC_DOWNLOAD >/tmp/received
echo "received=\$(wc -c </tmp/received)"
for _ in \$(seq $DATAGRAMS); do printf '%${DATAGRAM_SIZE}s' '' >/dev/udp/$TRAFFIC_EXTERNAL/9; done
echo "sent=$DATAGRAMS"
JOB
chmod 0755 "$EXECUTE"/*.sh

direct() { "$@"; }
in_traffic_namespace() { traffic_namespace "$NODE" "$@"; }

# run_job N RUNNER AD JOB...: the starter's part for job 7.N in slot1_N: the scratch dir $EXECUTE/dir_N with the
# ads (the job ad ends with the line AD), the .slice and .scope, then the wrapper, as the job's user in the
# .scope, run by RUNNER (direct or in_traffic_namespace). The wrapper's stdout, stderr and status go to
# $EXECUTE/N.stdout, N.stderr and N.status.
run_job() {
    n=$1 runner=$2 ad=$3
    shift 3
    scratch=$EXECUTE/dir_$n slice=$BASE/slot1_$n.slice
    mkdir -p "$scratch" "$slice/slot1_$n.scope"
    chown 1000:1000 "$scratch"
    chmod 0700 "$scratch"
    # HTCondor's default RequestMemory is an expression: cg-exec --from-job-ad takes the slot's Memory and Cpus.
    printf 'ClusterId = 7\nProcId = %s\nOwner = "job"\n%s\n%s\n' "$n" \
        'RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage * 3 / 2, 32)' "$ad" >"$scratch/.job.ad"
    printf 'Memory = 64\nCpus = 1\n' >"$scratch/.machine.ad"
    for controller in memory pids cpu io; do
        echo "+$controller" >"$BASE/cgroup.subtree_control"
        echo "+$controller" >"$slice/cgroup.subtree_control"
    done
    chown 1000:1000 "$slice" "$slice/cgroup.procs" "$slice/cgroup.subtree_control"
    # busybox's setpriv cannot change uids; its su can, with the starter's environment only (env -i).
    # shellcheck disable=SC2016 # the inner shells expand their own arguments
    "$runner" sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec su -s /bin/sh job -c '\''s=$1 p=$2 c=$3 w=$4 && shift 4 &&
            cd "$s" && exec env -i PATH=/bin:/usr/bin _CONDOR_SCRATCH_DIR="$s" _CONDOR_JOB_AD="$s/.job.ad" \
            _CONDOR_MACHINE_AD="$s/.machine.ad" _CONDOR_WRAPPER_ERROR_FILE="$s/.job_wrapper_failure" CONDOR_STARTER_PID="$p" \
            JOBBOX_BIN=/jobbox/bin JOBBOX_CONFIG="$c" /bin/bash "$w" "$@"'\'' starter "$@"' \
        starter "$slice/slot1_$n.scope" "$scratch" "$$" "$CONF" "$WRAPPER" "$@" \
        </dev/null >"$EXECUTE/$n.stdout" 2>"$EXECUTE/$n.stderr"
    echo $? >"$EXECUTE/$n.status"
}
run_job 1 direct '' "$EXECUTE/job.sh"
# The chroot has nothing of the node's but the scratch dir: the starter transfers the job there.
mkdir -p "$EXECUTE/dir_2" && cp "$EXECUTE/chroot-job.sh" "$EXECUTE/dir_2/job.sh" && chown 1000:1000 "$EXECUTE/dir_2/job.sh"
run_job 2 direct "RequestedChroot = \"$CHROOT_NAME\"" "$EXECUTE/dir_2/job.sh"
run_job 3 in_traffic_namespace '' "$EXECUTE/network-job.sh"
run_job 4 direct 'RequestedChroot = "NoSuchChroot"' "$EXECUTE/job.sh"

# --- the rows ---------------------------------------------------------------------------------------------------
check() {
    name=$1
    shift
    if reason=$("$@" 2>&1); then echo "PASS htcondor-wrapper-$name"; else echo "FAIL htcondor-wrapper-$name: $reason"; fi
}
# seen N KEY: what job N reported as KEY=value.
seen() { sed -n "s/^$2=//p" "$EXECUTE/$1.stdout"; }
flat() { tr '\n' ' ' <"$1"; }

# ran N: job N ran as the job's user and the wrapper succeeded.
ran() {
    [ "$(cat "$EXECUTE/$1.status")" = 0 ] || { echo "status $(cat "$EXECUTE/$1.status"); stderr: $(flat "$EXECUTE/$1.stderr")"; return 1; }
    [ ! -e "$EXECUTE/dir_$1/.job_wrapper_failure" ] || { echo "error file: $(flat "$EXECUTE/dir_$1/.job_wrapper_failure")"; return 1; }
    [ "$(seen "$1" uid)" = 1000 ] || { echo "job ran as uid '$(seen "$1" uid)'"; return 1; }
}
# cg-exec put the job below the slice it was delegated (its leaf main), with the slot's Memory as the hard limit.
own_cgroup() {
    [ "$(seen 1 cgroup)" = /htcondor/slot1_1.slice/jobbox/job_7_1/main ] || { echo "job's cgroup: '$(seen 1 cgroup)'"; return 1; }
}
private_tmp() {
    [ "$(cat "$EXECUTE/dir_1/tmp/$MARKER" 2>&1)" = job ] || { echo "no marker in the scratch dir's tmp"; return 1; }
    [ ! -e "/tmp/$MARKER" ] || { echo "the job wrote to the node's /tmp"; return 1; }
}
pid_view() {
    [ "$(seen 1 pid)" -le 3 ] 2>/dev/null || { echo "the job's pid is '$(seen 1 pid)'"; return 1; }
}
# jobstat read the slice (all of the job's own cgroups): the figures of every controller are there.
figures() {
    ad=$EXECUTE/dir_1/.jobbox/job.ad
    [ -s "$ad" ] || { echo "no $ad; stderr: $(flat "$EXECUTE/1.stderr")"; return 1; }
    for name in MemoryPeakKb RemoteUserCpu NumPids; do
        grep -q "^$name = " "$ad" || { echo "$name missing: $(flat "$ad")"; return 1; }
    done
}
memory_limit() {
    [ "$(seen 1 memory_max)" = $((64 << 20)) ] || { echo "memory.max of the job's cgroup: '$(seen 1 memory_max)'"; return 1; }
}
# ns-exec --userns --requested-chroot: the chroot's own userland, read-only, with /tmp from the scratch dir, and
# its own PID view (jobbox's init and the job alone).
named_chroot() {
    ran 2 || return 1
    [ "$(seen 2 release)" = "PRETTY_NAME=\"jobbox VM chroot $CHROOT_NAME\"" ] || { echo "not in the chroot: $(flat "$EXECUTE/2.stdout")"; return 1; }
    [ "$(seen 2 pid) $(seen 2 processes)" = "2 2" ] || { echo "PID view: $(flat "$EXECUTE/2.stdout")"; return 1; }
    [ "$(seen 2 tmp) $(cat "$EXECUTE/dir_2/tmp/chroot-file" 2>&1)" = "written job" ] ||
        { echo "/tmp is not the scratch dir's: $(flat "$EXECUTE/2.stdout")"; return 1; }
    [ "$(seen 2 etc)" = read-only ] || { echo "the chroot's /etc: $(seen 2 etc)"; return 1; }
    [ "$(find "$CHROOT" | sort)" = "$chroot_before" ] || { echo "the job changed the chroot: $(find "$CHROOT" | sort | tr '\n' ' ')"; return 1; }
}
# jobstat asked the node service about the slice: a download from the internal host within the bounds, and the
# datagrams to the external host exactly, each class on its own.
network_bytes() {
    [ -z "$TRAFFIC_NODE_FAILURE" ] || { echo "the node service: $TRAFFIC_NODE_FAILURE"; return 1; }
    ran 3 || return 1
    [ "$(seen 3 received) $(seen 3 sent)" = "$TRAFFIC_PAYLOAD $DATAGRAMS" ] || { echo "the job's traffic: $(flat "$EXECUTE/3.stdout")"; return 1; }
    ad=$EXECUTE/dir_3/.jobbox/job.ad
    [ -s "$ad" ] || { echo "no $ad; stderr: $(flat "$EXECUTE/3.stderr")"; return 1; }
    traffic_counts "$ad" $((DATAGRAMS * (DATAGRAM_SIZE + 28))) || return 1
    totals="$(traffic_attr "$ad" NetworkOutgoing) $(traffic_attr "$ad" NetworkIncoming)"
    [ "$totals" = "$((outgoing + outgoing_external)) $((incoming + incoming_external))" ] || { echo "the totals: $(flat "$ad")"; return 1; }
}
# ns-exec refused the chroot before the job ran: its one line is the error file, the wrapper exits 125 with no
# figures.
failing_step() {
    [ "$(cat "$EXECUTE/4.status")" = 125 ] || { echo "status $(cat "$EXECUTE/4.status"), not 125"; return 1; }
    line=$(cat "$EXECUTE/dir_4/.job_wrapper_failure" 2>&1)
    [ "$line" = "ns-exec: unknown chroot 'NoSuchChroot': NAMED_CHROOT defines $CHROOT_NAME" ] || { echo "error file: $line"; return 1; }
    [ -z "$(seen 4 uid)" ] || { echo "the job ran"; return 1; }
    [ ! -e "$EXECUTE/dir_4/.jobbox/job.ad" ] || { echo "figures of a job that did not run"; return 1; }
}
# cg-exec --remove took every job's cgroup.
removed() {
    for n in 1 2 3 4; do
        [ ! -e "$BASE/slot1_$n.slice/jobbox/job_7_$n" ] || { echo "$BASE/slot1_$n.slice/jobbox/job_7_$n is still there"; return 1; }
    done
}
no_processes() {
    left=$(grep -l '^Uid:[[:space:]]*1000[[:space:]]' /proc/[0-9]*/status 2>/dev/null)
    [ -z "$left" ] || { echo "processes of the job's user: $(echo "$left" | tr '\n' ' ')"; return 1; }
}
check runs ran 1
check own-cgroup own_cgroup
check cgroup-removed removed
check private-tmp private_tmp
check pid-view pid_view
check figures figures
check memory-limit memory_limit
check named-chroot named_chroot
check network-bytes network_bytes
check failing-step failing_step
check no-processes-left no_processes
