#!/usr/bin/env bash
# Fails when a release tool in DIR (default .build-release/release) could not run on the oldest glibc jobbox
# supports (2.34, EL9). Every tool must be a static executable (no interpreter, no shared library: Package.swift,
# staticReleaseLinking), which needs no symbol version of the node's glibc, and whose user lookups cannot crash: a
# static glibc must never load an NSS module (Sources/CLinux/jb_nss.c), so a lookup of an unknown user, which
# falls through files to the node's other services, has to end in the tool's one line and status 125. DIR may
# also be an installed tree's bin directory (check-packages.sh).
set -euo pipefail
dir=${1:-.build-release/release}
tools="cg-exec ns-exec netacct chroot-tool jobstat"
status=0
for tool in $tools; do
    binary=$dir/$tool
    [ -x "$binary" ] || continue
    if readelf -lW "$binary" | grep -q 'INTERP' || objdump -p "$binary" | grep -q 'NEEDED'; then
        echo "$binary: is linked dynamically; it must be a static executable (Package.swift, staticReleaseLinking)" >&2
        status=1
    else
        echo "$binary: static"
    fi
done
# The NSS probe: an unknown user and an unknown group, which no built-in service has, asked of every static tool
# that takes one. A tool that looked them up itself would load the node's modules (here libnss_systemd) and crash.
probe=jobbox-nss-probe-$$
probe_one() {
    local tool=$1
    shift
    [ -x "$dir/$tool" ] || return 0
    local code=0 output
    output=$("$dir/$tool" "$@" 2>&1) || code=$?
    if [ "$code" -ne 125 ] || [[ "$output" != *"$probe"* ]]; then
        echo "$dir/$tool $*: status $code, not 125 with one line naming $probe: $output" >&2
        status=1
    fi
}
probe_one ns-exec --user "$probe" -- /bin/true
probe_one ns-exec --group "$probe" -- /bin/true
probe_one cg-exec --delegate-to "$probe" --job "nssprobe$$"
[ "$status" -eq 0 ] && echo "release binaries: $tools static, lookups through getent"
exit "$status"
