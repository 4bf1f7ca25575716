//! Flow table tests: fixed cases for each clause of the module doc, then
//! model-based property tests over random interleavings of inserts from
//! many origins, establishes, removes and aging.
//!
//! Every check also walks the table's internals (the per-origin lists, the
//! index, the free list), so that a count that is right by accident still
//! fails when a link is wrong.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use overlay::{FlowKey, IpProtocol, MacAddr};
use proptest::prelude::*;

use super::*;

/// A distinct TCP key for each `i` (below 2^24).
fn key(i: u32) -> Key {
    let b = i.to_be_bytes();
    Key {
        vni: 1,
        class: FlowClass::Ports,
        flow: FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3])),
            dst: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
            protocol: IpProtocol::TCP,
            src_port: 1024 + (i % 50_000) as u16,
            dst_port: 443,
        },
    }
}

fn peer(p: u16) -> Origin {
    Origin::Peer(p)
}

fn port(p: u16, mac: u8) -> Origin {
    Origin::Port {
        port: p,
        mac: MacAddr([2, 0, 0, 0, p as u8, mac]),
    }
}

fn entry(k: Key, o: Origin, now: u32) -> FlowEntry {
    FlowEntry::new(k, o, now)
}

/// Insert `key(i)` for each `i` of `range` from `o`, all expected to succeed.
fn fill(t: &mut FlowTable, o: Origin, range: std::ops::Range<u32>, now: u32) -> Vec<FlowRef> {
    range
        .map(|i| t.insert(entry(key(i), o, now)).expect("insert"))
        .collect()
}

/// The keys of origin list `slot`, walked from its head (oldest first),
/// checking every back link and that each member is a live unestablished
/// flow of that origin.
fn walk_list(t: &FlowTable, slot: usize) -> Vec<Key> {
    let list = t.origins[slot];
    let mut keys = Vec::new();
    let mut prev = NIL;
    let mut cur = list.head;
    while cur != NIL {
        assert!(keys.len() < t.slots.len(), "origin list {slot} has a cycle");
        let s = &t.slots[cur as usize];
        assert_eq!(s.prev, prev, "origin list {slot}: bad back link at {cur}");
        let e = s.entry.as_ref().expect("origin list holds an empty slot");
        assert_eq!(
            e.state,
            FlowState::Unestablished,
            "established flow on a list"
        );
        assert_eq!(
            t.origin_slot(e.origin),
            slot,
            "flow on another origin's list"
        );
        keys.push(e.key);
        prev = cur;
        cur = s.next;
    }
    assert_eq!(list.tail, prev, "origin list {slot}: bad tail");
    assert_eq!(
        list.count as usize,
        keys.len(),
        "origin list {slot}: bad count"
    );
    keys
}

/// Everything that must hold of any table, whatever happened before.
fn check_invariants(t: &FlowTable) {
    let live: Vec<(FlowRef, FlowEntry)> = t.iter().map(|(r, e)| (r, *e)).collect();
    let est = live
        .iter()
        .filter(|(_, e)| e.state == FlowState::Established)
        .count();
    assert_eq!(t.len(), live.len(), "len() vs iter()");
    assert_eq!(t.len(), t.established() + t.unestablished());
    assert_eq!(t.established(), est, "established() vs iter()");
    assert_eq!(
        t.unestablished(),
        live.len() - est,
        "unestablished() vs iter()"
    );
    assert_eq!(t.is_empty(), live.is_empty());
    assert!(t.len() <= t.capacity(), "more flows than the capacity");
    assert!(t.slots.len() <= t.capacity(), "slab grew past the capacity");
    assert_eq!(t.index.len(), t.len(), "index size vs live flows");
    assert_eq!(t.free.len() + t.len(), t.slots.len(), "free list vs slots");
    for (r, e) in &live {
        assert_eq!(t.lookup(&e.key), Some(*r), "lookup disagrees with iter()");
        assert_eq!(t.get(*r).map(|g| g.key), Some(e.key));
    }
    let mut on_lists = 0;
    for slot in 0..t.origins.len() {
        let n = walk_list(t, slot).len();
        assert!(n <= t.quota as usize, "origin {slot} holds {n} > quota");
        on_lists += n;
    }
    assert_eq!(on_lists, t.unestablished(), "lists vs unestablished()");
}

// ---------------------------------------------------------------------------
// 1. Basics

#[test]
fn insert_lookup_get_get_mut() {
    let mut t = FlowTable::new(16, 2, 2, 8);
    assert!(t.is_empty());
    assert_eq!(t.lookup(&key(1)), None);
    let r = t.insert(entry(key(1), peer(0), 5)).unwrap();
    assert!(!r.is_none());
    assert_eq!(t.lookup(&key(1)), Some(r));
    assert_eq!(t.lookup(&key(2)), None);
    let e = t.get(r).unwrap();
    assert_eq!(e.key, key(1));
    assert_eq!(e.origin, peer(0));
    assert_eq!(e.state, FlowState::Unestablished);
    assert_eq!((e.created, e.last_seen), (5, 5));
    {
        let e = t.get_mut(r).unwrap();
        e.packets += 3;
        e.bytes += 300;
        e.last_seen = 7;
        e.egress = Egress::Peer(1);
    }
    let e = t.get(r).unwrap();
    assert_eq!((e.packets, e.bytes, e.last_seen), (3, 300, 7));
    assert_eq!(e.egress, Egress::Peer(1));
    assert_eq!(t.len(), 1);
    assert_eq!(t.unestablished(), 1);
    assert_eq!(t.established(), 0);
    assert_eq!(t.stats().created, 1);
    check_invariants(&t);
}

