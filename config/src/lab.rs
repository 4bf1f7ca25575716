//! The lab topology file: hosts (network namespaces), switches (bridges),
//! veth links, kernel VXLAN devices, TAPs, warden instances and checks.
//!
//! Veth links between two hosts are declared on both ends (`peer =
//! "host:iface"` on each side, pointing at each other) so that each end can
//! carry its own address, MTU and MAC; a one-sided declaration is an error
//! rather than an implicit second interface. [`Lab::peer_links`] lists each
//! such pair once.
//!
//! Inside a lab, a warden config whose `[instance]` sets no `name` is named
//! after its `[[warden]]`, so that its default control socket
//! (`/run/warden/<name>.sock`) differs from the other wardens' (network
//! namespaces do not separate the file system).

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

use overlay::{Ipv4Cidr, MacAddr, Vni};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::ErrorKind;
use crate::validate::{invalid, is_network_or_broadcast, one_of, Invalid, Seen};
use crate::value::{
    ifname_problem, is_simple_name, CidrValue, IfName, Ipv4Value, MacValue, VniValue, SIMPLE_NAME,
};
use crate::warden::{self, Backend, WardenConfig, WardenDto};

/// Default number of echo requests of a ping check.
pub const DEFAULT_PING_COUNT: u32 = 3;
/// Default server port of a tcp check.
pub const DEFAULT_TCP_PORT: u16 = 5001;
/// Default time limit of a command check.
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u32 = 30;
/// Default server port of a udp check.
pub const DEFAULT_UDP_CHECK_PORT: u16 = 5001;
/// Default number of datagrams of a udp check.
pub const DEFAULT_UDP_COUNT: u32 = 100;
/// Default datagram payload size of a udp check, in bytes.
pub const DEFAULT_UDP_SIZE: u16 = 1000;
/// Smallest udp check payload: room for the testbed's sequence header.
pub const MIN_UDP_SIZE: u16 = 16;
/// Largest udp check payload: what one IPv4 UDP datagram can carry.
pub const MAX_UDP_SIZE: u16 = 65507;
/// Smallest accepted interface MTU (the IPv4 minimum).
pub const MIN_IF_MTU: u16 = 68;

// ---------------------------------------------------------------------------
// Runtime types
// ---------------------------------------------------------------------------

/// A validated lab topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub name: String,
    pub description: Option<String>,
    pub switches: Vec<Switch>,
    pub hosts: Vec<Host>,
    pub wardens: Vec<LabWarden>,
    pub checks: Vec<Check>,
}

impl Lab {
    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
    /// The switch called `name`.
    pub fn switch(&self, name: &str) -> Option<&Switch> {
        self.switches.iter().find(|s| s.name == name)
    }
    /// The warden called `name`.
    pub fn warden(&self, name: &str) -> Option<&LabWarden> {
        self.wardens.iter().find(|w| w.name == name)
    }
    /// Every host-to-host veth link once, as (host, interface, peer host,
    /// peer interface), the first end being the one declared first.
    pub fn peer_links(&self) -> Vec<(&Host, &HostInterface, &Host, &HostInterface)> {
        let mut out = Vec::new();
        for (hi, h) in self.hosts.iter().enumerate() {
            for i in &h.interfaces {
                let Link::Peer { host, interface } = &i.link else {
                    continue;
                };
                let Some((pi, ph)) = self.hosts.iter().enumerate().find(|(_, p)| &p.name == host)
                else {
                    continue;
                };
                let Some(pif) = ph.interfaces.iter().find(|p| &p.name == interface) else {
                    continue;
                };
                let first = pi > hi
                    || (pi == hi
                        && h.interfaces.iter().position(|x| x.name == i.name)
                            < h.interfaces.iter().position(|x| x.name == pif.name));
                if first {
                    out.push((h, i, ph, pif));
                }
            }
        }
        out
    }
}

/// An L2 segment: a Linux bridge in its own namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub name: String,
}

/// A network namespace and the devices in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub interfaces: Vec<HostInterface>,
    pub vxlans: Vec<HostVxlan>,
    pub taps: Vec<HostTap>,
    pub routes: Vec<HostRoute>,
}

impl Host {
    /// `true` when the host declares an interface, vxlan or tap `name`.
    pub fn has_device(&self, name: &str) -> bool {
        self.interfaces.iter().any(|i| i.name == name)
            || self.vxlans.iter().any(|v| v.name == name)
            || self.taps.iter().any(|t| t.name == name)
    }
}

/// A veth end in a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    pub name: String,
    pub link: Link,
    pub address: Option<Ipv4Cidr>,
    pub mtu: Option<u16>,
    pub mac: Option<MacAddr>,
}

/// Where the other end of a veth goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Into this switch's bridge.
    Switch(String),
    /// Into another host, as its interface `interface` (declared there too,
    /// pointing back).
    Peer { host: String, interface: String },
}

/// A Linux kernel VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVxlan {
    pub name: String,
    pub vni: Vni,
    pub local: Ipv4Addr,
    /// Where BUM and unknown unicast go.
    pub remote: Ipv4Addr,
    /// Underlay interface (a declared interface or tap of the same host).
    pub device: String,
    pub address: Option<Ipv4Cidr>,
    pub port: u16,
    pub gbp: bool,
    pub mac: Option<MacAddr>,
}

/// A persistent TAP device for a warden port to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTap {
    pub name: String,
    pub address: Option<Ipv4Cidr>,
    pub mtu: Option<u16>,
    pub mac: Option<MacAddr>,
}

/// A route in a host; `default` is `0.0.0.0/0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRoute {
    /// Network form (host bits cleared).
    pub destination: Ipv4Cidr,
    pub via: Ipv4Addr,
}

/// A warden instance running inside a host's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabWarden {
    pub name: String,
    pub host: String,
    pub config: WardenConfig,
}

/// A traffic or state check run after the lab is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `ping -c count to` from host `from`.
    Ping {
        name: Option<String>,
        from: String,
        to: Ipv4Addr,
        count: u32,
    },
    /// A TCP transfer of `bytes` from a client in `from` to a server in `to`
    /// listening on `port`, reached at `address`; verified byte for byte.
    Tcp {
        name: Option<String>,
        from: String,
        to: String,
        address: Ipv4Addr,
        port: u16,
        bytes: u64,
    },
    /// `count` UDP datagrams of `size` bytes from `from` to an echo server
    /// in `to` on `port`, reached at `address`; each must come back intact
    /// (a lost one is sent again a few times).
    Udp {
        name: Option<String>,
        from: String,
        to: String,
        address: Ipv4Addr,
        port: u16,
        count: u32,
        size: u16,
    },
    /// `sh -c run` inside `host`; passes when it exits with `expect_status`
    /// within `timeout_secs`.
    Command {
        name: Option<String>,
        host: String,
        run: String,
        expect_status: i32,
        timeout_secs: u32,
    },
    /// Compare counters from `warden stats --json` of a warden.
    Stats {
        name: Option<String>,
        warden: String,
        expect: Vec<StatExpect>,
    },
}

