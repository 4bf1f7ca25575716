//! The warden instance config: TOML DTOs, the validated runtime types and
//! the builder between them.
//!
//! The DTOs (`dto`) mirror the file one to one and reject unknown fields;
//! the builder checks everything that needs more than one value
//! (references, uniqueness, subnets) and fills in defaults, so the engine
//! only ever sees a [`WardenConfig`] that is consistent.
//!
//! [`build`] is a sequence of validators, one per table: `instance`
//! (`[instance]`, `[underlay]`), `ports`, `vnis`, `peers`, `fdb`,
//! `neighbors`, `routes`, then `identities` (`[identity]`, warden peers,
//! `[[workload]]`, `[[identity_map]]`) and `policy` from the crate. The
//! validators after `[[port]]` and `[[vni]]` resolve references through
//! `context::Tables`.

mod context;
mod dto;
mod fdb;
mod instance;
mod neighbors;
mod peers;
mod ports;
mod routes;
mod vnis;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use identity::{IdentityDoc, IdentityId};
use overlay::{Ipv4Cidr, MacAddr, Vni};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::identities::{
    self, document_toml, IdentityConfig, IdentityMap, PeerKind, PortFacts, Workload,
};
use crate::validate::{quote, Invalid};
use context::Tables;
pub(crate) use dto::{removed_allow, WardenDto};

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
    /// `[flow_log]`: flow events as JSON lines.
    pub flow_log: Option<FlowLog>,
}

/// `[flow_log]`: where flow events go, and the bounds that keep a flood
/// from filling the disk or stalling the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLog {
    pub path: PathBuf,
    /// A file is rotated (to `path.1`, ...) once it holds this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept; at most `(keep + 1) * max_bytes` on disk.
    pub keep: u32,
    /// Events per second per worker; the excess is counted, not queued.
    pub rate: u32,
}

/// `[flow_log]` defaults.
pub const DEFAULT_FLOW_LOG_MAX_BYTES: u64 = 16 << 20;
pub const DEFAULT_FLOW_LOG_KEEP: u32 = 3;
pub const DEFAULT_FLOW_LOG_RATE: u32 = 1000;

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
                Backend::AfXdp => "af_xdp",
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

/// Identity of this instance on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub control_socket: PathBuf,
    /// `metrics = "ADDR:PORT"`: where Prometheus scrapes `/metrics`.
    pub metrics: Option<std::net::SocketAddr>,
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
    /// An AF_XDP socket on queue 0 of an existing interface (copy mode),
    /// with a redirect program attached while warden runs.
    AfXdp,
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
// The validating builder
// ---------------------------------------------------------------------------

/// Validate `dto` (parsed from `text`) into a [`WardenConfig`];
/// `default_name` is the instance name when the file sets none.
///
/// One validator per table, in this order (the first error wins, so the
/// order is part of the behaviour): each gets what it resolves references
/// against, the declared ports and VNIs through [`Tables`].
/// Something outside the file that an instance config names and `warden
/// run` needs: `warden check` looks for it and warns, at the position of
/// the name in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A port's interface (in `netns` when given: a TAP there).
    Interface {
        port: String,
        name: String,
        backend: Backend,
        netns: Option<String>,
    },
    /// A port's network namespace (a name under /var/run/netns, or a path).
    Netns { port: String, name: String },
    /// A pair-secret file (`[identity]` or a peer's).
    SecretFile { path: PathBuf },
}

/// Every [`Reference`] of a valid instance config `text`, with its
/// 1-based line and column. Empty when the text does not parse.
pub fn references(text: &str) -> Vec<(Reference, usize, usize)> {
    let Ok(dto) = toml::from_str::<dto::WardenDto>(text) else {
        return Vec::new();
    };
    let at = |span: std::ops::Range<usize>| crate::error::line_column(text, span.start);
    let mut out = Vec::new();
    for p in &dto.port {
        let p = p.get_ref();
        let netns = p.netns.as_ref().map(|n| n.get_ref().clone());
        let (l, c) = at(p.interface.span());
        out.push((
            Reference::Interface {
                port: p.name.get_ref().clone(),
                name: p.interface.get_ref().0.clone(),
                backend: p.backend,
                netns: netns.clone(),
            },
            l,
            c,
        ));
        if let Some(n) = &p.netns {
            let (l, c) = at(n.span());
            out.push((
                Reference::Netns {
                    port: p.name.get_ref().clone(),
                    name: n.get_ref().clone(),
                },
                l,
                c,
            ));
        }
    }
    if let Some(f) = dto
        .identity
        .as_ref()
        .and_then(|i| i.get_ref().secret_file())
    {
        let (l, c) = at(f.span());
        out.push((
            Reference::SecretFile {
                path: PathBuf::from(f.get_ref()),
            },
            l,
            c,
        ));
    }
    for p in &dto.peer {
        if let Some(f) = &p.get_ref().secret_file {
            let (l, c) = at(f.span());
            out.push((
                Reference::SecretFile {
                    path: PathBuf::from(f.get_ref()),
                },
                l,
                c,
            ));
        }
    }
    out
}

