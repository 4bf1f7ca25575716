#!/usr/bin/env bash
# The L7 throughput bench of issue 8: in ONE lab run, the same flow with L7
# inspection (port 8080, a rule with an `http` clause) and on an L4-only
# rule (port 8081, the same rule without the clause), same server, same
# client, back to back:
#
#   (a) Mbit/s of one HTTP download of a large file (curl, sendfile server)
#   (b) requests/s of small keep-alive GETs on one connection (python3)
#
# Lab: benches/lab/l7-throughput.toml (w1 -- n1 == VXLAN == n2 -- w3; the
# server runs in w3, so n2 inspects every request at ingress, and n1 too
# once each flow's reply confirmed the L7 rule). Each repetition runs the
# inspected and the L4-only port alternately; the table has the median and
# the min-max per port and the cost of inspection (median vs median).
#
#   benches/lab/l7-throughput.sh            # writes benches/lab/results/YYYYMMDD.txt
#   REPS=7 SIZE_MB=200 RPS_SECS=5 benches/lab/l7-throughput.sh [OUT]
#
# Needs root, curl, python3 and the release binaries (cargo build --release
# -p dataplane -p testbed --bins; $CARGO_TARGET_DIR is honoured, or set
# WARDEN_LAB). Not part of CI. Everything it creates (the lab with its own
# prefix, the server, the temporary directory) goes on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lab_bin=${WARDEN_LAB:-${CARGO_TARGET_DIR:-$repo/target}/release/warden-lab}
warden_bin=$(dirname "$lab_bin")/warden
reps=${REPS:-7}
size_mb=${SIZE_MB:-200}
secs=${RPS_SECS:-5}
out=${1:-$here/results/$(date +%Y%m%d).txt}
topo=$here/l7-throughput.toml
web=10.1.0.23
inspected=8080
l4only=8081

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ -x "$lab_bin" ] || { echo "no $lab_bin: cargo build --release -p dataplane -p testbed --bins" >&2; exit 1; }

prefix=l7t$(( $$ % 100000 ))
tmp=$(mktemp -d /tmp/l7-throughput.XXXXXX)
cleanup() {
    "$lab_bin" down --prefix "$prefix" >"$tmp/down.log" 2>&1 || cat "$tmp/down.log" >&2
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns=$prefix-$1; shift; ip netns exec "$ns" "$@"; }

echo "bringing up the lab (prefix $prefix)" >&2
"$lab_bin" up --prefix "$prefix" --warden "$warden_bin" "$topo" >"$tmp/up.log" 2>&1 \
    || { cat "$tmp/up.log" >&2; exit 1; }
sock_dir=
for b in /run/warden-lab /tmp/warden-lab; do
    [ -S "$b/$prefix/n2.sock" ] && sock_dir=$b/$prefix && break
done
[ -n "$sock_dir" ] || { echo "no control sockets for $prefix" >&2; exit 1; }

# The file and the server, in w3's namespace.
head -c "${size_mb}M" /dev/urandom >"$tmp/big"
in_ns w3 setsid -f python3 "$here/l7-server.py" "$web" "$tmp/big" "$inspected" "$l4only" \
    >"$tmp/server.log" 2>&1 </dev/null
