#!/bin/bash
# jobbox-wrapper.sh: an HTCondor USER_JOB_WRAPPER that runs the job through jobbox's tools.
#
#   USER_JOB_WRAPPER = /usr/local/share/doc/jobbox/examples/htcondor/jobbox-wrapper.sh
#
# The starter runs it as  jobbox-wrapper.sh /abs/path/of/job [job arguments...]  with $_CONDOR_JOB_AD,
# $_CONDOR_MACHINE_AD, $_CONDOR_SCRATCH_DIR and $_CONDOR_WRAPPER_ERROR_FILE set. What it does depends on whom it
# runs as (see README.md beside it):
#
#   job's user (what HTCondor does)   [cg-exec in the job's delegated cgroup v2 subtree, when there is one] ->
#                                     ns-exec --userns --pid --mount (private /tmp, own PID view) -> job;
#                                     then jobstat on the job's cgroup.
#   root (a privileged launcher)      cg-exec with the job's memory and CPUs -> netacct (network namespace,
#                                     byte counters) -> ns-exec --pid --mount --user OWNER [--chroot NAME] -> job;
#                                     then jobstat, cg-exec --remove.
#
# The final figures (jobstat's ad, plus netacct's as root) go to $_CONDOR_SCRATCH_DIR/.jobbox/job.ad and, when
# the starter runs a chirp proxy ($_CONDOR_CHIRP_CONFIG), into the job's ad: with set_job_attr when the job has
# +WantIOProxy = true, else with set_job_attr_delayed as Chirp<Name>.
#
# Failures: a tool that fails appends its own one-line reason to $_CONDOR_WRAPPER_ERROR_FILE (the starter
# then requeues the job with it); the wrapper appends a line of its own only for its own failures. Once the
# job has run, failing to gather figures or to clean up is reported on stderr only: requeueing a job that
# already finished would run it twice.
#
# Settings. As the job's user, from the environment. As root, never from the environment: HTCondor fills it
# from the job's own `environment =`, so a job could name its own tools, configuration or PATH. Root takes them
# only from jobbox-wrapper.conf beside this script (NAME=value lines, owned by root and writable by root only;
# whoever can write there could rewrite the wrapper itself), runs with a fixed PATH, and hands the job back its
# own PATH.
#   JOBBOX_BIN      directory holding the tools (default: $PATH, then ../../../../bin from this script)
#   JOBBOX_CONFIG   jobbox.conf for the tools (they default to /etc/jobbox/jobbox.conf)
#   JOBBOX_FIGURES  yes (default): gather the final figures; no: as the job's user with nothing to do after the
#                   job, exec the chain instead of waiting for it
#   JOBBOX_WRAPPER_RUNDIR  as root: where the private directory is made (default /run)
#   JOBBOX_SCRATCH_QUOTA   as root: request-disk limits the scratch dir to the job's RequestDisk (KiB; else the
#                   slot's Disk) with ns-exec --scratch-quota, adds jobstat --scratch's DiskUsage to the figures
#                   and removes the limit after them; none (default): no quota
set -u

me=jobbox-wrapper
mode=user
[ "$(id -u)" = 0 ] && mode=root
tool_failure=125
job_path_set=${PATH+set}
job_path=${PATH-}
if [ "$mode" = root ]; then
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    export PATH
    # The job's own settings for jobbox mean nothing here; the tools read JOBBOX_CONFIG too, so it goes as well.
    unset JOBBOX_BIN JOBBOX_CONFIG JOBBOX_FIGURES JOBBOX_WRAPPER_RUNDIR JOBBOX_SCRATCH_QUOTA
    settings=$(cd "$(dirname "$0")" 2>/dev/null && pwd)/jobbox-wrapper.conf
    if [ -e "$settings" ]; then
        # Before fail() exists: one line and 125 by hand, the error file is appended below once reasons can be.
        settings_owner=$(stat -c '%u %a' "$settings" 2>/dev/null) || settings_owner=
        case $settings_owner in
            "0 "[0-7][0145][0145] | "0 "[0-7][0145]) ;;
            *) printf '%s\n' "$me: refusing $settings: it must be a file owned by root that only root can write" >&2; exit "$tool_failure" ;;
        esac
        while IFS= read -r line || [ -n "$line" ]; do
            case $line in
                JOBBOX_BIN=* | JOBBOX_CONFIG=* | JOBBOX_FIGURES=* | JOBBOX_WRAPPER_RUNDIR=* | JOBBOX_SCRATCH_QUOTA=*) export "${line?}" ;;
                '' | '#'*) ;;
                *) printf '%s\n' "$me: $settings: unknown setting ignored" >&2 ;;
            esac
        done < "$settings"
    fi
