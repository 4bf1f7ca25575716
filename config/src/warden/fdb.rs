//! `[[fdb]]`: static MAC entries and their target (a peer carrying the VNI
//! or an access port of it).

use serde_spanned::Spanned;

use super::context::Tables;
use super::dto::FdbDto;
use super::{FdbEntry, FdbTarget, PeerConfig};
use crate::error::ErrorKind;
use crate::validate::{invalid, one_of, Invalid, Seen};

/// The static FDB, in file order, against the declared tables and peers.
pub(super) fn build(
    dto: &[Spanned<FdbDto>],
    cx: &Tables<'_>,
    peers: &[PeerConfig],
) -> Result<Vec<FdbEntry>, Invalid> {
    let mut fdb_keys = Seen::new(cx.text, "fdb entry");
    let mut fdb = Vec::with_capacity(dto.len());
    for f in dto {
        let span = f.span();
        let f = f.get_ref();
        let vni = cx.declared(&f.vni, "fdb")?.id;
        let mac = f.mac.get_ref().0;
        if !mac.is_unicast() {
            return Err(invalid(
                f.mac.span(),
                ErrorKind::NotUnicastMac {
                    what: "fdb mac",
                    mac,
                },
            ));
        }
        fdb_keys.insert((vni, mac), f.mac.span(), || format!("VNI {vni} MAC {mac}"))?;
        let target = match (&f.peer, &f.port) {
            (None, None) => {
                return Err(invalid(
                    span,
                    ErrorKind::FdbTarget {
                        found: "neither `peer` nor `port`",
                    },
                ))
            }
            (Some(_), Some(port)) => {
                return Err(invalid(
                    port.span(),
                    ErrorKind::FdbTarget {
                        found: "both `peer` and `port`",
                    },
                ))
            }
            (Some(peer), None) => {
                let ip = peer.get_ref().0;
                let Some(p) = peers.iter().find(|p| p.address == ip) else {
                    let known: Vec<String> = peers.iter().map(|p| p.address.to_string()).collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    return Err(invalid(
                        peer.span(),
                        ErrorKind::UnknownReference {
                            what: "fdb peer",
                            name: ip.to_string(),
                            expected: one_of("[[peer]] addresses", &known),
                        },
                    ));
                };
                if !p.vnis.contains(&vni) {
                    return Err(invalid(
                        peer.span(),
                        ErrorKind::PeerNotInVni { peer: ip, vni },
                    ));
                }
                FdbTarget::Peer(ip)
            }
            (None, Some(port)) => {
                let i = cx.find_port(port, "fdb port")?;
                if cx.ports.get(i).and_then(|p| p.access_vni) != Some(vni) {
                    return Err(invalid(
                        port.span(),
                        ErrorKind::PortNotInVni {
                            port: port.get_ref().clone(),
                            vni,
                        },
                    ));
                }
                FdbTarget::Port(i)
            }
        };
        fdb.push(FdbEntry { vni, mac, target });
    }
    Ok(fdb)
}
