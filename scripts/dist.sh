#!/usr/bin/env bash
# make dist: dist/jobbox-<version>.tar.gz, the committed tree (HEAD) plus a VERSION file holding the version, so a
# build from the tarball, without git, prints the same --version (scripts/version.sh reads VERSION first).
set -euo pipefail
cd "$(dirname "$0")/.."
# HEAD is what is archived, whatever the working tree holds.
version=$(sh scripts/version.sh)
version=${version%.dirty}
work=$(mktemp -d "${TMPDIR:-/tmp}/jbp-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "$version" > "$work/VERSION"
mkdir -p dist
git archive --format=tar.gz --prefix="jobbox-$version/" --add-file="$work/VERSION" -o "dist/jobbox-$version.tar.gz" HEAD
echo "dist: dist/jobbox-$version.tar.gz"
