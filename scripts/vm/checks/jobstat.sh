#!/bin/sh
# jobstat on cgroup v2 with real controllers, in the VM of scripts/vm/run-v2-checks.sh: the same checks as the v1
# kernel tests (Tests/JobboxStatsTests/JobstatKernelTests.swift). busybox sh, as root; cgroup2 at
# /sys/fs/cgroup with +memory +cpu +pids +io +cpuset enabled at the root. Prints one line per check:
# "PASS <name>", "FAIL <name>: <reason>" or "SKIP <name>: <reason>".
#
# Each job is <base>/job_<n> with its processes in the leaf main, as cg-exec makes it; memory, cpu, io and pids
# are enabled below the base so the job-level files exist. Everything is removed on exit.

JOBSTAT=${JOBSTAT:-/jobbox/bin/jobstat}
CGROOT=${JOBSTAT_CHECK_CGROUP_ROOT:-/sys/fs/cgroup}
CONTROLLERS=${JOBSTAT_CHECK_CONTROLLERS-+memory +cpu +io +pids}
BASE=jobstatcheck$$
TMP=/tmp/$BASE
CONF=$TMP/jobbox.conf
KIB_100M=102400

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

# The value of attribute $2 in the ad in file $1.
attr() { sed -n "s/^$2 = //p" "$1"; }

jobstat() { "$JOBSTAT" --config "$CONF" --parent / "$@"; }

# Makes job $1 (job_$1 with its leaf main) and prints the leaf's directory.
make_job() {
    mkdir -p "$CGROOT/$BASE/job_$1/main" && echo "$CGROOT/$BASE/job_$1/main"
}

# Kills what is left in job $1 and removes its directories.
remove_job() {
    dir=$CGROOT/$BASE/job_$1
    [ -d "$dir" ] || return 0
    if [ -e "$dir/cgroup.kill" ]; then echo 1 > "$dir/cgroup.kill"; fi
    for f in "$dir"/cgroup.procs "$dir"/*/cgroup.procs; do
        [ -f "$f" ] && while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$f"
    done
    i=0
    while [ $i -lt 50 ] && [ -n "$(cat "$dir"/main/cgroup.procs 2>/dev/null)" ]; do sleep 0.1; i=$((i + 1)); done
    for sub in "$dir"/*/; do [ -d "$sub" ] && rmdir "$sub" 2>/dev/null; done
    rmdir "$dir" 2>/dev/null
}

