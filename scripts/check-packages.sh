#!/usr/bin/env bash
# make check-packages (part of make check): the .deb and the .rpm of make deb / make rpm, checked as a site would
# use them. Prints PASS/FAIL lines; fails when any check fails.
#   - every release binary a static executable that needs nothing of the node's glibc, so it runs on EL9's 2.34
#     (scripts/check-static-binaries.sh), in the build and in both packages;
#   - each package's file list equals what `make install` installs with the same directories;
#   - the .deb installed with dpkg into a Debian chroot (debootstrap through chroot-tool, from the mirror apt
#     uses, downloads kept in .cache/chroot-tool/debootstrap as chroot-tool's tests keep theirs, the finished tree
#     in .cache/packages), and the .rpm with dnf into an EL-like chroot built by chroot-tool's dnf backend from a
#     local repository (createrepo_c, as chroot-tool's tests do; its base package carries this host's libraries,
#     with rpm's automatic Provides, so the RPM's automatic Requires must resolve): in each, every tool's
#     --version prints the version, man -w finds every page, each bash, zsh and fish completion loads, the units pass
#     systemd-analyze verify, the Prometheus unit's command writes its file, and removal leaves nothing behind.
# Every mount is made in a private mount namespace (unshare), so none outlives the check, even when it fails;
# the trap removes the work directory (and unmounts anything found below it, should a namespace leak one);
# CHECK_PACKAGES_KEEP=1 keeps it to look at.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
release=${RELEASE_DIR:-.build-release}/release
tools=(cg-exec ns-exec netacct chroot-tool jobstat)
version=$(sh scripts/version.sh)
deb=$repo/dist/jobbox_${version}_amd64.deb
rpm=$repo/dist/jobbox-${version}-1.x86_64.rpm
for package in "$deb" "$rpm"; do
    [ -f "$package" ] || { echo "check-packages: no $package (make deb rpm)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "check-packages: SKIP (chroots need root)"; exit 0; }

work=$(mktemp -d /tmp/jbp-check.XXXXXX)
cleanup() {
    # Deepest first; none is expected (every mount was made in a namespace that has ended).
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mount; do umount -l "$mount" || true; done
    if [ -n "${CHECK_PACKAGES_KEEP:-}" ]; then echo "check-packages: kept $work"; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: PASS when the command succeeds, FAIL with its output otherwise.
check() {
    local description=$1 output
    shift
    if output=$("$@" 2>&1); then pass "$description"; else fail "$description"; printf '%s\n' "$output" | sed 's/^/    /'; fi
}

# --- static executables ---------------------------------------------------------------------------------------
check "release binaries: static executables" bash scripts/check-static-binaries.sh "$release"
mkdir -p "$work/deb-x"
dpkg-deb -x "$deb" "$work/deb-x"
check ".deb binaries: static executables" bash scripts/check-static-binaries.sh "$work/deb-x/usr/bin"
mkdir -p "$work/rpm-x"
(cd "$work/rpm-x" && rpm2cpio "$rpm" | cpio -idm --quiet)
check ".rpm binaries: static executables" bash scripts/check-static-binaries.sh "$work/rpm-x/usr/bin"

# --- file lists against make install --------------------------------------------------------------------------
installed_files() { (cd "$1" && find . ! -type d -printf '/%P\n' | sort); }
same_files() { # same_files LABEL PACKAGE_LIST MAKE_INSTALL_LIST
    if diff -u "$3" "$2" > "$work/diff"; then
        pass "$1 holds exactly what make install installs ($(wc -l < "$2") files)"
    else
        fail "$1 differs from make install (- make install, + package):"
        sed 's/^/    /' "$work/diff"
    fi
}
for kind in deb rpm; do
    (
        # shellcheck source=scripts/package-layout.sh
        . scripts/package-layout.sh "$kind"
        make --no-print-directory -s install RELEASE_DIR="${RELEASE_DIR:-.build-release}" DESTDIR="$work/make-$kind" \
            PREFIX="$PREFIX" BINDIR="$BINDIR" MANDIR="$MANDIR" DOCDIR="$DOCDIR" SYSCONFDIR="$SYSCONFDIR" \
            BASHCOMPDIR="$BASHCOMPDIR" ZSHCOMPDIR="$ZSHCOMPDIR" FISHCOMPDIR="$FISHCOMPDIR" UNITDIR="$UNITDIR" >/dev/null
    )
    installed_files "$work/make-$kind" > "$work/make-$kind.list"
done
installed_files "$work/deb-x" > "$work/deb.list"
same_files ".deb" "$work/deb.list" "$work/make-deb.list"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | awk '$1 !~ /^d/ { print $2 }' | sort > "$work/rpm.list"
same_files ".rpm" "$work/rpm.list" "$work/make-rpm.list"
check "make install's tree and the .rpm's have the same bytes" diff -r "$work/make-rpm" "$work/rpm-x"

# --- chroot-tool builds the chroots ---------------------------------------------------------------------------
mkdir -p "$work/chroot"
printf 'CHROOT_DIR = %s/chroot\nCHROOT_MOUNT_POINTS =\n' "$work" > "$work/jobbox.conf"
chroot_tool() { "$release/chroot-tool" --config "$work/jobbox.conf" "$@"; }

# The first URI and suite (without '-', so not -updates or -security) apt uses.
apt_mirror() {
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        awk '/^URIs:/ { uri = $2 } /^Suites:/ { if (uri != "" && $2 !~ /-/) { print uri, $2; exit } }' \
            /etc/apt/sources.list.d/debian.sources
    fi
    if [ -f /etc/apt/sources.list ]; then
        awk '$1 == "deb" && $3 !~ /-/ { print $2, $3; exit }' /etc/apt/sources.list
    fi
}
read -r mirror suite < <(apt_mirror | head -1) || true
[ -n "${suite:-}" ] || { echo "check-packages: no Debian mirror configured for apt" >&2; exit 1; }

# The Debian chroot: minbase, man-db, and the .deb's own dependencies (names from its Depends field, which the
# static tools leave empty today).
deb_packages=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/[[:space:]]//g' | { grep -v '^$' || true; } |
    sort -u | paste -sd,)
deb_packages="man-db${deb_packages:+,$deb_packages}"
cache=$repo/.cache/packages
tree=$cache/debian-$suite-$(echo "$mirror $deb_packages" | sha256sum | cut -c1-12).tar
debroot=$work/debian
if [ ! -f "$tree" ]; then
    echo "check-packages: building a $suite chroot with chroot-tool (debootstrap; cached in $tree)"
    check "chroot-tool builds the Debian chroot ($deb_packages)" unshare --mount --propagation private \
        "$release/chroot-tool" --config "$work/jobbox.conf" build jbpdeb --backend debootstrap --release "$suite" \
        --repo "$mirror" --packages "$deb_packages" --cache-dir "$repo/.cache/chroot-tool/debootstrap" -q
    mkdir -p "$cache"
    tar -C "$work/chroot/jbpdeb-v1" -cf "$tree.tmp" . && mv "$tree.tmp" "$tree"
    rm -rf --one-file-system "$work/chroot/jbpdeb-v1"
fi
mkdir -p "$debroot"
tar -C "$debroot" -xf "$tree"

# The EL-like chroot: a base package of this host's loader, libraries, bash and man-db (rpm's automatic
# Provides name every soname in it, as an EL9 system's packages would), and the jobbox RPM, installed by dnf.
elbase=$work/elbase
mkdir -p "$elbase/root" "$work/rpmrepo"
# Debian's x86_64 loader is /lib64/ld-linux-x86-64.so.2 and finds libraries in its multiarch directories.
programs=(/usr/bin/bash /usr/bin/man /usr/bin/env /usr/bin/mv /usr/bin/rm /usr/bin/ls)
libraries=$({
    # A static tool has nothing to list (ldd fails on it).
    for program in "${programs[@]}" "${tools[@]/#/$release/}"; do
        { ldd "$program" 2>/dev/null || true; } | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
    done
} | sort -u)
for file in "${programs[@]}" $libraries; do
    real=$(readlink -f "$file")
    install -D -m 0755 "$real" "$elbase/root$real"
    [ "$real" = "$file" ] || [ "${file#/lib64/}" != "$file" ] || [ "${file#/lib/}" != "$file" ] ||
        ln -sf "$real" "$elbase/root$file"
done
for file in $libraries; do # the sonames the loader looks for (libfoo.so.1 -> libfoo.so.1.2.3)
    real=$(readlink -f "$file")
    [ "$(dirname "$real")/$(basename "$file")" = "$real" ] || ln -sf "$(basename "$real")" "$elbase/root$(dirname "$real")/$(basename "$file")"
done
install -D -m 0644 /etc/manpath.config "$elbase/root/etc/manpath.config"
printf 'root:x:0:0:root:/root:/bin/bash\nman:x:6:12:man:/var/cache/man:/usr/sbin/nologin\n' > "$elbase/passwd"
install -D -m 0644 "$elbase/passwd" "$elbase/root/etc/passwd"
printf 'root:x:0:\nman:x:12:\n' > "$elbase/group"
install -D -m 0644 "$elbase/group" "$elbase/root/etc/group"
ln -s bash "$elbase/root/usr/bin/sh"
mkdir -p "$elbase/root/lib64"
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$elbase/root/lib64/ld-linux-x86-64.so.2"
for dir in bin sbin lib; do ln -s "usr/$dir" "$elbase/root/$dir"; done
mkdir -p "$elbase/root/usr/sbin"
(
    cd "$elbase/root"
    echo 'Name: jbp-el-base'
    echo 'Version: 9'
    echo 'Release: 1'
    echo 'Summary: an EL-like base for jobbox check-packages.sh: the loader, libraries, bash and man-db of the host'
    echo 'License: various'
    echo 'AutoReq: no'
    echo 'Provides: /bin/sh'
    # What EL's glibc provides by name: the loader's hash style.
    echo 'Provides: rtld(GNU_HASH)'
    echo '%description'
    echo 'A stand-in for an EL9 base system, made of this host'"'"'s files.'
    echo '%install'
    echo "cp -a $elbase/root/. %{buildroot}/"
    echo '%files'
    find . ! -type d -printf '/%P\n' | sort
) > "$elbase/jbp-el-base.spec"
check "rpmbuild makes the EL-like base package" rpmbuild --quiet -bb --define "_topdir $elbase/rpmbuild" \
    --define "__strip /bin/true" --define "debug_package %{nil}" --define "__os_install_post %{nil}" "$elbase/jbp-el-base.spec"
cp "$elbase"/rpmbuild/RPMS/*/*.rpm "$rpm" "$work/rpmrepo/"
check "createrepo_c makes the local repository" createrepo_c -q "$work/rpmrepo"
check "chroot-tool builds the EL-like chroot with dnf: jobbox's automatic Requires resolve" \
    unshare --mount --propagation private "$release/chroot-tool" --config "$work/jobbox.conf" build jbpel \
    --backend dnf --release 9 --repo "file://$work/rpmrepo" --packages "jbp-el-base jobbox" --no-gpg-check -q
elroot=$work/chroot/jbpel-v1

# --- inside each chroot ---------------------------------------------------------------------------------------
# in_chroot ROOT COMMAND...: COMMAND in ROOT with /proc, /sys and /dev, all mounted in a private mount namespace.
in_chroot() {
    local root=$1
    shift
    mkdir -p "$root/proc" "$root/sys" "$root/dev"
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount --propagation private sh -c '
        root=$1; shift
        mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev" &&
            exec chroot "$root" "$@"' sh "$root" "$@"
}
# The unit's ExecStart as systemd would run it ($$ is $, \\ is \), to run in a chroot.
exec_start() { sed -n 's/^ExecStart=//p' "$1" | sed -e 's/\$\$/$/g' -e 's/\\\\/\\/g'; }

check_installed() { # check_installed LABEL ROOT ZSHDIR
    local label=$1 root=$2 zshdir=$3 tool page name section
    for tool in "${tools[@]}"; do
        if [ "$(in_chroot "$root" "/usr/bin/$tool" --version 2>&1)" = "$version" ]; then
            pass "$label: $tool --version prints $version"
        else
            fail "$label: $tool --version: $(in_chroot "$root" "/usr/bin/$tool" --version 2>&1 | head -3)"
        fi
        check "$label: the bash completion of $tool loads" \
            in_chroot "$root" bash -c "source /usr/share/bash-completion/completions/$tool && complete -p $tool"
        # The chroots have no zsh or fish: the host's load the files the package installed there. zsh: the
        # function autoloads from the package's directory; fish: the file defines completions that complete.
        check "$label: the zsh completion of $tool loads from $zshdir" zsh -f -c \
            "fpath=('$root$zshdir' \$fpath); autoload -Uz compinit && compinit -u -D && autoload +X -Uz _$tool && [[ \$_comps[$tool] == _$tool ]]"
        check "$label: the fish completion of $tool completes --help" sh -c \
            "fish --no-config -c 'source $root/usr/share/fish/vendor_completions.d/$tool.fish; complete -C\"$tool --he\"' | grep -q '^--help'"
    done
    for page in man/*.[1-8]; do
        name=$(basename "$page")
        section=${name##*.}
        name=${name%.*}
        check "$label: man -w finds $name($section)" \
            test "$(in_chroot "$root" man -w "$section" "$name" 2>/dev/null)" = "/usr/share/man/man$section/$name.$section.gz"
    done
    # systemd-analyze runs here, on copies of the units the package installed in the chroot (the chroots run no
    # systemd) whose commands in /usr/bin point into the chroot, so the check sees the packaged binaries exist; their
    # man: links are looked up in the chroot's pages.
    local units unit
    rm -rf "$work/units" && mkdir -p "$work/units"
    while IFS= read -r unit; do
        sed "s#^\(Exec[A-Za-z]*=[-@!+:]*\)/usr/bin/#\1$root/usr/bin/#" "$root$unit" > "$work/units/${unit##*/}"
    done < <(grep '^/usr/lib/systemd/system/' "$work/deb.list")
    mapfile -t units < <(find "$work/units" -type f | sort)
    check "$label: systemd-analyze verify ${units[*]##*/}" env MANPATH="$root/usr/share/man" \
        systemd-analyze verify "${units[@]}"
    local command
    command=$(exec_start "$root/usr/lib/systemd/system/jobbox-jobstat-prometheus.service")
    rm -f "$root/tmp/jbp.prom"
    check "$label: the page's footer names the version" sh -c "zcat '$root/usr/share/man/man1/jobstat.1.gz' | grep -qx '.Os jobbox $version'"
    check "$label: the Prometheus unit's command writes its file" \
        in_chroot "$root" env JOBBOX_PROM_FILE=/tmp/jbp.prom /bin/sh -c "$command"
    check "$label: the written file is valid Prometheus text, no temporary file left" sh -c \
        "promtool check metrics < '$root/tmp/jbp.prom' && [ -z \"\$(ls '$root/tmp' | grep -v '^jbp.prom\$')\" ]"
}

