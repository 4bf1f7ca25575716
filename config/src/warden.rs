//! The warden instance config: TOML DTOs, the validated runtime types and
//! the builder between them.
//!
//! The DTOs mirror the file one to one and reject unknown fields; the
//! builder checks everything that needs more than one value (references,
//! uniqueness, subnets) and fills in defaults, so the engine only ever sees
//! a [`WardenConfig`] that is consistent.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::PathBuf;

use identity::{IdentityDoc, IdentityId};
use overlay::{Ipv4Cidr, MacAddr, Vni};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::{line_of, ErrorKind};
use crate::identities::{
    self, document_toml, GbpDto, IdentityConfig, IdentityDto, IdentityMap, IdentityMapDto,
    PeerKind, PeerKindDto, Workload, WorkloadDto,
};
use crate::value::{is_simple_name, CidrValue, IfName, Ipv4Value, MacValue, VniValue, SIMPLE_NAME};

/// Instance name when `[instance] name` is absent (outside a lab).
pub const DEFAULT_INSTANCE_NAME: &str = "warden";
/// IANA VXLAN port.
pub const DEFAULT_UDP_PORT: u16 = 4789;
/// Underlay IP MTU when not configured.
pub const DEFAULT_MTU: u16 = 1500;
/// Smallest accepted underlay MTU (the IPv4 minimum datagram every host accepts).
pub const MIN_MTU: u16 = 576;
/// Largest accepted underlay MTU (common jumbo frame limit).
pub const MAX_MTU: u16 = 9216;
/// Seconds a learned MAC stays in the FDB without traffic.
pub const DEFAULT_MAC_AGING_SECS: u32 = 300;

/// The control socket of instance `name` when none is configured.
pub fn default_control_socket(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/warden/{name}.sock"))
}

/// Gateway MAC of `vni` when none is configured: locally administered
/// `02:77:64` ("wd") followed by the three VNI bytes, so each VNI's router
/// has a distinct, recognisable address.
pub fn default_gateway_mac(vni: Vni) -> MacAddr {
    let [_, a, b, c] = vni.get().to_be_bytes();
    MacAddr([0x02, 0x77, 0x64, a, b, c])
}

// ---------------------------------------------------------------------------
// Runtime types
// ---------------------------------------------------------------------------

/// A validated warden instance configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WardenConfig {
    pub instance: Instance,
    pub underlay: Underlay,
    pub ports: Vec<PortConfig>,
    pub peers: Vec<PeerConfig>,
    pub vnis: Vec<VniConfig>,
    pub fdb: Vec<FdbEntry>,
    pub neighbors: Vec<Neighbor>,
    pub routes: Vec<RouteConfig>,
    /// `[identity]`; `None` when identity is off (no stamping, no
    /// verification, no policy).
    pub identity: Option<IdentityConfig>,
    /// `[[identity.document]]`, in file order; ids are distinct.
    pub documents: Vec<IdentityDoc>,
    pub workloads: Vec<Workload>,
    pub identity_maps: Vec<IdentityMap>,
    /// `[policy]` (needs `[identity]`); it compiled against `documents`
    /// when the config was validated.
    pub policy: Option<::policy::PolicySpec>,
}

impl WardenConfig {
    /// The port that carries VXLAN.
    pub fn underlay_port(&self) -> Option<&PortConfig> {
        self.ports.get(self.underlay.port)
    }
    /// The declared VNI `id`.
    pub fn vni(&self, id: Vni) -> Option<&VniConfig> {
        self.vnis.iter().find(|v| v.id == id)
    }
    /// Index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }
    /// Index of the identity document called `name`.
    pub fn document_index(&self, name: &str) -> Option<usize> {
        self.documents.iter().position(|d| d.name == name)
    }
    /// The 32-bit id of document `i` (a SHA-256: setup path only).
    pub fn document_id(&self, i: usize) -> Option<IdentityId> {
        self.documents.get(i).map(IdentityDoc::id)
    }
    /// The secret file of peer `i` when it is a warden: its own, else
    /// `[identity] secret_file` (validation made sure one exists).
    pub fn peer_secret(&self, i: usize) -> Option<&std::path::Path> {
        let p = self.peers.get(i)?;
        identities::peer_secret(&p.kind, self.identity.as_ref())
    }

