#!/usr/bin/env python3
"""Summarise a callgrind output file of the `instr` example (see instr.sh).

usage: instr_report.py CALLGRIND_OUT PACKETS [TOP]

Prints instructions per packet for the whole poll, for the in-memory port
(`MemoryPort` rx_burst + tx_burst, the harness's copies), for the engine
without them, and the TOP functions by self cost (inlined code counts
where it was inlined), in instructions per packet.
"""
import re
import sys
from collections import defaultdict


def parse(path):
    names = {}  # (kind, id) -> name
    self_cost = defaultdict(int)
    calls_cost = defaultdict(int)  # fn -> inclusive cost of its calls to other fns
    total = 0
    fn = None
    cfn = None
    pending_call = False

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?", rest)
        if not m:
            return rest
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, rest)

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("summary:"):
                total = int(line.split()[1])
                continue
            if line.startswith("fn="):
                fn = name("fn", line[3:])
                continue
            if line.startswith("cfn="):
                cfn = name("fn", line[4:])
                continue
            if line.startswith(("fl=", "fi=", "fe=", "cfi=", "cfl=")):
                kind = "fl"
                name(kind, line.split("=", 1)[1])
                continue
            if line.startswith(("ob=", "cob=")):
                name("ob", line.split("=", 1)[1])
                continue
            if line.startswith("calls="):
                pending_call = True
                continue
            if line[0] in "0123456789+-*":
                parts = line.split()
                cost = int(parts[-1]) if len(parts) > 1 else 0
                if pending_call:
                    if cfn != fn:
                        calls_cost[fn] += cost
                    pending_call = False
                else:
                    self_cost[fn] += cost
    return total, self_cost, calls_cost


def main():
    path, packets = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    total, self_cost, calls_cost = parse(path)
    incl = lambda f: self_cost.get(f, 0) + calls_cost.get(f, 0)
    port = sum(
        incl(f)
        for f in set(self_cost) | set(calls_cost)
        if re.search(r"<dataplane::port::memory::MemoryPort as dataplane::port::Port>::(rx|tx)_burst$", f or "")
    )
    print(f"  whole poll   {total / packets:8.1f} instr/pkt")
    print(f"  MemoryPort   {port / packets:8.1f} instr/pkt (rx_burst + tx_burst)")
    print(f"  engine only  {(total - port) / packets:8.1f} instr/pkt")
    if top:
        print(f"  top {top} functions by self cost (instr/pkt):")
        for f, c in sorted(self_cost.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {c / packets:8.1f}  {f}")


if __name__ == "__main__":
    main()
