#!/bin/sh
# Known network traffic for the v2 VM checks (scripts/vm/run-v2-checks.sh copies this file to
# /jobbox/lib/traffic.sh; checks/netacct-bpf.sh and checks/htcondor-wrapper.sh source it), and the node service
# (netacct --node) that counts it.
#
# The traffic stays in a network namespace made for it (unshare -n), on addresses put on its loopback device:
# 10.99.0.1, internal (NETWORK_INTERNAL = 10.99.0.0/24), and 192.0.2.1, external; neither is 127/8, which is
# never counted. busybox has no veth (its ip cannot add links) and its nc no UDP, so the internal traffic is one
# TCP download of 1 MiB, from a server outside the job to the job: the job's incoming bytes are the payload plus
# the IP and TCP headers, its outgoing bytes its ACKs. How many segments carry the payload depends on busybox
# nc's write size and on timing (CI saw 1392 segments, 7% headers), so the bounds allow up to a quarter for
# headers: a back end that counts nothing, twice, or in the wrong class still fails. A job with bash may add
# exact external traffic: UDP datagrams to 192.0.2.1 (bash's /dev/udp), each its payload + 8 (UDP) + 20 (IPv4)
# bytes out; nobody listens there, and the ICMP errors coming back are not received as data by any socket, which
# is where the cgroup's ingress programs count, so nothing comes in.

TRAFFIC_LIB=${TRAFFIC_LIB:-/jobbox/lib/traffic.sh}
TRAFFIC_NETACCT=${TRAFFIC_NETACCT:-/jobbox/bin/netacct}
TRAFFIC_PAYLOAD=1048576
TRAFFIC_INTERNAL=10.99.0.1
# shellcheck disable=SC2034 # for the checks that source this file
TRAFFIC_NETWORK_INTERNAL=10.99.0.0/24
TRAFFIC_EXTERNAL=192.0.2.1
TRAFFIC_PORT=7000
# The job's side of the download, to be redirected: it keeps its stdin open (nc ends when the server closes).
# shellcheck disable=SC2034 # for the checks that source this file
TRAFFIC_DOWNLOAD="sleep 3 | nc $TRAFFIC_INTERNAL $TRAFFIC_PORT"

# traffic_prepare DIR: the payload the server sends, DIR/payload.
traffic_prepare() {
    head -c $TRAFFIC_PAYLOAD /dev/zero >"$1/payload"
}

# traffic_namespace DIR COMMAND...: in a fresh network namespace, loopback up with both addresses on it, a server
# on $TRAFFIC_INTERNAL:$TRAFFIC_PORT that sends DIR/payload to the first client, then COMMAND (the job, which
# downloads it). The server runs before COMMAND and outside whatever cgroup COMMAND sets up; it is stopped after
# COMMAND if nobody took the payload. COMMAND's status.
traffic_namespace() {
    # shellcheck disable=SC2016 # the inner shell expands its own arguments
    unshare -n sh -c '. "$0" && traffic_serve "$@"' "$TRAFFIC_LIB" "$@"
}

# In the namespace: see traffic_namespace.
traffic_serve() {
    payload=$1/payload
    shift
    ip link set lo up && ip addr add $TRAFFIC_INTERNAL/32 dev lo && ip addr add $TRAFFIC_EXTERNAL/32 dev lo || return 1
    nc -l -p $TRAFFIC_PORT <"$payload" &
    server=$!
    sleep 0.3
    "$@"
    status=$?
    kill $server 2>/dev/null
    wait $server
    return $status
}

# The value of attribute $2 in the ad in file $1.
traffic_attr() { sed -n "s/^$2 = //p" "$1"; }

# traffic_counts AD EXTERNAL: succeeds when the ad in file AD counts one download of the payload from the internal
# host and, to external hosts, EXTERNAL bytes out and none in; else says why not.
traffic_counts() {
    incoming=$(traffic_attr "$1" NetworkIncomingInternal)
    outgoing=$(traffic_attr "$1" NetworkOutgoingInternal)
    incoming_external=$(traffic_attr "$1" NetworkIncomingExternal)
    outgoing_external=$(traffic_attr "$1" NetworkOutgoingExternal)
    if [ -z "$incoming" ] || [ -z "$outgoing" ] || [ -z "$incoming_external" ] || [ -z "$outgoing_external" ]; then
        echo "no counters in: $(tr '\n' ' ' <"$1")"
    elif [ "$incoming" -lt $((TRAFFIC_PAYLOAD + 52)) ] || [ "$incoming" -gt $((TRAFFIC_PAYLOAD + TRAFFIC_PAYLOAD / 4)) ]; then
        echo "NetworkIncomingInternal $incoming for a $TRAFFIC_PAYLOAD-byte download"
    elif [ "$outgoing" -le 0 ] || [ "$outgoing" -gt $((TRAFFIC_PAYLOAD / 4)) ]; then
        echo "NetworkOutgoingInternal $outgoing (the ACKs of a $TRAFFIC_PAYLOAD-byte download)"
    elif [ "$outgoing_external" -ne "$2" ] || [ "$incoming_external" -ne 0 ]; then
        echo "external counters $outgoing_external out and $incoming_external in, not $2 and 0"
    else
        return 0
    fi
    return 1
}

# traffic_node_start CONF: runs netacct --node with the configuration CONF (which names NETACCT_SOCKET) in the
# background, its pid in TRAFFIC_NODE_PID, its output in CONF.log; fails, with why in TRAFFIC_NODE_FAILURE, when
# its socket is not there within 5 s. (Not in a command substitution: that would wait for the service.)
traffic_node_start() {
    socket=$(sed -n 's/^NETACCT_SOCKET = //p' "$1")
    "$TRAFFIC_NETACCT" --config "$1" --node >"$1.log" 2>&1 &
    TRAFFIC_NODE_PID=$!
    TRAFFIC_NODE_FAILURE=''
    tries=50
    while [ ! -S "$socket" ] && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
    # shellcheck disable=SC2034 # for the checks that source this file
    [ -S "$socket" ] || { TRAFFIC_NODE_FAILURE="no socket $socket after 5 s: $(tr '\n' ' ' <"$1.log")"; return 1; }
}

# traffic_node_stop CONF: stops the service, then detaches its programs and removes its pins.
traffic_node_stop() {
    [ -z "${TRAFFIC_NODE_PID:-}" ] || { kill "$TRAFFIC_NODE_PID" 2>/dev/null && wait "$TRAFFIC_NODE_PID" 2>/dev/null; }
    TRAFFIC_NODE_PID=
    "$TRAFFIC_NETACCT" --config "$1" --cleanup --stale >/dev/null 2>&1
}
