#!/usr/bin/env bash
# Fails when a release tool in DIR (default .build-release/release) could not run on the oldest glibc jobbox
# supports (2.34, EL9). cg-exec, ns-exec, chroot-tool and jobstat must be static executables (no interpreter, no
# shared library) whose user lookups cannot crash: a static glibc must never load an NSS module (Package.swift,
# Sources/CLinux/jb_nss.c), so a lookup of an unknown user, which falls through files to the node's other
# services, has to end in ns-exec's one line and status 125. netacct, linked dynamically, must need no symbol
# version newer than GLIBC_2.34, no shared libstdc++ (see scripts/release-build.sh) and no runpath (an installed
# tool loads nothing from beside itself). DIR may also be an installed tree's bin directory (check-packages.sh).
set -euo pipefail
dir=${1:-.build-release/release}
oldest=2.34
static_tools="cg-exec ns-exec chroot-tool jobstat"
status=0
for tool in cg-exec ns-exec netacct chroot-tool jobstat; do
    binary=$dir/$tool
    [ -x "$binary" ] || continue
    if [[ " $static_tools " == *" $tool "* ]]; then
        if readelf -lW "$binary" | grep -q 'INTERP' || objdump -p "$binary" | grep -q 'NEEDED'; then
            echo "$binary: is linked dynamically; it must be a static executable (Package.swift, staticReleaseLinking)" >&2
            status=1
        else
            echo "$binary: static"
        fi
        continue
    fi
    echo "$binary: $(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V | paste -sd' ')"
    newer=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u |
        awk -F_ -v oldest="$oldest" '{ split($2, v, "."); split(oldest, o, "."); if (v[1] > o[1] || (v[1] == o[1] && v[2] > o[2])) print $2 }')
    if [ -n "$newer" ]; then
        echo "$binary: needs glibc $(echo "$newer" | tr '\n' ' ')(newer than $oldest):" >&2
        objdump -T "$binary" | grep -E "GLIBC_($(echo "$newer" | paste -sd'|' | sed 's/\./\\./g'))[^0-9.]" >&2 || true
        status=1
    fi
    if objdump -p "$binary" | grep -q 'NEEDED.*libstdc++'; then
        echo "$binary: links libstdc++ dynamically (see scripts/release-build.sh)" >&2
        status=1
    fi
    if objdump -p "$binary" | grep -Eq '^ *(RPATH|RUNPATH) '; then
        echo "$binary: has a runpath ($(objdump -p "$binary" | awk '$1 == "RPATH" || $1 == "RUNPATH" { print $2 }'))" >&2
        status=1
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
[ "$status" -eq 0 ] && echo "release binaries: $static_tools static, lookups through getent; netacct: glibc $oldest symbols at most, libstdc++ linked in, no runpath"
exit "$status"