for i in $(seq 100); do
    [ "$(in_ns w3 ss -Hltn "( sport = :$inspected or sport = :$l4only )" | wc -l)" = 2 ] && break
    [ "$i" = 100 ] && { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
done
in_ns w1 ping -c 2 -W 2 -q "$web" >/dev/null   # learn the path

l7_requests() {   # sum of policy.l7_requests of both wardens
    local s=0 n
    for w in n1 n2; do
        n=$("$warden_bin" stats --socket "$sock_dir/$w.sock" --json \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"]["l7_requests"])')
        s=$((s + n))
    done
    echo "$s"
}

download() {   # port -> Mbit/s
    local r
    r=$(in_ns w1 curl -sS -m 120 -o /dev/null -H 'Host: web.svc' \
        -w '%{http_code} %{size_download} %{speed_download}' "http://$web:$1/big")
    set -- $r
    [ "$1" = 200 ] && [ "$2" = $((size_mb * 1024 * 1024)) ] \
        || { echo "download: $r" >&2; return 1; }
    python3 -c "print('%.0f' % ($3 * 8 / 1e6))"
}

rps() {   # port -> requests/s
    in_ns w1 python3 "$here/l7-rps.py" "$web" "$1" "$secs"
}

# Warm up both ports once (and show that only 8080 is inspected).
download "$inspected" >/dev/null; download "$l4only" >/dev/null
r0=$(l7_requests); in_ns w1 python3 "$here/l7-rps.py" "$web" "$l4only" 1 >/dev/null
r1=$(l7_requests); in_ns w1 python3 "$here/l7-rps.py" "$web" "$inspected" 1 >/dev/null
r2=$(l7_requests)
echo "check: L7 requests decided during 1 s on $l4only: $((r1 - r0)), on $inspected: $((r2 - r1))" >&2
[ $((r1 - r0)) = 0 ] && [ $((r2 - r1)) -gt 0 ] || { echo "inspection is not where it should be" >&2; exit 1; }

: >"$tmp/samples"
for rep in $(seq "$reps"); do
    for port in "$inspected" "$l4only"; do
        m=$(download "$port"); echo "dl $port $m" >>"$tmp/samples"
        echo "rep $rep port $port download $m Mbit/s" >&2
    done
    for port in "$inspected" "$l4only"; do
        q=$(rps "$port"); echo "rps $port $q" >>"$tmp/samples"
        echo "rep $rep port $port keep-alive $q req/s" >&2
    done
done

cmd="benches/lab/l7-throughput.sh   (REPS=$reps SIZE_MB=$size_mb RPS_SECS=$secs)"
python3 - "$tmp/samples" "$inspected" "$l4only" "$cmd" "$reps" "$size_mb" "$secs" >"$tmp/table" <<'PY'
import statistics, sys, datetime, platform, os
path, ins, l4, cmd, reps, size, secs = sys.argv[1:]
s = {}
for line in open(path):
    k, port, v = line.split()
    s.setdefault((k, port), []).append(float(v))
print("# L7 throughput bench (issue 8): the same flow with L7 inspection vs an L4-only rule, one lab run")
print("# %s  host %s, %d cores, kernel %s" % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
      platform.node(), os.cpu_count(), platform.release()))
print("# command: %s" % cmd)
print("# lab: benches/lab/l7-throughput.toml; w1 -> n1 == VXLAN == n2 -> w3; python3 HTTP/1.1 server (sendfile) on both ports")
print("# %s: allow api -> web tcp/%s with http = [{ methods = GET HEAD, paths = / /** }] (inspected)" % (ins, ins))
print("# %s: the same rule without the clause (L4 only)" % l4)
print("# download: one GET of %s MiB, curl speed_download; keep-alive: GET of a 3-byte body on one connection for %s s (python3 http.client)" % (size, secs))
print("# %s repetitions, ports alternated within each; median [min-max]" % reps)
print()
print("%-22s %-26s %-26s %s" % ("metric", "inspected :%s" % ins, "L4 only :%s" % l4, "inspection cost (median)"))
ok = True
for k, name, unit in (("dl", "download", "Mbit/s"), ("rps", "keep-alive", "req/s")):
    a, b = s[(k, ins)], s[(k, l4)]
    ma, mb = statistics.median(a), statistics.median(b)
    cost = (mb - ma) / mb * 100
    ok = ok and cost <= 10
    fmt = lambda v, m: "%.0f [%.0f-%.0f]" % (m, min(v), max(v))
    print("%-22s %-26s %-26s %+.1f%%" % ("%s (%s)" % (name, unit), fmt(a, ma), fmt(b, mb), cost))
print()
print("target (inspection costs at most 10%% of either): %s" % ("met" if ok else "NOT met"))
print()
print("# samples (metric port value, in run order):")
for line in open(path):
    print("#   " + line.rstrip())
PY
mkdir -p "$(dirname "$out")"
cp "$tmp/table" "$out"
cat "$tmp/table"
echo "written to $out" >&2