    /// The config as a warden instance TOML file, every default written
    /// out; `parse_warden` of the result gives back an equal config. The
    /// testbed uses it to hand a lab's (possibly adjusted, e.g. `netns`
    /// substituted) config to a warden process.
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored.
        let _ = writeln!(
            out,
            "[instance]\nname = {}\ncontrol_socket = {}\n",
            quote(&self.instance.name),
            quote(&self.instance.control_socket.to_string_lossy())
        );
        let u = &self.underlay;
        let uport = self.ports.get(u.port).map_or("", |p| p.name.as_str());
        let _ = writeln!(
            out,
            "[underlay]\nport = {}\naddress = \"{}\"",
            quote(uport),
            u.address
        );
        if let Some(g) = u.gateway {
            let _ = writeln!(out, "gateway = \"{g}\"");
        }
        let _ = writeln!(out, "udp_port = {}\nmtu = {}", u.udp_port, u.mtu);
        if let Some(i) = &self.identity {
            let _ = writeln!(out, "\n[identity]\nwarden_id = {}", quote(&i.warden_id));
            if let Some(f) = &i.secret_file {
                let _ = writeln!(out, "secret_file = {}", quote(&f.to_string_lossy()));
            }
            let _ = writeln!(
                out,
                "epoch_secs = {}\ngrace_secs = {}\nwindow_secs = {}\nrestamp_secs = {}",
                i.epoch_secs, i.grace_secs, i.window_secs, i.restamp_secs
            );
            for d in &self.documents {
                let _ = write!(out, "\n{}", document_toml(d));
            }
        }
        for p in &self.ports {
            let backend = match p.backend {
                Backend::AfPacket => "af_packet",
                Backend::Tap => "tap",
            };
            let _ = writeln!(
                out,
                "\n[[port]]\nname = {}\nbackend = \"{backend}\"\ninterface = {}",
                quote(&p.name),
                quote(&p.interface)
            );
            if let Some(ns) = &p.netns {
                let _ = writeln!(out, "netns = {}", quote(ns));
            }
            if let Some(v) = p.access_vni {
                let _ = writeln!(out, "vni = {v}");
            }
        }
        for p in &self.peers {
            let vnis: Vec<String> = p.vnis.iter().map(Vni::to_string).collect();
            let _ = writeln!(
                out,
                "\n[[peer]]\naddress = \"{}\"\nvnis = [{}]",
                p.address,
                vnis.join(", ")
            );
            if let Some(n) = &p.name {
                let _ = writeln!(out, "name = {}", quote(n));
            }
            match &p.kind {
                PeerKind::Vtep { gbp } => {
                    if !gbp.is_empty() {
                        let list: Vec<String> = gbp
                            .iter()
                            .map(|(g, i)| {
                                format!("{{ group = {g}, identity = {} }}", self.doc_name(*i))
                            })
                            .collect();
                        let _ = writeln!(out, "gbp = [{}]", list.join(", "));
                    }
                }
                PeerKind::Warden {
                    warden_id,
                    secret_file,
                    identities,
                } => {
                    let _ = writeln!(out, "kind = \"warden\"\nwarden_id = {}", quote(warden_id));
                    if let Some(f) = secret_file {
                        let _ = writeln!(out, "secret_file = {}", quote(&f.to_string_lossy()));
                    }
                    let list: Vec<String> = identities.iter().map(|i| self.doc_name(*i)).collect();
                    let _ = writeln!(out, "identities = [{}]", list.join(", "));
                }
            }
        }
        for v in &self.vnis {
            let _ = writeln!(out, "\n[[vni]]\nid = {}", v.id);
            if let Some(n) = &v.name {
                let _ = writeln!(out, "name = {}", quote(n));
            }
            if let Some(g) = v.gateway {
                let _ = writeln!(out, "gateway = \"{g}\"");
            }
            let _ = writeln!(
                out,
                "gateway_mac = \"{}\"\nmac_aging_secs = {}",
                v.gateway_mac, v.mac_aging_secs
            );
        }
        for f in &self.fdb {
            let _ = writeln!(out, "\n[[fdb]]\nvni = {}\nmac = \"{}\"", f.vni, f.mac);
            let _ = match f.target {
                FdbTarget::Peer(ip) => writeln!(out, "peer = \"{ip}\""),
                FdbTarget::Port(i) => writeln!(
                    out,
                    "port = {}",
                    quote(self.ports.get(i).map_or("", |p| p.name.as_str()))
                ),
            };
        }
        for n in &self.neighbors {
            let _ = writeln!(
                out,
                "\n[[neighbor]]\nvni = {}\nip = \"{}\"\nmac = \"{}\"",
                n.vni, n.ip, n.mac
            );
        }
        for r in &self.routes {
            let _ = writeln!(
                out,
                "\n[[route]]\ndestination = \"{}\"\nvni = {}",
                r.destination, r.vni
            );
            if let Some(via) = r.via {
                let _ = writeln!(out, "via = \"{via}\"");
            }
        }
        for w in &self.workloads {
            let port = self.ports.get(w.port).map_or("", |p| p.name.as_str());
            let _ = writeln!(
                out,
                "\n[[workload]]\nport = {}\nmac = \"{}\"\nip = \"{}\"\nidentity = {}",
                quote(port),
                w.mac,
                w.ip,
                self.doc_name(w.identity)
            );
        }
        for m in &self.identity_maps {
            let _ = writeln!(
                out,
                "\n[[identity_map]]\npeer = \"{}\"\ncidr = \"{}\"\nidentity = {}",
                m.peer,
                m.cidr,
                self.doc_name(m.identity)
            );
        }
        if let Some(p) = &self.policy {
            out.push_str(&crate::policy::policy_toml(p));
        }
        out
    }

    /// Document `i`'s name as a TOML string.
    fn doc_name(&self, i: usize) -> String {
        quote(self.documents.get(i).map_or("", |d| d.name.as_str()))
    }
}

/// `s` as a TOML basic string, escaped.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Identity of this instance on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub control_socket: PathBuf,
}

