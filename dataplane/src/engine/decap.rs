//! Stage: VXLAN off. The outer headers are checked (overlay::decap; for a
//! frame rx_underlay marked `OUTER_SHAPE`, only the IP checksum and the
//! lengths are left to check, which give decap's answer), the
//! sender must be a configured peer that carries the VNI (both by hash
//! lookup), and the buffer is trimmed to the inner frame.

use std::net::Ipv4Addr;

use overlay::Decapped;

use super::meta::{From, Next, Vector, OUTER_SHAPE};
use super::{csum, Ctx, Tables};
use crate::buffer::{Buf, BufFlags};
use crate::counters::{DropReason, RunTally, WorkerCounters};

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    // Per (peer, VNI) counters, added once per run of packets.
    let mut tally = RunTally::new();
    let c = cx.c;
    let mut senders = Senders::default();
    for (slot, m) in v.bufs.iter_mut().zip(v.meta.iter_mut()) {
        if m.next != Next::Decap {
            continue;
        }
        let Some(buf) = slot.as_mut() else {
            continue;
        };
        // The common shape's fixed bytes were matched by rx_underlay; any
        // other frame, or one that fails the rest, gets the full checks
        // (which name the reason).
        let shaped = if m.flags & OUTER_SHAPE != 0 {
            overlay::DecapShape::decap_matched(buf.frame())
        } else {
            None
        };
        let d = match shaped {
            Some(d) => Ok(d),
            None => overlay::decap(buf.frame(), cx.t.udp_port),
        };
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                m.next = Next::Drop(decap_drop(e));
                continue;
            }
        };
        let (peer, vni) = match senders.resolve(cx.t, &d) {
            Ok(x) => x,
            Err(reason) => {
                m.next = Next::Drop(reason);
                continue;
            }
        };
        trim(buf, &d);
        tally.add((peer, vni), buf.len() as u64, |k, n, b| {
            count_rx(c, k, n, b)
        });
        m.from = From::Peer(peer);
        m.vni = vni;
        m.gbp = d.gbp.map(|g| g.group);
        m.next = Next::Classify;
    }
    tally.finish(|k, n, b| count_rx(c, k, n, b));
}

/// Per (peer, VNI index) receive counters: `packets` decapsulated frames
/// of `bytes` inner bytes.
#[inline]
pub(super) fn count_rx(c: &WorkerCounters, (peer, vni): (u16, u16), packets: u64, bytes: u64) {
    c.peers[usize::from(peer)].rx_packets.add(packets);
    let vc = &c.vnis[usize::from(vni)];
    vc.rx_decap_packets.add(packets);
    vc.rx_decap_bytes.add(bytes);
}

/// Who sent a decapsulated frame, with last-hit caches for the burst (VPP's
/// decap keeps one): a burst mostly comes from one peer in one VNI.
#[derive(Debug, Default)]
pub(super) struct Senders {
    peer: Option<(Ipv4Addr, u16)>,
    vni: Option<(overlay::Vni, u16)>,
}

impl Senders {
    /// The peer index and VNI index of frame `d`: a configured peer (by its
    /// outer source address) that carries the VNI, or why it is dropped.
    #[inline(always)]
    pub(super) fn resolve(&mut self, t: &Tables, d: &Decapped) -> Result<(u16, u16), DropReason> {
        let peer = match self.peer {
            Some((a, p)) if a == d.outer_src => p,
            _ => {
                let p = t.peer_index(d.outer_src).ok_or(DropReason::NotAPeer)?;
                self.peer = Some((d.outer_src, p));
                p
            }
        };
        let vni = match self.vni {
            Some((id, x)) if id == d.vni => x,
            _ => {
                let x = t.vni_index(d.vni).ok_or(DropReason::UnknownVni)?;
                self.vni = Some((d.vni, x));
                x
            }
        };
        if !t.peers[usize::from(peer)].carries(usize::from(vni)) {
            return Err(DropReason::PeerVniNotAllowed);
        }
        Ok((peer, vni))
    }
}

/// Trims the buffer to the inner frame `d` found in it.
#[inline]
pub(super) fn trim(buf: &mut Buf, d: &Decapped) {
    trim_to(buf, d.inner_offset, d.inner_len);
}

/// Trims the buffer to the inner frame of `len` bytes at `offset`.
#[inline]
pub(super) fn trim_to(buf: &mut Buf, offset: usize, len: usize) {
    buf.trim_front(offset);
    // Outer Ethernet padding (or trailing bytes) is not part of the inner frame.
    buf.set_len(len);
    finish_partial_checksum(buf);
}

/// Complete a checksum the sending kernel left to offload (see `csum`).
#[inline]
pub(super) fn finish_partial_checksum(buf: &mut Buf) {
    if buf.flags.contains(BufFlags::CSUM_NOT_READY) {
        csum::complete_l4_checksum(buf.frame_mut());
        buf.flags.remove(BufFlags::CSUM_NOT_READY);
    }
}

fn decap_drop(e: overlay::DecapError) -> DropReason {
    use overlay::DecapError as E;
    match e {
        E::Truncated => DropReason::Truncated,
        E::NotIpv4 => DropReason::UnderlayNotIpv4,
        E::BadIpHeader => DropReason::BadIpHeader,
        E::BadIpChecksum => DropReason::BadIpChecksum,
        E::Fragment => DropReason::OuterFragment,
        E::NotUdp | E::NotVxlanPort => DropReason::UnderlayNotForUs,
        E::BadUdpLength => DropReason::BadUdpLength,
        E::BadUdpChecksum => DropReason::BadUdpChecksum,
        E::BadVxlanFlags => DropReason::BadVxlanFlags,
        E::InnerTooShort => DropReason::InnerTooShort,
    }
}
