//! The express lane (OVS's exact-match cache in front of its classifier):
//! the leading packets of an underlay burst that belong to established
//! flows whose whole decision is cached skip rx_underlay, decap's general
//! path and classify. They leave the lane decapsulated, counted and with
//! their next stage set (encap, or delivery to a port), ahead of the
//! packets the stages take.
//!
//! It decides nothing itself. A packet takes it only when each stage would
//! give the answer already cached, checked with the stages' own code:
//! - the outer headers are VXLAN in its common shape and pass
//!   `DecapShape::decap_matched` (which gives `overlay::decap`'s answer);
//!   the sender is a configured peer that carries the VNI (decap's
//!   `Senders`);
//! - the inner frame parses as an IP flow (`parse_common_into`, held to
//!   classify's `parse_into` by a property test, else `parse_into` itself)
//!   that has an entry, from that peer (the flow's origin, checked by
//!   `FlowTable::touch` before it counts anything);
//! - the flow's cached forwarding decision holds for the frame
//!   (`fwd_cache::check`: the same MACs and VNI, FDB and router
//!   generations, config epoch and engine second; for a routed flow the
//!   route stage's checks) and is marked express: classify found the flow
//!   plain (identity off, no header, L7, recheck or DNS answer to learn
//!   from) and nothing changed the entry since (`FlowTable::get_mut`
//!   clears the mark; the stamp's second makes the staged path run at
//!   least once a second per flow).
//!
//! The first packet that fails a check ends the lane for the burst: it and
//! every packet after it take the staged path, so the order of packets and
//! the state each one sees are the staged path's. The lane counts what the
//! staged path counts for these packets (decap's per peer and VNI
//! counters, the flow's packets and bytes, forwarding cache hits, routed
//! packets). Off with identity on (no flow is plain), while a live trace
//! notes each stage, and with the forwarding cache off (nothing is marked
//! then).

use overlay::{DecapShape, MacAddr};

use super::decap::{self, Senders};
use super::fwd_cache::{self, Hit};
use super::meta::{From, Kind, Meta, Next, Vector};
use super::{parse, switch, Ctx};
use crate::buffer::{BufFlags, BURST};
use crate::counters::RunTally;
use crate::flows::{FlowRef, Origin};

/// Takes the leading packets of an underlay burst that may go express.
/// Returns how many it took.
///
/// Two passes, as the stages are: the frames' own checks and parse for
/// the leading packets first (nothing but their metadata changes), then
/// their flows. One long pass per packet measured slower: fewer packets
/// in flight at once.
pub(super) fn run(cx: &mut Ctx, v: &mut Vector) -> usize {
    // With identity on, no flow is plain: nothing to try.
    if cx.t.identity.is_some() {
        return 0;
    }
    // Pass 1: outer headers, sender and inner parse.
    let mut senders = Senders::default();
    let mut inner = [(0u16, 0u16); BURST];
    let mut framed = 0;
    for ((slot, m), at) in v.bufs.iter().zip(v.meta.iter_mut()).zip(inner.iter_mut()) {
        let Some(buf) = slot.as_ref() else {
            break;
        };
        let csum_partial = buf.flags.contains(BufFlags::CSUM_NOT_READY);
        let Some(x) = frame(cx, buf.frame(), csum_partial, m, &mut senders) else {
            break;
        };
        *at = x;
        framed += 1;
    }
    // Pass 2: the flow, its cached decision, and the commit.
    let c = cx.c;
    let now = cx.st.now_s;
    let (mut rx, mut routed) = (RunTally::new(), RunTally::new());
    let mut taken = 0;
    for ((slot, m), &(off, len)) in v
        .bufs
        .iter_mut()
        .zip(v.meta.iter_mut())
        .zip(&inner[..framed])
    {
        let Some(buf) = slot.as_mut() else {
            break;
        };
        let (off, len) = (usize::from(off), usize::from(len));
        let Some((hit, flow)) = buf
            .frame()
            .get(off..off + len)
            .and_then(|f| decided(cx, f, m))
        else {
            break;
        };
        // Counted only from the flow's origin; from anywhere else, nothing
        // changed yet and the staged path drops it.
        let From::Peer(peer) = m.from else {
            break;
        };
        let Some(e) = cx.st.flows.touch(flow, Origin::Peer(peer), now, len as u64) else {
            break;
        };
        let egress = e.egress;
        (m.verdict, m.src_identity, m.egress) = (e.verdict, e.src_identity, e.egress);
        decap::trim_to(buf, off, len);
        rx.add((peer, m.vni), buf.len() as u64, |k, n, b| {
            decap::count_rx(c, k, n, b)
        });
        m.flow = flow;
        let next = fwd_cache::apply(cx, buf, m, hit, &mut routed);
        switch::record_egress(cx, flow, egress, next);
        m.next = next;
        taken += 1;
    }
    rx.finish(|k, n, b| decap::count_rx(c, k, n, b));
    routed.finish(|(a, b), n, _| super::route::count_routed(c, a, b, n));
    if taken > 0 {
        c.fwd_cache_hits.add(taken as u64);
        c.express_hits.add(taken as u64);
    }
    // What pass 1 wrote and pass 2 did not take (and the packet pass 1
    // stopped at) goes to the stages as it came.
    let fresh = Meta::new(Next::Underlay, From::Port(cx.t.underlay_port), 0);
    let end = (framed + 1).min(v.meta.len());
    for m in v.meta.get_mut(taken..end).into_iter().flatten() {
        *m = fresh;
    }
    taken
}

/// Pass 1 for one underlay frame `f` (`csum_partial`: its L4 checksum
/// left to offload): VXLAN in the common shape from a peer that carries
/// the VNI, an IP flow inside. Writes the sender, VNI, parse and flow hash
/// into `m`; returns the inner frame's offset and length.
#[inline(always)]
fn frame(
    cx: &Ctx,
    f: &[u8],
    csum_partial: bool,
    m: &mut Meta,
    senders: &mut Senders,
) -> Option<(u16, u16)> {
    // A checksum left to offload is completed by decap: the staged path.
    if csum_partial || !cx.st.decap_shape.matches(f) {
        return None;
    }
    let d = DecapShape::decap_matched(f)?;
    let (peer, vni) = senders.resolve(cx.t, &d).ok()?;
    let inner = f.get(d.inner_offset..d.inner_offset + d.inner_len)?;
    if !parse::parse_common_into(inner, vni, &mut m.pkt) {
        parse::parse_into(inner, vni, &mut m.pkt).ok()?;
    }
    if m.pkt.kind != Kind::Ip {
        return None;
    }
    m.hash = overlay::flow_hash(&m.pkt.key.flow);
    m.from = From::Peer(peer);
    m.vni = vni;
    Some((d.inner_offset as u16, d.inner_len as u16))
}

/// Pass 2's checks for the packet of `m` with inner frame `inner`: its
/// flow and that flow's cached decision, marked express. Changes nothing.
#[inline(always)]
fn decided(cx: &Ctx, inner: &[u8], m: &Meta) -> Option<(Hit, FlowRef)> {
    let flow = cx.st.flows.lookup_hashed(&m.pkt.key, m.hash)?;
    let macs = MacAddr::pair_from_frame(inner.first_chunk::<12>()?);
    let (hit, express) = fwd_cache::check(cx, flow, m.vni, macs, inner, false)?;
    express.then_some((hit, flow))
}
