//! `[[port]]`: names, the interfaces they bind, access VNIs, and the rule
//! that every port has a role.

use serde_spanned::Spanned;

use super::dto::PortDto;
use super::{vnis, PortConfig, VniConfig};
use crate::error::ErrorKind;
use crate::validate::{invalid, Invalid, Seen};
use crate::value::{is_simple_name, SIMPLE_NAME};

/// Port names (valid, distinct), namespaces, and distinct bindings
/// (interface in namespace). Runs before `[[vni]]` is validated.
pub(super) fn check_names(dto: &[Spanned<PortDto>], text: &str) -> Result<(), Invalid> {
    let mut names = Seen::new(text, "port name");
    let mut bindings = Seen::new(text, "port interface");
    for p in dto {
        let p = p.get_ref();
        let name = p.name.get_ref();
        if !is_simple_name(name) {
            return Err(invalid(
                p.name.span(),
                ErrorKind::InvalidName {
                    what: "port name",
                    name: name.clone(),
                    expected: SIMPLE_NAME,
                },
            ));
        }
        names.insert(name.as_str(), p.name.span(), || format!("`{name}`"))?;
        if let Some(ns) = &p.netns {
            if !valid_netns(ns.get_ref()) {
                return Err(invalid(
                    ns.span(),
                    ErrorKind::InvalidName {
                        what: "netns",
                        name: ns.get_ref().clone(),
                        expected:
                            "a namespace name (1 to 64 of A-Z a-z 0-9 _ . -) or an absolute path",
                    },
                ));
            }
        }
        let netns = p.netns.as_ref().map(|n| n.get_ref().as_str());
        let ifname = p.interface.get_ref().0.as_str();
        bindings.insert((netns, ifname), p.interface.span(), || match netns {
            Some(ns) => format!("`{ifname}` in netns `{ns}`"),
            None => format!("`{ifname}`"),
        })?;
    }
    Ok(())
}

/// The ports, with their access VNIs resolved against `vnis`.
pub(super) fn build(
    dto: &[Spanned<PortDto>],
    vnis: &[VniConfig],
) -> Result<Vec<PortConfig>, Invalid> {
    let mut ports = Vec::with_capacity(dto.len());
    for p in dto {
        let p = p.get_ref();
        let access_vni = match &p.vni {
            Some(v) => Some(vnis::declared(vnis, v, "access port")?.id),
            None => None,
        };
        ports.push(PortConfig {
            name: p.name.get_ref().clone(),
            backend: p.backend,
            interface: p.interface.get_ref().0.clone(),
            netns: p.netns.as_ref().map(|n| n.get_ref().clone()),
            access_vni,
        });
    }
    Ok(ports)
}

/// Every port has a role: the underlay (port `underlay`) or an access port.
pub(super) fn check_roles(
    ports: &[PortConfig],
    dto: &[Spanned<PortDto>],
    underlay: usize,
) -> Result<(), Invalid> {
    for (i, (p, dto_p)) in ports.iter().zip(dto).enumerate() {
        if i != underlay && p.access_vni.is_none() {
            return Err(invalid(
                dto_p.span(),
                ErrorKind::PortWithoutRole {
                    port: p.name.clone(),
                },
            ));
        }
    }
    Ok(())
}

/// A namespace reference: a simple name or an absolute path.
fn valid_netns(s: &str) -> bool {
    is_simple_name(s) || (s.starts_with('/') && s.len() > 1 && !s.contains('\0'))
}
