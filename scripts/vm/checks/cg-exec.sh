#!/bin/sh
# cg-exec on cgroup v2 with real controllers: the checks the v1 kernel tests make on the build machines
# (Tests/JobboxCgroupsTests/CgExecKernelTests.swift), inside the VM of scripts/vm/run-v2-checks.sh.
# Runs as root in the root cgroup; prints `PASS cg-exec-<check>` or `FAIL cg-exec-<check>: <reason>`.
set -u
CG=/sys/fs/cgroup
CONF=/tmp/cg-exec-check.conf
printf 'BASE_CGROUP = jbvm\nCGROUP_PARENT = self\n' >"$CONF"
BASE=$CG/jbvm

# Jobs started with & call cg-exec directly: ash keeps a copy of a function's stdout open in the background
# subshell, which would hold run's command substitution open for as long as the job lives.
cgexec() { cg-exec --config "$CONF" "$@"; }

# run NAME FUNCTION: the function prints its reason and returns non-zero on failure.
run() {
    name=$1
    shift
    if reason=$("$@" 2>&1); then
        echo "PASS cg-exec-$name"
    else
        echo "FAIL cg-exec-$name: $(echo "$reason" | tail -n 4 | tr '\n' ' ')"
        remove_leftovers
    fi
}

# expect_file PATH TEXT: the file's content is exactly TEXT.
expect_file() {
    [ "$(cat "$1" 2>&1)" = "$2" ] || { echo "$1 is '$(cat "$1" 2>&1)', not '$2'"; return 1; }
}

# count_procs DIR: the processes in the cgroup subtree DIR.
count_procs() {
    find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l
}

