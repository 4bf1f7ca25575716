#!/usr/bin/env bash
# Instruction counts of the engine's packet path under callgrind:
# deterministic (unlike ns/packet on a busy machine), so two commits can be
# compared on any machine with valgrind.
#
# usage: benches/instr.sh [SCENARIO...] [-- TOP]
#   SCENARIO: l2 l3 ident_est ident_new (default: all four)
#     l2         pipeline bench: VXLAN in, L2 switch to a peer, VXLAN out
#     l3         pipeline bench: VXLAN in, routed to another VNI, VXLAN out
#     ident_est  identity_engine bench: established flows, peer -> workload
#     ident_new  identity_engine bench: a verified SYN per new flow (empty
#                flow table at each burst), peer -> workload
#   TOP: also list the TOP functions by self cost (default 0: none)
#   BURSTS (env): bursts of 32 packets measured per scenario (default 500)
#
# Builds the `instr` example (benches/examples/instr.rs) with the bench
# profile (release + debug info) into $CARGO_TARGET_DIR (default target/),
# warms each scenario up for 20 bursts, then runs it under
# `valgrind --tool=callgrind --toggle-collect=*measured_poll*`, which counts
# only the measured `Engine::poll` calls (not the harness feeding and
# draining the in-memory wire). Prints, per scenario, instructions per
# packet for:
#   whole poll   everything inside Engine::poll
#   MemoryPort   the in-memory port's rx_burst + tx_burst (ring copies)
#   engine only  whole poll minus MemoryPort
# Raw outputs stay in $OUT (default /tmp/warden-instr) for callgrind_annotate,
# e.g. `callgrind_annotate --auto=yes $OUT/l2.out`; benches/instr_report.py
# makes the summary (and the TOP list) from them.
#
# Counts repeat exactly for one build. Between builds, a change in one
# file can move functions between codegen units (release has 4) and change
# inlining elsewhere: differences of 1-2% in a scenario that the change does
# not touch are that, not the change. Instructions are not cycles either:
# cache misses and slow instructions (a 64-bit division) cost more than
# their count says.
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=()
top=0
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; top="${1:-0}"; break ;;
    *) scenarios+=("$1") ;;
  esac
  shift
done
[ ${#scenarios[@]} -eq 0 ] && scenarios=(l2 l3 ident_est ident_new)
bursts="${BURSTS:-500}"
out="${OUT:-/tmp/warden-instr}"
mkdir -p "$out"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --profile bench -p warden-benches --example instr
bin="$target/release/examples/instr"
for s in "${scenarios[@]}"; do
  valgrind --tool=callgrind --toggle-collect='*measured_poll*' \
    --callgrind-out-file="$out/$s.out" "$bin" "$s" "$bursts" >/dev/null 2>"$out/$s.log" \
    || { cat "$out/$s.log"; exit 1; }
  echo "$s ($bursts bursts of 32):"
  python3 benches/instr_report.py "$out/$s.out" $((bursts * 32)) "$top"
done
