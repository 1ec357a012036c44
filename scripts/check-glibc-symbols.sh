#!/usr/bin/env bash
# Fails when a release tool in DIR (default .build-release/release) could not load on the oldest glibc jobbox
# supports (2.34, EL9): a symbol version newer than GLIBC_2.34, or a shared library the build was meant to link
# in (libstdc++, see scripts/release-build.sh), or a runpath (an installed tool loads nothing from beside itself).
# Lists each tool's GLIBC symbol versions. DIR may also be an installed tree's bin directory (check-packages.sh).
set -euo pipefail
dir=${1:-.build-release/release}
oldest=2.34
status=0
for tool in cg-exec ns-exec netacct chroot-tool jobstat; do
    binary=$dir/$tool
    [ -x "$binary" ] || continue
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
[ "$status" -eq 0 ] && echo "release binaries: glibc $oldest symbols at most, libstdc++ linked in, no runpath"
exit "$status"