# shellcheck disable=SC2317 # called by the trap below
cleanup() {
    for n in 1 2 3 4 5 6 7; do remove_job "$n"; done
    rmdir "$CGROOT/$BASE" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Runs the shell command $2 inside job $1 (in its leaf) in the background; prints its pid.
start_in() {
    leaf=$CGROOT/$BASE/job_$1/main
    sh -c "echo \$\$ > $leaf/cgroup.procs && exec sh -c '$2'" > /dev/null 2>&1 &
    echo $!
}

# Runs the shell command $2 inside job $1 and waits; returns its status.
run_in() {
    leaf=$CGROOT/$BASE/job_$1/main
    sh -c "echo \$\$ > $leaf/cgroup.procs && exec sh -c '$2'" > /dev/null 2>&1
}

mkdir -p "$TMP" || { fail jobstat-setup "cannot make $TMP"; exit 0; }
echo "BASE_CGROUP = $BASE" > "$CONF"
if [ ! -x "$JOBSTAT" ]; then fail jobstat-setup "no $JOBSTAT"; exit 0; fi
if ! mkdir "$CGROOT/$BASE" || { [ -n "$CONTROLLERS" ] && ! echo "$CONTROLLERS" > "$CGROOT/$BASE/cgroup.subtree_control"; }; then
    fail jobstat-setup "cannot make $CGROOT/$BASE with memory, cpu, io and pids enabled"
    exit 0
fi

# --- block I/O: 32 MiB written with O_DIRECT shows BlockWriteBytes >= 32 MiB ---
check_block() {
    name=jobstat-block
    if [ ! -b /dev/vda ]; then skip $name "no /dev/vda for dd oflag=direct"; return; fi
    make_job 1 > /dev/null || { fail $name "cannot make job_1"; return; }
    mounted=$(awk '$1 == "/dev/vda" { print $2; exit }' /proc/mounts)
    if [ -n "$mounted" ]; then
        target=$mounted/$BASE.dat
        source=/dev/zero
    else
        # An unmounted disk: write its first 32 MiB back as they are, so nothing on it changes.
        target=/dev/vda
        source=$TMP/vda-head
        dd if=/dev/vda of="$source" bs=1M count=32 2>/dev/null || { fail $name "cannot read /dev/vda"; return; }
    fi
    if ! run_in 1 "dd if=$source of=$target bs=1M count=32 oflag=direct conv=notrunc"; then
        fail $name "dd oflag=direct to $target failed"; rm -f "$mounted/$BASE.dat"; return
    fi
    if [ -n "$mounted" ]; then rm -f "$target"; else rm -f "$source"; fi
    jobstat --job 1 > "$TMP/block.ad" || { fail $name "jobstat exited $?"; return; }
    bytes=$(attr "$TMP/block.ad" BlockWriteBytes)
    if [ -z "$bytes" ]; then fail $name "no BlockWriteBytes"; return; fi
    if [ "$bytes" -ge 33554432 ]; then pass $name; else fail $name "BlockWriteBytes $bytes < 33554432 ($target)"; fi
}

# --- memory: 100 MiB of anonymous memory shows ResidentSetSize within 10 % ---
check_rss() {
    name=jobstat-rss
    make_job 2 > /dev/null || { fail $name "cannot make job_2"; return; }
    # dd fills a 100 MiB buffer from /dev/zero, then blocks writing it into a pipe nobody reads.
    start_in 2 "dd if=/dev/zero bs=100M count=1 | sleep 120" > /dev/null
    rss=0
    i=0
    while [ $i -lt 300 ]; do
        jobstat --job 2 > "$TMP/rss.ad" 2>/dev/null
        rss=$(attr "$TMP/rss.ad" ResidentSetSize)
        [ -n "$rss" ] && [ "$rss" -ge $((KIB_100M * 9 / 10)) ] && break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$rss" ]; then fail $name "no ResidentSetSize"; return; fi
    low=$((KIB_100M * 9 / 10))
    high=$((KIB_100M * 11 / 10))
    if [ "$rss" -ge $low ] && [ "$rss" -le $high ]; then pass $name; else fail $name "ResidentSetSize $rss KiB for 100 MiB"; fi
    remove_job 2
}

# --- page cache: reading 128 MiB through the page cache grows MemoryCacheKb, not ResidentSetSize ---
check_cache() {
    name=jobstat-cache
    if [ ! -b /dev/vda ]; then skip $name "no /dev/vda to read through the page cache"; return; fi
    sectors=$(cat /sys/block/vda/size 2>/dev/null || echo 0)
    if [ "$sectors" -lt $((192 * 2048)) ]; then skip $name "/dev/vda is smaller than 192 MiB"; return; fi
    make_job 3 > /dev/null || { fail $name "cannot make job_3"; return; }
    # The job holds /dev/vda open on fd 3 while it sleeps: the kernel drops an unmounted disk's page cache when
    # its last opener closes it, so without that dd's cache would be gone before jobstat looks.
    start_in 3 "exec 3< /dev/vda && dd if=/dev/vda of=/dev/null bs=1M skip=64 count=128 && : > $TMP/cache-ready && exec sleep 120; : > $TMP/cache-failed" > /dev/null
    i=0
    while [ $i -lt 600 ] && [ ! -e "$TMP/cache-ready" ] && [ ! -e "$TMP/cache-failed" ]; do sleep 0.1; i=$((i + 1)); done
    if [ ! -e "$TMP/cache-ready" ]; then fail $name "reading /dev/vda in the job failed or did not finish"; return; fi
    jobstat --job 3 > "$TMP/cache.ad" || { fail $name "jobstat exited $?"; return; }
    cache=$(attr "$TMP/cache.ad" MemoryCacheKb)
    rss=$(attr "$TMP/cache.ad" ResidentSetSize)
    if [ -z "$cache" ] || [ -z "$rss" ]; then fail $name "no MemoryCacheKb or ResidentSetSize"; return; fi
    if [ "$cache" -lt $((100 * 1024)) ]; then fail $name "MemoryCacheKb $cache after reading 128 MiB"; return; fi
    if [ "$rss" -ge $((16 * 1024)) ]; then fail $name "page cache inflated ResidentSetSize to $rss KiB"; return; fi
    pass $name
    remove_job 3
}

# --- CPU: about 1 s of user time shows RemoteUserCpu near 1.0 ---
check_cpu() {
    name=jobstat-cpu
    make_job 4 > /dev/null || { fail $name "cannot make job_4"; return; }
    # Spins until its own utime (field 14 of /proc/self/stat, in 1/100 s) reaches 100 ticks. The stat file is
    # read with the shell's own read, often: a cat per look would add its own CPU time (large under emulation)
    # to the cgroup's but not to the shell's utime.
    # shellcheck disable=SC2016 # the job's own shell expands it
    run_in 4 'while :; do i=0; while [ $i -lt 2000 ]; do i=$((i + 1)); done; read -r line < /proc/$$/stat; set -- $line; [ ${14} -ge 100 ] && break; done'
    jobstat --job 4 > "$TMP/cpu.ad" || { fail $name "jobstat exited $?"; return; }
    user=$(attr "$TMP/cpu.ad" RemoteUserCpu)
    if [ -z "$user" ]; then fail $name "no RemoteUserCpu"; return; fi
    case $user in *.*) ;; *) fail $name "RemoteUserCpu $user is not a real"; return ;; esac
    if awk -v u="$user" 'BEGIN { exit !(u >= 0.95 && u <= 1.5) }'; then pass $name; else fail $name "RemoteUserCpu $user"; fi
}

