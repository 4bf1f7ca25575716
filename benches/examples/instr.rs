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
use overlay::FlowKey;
use warden_benches::{
    engine, identity_config, identity_segment, inner_frame, vxlan_frame, INNER_A, INNER_B,
    WARDEN_MAC,
};

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

/// The identity_engine bench (no filler rules): SYNs stamped by a warden
/// peer, verified and delivered to a bound workload, each burst from an
/// empty flow table (`new`), or mid-flow segments of those flows.
fn identity(bursts: usize, new: bool) {
    let secret_path =
        std::env::temp_dir().join(format!("warden-instr-ident-{}.key", std::process::id()));
    std::fs::write(&secret_path, [0x42u8; 32]).expect("write secret");
    let cfg = config::parse_warden(
        &identity_config(&secret_path.display().to_string(), 0),
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
            let inner = identity_segment(40000 + i, 0x02);
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
        .map(|i| {
            vxlan_frame(
                Ipv4Addr::new(10, 0, 0, 2),
                100,
                &identity_segment(40000 + i, 0x10),
            )
        })
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
