//! `[[neighbor]]`: static inner ARP entries inside a VNI's gateway subnet.

use serde_spanned::Spanned;

use super::context::Tables;
use super::dto::NeighborDto;
use super::Neighbor;
use crate::error::ErrorKind;
use crate::validate::{invalid, Invalid, Seen};

/// The static neighbors, in file order.
pub(super) fn build(
    dto: &[Spanned<NeighborDto>],
    cx: &Tables<'_>,
) -> Result<Vec<Neighbor>, Invalid> {
    let mut neighbor_keys = Seen::new(cx.text, "neighbor");
    let mut neighbors = Vec::with_capacity(dto.len());
    for n in dto {
        let n = n.get_ref();
        let subnet = cx.with_gateway(&n.vni, "neighbor")?;
        let vni = n.vni.get_ref().0;
        let ip = n.ip.get_ref().0;
        if !subnet.contains(ip) {
            return Err(invalid(
                n.ip.span(),
                ErrorKind::OutsideSubnet {
                    what: "neighbor ip",
                    address: ip,
                    subnet: subnet.network(),
                },
            ));
        }
        if ip == subnet.address() {
            return Err(invalid(
                n.ip.span(),
                ErrorKind::SameAddress {
                    what: "neighbor ip",
                    address: ip,
                    other: "the VNI's gateway address",
                },
            ));
        }
        neighbor_keys.insert((vni, ip), n.ip.span(), || format!("VNI {vni} ip {ip}"))?;
        let mac = n.mac.get_ref().0;
        if !mac.is_unicast() {
            return Err(invalid(
                n.mac.span(),
                ErrorKind::NotUnicastMac {
                    what: "neighbor mac",
                    mac,
                },
            ));
        }
        neighbors.push(Neighbor { vni, ip, mac });
    }
    Ok(neighbors)
}
