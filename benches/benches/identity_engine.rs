//! Identity on, through the whole receive pipeline of one engine. First,
//! new verified flows:
//! VXLAN from a warden peer, decap, identity header find + key lookup +
//! verify + window + authorization, policy lookup, flow insert, strip, delivery
//! to a local workload's port. Each iteration starts from an empty flow
//! table, so every SYN is a new flow. Then established flows: mid-flow
//! segments of 32 flows, in turn, from the peer to the workload.
//!
//! `cargo bench -p warden-benches --bench identity_engine`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::counters::Counters;
use dataplane::engine::Engine;
use dataplane::port::{MemoryPort, Port};
use identity::header::{mint, Repr, TagInput};
use identity::keys::{derive_key, EpochClock, Secret};
use identity::{stamp, warden_id_of};
use overlay::{FlowKey, MacAddr};
use warden_benches::{vxlan_frame, WARDEN_MAC};

const BURST: usize = 32;
const API_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x21]);
const DB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x23]);

/// `filler` rules (api -> db over UDP, one port each: none matches the
/// bench's TCP flows) come before the rule that admits them.
fn config(secret: &str, filler: usize) -> String {
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

/// A TCP SYN api:sport -> db:5432 (Ethernet/IPv4/TCP, checksums right).
fn syn(sport: u16) -> Vec<u8> {
    segment(sport, 0x02)
}

/// A TCP segment api:sport -> db:5432 with `flags`.
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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity_engine");
    g.throughput(Throughput::Elements(BURST as u64));
    run(&mut g, 0, "");
    // The same through a policy of 10,000 rules, the admitting one last.
    run(&mut g, 9_999, "_10k_rules");
    g.finish();
}

fn run(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    filler: usize,
    suffix: &str,
) {
    let secret_path =
        std::env::temp_dir().join(format!("warden-bench-ident-{}.key", std::process::id()));
    std::fs::write(&secret_path, [0x42u8; 32]).expect("write secret");
    let cfg = config::parse_warden(
        &config(&secret_path.display().to_string(), filler),
        "bench.toml",
    )
    .expect("bench config is valid");
    let (mut ours, wire) = MemoryPort::pair("mem0", "wire", 1024);
    ours.set_mac(WARDEN_MAC);
    let (w3, db) = MemoryPort::pair("w3", "db", 1024);
    let counters = Arc::new(Counters::new(2, 1, 1, 1));
    let ports: Vec<Box<dyn Port>> = vec![Box::new(ours), Box::new(w3)];
    let mut eng = Engine::new(&cfg, ports, counters).expect("engine builds");

    // Stamp BURST SYNs as node-1 would, with the current epoch and time.
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
    let frames: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| {
            let inner = syn(40000 + i);
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

    g.bench_function(format!("new_verified_flow_syn_to_workload{suffix}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                eng.clear_flows();
                let t0 = Instant::now();
                for f in &frames {
                    wire.send(f);
                }
                black_box(eng.poll());
                db.recv_all(|f| {
                    black_box(f.len());
                });
                total += t0.elapsed();
            }
            total
        })
    });
    // Established flows with identity on: the SYNs above opened them; then
    // mid-flow segments from the same peer, no header, to the workload.
    eng.clear_flows();
    for f in &frames {
        wire.send(f);
    }
    eng.poll();
    db.recv_all(|_| {});
    let acks: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| vxlan_frame(Ipv4Addr::new(10, 0, 0, 2), 100, &segment(40000 + i, 0x10)))
        .collect();
    g.bench_function(format!("established_segment_to_workload{suffix}"), |b| {
        b.iter(|| {
            for f in &acks {
                wire.send(f);
            }
            black_box(eng.poll());
            db.recv_all(|f| {
                black_box(f.len());
            });
        })
    });
    let delivered = eng.counters().vnis[0].tx_local_packets.get();
    assert_eq!(
        eng.counters().drops_total(),
        0,
        "every stamped SYN must verify and pass"
    );
    assert!(delivered > 0);
    let _ = std::fs::remove_file(&secret_path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
