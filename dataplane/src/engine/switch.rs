//! Stage: L2 switching inside one VNI. Learn the source MAC (never a
//! routed or gateway-made frame; never over a static or bound MAC), hand
//! frames for the gateway to the route stage, then unicast by the FDB or
//! flood (copies appended to the vector). Records in the packet's flow
//! where the forward direction went: its replies must come from there.
//!
//! The driver runs this stage twice: once for what arrived, once for what
//! the route stage routed or made.

use overlay::MacAddr;

use super::meta::{From, Kind, Next, Vector, FLOOD_COPY, PLAIN, ROUTED};
use super::{fwd_cache, route, Ctx, MAX_FLOOD};
use crate::counters::{DropReason, RunTally};
use crate::fdb::{Learned, Location};
use crate::flows::{Egress, FlowRef, FwdAction, Origin};

/// Returns whether any packet goes to the route stage.
pub(super) fn run(cx: &mut Ctx, v: &mut Vector) -> bool {
    // Packets released from the gateway's parking are appended as we go.
    let mut routed = false;
    // Routed by a cached decision: counted per run of (ingress, egress) VNI.
    let mut tally = RunTally::new();
    let mut hits = 0u64;
    let mut i = 0;
    while i < v.len() {
        if v.meta[i].next == Next::Switch {
            let next = switch(cx, v, i, &mut tally, &mut hits, routed);
            routed |= next == Next::Route;
            v.meta[i].next = next;
        }
        i += 1;
    }
    let c = cx.c;
    tally.finish(|(a, b), n, _| route::count_routed(c, a, b, n));
    if hits > 0 {
        c.fwd_cache_hits.add(hits);
    }
    routed
}

fn switch(
    cx: &mut Ctx,
    v: &mut Vector,
    i: usize,
    tally: &mut RunTally,
    hits: &mut u64,
    route_pending: bool,
) -> Next {
    let (from, flags, vni, flow, seen, kind) = {
        let m = &v.meta[i];
        (m.from, m.flags, m.vni, m.flow, m.egress, m.pkt.kind)
    };
    let is_arp = kind == Kind::Arp;
    // Both MACs straight from the frame, as words (classify parsed the
    // same bytes; frames the gateway made or rewrote are read anyway).
    // Segments the inspect stage held and releases are switched by their
    // own MACs, not those of the segment that released them.
    let Some(hdr) = v.frame(i).first_chunk::<12>() else {
        return Next::Drop(DropReason::Truncated);
    };
    let (dst, src) = MacAddr::pair_from_frame(hdr);
    const GROUP_BIT: u64 = 1 << 40;
    const BROADCAST: u64 = 0xffff_ffff_ffff;
    let learn_at = match from {
        _ if flags & ROUTED != 0 => None,
        From::Port(p) => Some(Location::Port(p)),
        From::Peer(r) => Some(Location::Peer(r)),
        From::Router => None,
    };
    // An IP frame of a known flow from a port or peer: the flow's cached
    // decision, when nothing it was made from changed (fwd_cache.rs).
    let cacheable = fwd_cache::cacheable(&v.meta[i]);
    let plain = v.meta[i].flags & PLAIN != 0;
    if cacheable {
        let (buf, m) = (&mut v.bufs[i], &mut v.meta[i]);
        let hit = fwd_cache::hit(cx, buf, m, flow, vni, (dst, src), tally, route_pending);
        if let Some(next) = hit {
            *hits += 1;
            record_egress(cx, flow, seen, next);
            return next;
        }
    }
    let f = v.frame(i);
    // Frames the gateway produced or routed are neither learned nor routed again.
    if let Some(loc) = learn_at {
        // Unicast: neither a group address nor zero.
        if src & GROUP_BIT != 0 || src == 0 {
            return Next::Drop(DropReason::BadSourceMac);
        }
        let now = cx.st.now_s;
        if cx.st.fdb.learn_bits(vni, src, loc, now) == Learned::New {
            cx.c.vnis[usize::from(vni)].macs_learned.inc();
        }
        if let Some((cidr, gw_mac)) = cx.t.vnis[usize::from(vni)].gateway {
            if dst == gw_mac.to_u64()
                || (dst == BROADCAST && route::is_arp_request_for(f, cidr.address()))
            {
                return Next::Route;
            }
            // Classify parsed the frame: only ARP teaches the gateway.
            if is_arp {
                if let Some(ip) = cx.st.router.glean_arp(vni, f, cx.t, now) {
                    route::release_parked(cx, v, vni, ip);
                }
            }
        }
    }
    // A related ICMP error goes back only to the origin of the flow it
    // quotes, whatever its MACs say.
    if let Some(to) = v.meta[i].reply_to {
        return match to {
            Origin::Port { port, .. } if from != From::Port(port) => Next::Deliver(port),
            Origin::Peer(r) if from != From::Peer(r) => Next::Encap(r),
            _ => Next::Drop(DropReason::SameSegment),
        };
    }
    if dst & GROUP_BIT != 0 {
        return flood(cx, v, i);
    }
    let next = match cx.st.fdb.lookup_bits(vni, dst, cx.st.now_s) {
        Some(Location::Port(p)) if from == From::Port(p) && learn_at.is_some() => {
            return Next::Drop(DropReason::SameSegment)
        }
        Some(Location::Peer(r)) if from == From::Peer(r) && learn_at.is_some() => {
            return Next::Drop(DropReason::SameSegment)
        }
        Some(Location::Port(p)) => {
            if cacheable {
                fwd_cache::fill(cx, flow, vni, (dst, src), FwdAction::Port(p), plain);
            }
            Next::Deliver(p)
        }
        Some(Location::Peer(r)) => {
            if cacheable {
                fwd_cache::fill(cx, flow, vni, (dst, src), FwdAction::Peer(r), plain);
            }
            Next::Encap(r)
        }
        None => return flood(cx, v, i),
    };
    record_egress(cx, flow, seen, next);
    next
}