# is_dead PID: the process is gone or a zombie.
is_dead() {
    [ ! -e "/proc/$1/stat" ] || [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
    tries=$(($1 * 10))
    shift
    while [ $tries -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

check_oom() {
    cgexec --job oom --memory 64M -- dd if=/dev/zero of=/dev/null bs=256M count=1 >/dev/null 2>&1
    status=$?
    [ $status -eq 137 ] || { echo "status $status, not 137"; return 1; }
    expect_file "$BASE/job_oom/memory.max" 67108864 || return 1
    expect_file "$BASE/job_oom/memory.oom.group" 1 || return 1
    kills=$(awk '$1 == "oom_kill" {print $2}' "$BASE/job_oom/memory.events")
    group=$(awk '$1 == "oom_group_kill" {print $2}' "$BASE/job_oom/memory.events")
    { [ "${kills:-0}" -ge 1 ] && [ "${group:-0}" -ge 1 ]; } || { echo "memory.events: $(tr '\n' ' ' <"$BASE/job_oom/memory.events")"; return 1; }
    cgexec --remove --job oom || return 1
    [ ! -e "$BASE/job_oom" ] || { echo "job_oom still there"; return 1; }
}

check_leaf_main() {
    own=$(cgexec --job leaf -- cat /proc/self/cgroup) || { echo "cg-exec failed: $own"; return 1; }
    [ "$own" = "0::/jbvm/job_leaf/main" ] || { echo "the job ran in '$own'"; return 1; }
    for controller in memory cpu io pids; do
        grep -qw "$controller" "$CG/cgroup.subtree_control" "$BASE/cgroup.subtree_control" || { echo "$controller not enabled"; return 1; }
        grep -qw "$controller" "$BASE/job_leaf/cgroup.subtree_control" || { echo "$controller not enabled below the job"; return 1; }
    done
    [ -e "$BASE/job_leaf/main/memory.current" ] || { echo "main has no memory files"; return 1; }
    cgexec --remove --job leaf
}

check_limits() {
    cgexec --job lim --memory 100M --memory-soft 16M --memory-high 48M --swap 0 --cpus 2 --cpu-quota 1.5 \
        --cpuset 1 --mems 0 --pids-max 77 --io-weight 300 -- true || { echo "cg-exec failed"; return 1; }
    job=$BASE/job_lim
    expect_file "$job/memory.max" 104857600 || return 1
    expect_file "$job/memory.low" 16777216 || return 1
    expect_file "$job/memory.high" 50331648 || return 1
    expect_file "$job/memory.swap.max" 0 || return 1
    expect_file "$job/memory.oom.group" 1 || return 1
    expect_file "$job/cpu.weight" 200 || return 1
    expect_file "$job/cpu.max" "150000 100000" || return 1
    expect_file "$job/cpuset.cpus" 1 || return 1
    expect_file "$job/cpuset.mems" 0 || return 1
    expect_file "$job/pids.max" 77 || return 1
    if [ -e "$job/io.weight" ]; then
        expect_file "$job/io.weight" "default 300" || return 1
    else
        expect_file "$job/io.bfq.weight" "300" || return 1
    fi
    cgexec --remove --job lim
}

check_cpu_conversions() {
    cgexec --job shares --cpu-shares 2048 -- true || return 1
    expect_file "$BASE/job_shares/cpu.weight" 200 || return 1
    cgexec --job many --cpus 200 -- true || return 1
    expect_file "$BASE/job_many/cpu.weight" 10000 || return 1
    cgexec --remove --job shares && cgexec --remove --job many
}

check_remove_sleepers() {
    # shellcheck disable=SC2016 # the job's own shell expands it
    cgexec --job s50 -- sh -c 'for i in $(seq 50); do sleep 1000 </dev/null >/dev/null 2>&1 & done' || { echo "cg-exec failed"; return 1; }
    pids=$(find "$BASE/job_s50" -name cgroup.procs -exec cat {} +)
    [ "$(echo "$pids" | wc -l)" -eq 50 ] || { echo "$(echo "$pids" | wc -l) processes, not 50"; return 1; }
    [ "$(cgexec --list)" = "job_s50 50" ] || { echo "--list: $(cgexec --list)"; return 1; }
    [ -e "$BASE/job_s50/cgroup.kill" ] || { echo "no cgroup.kill in this kernel"; return 1; }
    cgexec --remove --job s50 || return 1
    [ ! -e "$BASE/job_s50" ] || { echo "job_s50 still there"; return 1; }
    for pid in $pids; do is_dead "$pid" || { echo "pid $pid survived"; return 1; }; done
    [ -z "$(cgexec --list)" ] || { echo "--list after removal: $(cgexec --list)"; return 1; }
}

check_remove_forking() {
    cg-exec --config "$CONF" --job fork --pids-max 200 -- sh -c 'while :; do sleep 1000 </dev/null >/dev/null 2>&1 & done' </dev/null >/dev/null 2>&1 &
    job=$!
    wait_for 30 sh -c "[ \$(find $BASE/job_fork -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l) -ge 20 ]" || { echo "the job did not fork"; return 1; }
    mkdir "$BASE/job_fork/payload" || return 1
    cgexec --remove --job fork || return 1
    wait $job
    status=$?
    [ $status -eq 137 ] || { echo "the job's shell ended with $status, not 137"; return 1; }
    [ ! -e "$BASE/job_fork" ] || { echo "job_fork still there"; return 1; }
}

check_parallel() {
    cg-exec --config "$CONF" --job p1 --memory 100M --pids-max 10 -- sleep 1000 </dev/null >/dev/null 2>&1 &
    first=$!
    cg-exec --config "$CONF" --job p2 --memory 200M --pids-max 20 -- sleep 1000 </dev/null >/dev/null 2>&1 &
    second=$!
    wait_for 30 sh -c "grep -q . $BASE/job_p1/main/cgroup.procs && grep -q . $BASE/job_p2/main/cgroup.procs" 2>/dev/null || { echo "the jobs did not start"; return 1; }
    expect_file "$BASE/job_p1/main/cgroup.procs" "$first" || return 1
    expect_file "$BASE/job_p2/main/cgroup.procs" "$second" || return 1
    expect_file "$BASE/job_p1/memory.max" 104857600 || return 1
    expect_file "$BASE/job_p2/memory.max" 209715200 || return 1
    expect_file "$BASE/job_p2/pids.max" 20 || return 1
    cgexec --remove --job p1 || return 1
    wait $first
    kill -0 "$second" || { echo "the second job died with the first"; return 1; }
    expect_file "$BASE/job_p2/main/cgroup.procs" "$second" || return 1
    cgexec --remove --job p2 || return 1
    wait $second
    { [ ! -e "$BASE/job_p1" ] && [ ! -e "$BASE/job_p2" ]; } || { echo "a job cgroup is still there"; return 1; }
}

# bad_input BASE MESSAGE ARGS...: status 125, the message, and no cgroup made under a fresh base.
bad_input() {
    base=$1
    message=$2
    shift 2
    out=$(cg-exec --config "$CONF" --base "$base" "$@" -- touch /tmp/ran 2>&1)
    status=$?
    [ $status -eq 125 ] || { echo "$*: status $status"; return 1; }
    case "$out" in "cg-exec: $message"*) ;; *) echo "$*: said '$out'"; return 1 ;; esac
    [ ! -e "$CG/$base" ] || { echo "$*: left $CG/$base"; return 1; }
    [ ! -e /tmp/ran ] || { echo "$*: ran the command"; return 1; }
}

check_bad_input() {
    bad_input jbbad "invalid job id 'a/b'" --job a/b || return 1
    bad_input jbbad "unknown controller 'bogus'" --job x --controllers memory,bogus || return 1
    bad_input jbbad "invalid size for --memory: '12Q'" --job x --memory 12Q || return 1
    bad_input jbbad "invalid list for --cpuset: '3-1'" --job x --cpuset 3-1 || return 1
    bad_input ../x "invalid --base '../x'" --job x || return 1
    bad_input jbbad "invalid value for --pids-max: 'lots'" --job x --pids-max lots || return 1
}

check_half_made() {
    bad_input jbhalf "cannot write '7' to $CG/jbhalf/job_x/cpuset.cpus" --job x --memory 64M --cpuset 7 || return 1
}

check_exec_failure() {
    cgexec --job nx -- /nonexistent/command 2>/dev/null
    [ $? -eq 127 ] || { echo "missing command: not 127"; return 1; }
    cgexec --job nx -- "$CONF" 2>/dev/null
    [ $? -eq 126 ] || { echo "not executable: not 126"; return 1; }
    [ ! -e "$BASE/job_nx" ] || { echo "job_nx left behind"; return 1; }
}

# HTCondor's delegation: the user owns a cgroup (its cgroup.procs and cgroup.subtree_control) and runs in a
# leaf below it; cg-exec, unprivileged, makes the job's cgroup below the delegated one.
check_delegated() {
    deleg=$CG/deleg
    mkdir -p "$deleg/shell" || return 1
    echo "+memory +pids +cpu +io" >"$deleg/cgroup.subtree_control" || return 1
    chown 1000:1000 "$deleg" "$deleg/cgroup.procs" "$deleg/cgroup.subtree_control" "$deleg/shell" "$deleg/shell/cgroup.procs" \
        "$deleg/shell/cgroup.subtree_control" || return 1
    printf 'BASE_CGROUP = jbuser\n' >/tmp/user.conf
    # as_user ARGS: cg-exec as uid 1000 (user "job"), started from the delegated leaf.
    as_user() { sh -c "echo \$\$ >$deleg/shell/cgroup.procs && exec su -m -s /bin/sh job -c 'exec cg-exec --config /tmp/user.conf $*'"; }
    own=$(as_user --parent /deleg --job u1 --memory 32M --pids-max 40 -- cat /proc/self/cgroup) || { echo "as uid 1000: $own"; return 1; }
    [ "$own" = "0::/deleg/jbuser/job_u1/main" ] || { echo "the job ran in '$own'"; return 1; }
    expect_file "$deleg/jbuser/job_u1/memory.max" 33554432 || return 1
    expect_file "$deleg/jbuser/job_u1/pids.max" 40 || return 1
    [ "$(stat -c %u "$deleg/jbuser/job_u1")" = 1000 ] || { echo "job_u1 is not the user's"; return 1; }
    out=$(as_user --parent / --job u2 -- true 2>&1)
    case "$out" in *"cannot create cgroup $CG/jbuser: Permission denied (uid 1000 may not create cgroups in $CG: it is not delegated"*) ;;
        *) echo "outside the delegation: '$out'"; return 1 ;; esac
    out=$(as_user --parent self --job u3 --memory 32M -- true 2>&1)
    case "$out" in *"cannot write '+memory' to $deleg/shell/cgroup.subtree_control: Device or resource busy (the cgroup has processes of its own"*) ;;
        *) echo "below its own busy cgroup: '$out'"; return 1 ;; esac
    [ ! -e "$deleg/shell/jbuser" ] || { echo "half-made: $deleg/shell/jbuser"; return 1; }
    out=$(su -m -s /bin/sh job -c 'cg-exec --config /tmp/user.conf --parent /deleg --remove --job u1' 2>&1) || { echo "remove as the user: $out"; return 1; }
    [ ! -e "$deleg/jbuser/job_u1" ] || { echo "job_u1 still there"; return 1; }
    rmdir "$deleg/jbuser" "$deleg/shell" "$deleg"
}

# Whatever a failed check left running goes, so that the next check and the VM's shutdown are not held up.
remove_leftovers() {
    for job in $(cgexec --list | cut -d' ' -f1); do cgexec --remove --job "${job#job_}" >/dev/null 2>&1; done
}

run oom check_oom
run leaf-main check_leaf_main
run limits check_limits
run cpu-conversions check_cpu_conversions
run remove-50-sleepers check_remove_sleepers
run remove-forking-job check_remove_forking
run parallel-jobs check_parallel
run bad-input check_bad_input
run half-made check_half_made
run exec-failure check_exec_failure
run delegated-unprivileged check_delegated
rmdir "$BASE" 2>/dev/null
[ ! -e "$BASE" ] || echo "FAIL cg-exec-cleanup: $BASE still has $(cd "$BASE" && echo job_*)"
