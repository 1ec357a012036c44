# Sourced: the directories a package installs into, for package-deb.sh and package-rpm.sh (and check-packages.sh,
# which compares each package with `make install` into these directories). `. package-layout.sh deb|rpm`
# exports PREFIX, BINDIR, ... as scripts/install.sh reads them. The only difference: zsh's directory for
# completions shipped by packages is vendor-completions on Debian and site-functions on EL.
# shellcheck shell=bash
export PREFIX=/usr SYSCONFDIR=/etc
export BINDIR=$PREFIX/bin MANDIR=$PREFIX/share/man DOCDIR=$PREFIX/share/doc/jobbox UNITDIR=$PREFIX/lib/systemd/system
export BASHCOMPDIR=$PREFIX/share/bash-completion/completions FISHCOMPDIR=$PREFIX/share/fish/vendor_completions.d
case ${1:?deb or rpm} in
    deb) export ZSHCOMPDIR=$PREFIX/share/zsh/vendor-completions ;;
    rpm) export ZSHCOMPDIR=$PREFIX/share/zsh/site-functions ;;
    *) echo "package-layout.sh: deb or rpm, not $1" >&2; return 1 ;;
esac
