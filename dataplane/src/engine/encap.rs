//! Stage: VXLAN on. The peer's precomputed outer template goes into the
//! headroom; lengths, checksum and the UDP source port (a hash of the
//! inner flow parsed by classify) are filled in.

use overlay::{ethernet, OUTER_LEN};

use super::meta::{Meta, Next, Vector};
use super::Ctx;
use crate::buffer::Buf;
use crate::counters::{DropReason, RunTally, WorkerCounters};

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    // Per (peer, VNI) counters, added once per run of packets.
    let mut tally = RunTally::new();
    for (slot, m) in v.bufs.iter_mut().zip(v.meta.iter_mut()) {
        let Next::Encap(r) = m.next else {
            continue;
        };
        m.next = encap(cx, slot.as_mut(), m, r, &mut tally);
    }
    let c = cx.c;
    tally.finish(|k, n, b| count_tx(c, k, n, b));
}

/// Per (peer, VNI index) transmit counters: `packets` encapsulated frames
/// of `bytes` inner bytes.
#[inline]
pub(super) fn count_tx(c: &WorkerCounters, (r, vni): (u16, u16), packets: u64, bytes: u64) {
    c.peers[usize::from(r)].tx_packets.add(packets);
    let vc = &c.vnis[usize::from(vni)];
    vc.tx_encap_packets.add(packets);
    vc.tx_encap_bytes.add(bytes);
}

/// Encapsulate the packet in `buf` toward peer `r`, counted in `tally`
/// (added to the counters by [`count_tx`]). The stage and the express
/// lane both call it.
#[inline]
pub(super) fn encap(
    cx: &mut Ctx,
    buf: Option<&mut Buf>,
    m: &Meta,
    r: u16,
    tally: &mut RunTally,
) -> Next {
    let Some(template) = &cx.st.templates[usize::from(r)] else {
        return Next::Drop(DropReason::NoPeerNextHop);
    };
    if cx.st.peer_down(r) {
        return Next::Drop(DropReason::PeerDown);
    }
    let Some(buf) = buf else {
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
    let c = cx.c;
    tally.add((r, vni), inner_len as u64, |k, n, b| count_tx(c, k, n, b));
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
