//! warden's configuration files: the instance config and the lab topology.
//!
//! Each file is read in two steps. Serde DTOs that mirror the TOML and deny
//! unknown fields catch syntax, types and single values (a VNI out of range,
//! a MAC or CIDR that does not parse); a validating builder then checks what
//! needs the whole file (references, uniqueness, subnets) and produces the
//! runtime types the engine and the testbed use. Every error is one line,
//! `FILE:LINE:COLUMN: message`, pointing at the offending value.
//!
//! Identity (`[identity]`, documents, workloads, warden peers, identity
//! maps) is optional; see `identities` and the
//! "identity" section of the schema reference. `[policy]`, the identity
//! firewall's rule language, needs `[identity]`; see `policy` here, the
//! `policy` crate for its semantics, and the "policy" section.
//!
//! The full schema reference is `docs/config-schema.md`. A gateway between
//! two VNIs, with one workload on a TAP:
//!
//! ```toml
//! [instance]
//! name = "gw"                     # control socket /run/warden/gw.sock
//!
//! [underlay]
//! port = "uplink"
//! address = "10.0.0.1/24"
//!
//! [[port]]
//! name = "uplink"
//! backend = "af_packet"
//! interface = "eth0"
//!
//! [[port]]
//! name = "web"
//! backend = "tap"
//! interface = "wl0"
//! vni = 300                       # access port of VNI 300
//!
//! [[peer]]
//! address = "10.0.0.11"
//! vnis = [100]
//!
//! [[vni]]
//! id = 100
//! gateway = "10.1.0.1/24"
//!
//! [[vni]]
//! id = 300
//! gateway = "10.3.0.1/24"
//!
//! [[route]]
//! destination = "10.9.0.0/16"
//! vni = 100
//! via = "10.1.0.254"
//! ```
//!
//! ```
//! let text = r#"
//! [underlay]
//! port = "uplink"
//! address = "10.0.0.1/24"
//!
//! [[port]]
//! name = "uplink"
//! backend = "af_packet"
//! interface = "eth0"
//! colour = "blue"
//! "#;
//! let err = config::parse_warden(text, "gw.toml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "gw.toml:10:1: unknown field `colour`, expected one of \
//!      `name`, `backend`, `interface`, `netns`, `vni`"
//! );
//! ```
//!
//! ## Modules
//!
//! Every module imports only modules below it, so the graph has no cycle
//! (unit tests also call the crate root's `parse_*`):
//!
//! ```text
//!   lib         parse_*, load_*, check_*, the public re-exports
//!    |
//!   lab         lab topology; each [[warden]] config through warden::build
//!    |
//!   warden/     mod.rs: runtime types, to_toml, build (one call per table)
//!    |  \       dto.rs; instance.rs (+ underlay), ports.rs, vnis.rs,
//!    |   \      peers.rs, fdb.rs, neighbors.rs, routes.rs; context.rs
//!    |  policy  [policy]: rule language, compiled against the documents
//!    |   /
//!   identities  [identity], documents, peer kinds, workloads, identity maps
//!    |
//!   validate    Invalid, Seen, one_of, quote, is_network_or_broadcast
//!    |
//!   error, value  (leaves)
//! ```
//!
//! Edges: lab -> warden, validate; warden -> policy, identities, validate;
//! policy -> identities, validate; identities -> validate; validate ->
//! error; everything may use the leaves `error` and `value`. `identities` and
//! `policy` know nothing of the warden config's types: `warden` hands them
//! what they resolve against (the documents, a peer's identity fields, port
//! names and access flags, peer addresses).

mod error;
mod identities;
mod lab;
mod policy;
mod validate;
mod value;
mod warden;

use std::path::Path;

