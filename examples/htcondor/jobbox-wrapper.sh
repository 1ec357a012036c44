#!/bin/bash
# jobbox-wrapper.sh: an HTCondor USER_JOB_WRAPPER that runs the job through jobbox's tools:
#   USER_JOB_WRAPPER = /usr/local/share/doc/jobbox/examples/htcondor/jobbox-wrapper.sh
#
# The starter runs it as  jobbox-wrapper.sh /abs/path/of/job [job arguments...]  with $_CONDOR_JOB_AD,
# $_CONDOR_MACHINE_AD, $_CONDOR_SCRATCH_DIR and $_CONDOR_WRAPPER_ERROR_FILE set. The tools read what they need
# from the ads themselves (see README.md beside it):
#
#   job's user (what HTCondor does)   [cg-exec in the job's delegated cgroup v2 .slice, when there is one] ->
#                                     ns-exec --userns --pid --mount [--requested-chroot] -> job; then jobstat.
#   root (a privileged launcher)      cg-exec -> netacct -> ns-exec --pid --mount [--requested-chroot] (as the
#                                     ad's Owner) -> job; then jobstat, cg-exec --remove.
#
# The final figures go to $_CONDOR_SCRATCH_DIR/.jobbox/job.ad and, when the starter runs a chirp proxy, into the
# job's ad (jobstat --chirp-auto decides how). A tool that fails before the job appends its one-line reason to
# $_CONDOR_WRAPPER_ERROR_FILE (the starter requeues the job); the wrapper adds a line only for its own failures.
# After the job, failures are said on stderr only: requeueing a finished job would run it twice.
#
# Settings. As the job's user, from the environment. As root, only from jobbox-wrapper.conf beside this script
# (NAME=value lines, root's alone): the environment is the job's. The job gets its own PATH back.
#   JOBBOX_BIN      directory holding the tools, put first in PATH (default: the tools on PATH)
#   JOBBOX_CONFIG   jobbox.conf for the tools (they default to /etc/jobbox/jobbox.conf)
#   JOBBOX_FIGURES  yes (default), or no: as the job's user without a .slice, exec the chain
#   JOBBOX_WRAPPER_RUNDIR  as root: where the private directory is made (default /run)
#   JOBBOX_SCRATCH_QUOTA   as root: request-disk limits the scratch dir to RequestDisk (ns-exec --scratch-quota)
set -u
me=jobbox-wrapper
job_path_set=${PATH+set} job_path=${PATH-} mode=user
if [ "$(id -u)" = 0 ]; then
    mode=root
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    unset JOBBOX_BIN JOBBOX_CONFIG JOBBOX_FIGURES JOBBOX_WRAPPER_RUNDIR JOBBOX_SCRATCH_QUOTA
    settings=$(cd "$(dirname "$0")" 2>/dev/null && pwd)/jobbox-wrapper.conf
    if [ -e "$settings" ]; then
        case $(stat -c '%u %a' "$settings" 2>/dev/null) in
            "0 "[0-7][0145][0145] | "0 "[0-7][0145]) ;;
            *) echo "$me: refusing $settings: it must be a file owned by root that only root can write" >&2; exit 125 ;;
        esac
        while IFS= read -r line || [ -n "$line" ]; do
            case $line in
                JOBBOX_BIN=* | JOBBOX_CONFIG=* | JOBBOX_FIGURES=* | JOBBOX_WRAPPER_RUNDIR=* | JOBBOX_SCRATCH_QUOTA=*) export "${line?}" ;;
                '' | '#'*) ;;
                *) echo "$me: $settings: unknown setting ignored" >&2 ;;
            esac
        done < "$settings"
    fi
fi
PATH=${JOBBOX_BIN:+$JOBBOX_BIN:}$PATH
scratch=${_CONDOR_SCRATCH_DIR-}
error_file=${_CONDOR_WRAPPER_ERROR_FILE-}

# as_owner_of DIR COMMAND...: as root, files in the job's directories are read and written as the directory's
# owner (the job's user), so a symlink the job planted there cannot redirect root.
as_owner_of() {
    if [ "$mode" = root ] && ids=$(stat -c '%u %g' "$1" 2>/dev/null) && [ "${ids% *}" != 0 ]; then
        shift && setpriv --reuid="${ids% *}" --regid="${ids#* }" --clear-groups -- "$@"
    else
        shift && "$@"
    fi
}

# The wrapper's own failure before the job ran: one line on stderr and in the error file, then 125.
fail() {
    echo "$me: $*" >&2
    # shellcheck disable=SC2016 # the inner shell expands its own $1
    [ -z "$error_file" ] || echo "$me: $*" | as_owner_of "${error_file%/*}" sh -c 'cat >> "$1"' sh "$error_file"
    exit 125
}

# Runs "$@" as a child, passing on the signals the starter sends, with the wrapper's stdin and default INT/QUIT
# handling (an asynchronous command would get /dev/null and ignore them); leaves its status in $status.
run_forwarding_signals() {
    child='' pending=''
    for signal in HUP INT QUIT TERM USR1 USR2; do
        # shellcheck disable=SC2064 # $signal now, $child when the signal comes
        trap "if [ -n \"\$child\" ]; then kill -s $signal \"\$child\" 2>/dev/null; else pending=$signal; fi" "$signal"
    done
    exec 3<&0
    (trap - HUP INT QUIT TERM USR1 USR2 && exec "$@" <&3 3<&-) &
    child=$!
    exec 3<&-
    [ -z "$pending" ] || kill -s "$pending" "$child" 2>/dev/null
    while wait "$child"; status=$?; kill -0 "$child" 2>/dev/null; do :; done
    trap - HUP INT QUIT TERM USR1 USR2
}