# --- OOM: a job over its 32 MiB memory.max is killed, OOMKills = 1 ---
check_oom() {
    name=jobstat-oom
    make_job 5 > /dev/null || { fail $name "cannot make job_5"; return; }
    echo 32M > "$CGROOT/$BASE/job_5/memory.max" || { fail $name "cannot write memory.max"; return; }
    [ -e "$CGROOT/$BASE/job_5/memory.swap.max" ] && echo 0 > "$CGROOT/$BASE/job_5/memory.swap.max"
    run_in 5 "dd if=/dev/zero of=/dev/null bs=100M count=1"
    status=$?
    if [ $status -ne 137 ]; then fail $name "the job exited $status, not 137 (SIGKILL)"; return; fi
    jobstat --job 5 > "$TMP/oom.ad" || { fail $name "jobstat exited $?"; return; }
    kills=$(attr "$TMP/oom.ad" OOMKills)
    if [ "$kills" = 1 ]; then pass $name; else fail $name "OOMKills '$kills'"; fi
}

# --- PSI, --all and a missing job ---
check_rest() {
    { make_job 6 > /dev/null && make_job 7 > /dev/null; } || { fail jobstat-all "cannot make job_6 and job_7"; return; }
    run_in 6 "true"
    jobstat --job 6 > "$TMP/psi.ad"
    if [ -n "$(attr "$TMP/psi.ad" CpuPressureSomeSeconds)" ] && [ -n "$(attr "$TMP/psi.ad" MemoryPressureFullAvg10)" ]; then
        pass jobstat-psi
    else
        fail jobstat-psi "no PSI attributes"
    fi
    count=$(jobstat --all | grep -c '^JobCgroup = "job_[67]"$')
    if [ "$count" = 2 ]; then pass jobstat-all; else fail jobstat-all "$count of job_6, job_7 listed"; fi
    jobstat --job 404 > "$TMP/missing.out" 2> "$TMP/missing.err"
    status=$?
    if [ $status -eq 125 ] && [ ! -s "$TMP/missing.out" ] && [ "$(wc -l < "$TMP/missing.err")" -eq 1 ]; then
        pass jobstat-missing
    else
        fail jobstat-missing "status $status, $(wc -l < "$TMP/missing.err") error lines"
    fi
}

check_block
check_rss
check_cache
check_cpu
check_oom
check_rest
exit 0
