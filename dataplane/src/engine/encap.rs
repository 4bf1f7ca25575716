//! Stage: VXLAN on. The peer's precomputed outer template goes into the
//! headroom; lengths, checksum and the UDP source port (a hash of the
//! inner flow parsed by classify) are filled in.

use overlay::{ethernet, OUTER_LEN};

use super::meta::{Next, Vector};
use super::Ctx;
use crate::counters::DropReason;

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    for i in 0..v.len() {
        let Next::Encap(r) = v.meta[i].next else {
            continue;
        };
        v.meta[i].next = encap(cx, v, i, r);
    }
}

fn encap(cx: &mut Ctx, v: &mut Vector, i: usize, r: u16) -> Next {
    let m = &v.meta[i];
    let Some(template) = &cx.st.templates[usize::from(r)] else {
        return Next::Drop(DropReason::NoPeerNextHop);
    };
    if cx.st.peer_down(r) {
        return Next::Drop(DropReason::PeerDown);
    }
    let Some(buf) = v.bufs[i].as_mut() else {
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
    if buf.prepend(OUTER_LEN).is_none() {
        return Next::Drop(DropReason::PoolEmpty);
    }
    let Some(hdr) = buf
        .frame_mut()
        .get_mut(..OUTER_LEN)
        .and_then(|s| <&mut [u8; OUTER_LEN]>::try_from(s).ok())
    else {
        return Next::Drop(DropReason::Truncated);
    };
    if template.write(hdr, inner_len, src_port).is_err() {
        return Next::Drop(DropReason::TooBig);
    }
    overlay::tunnel::set_gbp(hdr, vni_id, None);
    cx.c.peers[usize::from(r)].tx_packets.inc();
    let vc = &cx.c.vnis[usize::from(vni)];
    vc.tx_encap_packets.inc();
    vc.tx_encap_bytes.add(inner_len as u64);
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
