//! Configuration errors: one line each, `FILE:LINE:COLUMN: message`.
//!
//! Validation works on byte spans of the source text (from `serde_spanned`);
//! the span becomes a 1-based line and column only when the error leaves the
//! crate, so the validators never need to count lines themselves.

use core::fmt;
use core::ops::Range;
use std::net::Ipv4Addr;

use identity::IdentityId;
use overlay::{Ipv4Cidr, MacAddr, Vni};

/// A configuration file that failed to load, parse or validate.
///
/// `Display` is always a single line: `origin:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or other origin label) the text came from.
    pub origin: String,
    /// 1-based line of the offending text (1 when there is no position).
    pub line: usize,
    /// 1-based column, counted in characters (1 when there is no position).
    pub column: usize,
    /// What is wrong (boxed: the variants carry values and would make every
    /// `Result` large).
    pub kind: Box<ErrorKind>,
}

impl ConfigError {
    /// Locate `span` (byte offsets into `text`) and attach `kind`.
    pub(crate) fn at(origin: &str, text: &str, span: Range<usize>, kind: ErrorKind) -> Self {
        let (line, column) = line_column(text, span.start);
        ConfigError {
            origin: origin.to_owned(),
            line,
            column,
            kind: Box::new(kind),
        }
    }

    /// An error without a position in the text (reported at 1:1).
    pub(crate) fn whole_file(origin: &str, kind: ErrorKind) -> Self {
        ConfigError {
            origin: origin.to_owned(),
            line: 1,
            column: 1,
            kind: Box::new(kind),
        }
    }

