//! The flow table alone: a hit on each of 32 flows in turn (what the
//! pipeline bench's burst does: every packet another flow, so the
//! last-hit cache never helps), a miss, and insert + remove of a new
//! unestablished flow, in a table sized as the engine's.
//!
//! `cargo bench -p warden-benches --bench flows`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flows::{FlowClass, FlowEntry, FlowTable, Key, Origin, FLOW_CAPACITY};
use overlay::{FlowKey, IpProtocol};

fn key(port: u16) -> Key {
    Key {
        vni: 0,
        class: FlowClass::Ports,
        flow: FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 3)),
            protocol: IpProtocol::UDP,
            src_port: port,
            dst_port: 4789,
        },
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("flows");
    let mut t = FlowTable::new(FLOW_CAPACITY, 4, 4, FlowTable::default_quota(FLOW_CAPACITY));
    // A table with some population, as under load.
    for p in 0..10_000u16 {
        let _ = t.insert(FlowEntry::new(key(p), Origin::Peer(p % 4), 0));
    }
    let keys: Vec<Key> = (0..32u16).map(key).collect();
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("lookup_hit_32_distinct", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(t.lookup(black_box(k)));
            }
        })
    });
    let misses: Vec<Key> = (0..32u16).map(|p| key(40_000 + p)).collect();
    g.bench_function("lookup_miss_32", |b| {
        b.iter(|| {
            for k in &misses {
                black_box(t.lookup(black_box(k)));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_remove_new_flow", |b| {
        let k = key(50_000);
        b.iter(|| {
            let r = t
                .insert(FlowEntry::new(black_box(k), Origin::Peer(1), 0))
                .expect("room");
            t.remove(r);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
