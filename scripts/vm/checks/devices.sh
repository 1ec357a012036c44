#!/bin/sh
# cg-exec's device fence on cgroup v2: the BPF_PROG_TYPE_CGROUP_DEVICE program on the job's cgroup, checked as
# Tests/JobboxCgroupsTests/CgExecDeviceTests.swift checks the v1 controller on the build machines, inside the VM
# of scripts/vm/run-v2-checks.sh. Device nodes are made in a tmpfs: nvidia0/nvidia1 (195:0, 195:1; no driver,
# so an open the fence lets through fails with ENXIO, one it stops with EPERM), clones of /dev/zero and /dev/full.
# Prints `PASS devices-<check>` or `FAIL devices-<check>: <reason>`.
set -u
CG=/sys/fs/cgroup
DEV=/tmp/jbd-devices
mkdir -p "$DEV"
mount -t tmpfs jbd-devices "$DEV"
mkdir -p "$DEV/dri"
mknod "$DEV/nvidia0" c 195 0
mknod "$DEV/nvidia1" c 195 1
mknod "$DEV/nvidiactl" c 195 255
mknod "$DEV/dri/renderD128" c 226 128
mknod "$DEV/jbd-zero" c 1 5
mknod "$DEV/jbd-full" c 1 7
CONF=/tmp/jbd-devices.conf
printf 'BASE_CGROUP = jbdvm\nCGROUP_PARENT = self\nGPU_DEVICE_DIR = %s\n' "$DEV" >"$CONF"
BASE=$CG/jbdvm

cgexec() { cg-exec --config "$CONF" "$@"; }

run() {
    name=$1
    shift
    if reason=$("$@" 2>&1); then
        echo "PASS devices-$name"
    else
        echo "FAIL devices-$name: $(echo "$reason" | tail -n 4 | tr '\n' ' ')"
    fi
    for job in $(cgexec --list | cut -d' ' -f1); do cgexec --remove --job "${job#job_}" >/dev/null 2>&1; done
}

# The probe the job runs: for each path (w:PATH to open for writing) prints PATH (or w:PATH) and ok, EPERM,
# ENXIO or the error. Only the redirection opens the device; the shell needs no other. The job's shell expands it.
# shellcheck disable=SC2016
PROBE='for arg in "$@"; do f=${arg#w:}
  if [ "$f" = "$arg" ]; then err=$( (exec 3<"$f") 2>&1); else err=$( (exec 3>"$f") 2>&1); fi
  case $err in "") echo "$arg ok" ;; *"Operation not permitted"*) echo "$arg EPERM" ;;
    *"No such device or address"*) echo "$arg ENXIO" ;; *) echo "$arg other: $err" ;; esac
done'

# expect OUTPUT LINE...: every LINE is in OUTPUT.
expect() {
    out=$1
    shift
    for line in "$@"; do
        echo "$out" | grep -qxF "$line" || { echo "no '$line' in: $(echo "$out" | tr '\n' ' ')"; return 1; }
    done
}

check_strict() {
    out=$(cgexec --job strict --device-policy strict --device-allow "$DEV/jbd-zero:r" -- sh -c "$PROBE" sh \
        "$DEV/jbd-zero" "w:$DEV/jbd-zero" "$DEV/jbd-full" /dev/null "$DEV/nvidia0") || { echo "cg-exec: $out"; return 1; }
    expect "$out" "$DEV/jbd-zero ok" "w:$DEV/jbd-zero EPERM" "$DEV/jbd-full EPERM" "/dev/null EPERM" "$DEV/nvidia0 EPERM" || return 1
    cgexec --remove --job strict || return 1
    [ ! -e "$BASE/job_strict" ] || { echo "job_strict still there"; return 1; }
}

check_closed() {
    out=$(cgexec --job closed --device-policy closed --device-allow "$DEV/nvidia1" -- sh -c "$PROBE" sh \
        /dev/null w:/dev/null /dev/urandom "$DEV/nvidia1" "$DEV/nvidia0") || { echo "cg-exec: $out"; return 1; }
    expect "$out" "/dev/null ok" "w:/dev/null ok" "/dev/urandom ok" "$DEV/nvidia1 ENXIO" "$DEV/nvidia0 EPERM"
}

check_gpus_auto() {
    out=$(cgexec --job gpu --gpus CUDA1 -- sh -c "$PROBE" sh \
        "$DEV/nvidia0" "$DEV/nvidia1" "$DEV/nvidiactl" "$DEV/dri/renderD128" "$DEV/jbd-full") || { echo "cg-exec: $out"; return 1; }
    expect "$out" "$DEV/nvidia0 EPERM" "$DEV/nvidia1 ENXIO" "$DEV/nvidiactl ENXIO" "$DEV/dri/renderD128 EPERM" "$DEV/jbd-full ok"
}

# A job's own sub-cgroup (as HTCondor's .scope) stays inside the fence: the program sits on job_<id>.
check_subcgroup() {
    out=$(cgexec --job sub --device-policy strict -- sh -c "mkdir $BASE/job_sub/inner && echo \$\$ >$BASE/job_sub/inner/cgroup.procs && $PROBE" sh \
        "$DEV/jbd-zero") || { echo "cg-exec: $out"; return 1; }
    expect "$out" "$DEV/jbd-zero EPERM"
}

check_bad_input() {
    printf 'BASE_CGROUP = jbdvm\nDEVICE_BACKEND = v1\n' >/tmp/jbd-v1.conf
    out=$(cg-exec --config /tmp/jbd-v1.conf --job bad --device-policy strict -- true 2>&1)
    status=$?
    [ $status -eq 125 ] || { echo "status $status: $out"; return 1; }
    [ "$(echo "$out" | wc -l)" = 1 ] || { echo "not one line: $out"; return 1; }
    case "$out" in *"devices controller"*) ;; *) echo "message: $out"; return 1 ;; esac
    [ ! -e "$BASE/job_bad" ] || { echo "half-made job_bad"; return 1; }
}

run strict check_strict
run closed check_closed
run gpus-auto check_gpus_auto
run sub-cgroup check_subcgroup
run bad-input check_bad_input
rmdir "$BASE" 2>/dev/null
[ ! -e "$BASE" ] || echo "FAIL devices-cleanup: $BASE still has $(cd "$BASE" && echo job_*)"
umount "$DEV" && rmdir "$DEV"
