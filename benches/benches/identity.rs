//! Identity header benches: mint and verify (ns per tag), insert + strip
//! (ns per frame), and the receive path of a new flow, find + key lookup +
//! flow key + verify + freshness + strip on a stamped TCP SYN, reported as
//! new verified flows per second.
//!
//! `cargo bench -p warden-benches --bench identity`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use identity::header::{mint, timestamp_fresh, verify, Repr, TagInput};
use identity::keys::{derive_key, EpochClock, KeySource, Secret, StaticKeys};
use identity::{stamp, IdentityId, WardenId};
use overlay::FlowKey;

// A TCP SYN 10.1.0.2:40000 -> 10.1.0.3:80, ISN 0x11223344, MSS/SACK/TS/WS options.
static TCP_SYN: [u8; 74] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x70, 0x0a, 0x01, 0x00, 0x02, 0x0a, 0x01,
    0x00, 0x03, 0x9c, 0x40, 0x00, 0x50, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
    0xfa, 0xf0, 0x23, 0xaa, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x12,
    0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

const HEADROOM: usize = 64;
const NOW: u64 = 1_700_000_000;
const VNI: u32 = 100;

fn bench(c: &mut Criterion) {
    let (a, b) = (WardenId(0xa), WardenId(0xb));
    let secret = Arc::new(Secret::new(vec![0x42; 32]).expect("32-byte secret"));
    let clock = EpochClock::default();
    let epoch = clock.epoch_at(NOW);
    let send = derive_key(&secret, a, b, epoch);
    let mut keys = StaticKeys::new(b, clock, vec![(a, secret)]).expect("one peer");
    keys.rotate(NOW);

    let flow = FlowKey::from_inner_ethernet(&TCP_SYN).expect("SYN flow key");
    let input = TagInput::new(flow, VNI);
    let mut repr = Repr {
        flags: 0,
        epoch: epoch as u8,
        id: IdentityId(0x1234_5678),
        timestamp: NOW as u32,
        nonce: 0x1122_3344,
        tag: [0; 12],
    };
    repr.tag = mint(&send, &repr, &input);

    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mint", |bch| {
        bch.iter(|| mint(&send, black_box(&repr), black_box(&input)))
    });
    // Reference: ring's HMAC-SHA256 over a message of the IPv4 tag
    // input's length, with a key made once.
    let ring_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]);
    let msg = [0x5au8; 45];
    g.bench_function("reference_ring_hmac_45B", |bch| {
        bch.iter(|| ring::hmac::sign(&ring_key, black_box(&msg)))
    });
    g.bench_function("verify", |bch| {
        bch.iter(|| assert!(verify(&send, black_box(&repr), black_box(&input))))
    });

    let mut buf = vec![0u8; HEADROOM + TCP_SYN.len()];
    buf[HEADROOM..].copy_from_slice(&TCP_SYN);
    g.bench_function("insert_strip_ipv4_syn", |bch| {
        bch.iter(|| {
            let s = stamp::insert_ipv4(black_box(&mut buf), HEADROOM, &repr).expect("insert");
            stamp::strip_ipv4(black_box(&mut buf), s).expect("strip")
        })
    });

    // A stamped SYN as it arrives; each round restores it (a 102-byte copy,
    // included in the figure) and runs the whole receive check.
    let mut stamped = vec![0u8; HEADROOM + TCP_SYN.len()];
    stamped[HEADROOM..].copy_from_slice(&TCP_SYN);
    let start = stamp::insert_ipv4(&mut stamped, HEADROOM, &repr).expect("insert");
    let mut work = stamped.clone();
    g.bench_function("new_verified_flow_ipv4_syn", |bch| {
        bch.iter(|| {
            work.copy_from_slice(&stamped);
            let frame = &work[start..];
            let (_, r) = stamp::find_ipv4(frame)
                .expect("well-formed")
                .expect("stamped");
            let (key, _) = keys.receiving_key(a, r.epoch, NOW).expect("key");
            let flow = FlowKey::from_inner_ethernet(frame).expect("flow key");
            let ok =
                verify(key, &r, &TagInput::new(flow, VNI)) && timestamp_fresh(r.timestamp, NOW, 30);
            assert!(ok);
            stamp::strip_ipv4(&mut work, start).expect("strip")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
