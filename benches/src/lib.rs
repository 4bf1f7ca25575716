//! Shared fixtures of warden's criterion benches: an engine over in-memory
//! ports with resolved peers, and the VXLAN frames to feed it.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::counters::Counters;
use dataplane::engine::Engine;
use dataplane::port::{MemoryPort, Port};
use overlay::{MacAddr, OuterParams, OuterTemplate, Vni};

/// Two peer VTEPs in VNI 100, a third in VNI 200; warden routes between.
pub const CONFIG: &str = r#"
[instance]
name = "bench"
control_socket = "/tmp/warden-bench.sock"

[underlay]
port = "uplink"
address = "10.0.0.1/24"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"

[[peer]]
address = "10.0.0.2"
vnis = [100]

[[peer]]
address = "10.0.0.3"
vnis = [100]

[[peer]]
address = "10.0.0.4"
vnis = [200]

[[vni]]
id = 100
gateway = "10.1.0.1/24"

[[vni]]
id = 200
gateway = "10.2.0.1/24"

[[fdb]]
vni = 100
mac = "02:00:00:00:01:03"
peer = "10.0.0.3"

[[fdb]]
vni = 200
mac = "02:00:00:00:02:04"
peer = "10.0.0.4"

[[neighbor]]
vni = 200
ip = "10.2.0.4"
mac = "02:00:00:00:02:04"
"#;

pub const WARDEN_MAC: MacAddr = MacAddr([2, 0x77, 0, 0, 0, 1]);
pub const PEER_A_MAC: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 2]);
/// Inner MACs: a workload behind peer A, one behind peer B (static FDB).
pub const INNER_A: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
pub const INNER_B: MacAddr = MacAddr([2, 0, 0, 0, 1, 3]);

/// An engine whose underlay is one end of an in-memory pair; the other end
/// is returned for the bench to feed and drain.
pub fn engine() -> (Engine, MemoryPort) {
    let cfg = config::parse_warden(CONFIG, "bench.toml").expect("bench config is valid");
    let (mut ours, wire) = MemoryPort::pair("mem0", "wire", 1024);
    ours.set_mac(WARDEN_MAC);
    let counters = Arc::new(Counters::new(1, cfg.vnis.len(), cfg.peers.len(), 1));
    let ports: Vec<Box<dyn Port>> = vec![Box::new(ours)];
    let mut engine =
        Engine::new(&cfg, ports, counters).expect("bench config has no identity secrets to read");
    resolve_peers(&mut engine, &wire);
    (engine, wire)
}