impl Check {
    /// The display name from the file, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Check::Ping { name, .. }
            | Check::Tcp { name, .. }
            | Check::Udp { name, .. }
            | Check::Command { name, .. }
            | Check::Stats { name, .. } => name.as_deref(),
        }
    }
    /// The display name, or a description built from the fields.
    pub fn label(&self) -> String {
        if let Some(n) = self.name() {
            return n.to_owned();
        }
        match self {
            Check::Ping { from, to, .. } => format!("ping {from} -> {to}"),
            Check::Tcp {
                from,
                address,
                port,
                ..
            } => format!("tcp {from} -> {address}:{port}"),
            Check::Udp {
                from,
                address,
                port,
                ..
            } => format!("udp {from} -> {address}:{port}"),
            Check::Command { host, run, .. } => format!("command in {host}: {run}"),
            Check::Stats { warden, .. } => format!("stats of {warden}"),
        }
    }
}

/// One counter comparison: `path op value`, such as `drops.not_a_peer == 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatExpect {
    /// Dotted path into the stats JSON.
    pub path: String,
    pub op: CompareOp,
    pub value: u64,
}

impl StatExpect {
    /// Whether the counter value `actual` satisfies the expectation.
    pub fn holds(&self, actual: u64) -> bool {
        self.op.holds(actual, self.value)
    }
}

/// A comparison operator of a stats expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// `actual op expected`.
    pub fn holds(self, actual: u64, expected: u64) -> bool {
        match self {
            CompareOp::Eq => actual == expected,
            CompareOp::Ne => actual != expected,
            CompareOp::Lt => actual < expected,
            CompareOp::Le => actual <= expected,
            CompareOp::Gt => actual > expected,
            CompareOp::Ge => actual >= expected,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

impl fmt::Display for StatExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.path, self.op.as_str(), self.value)
    }
}

/// Why a stats expectation did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatExpectError;

impl fmt::Display for StatExpectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected `PATH OP VALUE` (OP one of == != < <= > >=)")
    }
}

impl std::error::Error for StatExpectError {}

impl FromStr for StatExpect {
    type Err = StatExpectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let (Some(path), Some(op), Some(value), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(StatExpectError);
        };
        let path_ok = !path.starts_with('.')
            && !path.ends_with('.')
            && !path.contains("..")
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !path_ok {
            return Err(StatExpectError);
        }
        let op = match op {
            "==" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            _ => return Err(StatExpectError),
        };
        let value = value.parse().map_err(|_| StatExpectError)?;
        Ok(StatExpect {
            path: path.to_owned(),
            op,
            value,
        })
    }
}

