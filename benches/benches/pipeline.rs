//! Whole-pipeline benches through the in-memory port: parse + decap +
//! forward + encap of 64-byte inner frames, ns per packet.
//!
//! `cargo bench -p warden-benches --bench pipeline`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::engine::Engine;
use dataplane::port::MemoryPort;
use overlay::MacAddr;
use warden_benches::{engine, inner_frame, vxlan_frame, INNER_A, INNER_B};

const BURST: usize = 32;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));

    // L2: VXLAN in from peer A, FDB hit on peer B, VXLAN out.
    let (eng, _) = run(&mut g, "l2_decap_switch_encap_64B", |_| {
        (INNER_B, Ipv4Addr::new(10, 1, 0, 3))
    });
    assert_eq!(eng.counters().routed_packets.get(), 0);

    // L3: VXLAN in on VNI 100 to the gateway MAC, routed to VNI 200, VXLAN out.
    let (eng, _) = run(&mut g, "l3_decap_route_encap_64B", |eng| {
        let gw_mac = eng.vnis()[0].gateway.expect("VNI 100 has a gateway").1;
        (gw_mac, Ipv4Addr::new(10, 2, 0, 4))
    });
    assert!(eng.counters().routed_packets.get() > 0);
    g.finish();
}

/// Bench one burst of BURST frames from peer A in VNI 100, each to the
/// inner (MAC, IP) that `dst` picks, through a fresh engine.
fn run(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    dst: impl Fn(&Engine) -> (MacAddr, Ipv4Addr),
) -> (Engine, MemoryPort) {
    let (mut eng, wire) = engine();
    let (dst_mac, dst_ip) = dst(&eng);
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
    g.bench_function(name, |b| {
        b.iter(|| {
            for f in &frames {
                wire.send(f);
            }
            black_box(eng.poll());
            wire.recv_all(|f| {
                black_box(f.len());
            })
        })
    });
    assert_eq!(
        eng.counters().drops_total(),
        0,
        "bench traffic must not be dropped"
    );
    (eng, wire)
}

criterion_group!(benches, bench);
criterion_main!(benches);
