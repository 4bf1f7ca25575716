//! `[[vni]]`: ids, gateway subnets (host addresses that do not overlap),
//! gateway MACs and aging.

use overlay::{Ipv4Cidr, Vni};
use serde_spanned::Spanned;

use super::dto::VniDto;
use super::{default_gateway_mac, VniConfig, DEFAULT_MAC_AGING_SECS};
use crate::error::{line_of, ErrorKind};
use crate::validate::{invalid, is_network_or_broadcast, Invalid, Seen};
use crate::value::VniValue;

/// Validate the `[[vni]]` tables, in file order.
pub(super) fn build(dto: &[Spanned<VniDto>], text: &str) -> Result<Vec<VniConfig>, Invalid> {
    let mut vni_ids = Seen::new(text, "VNI");
    let mut vnis = Vec::with_capacity(dto.len());
    // (vni, gateway, span start of its `gateway`) for the overlap check.
    let mut subnets: Vec<(Vni, Ipv4Cidr, usize)> = Vec::new();
    for v in dto {
        let v = v.get_ref();
        let id = v.id.get_ref().0;
        vni_ids.insert(id, v.id.span(), || id.to_string())?;
        let gateway = match &v.gateway {
            Some(g) => {
                let cidr = g.get_ref().0;
                if is_network_or_broadcast(cidr) {
                    return Err(invalid(
                        g.span(),
                        ErrorKind::NotHostAddress {
                            what: "vni gateway",
                            cidr,
                        },
                    ));
                }
                if let Some(&(other_vni, other_subnet, at)) =
                    subnets.iter().find(|(_, s, _)| overlaps(*s, cidr))
                {
                    return Err(invalid(
                        g.span(),
                        ErrorKind::OverlappingSubnets {
                            vni: id,
                            subnet: cidr.network(),
                            other_vni,
                            other_subnet: other_subnet.network(),
                            other_line: line_of(text, at),
                        },
                    ));
                }
                subnets.push((id, cidr, g.span().start));
                Some(cidr)
            }
            None => None,
        };
        let gateway_mac = match &v.gateway_mac {
            Some(m) => {
                let mac = m.get_ref().0;
                if !mac.is_unicast() {
                    return Err(invalid(
                        m.span(),
                        ErrorKind::NotUnicastMac {
                            what: "gateway_mac",
                            mac,
                        },
                    ));
                }
                mac
            }
            None => default_gateway_mac(id),
        };
        let mac_aging_secs = match &v.mac_aging_secs {
            Some(a) if *a.get_ref() == 0 => {
                return Err(invalid(
                    a.span(),
                    ErrorKind::OutOfRange {
                        what: "mac_aging_secs",
                        value: 0,
                        min: 1,
                        max: u64::from(u32::MAX),
                    },
                ))
            }
            Some(a) => *a.get_ref(),
            None => DEFAULT_MAC_AGING_SECS,
        };
        vnis.push(VniConfig {
            id,
            name: v.name.clone(),
            gateway,
            gateway_mac,
            mac_aging_secs,
        });
    }
    Ok(vnis)
}

/// The declared VNI `v` refers to (`context` names the reference).
pub(super) fn declared<'v>(
    vnis: &'v [VniConfig],
    v: &Spanned<VniValue>,
    context: &'static str,
) -> Result<&'v VniConfig, Invalid> {
    let id = v.get_ref().0;
    vnis.iter()
        .find(|c| c.id == id)
        .ok_or_else(|| invalid(v.span(), ErrorKind::UndeclaredVni { context, vni: id }))
}

/// `true` when the two subnets share at least one address.
fn overlaps(a: Ipv4Cidr, b: Ipv4Cidr) -> bool {
    a.contains(b.network().address()) || b.contains(a.network().address())
}