/// Answer the ARP requests the host stack sends for each peer, until every
/// peer has a next-hop MAC.
fn resolve_peers(engine: &mut Engine, wire: &MemoryPort) {
    for _ in 0..600 {
        engine.force_housekeeping();
        let mut requests = Vec::new();
        wire.recv_all(|f| {
            if let Some(ip) = arp_request_target(f) {
                requests.push(ip);
            }
        });
        for ip in requests {
            wire.send(&arp_reply(ip));
        }
        engine.poll();
        if (0..engine.peers().len()).all(|r| engine.peer_next_hop(r).is_some()) {
            wire.recv_all(|_| {});
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!(
        "bench fixture: peers did not resolve: {:?} {:?}",
        engine.host(),
        engine.counters()
    );
}

fn arp_request_target(f: &[u8]) -> Option<Ipv4Addr> {
    let eth = overlay::ethernet::Frame::new_checked(f).ok()?;
    if eth.ethertype() != overlay::EtherType::ARP {
        return None;
    }
    let a =
        overlay::arp::Repr::parse(&overlay::arp::Packet::new_checked(eth.payload()).ok()?).ok()?;
    (a.operation == overlay::arp::Operation::REQUEST).then_some(a.target_protocol_addr)
}

fn arp_reply(from: Ipv4Addr) -> Vec<u8> {
    let repr = overlay::arp::Repr {
        operation: overlay::arp::Operation::REPLY,
        source_hardware_addr: PEER_A_MAC,
        source_protocol_addr: from,
        target_hardware_addr: WARDEN_MAC,
        target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = overlay::ethernet::Frame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(WARDEN_MAC);
    eth.set_src_addr(PEER_A_MAC);
    eth.set_ethertype(overlay::EtherType::ARP);
    repr.emit(&mut overlay::arp::Packet::new_unchecked(eth.payload_mut()))
        .expect("buffer sized by buffer_len");
    buf
}

/// A 64-byte inner frame (60 without FCS): Ethernet/IPv4/UDP.
pub fn inner_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = overlay::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// `inner` wrapped in VXLAN from peer `src` to warden, in `vni`.
pub fn vxlan_frame(src: Ipv4Addr, vni: u32, inner: &[u8]) -> Vec<u8> {
    let t = OuterTemplate::new(&OuterParams {
        src_mac: PEER_A_MAC,
        dst_mac: WARDEN_MAC,
        src_ip: src,
        dst_ip: Ipv4Addr::new(10, 0, 0, 1),
        vni: Vni::new(vni).expect("valid VNI"),
        dst_port: 4789,
        ttl: 64,
        gbp: None,
    });
    let mut f = vec![0u8; overlay::OUTER_LEN + inner.len()];
    t.write_into(&mut f, inner.len(), 50000)
        .expect("50-byte header");
    f[overlay::OUTER_LEN..].copy_from_slice(inner);
    f
}

// --- The identity benches' engine (identity_engine.rs, examples/instr.rs).

/// The workload behind the warden (db) and the remote one (api).
pub const API_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x21]);
pub const DB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x23]);

/// `filler` rules (api -> db over UDP, one port each: none matches the
/// bench's TCP flows) come before the rule that admits them.
pub fn identity_config(secret: &str, filler: usize) -> String {
    let mut rules = String::new();
    for p in 0..filler {
        rules += &format!(
            "[[policy.set.rule]]\nfrom = [\"api\"]\nto = [\"db\"]\nproto = \"udp\"\nports = [{}]\naction = \"allow\"\n",
            p + 1
        );
    }
    format!(
        r#"
[instance]
name = "bench-ident"
control_socket = "/tmp/warden-bench-ident.sock"
[underlay]
port = "uplink"
address = "10.0.0.1/24"
[identity]
warden_id = "node-2"
secret_file = "{secret}"
[[identity.document]]
name = "api"
[[identity.document]]
name = "db"
[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"
[[port]]
name = "w3"
backend = "tap"
interface = "w3"
vni = 100
[[peer]]
address = "10.0.0.2"
vnis = [100]
kind = "warden"
warden_id = "node-1"
identities = ["api"]
[[vni]]
id = 100
[[fdb]]
vni = 100
mac = "{DB_MAC}"
port = "w3"
[[workload]]
port = "w3"
mac = "{DB_MAC}"
ip = "10.1.0.23"
identity = "db"
[[policy.set]]
name = "db"
{rules}[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [5432]
action = "allow"
"#
    )
}

/// A TCP segment api:sport -> db:5432 with `flags`.
pub fn identity_segment(sport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 54];
    f[0..6].copy_from_slice(&DB_MAC.0);
    f[6..12].copy_from_slice(&API_MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 1, 0, 21]);
    ip[16..20].copy_from_slice(&[10, 1, 0, 23]);
    let c = overlay::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut f[34..54];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&5432u16.to_be_bytes());
    t[4..8].copy_from_slice(&0x1122_3344u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let pseudo = overlay::checksum::pseudo_header_v4(
        Ipv4Addr::new(10, 1, 0, 21),
        Ipv4Addr::new(10, 1, 0, 23),
        overlay::IpProtocol::TCP,
        20,
    );
    let c = !overlay::checksum::add(pseudo, overlay::checksum::sum(t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    f
}
