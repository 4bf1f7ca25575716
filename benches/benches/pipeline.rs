//! Whole-pipeline benches through the in-memory port: parse + decap +
//! forward + encap of 64-byte inner frames, ns per packet.
//!
//! `cargo bench -p warden-benches --bench pipeline`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warden_benches::{engine, inner_frame, vxlan_frame, INNER_A, INNER_B};

const BURST: usize = 32;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));

    // L2: VXLAN in from peer A, FDB hit on peer B, VXLAN out.
    let (mut eng, wire) = engine();
    let frames: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| {
            let inner = inner_frame(
                INNER_A,
                INNER_B,
                Ipv4Addr::new(10, 1, 0, 2),
                Ipv4Addr::new(10, 1, 0, 3),
                1000 + i,
            );
            vxlan_frame(Ipv4Addr::new(10, 0, 0, 2), 100, &inner)
        })
        .collect();
    g.bench_function("l2_decap_switch_encap_64B", |b| {
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

    // L3: VXLAN in on VNI 100 to the gateway MAC, routed to VNI 200, VXLAN out.
    let (mut eng, wire) = engine();
    let gw_mac = eng.vnis()[0].gateway.expect("VNI 100 has a gateway").1;
    let frames: Vec<Vec<u8>> = (0..BURST as u16)
        .map(|i| {
            let inner = inner_frame(
                INNER_A,
                gw_mac,
                Ipv4Addr::new(10, 1, 0, 2),
                Ipv4Addr::new(10, 2, 0, 4),
                1000 + i,
            );
            vxlan_frame(Ipv4Addr::new(10, 0, 0, 2), 100, &inner)
        })
        .collect();
    g.bench_function("l3_decap_route_encap_64B", |b| {
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
    assert!(eng.counters().routed_packets.get() > 0);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
