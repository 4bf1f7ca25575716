//! warden's configuration files: the instance config and the lab topology.
//!
//! Each file is read in two steps. Serde DTOs that mirror the TOML and deny
//! unknown fields catch syntax, types and single values (a VNI out of range,
//! a MAC or CIDR that does not parse); a validating builder then checks what
//! needs the whole file (references, uniqueness, subnets) and produces the
//! runtime types the engine and the testbed use. Every error is one line,
//! `FILE:LINE:COLUMN: message`, pointing at the offending value.
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

mod error;
mod lab;
mod value;
mod warden;

use std::path::Path;

pub use error::{ConfigError, ErrorKind};
pub use lab::{
    Check, CompareOp, Host, HostInterface, HostRoute, HostTap, HostVxlan, Lab, LabWarden, Link,
    StatExpect, StatExpectError, Switch, DEFAULT_COMMAND_TIMEOUT_SECS, DEFAULT_PING_COUNT,
    DEFAULT_TCP_PORT, MIN_IF_MTU,
};
pub use value::IFNAME_MAX;
pub use warden::{
    default_control_socket, default_gateway_mac, Backend, FdbEntry, FdbTarget, Instance, Neighbor,
    PeerConfig, PortConfig, RouteConfig, Underlay, VniConfig, WardenConfig, DEFAULT_INSTANCE_NAME,
    DEFAULT_MAC_AGING_SECS, DEFAULT_MTU, DEFAULT_UDP_PORT, MAX_MTU, MIN_MTU,
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
    let dto: warden::WardenDto =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(origin, text, &e))?;
    warden::build(dto, text, DEFAULT_INSTANCE_NAME)
        .map_err(|e| ConfigError::at(origin, text, e.span, e.kind))
}

/// Parse and validate a lab topology; `origin` names the text in errors.
pub fn parse_lab(text: &str, origin: &str) -> Result<Lab, ConfigError> {
    let dto: lab::LabDto =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(origin, text, &e))?;
    lab::build(dto, text).map_err(|e| ConfigError::at(origin, text, e.span, e.kind))
}

/// Read and validate a warden instance config file.
pub fn load_warden(path: &Path) -> Result<WardenConfig, ConfigError> {
    let (text, origin) = read(path)?;
    parse_warden(&text, &origin)
}

/// Read and validate a lab topology file.
pub fn load_lab(path: &Path) -> Result<Lab, ConfigError> {
    let (text, origin) = read(path)?;
    parse_lab(&text, &origin)
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
