#!/bin/sh
# A stand-in for one of jobbox's tools, to test how a wrapper chains them (not what they do): linked under a
# tool's name, it logs its name, uid, whether $_CONDOR_WRAPPER_ERROR_FILE is set, and its arguments as one line
# to $FAKE_TOOL_LOG, then does the least the real tool would: runs the command after `--` (exec), prints a tiny
# ad (jobstat), writes one (netacct --ad-file). FAKE_TOOL_FAIL=<name> makes that tool fail as a tool does: one
# line on stderr and in the error file, status 125.
name=${0##*/}
{
    printf '%s uid=%s errfile=%s' "$name" "$(id -u)" "${_CONDOR_WRAPPER_ERROR_FILE:+set}"
    printf ' [%s]' "$@"
    printf '\n'
} >> "$FAKE_TOOL_LOG"
if [ "${FAKE_TOOL_FAIL-}" = "$name" ]; then
    echo "$name: fake failure" >&2
    [ -n "${_CONDOR_WRAPPER_ERROR_FILE-}" ] && echo "$name: fake failure" >> "$_CONDOR_WRAPPER_ERROR_FILE"
    exit 125
fi
ad_file=
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        --ad-file) ad_file=$2; shift ;;
    esac
    shift
done
case $name in
    jobstat) printf '%s\n' "MemoryPeakKb = 100" "RemoteUserCpu = 1.5" "BlockReadBytes = 7" "NumPids = 1" "CpuPressureSomeAvg10 = 0.5" ;;
    netacct) [ -n "$ad_file" ] && echo "NetworkOutgoing = 42" > "$ad_file" ;;
esac
[ $# -gt 0 ] && exec "$@"
exit 0
