//! `[[peer]]`: addresses (unicast, distinct, reachable), the VNIs each
//! carries, and its kind with the identity fields (see `identities`).

use serde_spanned::Spanned;

use super::context::Tables;
use super::dto::PeerDto;
use super::{PeerConfig, Underlay};
use crate::error::ErrorKind;
use crate::identities::{self, Docs, IdentityConfig};
use crate::validate::{invalid, Invalid, Seen};

/// The peers, in file order; `identity` and `docs` resolve their identity
/// fields.
pub(super) fn build(
    dto: &[Spanned<PeerDto>],
    cx: &Tables<'_>,
    underlay: &Underlay,
    identity: Option<&IdentityConfig>,
    docs: &Docs<'_>,
) -> Result<Vec<PeerConfig>, Invalid> {
    let text = cx.text;
    let address = underlay.address;
    let mut peer_addrs = Seen::new(text, "peer address");
    let mut peers = Vec::with_capacity(dto.len());
    for p in dto {
        let p = p.get_ref();
        let ip = p.address.get_ref().0;
        peer_addrs.insert(ip, p.address.span(), || ip.to_string())?;
        if ip == address.address() {
            return Err(invalid(
                p.address.span(),
                ErrorKind::SameAddress {
                    what: "peer address",
                    address: ip,
                    other: "the underlay address",
                },
            ));
        }
        if ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified() {
            return Err(invalid(
                p.address.span(),
                ErrorKind::NotUnicastIp {
                    what: "peer address",
                    address: ip,
                },
            ));
        }
        if underlay.gateway.is_none() && !address.contains(ip) {
            return Err(invalid(
                p.address.span(),
                ErrorKind::PeerUnreachable {
                    peer: ip,
                    subnet: address.network(),
                },
            ));
        }
        let mut carried = Seen::new(text, "VNI");
        let mut peer_vnis = Vec::with_capacity(p.vnis.len());
        for v in &p.vnis {
            let id = cx.declared(v, "peer")?.id;
            carried.insert(id, v.span(), || format!("{id} in peer vnis"))?;
            peer_vnis.push(id);
        }
        let kind = identities::peer_kind(&p.identity_fields(), ip, identity, docs, text)?;
        peers.push(PeerConfig {
            name: p.name.clone(),
            address: ip,
            vnis: peer_vnis,
            kind,
        });
    }
    Ok(peers)
}