pub(crate) fn build(
    dto: WardenDto,
    text: &str,
    default_name: &str,
) -> Result<WardenConfig, Invalid> {
    let instance = instance::build_instance(dto.instance, default_name)?;
    ports::check_names(&dto.port, text)?;
    let vnis = vnis::build(&dto.vni, text)?;
    let ports = ports::build(&dto.port, &vnis)?;
    let tables = Tables::new(text, &ports, &vnis);
    let underlay = instance::build_underlay(dto.underlay.get_ref(), &tables)?;
    ports::check_roles(&ports, &dto.port, underlay.port)?;

    let (identity, documents) = identities::build_identity(dto.identity.as_ref(), text)?;
    let docs = identities::docs(&documents);
    let peers = peers::build(&dto.peer, &tables, &underlay, identity.as_ref(), &docs)?;
    identities::check_warden_ids(
        dto.identity.as_ref(),
        peers.iter().zip(&dto.peer).map(|(p, d)| {
            let span = d.get_ref().warden_id.as_ref().map(Spanned::span);
            (&p.kind, span)
        }),
        text,
    )?;

    let fdb = fdb::build(&dto.fdb, &tables, &peers)?;
    let neighbors = neighbors::build(&dto.neighbor, &tables)?;
    let routes = routes::build(&dto.route, &tables)?;

    let port_facts: Vec<PortFacts<'_>> = ports
        .iter()
        .zip(&dto.port)
        .map(|(p, d)| PortFacts {
            name: &p.name,
            name_span: d.get_ref().name.span(),
            access: p.access_vni.is_some(),
        })
        .collect();
    let peer_addresses: Vec<Ipv4Addr> = peers.iter().map(|p| p.address).collect();
    let (workloads, identity_maps) = identities::build_bindings(
        &identities::Context {
            text,
            identity: identity.as_ref(),
            docs: &docs,
            ports: &port_facts,
            peer_addresses: &peer_addresses,
        },
        &dto.workload,
        &dto.identity_map,
    )?;

    let policy =
        crate::policy::build_policy(dto.policy.as_ref(), identity.is_some(), &documents, text)?;
    let flow_log = instance::build_flow_log(dto.flow_log)?;

    Ok(WardenConfig {
        flow_log,
        instance,
        underlay,
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
            "metrics address without a port",
            "[instance]\nmetrics = \"127.0.0.1\"\n",
            "w.toml:10:11: invalid metrics address `127.0.0.1`, expected ADDRESS:PORT such as \"127.0.0.1:9464\" or \"[::1]:9464\"",
        ),
        (
            "flow log keep out of range",
            "[flow_log]\npath = \"/tmp/f.jsonl\"\nkeep = 1000\n",
            "w.toml:11:8: flow log keep 1000 is out of range, expected 0..=100",
        ),
        (
            "flow log without a path",
            "[flow_log]\nrate = 10\n",
            "w.toml:9:1: missing field `path`",
        ),
        (
            "unknown field in a table",
            "[[vni]]\nid = 100\ncolour = \"blue\"\n",
            "w.toml:11:1: unknown field `colour`, expected one of `id`, `name`, `gateway`, `gateway_mac`, `mac_aging_secs`",
        ),
        (
            "unknown top-level table",
            "[firewall]\nmode = \"x\"\n",
            "w.toml:9:2: unknown field `firewall`, expected one of `instance`, `underlay`, `identity`, `port`, `peer`, `vni`, `fdb`, `neighbor`, `route`, `workload`, `identity_map`, `policy`, `flow_log`",
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
            "w.toml:11:11: unknown variant `xdp`, expected one of `af_packet`, `af_xdp`, `tap`",
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
    fn af_xdp_backend_parses_and_round_trips() {
        let text = format!(
            "{BASE}[[vni]]\nid = 7\n[[port]]\nname = \"x\"\nbackend = \"af_xdp\"\ninterface = \"veth1\"\nnetns = \"n1\"\nvni = 7\n"
        );
        let c = parse_warden(&text, "w.toml").unwrap();
        assert_eq!(c.ports[1].backend, super::Backend::AfXdp);
        assert!(c.to_toml().contains("backend = \"af_xdp\""));
        assert_eq!(parse_warden(&c.to_toml(), "out").unwrap(), c);
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
