//! The forwarding cache changes nothing but speed: two engines built from
//! the same config, one with the cache and one without, are fed the same
//! random sequences of switched and routed frames (TTLs about to expire,
//! bad checksums, IP options, oversized and padded frames, other source
//! MACs, a live tuple sent from another peer), MAC moves, neighbor
//! changes, reloads and clock jumps, and must send the same bytes out of
//! every port and count the same. The engine with the cache also runs the
//! express lane (`express.rs`), which must change nothing either.

use std::net::Ipv4Addr;

use overlay::{arp, EtherType, MacAddr};
use proptest::prelude::*;

use super::*;
use crate::flows::Key;

const H3_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 0x33]);
const H3_IP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 33);
const NH_MAC2: MacAddr = MacAddr([2, 0, 0, 0, 2, 0xfd]);
const OTHER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x99]);
const GROUP_MAC: MacAddr = MacAddr([1, 0, 0x5e, 0, 0, 1]);

#[derive(Debug, Clone)]
struct Frame {
    flow: u8,
    sport: u8,
    variant: u8,
    src_mac: u8,
}

#[derive(Debug, Clone)]
enum Ev {
    /// Frames sent together: one burst, one poll.
    Burst(Vec<Frame>),
    /// A host announces itself (broadcast ARP for the gateway) from a place.
    Announce { who: u8, at: u8 },
    /// The clock jumps (FDB and neighbor aging, the per-second caches).
    Tick(u8),
    /// The same config applied again (a new epoch: cached decisions go).
    Reload,
}

fn frame() -> impl Strategy<Value = Frame> {
    (0u8..7, 0u8..3, 0u8..24, 0u8..16).prop_map(|(flow, sport, variant, src_mac)| Frame {
        flow,
        sport,
        variant,
        src_mac,
    })
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        6 => proptest::collection::vec(frame(), 1..6).prop_map(Ev::Burst),
        2 => (0u8..6, 0u8..6).prop_map(|(who, at)| Ev::Announce { who, at }),
        1 => (0u8..3).prop_map(Ev::Tick),
        1 => Just(Ev::Reload),
    ]
}

