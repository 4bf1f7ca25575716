//! Identity at ingress, for classify: verify the identity header of a
//! frame from a warden peer (key of its epoch, tag over header + 5-tuple +
//! VNI, timestamp window, what that peer may assert, nonce == TCP ISN),
//! strip it before delivery, and the weaker sources for plain VTEPs (a
//! trusted GBP group, a (peer, CIDR) map) and local ports (the binding).

use std::net::IpAddr;

use identity::header::{self, Repr, TagInput};
use identity::keys::KeySource;
use identity::{stamp, IdentityId};

use super::meta::{Kind, Pkt};
use super::tables::{IdentityTables, PeerIdent};
use super::Ctx;
use crate::buffer::Buf;
use crate::counters::DropReason;
use crate::flows::IdentitySource;

/// Find and verify the identity header of a frame from peer `peer`, and
/// say where it is (for [`strip`]). `Ok(None)`: no header. A header from
/// a plain VTEP is forged (it holds no key).
pub(super) fn verify(
    cx: &Ctx,
    peer: u16,
    frame: &[u8],
    pkt: &Pkt,
    vni_id: u32,
) -> Result<Option<(Repr, stamp::Found)>, DropReason> {
    let (Some(id), Some(keys)) = (&cx.t.identity, &cx.st.keys) else {
        return Ok(None);
    };
    // The header is an IPv4 option: an IPv4 header without options (first
    // byte 0x45; classify parsed and length-checked it as IPv4) has none,
    // which is what `stamp::find` answers after walking the frame again.
    if pkt.kind == Kind::Ip && frame.get(usize::from(pkt.l3)) == Some(&0x45) {
        return Ok(None);
    }
    let (found, repr) = match stamp::find_located(frame) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(_) => return Err(DropReason::IdentityMalformed),
    };
    let PeerIdent::Warden {
        id: wid,
        may_assert,
    } = &cx.t.peers[usize::from(peer)].ident
    else {
        return Err(DropReason::IdentityNotAuthorized);
    };
    let Some((tag_key, _)) = keys.receiving_key(*wid, repr.epoch, cx.st.unix_now) else {
        return Err(DropReason::IdentityEpoch);
    };
    if !header::verify(tag_key, &repr, &TagInput::new(pkt.key.flow, vni_id)) {
        return Err(DropReason::IdentityBadTag);
    }
    if !header::timestamp_fresh(repr.timestamp, cx.st.unix_now, id.window_secs) {
        return Err(DropReason::IdentityStale);
    }
    if may_assert.binary_search(&repr.id).is_err() {
        return Err(DropReason::IdentityNotAuthorized);
    }
    // The stamping warden puts the segment's sequence number in the nonce:
    // a captured header re-sent on another ISN is not that header.
    if let Some((_, seq)) = pkt.tcp {
        if repr.nonce != seq {
            return Err(DropReason::IdentityNonce);
        }
    }
    Ok(Some((repr, found)))
}

/// Remove the (verified) identity header, where [`verify`] found it in
/// the unchanged frame, before the frame goes on.
pub(super) fn strip(buf: &mut Buf, found: &stamp::Found) -> Result<(), DropReason> {
    let start =
        stamp::strip_found(buf.frame_mut(), 0, found).map_err(|_| DropReason::IdentityMalformed)?;
    buf.trim_front(start);
    Ok(())
}

/// The identity of a frame from a plain VTEP: a GBP group it is trusted
/// for, else an address map, else unauthenticated.
pub(super) fn from_vtep(
    id: &IdentityTables,
    ident: &PeerIdent,
    peer: u16,
    gbp: Option<u16>,
    src: IpAddr,
) -> (IdentityId, IdentitySource) {
    if let (PeerIdent::Vtep { gbp: groups }, Some(g)) = (ident, gbp) {
        if let Some((_, i)) = groups.iter().find(|(grp, _)| *grp == g) {
            return (*i, IdentitySource::Gbp);
        }
    }
    if let IpAddr::V4(a) = src {
        if let Some((_, _, i)) = id
            .maps
            .iter()
            .find(|(p, cidr, _)| *p == peer && cidr.contains(a))
        {
            return (*i, IdentitySource::AddressMap);
        }
    }
    (IdentityId::UNAUTHENTICATED, IdentitySource::Unauthenticated)
}
