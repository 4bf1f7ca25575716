//! Stage: the identity header on flows of local workloads leaving toward a
//! warden peer: on TCP SYN and SYN-ACK, on a flow's first packet, and again
//! every `restamp_secs` (so a receiver that lost its state recovers). The
//! nonce is the TCP sequence number. Where the stamped frame would not fit
//! the inner MTU, an announce-only packet is made instead and sent right
//! before the frame, which goes unstamped. Flood copies of a packet that
//! was due are all stamped.

use std::net::IpAddr;

use identity::header::{self, Repr, TagInput, FLAG_ANNOUNCE};
use identity::keys::KeySource;
use identity::stamp;

use super::meta::{Next, Vector, ANNOUNCE, ANSWER, FLOOD_COPY};
use super::tables::PeerIdent;
use super::Ctx;
use crate::counters::DropReason;
use crate::flows::IdentitySource;

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    if cx.t.identity.is_none() {
        return;
    }
    let n = v.len();
    for i in 0..n {
        let Next::Encap(r) = v.meta[i].next else {
            continue;
        };
        if let Err(reason) = stamp_one(cx, v, i, r) {
            v.meta[i].next = Next::Drop(reason);
        }
    }
}

fn stamp_one(cx: &mut Ctx, v: &mut Vector, i: usize, peer: u16) -> Result<(), DropReason> {
    let m = v.meta[i];
    if m.flags & ANSWER != 0 {
        return stamp_answer(cx, v, i, peer);
    }
    if m.flow.is_none() || m.flags & ANNOUNCE != 0 || !m.pkt.has_flow() {
        return Ok(());
    }
    let PeerIdent::Warden { id: wid, .. } = &cx.t.peers[usize::from(peer)].ident else {
        return Ok(());
    };
    let Some(id) = &cx.t.identity else {
        return Ok(());
    };
    let now = cx.st.now_s;
    let Some(e) = cx.st.flows.get_mut(m.flow) else {
        return Ok(());
    };
    if e.source != IdentitySource::LocalPort {
        return Ok(());
    }
    let due = m.pkt.is_syn()
        || e.last_header.is_none_or(|t| {
            now.saturating_sub(t) >= id.restamp_secs
                // Every flood copy of a packet that was stamped this second.
                || (m.flags & FLOOD_COPY != 0 && t == now)
        });
    if !due {
        return Ok(());
    }
    let flow = m.pkt.key.flow;
    let growth = growth_of(flow.src);
    let Some(buf) = v.bufs[i].as_ref() else {
        return Ok(());
    };
    let announce = buf.len() + growth > cx.t.max_inner_frame;
    let src_identity = e.src_identity;
    e.last_header = Some(now);
    let nonce = m.pkt.tcp.map(|(_, seq)| seq).unwrap_or(0);
    let flags = if announce { FLAG_ANNOUNCE } else { 0 };
    let repr = mint(cx, *wid, m.vni, flow, src_identity, nonce, flags)?;
    let Some(buf) = v.bufs[i].as_mut() else {
        return Ok(());
    };
    if !announce {
        return insert(cx, buf, growth, &repr);
    }
    let Some(mut a) = cx.pool.get() else {
        return Err(DropReason::PoolEmpty);
    };
    a.set_len(crate::buffer::BUF_SIZE);
    let n = match flow.src {
        IpAddr::V4(_) => stamp::announce_ipv4(buf.frame(), &repr, a.frame_mut()),
        IpAddr::V6(_) => stamp::announce_ipv6(buf.frame(), &repr, a.frame_mut()),
    };
    let Ok(n) = n else {
        cx.pool.put(a);
        return Err(DropReason::StampFailed);
    };
    a.set_len(n);
    let mut am = m;
    am.flags |= ANNOUNCE;
    am.announce = super::meta::NO_ANNOUNCE;
    match v.push(a, am) {
        Ok(j) => {
            v.meta[i].announce = j as u16;
            Ok(())
        }
        Err(a) => {
            cx.pool.put(a);
            Err(DropReason::FloodOverflow)
        }
    }
}

/// A `reject` answer toward a warden peer (a TCP RST, a DNS REFUSED)
/// vouched for by the identity of the destination it speaks for (the
/// opener's warden takes it as the reply it is). ICMP answers, like every
/// ICMP error, go unstamped.
fn stamp_answer(cx: &mut Ctx, v: &mut Vector, i: usize, peer: u16) -> Result<(), DropReason> {
    let m = v.meta[i];
    let nonce = match (m.pkt.key.flow.protocol, m.pkt.tcp) {
        (overlay::IpProtocol::TCP, Some((_, seq))) => seq,
        (overlay::IpProtocol::UDP, _) => 0,
        _ => return Ok(()),
    };
    let PeerIdent::Warden { id: wid, .. } = &cx.t.peers[usize::from(peer)].ident else {
        return Ok(());
    };
    let flow = m.pkt.key.flow;
    let repr = mint(cx, *wid, m.vni, flow, m.src_identity, nonce, 0)?;
    let Some(buf) = v.bufs[i].as_mut() else {
        return Ok(());
    };
    insert(cx, buf, growth_of(flow.src), &repr)
}

/// Bytes the header adds to an inner packet of this family.
fn growth_of(src: IpAddr) -> usize {
    match src {
        IpAddr::V4(_) => stamp::IPV4_GROWTH,
        IpAddr::V6(_) => stamp::IPV6_GROWTH,
    }
}

/// A header for `flow` in VNI index `vni` vouching for `id`, tagged with
/// the current epoch's key toward warden `wid`.
fn mint(
    cx: &Ctx,
    wid: identity::WardenId,
    vni: u16,
    flow: overlay::FlowKey,
    id: identity::IdentityId,
    nonce: u32,
    flags: u8,
) -> Result<Repr, DropReason> {
    let Some(keys) = &cx.st.keys else {
        return Err(DropReason::IdentityEpoch);
    };
    let unix_now = cx.st.unix_now;
    let epoch = keys.clock().epoch_at(unix_now);
    let Some(tag_key) = keys.sending_key(wid, epoch) else {
        return Err(DropReason::IdentityEpoch);
    };
    let mut repr = Repr {
        flags,
        epoch: epoch as u8,
        id,
        timestamp: unix_now as u32,
        nonce,
        tag: [0; 12],
    };
    let vni_id = cx.t.vnis[usize::from(vni)].id.get();
    repr.tag = header::mint(tag_key, &repr, &TagInput::new(flow, vni_id));
    Ok(repr)
}

/// Insert `repr` into the frame in `buf`, growing it by `growth`.
fn insert(
    cx: &Ctx,
    buf: &mut crate::buffer::Buf,
    growth: usize,
    repr: &Repr,
) -> Result<(), DropReason> {
    if buf.prepend(growth).is_none() {
        return Err(DropReason::StampFailed);
    }
    match stamp::insert(buf.frame_mut(), growth, repr) {
        Ok(0) => {
            cx.c.identity_stamped.inc();
            Ok(())
        }
        _ => Err(DropReason::StampFailed),
    }
}