#[test]
fn insert_forces_unestablished() {
    let mut t = FlowTable::new(16, 1, 0, 8);
    let mut e = entry(key(1), peer(0), 0);
    e.state = FlowState::Established;
    let r = t.insert(e).unwrap();
    assert_eq!(t.get(r).unwrap().state, FlowState::Unestablished);
    assert_eq!(t.unestablished(), 1);
    assert_eq!(t.unestablished_of(peer(0)), 1);
    check_invariants(&t);
}

#[test]
fn flow_ref_none() {
    let mut t = FlowTable::new(4, 1, 0, 4);
    t.insert(entry(key(1), peer(0), 0)).unwrap();
    assert!(FlowRef::NONE.is_none());
    assert!(t.get(FlowRef::NONE).is_none());
    assert!(t.get_mut(FlowRef::NONE).is_none());
    t.establish(FlowRef::NONE);
    t.remove(FlowRef::NONE);
    assert_eq!(t.len(), 1);
    assert_eq!(t.unestablished(), 1);
    check_invariants(&t);
}

#[test]
fn lookup_after_remove_is_none() {
    let mut t = FlowTable::new(16, 1, 0, 8);
    let r1 = t.insert(entry(key(1), peer(0), 0)).unwrap();
    let r2 = t.insert(entry(key(2), peer(0), 0)).unwrap();
    t.remove(r1);
    assert_eq!(t.lookup(&key(1)), None);
    assert!(t.get(r1).is_none());
    assert_eq!(t.lookup(&key(2)), Some(r2));
    assert_eq!(t.len(), 1);
    assert_eq!(t.unestablished_of(peer(0)), 1);
    // Removing again is a no-op.
    t.remove(r1);
    assert_eq!(t.len(), 1);
    check_invariants(&t);
    t.remove(r2);
    assert_eq!(t.lookup(&key(2)), None);
    assert!(t.is_empty());
    assert_eq!(t.unestablished_of(peer(0)), 0);
    check_invariants(&t);
}

#[test]
fn stale_ref_after_slot_reuse() {
    let mut t = FlowTable::new(16, 2, 0, 8);
    let ra = t.insert(entry(key(1), peer(0), 0)).unwrap();
    t.remove(ra);
    let rb = t.insert(entry(key(2), peer(1), 0)).unwrap();
    // The slot was reused: same index, new generation.
    assert_eq!(rb.idx, ra.idx);
    assert_ne!(rb, ra);
    assert!(t.get(ra).is_none());
    assert!(t.get_mut(ra).is_none());
    // A stale ref neither establishes nor removes the new flow.
    t.establish(ra);
    assert_eq!(t.get(rb).unwrap().state, FlowState::Unestablished);
    t.remove(ra);
    assert_eq!(t.lookup(&key(2)), Some(rb));
    assert_eq!(t.get(rb).unwrap().key, key(2));
    // Same with an evicted flow whose slot is taken by its evictor.
    let mut t = FlowTable::new(1, 1, 0, 1);
    let r1 = t.insert(entry(key(1), peer(0), 0)).unwrap();
    let r2 = t.insert(entry(key(2), peer(0), 0)).unwrap();
    assert_eq!(r1.idx, r2.idx);
    assert!(t.get(r1).is_none());
    assert_eq!(t.get(r2).unwrap().key, key(2));
    check_invariants(&t);
}

#[test]
fn reversed_keys() {
    let k = key(7);
    let rk = k.reversed();
    assert_eq!(rk.flow.src, k.flow.dst);
    assert_eq!(rk.flow.dst, k.flow.src);
    assert_eq!((rk.flow.src_port, rk.flow.dst_port), (443, k.flow.src_port));
    assert_eq!((rk.vni, rk.class), (k.vni, k.class));
    assert_eq!(rk.reversed(), k);
    assert_ne!(rk, k);

    // ICMP echo: the identifier stays in src_port both ways.
    let echo = Key {
        vni: 3,
        class: FlowClass::IcmpEcho,
        flow: FlowKey {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            protocol: IpProtocol::ICMPV6,
            src_port: 0x1234,
            dst_port: 0,
        },
    };
    let recho = echo.reversed();
    assert_eq!((recho.flow.src_port, recho.flow.dst_port), (0x1234, 0));
    assert_eq!(recho.class, FlowClass::IcmpEcho);
    assert_eq!(recho.reversed(), echo);

    // The two directions are distinct entries.
    let mut t = FlowTable::new(16, 2, 1, 8);
    let fwd = t.insert(entry(k, peer(0), 0)).unwrap();
    assert_eq!(t.lookup(&rk), None);
    let rev = t.insert(entry(rk, port(0, 1), 0)).unwrap();
    assert_ne!(fwd, rev);
    assert_eq!(t.lookup(&k), Some(fwd));
    assert_eq!(t.lookup(&rk), Some(rev));
    t.remove(fwd);
    assert_eq!(t.lookup(&k), None);
    assert_eq!(t.lookup(&rk), Some(rev));
    check_invariants(&t);
}

#[test]
fn duplicate_insert_is_exists() {
    let mut t = FlowTable::new(4, 2, 0, 4);
    let r = t.insert(entry(key(1), peer(0), 0)).unwrap();
    t.get_mut(r).unwrap().packets = 9;
    let stats = t.stats();
    // Same key, from the same or another origin: refused, entry untouched.
    assert_eq!(
        t.insert(entry(key(1), peer(0), 1)),
        Err(InsertError::Exists)
    );
    assert_eq!(
        t.insert(entry(key(1), peer(1), 1)),
        Err(InsertError::Exists)
    );
    assert_eq!(t.stats(), stats);
    assert_eq!(t.len(), 1);
    assert_eq!(t.unestablished_of(peer(1)), 0);
    let e = t.get(r).unwrap();
    assert_eq!((e.origin, e.packets, e.created), (peer(0), 9, 0));
    // Exists wins over Full: an established full table still says Exists.
    let mut t = FlowTable::new(1, 1, 0, 1);
    let r = t.insert(entry(key(1), peer(0), 0)).unwrap();
    t.establish(r);
    assert_eq!(
        t.insert(entry(key(1), peer(0), 0)),
        Err(InsertError::Exists)
    );
    assert_eq!(t.stats().refused, 0);
    check_invariants(&t);
}