// ---------------------------------------------------------------------------
// DTOs
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabDto {
    lab: LabHeaderDto,
    #[serde(default)]
    switch: Vec<Spanned<SwitchDto>>,
    #[serde(default)]
    host: Vec<Spanned<HostDto>>,
    #[serde(default)]
    warden: Vec<Spanned<LabWardenDto>>,
    #[serde(default)]
    check: Vec<Spanned<CheckDto>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabHeaderDto {
    name: Spanned<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchDto {
    name: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostDto {
    name: Spanned<String>,
    #[serde(default)]
    interface: Vec<Spanned<InterfaceDto>>,
    #[serde(default)]
    vxlan: Vec<Spanned<VxlanDto>>,
    #[serde(default)]
    tap: Vec<Spanned<TapDto>>,
    #[serde(default)]
    route: Vec<Spanned<HostRouteDto>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceDto {
    name: Spanned<IfName>,
    switch: Option<Spanned<String>>,
    peer: Option<Spanned<String>>,
    address: Option<Spanned<CidrValue>>,
    mtu: Option<Spanned<u16>>,
    mac: Option<Spanned<MacValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VxlanDto {
    name: Spanned<IfName>,
    vni: Spanned<VniValue>,
    local: Spanned<Ipv4Value>,
    remote: Spanned<Ipv4Value>,
    device: Spanned<String>,
    address: Option<Spanned<CidrValue>>,
    port: Option<Spanned<u16>>,
    gbp: Option<bool>,
    mac: Option<Spanned<MacValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TapDto {
    name: Spanned<IfName>,
    address: Option<Spanned<CidrValue>>,
    mtu: Option<Spanned<u16>>,
    mac: Option<Spanned<MacValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostRouteDto {
    destination: RouteDest,
    via: Ipv4Value,
}

/// `"default"` or a CIDR, stored in network form.
#[derive(Debug, Clone, Copy)]
struct RouteDest(Ipv4Cidr);

impl<'de> Deserialize<'de> for RouteDest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "default" {
            return Ok(RouteDest(
                Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0)
                    .ok_or_else(|| de::Error::custom("internal: 0.0.0.0/0 rejected"))?,
            ));
        }
        s.parse::<Ipv4Cidr>()
            .map(|c| RouteDest(c.network()))
            .map_err(|_| {
                de::Error::custom(format_args!(
                    "invalid route destination {s:?}, expected \"default\" or ADDRESS/PREFIX such as \"10.2.0.0/24\""
                ))
            })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabWardenDto {
    name: Spanned<String>,
    host: Spanned<String>,
    config: WardenDto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CheckKindDto {
    Ping,
    Tcp,
    Udp,
    Command,
    Stats,
}

/// All check fields in one flat table: an internally tagged serde enum
/// would buffer the table and lose the spans of its values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckDto {
    name: Option<String>,
    kind: CheckKindDto,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    count: Option<Spanned<u32>>,
    address: Option<Spanned<Ipv4Value>>,
    port: Option<Spanned<u16>>,
    bytes: Option<Spanned<u64>>,
    size: Option<Spanned<u16>>,
    host: Option<Spanned<String>>,
    run: Option<Spanned<String>>,
    expect_status: Option<Spanned<i32>>,
    timeout_secs: Option<Spanned<u32>>,
    warden: Option<Spanned<String>>,
    expect: Option<Vec<Spanned<String>>>,
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

/// Look up `name` among `names`, or report an unknown `what`.
fn resolve(
    name: &Spanned<String>,
    names: &[&str],
    what: &'static str,
    list: &str,
) -> Result<usize, Invalid> {
    names
        .iter()
        .position(|n| *n == name.get_ref())
        .ok_or_else(|| {
            invalid(
                name.span(),
                ErrorKind::UnknownReference {
                    what,
                    name: name.get_ref().clone(),
                    expected: one_of(list, names),
                },
            )
        })
}

fn check_mtu(mtu: &Option<Spanned<u16>>) -> Result<Option<u16>, Invalid> {
    match mtu {
        Some(m) if *m.get_ref() < MIN_IF_MTU => Err(invalid(
            m.span(),
            ErrorKind::OutOfRange {
                what: "mtu",
                value: u64::from(*m.get_ref()),
                min: u64::from(MIN_IF_MTU),
                max: u64::from(u16::MAX),
            },
        )),
        Some(m) => Ok(Some(*m.get_ref())),
        None => Ok(None),
    }
}

fn unicast_mac(
    mac: &Option<Spanned<MacValue>>,
    what: &'static str,
) -> Result<Option<MacAddr>, Invalid> {
    match mac {
        Some(m) if !m.get_ref().0.is_unicast() => Err(invalid(
            m.span(),
            ErrorKind::NotUnicastMac {
                what,
                mac: m.get_ref().0,
            },
        )),
        Some(m) => Ok(Some(m.get_ref().0)),
        None => Ok(None),
    }
}

/// Validate a lab DTO parsed from `text`.
pub(crate) fn build(dto: LabDto, text: &str) -> Result<Lab, Invalid> {
    let lab_name = &dto.lab.name;
    if !is_simple_name(lab_name.get_ref()) {
        return Err(invalid(
            lab_name.span(),
            ErrorKind::InvalidName {
                what: "lab name",
                name: lab_name.get_ref().clone(),
                expected: SIMPLE_NAME,
            },
        ));
    }

    // Switches and hosts each become a namespace: one name space for both.
    let mut ns_names = Seen::new(text, "switch or host name");
    let mut switches = Vec::with_capacity(dto.switch.len());
    for s in &dto.switch {
        let name = &s.get_ref().name;
        let n = name.get_ref();
        if !is_simple_name(n) || ifname_problem(n).is_some() {
            return Err(invalid(
                name.span(),
                ErrorKind::InvalidName {
                    what: "switch name",
                    name: n.clone(),
                    expected: "1 to 15 of A-Z a-z 0-9 _ . - (it names a bridge)",
                },
            ));
        }
        ns_names.insert(n.as_str(), name.span(), || format!("`{n}`"))?;
        switches.push(Switch { name: n.clone() });
    }
    for h in &dto.host {
        let name = &h.get_ref().name;
        let n = name.get_ref();
        if !is_simple_name(n) {
            return Err(invalid(
                name.span(),
                ErrorKind::InvalidName {
                    what: "host name",
                    name: n.clone(),
                    expected: SIMPLE_NAME,
                },
            ));
        }
        ns_names.insert(n.as_str(), name.span(), || format!("`{n}`"))?;
    }
    let switch_names: Vec<&str> = switches.iter().map(|s| s.name.as_str()).collect();
    let host_names: Vec<&str> = dto
        .host
        .iter()
        .map(|h| h.get_ref().name.get_ref().as_str())
        .collect();

    let mut hosts = Vec::with_capacity(dto.host.len());
    for h in &dto.host {
        let h = h.get_ref();
        let host_name = h.name.get_ref();
        let mut devices = Seen::new(text, "device name");
        for name in h
            .interface
            .iter()
            .map(|i| &i.get_ref().name)
            .chain(h.vxlan.iter().map(|v| &v.get_ref().name))
            .chain(h.tap.iter().map(|t| &t.get_ref().name))
        {
            let n = &name.get_ref().0;
            devices.insert(n.as_str(), name.span(), || {
                format!("`{n}` in host `{host_name}`")
            })?;
        }

        let mut interfaces = Vec::with_capacity(h.interface.len());
        for i in &h.interface {
            let span = i.span();
            let i = i.get_ref();
            let if_name = &i.name.get_ref().0;
            let link = match (&i.switch, &i.peer) {
                (None, None) => {
                    return Err(invalid(
                        span,
                        ErrorKind::LinkTarget {
                            interface: if_name.clone(),
                            found: "neither",
                        },
                    ))
                }
                (Some(_), Some(p)) => {
                    return Err(invalid(
                        p.span(),
                        ErrorKind::LinkTarget {
                            interface: if_name.clone(),
                            found: "both",
                        },
                    ))
                }
                (Some(s), None) => {
                    resolve(s, &switch_names, "switch", "[[switch]] names")?;
                    Link::Switch(s.get_ref().clone())
                }
                (None, Some(p)) => peer_link(&dto.host, &host_names, host_name, if_name, p)?,
            };
            if let Some(a) = &i.address {
                if is_network_or_broadcast(a.get_ref().0) {
                    return Err(invalid(
                        a.span(),
                        ErrorKind::NotHostAddress {
                            what: "interface address",
                            cidr: a.get_ref().0,
                        },
                    ));
                }
            }
            interfaces.push(HostInterface {
                name: if_name.clone(),
                link,
                address: i.address.as_ref().map(|a| a.get_ref().0),
                mtu: check_mtu(&i.mtu)?,
                mac: unicast_mac(&i.mac, "interface mac")?,
            });
        }

        let mut taps = Vec::with_capacity(h.tap.len());
        for t in &h.tap {
            let t = t.get_ref();
            taps.push(HostTap {
                name: t.name.get_ref().0.clone(),
                address: t.address.as_ref().map(|a| a.get_ref().0),
                mtu: check_mtu(&t.mtu)?,
                mac: unicast_mac(&t.mac, "tap mac")?,
            });
        }

        let mut vxlans = Vec::with_capacity(h.vxlan.len());
        for v in &h.vxlan {
            let v = v.get_ref();
            let name = v.name.get_ref().0.clone();
            let device = v.device.get_ref();
            let underlay_names: Vec<&str> = interfaces
                .iter()
                .map(|i| i.name.as_str())
                .chain(taps.iter().map(|t| t.name.as_str()))
                .collect();
            resolve(
                &v.device,
                &underlay_names,
                "vxlan device",
                "interface or tap names of this host",
            )?;
            let device_address = interfaces
                .iter()
                .find(|i| &i.name == device)
                .and_then(|i| i.address)
                .or_else(|| {
                    taps.iter()
                        .find(|t| &t.name == device)
                        .and_then(|t| t.address)
                });
            let local = v.local.get_ref().0;
            if let Some(address) = device_address {
                if address.address() != local {
                    return Err(invalid(
                        v.local.span(),
                        ErrorKind::VxlanLocal {
                            vxlan: name,
                            local,
                            device: device.clone(),
                            address,
                            expected: address.address(),
                        },
                    ));
                }
            }
            let port = match &v.port {
                Some(p) if *p.get_ref() == 0 => {
                    return Err(invalid(
                        p.span(),
                        ErrorKind::OutOfRange {
                            what: "port",
                            value: 0,
                            min: 1,
                            max: u64::from(u16::MAX),
                        },
                    ))
                }
                Some(p) => *p.get_ref(),
                None => warden::DEFAULT_UDP_PORT,
            };
            vxlans.push(HostVxlan {
                name,
                vni: v.vni.get_ref().0,
                local,
                remote: v.remote.get_ref().0,
                device: device.clone(),
                address: v.address.as_ref().map(|a| a.get_ref().0),
                port,
                gbp: v.gbp.unwrap_or(false),
                mac: unicast_mac(&v.mac, "vxlan mac")?,
            });
        }

        let mut route_keys = Seen::new(text, "route destination");
        let mut routes = Vec::with_capacity(h.route.len());
        for r in &h.route {
            let span = r.span();
            let r = r.get_ref();
            let destination = r.destination.0;
            route_keys.insert(destination, span, || {
                format!("{destination} in host `{host_name}`")
            })?;
            routes.push(HostRoute {
                destination,
                via: r.via.0,
            });
        }

        hosts.push(Host {
            name: host_name.clone(),
            interfaces,
            vxlans,
            taps,
            routes,
        });
    }

    // [[warden]]
    let mut warden_names = Seen::new(text, "warden name");
    let mut sockets = Seen::new(text, "control socket");
    let mut wardens = Vec::with_capacity(dto.warden.len());
    for w in dto.warden {
        let w = w.into_inner();
        let name = w.name.get_ref().clone();
        if !is_simple_name(&name) {
            return Err(invalid(
                w.name.span(),
                ErrorKind::InvalidName {
                    what: "warden name",
                    name,
                    expected: SIMPLE_NAME,
                },
            ));
        }
        warden_names.insert(name.clone(), w.name.span(), || format!("`{name}`"))?;
        let hi = resolve(&w.host, &host_names, "warden host", "[[host]] names")?;
        let spans = w.config.spans();
        let config = warden::build(w.config, text, &name)?;
        let socket = config.instance.control_socket.clone();
        sockets.insert(
            socket.clone(),
            spans.control_socket.unwrap_or_else(|| w.name.span()),
            || format!("{} of warden `{name}`", socket.display()),
        )?;
        for (pi, p) in config.ports.iter().enumerate() {
            let at = spans
                .interface
                .get(pi)
                .cloned()
                .unwrap_or_else(|| w.name.span());
            match (&p.netns, p.backend) {
                (Some(ns), Backend::Tap) => {
                    let ns_at = spans
                        .netns
                        .get(pi)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| at.clone());
                    let Some(host) = hosts.iter().find(|h| &h.name == ns) else {
                        return Err(invalid(
                            ns_at,
                            ErrorKind::UnknownReference {
                                what: "netns host",
                                name: ns.clone(),
                                expected: one_of("[[host]] names", &host_names),
                            },
                        ));
                    };
                    if !host.taps.iter().any(|t| t.name == p.interface) {
                        return Err(invalid(
                            at,
                            ErrorKind::TapNotDeclared {
                                port: p.name.clone(),
                                interface: p.interface.clone(),
                                host: ns.clone(),
                            },
                        ));
                    }
                }
                (Some(ns), Backend::AfPacket | Backend::AfXdp) => {
                    let ns_at = spans
                        .netns
                        .get(pi)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| at.clone());
                    let Some(host) = hosts.iter().find(|h| &h.name == ns) else {
                        return Err(invalid(
                            ns_at,
                            ErrorKind::UnknownReference {
                                what: "netns host",
                                name: ns.clone(),
                                expected: one_of("[[host]] names", &host_names),
                            },
                        ));
                    };
                    if !host.has_device(&p.interface) {
                        return Err(invalid(
                            at,
                            ErrorKind::InterfaceNotInHost {
                                port: p.name.clone(),
                                interface: p.interface.clone(),
                                host: ns.clone(),
                            },
                        ));
                    }
                }
                (None, Backend::AfPacket | Backend::AfXdp) => {
                    if let Some(host) = hosts.get(hi) {
                        if !host.has_device(&p.interface) {
                            return Err(invalid(
                                at,
                                ErrorKind::InterfaceNotInHost {
                                    port: p.name.clone(),
                                    interface: p.interface.clone(),
                                    host: host.name.clone(),
                                },
                            ));
                        }
                    }
                }
                // A TAP in the warden's own namespace: warden attaches to
                // it (it never creates one), so the host must declare it.
                (None, Backend::Tap) => {
                    if let Some(host) = hosts.get(hi) {
                        if !host.taps.iter().any(|t| t.name == p.interface) {
                            return Err(invalid(
                                at,
                                ErrorKind::TapNotDeclared {
                                    port: p.name.clone(),
                                    interface: p.interface.clone(),
                                    host: host.name.clone(),
                                },
                            ));
                        }
                    }
                }
            }
        }
        wardens.push(LabWarden {
            name,
            host: w.host.into_inner(),
            config,
        });
    }

    // [[check]]
    let warden_list: Vec<&str> = wardens.iter().map(|w| w.name.as_str()).collect();
    let mut checks = Vec::with_capacity(dto.check.len());
    for c in &dto.check {
        checks.push(build_check(c, &host_names, &warden_list)?);
    }

    Ok(Lab {
        name: lab_name.get_ref().clone(),
        description: dto.lab.description,
        switches,
        hosts,
        wardens,
        checks,
    })
}

/// Resolve `peer = "host:iface"` of interface `if_name` in `host_name` and
/// check that the other end points back.
fn peer_link(
    hosts: &[Spanned<HostDto>],
    host_names: &[&str],
    host_name: &str,
    if_name: &str,
    p: &Spanned<String>,
) -> Result<Link, Invalid> {
    let Some((ph, pi)) = p.get_ref().split_once(':') else {
        return Err(invalid(
            p.span(),
            ErrorKind::InvalidName {
                what: "peer link",
                name: p.get_ref().clone(),
                expected: "HOST:INTERFACE such as \"b1:eth0\"",
            },
        ));
    };
    let problem = |problem: String| {
        invalid(
            p.span(),
            ErrorKind::PeerLink {
                host: host_name.to_owned(),
                interface: if_name.to_owned(),
                peer: p.get_ref().clone(),
                problem,
            },
        )
    };
    let host_ref = Spanned::new(p.span(), ph.to_owned());
    let hi = resolve(&host_ref, host_names, "peer host", "[[host]] names")?;
    if ph == host_name && pi == if_name {
        return Err(problem("is the interface itself".into()));
    }
    let Some(other) = hosts.get(hi).and_then(|h| {
        h.get_ref()
            .interface
            .iter()
            .find(|i| i.get_ref().name.get_ref().0 == pi)
    }) else {
        return Err(problem(format!(
            "is not declared, expected a [[host.interface]] `{pi}` in host `{ph}`"
        )));
    };
    let back = format!("{host_name}:{if_name}");
    let other = other.get_ref();
    match (&other.peer, &other.switch) {
        (Some(op), _) if op.get_ref() == &back => Ok(Link::Peer {
            host: ph.to_owned(),
            interface: pi.to_owned(),
        }),
        (Some(op), _) => Err(problem(format!(
            "links to `{}`, expected peer = \"{back}\" there",
            op.get_ref()
        ))),
        (None, Some(s)) => Err(problem(format!(
            "is attached to switch `{}`, expected peer = \"{back}\" there",
            s.get_ref()
        ))),
        (None, None) => Err(problem(format!(
            "has no link, expected peer = \"{back}\" there"
        ))),
    }
}

/// Fields that a check may set besides `name` and `kind`.
const PING_FIELDS: &str = "`from`, `to`, `count`";
const TCP_FIELDS: &str = "`from`, `to`, `address`, `port`, `bytes`";
const UDP_FIELDS: &str = "`from`, `to`, `address`, `port`, `count`, `size`";
const COMMAND_FIELDS: &str = "`host`, `run`, `expect_status`, `timeout_secs`";
const STATS_FIELDS: &str = "`warden`, `expect`";

fn build_check(
    c: &Spanned<CheckDto>,
    host_names: &[&str],
    wardens: &[&str],
) -> Result<Check, Invalid> {
    let span = c.span();
    let c = c.get_ref();
    let (kind, allowed, fields) = match c.kind {
        CheckKindDto::Ping => ("ping", &["from", "to", "count"][..], PING_FIELDS),
        CheckKindDto::Tcp => (
            "tcp",
            &["from", "to", "address", "port", "bytes"][..],
            TCP_FIELDS,
        ),
        CheckKindDto::Udp => (
            "udp",
            &["from", "to", "address", "port", "count", "size"][..],
            UDP_FIELDS,
        ),
        CheckKindDto::Command => (
            "command",
            &["host", "run", "expect_status", "timeout_secs"][..],
            COMMAND_FIELDS,
        ),
        CheckKindDto::Stats => ("stats", &["warden", "expect"][..], STATS_FIELDS),
    };
    // (field, span if present) for every optional field.
    let present: [(&'static str, Option<core::ops::Range<usize>>); 13] = [
        ("from", c.from.as_ref().map(Spanned::span)),
        ("to", c.to.as_ref().map(Spanned::span)),
        ("count", c.count.as_ref().map(Spanned::span)),
        ("address", c.address.as_ref().map(Spanned::span)),
        ("port", c.port.as_ref().map(Spanned::span)),
        ("bytes", c.bytes.as_ref().map(Spanned::span)),
        ("size", c.size.as_ref().map(Spanned::span)),
        ("host", c.host.as_ref().map(Spanned::span)),
        ("run", c.run.as_ref().map(Spanned::span)),
        ("expect_status", c.expect_status.as_ref().map(Spanned::span)),
        ("timeout_secs", c.timeout_secs.as_ref().map(Spanned::span)),
        ("warden", c.warden.as_ref().map(Spanned::span)),
        (
            "expect",
            c.expect
                .as_ref()
                .and_then(|e| e.first().map(Spanned::span))
                .or_else(|| c.expect.as_ref().map(|_| span.clone())),
        ),
    ];
    for (field, at) in &present {
        if let Some(at) = at {
            if !allowed.contains(field) {
                return Err(invalid(
                    at.clone(),
                    ErrorKind::FieldNotForCheck {
                        field,
                        kind,
                        expected: fields,
                    },
                ));
            }
        }
    }
    let missing =
        |field: &'static str| invalid(span.clone(), ErrorKind::MissingCheckField { field, kind });
    let host = |h: &Option<Spanned<String>>, field: &'static str| -> Result<String, Invalid> {
        let h = h.as_ref().ok_or_else(|| missing(field))?;
        resolve(h, host_names, "host", "[[host]] names")?;
        Ok(h.get_ref().clone())
    };
    let at_least_one = |v: &Spanned<u32>, what: &'static str| -> Result<u32, Invalid> {
        if *v.get_ref() == 0 {
            Err(invalid(
                v.span(),
                ErrorKind::OutOfRange {
                    what,
                    value: 0,
                    min: 1,
                    max: u64::from(u32::MAX),
                },
            ))
        } else {
            Ok(*v.get_ref())
        }
    };
    let port = |default: u16| -> Result<u16, Invalid> {
        match &c.port {
            Some(p) if *p.get_ref() == 0 => Err(invalid(
                p.span(),
                ErrorKind::OutOfRange {
                    what: "port",
                    value: 0,
                    min: 1,
                    max: u64::from(u16::MAX),
                },
            )),
            Some(p) => Ok(*p.get_ref()),
            None => Ok(default),
        }
    };
    let address = || -> Result<Ipv4Addr, Invalid> {
        Ok(c.address
            .as_ref()
            .ok_or_else(|| missing("address"))?
            .get_ref()
            .0)
    };
    let name = c.name.clone();
    Ok(match c.kind {
        CheckKindDto::Ping => {
            let from = host(&c.from, "from")?;
            let to = c.to.as_ref().ok_or_else(|| missing("to"))?;
            let to_ip = to.get_ref().parse::<Ipv4Addr>().map_err(|_| {
                invalid(
                    to.span(),
                    ErrorKind::Parse(format!(
                        "invalid IPv4 address {:?}, expected a dotted quad such as \"10.0.0.1\"",
                        to.get_ref()
                    )),
                )
            })?;
            let count = match &c.count {
                Some(n) => at_least_one(n, "count")?,
                None => DEFAULT_PING_COUNT,
            };
            Check::Ping {
                name,
                from,
                to: to_ip,
                count,
            }
        }
        CheckKindDto::Tcp => {
            let from = host(&c.from, "from")?;
            let to = host(&c.to, "to")?;
            let address = address()?;
            let port = port(DEFAULT_TCP_PORT)?;
            let bytes = c.bytes.as_ref().ok_or_else(|| missing("bytes"))?;
            if *bytes.get_ref() == 0 {
                return Err(invalid(
                    bytes.span(),
                    ErrorKind::OutOfRange {
                        what: "bytes",
                        value: 0,
                        min: 1,
                        max: u64::MAX,
                    },
                ));
            }
            Check::Tcp {
                name,
                from,
                to,
                address,
                port,
                bytes: *bytes.get_ref(),
            }
        }
        CheckKindDto::Udp => {
            let from = host(&c.from, "from")?;
            let to = host(&c.to, "to")?;
            let address = address()?;
            let port = port(DEFAULT_UDP_CHECK_PORT)?;
            let count = match &c.count {
                Some(n) => at_least_one(n, "count")?,
                None => DEFAULT_UDP_COUNT,
            };
            let size = match &c.size {
                Some(s) if !(MIN_UDP_SIZE..=MAX_UDP_SIZE).contains(s.get_ref()) => {
                    return Err(invalid(
                        s.span(),
                        ErrorKind::OutOfRange {
                            what: "size",
                            value: u64::from(*s.get_ref()),
                            min: u64::from(MIN_UDP_SIZE),
                            max: u64::from(MAX_UDP_SIZE),
                        },
                    ))
                }
                Some(s) => *s.get_ref(),
                None => DEFAULT_UDP_SIZE,
            };
            Check::Udp {
                name,
                from,
                to,
                address,
                port,
                count,
                size,
            }
        }
        CheckKindDto::Command => {
            let host = host(&c.host, "host")?;
            let run = c.run.as_ref().ok_or_else(|| missing("run"))?;
            if run.get_ref().trim().is_empty() {
                return Err(invalid(
                    run.span(),
                    ErrorKind::InvalidName {
                        what: "command",
                        name: run.get_ref().clone(),
                        expected: "a non-empty shell command",
                    },
                ));
            }
            Check::Command {
                name,
                host,
                run: run.get_ref().clone(),
                expect_status: c.expect_status.as_ref().map_or(0, |s| *s.get_ref()),
                timeout_secs: match &c.timeout_secs {
                    Some(t) => at_least_one(t, "timeout_secs")?,
                    None => DEFAULT_COMMAND_TIMEOUT_SECS,
                },
            }
        }
        CheckKindDto::Stats => {
            let w = c.warden.as_ref().ok_or_else(|| missing("warden"))?;
            resolve(w, wardens, "warden", "[[warden]] names")?;
            let list = c.expect.as_ref().ok_or_else(|| missing("expect"))?;
            if list.is_empty() {
                return Err(missing("expect"));
            }
            let mut expect = Vec::with_capacity(list.len());
            for e in list {
                expect.push(e.get_ref().parse::<StatExpect>().map_err(|_| {
                    invalid(
                        e.span(),
                        ErrorKind::StatExpect {
                            text: e.get_ref().clone(),
                        },
                    )
                })?);
            }
            Check::Stats {
                name,
                warden: w.get_ref().clone(),
                expect,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_lab;

    /// Twelve lines: every case below starts at line 13, still inside host `h1`.
    const BASE: &str = r#"[lab]
name = "t"

[[switch]]
name = "sw"

[[host]]
name = "h1"
  [[host.interface]]
  name = "eth0"
  switch = "sw"
  address = "10.0.0.1/24"
"#;

    /// Ten lines: a minimal warden `w` in host `h1`.
    const WARDEN: &str = r#"[[warden]]
name = "w"
host = "h1"
  [warden.config.underlay]
  port = "up"
  address = "10.0.0.2/24"
  [[warden.config.port]]
  name = "up"
  backend = "af_packet"
  interface = "eth0"
"#;

    fn err(text: &str) -> String {
        match parse_lab(text, "lab.toml") {
            Ok(l) => panic!("accepted:\n{text}\n{l:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// (what, text after BASE, expected error)
    const CASES: &[(&str, &str, &str)] = &[
        (
            "unknown field in a nested table",
            "  colour = 1\n",
            "lab.toml:13:3: unknown field `colour`, expected one of `name`, `switch`, `peer`, `address`, `mtu`, `mac`",
        ),
        (
            "duplicate host name",
            "[[host]]\nname = \"h1\"\n",
            "lab.toml:14:8: duplicate switch or host name `h1` (first declared at line 8)",
        ),
        (
            "host named like a switch",
            "[[host]]\nname = \"sw\"\n",
            "lab.toml:14:8: duplicate switch or host name `sw` (first declared at line 5)",
        ),
        (
            "unknown switch",
            "  [[host.interface]]\n  name = \"eth1\"\n  switch = \"core\"\n",
            "lab.toml:15:12: unknown switch `core`, expected one of the [[switch]] names: `sw`",
        ),
        (
            "link with both switch and peer",
            "  [[host.interface]]\n  name = \"eth1\"\n  switch = \"sw\"\n  peer = \"h1:eth0\"\n",
            "lab.toml:16:10: interface `eth1` has both, expected exactly one of `switch` or `peer`",
        ),
        (
            "link with neither",
            "  [[host.interface]]\n  name = \"eth1\"\n",
            "lab.toml:13:3: interface `eth1` has neither, expected exactly one of `switch` or `peer`",
        ),
        (
            "duplicate device in a host",
            "  [[host.tap]]\n  name = \"eth0\"\n",
            "lab.toml:14:10: duplicate device name `eth0` in host `h1` (first declared at line 10)",
        ),
        (
            "peer link to an unknown host",
            "  [[host.interface]]\n  name = \"eth1\"\n  peer = \"h9:eth1\"\n",
            "lab.toml:15:10: unknown peer host `h9`, expected one of the [[host]] names: `h1`",
        ),
        (
            "peer link to an undeclared interface",
            "[[host]]\nname = \"h2\"\n  [[host.interface]]\n  name = \"eth1\"\n  peer = \"h1:eth1\"\n",
            "lab.toml:17:10: interface `h2:eth1` links to `h1:eth1`, but `h1:eth1` is not declared, expected a [[host.interface]] `eth1` in host `h1`",
        ),
        (
            "one-sided peer link",
            "[[host]]\nname = \"h2\"\n  [[host.interface]]\n  name = \"eth1\"\n  peer = \"h1:eth0\"\n",
            "lab.toml:17:10: interface `h2:eth1` links to `h1:eth0`, but `h1:eth0` is attached to switch `sw`, expected peer = \"h2:eth1\" there",
        ),
        (
            "peer link without a colon",
            "  [[host.interface]]\n  name = \"eth1\"\n  peer = \"h1\"\n",
            "lab.toml:15:10: invalid peer link `h1`, expected HOST:INTERFACE such as \"b1:eth0\"",
        ),
        (
            "interface name too long",
            "  [[host.tap]]\n  name = \"tap-for-workload-1\"\n",
            "lab.toml:14:10: invalid interface name \"tap-for-workload-1\": it is longer than 15 bytes, expected 1 to 15 bytes without `/`, `:` or whitespace",
        ),
        (
            "interface mtu too small",
            "  mtu = 40\n",
            "lab.toml:13:9: mtu 40 is out of range, expected 68..=65535",
        ),
        (
            "vxlan on an unknown device",
            "  [[host.vxlan]]\n  name = \"vx1\"\n  vni = 1\n  local = \"10.0.0.1\"\n  remote = \"10.0.0.2\"\n  device = \"eth1\"\n",
            "lab.toml:18:12: unknown vxlan device `eth1`, expected one of the interface or tap names of this host: `eth0`",
        ),
        (
            "vxlan local that is not the device address",
            "  [[host.vxlan]]\n  name = \"vx1\"\n  vni = 1\n  local = \"10.0.0.9\"\n  remote = \"10.0.0.2\"\n  device = \"eth0\"\n",
            "lab.toml:16:11: vxlan `vx1` has local = 10.0.0.9, but its device `eth0` has address 10.0.0.1/24, expected local = 10.0.0.1",
        ),
        (
            "bad route destination",
            "  [[host.route]]\n  destination = \"10.0.0.0\"\n  via = \"10.0.0.254\"\n",
            "lab.toml:14:17: invalid route destination \"10.0.0.0\", expected \"default\" or ADDRESS/PREFIX such as \"10.2.0.0/24\"",
        ),
        (
            "unknown check kind",
            "[[check]]\nkind = \"http\"\n",
            "lab.toml:14:8: unknown variant `http`, expected one of `ping`, `tcp`, `udp`, `command`, `stats`",
        ),
        (
            "check on an unknown host",
            "[[check]]\nkind = \"ping\"\nfrom = \"h7\"\nto = \"10.0.0.2\"\n",
            "lab.toml:15:8: unknown host `h7`, expected one of the [[host]] names: `h1`",
        ),
        (
            "check field of another kind",
            "[[check]]\nkind = \"ping\"\nfrom = \"h1\"\nto = \"10.0.0.2\"\nbytes = 10\n",
            "lab.toml:17:9: field `bytes` does not apply to a `ping` check, expected only `from`, `to`, `count`",
        ),
        (
            "check missing a field",
            "[[check]]\nkind = \"tcp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\n",
            "lab.toml:13:1: `tcp` check is missing field `bytes`",
        ),
        (
            "udp check with a tcp field",
            "[[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\nbytes = 10\n",
            "lab.toml:18:9: field `bytes` does not apply to a `udp` check, expected only `from`, `to`, `address`, `port`, `count`, `size`",
        ),
        (
            "udp datagram too small",
            "[[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\nsize = 15\n",
            "lab.toml:18:8: size 15 is out of range, expected 16..=65507",
        ),
        (
            "udp datagram too large",
            "[[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\nsize = 65508\n",
            "lab.toml:18:8: size 65508 is out of range, expected 16..=65507",
        ),
        (
            "udp without datagrams",
            "[[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\ncount = 0\n",
            "lab.toml:18:9: count 0 is out of range, expected 1..=4294967295",
        ),
        (
            "udp check missing its address",
            "[[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\n",
            "lab.toml:13:1: `udp` check is missing field `address`",
        ),
        (
            "udp to an unknown server host",
            "[[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h9\"\naddress = \"10.0.0.1\"\n",
            "lab.toml:16:6: unknown host `h9`, expected one of the [[host]] names: `h1`",
        ),
        (
            "ping to a bad address",
            "[[check]]\nkind = \"ping\"\nfrom = \"h1\"\nto = \"h1\"\n",
            "lab.toml:16:6: invalid IPv4 address \"h1\", expected a dotted quad such as \"10.0.0.1\"",
        ),
        (
            "stats of an unknown warden",
            "[[check]]\nkind = \"stats\"\nwarden = \"gw\"\nexpect = [\"a == 1\"]\n",
            "lab.toml:15:10: unknown warden `gw`, expected one of the [[warden]] names (none is declared)",
        ),
    ];

    #[test]
    fn each_error_points_at_its_value() {
        for (what, extra, expected) in CASES {
            let text = format!("{BASE}{extra}");
            assert_eq!(err(&text), *expected, "case: {what}");
        }
        assert_eq!(
            err("[[host]]\nname = \"a\"\n"),
            "lab.toml:1:1: missing field `lab`"
        );
    }

    /// (what, text after BASE + WARDEN (line 23 on), expected error)
    const WARDEN_CASES: &[(&str, &str, &str)] = &[
        (
            "[[warden.config.allow]], replaced by [warden.config.policy]",
            "  [[warden.config.allow]]\n  destination = \"db\"\n  sources = [\"api\"]\n",
            "lab.toml:23:3: `[[warden.config.allow]]` was replaced by `[warden.config.policy]`: write `[[warden.config.policy.set.rule]] from = [<sources>] to = [\"<destination>\"] action = \"allow\"`, and a rule on the sources' own wardens too (they decide their workloads' flows out); see docs/config-schema.md",
        ),
        (
            "warden config error reported at its line in the lab file",
            "  [[warden.config.vni]]\n  id = 5\n  [[warden.config.vni]]\n  id = 5\n",
            "lab.toml:26:8: duplicate VNI 5 (first declared at line 24)",
        ),
        (
            "unknown field inside the warden config",
            "  [warden.config.instance]\n  colour = 1\n",
            "lab.toml:24:3: unknown field `colour`, expected one of `name`, `control_socket`, `metrics`",
        ),
        (
            "af_packet port on an interface the host lacks",
            "  [[warden.config.vni]]\n  id = 1\n  [[warden.config.port]]\n  name = \"p\"\n  backend = \"af_packet\"\n  interface = \"eth7\"\n  vni = 1\n",
            "lab.toml:28:15: port `p` uses interface `eth7`, but host `h1` declares no interface, vxlan or tap of that name",
        ),
        (
            "tap port in a host without that tap",
            "  [[warden.config.vni]]\n  id = 1\n  [[warden.config.port]]\n  name = \"p\"\n  backend = \"tap\"\n  interface = \"wl0\"\n  netns = \"h1\"\n  vni = 1\n",
            "lab.toml:28:15: port `p` attaches to TAP `wl0` in host `h1`, but that host declares no [[host.tap]] named `wl0` (warden attaches to an existing TAP; it never creates one)",
        ),
        (
            "tap port in an unknown host",
            "  [[warden.config.vni]]\n  id = 1\n  [[warden.config.port]]\n  name = \"p\"\n  backend = \"tap\"\n  interface = \"wl0\"\n  netns = \"h5\"\n  vni = 1\n",
            "lab.toml:29:11: unknown netns host `h5`, expected one of the [[host]] names: `h1`",
        ),
        (
            "duplicate warden name",
            "[[warden]]\nname = \"w\"\nhost = \"h1\"\n  [warden.config.underlay]\n  port = \"up\"\n  address = \"10.0.0.3/24\"\n  [[warden.config.port]]\n  name = \"up\"\n  backend = \"af_packet\"\n  interface = \"eth0\"\n",
            "lab.toml:24:8: duplicate warden name `w` (first declared at line 14)",
        ),
        (
            "two wardens with the same control socket",
            "[[warden]]\nname = \"w2\"\nhost = \"h1\"\n  [warden.config.instance]\n  name = \"w\"\n  [warden.config.underlay]\n  port = \"up\"\n  address = \"10.0.0.3/24\"\n  [[warden.config.port]]\n  name = \"up\"\n  backend = \"af_packet\"\n  interface = \"eth0\"\n",
            "lab.toml:27:10: duplicate control socket /run/warden/w.sock of warden `w2` (first declared at line 14)",
        ),
        (
            "warden in an unknown host",
            "[[warden]]\nname = \"w2\"\nhost = \"h2\"\n  [warden.config.underlay]\n  port = \"up\"\n  address = \"10.0.0.3/24\"\n  [[warden.config.port]]\n  name = \"up\"\n  backend = \"af_packet\"\n  interface = \"eth0\"\n",
            "lab.toml:25:8: unknown warden host `h2`, expected one of the [[host]] names: `h1`",
        ),
        (
            "bad stats expectation",
            "[[check]]\nkind = \"stats\"\nwarden = \"w\"\nexpect = [\"drops == 0\", \"drops = 0\"]\n",
            "lab.toml:26:25: invalid stats expectation `drops = 0`, expected `PATH OP VALUE` such as `drops.not_a_peer == 0` (OP one of == != < <= > >=)",
        ),
    ];

    #[test]
    fn warden_errors_in_a_lab() {
        for (what, extra, expected) in WARDEN_CASES {
            let text = format!("{BASE}{WARDEN}{extra}");
            assert_eq!(err(&text), *expected, "case: {what}");
        }
        // The base with the warden is valid, and the instance is named after it.
        let lab = parse_lab(&format!("{BASE}{WARDEN}"), "lab.toml").unwrap();
        assert_eq!(lab.wardens[0].config.instance.name, "w");
    }

    #[test]
    fn reciprocal_peer_links_are_listed_once() {
        let text = format!(
            "{BASE}  [[host.interface]]\n  name = \"p0\"\n  peer = \"h2:p0\"\n\
             [[host]]\nname = \"h2\"\n  [[host.interface]]\n  name = \"p0\"\n  peer = \"h1:p0\"\n  mtu = 9000\n\
             [[host]]\nname = \"h3\"\n  [[host.interface]]\n  name = \"a\"\n  peer = \"h3:b\"\n  [[host.interface]]\n  name = \"b\"\n  peer = \"h3:a\"\n"
        );
        let lab = parse_lab(&text, "lab.toml").unwrap();
        let links: Vec<(String, String)> = lab
            .peer_links()
            .into_iter()
            .map(|(h, i, ph, pi)| {
                (
                    format!("{}:{}", h.name, i.name),
                    format!("{}:{}", ph.name, pi.name),
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                ("h1:p0".to_owned(), "h2:p0".to_owned()),
                ("h3:a".to_owned(), "h3:b".to_owned())
            ]
        );
        let h2 = lab.host("h2").unwrap();
        assert_eq!(
            h2.interfaces[0].link,
            Link::Peer {
                host: "h1".into(),
                interface: "p0".into()
            }
        );
        assert_eq!(h2.interfaces[0].mtu, Some(9000));
        // An interface cannot be its own peer.
        let own = format!("{BASE}  [[host.interface]]\n  name = \"x\"\n  peer = \"h1:x\"\n");
        assert_eq!(
            err(&own),
            "lab.toml:15:10: interface `h1:x` links to `h1:x`, but `h1:x` is the interface itself"
        );
    }

    #[test]
    fn check_defaults_and_labels() {
        let text = format!(
            "{BASE}[[check]]\nkind = \"ping\"\nfrom = \"h1\"\nto = \"10.0.0.2\"\n\
             [[check]]\nkind = \"command\"\nhost = \"h1\"\nrun = \"true\"\n\
             [[check]]\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\n\
             [[check]]\nname = \"echo\"\nkind = \"udp\"\nfrom = \"h1\"\nto = \"h1\"\naddress = \"10.0.0.1\"\nport = 7\ncount = 1\nsize = 65507\n"
        );
        let lab = parse_lab(&text, "lab.toml").unwrap();
        assert_eq!(
            lab.checks,
            [
                Check::Ping {
                    name: None,
                    from: "h1".into(),
                    to: Ipv4Addr::new(10, 0, 0, 2),
                    count: DEFAULT_PING_COUNT,
                },
                Check::Command {
                    name: None,
                    host: "h1".into(),
                    run: "true".into(),
                    expect_status: 0,
                    timeout_secs: DEFAULT_COMMAND_TIMEOUT_SECS,
                },
                Check::Udp {
                    name: None,
                    from: "h1".into(),
                    to: "h1".into(),
                    address: Ipv4Addr::new(10, 0, 0, 1),
                    port: DEFAULT_UDP_CHECK_PORT,
                    count: DEFAULT_UDP_COUNT,
                    size: DEFAULT_UDP_SIZE,
                },
                Check::Udp {
                    name: Some("echo".into()),
                    from: "h1".into(),
                    to: "h1".into(),
                    address: Ipv4Addr::new(10, 0, 0, 1),
                    port: 7,
                    count: 1,
                    size: MAX_UDP_SIZE,
                },
            ]
        );
        assert_eq!(lab.checks[0].label(), "ping h1 -> 10.0.0.2");
        assert_eq!(lab.checks[1].label(), "command in h1: true");
        assert_eq!(lab.checks[2].label(), "udp h1 -> 10.0.0.1:5001");
        assert_eq!(lab.checks[3].label(), "echo");
    }

    #[test]
    fn stat_expectations_parse_and_compare() {
        let e: StatExpect = "vni.100.decap_packets >= 10".parse().unwrap();
        assert_eq!(e.to_string(), "vni.100.decap_packets >= 10");
        assert!(e.holds(10) && e.holds(11) && !e.holds(9));
        for (op, a, b, holds) in [
            (CompareOp::Eq, 1, 1, true),
            (CompareOp::Ne, 1, 1, false),
            (CompareOp::Lt, 1, 2, true),
            (CompareOp::Le, 2, 2, true),
            (CompareOp::Gt, 2, 2, false),
            (CompareOp::Ge, 2, 3, false),
        ] {
            assert_eq!(op.holds(a, b), holds, "{op:?} {a} {b}");
        }
        for bad in [
            "",
            "a ==",
            "a == 1 2",
            "a = 1",
            "a == -1",
            ".a == 1",
            "a..b == 1",
            "a/b == 1",
            "a == x",
        ] {
            assert_eq!(bad.parse::<StatExpect>(), Err(StatExpectError), "{bad:?}");
        }
    }
}
