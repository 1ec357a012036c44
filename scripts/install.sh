#!/usr/bin/env bash
# make install: puts the release build and everything around it under DESTDIR. The .deb and the .rpm are made
# from this very tree (scripts/package-deb.sh, scripts/package-rpm.sh), so the packages and `make install` hold
# the same files; scripts/check-packages.sh compares them. The directories come from the Makefile's variables
# (PREFIX, BINDIR, MANDIR, DOCDIR, SYSCONFDIR, BASHCOMPDIR, ZSHCOMPDIR, FISHCOMPDIR, UNITDIR); with --list it
# prints the files it would install (absolute, without DESTDIR) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RELEASE_DIR:=.build-release}" "${PREFIX:=/usr/local}" "${DESTDIR:=}"
: "${BINDIR:=$PREFIX/bin}" "${MANDIR:=$PREFIX/share/man}" "${DOCDIR:=$PREFIX/share/doc/jobbox}" "${SYSCONFDIR:=/etc}"
: "${BASHCOMPDIR:=$PREFIX/share/bash-completion/completions}" "${ZSHCOMPDIR:=$PREFIX/share/zsh/site-functions}"
: "${FISHCOMPDIR:=$PREFIX/share/fish/vendor_completions.d}" "${UNITDIR:=$PREFIX/lib/systemd/system}"
tools=(cg-exec ns-exec netacct chroot-tool jobstat)
version=$(sh scripts/version.sh)
# Every file installed: the tree is made in a fresh directory and copied, so nothing stale from an older install
# in DESTDIR counts.
stage=$(mktemp -d "${TMPDIR:-/tmp}/jbp-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022
put() { # put MODE SOURCE DEST: copies SOURCE to DEST under the stage
    install -D -m "$1" "$2" "$stage$3"
}

for tool in "${tools[@]}"; do
    binary=$RELEASE_DIR/release/$tool
    [ -x "$binary" ] || { echo "install: no $binary (make release)" >&2; exit 1; }
    put 0755 "$binary" "$BINDIR/$tool"
    # Stripped as Debian's dh_strip does (the symbol table is for debuggers; Swift's reflection metadata and the
    # dynamic symbols stay).
    ${STRIP:-strip} --strip-unneeded --remove-section=.comment --remove-section=.note "$stage$BINDIR/$tool"
    # ArgumentParser's completion scripts, from the tool itself (its FastCommandLine front leaves the option to
    # ArgumentParser).
    # bash completions are sourced, not run: no #! line.
    "$binary" --generate-completion-script bash | sed '1{/^#!/d}' > "$stage/completion"
    put 0644 "$stage/completion" "$BASHCOMPDIR/$tool"
    "$binary" --generate-completion-script zsh > "$stage/completion"
    put 0644 "$stage/completion" "$ZSHCOMPDIR/_$tool"
    "$binary" --generate-completion-script fish > "$stage/completion"
    put 0644 "$stage/completion" "$FISHCOMPDIR/$tool.fish"
    rm -f "$stage/completion"
done

# Man pages compressed (Debian policy, and what rpm's brp-compress would do), -n for reproducible archives.
for page in man/*.[1-8]; do
    section=${page##*.}
    install -d "$stage$MANDIR/man$section"
    # The footer names the version built, not the one the page was last edited for.
    sed "s/^\.Os jobbox.*/.Os jobbox $version/" "$page" | gzip -9n > "$stage$MANDIR/man$section/$(basename "$page").gz"
    chmod 0644 "$stage$MANDIR/man$section/$(basename "$page").gz"
done

put 0644 packaging/jobbox.conf "$SYSCONFDIR/jobbox/jobbox.conf"

# The units name the tools by their installed path.
for unit in examples/systemd/*.service examples/systemd/*.timer; do
    [ -f "$unit" ] || continue
    install -d "$stage$UNITDIR"
    sed -E "s#/usr/(local/)?bin/(cg-exec|ns-exec|netacct|chroot-tool|jobstat)([^A-Za-z0-9_-]|\$)#$BINDIR/\\2\\3#g" "$unit" \
        > "$stage$UNITDIR/$(basename "$unit")"
    chmod 0644 "$stage$UNITDIR/$(basename "$unit")"
done

# The HTCondor and Slurm examples (the systemd units are installed as units above).
for dir in htcondor slurm; do
    for file in "examples/$dir"/*; do
        mode=0644
        [ -x "$file" ] && mode=0755
        put "$mode" "$file" "$DOCDIR/examples/$dir/$(basename "$file")"
    done
done
put 0644 packaging/copyright "$DOCDIR/copyright"
# The changelog of a native package (Debian's changelog.gz; rpm carries it as documentation too): one entry for
# this version, dated by the last commit so that a rebuild is identical.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'jobbox (%s) unstable; urgency=medium\n\n  * Built from jobbox %s; the history is the git log.\n\n -- %s  %s\n' \
    "$version" "$version" "$(sed -n 's/^Maintainer: //p' packaging/deb/control.in)" "$date" |
    gzip -9n > "$stage/changelog.gz"
put 0644 "$stage/changelog.gz" "$DOCDIR/changelog.gz"
rm -f "$stage/changelog.gz"

if [ "${1:-}" = "--list" ]; then
    (cd "$stage" && find . -type f -printf '/%P\n' | sort)
    exit 0
fi
# Never overwrite a configuration the administrator already has (the packages keep theirs as a conffile).
if [ -e "$DESTDIR$SYSCONFDIR/jobbox/jobbox.conf" ]; then
    echo "install: keeping $DESTDIR$SYSCONFDIR/jobbox/jobbox.conf" >&2
    rm -f "$stage$SYSCONFDIR/jobbox/jobbox.conf"
fi
mkdir -p "${DESTDIR:-/}"
cp -R --no-preserve=ownership "$stage/." "${DESTDIR:-/}"