# A step after the job: its failure goes to stderr (by the tool, then here), never to the error file.
after_job() {
    (unset _CONDOR_WRAPPER_ERROR_FILE && "$@") || { echo "$me: after the job: $1 failed (the job's own status stands)" >&2; return 1; }
}

[ $# -ge 1 ] || fail "no job to run: the starter passes the job's path as the first argument"
[ -n "${_CONDOR_JOB_AD-}" ] || fail "not started by an HTCondor starter: \$_CONDOR_JOB_AD is not set"
[ -d "${scratch:-/nonexistent}" ] || fail "no scratch directory: \$_CONDOR_SCRATCH_DIR is not set or not a directory"
tools="cg-exec ns-exec jobstat"
[ "$mode" = user ] || tools="$tools netacct"
for tool in $tools; do
    command -v "$tool" > /dev/null || fail "$tool not found in ${JOBBOX_BIN:-PATH} (set JOBBOX_BIN)"
done
figures=${JOBBOX_FIGURES:-yes}

if [ "$mode" = user ]; then
    # cgroup v2: HTCondor delegates the job's .slice to its user and starts the job in the .scope below it.
    slice=$(sed -n 's/^0::\(.*\)\/[^/]*$/\1/p' /proc/self/cgroup)
    if [ ! -f /sys/fs/cgroup/cgroup.controllers ] || [ ! -w "/sys/fs/cgroup$slice/cgroup.subtree_control" ]; then slice=''; fi
    set -- ns-exec --userns --pid --mount --scratch "$scratch" --requested-chroot -- "$@"
    if [ -z "$slice" ]; then
        [ "$figures" != no ] || exec "$@"
        run_forwarding_signals "$@"
        where=(--self --exclude-shared-with "$PPID")
    else
        run_forwarding_signals cg-exec --from-job-ad --parent "$slice" -- "$@"
        where=(--cgroup "$slice")
    fi
else
    # Root takes the ads as the starter wrote them, before the job runs, into a directory only root can write:
    # the tools believe the copies (the job id for every step, the Owner, the requests), not the job's files.
    private=$(mktemp -d "${JOBBOX_WRAPPER_RUNDIR:-/run}/jobbox-wrapper.XXXXXX") || fail "cannot make a private directory"
    trap 'rm -rf "$private"' EXIT
    as_owner_of "${_CONDOR_JOB_AD%/*}" cat "$_CONDOR_JOB_AD" > "$private/job.ad" || fail "cannot read the job ad $_CONDOR_JOB_AD"
    export _CONDOR_JOB_AD=$private/job.ad
    if [ -n "${_CONDOR_MACHINE_AD-}" ]; then
        as_owner_of "${_CONDOR_MACHINE_AD%/*}" cat "$_CONDOR_MACHINE_AD" > "$private/machine.ad" || fail "cannot read the machine ad $_CONDOR_MACHINE_AD"
        export _CONDOR_MACHINE_AD=$private/machine.ad
    fi
    # The tools are named by path: the chain runs with the job's own PATH.
    if [ -n "$job_path_set" ]; then job_env=(env "PATH=$job_path"); else job_env=(env -u PATH); fi
    where=() && [ "${JOBBOX_SCRATCH_QUOTA:-}" != request-disk ] || where=(--scratch "$scratch")
    run_forwarding_signals "${job_env[@]}" "$(command -v cg-exec)" --from-job-ad -- \
        "$(command -v netacct)" --ad-file "$private/network.ad" --chirp-auto -- \
        "$(command -v ns-exec)" --pid --mount --scratch "$scratch" ${where[0]:+--scratch-quota request-disk} --requested-chroot -- "$@"
fi

# A tool's line in the error file means the chain failed before the job ran: there are no figures then.
if [ -n "$error_file" ] && [ -s "$error_file" ]; then
    figures=no
    echo "$me: the chain failed (its reason is in the error file): no figures" >&2
fi
if [ "$figures" != no ] && ad=$(after_job jobstat "${where[@]}" --chirp-auto); then
    if [ "$mode" = root ] && [ -s "$private/network.ad" ]; then ad=$ad$'\n'$(grep -v '^[[:space:]]*$' "$private/network.ad"); fi
    # shellcheck disable=SC2016 # the inner shell expands its own $1
    printf '%s\n' "$ad" | as_owner_of "$scratch" sh -c 'mkdir -p "${1%/*}" && cat > "$1.tmp" && mv -f "$1.tmp" "$1"' sh "$scratch/.jobbox/job.ad" ||
        echo "$me: after the job: cannot write $scratch/.jobbox/job.ad" >&2
fi
[ ${#where[@]} = 0 ] || [ "$mode" != root ] || after_job ns-exec --remove-scratch-quota "$scratch"
if [ "$mode" = root ] || [ -n "${slice-}" ]; then
    after_job cg-exec --remove ${slice:+--parent "$slice"} || true
fi
exit "$status"