# The .deb: dpkg checks its dependencies against the chroot's packages.
cp "$deb" "$debroot/tmp/jobbox.deb"
check "Debian: dpkg -i installs the .deb" in_chroot "$debroot" dpkg -i /tmp/jobbox.deb
rm -f "$debroot/tmp/jobbox.deb"
check "Debian: jobbox.conf is a conffile" sh -c "dpkg-query --admindir='$debroot/var/lib/dpkg' -W -f='\${Conffiles}' jobbox | grep -q '/etc/jobbox/jobbox.conf'"
check_installed Debian "$debroot" /usr/share/zsh/vendor-completions
check "Debian: dpkg --purge removes every file" in_chroot "$debroot" sh -c \
    'dpkg --purge jobbox >/dev/null && ! ls /usr/bin/jobstat /etc/jobbox /usr/share/doc/jobbox 2>/dev/null'

check_installed EL "$elroot" /usr/share/zsh/site-functions
check "EL: jobbox.conf is %config(noreplace)" test "$(rpm --root "$elroot" --dbpath /var/lib/rpm -qc jobbox)" = /etc/jobbox/jobbox.conf
check "EL: rpm -V finds the installed files unchanged" rpm --root "$elroot" --dbpath /var/lib/rpm -V jobbox
check "EL: rpm -e removes every file" sh -c \
    "rpm --root '$elroot' --dbpath /var/lib/rpm -e jobbox && ! ls '$elroot/usr/bin/jobstat' '$elroot/etc/jobbox' '$elroot/usr/share/doc/jobbox' 2>/dev/null"

if [ "$failures" -gt 0 ]; then
    echo "check-packages: $failures checks failed"
    exit 1
fi
echo "check-packages: every check passed"
