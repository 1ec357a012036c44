#!/bin/bash
# htcondor-contract.sh: does what HTCondor's starter does around a USER_JOB_WRAPPER, so a wrapper can be run and
# checked without HTCondor (which cannot run here). Facts from the starter's code, in the project's
# reference/htcondor.md section 1:
#   - an execute dir dir_<pid>/ with the job's scratch dir scratch/ (owned by the job's user, 0700) holding
#     .job.ad and .machine.ad in long form, and .chirp.config when the job has an I/O proxy;
#   - the job in its own cgroup before exec (v1: <BASE>/<uniq> in memory, cpu, cpuacct, freezer, chowned to the
#     user; v2: <BASE>/<uniq>.slice/<uniq>.scope with the slice delegated to the user);
#   - the wrapper run in the scratch dir as the job's user (or as root with --wrapper-as-root) with only the
#     starter's environment, stdin from /dev/null, stdout/stderr to _condor_stdout/_condor_stderr, and
#     argv = [wrapper, /abs/job, args...] after an access(X_OK) check of the wrapper;
#   - afterwards: the error file $_CONDOR_WRAPPER_ERROR_FILE, when present, requeues the job with its text
#     (newlines as |); everything left in the job's cgroup is killed and the cgroup removed.
#
# usage: htcondor-contract.sh --execute DIR --user NAME [options] -- JOB [ARG...]
#   --wrapper PATH           the USER_JOB_WRAPPER (default: examples/htcondor/jobbox-wrapper.sh here)
#   --execute DIR            the EXECUTE directory (dir_<pid>/ is made in it and left for the caller)
#   --user NAME              the job's Owner
#   --wrapper-as-root        run the wrapper as root instead of as the job's user
#   --cluster N --proc N     ClusterId, ProcId (default 1.0)
#   --request-memory MIB     RequestMemory (default 128; also the slot's Memory)
#   --request-cpus N         RequestCpus (default 1; also the slot's Cpus)
#   --job-attr 'Name = v'    an extra job ad line (repeatable; replaces one of the defaults of that name)
#   --omit-job-attr Name     leave a default attribute out of the job ad (repeatable)
#   --chirp-config FILE      the job has an I/O proxy: FILE is copied to scratch/.chirp.config, WantIOProxy = true
#   --cgroup NAME            put the job in a cgroup NAME/<uniq> below this script's own cgroup, as the starter
#                            does below BASE_CGROUP (without it the job stays in this script's cgroups)
#   --env NAME=VALUE         an extra variable of the job's environment (repeatable; as `environment =`)
#   --transfer-executable    copy JOB into the scratch dir as condor_exec.exe, as transfer_executable does
#   --starter-dir NAME       the starter's directory in EXECUTE (default dir_<pid>; a chroot needs its path known)
#   --join-cgroup DIR        also put the wrapper in the cgroup directory DIR (repeatable): a cgroup of the job's
#                            own that --cgroup does not make (a v2 one on a hybrid node, for per-cgroup accounting)
#   --netns NAME             run the wrapper in network namespace NAME (/run/netns/NAME), as the node's network
# Prints on stdout, once the wrapper has exited:
#   scratch=<the scratch dir>      status=<the wrapper's exit status>      requeue=<reason>   (only if requeued)
# Exits 0 when it could run the wrapper, 2 when it could not (a line on stderr says why).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
wrapper=$here/../../examples/htcondor/jobbox-wrapper.sh
execute='' user='' as_root=0 cluster=1 proc=0 memory=128 cpus=1 chirp_config='' cgroup_base='' transfer=0
extra_attrs=() omit_attrs=() extra_env=() join=() starter_name=dir_$$ extra_join=() netns=()

die() { echo "htcondor-contract: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --wrapper) wrapper=$2; shift 2 ;;
        --execute) execute=$2; shift 2 ;;
        --user) user=$2; shift 2 ;;
        --wrapper-as-root) as_root=1; shift ;;
        --cluster) cluster=$2; shift 2 ;;
        --proc) proc=$2; shift 2 ;;
        --request-memory) memory=$2; shift 2 ;;
        --request-cpus) cpus=$2; shift 2 ;;
        --job-attr) extra_attrs+=("$2"); shift 2 ;;
        --omit-job-attr) omit_attrs+=("$2"); shift 2 ;;
        --chirp-config) chirp_config=$2; shift 2 ;;
        --cgroup) cgroup_base=$2; shift 2 ;;
        --env) extra_env+=("$2"); shift 2 ;;
        --transfer-executable) transfer=1; shift ;;
        --starter-dir) starter_name=$2; shift 2 ;;
        --join-cgroup) extra_join+=("$2"); shift 2 ;;
        --netns) netns=(nsenter "--net=/run/netns/$2"); shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (see the comment at the top of $0)" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "must run as root, as the starter does"