/// The VTEP side: which port, which address, which UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// Index into [`WardenConfig::ports`].
    pub port: usize,
    /// VTEP address and underlay subnet.
    pub address: Ipv4Cidr,
    /// Router toward peers outside the subnet (inside the subnet).
    pub gateway: Option<Ipv4Addr>,
    pub udp_port: u16,
    /// Underlay IP MTU.
    pub mtu: u16,
}

/// How a port reaches the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// An AF_PACKET socket bound to an existing interface.
    AfPacket,
    /// A TAP device (created or attached through the tun ioctl).
    Tap,
}

/// One port of the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub backend: Backend,
    /// Kernel interface name (at most 15 bytes).
    pub interface: String,
    /// Network namespace of the interface: a name under /var/run/netns or
    /// an absolute path; in a lab file, a lab host name.
    pub netns: Option<String>,
    /// Access port: untagged frames belong to this VNI.
    pub access_vni: Option<Vni>,
}

/// A remote VTEP that may send us VXLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub name: Option<String>,
    pub address: Ipv4Addr,
    /// VNIs this peer carries: BUM frames of these VNIs are replicated to it.
    pub vnis: Vec<Vni>,
    /// A plain VTEP or another warden, with the identity settings of each.
    pub kind: PeerKind,
}

/// One overlay segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniConfig {
    pub id: Vni,
    pub name: Option<String>,
    /// Warden's L3 interface in this VNI: router address and connected subnet.
    pub gateway: Option<Ipv4Cidr>,
    pub gateway_mac: MacAddr,
    pub mac_aging_secs: u32,
}

/// Where a static FDB entry sends frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbTarget {
    /// Encapsulate toward this peer VTEP.
    Peer(Ipv4Addr),
    /// Deliver on this port (index into [`WardenConfig::ports`]).
    Port(usize),
}

/// A static MAC entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub vni: Vni,
    pub mac: MacAddr,
    pub target: FdbTarget,
}

/// A static inner ARP entry for the L3 gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub vni: Vni,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// An inner route of the L3 gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteConfig {
    /// Always in network form (host bits cleared).
    pub destination: Ipv4Cidr,
    /// Egress VNI (declared, with a gateway).
    pub vni: Vni,
    /// Next hop inside the egress VNI's gateway subnet; `None` means on-link.
    pub via: Option<Ipv4Addr>,
}

// ---------------------------------------------------------------------------
// DTOs: the file as written
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WardenDto {
    #[serde(default)]
    instance: Option<InstanceDto>,
    underlay: Spanned<UnderlayDto>,
    #[serde(default)]
    identity: Option<Spanned<IdentityDto>>,
    #[serde(default)]
    port: Vec<Spanned<PortDto>>,
    #[serde(default)]
    peer: Vec<Spanned<PeerDto>>,
    #[serde(default)]
    vni: Vec<Spanned<VniDto>>,
    #[serde(default)]
    fdb: Vec<Spanned<FdbDto>>,
    #[serde(default)]
    neighbor: Vec<Spanned<NeighborDto>>,
    #[serde(default)]
    route: Vec<Spanned<RouteDto>>,
    #[serde(default)]
    workload: Vec<Spanned<WorkloadDto>>,
    #[serde(default)]
    identity_map: Vec<Spanned<IdentityMapDto>>,
    #[serde(default)]
    policy: Option<Spanned<crate::policy::PolicyDto>>,
}

