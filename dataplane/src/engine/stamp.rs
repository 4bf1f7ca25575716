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

use super::meta::{Next, Vector, ANNOUNCE, FLOOD_COPY};
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
    if m.flow.is_none() || m.flags & ANNOUNCE != 0 || !m.pkt.has_flow() {
        return Ok(());
    }
    let PeerIdent::Warden { id: wid, .. } = &cx.t.peers[usize::from(peer)].ident else {
        return Ok(());
    };
    let (Some(id), Some(keys)) = (&cx.t.identity, &cx.st.keys) else {
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
    let vni_id = cx.t.vnis[usize::from(m.vni)].id.get();
    let unix_now = cx.st.unix_now;
    let epoch = keys.clock().epoch_at(unix_now);
    let Some(tag_key) = keys.sending_key(*wid, epoch) else {
        return Err(DropReason::IdentityEpoch);
    };
    let growth = match flow.src {
        IpAddr::V4(_) => stamp::IPV4_GROWTH,
        IpAddr::V6(_) => stamp::IPV6_GROWTH,
    };
    let Some(buf) = v.bufs[i].as_mut() else {
        return Ok(());
    };
    let announce = buf.len() + growth > cx.t.max_inner_frame;
    let mut repr = Repr {
        flags: if announce { FLAG_ANNOUNCE } else { 0 },
        epoch: epoch as u8,
        id: e.src_identity,
        timestamp: unix_now as u32,
        nonce: m.pkt.tcp.map(|(_, seq)| seq).unwrap_or(0),
        tag: [0; 12],
    };
    repr.tag = header::mint(tag_key, &repr, &TagInput::new(flow, vni_id));
    e.last_header = Some(now);
    if !announce {
        if buf.prepend(growth).is_none() {
            return Err(DropReason::StampFailed);
        }
        return match stamp::insert(buf.frame_mut(), growth, &repr) {
            Ok(0) => {
                cx.c.identity_stamped.inc();
                Ok(())
            }
            _ => Err(DropReason::StampFailed),
        };
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
