#!/usr/bin/env bash
# make rpm: dist/jobbox-<version>-1.x86_64.rpm from `make install DESTDIR=<tree> PREFIX=/usr` (so the package
# holds exactly what make install installs) with rpmbuild (packaging/rpm/jobbox.spec.in), then rpmlint
# (packaging/rpm/rpmlint.toml justifies each filter). Requires are rpm's automatic ones. Needs make release first.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sh scripts/version.sh)
work=$(mktemp -d "${TMPDIR:-/tmp}/jbp-rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
# shellcheck source=scripts/package-layout.sh
. scripts/package-layout.sh rpm
DESTDIR=$root bash scripts/install.sh

# %files: our directories, the configuration as a conffile kept when changed, documentation as %doc/%license.
files=$work/files
{
    echo "%dir $SYSCONFDIR/jobbox"
    (cd "$root" && find ".$DOCDIR" -type d | sed 's|^\.|%dir |' | sort)
    (cd "$root" && find . -type f -printf '/%P\n' | sort) | while read -r path; do
        case $path in
            "$SYSCONFDIR"/*) echo "%config(noreplace) $path" ;;
            "$DOCDIR/copyright") echo "%license $path" ;;
            "$DOCDIR"/*) echo "%doc $path" ;;
            "$MANDIR"/*) echo "%doc $path" ;;
            *) echo "$path" ;;
        esac
    done
} > "$files"
units=$(find "$root$UNITDIR" -type f -printf '%f\n' 2>/dev/null | sort | paste -sd' ') || units=
maintainer=$(sed -n 's/^Maintainer: //p' packaging/deb/control.in)
date=$(LC_ALL=C date -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" '+%a %b %d %Y')
spec=$work/jobbox.spec
awk -v files="$files" '$0 == "@FILES@" { while ((getline line < files) > 0) print line; next } { print }' \
    packaging/rpm/jobbox.spec.in |
    sed -e "s|@VERSION@|$version|g" -e "s|@TREE@|$root|g" -e "s|@UNITS@|$units|g" -e "s|@MAINTAINER@|$maintainer|g" \
        -e "s|@DATE@|$date|g" -e "s|@LICENSE@|$(sed -n "s/^License: //p" packaging/copyright)|" > "$spec"

mkdir -p dist
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) rpmbuild --quiet -bb --target x86_64 \
    --define "_topdir $work/rpmbuild" --define "_rpmdir $PWD/dist" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    "$spec"
rpm=dist/jobbox-$version-1.x86_64.rpm
[ -f "$rpm" ] || { echo "package-rpm: rpmbuild made no $rpm" >&2; exit 1; }
echo "package-rpm: $rpm"
rpmlint -c packaging/rpm/rpmlint.toml "$rpm"
