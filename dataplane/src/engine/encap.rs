//! Stage: VXLAN on. The peer's precomputed outer template goes into the
//! headroom; lengths, checksum and the UDP source port (a hash of the
//! inner flow parsed by classify) are filled in.

use overlay::{ethernet, OUTER_LEN};

use super::meta::{Meta, Next, Vector};
use super::Ctx;
use crate::counters::{DropReason, RunTally};

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    // Per (peer, VNI) counters, added once per run of packets.
    let mut tally = RunTally::new();
    let c = cx.c;
    let flush = |(r, vni): (u16, u16), packets: u64, bytes: u64| {
        c.peers[usize::from(r)].tx_packets.add(packets);
        let vc = &c.vnis[usize::from(vni)];
        vc.tx_encap_packets.add(packets);
        vc.tx_encap_bytes.add(bytes);
    };
    for (slot, m) in v.bufs.iter_mut().zip(v.meta.iter_mut()) {
        let Next::Encap(r) = m.next else {
            continue;
        };
        let next = encap(cx, slot, m, r);
        if let Next::Tx(_) = next {
            let inner_len = slot.as_ref().map_or(0, |b| b.len() - OUTER_LEN);
            tally.add((r, m.vni), inner_len as u64, flush);
        }
        m.next = next;
    }
    tally.finish(flush);
}

/// Encapsulate the packet in `slot` toward peer `r` (counted by the caller).
#[inline]
fn encap(cx: &mut Ctx, slot: &mut Option<crate::buffer::Buf>, m: &Meta, r: u16) -> Next {
    let Some(template) = &cx.st.templates[usize::from(r)] else {
        return Next::Drop(DropReason::NoPeerNextHop);
    };
    if cx.st.peer_down(r) {
        return Next::Drop(DropReason::PeerDown);
    }
    let Some(buf) = slot.as_mut() else {
        return Next::Done;
    };
    let inner_len = buf.len();
    if inner_len + OUTER_LEN - ethernet::HEADER_LEN > cx.t.underlay_mtu {
        return Next::Drop(DropReason::TooBig);
    }
    let hash = if m.pkt.has_flow() && !m.flow.is_none() {
        m.hash
    } else if m.pkt.has_flow() {
        overlay::flow_hash(&m.pkt.key.flow)
    } else {
        mac_hash(buf.frame())
    };
    let src_port = overlay::vxlan_src_port(hash);
    let vni = m.vni;
    let vni_id = cx.t.vnis[usize::from(vni)].id;
    let Some(hdr) = buf.prepend_array::<OUTER_LEN>() else {
        return Next::Drop(DropReason::PoolEmpty);
    };
    if template.write(hdr, inner_len, src_port).is_err() {
        return Next::Drop(DropReason::TooBig);
    }
    overlay::tunnel::set_gbp(hdr, vni_id, None);
    Next::Tx(cx.t.underlay_port)
}

/// A hash for frames without an IP flow (ARP, other ethertypes).
fn mac_hash(f: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in f.iter().take(12) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}
