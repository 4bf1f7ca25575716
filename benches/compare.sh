#!/usr/bin/env bash
# Before/after in one run: the same criterion benches for git revision REV
# (built in a temporary worktree) and for this work tree, back to back on
# this machine, then a table of both. Benches must exist in both trees.
#
#   benches/compare.sh REV [BENCH...]     (default benches: pipeline identity_engine)
#
# ROUNDS=N (default 1) runs before and after alternately N times and
# reports, per bench, the lowest of each side's medians: on a shared
# machine, load from other work then hits both sides alike, and the
# lowest median is the least disturbed one.
#
# BEFORE_EDIT=SCRIPT runs `SCRIPT WORKTREE` on REV's worktree before
# building it (e.g. benches/hooks-off.sh: the same commit with the
# operations hooks compiled out).
#
# SAME_BENCH=1 copies this tree's bench sources (benches/benches/BENCH.rs)
# into REV's worktree first, so both engines run the same bench code (the
# bench must use only API both trees have).
set -euo pipefail
rev=${1:?usage: benches/compare.sh REV [BENCH...]}
shift
benches=${*:-pipeline identity_engine}
root=$(cd "$(dirname "$0")/.." && pwd)
wt=$(mktemp -d /tmp/warden-compare.XXXXXX)
git -C "$root" worktree add --detach "$wt" "$rev" >/dev/null
trap 'git -C "$root" worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
out=$(mktemp -d /tmp/warden-compare-out.XXXXXX)
if [ -n "${BEFORE_EDIT:-}" ]; then
    "$BEFORE_EDIT" "$wt"
fi
if [ "${SAME_BENCH:-0}" = 1 ]; then
    for b in $benches; do
        cp "$root/benches/benches/$b.rs" "$wt/benches/benches/$b.rs"
    done
fi
run() { # tree label bench
    (cd "$1" && CARGO_TARGET_DIR="$root/target/compare-$2" \
        cargo bench -q -p warden-benches --bench "$3" -- \
        --warm-up-time 2 --measurement-time 6 --noplot 2>/dev/null) |
        awk -v who="$2" '
            /^[a-z_0-9]+\/[a-z0-9_]+/ {name=$1; fresh=1}
            fresh && $1 == "time:" {print who, name, $4, $5; fresh=0}
            fresh && $2 == "time:" {print who, name, $5, $6; fresh=0}' \
        >>"$out/results"
}
for round in $(seq "${ROUNDS:-1}"); do
    for b in $benches; do
        run "$wt" before "$b"
        run "$root" after "$b"
    done
done
echo "bench                                        before            after   (lowest median of ${ROUNDS:-1} round(s))"
awk 'function ns(v, u) { return u == "ns" ? v : u == "µs" ? v * 1000 : u == "ms" ? v * 1e6 : v / 1000 }
     {key=$2; id=$1 "|" key; t=ns($3, $4); keys[key]=1
      if (!(id in best) || t < best[id]) {best[id]=t; shown[id]=$3 " " $4}}
     END {for (k in keys) printf "%-40s %12s %16s\n", k, shown["before|" k], shown["after|" k]}' \
    "$out/results" | sort
echo "raw: $out/results"
