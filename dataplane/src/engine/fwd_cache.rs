//! The switch stage's per-flow forwarding cache (OVS's exact-match cache,
//! on the flow entry classify already found): where a flow's last frame
//! went, so the next frames of that flow skip the FDB learn and lookup
//! and, for routed flows, the whole route stage and the egress switch (the
//! next hop's FDB location is cached with the flow).
//!
//! A cached decision is used only when nothing it was made from has
//! changed: the frame's MACs and VNI are the same, and so are the FDB's
//! and the router's generations, the config epoch (a reload) and the
//! engine second. The second bounds what the cache skips: the uncached
//! path runs at least once a second per flow, which refreshes the learned
//! FDB entry and neighbor as every frame would within that second. The
//! origin was checked by classify (a frame of a known flow from another
//! origin never gets here), so a hit is the decision the uncached stages
//! would have made. Anything unusual (a routed frame with IP options, a
//! TTL about to expire, a frame too big, packets waiting for a next hop;
//! a next hop the FDB did not know is never cached) takes the uncached
//! path, which decides and counts it.
//!
//! The cache is filled only with unicast decisions for IP frames of a
//! known flow received from a port or a peer; it lives in the flow table's
//! slot, so it is bounded by the table and goes with the flow.
//!
//! Where it applies: in classify, which holds the flow already, as long
//! as no earlier packet of the burst went on to a stage that changes the
//! FDB or the neighbors (the packet then skips the switch stage); after
//! that, in the switch stage, in packet order. Either way a packet sees
//! the state every earlier packet of its burst left, as without the cache.

use overlay::{checksum, ethernet, ipv4, MacAddr};

use super::meta::{From, Kind, Meta, Next, PLAIN, ROUTED};
use super::{route, switch, Ctx};
use crate::buffer::Buf;
use crate::counters::RunTally;
use crate::fdb::Location;
use crate::flows::{FlowRef, Fwd, FwdAction, FwdStamp};

/// What a cached decision depends on, now.
#[inline]
pub(super) fn stamp(cx: &Ctx) -> FwdStamp {
    FwdStamp {
        fdb: cx.st.fdb.generation() as u32,
        router: cx.st.router.generation() as u32,
        epoch: cx.st.fwd_epoch,
        second: cx.st.now_s,
    }
}

/// Remember that flow `flow`'s frame with MACs `macs` in `vni` went
/// `action` (called by the uncached path once it decided); `express`:
/// classify found the flow plain (`meta::PLAIN`).
#[inline]
pub(super) fn fill(
    cx: &mut Ctx,
    flow: FlowRef,
    vni: u16,
    macs: (u64, u64),
    action: FwdAction,
    express: bool,
) {
    if !cx.st.fwd_cache {
        return;
    }
    let fwd = Fwd {
        dst: macs.0,
        src: macs.1,
        vni,
        action,
        stamp: stamp(cx),
        express,
    };
    cx.st.flows.set_fwd(flow, fwd);
}

/// Whether a packet's decision may be cached and used: an IP frame of a
/// known flow, received from a port or a peer (not routed or made by the
/// gateway).
#[inline]
pub(super) fn cacheable(m: &Meta) -> bool {
    !m.flow.is_none()
        && m.pkt.kind == Kind::Ip
        && m.flags & ROUTED == 0
        && matches!(m.from, From::Port(_) | From::Peer(_))
}

/// The cached decision for a packet classify sends to the switch stage
/// (see `classify::run` for when it may apply there): an IP frame of a
/// known flow from a port or a peer.
#[inline]
pub(super) fn at_classify(
    cx: &mut Ctx,
    buf: &mut Option<Buf>,
    m: &mut Meta,
    routed: &mut RunTally,
) -> Option<Next> {
    if !cacheable(m) {
        return None;
    }
    let flow = m.flow;
    let hdr = buf.as_ref()?.frame().first_chunk::<12>()?;
    let macs = MacAddr::pair_from_frame(hdr);
    let (vni, seen) = (m.vni, m.egress);
    let next = hit(cx, buf, m, flow, vni, macs, routed, false)?;
    switch::record_egress(cx, flow, seen, next);
    Some(next)
}

