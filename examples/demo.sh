#!/usr/bin/env bash
# make demo: a sample job through the whole jobbox chain, then its ClassAd.
#
#   cg-exec (cgroup with limits) -> netacct (veth, accounting chain, NAT)
#     -> ns-exec (PID + mount namespaces, private /tmp from the scratch dir) -> the job
#
# The order is the README's: netacct runs before ns-exec replaces /tmp, so the tools may live anywhere (a clone
# under /tmp too); ns-exec, last, is the job's own view.
#
# The network part runs in a small topology of namespaces made here: a "node" namespace standing for the worker
# node, a "campus" host on an internal network and an "internet" host on an external one. The chain runs with
# the node's network namespace (nsenter --net), so the host's own links and firewall are never touched.
# Cgroups go below this shell's own cgroups (CGROUP_PARENT = self). Everything is removed at the end, also on
# failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it makes cgroups, namespaces and firewall rules)" >&2; exit 1; }

# The tools: $JOBBOX_BIN, else this checkout's debug build (make demo), else the installed ones on PATH.
if [ -n "${JOBBOX_BIN:-}" ]; then BIN=$JOBBOX_BIN
elif [ -x "$PWD/.build/debug/cg-exec" ]; then BIN=$PWD/.build/debug
else BIN=$(dirname "$(command -v cg-exec || echo /usr/local/bin/cg-exec)")
fi
TAG=${JOBBOX_DEMO_TAG:-jbdemo$$}   # names the demo's cgroups, namespaces and links
WORK=/run/$TAG                       # not under /tmp or /var/tmp: ns-exec replaces those inside the job
NODE=${TAG}n CAMPUS=${TAG}c NET=${TAG}i
JOB=demo.$$
PY=/usr/bin/python3
SERVERS=()

cleanup() {
    set +e
    [ ${#SERVERS[@]} -gt 0 ] && kill "${SERVERS[@]}" 2>/dev/null
    "$BIN/cg-exec" --remove --job "$JOB" >/dev/null 2>&1
    # cg-exec leaves the base cgroup (an admin may have put limits on it); this one is the demo's own.
    find /sys/fs/cgroup -depth -type d -name "$TAG" -exec rmdir {} + 2>/dev/null
    for ns in "$NODE" "$CAMPUS" "$NET"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/scratch" "$WORK/state"
chmod 755 "$WORK"
cat > "$WORK/jobbox.conf" <<CONF
BASE_CGROUP = $TAG
CGROUP_PARENT = self
STATE_DIR = $WORK/state
NETWORK_INTERNAL = 10.77.0.0/16
NETWORK_JOB_SUBNET = 10.213.0.0/24
CONF
export JOBBOX_CONFIG=$WORK/jobbox.conf

# --- the topology: node <-> campus (10.77.0.0/24, internal), node <-> internet (198.51.100.0/24, external)
for ns in "$NODE" "$CAMPUS" "$NET"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "${TAG}c0" netns "$NODE" type veth peer name eth0 netns "$CAMPUS"
ip link add "${TAG}i0" netns "$NODE" type veth peer name eth0 netns "$NET"
ip -n "$NODE" addr add 10.77.0.1/24 dev "${TAG}c0"
ip -n "$NODE" addr add 198.51.100.1/24 dev "${TAG}i0"
ip -n "$CAMPUS" addr add 10.77.0.2/24 dev eth0
ip -n "$NET" addr add 198.51.100.2/24 dev eth0
ip -n "$NODE" link set "${TAG}c0" up
ip -n "$NODE" link set "${TAG}i0" up
ip -n "$CAMPUS" link set eth0 up
ip -n "$NET" link set eth0 up
ip -n "$CAMPUS" route add default via 10.77.0.1
ip -n "$NET" route add default via 198.51.100.1
# A UDP echo server on each host.
ECHO='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",7))
while True:
    d,a=s.recvfrom(65535); s.sendto(d,a)'
ip netns exec "$CAMPUS" "$PY" -c "$ECHO" & SERVERS+=("$!")
ip netns exec "$NET" "$PY" -c "$ECHO" & SERVERS+=("$!")
sleep 0.3

# --- the job: memory, CPU, direct I/O to its scratch dir, /tmp, and UDP to both hosts
cat > "$WORK/job.sh" <<'JOB'
#!/bin/sh
echo "job: pid $$ in its own PID namespace; ps sees $(ps -e --no-headers | wc -l) processes"
echo "scratch data" > /tmp/from-the-job.txt
dd if=/dev/zero of="$SCRATCH/io.bin" bs=1M count=16 oflag=direct status=none
perl -e '$x = "x" x (64 * 1024 * 1024); $t = times; while ((times)[0] < 0.5) {} print "job: touched 64 MiB, burned 0.5 s of CPU\n"'
/usr/bin/python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
for host, count in (("10.77.0.2", 10), ("198.51.100.2", 4)):
    for _ in range(count):
        s.sendto(b"x" * 972, (host, 7)); s.recvfrom(2048)
print("job: 10 datagrams to campus, 4 to the internet, each echoed (1000 bytes per IP packet)")
PY
JOB
chmod 755 "$WORK/job.sh"

echo "== running a job through cg-exec -> netacct -> ns-exec"
SCRATCH=$WORK/scratch nsenter --net=/run/netns/"$NODE" \
  "$BIN/cg-exec" --job "$JOB" --memory 512M --cpus 1 --pids-max 200 -- \
  "$BIN/netacct" --job "$JOB" --backend nftables --ad-file "$WORK/network.ad" -- \
  "$BIN/ns-exec" --pid --mount --scratch "$WORK/scratch" --mount-under-scratch /tmp,/var/tmp -- \
  "$WORK/job.sh"
status=$?

echo
echo "== the job's ClassAd (jobstat + netacct)"
"$BIN/jobstat" --job "$JOB"
cat "$WORK/network.ad"
echo "ExitCode = $status"

echo
echo "== what each tool did"
echo "cg-exec:  made job_${JOB//./_} below this shell's cgroups (memory.limit 512M, 1 CPU of shares, pids.max 200), moved the job in"
echo "ns-exec:  PID and mount namespaces; /tmp and /var/tmp of the job were $WORK/scratch/tmp and var/tmp: $(ls "$WORK/scratch/tmp")"
echo "netacct:  a veth pair and nftables counters for the job, counted by remote network, removed after the job"
echo "jobstat:  read the figures above from the job's cgroups"
"$BIN/cg-exec" --remove --job "$JOB"
echo "cg-exec --remove: killed what was left and removed the job's cgroups"
cleanup
trap - EXIT
echo "left behind: $(find /sys/fs/cgroup -name "$TAG" | wc -l) cgroups, $(ip netns list | grep -c "$TAG" || true) namespaces, $(ip -o link | grep -c "$TAG" || true) links, $([ -e "$WORK" ] && echo 1 || echo 0) work directories"
