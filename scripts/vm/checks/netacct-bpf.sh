#!/bin/sh
# netacct's cgroup BPF back ends on a pure cgroup v2 node, in the VM of scripts/vm/run-v2-checks.sh: the per-job
# back end (--backend bpf) and the node service (--node) count known traffic (scripts/vm/lib/traffic.sh: a 1 MiB
# download from an internal host, in a network namespace of its own, with bounds that fail a back end that counts
# nothing, twice, or in the wrong class), and the service moves a Slurm job script into the cgroup a prolog
# delegated to its user (cg-exec --delegate-to, --join), which the kernel does not let the user do. busybox sh, as
# root; cgroup2 at /sys/fs/cgroup. Prints "PASS <name>", "FAIL <name>: <reason>" or "SKIP <name>: <reason>".

# shellcheck source=scripts/vm/lib/traffic.sh
. "${TRAFFIC_LIB:-/jobbox/lib/traffic.sh}"
NETACCT=$TRAFFIC_NETACCT
CG_EXEC=${CG_EXEC:-/jobbox/bin/cg-exec}
JOBSTAT=${JOBSTAT:-/jobbox/bin/jobstat}
CGROOT=${NETACCT_CHECK_CGROUP_ROOT:-/sys/fs/cgroup}
NAME=jbnvm$$
STATE=/run/$NAME
CONF=$STATE/jobbox.conf

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

# check_counts NAME AD: the ad holds one download from an internal host, nothing external.
check_counts() {
    if reason=$(traffic_counts "$2" 0); then pass "$1"; else fail "$1" "$reason"; fi
}

# shellcheck disable=SC2317 # called by the trap below
cleanup() {
    traffic_node_stop "$CONF"
    "$CG_EXEC" --config "$CONF" --remove --job 9 >/dev/null 2>&1
    for dir in "$CGROOT/$NAME/job" "$CGROOT/$NAME"; do
        [ -d "$dir" ] && { echo 1 >"$dir/cgroup.kill"; sleep 0.1; rmdir "$dir"; }
    done
    rm -rf "$STATE"
}
trap cleanup EXIT

mkdir -p "$STATE"
chmod 0755 "$STATE"
traffic_prepare "$STATE"
cat >"$CONF" <<CONF
STATE_DIR = $STATE/state
NETWORK_INTERNAL = $TRAFFIC_NETWORK_INTERNAL
NETWORK_ACCOUNTING_CGROUP = /$NAME
NETACCT_PIN_DIR = /sys/fs/bpf/$NAME
NETACCT_SOCKET = $STATE/run/netacct.sock
BASE_CGROUP = $NAME
CONF

if ! unshare -n true 2>/dev/null; then
    skip netacct-bpf-job "busybox unshare -n fails: no network namespace for the traffic"
    skip netacct-bpf-node "busybox unshare -n fails: no network namespace for the traffic"
    exit 0
fi
download="$TRAFFIC_DOWNLOAD >$STATE/received"

# 1. netacct --backend bpf: the job in a cgroup of its own below netacct's.
traffic_namespace "$STATE" "$NETACCT" --config "$CONF" --job vmbpf --backend bpf --ad-file "$STATE/job.ad" -- sh -c "$download"
status=$?
if [ $status -ne 0 ]; then
    fail netacct-bpf-job "netacct exited $status"
elif [ "$(wc -c <"$STATE/received")" -ne $TRAFFIC_PAYLOAD ]; then
    fail netacct-bpf-job "the job received $(wc -c <"$STATE/received") bytes, not $TRAFFIC_PAYLOAD"
else
    check_counts netacct-bpf-job "$STATE/job.ad"
fi

# 2. netacct --node: the service counts $NAME; the job is a shell moved into $NAME/job.
mkdir -p "$CGROOT/$NAME/job"
if ! traffic_node_start "$CONF"; then
    fail netacct-bpf-node "$TRAFFIC_NODE_FAILURE"
    exit 0
fi
rm -f "$STATE/received"
traffic_namespace "$STATE" sh -c "echo \$\$ >$CGROOT/$NAME/job/cgroup.procs && $download"
"$NETACCT" --config "$CONF" --show --cgroup "/$NAME/job" >"$STATE/node.ad" 2>&1
if [ "$(wc -c <"$STATE/received" 2>/dev/null)" != $TRAFFIC_PAYLOAD ]; then
    fail netacct-bpf-node "the job received $(wc -c <"$STATE/received" 2>/dev/null) bytes, not $TRAFFIC_PAYLOAD"
else
    check_counts netacct-bpf-node "$STATE/node.ad"
