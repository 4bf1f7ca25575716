//! `[instance]` (name, control socket) and `[underlay]` (the VTEP port,
//! address, gateway, UDP port, MTU).

use std::path::PathBuf;

use super::context::Tables;
use super::dto::{FlowLogDto, InstanceDto, UnderlayDto};
use super::{
    default_control_socket, FlowLog, Instance, Underlay, DEFAULT_FLOW_LOG_KEEP,
    DEFAULT_FLOW_LOG_MAX_BYTES, DEFAULT_FLOW_LOG_RATE, DEFAULT_MTU, DEFAULT_UDP_PORT, MAX_MTU,
    MIN_MTU,
};
use crate::error::ErrorKind;
use crate::validate::{invalid, is_network_or_broadcast, Invalid};
use crate::value::{is_simple_name, SIMPLE_NAME};

/// `[instance]`; `default_name` is the name when the file sets none.
pub(super) fn build_instance(
    dto: Option<InstanceDto>,
    default_name: &str,
) -> Result<Instance, Invalid> {
    let mut metrics_addr = None;
    let (name, control_socket) = match dto {
        Some(InstanceDto {
            name,
            control_socket,
            metrics,
        }) => {
            if let Some(m) = metrics {
                match m.get_ref().parse::<std::net::SocketAddr>() {
                    Ok(a) => metrics_addr = Some(a),
                    Err(_) => {
                        return Err(invalid(
                            m.span(),
                            ErrorKind::InvalidName {
                                what: "metrics address",
                                name: m.into_inner(),
                                expected:
                                    "ADDRESS:PORT such as \"127.0.0.1:9464\" or \"[::1]:9464\"",
                            },
                        ))
                    }
                }
            }
            let name = match name {
                Some(n) => {
                    if !is_simple_name(n.get_ref()) {
                        return Err(invalid(
                            n.span(),
                            ErrorKind::InvalidName {
                                what: "instance name",
                                name: n.into_inner(),
                                expected: SIMPLE_NAME,
                            },
                        ));
                    }
                    n.into_inner()
                }
                None => default_name.to_owned(),
            };
            let socket = match control_socket {
                Some(s) if s.get_ref().is_empty() => {
                    return Err(invalid(
                        s.span(),
                        ErrorKind::InvalidName {
                            what: "control socket path",
                            name: String::new(),
                            expected: "a file path such as \"/run/warden/gw.sock\"",
                        },
                    ))
                }
                Some(s) => PathBuf::from(s.into_inner()),
                None => default_control_socket(&name),
            };
            (name, socket)
        }
        None => (
            default_name.to_owned(),
            default_control_socket(default_name),
        ),
    };
    Ok(Instance {
        name,
        control_socket,
        metrics: metrics_addr,
    })
}

/// `[flow_log]`: a path and bounds, each checked.
pub(super) fn build_flow_log(dto: Option<FlowLogDto>) -> Result<Option<FlowLog>, Invalid> {
    let Some(d) = dto else { return Ok(None) };
    if d.path.get_ref().is_empty() {
        return Err(invalid(
            d.path.span(),
            ErrorKind::InvalidName {
                what: "flow log path",
                name: String::new(),
                expected: "a file path such as \"/var/log/warden/flows.jsonl\"",
            },
        ));
    }
    let range = |v: Option<serde_spanned::Spanned<u64>>, what, default, min, max| match v {
        None => Ok(default),
        Some(v) if (min..=max).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(invalid(
            v.span(),
            ErrorKind::OutOfRange {
                what,
                value: *v.get_ref(),
                min,
                max,
            },
        )),
    };
    let widen = |v: Option<serde_spanned::Spanned<u32>>| {
        v.map(|v| {
            let span = v.span();
            serde_spanned::Spanned::new(span, u64::from(v.into_inner()))
        })
    };
    let max_bytes = range(
        d.max_bytes,
        "flow log max_bytes",
        DEFAULT_FLOW_LOG_MAX_BYTES,
        4096,
        1 << 40,
    )?;
    let keep = range(
        widen(d.keep),
        "flow log keep",
        u64::from(DEFAULT_FLOW_LOG_KEEP),
        0,
        100,
    )?;
    let rate = range(
        widen(d.rate),
        "flow log rate",
        u64::from(DEFAULT_FLOW_LOG_RATE),
        1,
        1_000_000,
    )?;
    Ok(Some(FlowLog {
        path: PathBuf::from(d.path.into_inner()),
        max_bytes,
        keep: keep as u32,
        rate: rate as u32,
    }))
}

/// `[underlay]`, against the declared ports.
pub(super) fn build_underlay(u: &UnderlayDto, cx: &Tables<'_>) -> Result<Underlay, Invalid> {
    let port = cx.find_port(&u.port, "underlay port")?;
    if let Some(vni) = cx.ports.get(port).and_then(|p| p.access_vni) {
        return Err(invalid(
            u.port.span(),
            ErrorKind::UnderlayPortIsAccess {
                port: u.port.get_ref().clone(),
                vni,
            },
        ));
    }
    let address = u.address.get_ref().0;
    if is_network_or_broadcast(address) {
        return Err(invalid(
            u.address.span(),
            ErrorKind::NotHostAddress {
                what: "underlay address",
                cidr: address,
            },
        ));
    }
    let gateway = match &u.gateway {
        Some(g) => {
            let ip = g.get_ref().0;
            if !address.contains(ip) {
                return Err(invalid(
                    g.span(),
                    ErrorKind::OutsideSubnet {
                        what: "underlay gateway",
                        address: ip,
                        subnet: address.network(),
                    },
                ));
            }
            if ip == address.address() {
                return Err(invalid(
                    g.span(),
                    ErrorKind::SameAddress {
                        what: "underlay gateway",
                        address: ip,
                        other: "underlay address",
                    },
                ));
            }
            Some(ip)
        }
        None => None,
    };
    let udp_port = match &u.udp_port {
        Some(p) if *p.get_ref() == 0 => {
            return Err(invalid(
                p.span(),
                ErrorKind::OutOfRange {
                    what: "udp_port",
                    value: 0,
                    min: 1,
                    max: u64::from(u16::MAX),
                },
            ))
        }
        Some(p) => *p.get_ref(),
        None => DEFAULT_UDP_PORT,
    };
    let mtu = match &u.mtu {
        Some(m) if !(MIN_MTU..=MAX_MTU).contains(m.get_ref()) => {
            return Err(invalid(
                m.span(),
                ErrorKind::OutOfRange {
                    what: "mtu",
                    value: u64::from(*m.get_ref()),
                    min: u64::from(MIN_MTU),
                    max: u64::from(MAX_MTU),
                },
            ))
        }
        Some(m) => *m.get_ref(),
        None => DEFAULT_MTU,
    };
    Ok(Underlay {
        port,
        address,
        gateway,
        udp_port,
        mtu,
    })
}
