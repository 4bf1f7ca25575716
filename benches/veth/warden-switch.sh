#!/usr/bin/env bash
# warden as the switch under test of ../shared/bench/peers.sh (its
# SWITCH_CMD hook): VXLAN in on $SW_IN from $REMOTE_VTEP_IP, VNI $VNI,
# decapsulated and switched out of $SW_OUT (an access port) to $SINK_MAC.
#
#   cd ../shared/bench
#   SWITCH_CMD="exec $PWD/../../main/benches/veth/warden-switch.sh" ./peers.sh switch testpmd-afp kernel-vxlan-nft
#
# The harness's allow-list is applied, so warden does the work the kernel
# path (VXLAN + 50 nft rules) and OVS (50 OpenFlow rules) do: TCP from
# $ALLOW_SRC to the $ALLOW_PORTS, default deny, as a policy set. Identity
# is on for that (a policy needs it): the sink is a bound workload; the
# generator is a plain VTEP, so its flows are unauthenticated and matched
# by address. NO_POLICY=1 gives the previous decap + L2 switching only.
# BACKEND=af_xdp opens both ports through AF_XDP instead of AF_PACKET.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The shipped build (`cargo build --profile dist -p dataplane --bin warden`)
# when there is one, else the release build.
dist=$here/../../target/dist/warden
[ -x "$dist" ] || dist=$here/../../target/release/warden
warden=${WARDEN_BIN:-$dist}
run=${RUN_DIR:-/tmp/bench-run}
backend=${BACKEND:-af_packet}
case $backend in af_packet|af_xdp) ;; *) echo "BACKEND must be af_packet or af_xdp, not $backend" >&2; exit 2 ;; esac
mkdir -p "$run"
cfg=$run/warden-bench.toml
cat > "$cfg" <<TOML
[instance]
name = "bench"
control_socket = "$run/warden-bench.sock"

[underlay]
port = "in"
address = "$VTEP_IP/24"

[[port]]
name = "in"
backend = "$backend"
interface = "$SW_IN"

[[port]]
name = "out"
backend = "$backend"
interface = "$SW_OUT"
vni = $VNI

[[peer]]
address = "$REMOTE_VTEP_IP"
vnis = [$VNI]

[[vni]]
id = $VNI

[[fdb]]
vni = $VNI
mac = "$SINK_MAC"
port = "out"
TOML
if [ "${NO_POLICY:-0}" != 1 ]; then
    ports=$(echo $ALLOW_PORTS | tr ' ' ',')
    cat >> "$cfg" <<TOML

[identity]
warden_id = "bench"

[[identity.document]]
name = "bench/sink"

[[workload]]
port = "out"
mac = "$SINK_MAC"
ip = "$SINK_IP"
identity = "bench/sink"

[policy]
default = "enforce"

[[policy.set]]
name = "bench"
[[policy.set.rule]]
from = [{ cidr = "$ALLOW_SRC" }]
to = ["bench/sink"]
proto = "tcp"
ports = [$ports]
action = "allow"
TOML
fi
# warden prints its counters (cycles per packet included) to the log on exit.
exec "$warden" run -c "$cfg"
