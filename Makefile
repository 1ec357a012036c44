# jobbox: `make demo` and `make check` do all set-up on a fresh machine (as root).
SWIFT      ?= swift
PREFIX     ?= /usr/local
RELEASE_DIR = .build-release
TOOLS       = cg-exec ns-exec netacct chroot-tool jobstat
VENV        = .venv-htcondor

.PHONY: all deps build check check-v2 check-packages chaos chaos-short demo release install deb rpm dist man lint-man lint-shell lint-swift lint-reentrant format bench fuzz fuzz-run clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build

# Every test: unit tests on fixtures, kernel tests as root, HTCondor's parser on every ad.
check: build
	JOBBOX_HTCONDOR_PYTHON=$(CURDIR)/$(VENV)/bin/python JOBBOX_REQUIRE_HTCONDOR=1 $(SWIFT) test
	@$(MAKE) --no-print-directory lint-man lint-shell lint-swift lint-reentrant
	@$(MAKE) --no-print-directory fuzz-run
	@$(MAKE) --no-print-directory check-packages
	@$(MAKE) --no-print-directory chaos-short

# The chaos and load suite (docs/RELIABILITY.md): kill -9 anywhere in CHAOS_CHAINS full chains, 100 chains at
# once, 500 jobs alive at once, exhaustion; then nothing of it may be left. CHAOS_SEED=N replays a run.
CHAOS_CHAINS ?= 1000
CHAOS_SEED   ?=
CHAOS_ARGS    = $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))
chaos: build
	python3 chaos/run.py .build/debug --chains $(CHAOS_CHAINS) --load 100 --alive 500 --workers 4 --node-jobs 8 --node-datagrams 60000 $(CHAOS_ARGS) --report chaos/last-run.json

# The short run make check does (about a minute here): the same parts, scaled down.
chaos-short: build
	python3 chaos/run.py .build/debug --chains 45 --load 24 --alive 60 --workers 3 --skip-unless-root $(CHAOS_ARGS)

# libFuzzer targets for the parsers of untrusted text (fuzz/Sources): targets of this package that exist only
# with JOBBOX_FUZZ=1, built in their own scratch directory (fuzz/.build); about 2 minutes to build.
FUZZ_TARGETS ?= config classad-read classad-roundtrip jobad chroot-spec lease mountinfo cgroup-stat
fuzz: deps
	for t in $(FUZZ_TARGETS); do \
	    JOBBOX_FUZZ=1 $(SWIFT) build --sanitize=fuzzer -c release --scratch-path fuzz/.build --product fuzz-$$t || exit 1; \
	done

# Each fuzz target for FUZZ_SECONDS (30) from its seed corpus: no crash, timeout or memory blow-up.
fuzz-run: fuzz
	bash scripts/fuzz-run.sh

# cgroup v2 with real controllers in a throwaway VM (qemu, TCG; about 30 s after the release build):
# every scripts/vm/checks/*.sh, see scripts/vm/run-v2-checks.sh.
check-v2: deps
	bash scripts/vm/run-v2-checks.sh

demo: build
	@bash examples/demo.sh

# Static Swift runtime and libstdc++, glibc dynamic (NSS); checked to load on glibc 2.34 (scripts/release-build.sh).
release: deps
	RELEASE_DIR=$(RELEASE_DIR) bash scripts/release-build.sh

# Where make install puts things (scripts/install.sh); the packages use PREFIX=/usr (scripts/package-layout.sh).
# jobbox.conf goes to SYSCONFDIR/jobbox whatever the prefix: the tools read /etc/jobbox/jobbox.conf.
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/jobbox
SYSCONFDIR  ?= /etc
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
UNITDIR     ?= $(PREFIX)/lib/systemd/system
INSTALL_DIRS = PREFIX='$(PREFIX)' BINDIR='$(BINDIR)' MANDIR='$(MANDIR)' DOCDIR='$(DOCDIR)' SYSCONFDIR='$(SYSCONFDIR)' \
    BASHCOMPDIR='$(BASHCOMPDIR)' ZSHCOMPDIR='$(ZSHCOMPDIR)' FISHCOMPDIR='$(FISHCOMPDIR)' UNITDIR='$(UNITDIR)'

# The tools, man pages, completions (bash, zsh, fish), jobbox.conf (kept when one exists), the systemd units of
# examples/systemd, and the HTCondor and Slurm examples under DOCDIR/examples.
install: release
	RELEASE_DIR=$(RELEASE_DIR) DESTDIR='$(DESTDIR)' $(INSTALL_DIRS) bash scripts/install.sh

# dist/jobbox_<version>_amd64.deb and dist/jobbox-<version>-1.x86_64.rpm, each made from make install's tree
# and linted (lintian, rpmlint); the version is scripts/version.sh's.
deb: release
	RELEASE_DIR=$(RELEASE_DIR) bash scripts/package-deb.sh
rpm: release
	RELEASE_DIR=$(RELEASE_DIR) bash scripts/package-rpm.sh

# dist/jobbox-<version>.tar.gz: the tracked tree plus a VERSION file, which scripts/version.sh reads without git.
dist:
	bash scripts/dist.sh

# Both packages installed into throwaway Debian (debootstrap) and EL-like (dnf, local repository) chroots and
# checked there, the file lists compared with make install's, glibc symbol versions (scripts/check-packages.sh).
check-packages: deb rpm
	RELEASE_DIR=$(RELEASE_DIR) bash scripts/check-packages.sh

# The man pages are written by hand in mdoc; this checks they render and lint clean.
man: lint-man
lint-man:
	@for page in man/*.[15]; do \
	    mandoc -T lint -W error "$$page" || exit 1; \
	    man -l "$$page" >/dev/null 2>&1 || { echo "$$page does not render"; exit 1; }; \
	done; echo "man pages: render and lint clean"

# swift format's lint with the committed .swift-format (`make format` rewrites the tree to it).
lint-swift:
	@$(SWIFT) format lint --strict --recursive --parallel --configuration .swift-format Package.swift Plugins Sources Tests fuzz/Sources \
	    && echo "swift sources: swift format clean"

# The C library's look-ups that hand every caller one static record (getpwnam and its kin, gmtime, strtok, ...):
# the tests run in parallel threads of one process, where one test's call overwrites another's answer (a CI run
# once compared `nobody` with wrong ids). The _r variants take the caller's buffer.
NON_REENTRANT = (^|[^.[:alnum:]_])(getpw(nam|uid|ent)|getgr(nam|gid|ent)|gmtime|localtime|ctime|asctime|strtok|getlogin|ttyname|strsignal|inet_ntoa|gethostbyname)\(
lint-reentrant:
	@if git grep -nE '$(NON_REENTRANT)' -- '*.swift' '*.c' '*.h'; then \
	    echo "the calls above return one static record per process: use their _r variants"; exit 1; \
	fi; echo "C library calls: no static-record look-ups"

format:
	$(SWIFT) format --in-place --recursive --parallel --configuration .swift-format Package.swift Plugins Sources Tests fuzz/Sources

# shellcheck on every tracked shell script (found by its #! line, so none is skipped by name).
lint-shell: deps
	@git ls-files -z | xargs -0 awk 'FNR == 1 && /^#!.*(ba|da|busybox )?sh/ { print FILENAME } { nextfile }' | \
	    xargs shellcheck -x && echo "shell scripts: shellcheck clean"

bench: deps
	@bash bench/run

clean:
	rm -rf .build $(RELEASE_DIR) fuzz/.build fuzz/artifacts dist
