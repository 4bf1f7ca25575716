//! The operations surface on the fast path: the L2 pipeline of
//! `pipeline.rs` (bursts of 32 VXLAN frames, decap, classify, switch,
//! encap) with nothing on, with a capture of the uplink's received frames
//! (each frame copied into the ring and handed back by the bench, as the
//! control thread does), and with a live trace whose filter matches none of
//! the packets (every stage noted, nothing sent). ns per packet; the cost of
//! a captured packet is the difference from the first.
//!
//! `cargo bench -p warden-benches --bench ops`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::capture::{self, Point};
use dataplane::engine::{LiveFilter, LiveTap};
use warden_benches::{engine, inner_frame, vxlan_frame, INNER_A, INNER_B};

const BURST: usize = 32;

fn frames() -> Vec<Vec<u8>> {
    (0..BURST as u16)
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
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ops");
    g.throughput(Throughput::Elements(BURST as u64));
    let frames = frames();

    let (mut eng, wire) = engine();
    g.bench_function("l2_nothing_on", |b| {
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

    let (mut eng, wire) = engine();
    let (tap, sink) = capture::new(
        Point::Port {
            port: 0,
            rx: true,
            tx: false,
        },
        2048,
    )
    .expect("a capture");
    eng.set_capture(Some(tap));
    g.bench_function("l2_capture_uplink_rx", |b| {
        b.iter(|| {
            for f in &frames {
                wire.send(f);
            }
            black_box(eng.poll());
            wire.recv_all(|f| {
                black_box(f.len());
            });
            // The writer's part: the slots go back to the ring.
            while let Ok(s) = sink.full.try_recv() {
                black_box(s.len);
                let _ = sink.free.send(s);
            }
        })
    });
    assert_eq!(eng.set_capture(None), 0, "no frame missed a slot");

    let (mut eng, wire) = engine();
    let (tx, _rx) = crossbeam_channel::bounded(16);
    let nothing = LiveFilter {
        dst: Some("192.0.2.1".parse().expect("an address")),
        ..LiveFilter::default()
    };
    eng.set_live_trace(Some(LiveTap::new(nothing, 1, tx)));
    g.bench_function("l2_live_trace_no_match", |b| {
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