#[test]
fn last_hit_cache_never_returns_a_removed_flow() {
    let mut t = FlowTable::new(2, 1, 0, 2);
    // Removed.
    let r1 = t.insert(entry(key(1), peer(0), 0)).unwrap();
    assert_eq!(t.lookup(&key(1)), Some(r1));
    t.remove(r1);
    assert_eq!(t.lookup(&key(1)), None);
    // Removed, then its slot reused by another key.
    let r1 = t.insert(entry(key(1), peer(0), 0)).unwrap();
    assert_eq!(t.lookup(&key(1)), Some(r1));
    t.remove(r1);
    let r2 = t.insert(entry(key(2), peer(0), 0)).unwrap();
    assert_eq!(r2.idx, r1.idx);
    assert_eq!(t.lookup(&key(2)), Some(r2));
    assert_eq!(t.lookup(&key(1)), None);
    // The lookup of the stale key must not have poisoned the cache.
    assert_eq!(t.lookup(&key(2)), Some(r2));
    // Removed and inserted again: the new ref, not the old one.
    t.remove(r2);
    let _filler = t.insert(entry(key(3), peer(0), 0)).unwrap();
    let r2b = t.insert(entry(key(2), peer(0), 0)).unwrap();
    assert_ne!(r2b, r2);
    assert_eq!(t.lookup(&key(2)), Some(r2b));
    // Evicted (quota 2: a third flow of peer 0 evicts its oldest).
    assert_eq!(t.lookup(&key(3)), Some(_filler));
    let _r4 = t.insert(entry(key(4), peer(0), 0)).unwrap();
    assert_eq!(t.lookup(&key(3)), None);
    // Expired.
    assert_eq!(t.lookup(&key(2)), Some(r2b));
    assert_eq!(t.expire_slice(1000, 2), 2);
    assert_eq!(t.lookup(&key(2)), None);
    assert_eq!(t.lookup(&key(4)), None);
    // Cleared.
    let r5 = t.insert(entry(key(5), peer(0), 0)).unwrap();
    assert_eq!(t.lookup(&key(5)), Some(r5));
    t.clear();
    assert_eq!(t.lookup(&key(5)), None);
    check_invariants(&t);
}

#[test]
fn clear_forgets_everything() {
    let mut t = FlowTable::new(8, 2, 1, 8);
    let refs = fill(&mut t, peer(0), 0..3, 0);
    fill(&mut t, port(0, 1), 3..6, 0);
    t.establish(refs[1]);
    t.clear();
    assert!(t.is_empty());
    assert_eq!((t.established(), t.unestablished()), (0, 0));
    assert_eq!(t.unestablished_of(peer(0)), 0);
    assert_eq!(t.unestablished_of(port(0, 1)), 0);
    assert!(refs.iter().all(|&r| t.get(r).is_none()));
    check_invariants(&t);
    fill(&mut t, peer(1), 0..8, 0);
    check_invariants(&t);
}

#[test]
fn unknown_port_is_refused_without_panic() {
    let mut t = FlowTable::new(8, 2, 1, 8);
    assert!(t.insert(entry(key(1), port(1, 0), 0)).is_err());
    assert!(t.insert(entry(key(2), port(9, 0), 0)).is_err());
    assert!(t.is_empty());
    assert_eq!(t.unestablished_of(port(1, 0)), 0);
    check_invariants(&t);
}

/// A peer index at or past `n_peers` must not be counted as a local port.
#[test]
fn unknown_peer_does_not_alias_a_port() {
    let mut t = FlowTable::new(8, 2, 1, 8);
    assert!(t.insert(entry(key(1), peer(2), 0)).is_err());
    assert_eq!(t.unestablished_of(port(0, 0)), 0);
    assert!(t.is_empty());
    check_invariants(&t);
}

#[test]
fn constructor_bounds() {
    // Capacity at least 1; quota clamped to [1, capacity].
    let mut t = FlowTable::new(0, 1, 0, 0);
    assert_eq!(t.capacity(), 1);
    t.insert(entry(key(1), peer(0), 0)).unwrap();
    t.insert(entry(key(2), peer(0), 0)).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.lookup(&key(2)).map(|r| t.get(r).unwrap().key),
        Some(key(2))
    );
    let t = FlowTable::new(4, 1, 0, 100);
    assert_eq!(t.quota, 4);
    assert_eq!(FlowTable::default_quota(FLOW_CAPACITY), FLOW_CAPACITY / 4);
    assert_eq!(FlowTable::default_quota(16), 64);
}

// ---------------------------------------------------------------------------
// 2. Establish

