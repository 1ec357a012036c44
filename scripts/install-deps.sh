#!/usr/bin/env bash
# Installs what jobbox needs to build, test and demo on a fresh Debian 12 machine, as root.
# Each file in scripts/deps/ lists Debian packages, one per line (# comments allowed); the ones not yet
# installed are installed in one apt-get run. The Python venv with HTCondor's own ClassAd library is made
# in .venv-htcondor for the tests that parse jobbox's output with it.
set -euo pipefail
cd "$(dirname "$0")/.."

wanted=$(sed -e 's/#.*//' scripts/deps/*.txt | tr -s ' \n' '\n' | sort -u | grep -v '^$' || true)
missing=()
for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-o DPkg::Lock::Timeout=300 -q)
    apt-get "${apt_opts[@]}" update >/dev/null
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv-htcondor/bin/python ] || ! .venv-htcondor/bin/python -c 'import classad2, htchirp' 2>/dev/null; then
    echo "install-deps: making .venv-htcondor with HTCondor's Python bindings" >&2
    python3 -m venv .venv-htcondor
    mapfile -t pypi < <(sed -e 's/#.*//' scripts/pypi.txt 2>/dev/null | tr -s ' \n' '\n' | grep -v '^$' || true)
    .venv-htcondor/bin/pip install -q --disable-pip-version-check htcondor "${pypi[@]}"
fi
