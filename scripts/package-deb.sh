#!/usr/bin/env bash
# make deb: dist/jobbox_<version>_amd64.deb from `make install DESTDIR=<tree> PREFIX=/usr` (so the package holds
# exactly what make install installs), the configuration as a conffile, and lintian run on the result: clean but
# for the tags packaging/deb/lintian-suppress lists, each with its reason. Needs the release build (make release)
# first. No Depends: every tool is a static executable (scripts/check-static-binaries.sh), and the one program they
# run, getent, is in libc-bin, which every Debian system has.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sh scripts/version.sh)
arch=amd64
[ "$(dpkg --print-architecture)" = "$arch" ] || { echo "package-deb: builds $arch only" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/jbp-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
# shellcheck source=scripts/package-layout.sh
. scripts/package-layout.sh deb
DESTDIR=$root bash scripts/install.sh

mkdir -p "$root/DEBIAN"
units=$(find "$root$UNITDIR" -type f -printf '%f\n' 2>/dev/null | sort | paste -sd' ') || units=
for script in postinst prerm postrm; do
    sed -e "s/@UNITS@/$units/" "packaging/deb/$script" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done
(cd "$root" && find etc -type f -printf '/%p\n' | sort) > "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" packaging/deb/control.in \
    > "$root/DEBIAN/control"

mkdir -p dist
deb=dist/jobbox_${version}_${arch}.deb
# xz level 1: level 6 took about two minutes of make check on a 2-core machine, for a package 10% smaller.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) \
    dpkg-deb --root-owner-group -Zxz -z1 --build "$root" "$deb" >/dev/null
echo "package-deb: $deb"
# --no-cfg: a user's lintianrc does not change the verdict.
lintian --no-cfg --fail-on error,warning --suppress-tags-from-file packaging/deb/lintian-suppress "$deb"