pub use error::{ConfigError, ErrorKind};
pub use identities::{
    document_problem, document_toml, IdentityConfig, IdentityMap, PeerKind, Workload,
    DEFAULT_EPOCH_SECS, DEFAULT_GRACE_SECS, DEFAULT_RESTAMP_SECS, DEFAULT_WINDOW_SECS,
    MAX_IDENTITY_TEXT, MIN_EPOCH_SECS, UNAUTHENTICATED,
};
/// The identity crate's document types, as the config carries them.
pub use identity::{IdentityDoc, IdentityId};
pub use lab::{
    Check, CompareOp, Host, HostInterface, HostRoute, HostTap, HostVxlan, Lab, LabWarden, Link,
    StatExpect, StatExpectError, Switch, DEFAULT_COMMAND_TIMEOUT_SECS, DEFAULT_PING_COUNT,
    DEFAULT_TCP_PORT, DEFAULT_UDP_CHECK_PORT, DEFAULT_UDP_COUNT, DEFAULT_UDP_SIZE, MAX_UDP_SIZE,
    MIN_IF_MTU, MIN_UDP_SIZE,
};
pub use value::IFNAME_MAX;
pub use warden::{
    default_control_socket, default_gateway_mac, references, Backend, FdbEntry, FdbTarget, FlowLog,
    Instance, Neighbor, PeerConfig, PortConfig, Reference, RouteConfig, Underlay, VniConfig,
    WardenConfig, DEFAULT_INSTANCE_NAME, DEFAULT_MAC_AGING_SECS, DEFAULT_MTU, DEFAULT_UDP_PORT,
    MAX_MTU, MIN_MTU,
};

/// Which schema a file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A warden instance config.
    Warden,
    /// A lab topology (it has a top-level `[lab]` table).
    Lab,
}

/// Parse and validate a warden instance config; `origin` names the text in
/// errors (usually the file name).
pub fn parse_warden(text: &str, origin: &str) -> Result<WardenConfig, ConfigError> {
    if guess_kind(text) == Some(FileKind::Lab) {
        return Err(ConfigError::whole_file(
            origin,
            ErrorKind::WrongFileKind(format!(
                "this is a lab topology (it has a [lab] table), not a warden instance config: \
                 `warden-lab up|run {origin}` takes it; for one of its wardens, give the control \
                 socket `warden-lab up` prints (-s SOCKET)"
            )),
        ));
    }
    if let Some(e) = warden::removed_allow(text, false) {
        return Err(ConfigError::at(origin, text, e.span, e.kind));
    }
    let dto: warden::WardenDto =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(origin, text, &e))?;
    warden::build(dto, text, DEFAULT_INSTANCE_NAME)
        .map_err(|e| ConfigError::at(origin, text, e.span, e.kind))
}

/// Parse and validate a lab topology; `origin` names the text in errors.
pub fn parse_lab(text: &str, origin: &str) -> Result<Lab, ConfigError> {
    if guess_kind(text) == Some(FileKind::Warden) {
        return Err(ConfigError::whole_file(
            origin,
            ErrorKind::WrongFileKind(format!(
                "this is a warden instance config (no [lab] table; it has [underlay] or [[port]]), \
                 not a lab topology: `warden run -c {origin}` takes it; a lab puts it under \
                 [[warden]] as [warden.config]"
            )),
        ));
    }
    if let Some(e) = warden::removed_allow(text, true) {
        return Err(ConfigError::at(origin, text, e.span, e.kind));
    }
    let dto: lab::LabDto =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(origin, text, &e))?;
    lab::build(dto, text).map_err(|e| ConfigError::at(origin, text, e.span, e.kind))
}

/// Read and validate a warden instance config file. A lab file gets an
/// error that says so and which command takes it.
pub fn load_warden(path: &Path) -> Result<WardenConfig, ConfigError> {
    let (text, origin) = read(path)?;
    parse_warden(&text, &origin)
}

/// Read and validate a lab topology file. A warden instance config gets
/// an error that says so and which command takes it.
pub fn load_lab(path: &Path) -> Result<Lab, ConfigError> {
    let (text, origin) = read(path)?;
    parse_lab(&text, &origin)
}

/// Which schema `text` looks like from its top-level keys (`lab`: a lab;
/// `underlay`, `port` or `instance` without `lab`: an instance config);
/// None when it does not parse as TOML or has neither.
pub fn guess_kind(text: &str) -> Option<FileKind> {
    let table: toml::Table = toml::from_str(text).ok()?;
    if table.contains_key("lab") {
        Some(FileKind::Lab)
    } else if ["underlay", "port", "instance"]
        .iter()
        .any(|k| table.contains_key(*k))
    {
        Some(FileKind::Warden)
    } else {
        None
    }
}