/// The cached decision for the packet in `buf` and `m`, of flow `flow`
/// (MACs `macs`, in `vni`), applied; None: take the uncached path. A routed hit is
/// rewritten here and counted in `routed`.
///
/// `route_pending`: an earlier packet of this burst goes to the route
/// stage, which runs after this pass and may change the neighbors (it
/// learns senders): routed flows then take the route stage too, so that
/// what it learns applies in packet order.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn hit(
    cx: &mut Ctx,
    buf: &mut Option<Buf>,
    m: &mut Meta,
    flow: FlowRef,
    vni: u16,
    macs: (u64, u64),
    routed: &mut RunTally,
    route_pending: bool,
) -> Option<Next> {
    let b = buf.as_mut()?;
    let (h, express) = check(cx, flow, vni, macs, b.frame(), route_pending)?;
    // The same decision for a frame classify found plain: the flow's next
    // frames may take the express lane (until the stamp changes).
    if !express && m.flags & PLAIN != 0 {
        cx.st.flows.set_express(flow);
    }
    Some(apply(cx, b, m, h, routed))
}

/// A cached decision that holds for a frame, not yet applied.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hit {
    /// Switched: deliver to a port or encapsulate toward a peer.
    To(Next),
    /// Routed into `out_vni` toward `mac`, then `next`; the IP packet is
    /// `total` bytes long.
    Routed {
        out_vni: u16,
        mac: u64,
        next: Next,
        total: usize,
    },
}

/// Whether flow `flow` has a cached decision for `frame` (MACs `macs`, in
/// `vni`) that holds now, and whether it allows the express lane; it
/// changes nothing (see [`hit`] for `route_pending`).
#[inline]
pub(super) fn check(
    cx: &Ctx,
    flow: FlowRef,
    vni: u16,
    macs: (u64, u64),
    frame: &[u8],
    route_pending: bool,
) -> Option<(Hit, bool)> {
    let f = *cx.st.flows.fwd(flow)?;
    if f.dst != macs.0 || f.src != macs.1 || f.vni != vni || f.stamp != stamp(cx) {
        return None;
    }
    let h = match f.action {
        FwdAction::None => return None,
        FwdAction::Port(p) => Hit::To(Next::Deliver(p)),
        FwdAction::Peer(r) => Hit::To(Next::Encap(r)),
        FwdAction::Routed { .. } if route_pending => return None,
        FwdAction::Routed { out_vni, mac, to } => {
            let total = route_check(cx, frame)?;
            let next = match to {
                Location::Port(p) => Next::Deliver(p),
                Location::Peer(r) => Next::Encap(r),
            };
            Hit::Routed {
                out_vni,
                mac,
                next,
                total,
            }
        }
    };
    Some((h, f.express))
}

/// Applies a decision [`check`] found for the frame in `buf`: a routed
/// frame is rewritten (and counted in `routed`).
#[inline(always)]
pub(super) fn apply(
    cx: &mut Ctx,
    buf: &mut Buf,
    m: &mut Meta,
    h: Hit,
    routed: &mut RunTally,
) -> Next {
    let (out_vni, mac, next, total) = match h {
        Hit::To(next) => return next,
        Hit::Routed {
            out_vni,
            mac,
            next,
            total,
        } => (out_vni, mac, next, total),
    };
    // Ethernet padding beyond the IP packet is not forwarded.
    buf.set_len(ethernet::HEADER_LEN + total);
    route::rewrite(cx, buf, out_vni, MacAddr::from_u64(mac));
    routed.add((m.vni, out_vni), 0, |(a, b), n, _| {
        route::count_routed(cx.c, a, b, n)
    });
    m.vni = out_vni;
    m.from = From::Router;
    m.flags |= ROUTED;
    next
}

/// A routed flow's frame: the route stage's checks (anything it would
/// answer or drop goes to it). The IP packet's length when they pass.
#[inline]
fn route_check(cx: &Ctx, frame: &[u8]) -> Option<usize> {
    // A packet waiting for a next hop may wait for this sender.
    if cx.st.router.has_parked() {
        return None;
    }
    let max_frame = cx.t.max_inner_frame;
    let (_, l3) = frame.split_first_chunk::<{ ethernet::HEADER_LEN }>()?;
    let iph = l3.first_chunk::<{ ipv4::HEADER_LEN }>()?;
    let total = usize::from(u16::from_be_bytes([iph[2], iph[3]]));
    // Version 4 without options, whole, TTL left, checksum right.
    if iph[0] != 0x45
        || total < ipv4::HEADER_LEN
        || l3.len() < total
        || iph[8] <= 1
        || ethernet::HEADER_LEN + total > max_frame
        || checksum::sum_ipv4_header(iph) != 0xffff
    {
        return None;
    }
    Some(total)
}
