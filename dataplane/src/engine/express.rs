//! The express lane (OVS's exact-match cache in front of its classifier):
//! the leading packets of an underlay burst that belong to flows whose
//! whole decision is cached go from the wire to encap (or delivery) in one
//! pass, instead of through rx_underlay, decap and classify one stage at a
//! time.
//!
//! It decides nothing itself. A packet takes it only when each stage would
//! give the answer already cached, checked with the stages' own code:
//! - the outer headers are VXLAN in its common shape and pass
//!   `DecapShape::decap_matched` (which gives `overlay::decap`'s answer);
//!   the sender is a configured peer that carries the VNI (decap's
//!   `Senders`);
//! - the inner frame parses (classify's `parse_into`) as an IP flow that
//!   has an entry, from that peer (the flow's origin);
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
//! packets). Off while a live trace notes each stage, and with the
//! forwarding cache off (nothing is marked then).

use overlay::{DecapShape, MacAddr};

use super::decap::{self, Senders};
use super::fwd_cache::{self, Hit};
use super::meta::{From, Kind, Meta, Next, Pkt, Vector};
use super::{parse, switch, Ctx};
use crate::buffer::BufFlags;
use crate::counters::RunTally;
use crate::flows::{FlowRef, Origin};

/// Takes the leading packets of an underlay burst that may go express.
/// Returns how many it took.
pub(super) fn run(cx: &mut Ctx, v: &mut Vector) -> usize {
    // With identity on, no flow is plain: nothing to try.
    if cx.t.identity.is_some() {
        return 0;
    }
    let c = cx.c;
    let now = cx.st.now_s;
    let mut senders = Senders::default();
    let (mut rx, mut routed) = (RunTally::new(), RunTally::new());
    let mut taken = 0;
    for (slot, m) in v.bufs.iter_mut().zip(v.meta.iter_mut()) {
        let Some(buf) = slot.as_mut() else {
            break;
        };
        let Some(x) = admit(
            cx,
            buf.frame(),
            buf.flags.contains(BufFlags::CSUM_NOT_READY),
            m,
            &mut senders,
        ) else {
            // The staged path parses this packet afresh.
            m.pkt = Pkt::EMPTY;
            break;
        };
        // Counted only from the flow's origin; from anywhere else, nothing
        // changed yet and the staged path drops it.
        let origin = Origin::Peer(x.peer);
        let Some(e) = cx.st.flows.touch(x.flow, origin, now, x.inner.1 as u64) else {
            m.pkt = Pkt::EMPTY;
            break;
        };
        let egress = e.egress;
        (m.verdict, m.src_identity, m.egress) = (e.verdict, e.src_identity, e.egress);
        decap::trim_to(buf, x.inner.0, x.inner.1);
        rx.add((x.peer, x.vni), buf.len() as u64, |k, n, b| {
            decap::count_rx(c, k, n, b)
        });
        m.from = From::Peer(x.peer);
        m.vni = x.vni;
        m.hash = x.hash;
        m.flow = x.flow;
        let next = fwd_cache::apply(cx, buf, m, x.hit, &mut routed);
        switch::record_egress(cx, x.flow, egress, next);
        m.next = next;
        taken += 1;
    }
    rx.finish(|k, n, b| decap::count_rx(c, k, n, b));
    routed.finish(|(a, b), n, _| super::route::count_routed(c, a, b, n));
    if taken > 0 {
        c.fwd_cache_hits.add(taken as u64);
        c.express_hits.add(taken as u64);
    }
    taken
}

/// What [`admit`] found for a packet that may go express.
struct Admitted {
    /// Offset and length of the inner frame.
    inner: (usize, usize),
    peer: u16,
    vni: u16,
    hash: u32,
    flow: FlowRef,
    hit: Hit,
}

/// Whether the underlay frame `f` (`csum_partial`: its L4 checksum left to
/// offload)
/// may go express, changing nothing but `m.pkt` (parsed into) and the
/// burst's sender caches.
#[inline(always)]
fn admit(
    cx: &Ctx,
    f: &[u8],
    csum_partial: bool,
    m: &mut Meta,
    senders: &mut Senders,
) -> Option<Admitted> {
    // A checksum left to offload is completed by decap: the staged path.
    if m.next != Next::Underlay || csum_partial || !cx.st.decap_shape.matches(f) {
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
    let hash = overlay::flow_hash(&m.pkt.key.flow);
    let flow = cx.st.flows.lookup_hashed(&m.pkt.key, hash)?;
    let macs = MacAddr::pair_from_frame(inner.first_chunk::<12>()?);
    let (hit, express) = fwd_cache::check(cx, flow, vni, macs, inner, false)?;
    express.then_some(Admitted {
        inner: (d.inner_offset, d.inner_len),
        peer,
        vni,
        hash,
        flow,
        hit,
    })
}