#[test]
fn establish_leaves_the_origin_list() {
    let mut t = FlowTable::new(16, 2, 0, 8);
    let refs = fill(&mut t, peer(0), 0..4, 0);
    fill(&mut t, peer(1), 4..6, 0);
    assert_eq!(t.unestablished_of(peer(0)), 4);
    t.establish(refs[1]);
    assert_eq!(t.unestablished_of(peer(0)), 3);
    assert_eq!(t.unestablished_of(peer(1)), 2);
    assert_eq!(t.get(refs[1]).unwrap().state, FlowState::Established);
    assert_eq!((t.established(), t.unestablished(), t.len()), (1, 5, 6));
    check_invariants(&t);
    // Idempotent.
    t.establish(refs[1]);
    assert_eq!((t.established(), t.unestablished(), t.len()), (1, 5, 6));
    assert_eq!(t.unestablished_of(peer(0)), 3);
    // Head and tail of the list too.
    t.establish(refs[0]);
    t.establish(refs[3]);
    assert_eq!(t.unestablished_of(peer(0)), 1);
    assert_eq!(walk_list(&t, 0), vec![key(2)]);
    assert_eq!((t.established(), t.unestablished(), t.len()), (3, 3, 6));
    check_invariants(&t);
    // Removing an established flow drops the established count only.
    t.remove(refs[0]);
    assert_eq!((t.established(), t.unestablished(), t.len()), (2, 3, 5));
    assert_eq!(t.unestablished_of(peer(0)), 1);
    check_invariants(&t);
    // Established flows do not count against the quota.
    let mut t = FlowTable::new(16, 1, 0, 2);
    for r in fill(&mut t, peer(0), 0..2, 0) {
        t.establish(r);
    }
    fill(&mut t, peer(0), 2..4, 0);
    assert_eq!(t.len(), 4);
    assert_eq!(t.stats().evicted, 0);
    check_invariants(&t);
}

// ---------------------------------------------------------------------------
// 3. Per-origin quota

#[test]
fn quota_evicts_own_oldest_first() {
    for (q, k) in [(1u32, 1u32), (4, 3), (5, 5), (8, 20)] {
        let mut t = FlowTable::new(256, 3, 2, q as usize);
        let b = fill(&mut t, peer(1), 1000..1000 + q, 0);
        let c = fill(&mut t, port(0, 1), 2000..2001, 0);
        for i in 0..q + k {
            t.insert(entry(key(i), peer(0), i)).unwrap();
            assert!(t.unestablished_of(peer(0)) <= q as usize);
        }
        assert_eq!(t.unestablished_of(peer(0)), q as usize, "q={q} k={k}");
        for i in 0..k {
            assert_eq!(t.lookup(&key(i)), None, "q={q} k={k}: key {i} kept");
        }
        for i in k..q + k {
            assert!(t.lookup(&key(i)).is_some(), "q={q} k={k}: key {i} lost");
        }
        assert_eq!(t.stats().evicted, u64::from(k));
        assert_eq!(t.stats().created, u64::from(2 * q + 1 + k));
        assert!(b.iter().chain(&c).all(|&r| t.get(r).is_some()));
        assert_eq!(t.unestablished_of(peer(1)), q as usize);
        assert_eq!(t.unestablished_of(port(0, 1)), 1);
        check_invariants(&t);
    }
}

#[test]
fn quota_is_per_port_not_per_mac() {
    // `new` documents one quota per local port: two source MACs behind one
    // port share it, and neither is counted as a peer of the same index.
    let mut t = FlowTable::new(64, 1, 1, 3);
    fill(&mut t, peer(0), 100..103, 0);
    fill(&mut t, port(0, 1), 0..2, 0);
    fill(&mut t, port(0, 2), 2..4, 0);
    assert_eq!(t.unestablished_of(port(0, 1)), 3);
    assert_eq!(t.unestablished_of(port(0, 9)), 3);
    assert_eq!(t.unestablished_of(peer(0)), 3);
    assert_eq!(t.lookup(&key(0)), None);
    assert!((1..4).all(|i| t.lookup(&key(i)).is_some()));
    assert!((100..103).all(|i| t.lookup(&key(i)).is_some()));
    check_invariants(&t);
}

// ---------------------------------------------------------------------------
// 4. Full table

#[test]
fn full_table_evicts_from_the_origin_holding_most() {
    let mut t = FlowTable::new(8, 3, 0, 8);
    fill(&mut t, peer(0), 0..5, 0);
    fill(&mut t, peer(1), 10..13, 0);
    assert_eq!(t.len(), 8);
    // Peer 2 holds nothing: peer 0 (5) loses its oldest.
    t.insert(entry(key(20), peer(2), 0)).unwrap();
    assert_eq!(t.lookup(&key(0)), None);
    assert_eq!(t.unestablished_of(peer(0)), 4);
    assert_eq!(t.len(), 8);
    t.insert(entry(key(21), peer(2), 0)).unwrap();
    assert_eq!(t.lookup(&key(1)), None);
    assert_eq!(t.unestablished_of(peer(0)), 3);
    // Now peer 0 and 1 both hold 3; establish two of peer 0's so that
    // peer 1 holds the most.
    t.establish(t.lookup(&key(2)).unwrap());
    t.establish(t.lookup(&key(3)).unwrap());
    t.insert(entry(key(22), peer(2), 0)).unwrap();
    assert_eq!(t.lookup(&key(10)), None);
    assert_eq!(t.unestablished_of(peer(1)), 2);
    assert!(t.lookup(&key(2)).is_some() && t.lookup(&key(3)).is_some());
    assert_eq!(t.stats().evicted, 3);
    assert_eq!(t.stats().refused, 0);
    assert_eq!(t.len(), 8);
    check_invariants(&t);
}

