//! Instruction-count harness for `benches/instr.sh`: drives one engine
//! through `BURSTS` bursts of 32 frames of one scenario, the way the
//! criterion benches do, with every measured poll inside
//! [`measured_poll`] (never inlined) so that callgrind collects exactly
//! those (`--toggle-collect=*measured_poll*`); warm-up polls are not
//! collected.
//!
//! `instr <l2|l3|ident_est|ident_new> [bursts]`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::counters::Counters;
use dataplane::engine::Engine;
use dataplane::port::{MemoryPort, Port};
use identity::header::{mint, Repr, TagInput};
use identity::keys::{derive_key, EpochClock, Secret};
use identity::{stamp, warden_id_of};
use overlay::{FlowKey, MacAddr};
use warden_benches::{engine, inner_frame, vxlan_frame, INNER_A, INNER_B, WARDEN_MAC};

const BURST: usize = 32;
const WARMUP: usize = 20;

#[inline(never)]
fn measured_poll(eng: &mut Engine) -> usize {
    eng.poll()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "l2".into());
    let bursts: usize = args.next().map_or(1000, |s| s.parse().expect("bursts"));
    match scenario.as_str() {
        "l2" => switched(bursts, false),
        "l3" => switched(bursts, true),
        "ident_est" => identity(bursts, false),
        "ident_new" => identity(bursts, true),
        other => panic!("unknown scenario {other}"),
    }
    println!("packets {}", bursts * BURST);
}

/// The pipeline bench: VXLAN from peer A in VNI 100 to peer B (L2) or
/// routed through the gateway to VNI 200 (L3).
fn switched(bursts: usize, routed: bool) {
    let (mut eng, wire) = engine();
    let (dst_mac, dst_ip) = if routed {
        let gw = eng.vnis()[0].gateway.expect("VNI 100 has a gateway").1;
        (gw, Ipv4Addr::new(10, 2, 0, 4))
    } else {
        (INNER_B, Ipv4Addr::new(10, 1, 0, 3))
    };
    let frames: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| {
            let inner = inner_frame(
                INNER_A,
                dst_mac,
                Ipv4Addr::new(10, 1, 0, 2),
                dst_ip,
                1000 + i,
            );
            vxlan_frame(Ipv4Addr::new(10, 0, 0, 2), 100, &inner)
        })
        .collect();
    for b in 0..WARMUP + bursts {
        for f in &frames {
            wire.send(f);
        }
        if b < WARMUP {
            black_box(eng.poll());
        } else {
            black_box(measured_poll(&mut eng));
        }
        let n = wire.recv_all(|f| {
            black_box(f.len());
        });
        assert_eq!(n, BURST);
    }
    assert_eq!(eng.counters().drops_total(), 0);
    assert_eq!(eng.counters().routed_packets.get() > 0, routed);
}

const API_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x21]);
const DB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x23]);

/// The identity_engine bench (no filler rules): SYNs stamped by a warden
/// peer, verified and delivered to a bound workload, each burst from an
/// empty flow table (`new`), or mid-flow segments of those flows.
fn identity(bursts: usize, new: bool) {
    let secret_path =
        std::env::temp_dir().join(format!("warden-instr-ident-{}.key", std::process::id()));
    std::fs::write(&secret_path, [0x42u8; 32]).expect("write secret");
    let cfg = config::parse_warden(
        &identity_config(&secret_path.display().to_string()),
        "instr.toml",
    )
    .expect("config is valid");
    let (mut ours, wire) = MemoryPort::pair("mem0", "wire", 1024);
    ours.set_mac(WARDEN_MAC);
    let (w3, db) = MemoryPort::pair("w3", "db", 1024);
    let counters = Arc::new(Counters::new(2, 1, 1, 1));
    let ports: Vec<Box<dyn Port>> = vec![Box::new(ours), Box::new(w3)];
    let mut eng = Engine::new(&cfg, ports, counters).expect("engine builds");
    let _ = std::fs::remove_file(&secret_path);

    let secret = Secret::new(vec![0x42; 32]).expect("32-byte secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let epoch = EpochClock::default().epoch_at(now);
    let key = derive_key(
        &secret,
        warden_id_of("node-1"),
        warden_id_of("node-2"),
        epoch,
    );
    let api_id = cfg.documents[0].id();
    let syns: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| {
            let inner = segment(40000 + i, 0x02);
            let flow = FlowKey::from_inner_ethernet(&inner).expect("flow");
            let mut repr = Repr {
                flags: 0,
                epoch: epoch as u8,
                id: api_id,
                timestamp: now as u32,
                nonce: 0x1122_3344,
                tag: [0; 12],
            };
            repr.tag = mint(&key, &repr, &TagInput::new(flow, 100));
            let mut buf = vec![0u8; stamp::IPV4_GROWTH];
            buf.extend_from_slice(&inner);
            let start = stamp::insert(&mut buf, stamp::IPV4_GROWTH, &repr).expect("stamp");
            vxlan_frame(Ipv4Addr::new(10, 0, 0, 2), 100, &buf[start..])
        })
        .collect();
    let acks: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| vxlan_frame(Ipv4Addr::new(10, 0, 0, 2), 100, &segment(40000 + i, 0x10)))
        .collect();
    // The flows the established scenario uses.
    for f in &syns {
        wire.send(f);
    }
    eng.poll();
    db.recv_all(|_| {});
    let frames = if new { &syns } else { &acks };
    for b in 0..WARMUP + bursts {
        if new {
            eng.clear_flows();
        }
        for f in frames {
            wire.send(f);
        }
        if b < WARMUP {
            black_box(eng.poll());
        } else {
            black_box(measured_poll(&mut eng));
        }
        let n = db.recv_all(|f| {
            black_box(f.len());
        });
        assert_eq!(n, BURST);
    }
    assert_eq!(eng.counters().drops_total(), 0);
}

fn identity_config(secret: &str) -> String {
    format!(
        r#"
[instance]
name = "instr-ident"
control_socket = "/tmp/warden-instr-ident.sock"
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
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [5432]
action = "allow"
"#
    )
}

/// A TCP segment api:sport -> db:5432 with `flags` (as identity_engine.rs).
fn segment(sport: u16, flags: u8) -> Vec<u8> {
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
