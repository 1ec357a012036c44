#!/usr/bin/env bash
# The release build of make release, make install, bench/run and make check-v2: Swift's standard library static
# (--static-swift-stdlib), linked as Package.swift says (five static executables), then
# checked by check-glibc-symbols.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${RELEASE_DIR:-.build-release}
# The Swift toolchain links libstdc++ as -lstdc++, which finds the shared library; the build directory is the
# first place the linker searches, so the archive put there is linked in instead (bench/README.md: the loader's
# symbol lookups in libstdc++ were most of a tool's start-up). netacct speaks netlink, x_tables and bpf() itself,
# so it links no other C library.
libdir=$scratch/$(uname -m)-unknown-linux-gnu/release
mkdir -p "$libdir"
for library in stdc++; do
    archive=$(${CC:-cc} -print-file-name=lib$library.a)
    [ -f "$archive" ] || { echo "release-build: no lib$library.a (make deps installs it)" >&2; exit 1; }
    ln -sf "$archive" "$libdir/lib$library.a"
done
# The tools only: the test-support library imports Testing, which release builds do not have. No $ORIGIN runpath:
# the Swift runtime is linked in, so nothing is loaded from beside the binary, and an installed tool (make
# install, the packages) must not look for libraries in its own directory.
for tool in cg-exec ns-exec netacct chroot-tool jobstat; do
    swift build -c release --static-swift-stdlib --disable-local-rpath --scratch-path "$scratch" --product "$tool" "$@"
done
bash scripts/check-glibc-symbols.sh "$scratch/release"