#[test]
fn full_table_never_evicts_established() {
    let mut t = FlowTable::new(8, 3, 0, 8);
    let a = fill(&mut t, peer(0), 0..7, 0);
    for &r in &a {
        t.establish(r);
    }
    let b = t.insert(entry(key(10), peer(1), 0)).unwrap();
    // One unestablished flow left: it is the only victim, whoever inserts.
    t.insert(entry(key(11), peer(2), 0)).unwrap();
    assert!(t.get(b).is_none());
    assert!(a.iter().all(|&r| t.get(r).is_some()));
    t.establish(t.lookup(&key(11)).unwrap());
    // Every entry established: refused, nothing moves but `refused`.
    assert_eq!(t.established(), 8);
    for (n, o) in [peer(0), peer(1), peer(2)].into_iter().enumerate() {
        assert_eq!(
            t.insert(entry(key(100 + n as u32), o, 0)),
            Err(InsertError::Full)
        );
        assert_eq!(t.stats().refused, n as u64 + 1);
    }
    assert_eq!(t.len(), 8);
    assert_eq!(t.stats().evicted, 1);
    assert!(a.iter().all(|&r| t.get(r).is_some()));
    check_invariants(&t);
    // Room again after a remove.
    t.remove(a[0]);
    t.insert(entry(key(200), peer(1), 0)).unwrap();
    assert_eq!(t.len(), 8);
    check_invariants(&t);
}

// ---------------------------------------------------------------------------
// 5. Aging

#[test]
fn expire_walks_at_most_budget_slots() {
    let mut t = FlowTable::new(64, 1, 0, 64);
    fill(&mut t, peer(0), 0..10, 0);
    let now = 1000;
    // Every flow is idle, so each visited slot is forgotten: the return
    // value is the number of slots walked.
    assert_eq!(t.expire_slice(now, 0), 0);
    assert_eq!(t.expire_slice(now, 3), 3);
    assert_eq!(t.len(), 7);
    assert_eq!(t.expire_slice(now, 3), 3);
    assert_eq!(t.expire_slice(now, 3), 3);
    // Slot 9, then slots 0 and 1 again (already empty).
    assert_eq!(t.expire_slice(now, 3), 1);
    assert!(t.is_empty());
    assert_eq!(t.stats().expired, 10);
    check_invariants(&t);
    // A budget over the slab visits each slot once.
    fill(&mut t, peer(0), 0..10, 0);
    assert_eq!(t.expire_slice(now, 1000), 10);
    assert_eq!(t.expire_slice(now, 1000), 0);
    // An empty table.
    let mut t = FlowTable::new(8, 1, 0, 8);
    assert_eq!(t.expire_slice(now, 8), 0);
}

#[test]
fn expire_idle_times() {
    let t0 = 500;
    let mut t = FlowTable::new(32, 2, 0, 32);
    let u = fill(&mut t, peer(0), 0..4, t0);
    let e = fill(&mut t, peer(1), 10..14, t0);
    for &r in &e {
        t.establish(r);
    }
    let all = t.capacity();
    // Just before the unestablished limit: nothing goes.
    assert_eq!(t.expire_slice(t0 + IDLE_UNESTABLISHED_SECS - 1, all), 0);
    // A packet on one unestablished flow keeps it.
    t.get_mut(u[0]).unwrap().last_seen = t0 + 10;
    assert_eq!(t.expire_slice(t0 + IDLE_UNESTABLISHED_SECS, all), 3);
    assert!(t.get(u[0]).is_some());
    assert!(u[1..].iter().all(|&r| t.get(r).is_none()));
    assert_eq!(t.unestablished_of(peer(0)), 1);
    assert_eq!((t.established(), t.unestablished()), (4, 1));
    check_invariants(&t);
    assert_eq!(t.expire_slice(t0 + 10 + IDLE_UNESTABLISHED_SECS, all), 1);
    // Established flows outlive the unestablished limit...
    assert_eq!(t.expire_slice(t0 + IDLE_ESTABLISHED_SECS - 1, all), 0);
    assert_eq!(t.established(), 4);
    // ...until their own, unless refreshed.
    t.get_mut(e[2]).unwrap().last_seen = t0 + 60;
    assert_eq!(t.expire_slice(t0 + IDLE_ESTABLISHED_SECS, all), 3);
    assert_eq!(t.len(), 1);
    assert!(t.get(e[2]).is_some());
    // A clock that goes back expires nothing.
    assert_eq!(t.expire_slice(0, all), 0);
    assert_eq!(t.stats().expired, 7);
    check_invariants(&t);
}

#[test]
fn repeated_slices_cover_the_table() {
    for budget in [1usize, 2, 3, 5, 7, 16, 40] {
        let mut t = FlowTable::new(40, 2, 0, 40);
        let refs = fill(&mut t, peer(0), 0..40, 0);
        // A scattering of holes and of fresh or established flows.
        for (i, &r) in refs.iter().enumerate() {
            match i % 5 {
                0 => t.remove(r),
                1 => t.establish(r),
                2 => t.get_mut(r).unwrap().last_seen = 95,
                _ => {}
            }
        }
        let now = 100;
        let calls = t.capacity().div_ceil(budget);
        let mut gone = 0;
        for _ in 0..calls {
            let n = t.expire_slice(now, budget);
            assert!(n <= budget);
            gone += n;
            check_invariants(&t);
        }
        // The idle unestablished ones (i % 5 in 3..5) are all gone; the
        // established (idle 100 < 120) and the fresh ones stay.
        assert_eq!(gone, 16, "budget {budget}");
        assert_eq!(t.len(), 16, "budget {budget}");
        assert_eq!(t.established(), 8);
        for (i, &r) in refs.iter().enumerate() {
            assert_eq!(t.get(r).is_some(), matches!(i % 5, 1 | 2), "flow {i}");
        }
    }
}

// ---------------------------------------------------------------------------
// 6. Model-based property tests

/// How long a flow in `state` may be idle.
fn idle_limit(established: bool) -> u32 {
    if established {
        IDLE_ESTABLISHED_SECS
    } else {
        IDLE_UNESTABLISHED_SECS
    }
}

#[derive(Debug, Clone, Copy)]
struct MFlow {
    r: FlowRef,
    origin: Origin,
    slot: usize,
    established: bool,
    last_seen: u32,
}

