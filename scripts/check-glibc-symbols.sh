#!/usr/bin/env bash
# Fails when a release tool in DIR (default .build-release/release) could not load on the oldest glibc jobbox
# supports (2.34, EL9): a symbol version newer than GLIBC_2.34, or a shared library the build was meant to link
# in (libstdc++, see scripts/release-build.sh).
set -euo pipefail
dir=${1:-.build-release/release}
oldest=2.34
status=0
for tool in cg-exec ns-exec netacct chroot-tool jobstat; do
    binary=$dir/$tool
    [ -x "$binary" ] || continue
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
done
[ "$status" -eq 0 ] && echo "release binaries: glibc $oldest symbols at most, libstdc++ linked in"
exit "$status"