if [ -z "$execute" ] || [ ! -d "$execute" ]; then die "--execute DIR: an existing directory is needed"; fi
[ -n "$user" ] || die "--user NAME is needed"
[ $# -ge 1 ] || die "no job given after --"
uid=$(id -u "$user") || die "no user $user"
gid=$(id -g "$user")
job=$1
shift
case $job in /*) ;; *) job=$(cd "$(dirname "$job")" && pwd)/$(basename "$job") ;; esac

# The starter refuses a wrapper it cannot execute (os_proc.cpp: access(X_OK)).
[ -x "$wrapper" ] || die "Cannot find/execute USER_JOB_WRAPPER file $wrapper"

# --- the execute and scratch directories -------------------------------------------------------------------
starter_dir=$execute/$starter_name
scratch=$starter_dir/scratch
mkdir -m 0755 "$starter_dir"
mkdir -m 0700 "$scratch"
chown "$uid:$gid" "$scratch"
slot=slot1_1
host=$(hostname)

if [ "$transfer" = 1 ]; then
    install -m 0755 -o "$uid" -g "$gid" "$job" "$scratch/condor_exec.exe"
    job=$scratch/condor_exec.exe
fi

# --- the ads (long form, as the starter writes them) -----------------------------------------------------
quote() { printf '"%s"' "${1//\"/\\\"}"; }
job_ad_defaults=(
    "MyType = \"Job\""
    "ClusterId = $cluster"
    "ProcId = $proc"
    "GlobalJobId = $(quote "$host#$cluster.$proc#$(date +%s)")"
    "Owner = $(quote "$user")"
    "User = $(quote "$user@jobbox.test")"
    "JobUniverse = 5"
    "Cmd = $(quote "$job")"
    "Arguments = $(quote "$*")"
    "Iwd = $(quote "$scratch")"
    "RequestMemory = $memory"
    "RequestCpus = $cpus"
    "RequestDisk = 1024"
    "JobStatus = 2"
)
[ -n "$chirp_config" ] && job_ad_defaults+=("WantIOProxy = true")
{
    for line in "${job_ad_defaults[@]}"; do
        name=${line%% =*}
        for omitted in "${omit_attrs[@]}"; do [ "${omitted,,}" = "${name,,}" ] && continue 2; done
        for extra in "${extra_attrs[@]}"; do [ "${extra%% =*}" = "$name" ] && continue 2; done
        echo "$line"
    done
    for extra in "${extra_attrs[@]}"; do echo "$extra"; done
} > "$scratch/.job.ad"
cat > "$scratch/.machine.ad" <<AD
MyType = "Machine"
Name = $(quote "$slot@$host")
Machine = $(quote "$host")
SlotID = 1
OpSys = "LINUX"
Arch = "X86_64"
Memory = $memory
Cpus = $cpus
Disk = 1048576
AD
chown "$uid:$gid" "$scratch/.job.ad" "$scratch/.machine.ad"
if [ -n "$chirp_config" ]; then
    install -m 0600 -o "$uid" -g "$gid" "$chirp_config" "$scratch/.chirp.config"
fi

# --- the job's cgroup ----------------------------------------------------------------------------------
cgroup_dirs=()
remove_cgroups() {
    local dir pid pids
    for dir in "${cgroup_dirs[@]}"; do
        [ -d "$dir" ] || continue
        # Kill everything left below the job's cgroup, then remove it bottom-up (the starter's kill_family).
        for _ in $(seq 100); do
            pids=$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null)
            [ -z "$pids" ] && break
            for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
            sleep 0.05
        done
        find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "${dir%/*}" 2>/dev/null || true # the base, once no other job of ours uses it
    done
}
trap remove_cgroups EXIT

if [ -n "$cgroup_base" ]; then
    uniq=${execute//\//_}_$slot@$host
    uniq=${uniq//\//_}
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        base=/sys/fs/cgroup${own%/}/$cgroup_base
        mkdir -p "$base/$uniq.slice/$uniq.scope"
        for controller in memory pids cpu io; do
            echo "+$controller" > "$base/cgroup.subtree_control" 2>/dev/null || true
            echo "+$controller" > "$base/$uniq.slice/cgroup.subtree_control" 2>/dev/null || true
        done
        chown "$uid" "$base/$uniq.slice" "$base/$uniq.slice/cgroup.procs" "$base/$uniq.slice/cgroup.subtree_control"
        chown -R "$uid" "$base/$uniq.slice/$uniq.scope"
        cgroup_dirs=("$base/$uniq.slice")
        join=("$base/$uniq.slice/$uniq.scope")
    else
        join=()
        for controller in memory cpu cpuacct freezer; do
            line=$(grep -E "^[0-9]+:([^:]*,)?$controller(,[^:]*)?:" /proc/self/cgroup) || continue
            own=${line#*:*:}
            mount=/sys/fs/cgroup/$controller
            [ -d "$mount" ] || continue
            dir=$mount${own%/}/$cgroup_base/$uniq
            mkdir -p "$dir"
            chown "$uid" "$dir" "$dir/cgroup.procs" "$dir/tasks"
            cgroup_dirs+=("$dir")
            join+=("$dir")
        done
    fi
fi

# --- the environment (starter.cpp PublishToEnv) ----------------------------------------------------------
env_list=(
    "_CONDOR_SCRATCH_DIR=$scratch"
    "_CONDOR_JOB_AD=$scratch/.job.ad"
    "_CONDOR_MACHINE_AD=$scratch/.machine.ad"
    "_CONDOR_WRAPPER_ERROR_FILE=$scratch/.job_wrapper_failure"
    "_CONDOR_JOB_IWD=$scratch"
    "_CONDOR_JOB_PIDS="
    "_CONDOR_SLOT=$slot"
    "_CHIRP_DELAYED_UPDATE_PREFIX=Chirp*"
    "CONDOR_STARTER_PID=$$"
    "BATCH_SYSTEM=HTCondor"
    "TMPDIR=$scratch" "TEMP=$scratch" "TMP=$scratch"
    "OMP_NUM_THREADS=$cpus" "MKL_NUM_THREADS=$cpus" "OPENBLAS_NUM_THREADS=$cpus" "GOMAXPROCS=$cpus"
)
[ -n "$chirp_config" ] && env_list+=("_CONDOR_CHIRP_CONFIG=$scratch/.chirp.config")
env_list+=("${extra_env[@]}")

# --- run the wrapper as the starter does ---------------------------------------------------------------
if [ "$as_root" = 1 ]; then identity=(); else identity=(setpriv --reuid="$uid" --regid="$gid" --init-groups --); fi
# The starter opens the job's output files as the job's user.
install -m 0644 -o "$uid" -g "$gid" /dev/null "$scratch/_condor_stdout"
install -m 0644 -o "$uid" -g "$gid" /dev/null "$scratch/_condor_stderr"
set +e
(
    for dir in "${join[@]}" "${extra_join[@]}"; do echo "$BASHPID" > "$dir/cgroup.procs" || exit 2; done
    cd "$scratch" || exit 2
    # The starter's child starts with no signal blocked and no descriptor but stdio, whatever this script got.
    exec perl -MPOSIX -e '
        sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die "sigprocmask: $!\n";
        opendir(my $fds, "/proc/self/fd") or die "/proc/self/fd: $!\n";
        my @open = grep { /^\d+$/ && $_ > 2 } readdir($fds);
        closedir($fds);
        POSIX::close($_) for @open;
        exec {$ARGV[0]} @ARGV or die "exec $ARGV[0]: $!\n"' \
        "${netns[@]}" "${identity[@]}" env -i "${env_list[@]}" "$wrapper" "$job" "$@" \
        < /dev/null > "$scratch/_condor_stdout" 2> "$scratch/_condor_stderr"
)
status=$?
set -e

echo "scratch=$scratch"
echo "status=$status"
# user_proc.cpp JobReaper: the file's text, trimmed, newlines as |, is the reason the job is requeued.
if [ -e "$scratch/.job_wrapper_failure" ]; then
    reason=$(sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$scratch/.job_wrapper_failure" | sed -e '/^$/d' | paste -sd '|')
    echo "requeue=The job wrapper failed to execute the job: $reason"
fi