/// `[[allow]]`, the allow hook that `[policy]` replaced: looked for before
/// the file is read for real so that it gets its own message instead of
/// "unknown field". Ignores everything else (a file that does not parse
/// here fails the real read with its own error).
#[derive(Debug, Deserialize)]
struct AllowProbe {
    #[serde(default)]
    allow: Option<Spanned<serde::de::IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
struct LabAllowProbe {
    #[serde(default)]
    warden: Vec<LabWardenAllowProbe>,
}

#[derive(Debug, Deserialize)]
struct LabWardenAllowProbe {
    #[serde(default)]
    config: Option<AllowProbe>,
}

/// Where `text` (a warden config, or a lab when `lab`) still has an
/// `[[allow]]` table, as the error that says what replaced it.
pub(crate) fn removed_allow(text: &str, lab: bool) -> Option<Invalid> {
    let span = if lab {
        toml::from_str::<LabAllowProbe>(text)
            .ok()?
            .warden
            .into_iter()
            .find_map(|w| w.config?.allow)?
            .span()
    } else {
        toml::from_str::<AllowProbe>(text).ok()?.allow?.span()
    };
    let prefix = if lab { "warden.config." } else { "" };
    Some(invalid(span, ErrorKind::AllowReplaced { prefix }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceDto {
    name: Option<Spanned<String>>,
    control_socket: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnderlayDto {
    port: Spanned<String>,
    address: Spanned<CidrValue>,
    gateway: Option<Spanned<Ipv4Value>>,
    udp_port: Option<Spanned<u16>>,
    mtu: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortDto {
    name: Spanned<String>,
    backend: Backend,
    interface: Spanned<IfName>,
    netns: Option<Spanned<String>>,
    vni: Option<Spanned<VniValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerDto {
    address: Spanned<Ipv4Value>,
    #[serde(default)]
    vnis: Vec<Spanned<VniValue>>,
    name: Option<String>,
    pub(crate) kind: Option<Spanned<PeerKindDto>>,
    pub(crate) warden_id: Option<Spanned<String>>,
    pub(crate) secret_file: Option<Spanned<String>>,
    pub(crate) identities: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) gbp: Option<Spanned<Vec<Spanned<GbpDto>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VniDto {
    id: Spanned<VniValue>,
    name: Option<String>,
    gateway: Option<Spanned<CidrValue>>,
    gateway_mac: Option<Spanned<MacValue>>,
    mac_aging_secs: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FdbDto {
    vni: Spanned<VniValue>,
    mac: Spanned<MacValue>,
    peer: Option<Spanned<Ipv4Value>>,
    port: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NeighborDto {
    vni: Spanned<VniValue>,
    ip: Spanned<Ipv4Value>,
    mac: Spanned<MacValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDto {
    destination: Spanned<CidrValue>,
    vni: Spanned<VniValue>,
    via: Option<Spanned<Ipv4Value>>,
}

/// Facts about the ports that the lab validator needs to point at.
#[derive(Debug, Clone)]
pub(crate) struct PortSpans {
    /// Span of each port's `interface` value, by port index.
    pub interface: Vec<Range<usize>>,
    /// Span of each port's `netns` value, by port index.
    pub netns: Vec<Option<Range<usize>>>,
    /// Span of `[instance] control_socket` (or `name`) when the file sets one.
    pub control_socket: Option<Range<usize>>,
}

impl WardenDto {
    /// Spans the lab validator reports against.
    pub(crate) fn spans(&self) -> PortSpans {
        PortSpans {
            interface: self
                .port
                .iter()
                .map(|p| p.get_ref().interface.span())
                .collect(),
            netns: self
                .port
                .iter()
                .map(|p| p.get_ref().netns.as_ref().map(Spanned::span))
                .collect(),
            control_socket: self
                .instance
                .as_ref()
                .and_then(|i| i.control_socket.as_ref().or(i.name.as_ref()))
                .map(Spanned::span),
        }
    }
}

// ---------------------------------------------------------------------------
// The validating builder
// ---------------------------------------------------------------------------

/// A validation failure: what and where (byte span in the source).
#[derive(Debug)]
pub(crate) struct Invalid {
    pub span: Range<usize>,
    pub kind: ErrorKind,
}

pub(crate) fn invalid(span: Range<usize>, kind: ErrorKind) -> Invalid {
    Invalid { span, kind }
}

/// Remembers where each key was first seen, to report duplicates with the
/// line of the first declaration.
pub(crate) struct Seen<'t, K> {
    text: &'t str,
    what: &'static str,
    first: HashMap<K, usize>,
}

impl<'t, K: Eq + Hash> Seen<'t, K> {
    pub(crate) fn new(text: &'t str, what: &'static str) -> Self {
        Seen {
            text,
            what,
            first: HashMap::new(),
        }
    }
    /// Record `key` at `span`; an error if it was seen before.
    /// `shown` is how the key appears in the message.
    pub(crate) fn insert(
        &mut self,
        key: K,
        span: Range<usize>,
        shown: impl FnOnce() -> String,
    ) -> Result<(), Invalid> {
        if let Some(&first) = self.first.get(&key) {
            return Err(invalid(
                span,
                ErrorKind::Duplicate {
                    what: self.what,
                    value: shown(),
                    first_line: line_of(self.text, first),
                },
            ));
        }
        self.first.insert(key, span.start);
        Ok(())
    }
}

/// `true` when `cidr` is its subnet's network or broadcast address (only
/// meaningful for prefixes up to /30; /31 and /32 have no such addresses).
pub(crate) fn is_network_or_broadcast(cidr: Ipv4Cidr) -> bool {
    if cidr.prefix_len() >= 31 {
        return false;
    }
    let a = u32::from(cidr.address());
    let host = a & !cidr.mask();
    host == 0 || host == !cidr.mask()
}

/// `true` when the two subnets share at least one address.
fn overlaps(a: Ipv4Cidr, b: Ipv4Cidr) -> bool {
    a.contains(b.network().address()) || b.contains(a.network().address())
}

/// The message tail listing what a reference may name.
pub(crate) fn one_of(what: &str, names: &[&str]) -> String {
    if names.is_empty() {
        format!("one of the {what} (none is declared)")
    } else {
        let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("one of the {what}: {}", list.join(", "))
    }
}

/// A namespace reference: a simple name or an absolute path.
fn valid_netns(s: &str) -> bool {
    is_simple_name(s) || (s.starts_with('/') && s.len() > 1 && !s.contains('\0'))
}

/// Validate `dto` (parsed from `text`) into a [`WardenConfig`];
/// `default_name` is the instance name when the file sets none.
pub(crate) fn build(
    dto: WardenDto,
    text: &str,
    default_name: &str,
) -> Result<WardenConfig, Invalid> {
    // [instance]
    let (name, control_socket) = match dto.instance {
        Some(InstanceDto {
            name,
            control_socket,
        }) => {
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

    // [[port]]: names and the interfaces they bind.
    let mut names = Seen::new(text, "port name");
    let mut bindings = Seen::new(text, "port interface");
    for p in &dto.port {
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
    let port_names: Vec<&str> = dto
        .port
        .iter()
        .map(|p| p.get_ref().name.get_ref().as_str())
        .collect();
    let find_port = |name: &Spanned<String>, what: &'static str| -> Result<usize, Invalid> {
        port_names
            .iter()
            .position(|n| n == name.get_ref())
            .ok_or_else(|| {
                invalid(
                    name.span(),
                    ErrorKind::UnknownReference {
                        what,
                        name: name.get_ref().clone(),
                        expected: one_of("[[port]] names", &port_names),
                    },
                )
            })
    };

    // [[vni]]
    let mut vni_ids = Seen::new(text, "VNI");
    let mut vnis = Vec::with_capacity(dto.vni.len());
    // (vni, gateway, span start of its `gateway`) for the overlap check.
    let mut subnets: Vec<(Vni, Ipv4Cidr, usize)> = Vec::new();
    for v in &dto.vni {
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
    let declared = |v: &Spanned<VniValue>, context: &'static str| -> Result<&VniConfig, Invalid> {
        let id = v.get_ref().0;
        vnis.iter()
            .find(|c| c.id == id)
            .ok_or_else(|| invalid(v.span(), ErrorKind::UndeclaredVni { context, vni: id }))
    };
    let with_gateway =
        |v: &Spanned<VniValue>, context: &'static str| -> Result<Ipv4Cidr, Invalid> {
            let c = declared(v, context)?;
            c.gateway.ok_or_else(|| {
                invalid(
                    v.span(),
                    ErrorKind::VniWithoutGateway { context, vni: c.id },
                )
            })
        };

    // Access VNIs of the ports.
    let mut ports = Vec::with_capacity(dto.port.len());
    for p in &dto.port {
        let p = p.get_ref();
        let access_vni = match &p.vni {
            Some(v) => Some(declared(v, "access port")?.id),
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

    // [underlay]
    let u = dto.underlay.get_ref();
    let uport = find_port(&u.port, "underlay port")?;
    if let Some(vni) = ports.get(uport).and_then(|p| p.access_vni) {
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

    // Every port has a role: the underlay or an access port.
    for (i, (p, dto_p)) in ports.iter().zip(&dto.port).enumerate() {
        if i != uport && p.access_vni.is_none() {
            return Err(invalid(
                dto_p.span(),
                ErrorKind::PortWithoutRole {
                    port: p.name.clone(),
                },
            ));
        }
    }

    // [identity] and its documents.
    let (identity, documents) = identities::build_identity(dto.identity.as_ref(), text)?;
    let docs = identities::docs(&documents);

    // [[peer]]
    let mut peer_addrs = Seen::new(text, "peer address");
    let mut peers = Vec::with_capacity(dto.peer.len());
    for p in &dto.peer {
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
        if gateway.is_none() && !address.contains(ip) {
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
            let id = declared(v, "peer")?.id;
            carried.insert(id, v.span(), || format!("{id} in peer vnis"))?;
            peer_vnis.push(id);
        }
        let kind = identities::peer_kind(p, ip, identity.as_ref(), &docs, text)?;
        peers.push(PeerConfig {
            name: p.name.clone(),
            address: ip,
            vnis: peer_vnis,
            kind,
        });
    }
    identities::check_warden_ids(dto.identity.as_ref(), &dto.peer, &peers, text)?;

    // [[fdb]]
    let mut fdb_keys = Seen::new(text, "fdb entry");
    let mut fdb = Vec::with_capacity(dto.fdb.len());
    for f in &dto.fdb {
        let span = f.span();
        let f = f.get_ref();
        let vni = declared(&f.vni, "fdb")?.id;
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
                let i = find_port(port, "fdb port")?;
                if ports.get(i).and_then(|p| p.access_vni) != Some(vni) {
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

    // [[neighbor]]
    let mut neighbor_keys = Seen::new(text, "neighbor");
    let mut neighbors = Vec::with_capacity(dto.neighbor.len());
    for n in &dto.neighbor {
        let n = n.get_ref();
        let subnet = with_gateway(&n.vni, "neighbor")?;
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

    // [[route]]
    let mut route_keys = Seen::new(text, "route destination");
    let mut routes = Vec::with_capacity(dto.route.len());
    for r in &dto.route {
        let r = r.get_ref();
        let destination = r.destination.get_ref().0.network();
        route_keys.insert(destination, r.destination.span(), || {
            destination.to_string()
        })?;
        let subnet = with_gateway(&r.vni, "route egress")?;
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

    // [[workload]], [[identity_map]]
    let port_name_spans: Vec<Range<usize>> =
        dto.port.iter().map(|p| p.get_ref().name.span()).collect();
    let (workloads, identity_maps) = identities::build_bindings(
        &identities::Context {
            text,
            identity: identity.as_ref(),
            docs: &docs,
            ports: &ports,
            port_name_spans: &port_name_spans,
            peers: &peers,
        },
        &dto.workload,
        &dto.identity_map,
    )?;

    // [policy]
    let policy =
        crate::policy::build_policy(dto.policy.as_ref(), identity.is_some(), &documents, text)?;

    Ok(WardenConfig {
        instance: Instance {
            name,
            control_socket,
        },
        underlay: Underlay {
            port: uport,
            address,
            gateway,
            udp_port,
            mtu,
        },
        ports,
        peers,
        vnis,
        fdb,
        neighbors,
        routes,
        identity,
        documents,
        workloads,
        identity_maps,
        policy,
    })
}

#[cfg(test)]
mod tests {
    use crate::{parse_warden, ConfigError};

    /// Eight lines: every case below starts at line 9.
    const BASE: &str = r#"[underlay]
port = "uplink"
address = "10.0.0.1/24"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"
"#;

    fn err(text: &str) -> String {
        match parse_warden(text, "w.toml") {
            Ok(c) => panic!("accepted:\n{text}\n{c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// (what, text after BASE, expected error)
    const CASES: &[(&str, &str, &str)] = &[
        (
            "unknown field in a table",
            "[[vni]]\nid = 100\ncolour = \"blue\"\n",
            "w.toml:11:1: unknown field `colour`, expected one of `id`, `name`, `gateway`, `gateway_mac`, `mac_aging_secs`",
        ),
        (
            "unknown top-level table",
            "[firewall]\nmode = \"x\"\n",
            "w.toml:9:2: unknown field `firewall`, expected one of `instance`, `underlay`, `identity`, `port`, `peer`, `vni`, `fdb`, `neighbor`, `route`, `workload`, `identity_map`, `policy`",
        ),
        (
            "bad CIDR",
            "[[vni]]\nid = 100\ngateway = \"10.1.0.1/33\"\n",
            "w.toml:11:11: invalid CIDR \"10.1.0.1/33\", expected ADDRESS/PREFIX such as \"10.1.0.1/24\" (prefix 0..=32)",
        ),
        (
            "bad MAC",
            "[[vni]]\nid = 100\ngateway_mac = \"02:00:00:00:01\"\n",
            "w.toml:11:15: invalid MAC address \"02:00:00:00:01\", expected six hex pairs such as \"02:00:00:00:00:01\"",
        ),
        (
            "VNI out of range",
            "[[vni]]\nid = 16777216\n",
            "w.toml:10:6: VNI 16777216 is out of range, expected an integer from 0 to 16777215",
        ),
        (
            "duplicate VNI",
            "[[vni]]\nid = 100\n\n[[vni]]\nid = 100\n",
            "w.toml:13:6: duplicate VNI 100 (first declared at line 10)",
        ),
        (
            "duplicate port name",
            "\n[[port]]\nname = \"uplink\"\nbackend = \"tap\"\ninterface = \"t0\"\n",
            "w.toml:11:8: duplicate port name `uplink` (first declared at line 6)",
        ),
        (
            "duplicate port interface",
            "[[vni]]\nid = 1\n[[port]]\nname = \"p2\"\nbackend = \"af_packet\"\ninterface = \"eth0\"\nvni = 1\n",
            "w.toml:14:13: duplicate port interface `eth0` (first declared at line 8)",
        ),
        (
            "duplicate peer address",
            "[[peer]]\naddress = \"10.0.0.2\"\n[[peer]]\naddress = \"10.0.0.2\"\n",
            "w.toml:12:11: duplicate peer address 10.0.0.2 (first declared at line 10)",
        ),
        (
            "fdb port that does not exist",
            "[[vni]]\nid = 5\n[[fdb]]\nvni = 5\nmac = \"02:00:00:00:00:05\"\nport = \"web\"\n",
            "w.toml:14:8: unknown fdb port `web`, expected one of the [[port]] names: `uplink`",
        ),
        (
            "access port VNI not declared",
            "[[port]]\nname = \"web\"\nbackend = \"tap\"\ninterface = \"wl0\"\nvni = 300\n",
            "w.toml:13:7: access port VNI 300 is not declared, expected a [[vni]] with id = 300",
        ),
        (
            "peer VNI not declared",
            "[[vni]]\nid = 100\n[[peer]]\naddress = \"10.0.0.2\"\nvnis = [100, 200]\n",
            "w.toml:13:14: peer VNI 200 is not declared, expected a [[vni]] with id = 200",
        ),
        (
            "VNI repeated in a peer's list",
            "[[vni]]\nid = 100\n[[peer]]\naddress = \"10.0.0.2\"\nvnis = [100,\n  100]\n",
            "w.toml:14:3: duplicate VNI 100 in peer vnis (first declared at line 13)",
        ),
        (
            "fdb target both",
            "[[vni]]\nid = 1\n[[peer]]\naddress = \"10.0.0.2\"\nvnis = [1]\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\npeer = \"10.0.0.2\"\nport = \"uplink\"\n",
            "w.toml:18:8: fdb entry has both `peer` and `port`, expected exactly one of `peer` or `port`",
        ),
        (
            "fdb target neither",
            "[[vni]]\nid = 1\n\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\n",
            "w.toml:12:1: fdb entry has neither `peer` nor `port`, expected exactly one of `peer` or `port`",
        ),
        (
            "fdb port not in that VNI",
            "[[vni]]\nid = 1\n[[vni]]\nid = 2\n[[port]]\nname = \"web\"\nbackend = \"tap\"\ninterface = \"wl0\"\nvni = 2\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\nport = \"web\"\n",
            "w.toml:21:8: port `web` is not an access port of VNI 1, expected a port with `vni = 1`",
        ),
        (
            "fdb peer that does not carry the VNI",
            "[[vni]]\nid = 1\n[[vni]]\nid = 2\n[[peer]]\naddress = \"10.0.0.2\"\nvnis = [2]\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\npeer = \"10.0.0.2\"\n",
            "w.toml:19:8: peer 10.0.0.2 does not carry VNI 1, expected 1 in that peer's `vnis`",
        ),
        (
            "fdb peer that is not declared",
            "[[vni]]\nid = 1\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\npeer = \"10.0.0.9\"\n",
            "w.toml:14:8: unknown fdb peer `10.0.0.9`, expected one of the [[peer]] addresses (none is declared)",
        ),
        (
            "duplicate fdb entry",
            "[[vni]]\nid = 1\n[[peer]]\naddress = \"10.0.0.2\"\nvnis = [1]\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\npeer = \"10.0.0.2\"\n[[fdb]]\nvni = 1\nmac = \"02:00:00:00:00:05\"\npeer = \"10.0.0.2\"\n",
            "w.toml:20:7: duplicate fdb entry VNI 1 MAC 02:00:00:00:00:05 (first declared at line 16)",
        ),
        (
            "fdb group MAC",
            "[[vni]]\nid = 1\n[[fdb]]\nvni = 1\nmac = \"01:00:5e:00:00:01\"\nport = \"uplink\"\n",
            "w.toml:13:7: fdb mac 01:00:5e:00:00:01 is not a unicast address, expected a non-zero MAC with the group bit clear",
        ),
        (
            "route to an unknown VNI",
            "[[route]]\ndestination = \"10.9.0.0/16\"\nvni = 7\n",
            "w.toml:11:7: route egress VNI 7 is not declared, expected a [[vni]] with id = 7",
        ),
        (
            "route to a VNI without gateway",
            "[[vni]]\nid = 7\n[[route]]\ndestination = \"10.9.0.0/16\"\nvni = 7\n",
            "w.toml:13:7: route egress VNI 7 has no gateway, expected `gateway = \"ADDRESS/PREFIX\"` on [[vni]] id = 7",
        ),
        (
            "route via outside the egress subnet",
            "[[vni]]\nid = 7\ngateway = \"10.7.0.1/24\"\n[[route]]\ndestination = \"10.9.0.0/16\"\nvni = 7\nvia = \"10.8.0.1\"\n",
            "w.toml:15:7: route via 10.8.0.1 is outside 10.7.0.0/24, expected an address inside it",
        ),
        (
            "duplicate route (after normalising to network form)",
            "[[vni]]\nid = 7\ngateway = \"10.7.0.1/24\"\n[[route]]\ndestination = \"10.9.0.0/16\"\nvni = 7\n[[route]]\ndestination = \"10.9.1.1/16\"\nvni = 7\n",
            "w.toml:16:15: duplicate route destination 10.9.0.0/16 (first declared at line 13)",
        ),
        (
            "overlapping gateway subnets",
            "[[vni]]\nid = 1\ngateway = \"10.1.0.1/16\"\n[[vni]]\nid = 2\ngateway = \"10.1.2.1/24\"\n",
            "w.toml:14:11: gateway subnet 10.1.2.0/24 of VNI 2 overlaps 10.1.0.0/16 of VNI 1 (declared at line 11)",
        ),
        (
            "gateway that is the subnet's network address",
            "[[vni]]\nid = 1\ngateway = \"10.1.0.0/24\"\n",
            "w.toml:11:11: vni gateway 10.1.0.0/24 is the network or broadcast address of its subnet, expected a host address",
        ),
        (
            "duplicate neighbor",
            "[[vni]]\nid = 1\ngateway = \"10.1.0.1/24\"\n[[neighbor]]\nvni = 1\nip = \"10.1.0.5\"\nmac = \"02:00:00:00:00:05\"\n[[neighbor]]\nvni = 1\nip = \"10.1.0.5\"\nmac = \"02:00:00:00:00:06\"\n",
            "w.toml:18:6: duplicate neighbor VNI 1 ip 10.1.0.5 (first declared at line 14)",
        ),
        (
            "neighbor outside the VNI's subnet",
            "[[vni]]\nid = 1\ngateway = \"10.1.0.1/24\"\n[[neighbor]]\nvni = 1\nip = \"10.2.0.5\"\nmac = \"02:00:00:00:00:05\"\n",
            "w.toml:14:6: neighbor ip 10.2.0.5 is outside 10.1.0.0/24, expected an address inside it",
        ),
        (
            "port with neither role",
            "\n[[port]]\nname = \"spare\"\nbackend = \"tap\"\ninterface = \"t0\"\n",
            "w.toml:10:1: port `spare` has no `vni` and is not the underlay port, expected `vni = <id>` on every port except underlay.port",
        ),
        (
            "peer outside the underlay subnet without gateway",
            "[[peer]]\naddress = \"10.5.0.2\"\n",
            "w.toml:10:11: peer 10.5.0.2 is outside the underlay subnet 10.0.0.0/24 and underlay.gateway is not set, expected a peer inside the subnet or a gateway",
        ),
        (
            "peer that is our own address",
            "[[peer]]\naddress = \"10.0.0.1\"\n",
            "w.toml:10:11: peer address 10.0.0.1 is the same as the underlay address",
        ),
        (
            "interface name too long",
            "[[port]]\nname = \"p\"\nbackend = \"tap\"\ninterface = \"a-very-long-name0\"\n",
            "w.toml:12:13: invalid interface name \"a-very-long-name0\": it is longer than 15 bytes, expected 1 to 15 bytes without `/`, `:` or whitespace",
        ),
        (
            "unknown backend",
            "[[port]]\nname = \"p\"\nbackend = \"xdp\"\ninterface = \"x0\"\n",
            "w.toml:11:11: unknown variant `xdp`, expected `af_packet` or `tap`",
        ),
        (
            "TOML syntax error",
            "[[vni]\nid = 1\n",
            "w.toml:9:7: unclosed array table, expected `]`",
        ),
        (
            "bad port name",
            "[[vni]]\nid = 1\n[[port]]\nname = \"my port\"\nbackend = \"tap\"\ninterface = \"t0\"\nvni = 1\n",
            "w.toml:12:8: invalid port name `my port`, expected 1 to 64 of A-Z a-z 0-9 _ . - (not starting with . or -)",
        ),
    ];

    #[test]
    fn each_error_points_at_its_value() {
        for (what, extra, expected) in CASES {
            let text = format!("{BASE}{extra}");
            assert_eq!(err(&text), *expected, "case: {what}");
        }
    }

    /// Cases that need a different [underlay] than BASE.
    #[test]
    fn underlay_errors() {
        let port = r#"
[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"

[[port]]
name = "web"
backend = "tap"
interface = "wl0"
vni = 300

[[vni]]
id = 300
"#;
        let cases = [
            (
                "[underlay]\nport = \"nope\"\naddress = \"10.0.0.1/24\"\n",
                "w.toml:2:8: unknown underlay port `nope`, expected one of the [[port]] names: `uplink`, `web`",
            ),
            (
                "[underlay]\nport = \"web\"\naddress = \"10.0.0.1/24\"\n",
                "w.toml:2:8: underlay port `web` is an access port of VNI 300, expected a port without `vni`",
            ),
            (
                "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\ngateway = \"10.0.1.1\"\n",
                "w.toml:4:11: underlay gateway 10.0.1.1 is outside 10.0.0.0/24, expected an address inside it",
            ),
            (
                "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\ngateway = \"10.0.0.1\"\n",
                "w.toml:4:11: underlay gateway 10.0.0.1 is the same as underlay address",
            ),
            (
                "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\nmtu = 100\n",
                "w.toml:4:7: mtu 100 is out of range, expected 576..=9216",
            ),
            (
                "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\nudp_port = 0\n",
                "w.toml:4:12: udp_port 0 is out of range, expected 1..=65535",
            ),
            (
                "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.255/24\"\n",
                "w.toml:3:11: underlay address 10.0.0.255/24 is the network or broadcast address of its subnet, expected a host address",
            ),
            (
                "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\ncolour = 1\n",
                "w.toml:4:1: unknown field `colour`, expected one of `port`, `address`, `gateway`, `udp_port`, `mtu`",
            ),
            (
                "[instance]\nname = \"../x\"\n[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\n",
                "w.toml:2:8: invalid instance name `../x`, expected 1 to 64 of A-Z a-z 0-9 _ . - (not starting with . or -)",
            ),
            (
                "[instance]\nname = \"x\"\n",
                "w.toml:1:1: missing field `underlay`",
            ),
        ];
        for (head, expected) in cases {
            let text = format!("{head}{port}");
            assert_eq!(err(&text), expected, "underlay:\n{head}");
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = parse_warden(
            &format!("{BASE}[[vni]]\nid = 66051\n[[port]]\nname = \"w\"\nbackend = \"tap\"\ninterface = \"t\"\nvni = 66051\n"),
            "w.toml",
        )
        .unwrap();
        assert_eq!(c.instance.name, "warden");
        assert_eq!(
            c.instance.control_socket.to_str(),
            Some("/run/warden/warden.sock")
        );
        assert_eq!(c.underlay.udp_port, 4789);
        assert_eq!(c.underlay.mtu, 1500);
        assert_eq!(c.underlay.gateway, None);
        let v = &c.vnis[0];
        assert_eq!(v.mac_aging_secs, 300);
        // 66051 = 0x010203
        assert_eq!(v.gateway_mac.to_string(), "02:77:64:01:02:03");
        assert_eq!(c.underlay_port().map(|p| p.name.as_str()), Some("uplink"));
        assert_eq!(c.port_index("w"), Some(1));
        // A name without a control socket derives the socket from the name.
        let c = parse_warden(&format!("[instance]\nname = \"gw\"\n{BASE}"), "w.toml").unwrap();
        assert_eq!(
            c.instance.control_socket.to_str(),
            Some("/run/warden/gw.sock")
        );
    }

    #[test]
    fn error_fields_match_display() {
        let e: ConfigError = parse_warden(
            &format!("{BASE}[[vni]]\nid = 1\n[[vni]]\nid = 1\n"),
            "w.toml",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (12, 6));
        assert_eq!(
            *e.kind,
            crate::ErrorKind::Duplicate {
                what: "VNI",
                value: "1".into(),
                first_line: 10
            }
        );
    }
}