/// What the table should hold.
#[derive(Debug)]
struct Model {
    capacity: usize,
    quota: usize,
    n_peers: usize,
    flows: HashMap<Key, MFlow>,
    /// Per origin slot: its unestablished keys, oldest first.
    lists: Vec<VecDeque<Key>>,
    stats: TableStats,
    now: u32,
    /// Refs of flows gone (removed, evicted, expired): never live again.
    dead: Vec<FlowRef>,
}

impl Model {
    fn new(capacity: usize, n_peers: usize, n_ports: usize, quota: usize) -> Model {
        let capacity = capacity.max(1);
        Model {
            capacity,
            quota: quota.clamp(1, capacity),
            n_peers,
            flows: HashMap::new(),
            lists: vec![VecDeque::new(); n_peers + n_ports],
            stats: TableStats::default(),
            now: 1000,
            dead: Vec::new(),
        }
    }

    /// One list per peer, then one per local port (whatever the MAC), as
    /// `FlowTable::new` documents.
    fn slot(&self, o: Origin) -> usize {
        match o {
            Origin::Peer(p) => usize::from(p),
            Origin::Port { port, .. } => self.n_peers + usize::from(port),
        }
    }

    fn forget(&mut self, k: &Key) -> MFlow {
        let f = self.flows.remove(k).expect("model flow");
        if self.dead.len() >= 64 {
            self.dead.remove(0);
        }
        self.dead.push(f.r);
        if !f.established {
            let list = &mut self.lists[f.slot];
            let at = list.iter().position(|x| x == k).expect("on its list");
            list.remove(at);
        }
        f
    }

    /// Keys the model holds whose ref the table no longer resolves to them.
    fn vanished(&self, t: &FlowTable) -> Vec<Key> {
        let mut v: Vec<Key> = self
            .flows
            .iter()
            .filter(|(k, f)| t.get(f.r).map(|e| e.key) != Some(**k))
            .map(|(k, _)| *k)
            .collect();
        v.sort_by_key(|k| (k.flow.src, k.flow.src_port));
        v
    }

    /// The table agrees with the model in every observable way.
    fn check(&self, t: &FlowTable, origins: &[Origin]) {
        check_invariants(t);
        assert_eq!(t.len(), self.flows.len(), "len");
        let est = self.flows.values().filter(|f| f.established).count();
        assert_eq!(t.established(), est, "established");
        assert_eq!(t.unestablished(), self.flows.len() - est, "unestablished");
        for (k, f) in &self.flows {
            assert_eq!(t.lookup(k), Some(f.r), "lookup {k:?}");
            let e = t.get(f.r).expect("model flow is live");
            assert_eq!(e.key, *k);
            assert_eq!(e.origin, f.origin);
            assert_eq!(e.last_seen, f.last_seen);
            let state = if f.established {
                FlowState::Established
            } else {
                FlowState::Unestablished
            };
            assert_eq!(e.state, state, "state of {k:?}");
        }
        for (slot, list) in self.lists.iter().enumerate() {
            assert!(list.len() <= self.quota, "model over quota");
            let keys: Vec<Key> = list.iter().copied().collect();
            assert_eq!(walk_list(t, slot), keys, "list order of origin {slot}");
        }
        for &o in origins {
            assert_eq!(t.unestablished_of(o), self.lists[self.slot(o)].len());
        }
        assert_eq!(t.stats(), self.stats, "stats");
        for &r in &self.dead {
            assert!(t.get(r).is_none(), "a stale ref resolves");
        }
    }

    /// Insert and check the outcome against the eviction rules.
    fn insert(&mut self, t: &mut FlowTable, k: Key, origin: Origin, verdict: Verdict) {
        let mut e = FlowEntry::new(k, origin, self.now);
        e.verdict = verdict;
        let res = t.insert(e);
        if self.flows.contains_key(&k) {
            assert_eq!(res, Err(InsertError::Exists));
            assert!(self.vanished(t).is_empty(), "Exists evicted a flow");
            return;
        }
        let slot = self.slot(origin);
        let own = self.lists[slot].len();
        let most = self.lists.iter().map(VecDeque::len).max().unwrap_or(0);
        let full = self.flows.len() >= self.capacity;
        let gone = self.vanished(t);
        match res {
            Err(InsertError::Exists) => panic!("Exists for a new key"),
            Err(InsertError::Full) => {
                assert!(own < self.quota, "refused while over its own quota");
                assert!(full, "refused with room left");
                assert_eq!(most, 0, "refused while an unestablished flow remains");
                assert!(gone.is_empty(), "a refused insert evicted");
                self.stats.refused += 1;
            }
            Ok(r) => {
                if own >= self.quota {
                    assert_eq!(gone.len(), 1, "over quota: one eviction");
                    assert_eq!(self.lists[slot].front(), Some(&gone[0]), "own oldest");
                } else if full {
                    assert_eq!(gone.len(), 1, "full: one eviction");
                    let v = self.flows[&gone[0]];
                    assert!(!v.established, "evicted an established flow");
                    assert_eq!(self.lists[v.slot].front(), Some(&gone[0]), "not the oldest");
                    assert_eq!(
                        self.lists[v.slot].len(),
                        most,
                        "not the origin holding most"
                    );
                } else {
                    assert!(gone.is_empty(), "evicted with room and under quota");
                }
                for g in &gone {
                    let f = self.forget(g);
                    assert!(!f.established);
                    assert_eq!(t.lookup(g), None);
                }
                self.stats.evicted += gone.len() as u64;
                self.stats.created += 1;
                let e = t.get(r).expect("inserted");
                assert_eq!((e.key, e.origin, e.verdict), (k, origin, verdict));
                assert_eq!(e.state, FlowState::Unestablished);
                self.flows.insert(
                    k,
                    MFlow {
                        r,
                        origin,
                        slot,
                        established: false,
                        last_seen: self.now,
                    },
                );
                self.lists[slot].push_back(k);
            }
        }
    }