    /// Turn a `toml` parse or deserialize error into a one-line error,
    /// keeping toml's message and dropping its multi-line snippet.
    pub(crate) fn from_toml(origin: &str, text: &str, e: &toml::de::Error) -> Self {
        let message = e.message().trim();
        // toml says "duplicate key" without the key: name it from the span.
        let message = match (message, e.span().and_then(|s| text.get(s))) {
            ("duplicate key", Some(key)) => {
                let key = key.trim().trim_matches(['[', ']']).trim();
                let header = text
                    .get(..e.span().map_or(0, |s| s.start))
                    .and_then(|b| b.rsplit('\n').next())
                    .is_some_and(|line| line.trim_start().starts_with('['));
                if header {
                    format!("duplicate key `{key}`: table [{key}] is declared twice (for several, write [[{key}]])")
                } else {
                    format!("duplicate key `{key}`: it is already set in this table")
                }
            }
            (m, _) => m.to_owned(),
        };
        let kind = ErrorKind::Parse(message);
        match e.span() {
            Some(span) => Self::at(origin, text, span, kind),
            None => Self::whole_file(origin, kind),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters (a newline inside a file name or a quoted user
        // value) would break the one-line contract; write them escaped.
        let text = format!(
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.kind
        );
        for c in text.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and character column of byte offset `at` in `text`.
pub(crate) fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or("");
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = 1 + before.get(line_start..).map_or(0, |s| s.chars().count());
    (line, column)
}

/// 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    line_column(text, at).0
}

/// What is wrong with a configuration; the `Display` text is the message
/// part of [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Read(String),
    /// TOML syntax, an unknown or missing field, a wrong type, or a value
    /// (VNI, MAC, CIDR, address, name) that does not parse; the message is
    /// the parser's.
    #[error("{0}")]
    Parse(String),
    /// A file of the other schema: a lab where an instance config is
    /// expected, or back.
    #[error("{0}")]
    WrongFileKind(String),
    /// A value that must be unique appears twice.
    #[error("duplicate {what} {value} (first declared at line {first_line})")]
    Duplicate {
        what: &'static str,
        value: String,
        first_line: usize,
    },
    /// A name refers to something that is not declared.
    #[error("unknown {what} `{name}`, expected {expected}")]
    UnknownReference {
        what: &'static str,
        name: String,
        expected: String,
    },
    /// A VNI is used but has no `[[vni]]` table.
    #[error("{context} VNI {vni} is not declared, expected a [[vni]] with id = {vni}")]
    UndeclaredVni { context: &'static str, vni: Vni },
    /// The underlay must not be an access port.
    #[error(
        "underlay port `{port}` is an access port of VNI {vni}, expected a port without `vni`"
    )]
    UnderlayPortIsAccess { port: String, vni: Vni },
    /// A port that is neither the underlay nor an access port has no role.
    #[error("port `{port}` has no `vni` and is not the underlay port, expected `vni = <id>` on every port except underlay.port")]
    PortWithoutRole { port: String },
    /// A static FDB entry must name exactly one target.
    #[error("fdb entry has {found}, expected exactly one of `peer` or `port`")]
    FdbTarget { found: &'static str },
    /// A static FDB entry points at a peer that does not carry its VNI.
    #[error("peer {peer} does not carry VNI {vni}, expected {vni} in that peer's `vnis`")]
    PeerNotInVni { peer: Ipv4Addr, vni: Vni },
    /// A static FDB entry points at a port that is not an access port of its VNI.
    #[error(
        "port `{port}` is not an access port of VNI {vni}, expected a port with `vni = {vni}`"
    )]
    PortNotInVni { port: String, vni: Vni },
    /// L3 use of a VNI (route, neighbor) without `gateway`.
    #[error("{context} VNI {vni} has no gateway, expected `gateway = \"ADDRESS/PREFIX\"` on [[vni]] id = {vni}")]
    VniWithoutGateway { context: &'static str, vni: Vni },
    /// An address that must lie inside a subnet does not.
    #[error("{what} {address} is outside {subnet}, expected an address inside it")]
    OutsideSubnet {
        what: &'static str,
        address: Ipv4Addr,
        subnet: Ipv4Cidr,
    },
    /// Two VNI gateway subnets overlap, so an inner route would be ambiguous.
    #[error("gateway subnet {subnet} of VNI {vni} overlaps {other_subnet} of VNI {other_vni} (declared at line {other_line})")]
    OverlappingSubnets {
        vni: Vni,
        subnet: Ipv4Cidr,
        other_vni: Vni,
        other_subnet: Ipv4Cidr,
        other_line: usize,
    },
    /// An interface address is its subnet's network or broadcast address.
    #[error(
        "{what} {cidr} is the network or broadcast address of its subnet, expected a host address"
    )]
    NotHostAddress { what: &'static str, cidr: Ipv4Cidr },
    /// An address that must differ from another is equal to it.
    #[error("{what} {address} is the same as {other}")]
    SameAddress {
        what: &'static str,
        address: Ipv4Addr,
        other: &'static str,
    },
    /// A peer outside the underlay subnet with no router to reach it.
    #[error("peer {peer} is outside the underlay subnet {subnet} and underlay.gateway is not set, expected a peer inside the subnet or a gateway")]
    PeerUnreachable { peer: Ipv4Addr, subnet: Ipv4Cidr },
    /// A MAC address that must be unicast is a group or zero address.
    #[error(
        "{what} {mac} is not a unicast address, expected a non-zero MAC with the group bit clear"
    )]
    NotUnicastMac { what: &'static str, mac: MacAddr },
    /// An address that must be a unicast host address is not.
    #[error("{what} {address} is not a unicast address, expected a host address")]
    NotUnicastIp {
        what: &'static str,
        address: Ipv4Addr,
    },
    /// An integer outside its allowed range.
    #[error("{what} {value} is out of range, expected {min}..={max}")]
    OutOfRange {
        what: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// A name with characters or a length that its use does not allow.
    #[error("invalid {what} `{name}`, expected {expected}")]
    InvalidName {
        what: &'static str,
        name: String,
        expected: &'static str,
    },
    /// A lab interface must name exactly one of `switch` or `peer`.
    #[error("interface `{interface}` has {found}, expected exactly one of `switch` or `peer`")]
    LinkTarget {
        interface: String,
        found: &'static str,
    },
    /// A veth peer link that is not declared on both ends.
    #[error("interface `{host}:{interface}` links to `{peer}`, but `{peer}` {problem}")]
    PeerLink {
        host: String,
        interface: String,
        peer: String,
        problem: String,
    },
    /// A field that the kind of check does not use.
    #[error("field `{field}` does not apply to a `{kind}` check, expected only {expected}")]
    FieldNotForCheck {
        field: &'static str,
        kind: &'static str,
        expected: &'static str,
    },
    /// A field that the kind of check needs.
    #[error("`{kind}` check is missing field `{field}`")]
    MissingCheckField {
        field: &'static str,
        kind: &'static str,
    },
    /// A stats expectation that does not parse.
    #[error("invalid stats expectation `{text}`, expected `PATH OP VALUE` such as `drops.not_a_peer == 0` (OP one of == != < <= > >=)")]
    StatExpect { text: String },
    /// A TAP port whose namespace names a lab host without that TAP.
    #[error("port `{port}` attaches to TAP `{interface}` in host `{host}`, but that host declares no [[host.tap]] named `{interface}` (warden attaches to an existing TAP; it never creates one)")]
    TapNotDeclared {
        port: String,
        interface: String,
        host: String,
    },
    /// An AF_PACKET port on an interface its lab host does not have.
    #[error("port `{port}` uses interface `{interface}`, but host `{host}` declares no interface, vxlan or tap of that name")]
    InterfaceNotInHost {
        port: String,
        interface: String,
        host: String,
    },
    /// Two identity documents with the same 32-bit id: the header and the
    /// policy could not tell them apart.
    #[error("identity `{name}` has id {id}, the same as identity `{other}` (declared at line {other_line}), expected distinct ids: change a label of one of them")]
    IdCollision {
        name: String,
        other: String,
        id: IdentityId,
        other_line: usize,
    },
    /// An identity document whose name, labels or host id cannot be used.
    #[error("invalid identity document `{name}`: {problem}")]
    InvalidDocument { name: String, problem: String },
    /// Two warden names whose 32-bit warden ids (what keys derive from)
    /// are equal.
    #[error("warden_id `{name}` has numeric id {id:08x}, the same as warden_id `{other}` (declared at line {other_line}), expected distinct ids: rename one of them")]
    WardenIdCollision {
        name: String,
        other: String,
        id: u32,
        other_line: usize,
    },
    /// With identity enabled, every access port must say who sits on it.
    #[error("unbound workload: access port `{port}` has no [[workload]], expected a [[workload]] with port = \"{port}\" (with [identity] set, every access port is bound to an identity)")]
    UnboundWorkload { port: String },
    /// A port reference that must name an access port names the underlay.
    #[error("{what} `{port}` is not an access port, expected a port with `vni`")]
    NotAccessPort { what: &'static str, port: String },
    /// A peer field that only the other kind of peer takes.
    #[error("field `{field}` does not apply to a `{kind}` peer, expected it only with kind = \"{other}\"")]
    FieldNotForPeer {
        field: &'static str,
        kind: &'static str,
        other: &'static str,
    },
    /// A warden peer without `warden_id`.
    #[error(
        "warden peer {peer} is missing field `warden_id`, expected the peer's [identity] warden_id"
    )]
    MissingWardenId { peer: Ipv4Addr },
    /// A warden peer with no secret: no keys could be derived for it.
    #[error("warden peer {peer} has no secret, expected `secret_file` on the peer or a default `secret_file` in [identity]")]
    NoSecret { peer: Ipv4Addr },
    /// Identity settings in a file without an `[identity]` table.
    #[error("{what} needs identity enabled, expected an [identity] table with `warden_id`")]
    NeedsIdentity { what: &'static str },
    /// `[[allow]]`, the minimal allow hook that `[policy]` replaced.
    /// `prefix` is where the warden config sits (`warden.config.` in a lab).
    #[error("`[[{prefix}allow]]` was replaced by `[{prefix}policy]`: write `[[{prefix}policy.set.rule]] from = [<sources>] to = [\"<destination>\"] action = \"allow\"`, and a rule on the sources' own wardens too (they decide their workloads' flows out); see docs/config-schema.md")]
    AllowReplaced { prefix: &'static str },
    /// A value that must be smaller than another is not.
    #[error("{what} {value} is not less than {other} {other_value}, expected {what} < {other}")]
    NotLess {
        what: &'static str,
        value: u64,
        other: &'static str,
        other_value: u64,
    },
    /// A policy glob that no identity name could match.
    #[error("invalid policy glob {glob:?}: {problem}, expected name characters with `*` (any run, `/` included) and `?` (one character)")]
    PolicyGlob { glob: String, problem: &'static str },
    /// A glob or labels selector that matches no declared document: a
    /// rule that would silently never apply.
    #[error("policy selector {selector} matches no [[identity.document]], expected a selector that matches at least one declared document")]
    PolicySelectorUnmatched { selector: String },
    /// A port range whose low end is above its high end.
    #[error("port range {lo}-{hi} is inverted, expected LO <= HI")]
    InvertedPortRange { lo: u16, hi: u16 },
    /// Ports on a rule whose protocol has none.
    #[error(
        "ports do not apply to proto = \"{proto}\", expected proto = \"tcp\" or \"udp\" with ports"
    )]
    PortsWithoutPortProto { proto: &'static str },
    /// A policy rule that can never decide a flow.
    #[error("policy rule can never match: every flow it matches is decided first by {by}, expected it placed before them or removed")]
    PolicyShadowed { by: String },
    /// A policy whose compiled form would exceed a bound.
    #[error("{0}")]
    PolicyTooLarge(String),
    /// A rule's `app` or L7 clause (`http`, `tls`, `dns`) that is wrong:
    /// the whole message, with what was expected.
    #[error("{0}")]
    PolicyL7(String),
    /// An FQDN selector that is wrong (on a source, a bad pattern, too many).
    #[error("{0}")]
    PolicyFqdn(String),
    /// A VXLAN device whose `local` is not its underlay device's address.
    #[error("vxlan `{vxlan}` has local = {local}, but its device `{device}` has address {address}, expected local = {expected}")]
    VxlanLocal {
        vxlan: String,
        local: Ipv4Addr,
        device: String,
        address: Ipv4Cidr,
        expected: Ipv4Addr,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_in_chars() {
        let text = "ab\ncdé\nfg";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (1, 3));
        assert_eq!(line_column(text, 3), (2, 1));
        // 'é' is two bytes: the byte after it is column 4, not 5.
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 8), (3, 1));
        // Past the end and inside a multi-byte char stay in range.
        assert_eq!(line_column(text, 1000), (3, 3));
        assert_eq!(line_column(text, 6), (2, 3));
        assert_eq!(line_column("", 5), (1, 1));
    }

    #[test]
    fn display_is_one_line_even_with_control_characters() {
        let e = ConfigError {
            origin: "a\nb.toml".into(),
            line: 2,
            column: 3,
            kind: Box::new(ErrorKind::Parse("bad\nvalue\r".into())),
        };
        let s = e.to_string();
        assert_eq!(s, "a\\nb.toml:2:3: bad\\nvalue\\r");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn whole_file_errors_are_at_one_one() {
        let e = ConfigError::whole_file("x.toml", ErrorKind::Read("gone".into()));
        assert_eq!(e.to_string(), "x.toml:1:1: cannot read file: gone");
    }
}
