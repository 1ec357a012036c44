#!/bin/sh
# netacct's cgroup BPF back ends on a pure cgroup v2 node, in the VM of scripts/vm/run-v2-checks.sh: the per-job
# back end (--backend bpf) and the node service (--node) count known traffic (scripts/vm/lib/traffic.sh: a 1 MiB
# download from an internal host, in a network namespace of its own, with bounds that fail a back end that counts
# nothing, twice, or in the wrong class). busybox sh, as root; cgroup2 at /sys/fs/cgroup. Prints
# "PASS <name>", "FAIL <name>: <reason>" or "SKIP <name>: <reason>".

# shellcheck source=scripts/vm/lib/traffic.sh
. "${TRAFFIC_LIB:-/jobbox/lib/traffic.sh}"
NETACCT=$TRAFFIC_NETACCT
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