    /// The `pick`th live flow, in table order.
    fn pick(&self, t: &FlowTable, pick: prop::sample::Index) -> Option<Key> {
        let n = t.len();
        if n == 0 {
            return None;
        }
        t.iter().nth(pick.index(n)).map(|(_, e)| e.key)
    }

    fn establish(&mut self, t: &mut FlowTable, k: Key) {
        let f = self.flows[&k];
        t.establish(f.r);
        if !f.established {
            let list = &mut self.lists[f.slot];
            let at = list.iter().position(|x| *x == k).expect("on its list");
            list.remove(at);
            self.flows.get_mut(&k).expect("model flow").established = true;
        }
        assert!(self.vanished(t).is_empty(), "establish lost a flow");
    }

    fn touch(&mut self, t: &mut FlowTable, k: Key) {
        let now = self.now;
        let f = self.flows.get_mut(&k).expect("model flow");
        let e = t.get_mut(f.r).expect("live");
        e.last_seen = now;
        e.packets += 1;
        f.last_seen = now;
    }

    fn remove(&mut self, t: &mut FlowTable, k: Key) {
        let r = self.flows[&k].r;
        t.remove(r);
        assert_eq!(t.lookup(&k), None, "lookup after remove");
        assert!(t.get(r).is_none());
        assert_eq!(self.vanished(t), vec![k], "remove took another flow");
        self.forget(&k);
    }

    fn expire(&mut self, t: &mut FlowTable, budget: usize) -> usize {
        let n = t.expire_slice(self.now, budget);
        assert!(n <= budget, "expired {n} with a budget of {budget}");
        let gone = self.vanished(t);
        assert_eq!(n, gone.len(), "expire_slice's count");
        for g in &gone {
            let f = self.forget(g);
            let idle = self.now.saturating_sub(f.last_seen);
            assert!(
                idle >= idle_limit(f.established),
                "expired {g:?} (established {}) after {idle}s",
                f.established
            );
            assert_eq!(t.lookup(g), None);
        }
        self.stats.expired += n as u64;
        n
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        origin: prop::sample::Index,
        key: u32,
        verdict: Verdict,
    },
    Establish(prop::sample::Index),
    /// Every live flow gets a reply: the table can only refuse until
    /// something is removed or idles out.
    EstablishAll,
    Touch(prop::sample::Index),
    Remove(prop::sample::Index),
    Lookup(u32),
    Tick(u32),
    Expire(usize),
    /// Enough slices of `budget` to walk the whole table.
    ExpireAll(usize),
}

/// Keys are drawn from a space of 4 * capacity so that duplicates and
/// re-inserts of removed keys happen.
fn op(keys: u32) -> impl Strategy<Value = Op> {
    let verdict = prop_oneof![
        Just(Verdict::Allow),
        Just(Verdict::Reply),
        Just(Verdict::WouldDeny),
        Just(Verdict::Learn),
        Just(Verdict::NoPolicy),
    ];
    prop_oneof![
        8 => (any::<prop::sample::Index>(), 0..keys, verdict)
            .prop_map(|(origin, key, verdict)| Op::Insert { origin, key, verdict }),
        3 => any::<prop::sample::Index>().prop_map(Op::Establish),
        1 => Just(Op::EstablishAll),
        2 => any::<prop::sample::Index>().prop_map(Op::Touch),
        1 => any::<prop::sample::Index>().prop_map(Op::Remove),
        1 => (0..keys).prop_map(Op::Lookup),
        2 => prop_oneof![6 => 0u32..3, 1 => 0u32..150].prop_map(Op::Tick),
        1 => (0usize..20).prop_map(Op::Expire),
        1 => (1usize..70).prop_map(Op::ExpireAll),
    ]
}

/// 2 to 6 origins among 3 peers and 3 ports (two MACs each).
fn origins() -> impl Strategy<Value = Vec<Origin>> {
    let origin = prop_oneof![
        (0u16..3).prop_map(peer),
        (0u16..3, 0u8..2).prop_map(|(p, m)| port(p, m)),
    ];
    prop::collection::vec(origin, 2..=6)
}

fn scenario() -> impl Strategy<Value = (usize, usize, Vec<Origin>, Vec<Op>)> {
    let quota = prop_oneof![1usize..=4, 1usize..=24, 1usize..=72];
    (16usize..=64, quota, origins()).prop_flat_map(|(cap, quota, origins)| {
        let ops = prop::collection::vec(op(4 * cap as u32), 1..300);
        (Just(cap), Just(quota), Just(origins), ops)
    })
}

