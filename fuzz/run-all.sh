#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 20) on stable with no
# sanitizer (-s none) but with debug assertions and overflow checks (-a).
# The committed seeds are copied into a scratch corpus, fuzz/corpus/<target>
# (gitignored), where libFuzzer writes what it finds; fuzz/seeds/<target> is
# passed too, read only. Stops at the first crash; the reproducer is left in
# fuzz/artifacts/<target>/. Regenerate seeds with fuzz/make-seeds.py.
set -euo pipefail

secs="${1:-20}"
cd "$(dirname "$0")"

cargo fuzz build -s none -a
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

for t in $(cargo fuzz list); do
    mkdir -p "corpus/$t"
    if [ -d "seeds/$t" ]; then
        cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    fi
    echo "== $t (${secs}s)"
    status=0
    cargo fuzz run -s none -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "!! $t failed (exit $status); reproducer in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "all targets ran ${secs}s each without a crash"
