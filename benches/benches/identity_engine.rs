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
use overlay::FlowKey;
use warden_benches::{identity_config, identity_segment, vxlan_frame, WARDEN_MAC};

const BURST: usize = 32;

/// A TCP SYN api:sport -> db:5432 (Ethernet/IPv4/TCP, checksums right).
fn syn(sport: u16) -> Vec<u8> {
    identity_segment(sport, 0x02)
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
        &identity_config(&secret_path.display().to_string(), filler),
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
        .map(|i| {
            vxlan_frame(
                Ipv4Addr::new(10, 0, 0, 2),
                100,
                &identity_segment(40000 + i, 0x10),
            )
        })
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