fn run(capacity: usize, quota: usize, origins: &[Origin], ops: &[Op]) {
    let mut t = FlowTable::new(capacity, 3, 3, quota);
    let mut m = Model::new(capacity, 3, 3, quota);
    for op in ops {
        match *op {
            Op::Insert {
                origin,
                key: i,
                verdict,
            } => m.insert(&mut t, key(i), *origin.get(origins), verdict),
            Op::Establish(p) => {
                if let Some(k) = m.pick(&t, p) {
                    m.establish(&mut t, k);
                }
            }
            Op::EstablishAll => {
                let keys: Vec<Key> = t.iter().map(|(_, e)| e.key).collect();
                for k in keys {
                    m.establish(&mut t, k);
                }
            }
            Op::Touch(p) => {
                if let Some(k) = m.pick(&t, p) {
                    m.touch(&mut t, k);
                }
            }
            Op::Remove(p) => {
                if let Some(k) = m.pick(&t, p) {
                    m.remove(&mut t, k);
                }
            }
            Op::Lookup(i) => {
                let want = m.flows.get(&key(i)).map(|f| f.r);
                assert_eq!(t.lookup(&key(i)), want);
            }
            Op::Tick(dt) => m.now += dt,
            Op::Expire(budget) => {
                m.expire(&mut t, budget);
            }
            Op::ExpireAll(budget) => {
                for _ in 0..t.capacity().div_ceil(budget) {
                    m.expire(&mut t, budget);
                }
                for (k, f) in &m.flows {
                    let idle = m.now.saturating_sub(f.last_seen);
                    assert!(
                        idle < idle_limit(f.established),
                        "{k:?} idle {idle}s survived a full walk"
                    );
                }
            }
        }
        m.check(&t, origins);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random interleavings of inserts from many origins never evict an
    /// established flow while unestablished entries remain: every eviction
    /// takes an unestablished flow (the inserter's oldest when over quota,
    /// else the oldest of an origin holding the most), an insert is refused
    /// only when every entry is established, an established flow leaves
    /// only by remove or by idling out, and counts, lists, lookup and
    /// iter() agree with the model after every step.
    #[test]
    fn model_interleavings((capacity, quota, origins, ops) in scenario()) {
        run(capacity, quota, &origins, &ops);
    }

    /// One origin floods N distinct keys into a table where other origins
    /// hold flows. The table never exceeds its capacity; established flows
    /// never go; another origin's flow goes only when the table is full,
    /// the flooder is under its quota and the victim holds at least as
    /// many unestablished flows as the flooder; once at quota the flooder
    /// only evicts its own.
    #[test]
    fn flooding_origin_evicts_its_own(
        capacity in 16usize..=64,
        quota in 1usize..=64,
        others in prop::collection::vec((0usize..40, 0usize..20), 1..=4),
        flood in 1u32..200,
    ) {
        let n_others = others.len();
        let mut t = FlowTable::new(capacity, n_others + 1, 0, quota);
        let quota = quota.min(capacity);
        let flooder = peer(n_others as u16);
        let mut established = Vec::new();
        let mut next = 0u32;
        for (o, &(unest, est)) in others.iter().enumerate() {
            for i in 0..est + unest {
                if t.len() >= capacity {
                    break;
                }
                if let Ok(r) = t.insert(entry(key(next), peer(o as u16), 0)) {
                    if i < est {
                        t.establish(r);
                        established.push(r);
                    }
                }
                next += 1;
            }
        }
        check_invariants(&t);
        for _ in 0..flood {
            let counts: Vec<usize> = (0..n_others)
                .map(|o| t.unestablished_of(peer(o as u16)))
                .collect();
            let own = t.unestablished_of(flooder);
            let full = t.len() >= capacity;
            let before: Vec<(FlowRef, FlowEntry)> = t.iter().map(|(r, e)| (r, *e)).collect();
            let res = t.insert(entry(key(next), flooder, 0));
            next += 1;
            prop_assert!(t.len() <= capacity);
            let gone: Vec<&FlowEntry> = before
                .iter()
                .filter(|(r, _)| t.get(*r).is_none())
                .map(|(_, e)| e)
                .collect();
            prop_assert!(gone.len() <= 1);
            match res {
                Ok(_) => {}
                Err(InsertError::Full) => {
                    prop_assert!(full && t.unestablished() == 0 && own == 0);
                }
                Err(InsertError::Exists) => prop_assert!(false, "fresh key exists"),
            }
            if let Some(v) = gone.first() {
                prop_assert_eq!(v.state, FlowState::Unestablished);
                if v.origin != flooder {
                    let Origin::Peer(p) = v.origin else { unreachable!() };
                    prop_assert!(full, "evicted another origin's flow with room left");
                    prop_assert!(own < quota, "flooder at quota evicted another origin");
                    prop_assert!(
                        counts[usize::from(p)] >= own,
                        "evicted from an origin holding {} < the flooder's {}",
                        counts[usize::from(p)],
                        own
                    );
                }
            }
            for &r in &established {
                prop_assert!(t.get(r).is_some(), "an established flow went");
            }
            prop_assert!(t.unestablished_of(flooder) <= quota);
        }
        check_invariants(&t);
    }
}

#[test]
fn touch_counts_only_from_the_origin_and_get_mut_takes_the_express_mark() {
    let mut t = FlowTable::new(16, 2, 2, 8);
    let r = t.insert(entry(key(1), peer(0), 5)).unwrap();
    t.set_fwd(
        r,
        Fwd {
            action: FwdAction::Peer(1),
            ..Fwd::NONE
        },
    );
    t.set_express(r);
    assert!(t.fwd(r).unwrap().express);
    // Another origin: nothing counted.
    assert!(t.touch(r, peer(1), 9, 100).is_none());
    let e = t.get(r).unwrap();
    assert_eq!((e.packets, e.bytes, e.last_seen), (0, 0, 5));
    // The origin: counted, and the cached decision stays express.
    let e = t.touch(r, peer(0), 9, 100).unwrap();
    assert_eq!((e.packets, e.bytes, e.last_seen), (1, 100, 9));
    assert!(t.fwd(r).unwrap().express);
    // Any change through get_mut: the decision stays, the mark goes.
    t.get_mut(r).unwrap().egress = Egress::Peer(1);
    let f = t.fwd(r).unwrap();
    assert_eq!(f.action, FwdAction::Peer(1));
    assert!(!f.express);
    // A stale handle marks nothing.
    t.remove(r);
    t.set_express(r);
    assert!(t.touch(r, peer(0), 9, 100).is_none());
    check_invariants(&t);
}