fi

# --- reporting -------------------------------------------------------------------------------------------

note() { printf '%s: %s\n' "$me" "$*" >&2; }

# The wrapper's own failure before the job ran: one line on stderr and in the error file, then exit 125.
fail() {
    line="$me: $(printf '%s' "$*" | tr '\n' ' ')"
    printf '%s\n' "$line" >&2
    if [ -n "${_CONDOR_WRAPPER_ERROR_FILE-}" ]; then
        printf '%s\n' "$line" | append_as_job_user "$_CONDOR_WRAPPER_ERROR_FILE"
    fi
    exit "$tool_failure"
}

# As root, files in the scratch directory are written as the user who owns it (the job's user): the job may have
# planted a symlink there, and root must not follow it somewhere the user could not write. $1 is the file.
as_owner_of_dir() {
    dir=${scratch:-${1%/*}}
    if [ "$mode" = root ] && owner_ids=$(stat -c '%u %g' "$dir" 2>/dev/null) && [ "${owner_ids% *}" != 0 ]; then
        shift
        setpriv --reuid="${owner_ids% *}" --regid="${owner_ids#* }" --clear-groups -- "$@"
    else
        shift
        "$@"
    fi
}

# Appends stdin to file $1.
# shellcheck disable=SC2016 # the inner shell expands its own $1
append_as_job_user() {
    as_owner_of_dir "$1" sh -c 'cat >> "$1"' sh "$1"
}

# Writes stdin to file $1 (replacing it; its directory is made if missing).
# shellcheck disable=SC2016 # the inner shell expands its own $1
write_as_job_user() {
    as_owner_of_dir "$1" sh -c 'mkdir -p "${1%/*}" && cat > "$1.tmp" && mv -f "$1.tmp" "$1"' sh "$1"
}

# --- reading ClassAds ------------------------------------------------------------------------------------

# ad_value FILE NAME: the right-hand side of NAME (case-insensitive, as ClassAd names are), or nothing.
ad_value() {
    awk -v want="$2" '
        BEGIN { want = tolower(want) }
        /^[ \t]*#/ { next }
        {
            eq = index($0, "=")
            if (eq == 0) next
            name = substr($0, 1, eq - 1); gsub(/^[ \t]+|[ \t]+$/, "", name)
            if (tolower(name) != want) next
            value = substr($0, eq + 1); sub(/^[ \t]+/, "", value); sub(/[ \t\r]+$/, "", value)
            print value; exit
        }' "$1" 2>/dev/null
}

# ad_string FILE NAME: a string attribute without its quotes (nothing when it is not a plain string literal).
ad_string() {
    ad_value "$1" "$2" | sed -n 's/^"\([^"\\]*\)"$/\1/p'
}

# ad_count FILE NAME: a non-negative integer attribute (nothing when it is an expression, e.g. HTCondor's default
# RequestMemory, or absent).
ad_count() {
    v=$(ad_value "$1" "$2")
    case $v in '' | *[!0-9]*) ;; *) printf '%s\n' "$v" ;; esac
}

# --- the tools -------------------------------------------------------------------------------------------

# find_tool NAME: sets $found to the tool's absolute path, or the wrapper fails saying where it looked.
find_tool() {
    if [ -n "${JOBBOX_BIN-}" ]; then
        found=$JOBBOX_BIN/$1
        [ -x "$found" ] || fail "$1 not found: $found is not executable (JOBBOX_BIN)"
        return
    fi
    if found=$(PATH=${PATH:-/usr/local/bin:/usr/bin:/bin} command -v "$1") && [ -x "$found" ]; then
        return
    fi
    found=$(cd "$(dirname "$0")/../../../../bin" 2>/dev/null && pwd)/$1
    [ -x "$found" ] || fail "$1 not found in PATH or beside this wrapper; set JOBBOX_BIN"
}

# Runs "$@" as a child, forwarding the signals the starter sends (HUP INT QUIT TERM USR1 USR2) to it, and
# leaves its exit status in $status. The traps are set before the child exists, so a signal that arrives while
# it starts is passed on once it does. The child gets the wrapper's stdin and default INT/QUIT handling, which
# an asynchronous command would otherwise lose (/dev/null, ignored).
run_forwarding_signals() {
    child=
    pending=
    for signal in HUP INT QUIT TERM USR1 USR2; do
        # shellcheck disable=SC2064 # expand $signal now, $child when the signal comes
        trap "forward_signal $signal" "$signal"
    done
    exec 3<&0
    (trap - HUP INT QUIT TERM USR1 USR2 && exec "$@" <&3 3<&-) &
    child=$!
    exec 3<&-
    if [ -n "$pending" ]; then kill -s "$pending" "$child" 2>/dev/null; fi
    while :; do
        wait "$child"
        status=$?
        # wait returns early (status > 128) when a trapped signal arrives; the child is still there then.
        kill -0 "$child" 2>/dev/null || break
    done
    trap - HUP INT QUIT TERM USR1 USR2
}

# shellcheck disable=SC2317 # called from the traps
forward_signal() {
    if [ -n "$child" ]; then kill -s "$1" "$child" 2>/dev/null; else pending=$1; fi
}

# Runs a step after the job: its failure is reported on stderr (by the tool, then here), never through the
# error file, so a finished job is not requeued.
after_job() {
    what=$1
    shift
    if ! (unset _CONDOR_WRAPPER_ERROR_FILE; "$@"); then
        note "after the job: $what failed (the job's own status stands)"
        return 1
    fi
}

# The size of the error file in bytes (0 when there is none): a tool that fails before the job runs appends to it.
error_file_size() {
    if [ -n "${_CONDOR_WRAPPER_ERROR_FILE-}" ] && [ -f "$_CONDOR_WRAPPER_ERROR_FILE" ]; then
        wc -c < "$_CONDOR_WRAPPER_ERROR_FILE"
    else
        echo 0
    fi
}

# The controllers (v1) of the hierarchies in which the wrapper sits in the same cgroup as the starter
# ($CONDOR_STARTER_PID), "unified" for the v2 one: jobstat --self's figures from those count more than this job.
# On cgroup v1 HTCondor gives a job its own memory, cpu, cpuacct and freezer cgroups only.
shared_with_starter() {
    starter=/proc/${CONDOR_STARTER_PID:-none}/cgroup
    [ -r "$starter" ] || return 0
    awk -F: 'NR == FNR { own[$1] = $3; next }
             ($1 in own) && own[$1] == $3 { print ($2 == "" ? "unified" : $2) }' /proc/self/cgroup "$starter" |
        tr ',\n' '  '
}

# Drops from an ad (stdin) the figures that come from the controllers $1 lists.
drop_figures_of() {
    pattern='^$'
    for controller in $1; do
        case $controller in
            memory) pattern="$pattern|^(MemoryUsage|ResidentSetSize|MemoryPeakKb|MemoryCacheKb|MemorySwapKb|OOMKills)[ =]" ;;
            cpuacct) pattern="$pattern|^(RemoteUserCpu|RemoteSysCpu)[ =]" ;;
            cpu) pattern="$pattern|^CpuThrottledSeconds[ =]" ;;
            blkio) pattern="$pattern|^Block[A-Za-z]*[ =]" ;;
            pids) pattern="$pattern|^NumPids[ =]" ;;
            unified) pattern="$pattern|^[A-Za-z]*Pressure[A-Za-z0-9]*[ =]" ;;
        esac
    done
    grep -Ev "$pattern"
    return 0
}

# --- what the starter gave us ----------------------------------------------------------------------------

[ $# -ge 1 ] || fail "no job to run: the starter passes the job's path as the first argument"
[ -n "${_CONDOR_JOB_AD-}" ] || fail "not started by an HTCondor starter: \$_CONDOR_JOB_AD is not set"
[ -r "$_CONDOR_JOB_AD" ] || fail "cannot read the job ad $_CONDOR_JOB_AD"
scratch=${_CONDOR_SCRATCH_DIR-}
if [ -z "$scratch" ] || [ ! -d "$scratch" ]; then
    fail "no scratch directory: \$_CONDOR_SCRATCH_DIR is not set or not a directory"
fi

cluster=$(ad_count "$_CONDOR_JOB_AD" ClusterId)
proc=$(ad_count "$_CONDOR_JOB_AD" ProcId)
if [ -z "$cluster" ] || [ -z "$proc" ]; then
    fail "cannot derive the job id from $_CONDOR_JOB_AD: it has no integer ClusterId and ProcId"
fi
job=$cluster.$proc

# Memory (MiB) and CPUs: the job's request when it is a number, else the slot's size (what HTCondor enforces).
memory=$(ad_count "$_CONDOR_JOB_AD" RequestMemory)
cpus=$(ad_count "$_CONDOR_JOB_AD" RequestCpus)
if [ -n "${_CONDOR_MACHINE_AD-}" ] && [ -r "$_CONDOR_MACHINE_AD" ]; then
    [ -n "$memory" ] || memory=$(ad_count "$_CONDOR_MACHINE_AD" Memory)
    [ -n "$cpus" ] || cpus=$(ad_count "$_CONDOR_MACHINE_AD" Cpus)
fi
[ "${memory:-0}" -gt 0 ] 2>/dev/null || memory=
[ "${cpus:-0}" -gt 0 ] 2>/dev/null || cpus=

chroot_name=$(ad_string "$_CONDOR_JOB_AD" RequestedChroot)
if [ -z "$chroot_name" ] && [ -n "$(ad_value "$_CONDOR_JOB_AD" RequestedChroot)" ]; then
    fail "RequestedChroot in $_CONDOR_JOB_AD is not a plain string"
fi
case $chroot_name in *[!A-Za-z0-9_.-]*) fail "RequestedChroot \"$chroot_name\" is not a chroot name" ;; esac

# set_job_attr needs the job's I/O proxy (+WantIOProxy = true); without it the starter accepts only
# set_job_attr_delayed, for Chirp-prefixed names, sent with its next update.
chirp=
if [ -n "${_CONDOR_CHIRP_CONFIG-}" ] && [ -f "$_CONDOR_CHIRP_CONFIG" ]; then
    case $(ad_value "$_CONDOR_JOB_AD" WantIOProxy) in [Tt][Rr][Uu][Ee]) chirp=--chirp ;; *) chirp=--chirp-delayed ;; esac
fi
figures=${JOBBOX_FIGURES:-yes}

# --- as the job's user -----------------------------------------------------------------------------------

if [ "$mode" = user ]; then
    [ -z "$chroot_name" ] ||
        fail "RequestedChroot \"$chroot_name\" needs the privileged chain, but the wrapper runs as uid $(id -u)"
    find_tool ns-exec && ns_exec=$found

    # cgroup v2 delegation: HTCondor chowns the job's .slice to the job's user and runs the job in its .scope,
    # so the slice may hold cgroups of our own. cgroup v1 and hybrid nodes have no such thing.
    slice=
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        slice=${own%/*}
        if [ -z "$own" ] || [ -z "$slice" ] || [ ! -w "/sys/fs/cgroup$slice/cgroup.procs" ] ||
            [ ! -w "/sys/fs/cgroup$slice/cgroup.subtree_control" ]; then
            note "no delegated cgroup v2 subtree above ${own:-?}: the job stays in the cgroup the starter made"
            slice=
        fi
    else
        note "not a cgroup v2 node: the job stays in the cgroup the starter made"
    fi

    set -- "$ns_exec" --userns --pid --mount --scratch "$scratch" -- "$@"
    if [ -n "$slice" ]; then
        find_tool cg-exec && cg_exec=$found
        set -- "$cg_exec" --job "$job" --parent "$slice" ${memory:+--memory "${memory}M"} ${cpus:+--cpus "$cpus"} -- "$@"
    fi

    if [ "$figures" = no ] && [ -z "$slice" ]; then
        exec "$@"
    fi
    find_tool jobstat && jobstat=$found
    errors_before=$(error_file_size)
    run_forwarding_signals "$@"
    if [ "$(error_file_size)" -gt "$errors_before" ]; then
        note "the chain failed (its reason is in the error file): no figures"
        figures=no
    fi

    if [ "$figures" != no ]; then
        # The slice holds the wrapper and the job's own cgroup, as HTCondor accounts for it; without one, the
        # starter's cgroup (the wrapper's own) does, in the hierarchies where the starter made one.
        shared=
        if [ -n "$slice" ]; then where="--cgroup $slice"; else where=--self shared=$(shared_with_starter); fi
        if [ -n "$shared" ] && [ -n "$chirp" ]; then
            note "figures not chirped: the job has no cgroup of its own for $shared"
            chirp=
        fi
        # shellcheck disable=SC2086 # $where and $chirp are option words
        if ad=$(after_job "jobstat $where" "$jobstat" $where $chirp); then
            printf '%s\n' "$ad" | drop_figures_of "$shared" | write_as_job_user "$scratch/.jobbox/job.ad" ||
                note "after the job: cannot write $scratch/.jobbox/job.ad"
        fi
    fi
    if [ -n "$slice" ]; then
        after_job "cg-exec --remove" "$cg_exec" --remove --job "$job" --parent "$slice"
    fi
    exit "$status"
fi

# --- as root: the full chain -----------------------------------------------------------------------------

owner=$(ad_string "$_CONDOR_JOB_AD" Owner)
[ -n "$owner" ] || fail "cannot run the job as its owner: $_CONDOR_JOB_AD has no Owner string"
case $owner in *[!A-Za-z0-9_.-]* | -*) fail "Owner \"$owner\" in $_CONDOR_JOB_AD is not a user name" ;; esac
owner_uid=$(id -u "$owner" 2>/dev/null) || fail "the job's Owner \"$owner\" is not a user on this node"
[ "$owner_uid" != 0 ] || fail "refusing to run a job as root (Owner \"$owner\")"

find_tool cg-exec && cg_exec=$found
find_tool netacct && netacct=$found
find_tool ns-exec && ns_exec=$found
find_tool jobstat && jobstat=$found

# The scratch quota: the job's disk request (KiB) when it is a number, else the slot's Disk.
quota=
case ${JOBBOX_SCRATCH_QUOTA:-none} in
    request-disk)
        quota=$(ad_count "$_CONDOR_JOB_AD" RequestDisk)
        if [ -z "$quota" ] && [ -n "${_CONDOR_MACHINE_AD-}" ] && [ -r "$_CONDOR_MACHINE_AD" ]; then
            quota=$(ad_count "$_CONDOR_MACHINE_AD" Disk)
        fi
        [ "${quota:-0}" -gt 0 ] 2>/dev/null || fail "JOBBOX_SCRATCH_QUOTA=request-disk: neither RequestDisk nor the slot's Disk is a number of KiB"
        ;;
    none) ;;
    *) fail "JOBBOX_SCRATCH_QUOTA=${JOBBOX_SCRATCH_QUOTA}: not request-disk or none" ;;
esac

# Files root writes go to a directory only root can reach; the job's user gets copies.
private=$(mktemp -d "${JOBBOX_WRAPPER_RUNDIR:-/run}/jobbox-wrapper.XXXXXX") ||
    fail "cannot make a private directory in ${JOBBOX_WRAPPER_RUNDIR:-/run}"
trap 'rm -rf "$private"' EXIT
error_file=${_CONDOR_WRAPPER_ERROR_FILE-}

# The tools append their error lines to a private file; it is appended to the real one afterwards.
: > "$private/wrapper-error"
export _CONDOR_WRAPPER_ERROR_FILE="$private/wrapper-error"
# The chain runs with the job's own PATH (the tools exec by absolute path; the job may rely on its PATH).
if [ -n "$job_path_set" ]; then job_env=(env "PATH=$job_path"); else job_env=(env -u PATH); fi
# shellcheck disable=SC2086 # $chirp is an option word
run_forwarding_signals "${job_env[@]}" \
    "$cg_exec" --job "$job" ${memory:+--memory "${memory}M"} ${cpus:+--cpus "$cpus"} -- \
    "$netacct" --job "$job" --ad-file "$private/network.ad" $chirp -- \
    "$ns_exec" --pid --mount --scratch "$scratch" ${quota:+--scratch-quota "${quota}K"} ${chroot_name:+--chroot "$chroot_name"} --user "$owner" -- \
    "$@"
if [ -n "$error_file" ]; then export _CONDOR_WRAPPER_ERROR_FILE="$error_file"; else unset _CONDOR_WRAPPER_ERROR_FILE; fi
# A tool's line is a reason to requeue only when the chain ended with a tool's status (125 to 127): otherwise the
# job ran, and the line is about something after it (netacct's chirp, say), already on stderr.
if [ -s "$private/wrapper-error" ]; then
    case $status in
        125 | 126 | 127)
            if [ -n "$error_file" ]; then
                append_as_job_user "$error_file" < "$private/wrapper-error" || note "cannot append to $error_file"
            fi
            note "the chain failed (its reason is in the error file): no figures"
            figures=no
            ;;
        *) note "after the job: a tool failed (the job's own status stands)" ;;
    esac
fi

if [ "$figures" != no ]; then
    # shellcheck disable=SC2086 # $chirp is an option word
    if after_job jobstat "$jobstat" --job "$job" ${quota:+--scratch "$scratch"} $chirp > "$private/job.ad"; then
        [ -s "$private/network.ad" ] && grep -v '^[[:space:]]*$' "$private/network.ad" >> "$private/job.ad"
        write_as_job_user "$scratch/.jobbox/job.ad" < "$private/job.ad" ||
            note "after the job: cannot write $scratch/.jobbox/job.ad"
    fi
fi
[ -z "$quota" ] || after_job "ns-exec --remove-scratch-quota" "$ns_exec" --remove-scratch-quota "$scratch"
after_job "cg-exec --remove" "$cg_exec" --remove --job "$job"
exit "$status"