/// Tell which schema `text` follows (a top-level `lab` key means a lab) and
/// validate it against that schema.
pub fn check_text(text: &str, origin: &str) -> Result<FileKind, ConfigError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(origin, text, &e))?;
    if table.contains_key("lab") {
        parse_lab(text, origin).map(|_| FileKind::Lab)
    } else {
        parse_warden(text, origin).map(|_| FileKind::Warden)
    }
}

/// Read a file, detect its kind and validate it (`warden check FILE`).
pub fn check_file(path: &Path) -> Result<FileKind, ConfigError> {
    let (text, origin) = read(path)?;
    check_text(&text, &origin)
}

fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, origin)),
        Err(e) => Err(ConfigError::whole_file(
            &origin,
            ErrorKind::Read(e.to_string()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlay::{Ipv4Cidr, MacAddr, Vni};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    const SCHEMA_DOC: &str = include_str!("../../docs/config-schema.md");

    /// The `n`th ```toml block of the schema reference.
    fn doc_block(n: usize) -> &'static str {
        // Any info string after `toml` (`toml fragment`).
        let start = SCHEMA_DOC
            .match_indices("```toml")
            .nth(n)
            .and_then(|(i, _)| SCHEMA_DOC[i..].find('\n').map(|nl| i + nl + 1))
            .expect("toml block in docs/config-schema.md");
        let len = SCHEMA_DOC
            .get(start..)
            .and_then(|rest| rest.find("```"))
            .expect("closed block");
        &SCHEMA_DOC[start..start + len]
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }
    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn vni(v: u32) -> Vni {
        Vni::new(v).unwrap()
    }

    #[test]
    fn documented_warden_example_parses_to_expected_values() {
        let c = parse_warden(doc_block(0), "doc").unwrap();
        let expected = WardenConfig {
            instance: Instance {
                name: "gw".into(),
                control_socket: PathBuf::from("/run/warden/gw.sock"),
                metrics: None,
            },
            underlay: Underlay {
                port: 0,
                address: cidr("10.0.0.1/24"),
                gateway: Some(ip("10.0.0.254")),
                udp_port: 4789,
                mtu: 1500,
            },
            ports: vec![
                PortConfig {
                    name: "uplink".into(),
                    backend: Backend::AfPacket,
                    interface: "eth0".into(),
                    netns: None,
                    access_vni: None,
                },
                PortConfig {
                    name: "web".into(),
                    backend: Backend::Tap,
                    interface: "wl0".into(),
                    netns: Some("w1".into()),
                    access_vni: Some(vni(300)),
                },
            ],
            peers: vec![
                PeerConfig {
                    name: Some("node-a1".into()),
                    address: ip("10.0.0.11"),
                    vnis: vec![vni(100)],
                    kind: PeerKind::Vtep { gbp: vec![] },
                },
                PeerConfig {
                    name: None,
                    address: ip("10.9.0.12"),
                    vnis: vec![vni(200)],
                    kind: PeerKind::Vtep { gbp: vec![] },
                },
            ],
            vnis: vec![
                VniConfig {
                    id: vni(100),
                    name: Some("cluster-a".into()),
                    gateway: Some(cidr("10.1.0.1/24")),
                    gateway_mac: mac("02:00:00:00:01:01"),
                    mac_aging_secs: 300,
                },
                VniConfig {
                    id: vni(200),
                    name: None,
                    gateway: Some(cidr("10.2.0.1/24")),
                    gateway_mac: mac("02:77:64:00:00:c8"),
                    mac_aging_secs: 300,
                },
                VniConfig {
                    id: vni(300),
                    name: None,
                    gateway: Some(cidr("10.3.0.1/24")),
                    gateway_mac: mac("02:77:64:00:01:2c"),
                    mac_aging_secs: 300,
                },
            ],
            fdb: vec![
                FdbEntry {
                    vni: vni(100),
                    mac: mac("02:00:00:00:00:11"),
                    target: FdbTarget::Peer(ip("10.0.0.11")),
                },
                FdbEntry {
                    vni: vni(300),
                    mac: mac("02:00:00:00:03:10"),
                    target: FdbTarget::Port(1),
                },
            ],
            neighbors: vec![Neighbor {
                vni: vni(200),
                ip: ip("10.2.0.12"),
                mac: mac("02:00:00:00:00:12"),
            }],
            routes: vec![RouteConfig {
                destination: cidr("10.9.0.0/16"),
                vni: vni(200),
                via: Some(ip("10.2.0.254")),
            }],
            identity: None,
            documents: vec![],
            workloads: vec![],
            identity_maps: vec![],
            policy: None,
            flow_log: None,
        };
        assert_eq!(c, expected);
        assert_eq!(check_text(doc_block(0), "doc"), Ok(FileKind::Warden));
        // Written back out, it parses to the same config.
        assert_eq!(parse_warden(&c.to_toml(), "out").unwrap(), c);
    }

    /// The policy fragment, in place of the identity example's own policy.
    #[test]
    fn documented_policy_example_parses_and_round_trips() {
        let identity = doc_block(1);
        let identity = identity
            .find("\n[policy]")
            .map_or(identity, |i| &identity[..=i]);
        let text = format!("{identity}{}", doc_block(3));
        let c = parse_warden(&text, "doc").unwrap_or_else(|e| panic!("{e}"));
        let p = c.policy.as_ref().expect("policy");
        let names: Vec<&str> = p.sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["exceptions", "payments"]);
        assert_eq!(p.rule_count(), 2);
        assert_eq!(p.sets[1].rules[0].from.len(), 5);
        assert_eq!(parse_warden(&c.to_toml(), "out").unwrap(), c);
    }

    #[test]
    fn documented_identity_example_parses_to_expected_values() {
        let c = parse_warden(doc_block(1), "doc").unwrap();
        assert_eq!(
            c.identity,
            Some(IdentityConfig {
                warden_id: "node-1".into(),
                secret_file: Some("/etc/warden/pair.key".into()),
                epoch_secs: 3600,
                grace_secs: 300,
                window_secs: 30,
                restamp_secs: 5,
            })
        );
        let names: Vec<&str> = c.documents.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "spiffe://lab/ns/payments/sa/api",
                "spiffe://lab/ns/payments/sa/db",
                "spiffe://lab/ns/legacy/sa/batch"
            ]
        );
        let api = &c.documents[0];
        assert_eq!(api.labels.get("tier").map(String::as_str), Some("web"));
        assert_eq!(api.host_id.as_deref(), Some("node-1"));
        assert_eq!(
            api.exe_sha256.map(|h| identity::doc::hex(&h)).as_deref(),
            Some("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
        );
        assert_eq!(
            c.peers[0].kind,
            PeerKind::Warden {
                warden_id: "node-2".into(),
                secret_file: Some("/etc/warden/n1-n2.key".into()),
                identities: vec![1],
            }
        );
        assert_eq!(
            c.peers[1].kind,
            PeerKind::Vtep {
                gbp: vec![(100, 2)]
            }
        );
        assert_eq!(
            c.workloads,
            vec![Workload {
                port: 1,
                mac: mac("02:00:00:00:01:21"),
                ip: ip("10.1.0.21"),
                identity: 0,
            }]
        );
        assert_eq!(
            c.identity_maps,
            vec![IdentityMap {
                peer: ip("10.0.0.11"),
                cidr: cidr("10.1.0.128/25"),
                identity: 2,
            }]
        );
        assert_eq!(
            c.policy,
            Some(::policy::PolicySpec {
                default_mode: ::policy::Mode::Enforce,
                default_action: ::policy::DenyAction::Deny,
                sets: vec![::policy::SetSpec {
                    name: "payments".into(),
                    mode: ::policy::Mode::Enforce,
                    rules: vec![::policy::RuleSpec {
                        from: vec![
                            ::policy::Selector::Identity("spiffe://lab/ns/payments/sa/api".into()),
                            ::policy::Selector::Unauthenticated,
                        ],
                        to: vec![::policy::Selector::Identity(
                            "spiffe://lab/ns/payments/sa/db".into()
                        )],
                        proto: ::policy::Proto::Any,
                        ports: vec![],
                        action: ::policy::Action::Allow,
                        app: None,
                        l7: None,
                    }],
                }],
            })
        );
        assert_eq!(check_text(doc_block(1), "doc"), Ok(FileKind::Warden));
        assert_eq!(parse_warden(&c.to_toml(), "out").unwrap(), c);
    }

    #[test]
    fn documented_lab_example_parses_to_expected_values() {
        let lab = parse_lab(doc_block(2), "doc").unwrap();
        assert_eq!(lab.name, "gateway");
        assert!(lab.description.is_some());
        assert_eq!(
            lab.switches,
            vec![Switch {
                name: "underlay".into()
            }]
        );
        let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a1", "b1", "w1", "gw"]);
        let a1 = lab.host("a1").unwrap();
        assert_eq!(
            a1.interfaces,
            vec![HostInterface {
                name: "eth0".into(),
                link: Link::Switch("underlay".into()),
                address: Some(cidr("10.0.0.11/24")),
                mtu: Some(1500),
                mac: Some(mac("02:00:00:00:aa:01")),
            }]
        );
        assert_eq!(
            a1.vxlans,
            vec![HostVxlan {
                name: "vx100".into(),
                vni: vni(100),
                local: ip("10.0.0.11"),
                remote: ip("10.0.0.1"),
                device: "eth0".into(),
                address: Some(cidr("10.1.0.11/24")),
                port: 4789,
                gbp: false,
                mac: Some(mac("02:00:00:00:01:11")),
            }]
        );
        assert_eq!(
            a1.routes,
            vec![HostRoute {
                destination: cidr("0.0.0.0/0"),
                via: ip("10.1.0.1"),
            }]
        );
        let w1 = lab.host("w1").unwrap();
        assert_eq!(
            w1.taps,
            vec![HostTap {
                name: "wl0".into(),
                address: Some(cidr("10.3.0.10/24")),
                mtu: Some(1450),
                mac: Some(mac("02:00:00:00:03:10")),
            }]
        );
        let gw = lab.warden("gw").unwrap();
        assert_eq!(gw.host, "gw");
        // In a lab the instance name defaults to the [[warden]] name.
        assert_eq!(gw.config.instance.name, "gw");
        assert_eq!(
            gw.config.instance.control_socket,
            PathBuf::from("/run/warden/gw.sock")
        );
        assert_eq!(gw.config.ports.len(), 2);
        assert_eq!(gw.config.ports[1].netns.as_deref(), Some("w1"));
        assert_eq!(gw.config.vnis.len(), 3);
        // The testbed substitutes the namespace and hands the config on.
        let mut adjusted = gw.config.clone();
        adjusted.ports[1].netns = Some("lab-1234-w1".into());
        adjusted.instance.name = "a \"quoted\"\nname".into();
        let text = adjusted.to_toml();
        let e = parse_warden(&text, "out").unwrap_err();
        assert!(
            matches!(
                *e.kind,
                ErrorKind::InvalidName {
                    what: "instance name",
                    ..
                }
            ),
            "{e}"
        );
        adjusted.instance.name = "gw".into();
        assert_eq!(parse_warden(&adjusted.to_toml(), "out").unwrap(), adjusted);
        assert_eq!(
            lab.checks,
            vec![
                Check::Ping {
                    name: Some("ping A -> B".into()),
                    from: "a1".into(),
                    to: ip("10.2.0.12"),
                    count: 3,
                },
                Check::Tcp {
                    name: None,
                    from: "a1".into(),
                    to: "b1".into(),
                    address: ip("10.2.0.12"),
                    port: 5001,
                    bytes: 10_485_760,
                },
                Check::Udp {
                    name: None,
                    from: "a1".into(),
                    to: "b1".into(),
                    address: ip("10.2.0.12"),
                    port: 5001,
                    count: 100,
                    size: 1000,
                },
                Check::Command {
                    name: None,
                    host: "w1".into(),
                    run: "ping -c 1 -W 2 10.1.0.11".into(),
                    expect_status: 0,
                    timeout_secs: 30,
                },
                Check::Stats {
                    name: None,
                    warden: "gw".into(),
                    expect: vec![
                        StatExpect {
                            path: "vni.100.rx_decap_packets".into(),
                            op: CompareOp::Ge,
                            value: 10,
                        },
                        StatExpect {
                            path: "drops.not_a_peer".into(),
                            op: CompareOp::Eq,
                            value: 0,
                        },
                    ],
                },
            ]
        );
        assert_eq!(lab.checks[0].label(), "ping A -> B");
        assert_eq!(lab.checks[1].label(), "tcp a1 -> 10.2.0.12:5001");
        assert_eq!(check_text(doc_block(2), "doc"), Ok(FileKind::Lab));
    }

    /// A per-run scratch directory, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("warden-config-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn files_are_loaded_and_their_kind_detected() {
        let dir = TempDir::new("files");
        let w = dir.0.join("gw.toml");
        let l = dir.0.join("lab.toml");
        std::fs::write(&w, doc_block(0)).unwrap();
        std::fs::write(&l, doc_block(2)).unwrap();
        assert_eq!(check_file(&w), Ok(FileKind::Warden));
        assert_eq!(check_file(&l), Ok(FileKind::Lab));
        assert_eq!(load_warden(&w).unwrap().instance.name, "gw");
        assert_eq!(load_lab(&l).unwrap().name, "gateway");
        // A file of the other kind says what it is and which command
        // takes it.
        let e = load_warden(&l).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:1:1: this is a lab topology", l.display()))
                && e.contains("warden-lab up|run"),
            "{e}"
        );
        let e = load_lab(&w).unwrap_err().to_string();
        assert!(
            e.contains("this is a warden instance config") && e.contains("warden run -c"),
            "{e}"
        );
        // A duplicate key is named.
        let e = parse_warden("[instance]\nname = \"a\"\nname = \"b\"\n", "d.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.toml:3:1: duplicate key `name`: it is already set in this table"
        );

        let missing = dir.0.join("missing.toml");
        let e = check_file(&missing).unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(matches!(*e.kind, ErrorKind::Read(_)));
        assert!(e
            .to_string()
            .starts_with(&format!("{}:1:1: cannot read file: ", missing.display())));
    }

    #[test]
    fn check_text_reports_syntax_errors_with_position() {
        assert_eq!(
            check_text("[lab\nname = 1\n", "x.toml")
                .unwrap_err()
                .to_string(),
            "x.toml:1:5: unclosed table, expected `]`"
        );
    }

    proptest! {
        /// Whatever the input, an error is exactly one line.
        #[test]
        fn errors_are_one_line_for_any_text(text in "\\PC{0,200}|[\\[\\]=\"a-z0-9 .:/\n]{0,200}") {
            let errors = [
                check_text(&text, "p.toml").err(),
                parse_warden(&text, "p.toml").err(),
                parse_lab(&text, "p.toml").err(),
            ];
            for e in errors.into_iter().flatten() {
                let s = e.to_string();
                prop_assert!(!s.contains('\n') && !s.contains('\r'), "{s:?}");
                prop_assert!(s.starts_with("p.toml:"));
            }
        }

        /// Mutations of the valid examples: still one-line errors, and the
        /// reported line exists in the text.
        #[test]
        fn errors_are_one_line_for_mutated_examples(
            which in 0usize..3,
            at in any::<prop::sample::Index>(),
            cut in 0usize..40,
            insert in "[\\[\\]=\"a-z0-9 .:/\n\t\u{e9}]{0,8}",
        ) {
            let base = doc_block(which);
            let mut pos = at.index(base.len());
            while !base.is_char_boundary(pos) { pos -= 1; }
            let mut end = (pos + cut).min(base.len());
            while !base.is_char_boundary(end) { end -= 1; }
            let text = format!("{}{}{}", &base[..pos], insert, &base[end..]);
            if let Err(e) = check_text(&text, "m.toml") {
                let s = e.to_string();
                prop_assert!(!s.contains('\n'), "{s:?}");
                prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{s}");
                prop_assert!(e.column >= 1);
            }
        }
    }
}
