#!/usr/bin/env bash
# The release build of make release, make install, bench/run and make check-v2: Swift's standard library static
# (--static-swift-stdlib), linked as Package.swift says (five static executables: libstdc++ and glibc from their
# archives, no other C library), then checked by check-static-binaries.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${RELEASE_DIR:-.build-release}
# The tools only: the test-support library imports Testing, which release builds do not have. No $ORIGIN runpath:
# the Swift runtime is linked in, so nothing is loaded from beside the binary, and an installed tool (make
# install, the packages) must not look for libraries in its own directory.
for tool in cg-exec ns-exec netacct chroot-tool jobstat; do
    swift build -c release --static-swift-stdlib --disable-local-rpath --scratch-path "$scratch" --product "$tool" "$@"
done
bash scripts/check-static-binaries.sh "$scratch/release"