/// Remember where the forward direction of the packet's flow went.
#[inline]
pub(super) fn record_egress(cx: &mut Ctx, flow: FlowRef, seen: Egress, next: Next) {
    let egress = match next {
        Next::Deliver(p) => Egress::Port(p),
        Next::Encap(r) => Egress::Peer(r),
        _ => Egress::Flood,
    };
    if flow.is_none() || egress == seen {
        return;
    }
    if let Some(e) = cx.st.flows.get_mut(flow) {
        e.egress = egress;
    }
}

/// Replicate a broadcast, multicast or unknown-unicast frame to every
/// access port and peer of the VNI except where it came from. The copies
/// go to the end of the vector; the original takes the first target.
fn flood(cx: &mut Ctx, v: &mut Vector, i: usize) -> Next {
    let m = v.meta[i];
    let vt = &cx.t.vnis[usize::from(m.vni)];
    // Replication targets on the stack; a VNI with more ports and peers
    // than this floods to the first MAX_FLOOD (config keeps VNIs smaller).
    let mut targets = [Next::Done; MAX_FLOOD];
    let mut n = 0;
    for &p in &vt.access_ports {
        if m.from != From::Port(p) && n < MAX_FLOOD {
            targets[n] = Next::Deliver(p);
            n += 1;
        }
    }
    for &r in &vt.flood_peers {
        if m.from != From::Peer(r) && n < MAX_FLOOD {
            targets[n] = Next::Encap(r);
            n += 1;
        }
    }
    if n == 0 {
        return Next::Done;
    }
    record_egress(cx, m.flow, m.egress, Next::Done);
    for &t in &targets[1..n] {
        let Some(mut copy) = cx.pool.get() else {
            cx.c.count_drop(DropReason::PoolEmpty);
            continue;
        };
        if !copy.copy_from(v.frame(i)) {
            cx.pool.put(copy);
            continue;
        }
        let mut cm = m;
        cm.next = t;
        cm.flags |= FLOOD_COPY;
        match v.push(copy, cm) {
            Ok(_) => cx.c.vnis[usize::from(m.vni)].flood_copies.inc(),
            Err(copy) => {
                cx.pool.put(copy);
                cx.c.count_drop(DropReason::FloodOverflow);
            }
        }
    }
    targets[0]
}
