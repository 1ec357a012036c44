#!/bin/sh
# ns-exec --attach on cgroup v2 (Tests/JobboxNamespacesTests/NsExecAttachTests.swift runs the same on the build
# machines' v1 hierarchies), inside the VM of scripts/vm/run-v2-checks.sh: an attached command joins the job's
# v2 cgroup leaf, sees its private /tmp, and dies with the job. Prints `PASS attach-<check>` or `FAIL ...`.
set -u
CONF=/tmp/jbd-attach.conf
mkdir -p /jbd-state /tmp/jbd-scratch
chmod 755 /jbd-state
printf 'BASE_CGROUP = jbdattach\nCGROUP_PARENT = self\nSTATE_DIR = /jbd-state\n' >"$CONF"

run() {
    name=$1
    shift
    if reason=$("$@" 2>&1); then echo "PASS attach-$name"; else echo "FAIL attach-$name: $(echo "$reason" | tail -n 4 | tr '\n' ' ')"; fi
    cg-exec --config "$CONF" --remove --job a1 >/dev/null 2>&1
}

# start_job: the job, in the background, and its record once it is there.
start_job() {
    # cg-exec --remove of the previous job killed its ns-exec too, which left its record (a stale one is never
    # believed: its init's start time no longer matches).
    rm -f /jbd-state/ns-exec/job_a1
    cg-exec --config "$CONF" --job a1 -- ns-exec --config "$CONF" --job a1 --pid --scratch /tmp/jbd-scratch -- \
        sh -c 'echo made-by-the-job >/tmp/marker; exec sleep 600' >/dev/null 2>&1 &
    tries=50
    while [ ! -e /jbd-state/ns-exec/job_a1 ] && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
    [ -e /jbd-state/ns-exec/job_a1 ] || { echo "no record"; return 1; }
}

check_sees_the_job() {
    start_job || return 1
    out=$(ns-exec --config "$CONF" --attach a1 -- sh -c 'cat /tmp/marker; cat /proc/self/cgroup; ls /proc | grep -c "^[0-9]"') ||
        { echo "attach: $out"; return 1; }
    echo "$out" | grep -qx made-by-the-job || { echo "no private /tmp: $out"; return 1; }
    echo "$out" | grep -qx '0::/jbdattach/job_a1/main' || { echo "not in the job's cgroup: $out"; return 1; }
    [ "$(echo "$out" | tail -n 1)" -lt 8 ] || { echo "sees more than the job's processes: $out"; return 1; }
}

check_dies_with_the_job() {
    start_job || return 1
    ns-exec --config "$CONF" --attach a1 -- sleep 700 &
    attached=$!
    sleep 0.5
    init=$(sed -n 's/^pid //p' /jbd-state/ns-exec/job_a1)
    kill -KILL "$init"
    wait "$attached"
    status=$?
    [ $status -eq 137 ] || { echo "the attached command ended with $status, not 137"; return 1; }
}

check_unknown() {
    out=$(ns-exec --config "$CONF" --attach nope -- true 2>&1)
    status=$?
    if [ $status -ne 125 ] || [ "$(echo "$out" | wc -l)" != 1 ]; then echo "status $status: $out"; return 1; fi
}

run sees-the-job check_sees_the_job
run dies-with-the-job check_dies_with_the_job
run unknown-job check_unknown
rmdir /sys/fs/cgroup/jbdattach 2>/dev/null
rm -rf /jbd-state /tmp/jbd-scratch