/// Where a flow's frames enter: 0 is the underlay (peer index given), else
/// an access port.
struct FlowDef {
    port: u16,
    peer: usize,
    vni: u32,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

fn flow(n: u8) -> FlowDef {
    let (gw100, gw200) = (gw_mac(100), gw_mac(200));
    let f = |port, peer, vni, src_mac, dst_mac, src, dst| FlowDef {
        port,
        peer,
        vni,
        src_mac,
        dst_mac,
        src,
        dst,
    };
    match n {
        // Switched in VNI 100.
        0 => f(A1, 0, 100, H1_MAC, H2_MAC, H1_IP, H2_IP),
        1 => f(0, 0, 100, H2_MAC, H1_MAC, H2_IP, H1_IP),
        6 => f(0, 1, 100, HB_MAC, H1_MAC, Ipv4Addr::new(10, 1, 0, 3), H1_IP),
        // Routed from VNI 100 to 200 and back.
        2 => f(A1, 0, 100, H1_MAC, gw100, H1_IP, H4_IP),
        3 => f(0, 0, 100, H2_MAC, gw100, H2_IP, H3_IP),
        4 => f(A1, 0, 100, H1_MAC, gw100, H1_IP, Ipv4Addr::new(10, 9, 0, 1)),
        _ => f(B1, 0, 200, H3_MAC, gw200, H3_IP, H1_IP),
    }
}

/// The Ethernet frame of `fr` and where it enters (port, peer, VNI).
fn render(fr: &Frame) -> (u16, usize, u32, Vec<u8>) {
    let d = flow(fr.flow);
    let ttl = match fr.variant {
        6 => 1,
        7 => 2,
        _ => 64,
    };
    let data = if fr.variant == 10 {
        vec![0x5a; 1480]
    } else {
        b"forwarding cache".to_vec()
    };
    let mut ip = udp_packet_from(d.src, d.dst, 40000 + u16::from(fr.sport), ttl, true, &data);
    match fr.variant {
        // A wrong header checksum.
        8 => ip[10] ^= 0x40,
        // An IP option (a 4-byte NOP pad), header checksum right.
        9 => {
            ip.splice(20..20, [1, 1, 1, 1]);
            ip[0] = 0x46;
            let total = ip.len() as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[10..12].copy_from_slice(&[0, 0]);
            let sum = !overlay::checksum::sum(&ip[..24]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {}
    }
    let src_mac = match fr.src_mac {
        7 => OTHER_MAC,
        8 => GROUP_MAC,
        _ => d.src_mac,
    };
    let mut f = eth_frame(d.dst_mac, src_mac, EtherType::IPV4, &ip);
    if fr.variant == 11 {
        // Ethernet padding after the IP packet.
        f.extend_from_slice(&[0; 8]);
    }
    // A live tuple sent from the other peer of VNI 100 (not its origin).
    let peer = if fr.variant == 12 && d.port == 0 {
        (d.peer + 1) % 2
    } else {
        d.peer
    };
    (d.port, peer, d.vni, f)
}

/// The broadcast ARP request host `who` sends for the gateway from `at`.
fn announce(who: u8, at: u8) -> (u16, usize, u32, Vec<u8>) {
    let (mac, ip) = [
        (H2_MAC, H2_IP),
        (H3_MAC, H3_IP),
        (NH_MAC, NH_IP),
        (NH_MAC2, NH_IP),
        (H1_MAC, H1_IP),
        (H4_MAC, H4_IP),
    ][usize::from(who % 6)];
    let (port, peer, vni) = [
        (A1, 0, 100),
        (A2, 0, 100),
        (B1, 0, 200),
        (0, 0, 100),
        (0, 1, 100),
        (0, 2, 200),
    ][usize::from(at % 6)];
    let gw = if vni == 100 { GW100 } else { GW200 };
    let f = arp_frame(
        arp::Operation::REQUEST,
        MacAddr::BROADCAST,
        mac,
        ip,
        MacAddr::ZERO,
        gw,
    );
    (port, peer, vni, f)
}

/// Queue `f` at the far end of its port (VXLAN from `peer` for the underlay).
fn queue(r: &Rig, port: u16, peer: usize, vni: u32, f: &[u8]) {
    if port == 0 {
        r.wire.send(&vxlan_frame(PEERS[peer], vni, f));
    } else {
        r.access[usize::from(port) - 1].send(f);
    }
}

/// What a rig sent (underlay VXLAN, each access port) and counted, and its
/// flows' packet and byte counts.
type Observed = (
    Vec<Vec<u8>>,
    Vec<Vec<Vec<u8>>>,
    Vec<(&'static str, u64)>,
    Vec<u64>,
    Vec<(Key, u64, u64)>,
);

/// Everything a rig sent and counted since the last look.
fn observe(r: &Rig) -> Observed {
    let c = r.eng.counters();
    let mut counts = vec![c.routed_packets.get(), c.icmp_errors_sent.get()];
    for v in &c.vnis {
        counts.extend([
            v.routed_in.get(),
            v.routed_out.get(),
            v.flood_copies.get(),
            v.rx_decap_packets.get(),
            v.rx_decap_bytes.get(),
            v.tx_encap_packets.get(),
        ]);
    }
    counts.extend(c.peers.iter().map(|p| p.rx_packets.get()));
    let mut flows: Vec<_> = r
        .eng
        .st
        .flows
        .iter()
        .map(|(_, e)| (e.key, e.packets, e.bytes))
        .collect();
    flows.sort_by_key(|f| format!("{:?}", f.0));
    (
        r.vxlan_out(),
        [A1, A2, B1].iter().map(|&p| r.port_out(p)).collect(),
        r.drops(),
        counts,
        flows,
    )
}

/// Jump both clocks by `secs` and run their per-second work at the same
/// engine second.
fn tick(a: &mut Rig, b: &mut Rig, secs: u64) {
    a.eng.start -= std::time::Duration::from_secs(secs);
    b.eng.start = a.eng.start;
    loop {
        a.eng.force_housekeeping();
        b.eng.force_housekeeping();
        if a.eng.st.now_s == b.eng.st.now_s {
            return;
        }
    }
}

/// Both engines take the same config again.
fn reload(r: &mut Rig) {
    let cfg = config::parse_warden(CONFIG, "reload.toml").expect("valid");
    let tables = super::super::Tables::build(&cfg).expect("tables");
    r.eng
        .apply(std::sync::Arc::new(tables), &[])
        .expect("reload");
}

/// Cached forwards and, of those, express ones of the engine with the cache.
fn run_case(events: &[Ev]) -> Result<(u64, u64), TestCaseError> {
    let (mut a, mut b) = (rig(), rig());
    b.eng.st.fwd_cache = false;
    tick(&mut a, &mut b, 0);
    // H1, H2, H3 and NH known where the flows expect them, to begin with.
    let start = [(4, 0), (0, 3), (1, 2), (2, 2)].map(|(who, at)| Ev::Announce { who, at });
    for (n, ev) in start.iter().chain(events).enumerate() {
        match ev {
            Ev::Burst(frames) => {
                for r in [&a, &b] {
                    for fr in frames {
                        let (port, peer, vni, f) = render(fr);
                        queue(r, port, peer, vni, &f);
                    }
                }
                a.eng.poll();
                b.eng.poll();
            }
            Ev::Announce { who, at } => {
                let (port, peer, vni, f) = announce(*who, *at);
                queue(&a, port, peer, vni, &f);
                queue(&b, port, peer, vni, &f);
                a.eng.poll();
                b.eng.poll();
            }
            Ev::Tick(k) => tick(&mut a, &mut b, [1, 31, 301][usize::from(*k)]),
            Ev::Reload => {
                reload(&mut a);
                reload(&mut b);
            }
        }
        let (oa, ob) = (observe(&a), observe(&b));
        prop_assert_eq!(&oa, &ob, "event {} {:?} of {:?}", n, ev, events);
        for r in [&a, &b] {
            prop_assert_eq!(
                r.eng.pool.available() + r.eng.st.router.parked_len(),
                POOL_SIZE
            );
        }
    }
    prop_assert_eq!(b.eng.counters().fwd_cache_hits.get(), 0);
    let c = a.eng.counters();
    Ok((c.fwd_cache_hits.get(), c.express_hits.get()))
}

#[test]
fn the_cache_and_the_express_lane_change_no_output_and_no_counter() {
    let hits = std::cell::Cell::new((0u64, 0u64));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(event(), 1..60), |events| {
            let (cached, express) = run_case(&events)?;
            let (c, e) = hits.get();
            hits.set((c + cached, e + express));
            Ok(())
        })
        .unwrap();
    // The cache and the lane were used, routed and switched (not a test
    // that cannot fail).
    let (cached, express) = hits.get();
    eprintln!("cache hits: {cached}, express: {express}");
    assert!(cached > 400, "cache hits: {cached}");
    assert!(express > 40, "express hits: {express}");
}

#[test]
fn an_established_flow_goes_express_and_its_tuple_from_another_peer_does_not() {
    let mut r = rig();
    // H2 (behind peer 0) -> H1 on a1, switched in VNI 100.
    let h2 = Frame {
        flow: 1,
        sport: 0,
        variant: 0,
        src_mac: 0,
    };
    let send = |r: &mut Rig, fr: &Frame| {
        let (port, peer, vni, f) = render(fr);
        queue(r, port, peer, vni, &f);
        r.eng.poll();
    };
    // H1 announces itself on a1.
    let (port, peer, vni, f) = announce(4, 0);
    queue(&r, port, peer, vni, &f);
    r.eng.poll();
    r.port_out(A1);
    for _ in 0..4 {
        send(&mut r, &h2);
    }
    assert_eq!(r.port_out(A1).len(), 4);
    let c = r.eng.counters();
    // The first decides and the second hits in classify (which finds the
    // flow plain): the third and fourth go express.
    assert_eq!(c.fwd_cache_hits.get(), 3);
    assert_eq!(c.express_hits.get(), 2);
    // The only flow: H2 -> H1.
    let key_packets = |r: &Rig| -> u64 { r.eng.st.flows.iter().map(|(_, e)| e.packets).sum() };
    let before = key_packets(&r);
    // The same tuple from peer 1: not that flow's origin. Dropped, counted,
    // and the entry is not touched; the lane does not take it.
    send(
        &mut r,
        &Frame {
            variant: 12,
            ..h2.clone()
        },
    );
    assert_eq!(r.port_out(A1), Vec::<Vec<u8>>::new());
    assert_eq!(r.drop_count(DropReason::FlowOriginMismatch), 1);
    assert_eq!(r.eng.counters().express_hits.get(), 2);
    assert_eq!(key_packets(&r), before);
    // A burst that starts express and meets the spoof: the lane stops
    // there, the staged path drops the spoof and forwards what follows.
    for fr in [
        h2.clone(),
        Frame {
            variant: 12,
            ..h2.clone()
        },
        h2.clone(),
    ] {
        let (port, peer, vni, f) = render(&fr);
        queue(&r, port, peer, vni, &f);
    }
    r.eng.poll();
    assert_eq!(r.port_out(A1).len(), 2);
    assert_eq!(r.drop_count(DropReason::FlowOriginMismatch), 2);
    assert_eq!(r.eng.counters().express_hits.get(), 3);
    // A reload (new epoch): the staged path decides the next frame again
    // (a known, plain flow: marked express at once), then the lane takes
    // the frames after it.
    reload(&mut r);
    for _ in 0..3 {
        send(&mut r, &h2);
    }
    assert_eq!(r.port_out(A1).len(), 3);
    assert_eq!(r.eng.counters().express_hits.get(), 5);
    r.assert_no_leak();
}

#[test]
fn routed_and_switched_flows_hit_and_a_neighbor_change_takes_effect_at_once() {
    let mut r = rig();
    let send = |r: &mut Rig, fr: Frame| {
        let (port, peer, vni, f) = render(&fr);
        queue(r, port, peer, vni, &f);
        r.eng.poll();
    };
    let plain = |flow| Frame {
        flow,
        sport: 0,
        variant: 0,
        src_mac: 0,
    };
    // NH resolves (ARP from b1), then a1 -> 10.9.0.1 is routed to it.
    let (port, peer, vni, f) = announce(2, 2);
    queue(&r, port, peer, vni, &f);
    r.eng.poll();
    assert_eq!(r.port_out(B1).len(), 1, "ARP reply");
    for _ in 0..3 {
        send(&mut r, plain(4));
    }
    let out = r.port_out(B1);
    assert_eq!(out.len(), 3);
    assert!(out
        .iter()
        .all(|f| f[..6] == NH_MAC.0 && f[6..12] == gw_mac(200).0));
    assert_eq!(
        r.eng.counters().fwd_cache_hits.get(),
        2,
        "the first decides"
    );
    assert_eq!(r.eng.counters().routed_packets.get(), 3);
    // NH moves to another MAC: the next frame goes to it.
    let (port, peer, vni, f) = announce(3, 2);
    queue(&r, port, peer, vni, &f);
    r.eng.poll();
    r.port_out(B1);
    send(&mut r, plain(4));
    let out = r.port_out(B1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][..6], NH_MAC2.0);
    // A TTL about to expire in the same flow: answered, not forwarded.
    send(
        &mut r,
        Frame {
            variant: 6,
            ..plain(4)
        },
    );
    assert_eq!(r.port_out(B1), Vec::<Vec<u8>>::new());
    assert_eq!(r.drop_count(DropReason::TtlExceeded), 1);
    assert_eq!(r.port_out(A1).len(), 1, "time exceeded to H1");
    // Switched: H1 -> HB (static FDB behind peer 1), cached from the second.
    let hits = r.eng.counters().fwd_cache_hits.get();
    let hb = Frame {
        flow: 0,
        ..plain(0)
    };
    let mut to_hb = render(&hb);
    to_hb.3[..6].copy_from_slice(&HB_MAC.0);
    for _ in 0..4 {
        queue(&r, to_hb.0, to_hb.1, to_hb.2, &to_hb.3);
        r.eng.poll();
    }
    assert_eq!(r.vxlan_out().len(), 4);
    assert_eq!(r.eng.counters().fwd_cache_hits.get(), hits + 3);
    r.assert_no_leak();
}

#[test]
fn a_reload_that_moves_a_route_takes_effect_on_the_next_frame() {
    let mut r = rig();
    let (port, peer, vni, f) = announce(2, 2);
    queue(&r, port, peer, vni, &f);
    r.eng.poll();
    r.port_out(B1);
    let to_nh = Frame {
        flow: 4,
        sport: 0,
        variant: 0,
        src_mac: 0,
    };
    for _ in 0..2 {
        let (port, peer, vni, f) = render(&to_nh);
        queue(&r, port, peer, vni, &f);
        r.eng.poll();
    }
    assert_eq!(r.port_out(B1).len(), 2);
    assert_eq!(r.eng.counters().fwd_cache_hits.get(), 1);
    // The route now goes via H4 (behind peer 2), not NH (behind b1).
    let moved = CONFIG.replace(r#"via = "10.2.0.254""#, r#"via = "10.2.0.4""#);
    assert_ne!(moved, CONFIG);
    let cfg = config::parse_warden(&moved, "reload.toml").expect("valid");
    let tables = super::super::Tables::build(&cfg).expect("tables");
    r.eng
        .apply(std::sync::Arc::new(tables), &[])
        .expect("reload");
    let (port, peer, vni, f) = render(&to_nh);
    queue(&r, port, peer, vni, &f);
    r.eng.poll();
    assert_eq!(r.port_out(B1), Vec::<Vec<u8>>::new());
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    let inner = check_outer(&out[0], PEERS[2], 200);
    assert_eq!(inner[..6], H4_MAC.0);
    r.assert_no_leak();
}

/// A case the property found (CI, 2026-12-05): in one burst a routed flow
/// from H2 at peer 0, then another flow's frame from H2's MAC at peer 1
/// (the switch moves H2 there). The route stage, which runs after the
/// switch has seen both, cached the routed flow's decision under the
/// moved FDB; its next frame hit and skipped the learn that would have
/// moved H2 back, so H1's answer went to peer 1. The route stage now
/// caches only while the FDB has the source where a hit's learn puts it.
#[test]
fn a_routed_decision_is_not_cached_over_a_later_move_of_its_source() {
    let f = |flow, sport, variant| Frame {
        flow,
        sport,
        variant,
        src_mac: 0,
    };
    let events = [
        Ev::Burst(vec![f(3, 1, 13), f(1, 2, 12)]),
        Ev::Burst(vec![f(3, 1, 0)]),
        Ev::Burst(vec![f(0, 0, 0)]),
    ];
    if let Err(e) = run_case(&events) {
        panic!("{e}");
    }
}
