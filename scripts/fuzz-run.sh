#!/bin/bash
# Runs every libFuzzer target of fuzz/ (built by `make fuzz`) for $FUZZ_SECONDS (default 30) each, from its seed
# corpus in fuzz/corpus/<target>/. New inputs go to a scratch copy, so the committed corpus stays small. A crash,
# a timeout (-timeout=5) or a memory blow-up (-rss_limit_mb=2048) fails the run; the reproducer is kept in
# fuzz/artifacts/<target>/ and named in the output.
set -euo pipefail
# Swift's own backtracer would catch a crash first and exit without libFuzzer writing the reproducer.
export SWIFT_BACKTRACE=enable=no
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/fuzz/.build/release
seconds=${FUZZ_SECONDS:-30}
targets=${FUZZ_TARGETS:-"config classad-read classad-roundtrip jobad chroot-spec lease mountinfo cgroup-stat"}
work=$(mktemp -d "${TMPDIR:-/tmp}/jobbox-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=
for target in $targets; do
    [ -x "$bin/fuzz-$target" ] || { echo "fuzz-run: $bin/fuzz-$target is missing (make fuzz)" >&2; exit 1; }
    mkdir -p "$work/$target" "$here/fuzz/artifacts/$target"
    cp -R "$here/fuzz/corpus/$target/." "$work/$target/"
    if "$bin/fuzz-$target" "$work/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=5 -max_len=65536 \
        -artifact_prefix="$here/fuzz/artifacts/$target/" -print_final_stats=1 > "$work/$target.log" 2>&1; then
        echo "fuzz $target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$') runs in ${seconds} s, no finding"
    else
        echo "fuzz $target: FAILED" >&2
        grep -E 'ERROR|SUMMARY|Test unit written|Fatal error|precondition' "$work/$target.log" | head -20 >&2
        failed="$failed $target"
    fi
done
[ -z "$failed" ] || { echo "fuzz-run: findings in:$failed" >&2; exit 1; }
