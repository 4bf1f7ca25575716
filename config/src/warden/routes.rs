//! `[[route]]`: inner routes of the L3 gateway (distinct destinations, an
//! egress VNI with a gateway, a next hop inside its subnet).

use serde_spanned::Spanned;

use super::context::Tables;
use super::dto::RouteDto;
use super::RouteConfig;
use crate::error::ErrorKind;
use crate::validate::{invalid, Invalid, Seen};

/// The routes, in file order, destinations in network form.
pub(super) fn build(
    dto: &[Spanned<RouteDto>],
    cx: &Tables<'_>,
) -> Result<Vec<RouteConfig>, Invalid> {
    let mut route_keys = Seen::new(cx.text, "route destination");
    let mut routes = Vec::with_capacity(dto.len());
    for r in dto {
        let r = r.get_ref();
        let destination = r.destination.get_ref().0.network();
        route_keys.insert(destination, r.destination.span(), || {
            destination.to_string()
        })?;
        let subnet = cx.with_gateway(&r.vni, "route egress")?;
        let vni = r.vni.get_ref().0;
        let via = match &r.via {
            Some(v) => {
                let ip = v.get_ref().0;
                if !subnet.contains(ip) {
                    return Err(invalid(
                        v.span(),
                        ErrorKind::OutsideSubnet {
                            what: "route via",
                            address: ip,
                            subnet: subnet.network(),
                        },
                    ));
                }
                if ip == subnet.address() {
                    return Err(invalid(
                        v.span(),
                        ErrorKind::SameAddress {
                            what: "route via",
                            address: ip,
                            other: "the egress VNI's own gateway address",
                        },
                    ));
                }
                Some(ip)
            }
            None => None,
        };
        routes.push(RouteConfig {
            destination,
            vni,
            via,
        });
    }
    Ok(routes)
}