fi
# The service answers on its socket: a user's process in the job's cgroup asks for itself (root would read the
# pinned map instead). The VM has no users: one is added to its /etc/passwd (the initramfs, thrown away after).
grep -q '^jbnvm:' /etc/passwd || echo 'jbnvm:x:4242:4242:jobbox check:/:/bin/sh' >>/etc/passwd
sh -c "echo \$\$ >$CGROOT/$NAME/job/cgroup.procs && exec su -s /bin/sh -c '$NETACCT --config $CONF --show --self' jbnvm" >"$STATE/self.ad" 2>&1
incoming=$(traffic_attr "$STATE/node.ad" NetworkIncomingInternal)
if [ "$(traffic_attr "$STATE/self.ad" JobboxNetworkCgroup)" = "\"/$NAME/job\"" ] && [ -n "$incoming" ] &&
    [ "$(traffic_attr "$STATE/self.ad" NetworkIncomingInternal)" = "$incoming" ]; then
    pass netacct-bpf-node-socket
else
    fail netacct-bpf-node-socket "$(tr '\n' ' ' <"$STATE/self.ad")"
fi

# 3. A Slurm prolog and job script on a v2 node: root delegates job 9's cgroup (64 MiB) to user jbnvm; the user's
# cg-exec --join cannot move itself there (the kernel wants write access to the common ancestor) and asks the
# service, which moves it; its traffic is then counted by the job's cgroup, which jbnvm reads with jobstat --job.
# Another user is refused by the service, and without the service the join fails (the limits would be missed).
grep -q '^jbnvx:' /etc/passwd || echo 'jbnvx:x:4243:4243:jobbox check:/:/bin/sh' >>/etc/passwd
as_user() {
    user=$1
    shift
    su -s /bin/sh -c "$*" "$user"
}
if ! "$CG_EXEC" --config "$CONF" --job 9 --memory 64M --delegate-to jbnvm; then
    fail netacct-bpf-delegation "cg-exec --delegate-to failed"
    exit 0
fi
JOB=$CGROOT/$NAME/job_9
if [ "$(stat -c %u "$JOB/main/cgroup.procs")" = 4242 ] && [ "$(stat -c %u "$JOB")" = 0 ] && [ "$(cat "$JOB/memory.max")" = 67108864 ]; then
    pass netacct-bpf-delegation-made
else
    fail netacct-bpf-delegation-made "owners $(stat -c '%u %n' "$JOB" "$JOB/main/cgroup.procs" | tr '\n' ' '), memory.max $(cat "$JOB/memory.max")"
fi
# The user's job writes in a directory of its own.
mkdir "$STATE/user" && chown 4242 "$STATE/user"
join="$CG_EXEC --config $CONF --job 9 --join -- sh -c 'sed -n s/^0:://p /proc/self/cgroup >$STATE/user/joined; $TRAFFIC_DOWNLOAD >$STATE/user/received'"
traffic_namespace "$STATE" su -s /bin/sh -c "$join" jbnvm 2>"$STATE/join.err"
joined=$(cat "$STATE/user/joined" 2>/dev/null)
if [ "$joined" = "/$NAME/job_9/main" ] && [ ! -s "$STATE/join.err" ]; then
    pass netacct-bpf-delegation-join
else
    fail netacct-bpf-delegation-join "the job script ran in '$joined': $(tr '\n' ' ' <"$STATE/join.err")"
fi
as_user jbnvm "$JOBSTAT --config $CONF --job 9" >"$STATE/job9.ad" 2>&1
check_counts netacct-bpf-delegation-network "$STATE/job9.ad"
out=$(as_user jbnvx "$CG_EXEC --config $CONF --job 9 --join -- true" 2>&1)
status=$?
case "$status:$out" in
125:*"is not a cgroup delegated to uid 4243"*) pass netacct-bpf-delegation-other-user ;;
*) fail netacct-bpf-delegation-other-user "status $status: $out" ;;
esac
traffic_node_stop "$CONF"
out=$(as_user jbnvm "$CG_EXEC --config $CONF --job 9 --join -- true" 2>&1)
status=$?
case "$status:$out" in
125:"cg-exec: cannot join $JOB/main: Permission denied; the node service did not move this process either ("*"is netacct --node running?)") pass netacct-bpf-delegation-no-service ;;
*) fail netacct-bpf-delegation-no-service "status $status: $out" ;;
esac
"$CG_EXEC" --config "$CONF" --remove --job 9
if [ ! -d "$JOB" ]; then pass netacct-bpf-delegation-removed; else fail netacct-bpf-delegation-removed "$JOB is left"; fi
