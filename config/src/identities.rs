//! The identity parts of the warden instance config: `[identity]` with its
//! documents, the workloads bound to them, the weaker identity sources
//! (VXLAN-GBP groups of trusted VTEP peers, address maps). What may talk
//! to what is `[policy]` (see `policy`).
//!
//! Everything here is optional so that configs without identity stay
//! valid; `[identity]` switches it on, and from then on every access port
//! must be bound to a workload, because a port whose workload nobody vouches
//! for would silently send unauthenticated traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use identity::{IdentityDoc, IdentityId, WardenId};
use overlay::{Ipv4Cidr, MacAddr};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::{line_of, ErrorKind};
use crate::validate::{invalid, one_of, quote, Invalid, Seen};
use crate::value::{is_simple_name, CidrValue, Ipv4Value, MacValue, Sha256Value, SIMPLE_NAME};

/// Default key epoch length.
pub const DEFAULT_EPOCH_SECS: u32 = 3600;
/// Shortest accepted epoch: shorter ones would rotate keys faster than
/// clocks between hosts can be trusted to agree.
pub const MIN_EPOCH_SECS: u32 = 60;
/// Default time the previous epoch's key stays valid after a rotation.
pub const DEFAULT_GRACE_SECS: u32 = 300;
/// Default timestamp window of the identity header.
pub const DEFAULT_WINDOW_SECS: u32 = 30;
/// Default re-stamp period of a flow toward a warden peer.
pub const DEFAULT_RESTAMP_SECS: u32 = 5;
/// The name policy uses for "no identity"; no document may take it.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// Longest document name, label key or value, or host id, in bytes.
pub const MAX_IDENTITY_TEXT: usize = 255;

// ---------------------------------------------------------------------------
// Runtime types
// ---------------------------------------------------------------------------

/// `[identity]`: who this warden is among wardens and how keys rotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// This warden's name among wardens (its numeric id is
    /// `identity::warden_id_of` of it).
    pub warden_id: String,
    /// Default pair secret for warden peers without their own. Only named
    /// here: the file is read (and its length checked) at run time.
    pub secret_file: Option<PathBuf>,
    pub epoch_secs: u32,
    /// Below `epoch_secs`.
    pub grace_secs: u32,
    pub window_secs: u32,
    pub restamp_secs: u32,
}

/// A local workload: who sits behind (port, MAC, IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Index into `WardenConfig::ports`; always an access port.
    pub port: usize,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Index into `WardenConfig::documents`.
    pub identity: usize,
}

/// What kind of node a peer VTEP is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerKind {
    /// A plain VXLAN endpoint (a Linux kernel VTEP): never stamped toward.
    Vtep {
        /// Trusted VXLAN-GBP group ids of this peer and the identity
        /// (index into `WardenConfig::documents`) each stands for.
        gbp: Vec<(u16, usize)>,
    },
    /// Another warden: flows are stamped and verified with the pair's keys.
    Warden {
        /// The peer's `[identity] warden_id`.
        warden_id: String,
        /// Pair secret; `None` means `[identity] secret_file`.
        secret_file: Option<PathBuf>,
        /// Identities (indexes into `WardenConfig::documents`) the peer
        /// may assert; any other is dropped even with a valid tag.
        identities: Vec<usize>,
    },
}

/// The weakest identity source: traffic from `peer` whose inner source lies
/// in `cidr` is taken to be `identity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityMap {
    pub peer: Ipv4Addr,
    /// In network form (host bits cleared).
    pub cidr: Ipv4Cidr,
    /// Index into `WardenConfig::documents`.
    pub identity: usize,
}

/// Which part of a document a problem is in (to point at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Name,
    Labels,
    HostId,
}

/// Why `doc` cannot be declared, or `None`: the rules `[[identity.document]]`
/// applies, shared with `warden identity attest` so that what it prints
/// always checks clean.
pub fn document_problem(doc: &IdentityDoc) -> Option<String> {
    doc_problem(doc).map(|(_, p)| p)
}

fn doc_problem(doc: &IdentityDoc) -> Option<(Part, String)> {
    const EXPECTED: &str = "expected 1 to 255 bytes without control characters";
    let text_problem = |what: &str, s: &str| -> Option<String> {
        if s.is_empty() {
            Some(format!("{what} is empty, {EXPECTED}"))
        } else if s.len() > MAX_IDENTITY_TEXT {
            Some(format!("{what} is longer than 255 bytes, {EXPECTED}"))
        } else if s.chars().any(char::is_control) {
            Some(format!("{what} contains a control character, {EXPECTED}"))
        } else {
            None
        }
    };
    if doc.name == UNAUTHENTICATED {
        return Some((
            Part::Name,
            format!("the name `{UNAUTHENTICATED}` is reserved for flows without identity, expected another name"),
        ));
    }
    if let Some(p) = text_problem("the name", &doc.name) {
        return Some((Part::Name, p));
    }
    for (k, v) in &doc.labels {
        if let Some(p) = text_problem("a label key", k) {
            return Some((Part::Labels, p));
        }
        // An empty value is a fine label; only length and control
        // characters matter.
        if !v.is_empty() {
            if let Some(p) = text_problem(&format!("the value of label `{k}`"), v) {
                return Some((Part::Labels, p));
            }
        }
    }
    doc.host_id
        .as_deref()
        .and_then(|h| text_problem("host_id", h))
        .map(|p| (Part::HostId, p))
}

/// `doc` as a `[[identity.document]]` table (ending in a newline), the form
/// `warden identity attest` prints and `WardenConfig::to_toml` writes.
pub fn document_toml(doc: &IdentityDoc) -> String {
    let mut out = String::from("[[identity.document]]\n");
    // Writing to a String cannot fail; the results are ignored.
    let _ = writeln!(out, "name = {}", quote(&doc.name));
    if !doc.labels.is_empty() {
        let pairs: Vec<String> = doc
            .labels
            .iter()
            .map(|(k, v)| format!("{} = {}", key(k), quote(v)))
            .collect();
        let _ = writeln!(out, "labels = {{ {} }}", pairs.join(", "));
    }
    if let Some(h) = &doc.exe_sha256 {
        let _ = writeln!(out, "exe_sha256 = \"{}\"", identity::doc::hex(h));
    }
    if let Some(h) = &doc.host_id {
        let _ = writeln!(out, "host_id = {}", quote(h));
    }
    out
}

/// A TOML key: bare when it may be, quoted otherwise.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        quote(k)
    }
}

// ---------------------------------------------------------------------------
// DTOs
// ---------------------------------------------------------------------------

impl IdentityDto {
    /// `[identity] secret_file` with its span (for `warden check`).
    pub(crate) fn secret_file(&self) -> Option<&Spanned<String>> {
        self.secret_file.as_ref()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityDto {
    warden_id: Spanned<String>,
    secret_file: Option<Spanned<String>>,
    epoch_secs: Option<Spanned<u32>>,
    grace_secs: Option<Spanned<u32>>,
    window_secs: Option<Spanned<u32>>,
    restamp_secs: Option<Spanned<u32>>,
    #[serde(default)]
    document: Vec<Spanned<DocumentDto>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentDto {
    name: Spanned<String>,
    labels: Option<Spanned<BTreeMap<String, String>>>,
    exe_sha256: Option<Spanned<Sha256Value>>,
    host_id: Option<Spanned<String>>,
}

/// `kind` of a `[[peer]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PeerKindDto {
    Vtep,
    Warden,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GbpDto {
    group: Spanned<u16>,
    identity: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkloadDto {
    port: Spanned<String>,
    mac: Spanned<MacValue>,
    ip: Spanned<Ipv4Value>,
    identity: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityMapDto {
    peer: Spanned<Ipv4Value>,
    cidr: Spanned<CidrValue>,
    identity: Spanned<String>,
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

/// Resolves identity names against the declared documents.
pub(crate) struct Docs<'a> {
    names: Vec<&'a str>,
}

impl Docs<'_> {
    /// Index of the document `name` refers to.
    fn find(&self, name: &Spanned<String>, what: &'static str) -> Result<usize, Invalid> {
        self.names
            .iter()
            .position(|n| n == name.get_ref())
            .ok_or_else(|| {
                invalid(
                    name.span(),
                    ErrorKind::UnknownReference {
                        what,
                        name: name.get_ref().clone(),
                        expected: one_of("[[identity.document]] names", &self.names),
                    },
                )
            })
    }
}

/// `[identity]` and its documents.
pub(crate) fn build_identity(
    dto: Option<&Spanned<IdentityDto>>,
    text: &str,
) -> Result<(Option<IdentityConfig>, Vec<IdentityDoc>), Invalid> {
    let Some(dto) = dto else {
        return Ok((None, Vec::new()));
    };
    let d = dto.get_ref();
    let warden_id = simple_name(&d.warden_id, "warden_id")?;
    let secret_file = d.secret_file.as_ref().map(secret_path).transpose()?;
    let secs = |v: &Option<Spanned<u32>>, what: &'static str, default: u32, min: u32| match v {
        Some(s) if *s.get_ref() < min => Err(invalid(
            s.span(),
            ErrorKind::OutOfRange {
                what,
                value: u64::from(*s.get_ref()),
                min: u64::from(min),
                max: u64::from(u32::MAX),
            },
        )),
        Some(s) => Ok(*s.get_ref()),
        None => Ok(default),
    };
    let epoch_secs = secs(
        &d.epoch_secs,
        "epoch_secs",
        DEFAULT_EPOCH_SECS,
        MIN_EPOCH_SECS,
    )?;
    let grace_secs = secs(&d.grace_secs, "grace_secs", DEFAULT_GRACE_SECS, 0)?;
    let window_secs = secs(&d.window_secs, "window_secs", DEFAULT_WINDOW_SECS, 1)?;
    let restamp_secs = secs(&d.restamp_secs, "restamp_secs", DEFAULT_RESTAMP_SECS, 1)?;
    if grace_secs >= epoch_secs {
        // Point at whichever of the two the file sets (grace first).
        let span = d
            .grace_secs
            .as_ref()
            .or(d.epoch_secs.as_ref())
            .map_or(dto.span(), Spanned::span);
        return Err(invalid(
            span,
            ErrorKind::NotLess {
                what: "grace_secs",
                value: u64::from(grace_secs),
                other: "epoch_secs",
                other_value: u64::from(epoch_secs),
            },
        ));
    }

    let mut names = Seen::new(text, "identity name");
    // (id, name, where declared), for the collision check.
    let mut ids: Vec<(IdentityId, &str, usize)> = Vec::with_capacity(d.document.len());
    let mut documents: Vec<IdentityDoc> = Vec::with_capacity(d.document.len());
    for doc in &d.document {
        let doc = doc.get_ref();
        let name = doc.name.get_ref();
        names.insert(name.as_str(), doc.name.span(), || format!("`{name}`"))?;
        let built = IdentityDoc {
            name: name.clone(),
            labels: doc
                .labels
                .as_ref()
                .map(|l| l.get_ref().clone())
                .unwrap_or_default(),
            exe_sha256: doc.exe_sha256.as_ref().map(|h| h.get_ref().0),
            host_id: doc.host_id.as_ref().map(|h| h.get_ref().clone()),
        };
        if let Some((part, problem)) = doc_problem(&built) {
            let span = match part {
                Part::Name => Some(doc.name.span()),
                Part::Labels => doc.labels.as_ref().map(Spanned::span),
                Part::HostId => doc.host_id.as_ref().map(Spanned::span),
            };
            return Err(invalid(
                span.unwrap_or_else(|| doc.name.span()),
                ErrorKind::InvalidDocument {
                    name: name.clone(),
                    problem,
                },
            ));
        }
        let id = built.id();
        if let Some((_, other, first)) = ids.iter().find(|(i, _, _)| *i == id) {
            return Err(invalid(
                doc.name.span(),
                ErrorKind::IdCollision {
                    name: name.clone(),
                    other: (*other).to_owned(),
                    id,
                    other_line: line_of(text, *first),
                },
            ));
        }
        ids.push((id, name.as_str(), doc.name.span().start));
        documents.push(built);
    }
    Ok((
        Some(IdentityConfig {
            warden_id,
            secret_file,
            epoch_secs,
            grace_secs,
            window_secs,
            restamp_secs,
        }),
        documents,
    ))
}

/// The declared document names, in order (for "expected one of").
pub(crate) fn docs_names(documents: &[IdentityDoc]) -> Vec<&str> {
    documents.iter().map(|d| d.name.as_str()).collect()
}

/// The name resolver over built documents.
pub(crate) fn docs(documents: &[IdentityDoc]) -> Docs<'_> {
    Docs {
        names: documents.iter().map(|d| d.name.as_str()).collect(),
    }
}

fn simple_name(s: &Spanned<String>, what: &'static str) -> Result<String, Invalid> {
    if is_simple_name(s.get_ref()) {
        Ok(s.get_ref().clone())
    } else {
        Err(invalid(
            s.span(),
            ErrorKind::InvalidName {
                what,
                name: s.get_ref().clone(),
                expected: SIMPLE_NAME,
            },
        ))
    }
}

fn secret_path(s: &Spanned<String>) -> Result<PathBuf, Invalid> {
    if s.get_ref().is_empty() || s.get_ref().contains('\0') {
        Err(invalid(
            s.span(),
            ErrorKind::InvalidName {
                what: "secret_file",
                name: s.get_ref().clone(),
                expected: "a file path such as \"/etc/warden/pair.key\"",
            },
        ))
    } else {
        Ok(PathBuf::from(s.get_ref()))
    }
}

/// The identity fields of one `[[peer]]`, borrowed from its DTO (which
/// the warden config owns).
pub(crate) struct PeerFields<'a> {
    pub kind: Option<&'a Spanned<PeerKindDto>>,
    pub warden_id: Option<&'a Spanned<String>>,
    pub secret_file: Option<&'a Spanned<String>>,
    pub identities: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub gbp: Option<&'a Spanned<Vec<Spanned<GbpDto>>>>,
}

/// The `kind` of peer `p` (at `address`) and its identity fields.
pub(crate) fn peer_kind(
    p: &PeerFields<'_>,
    address: Ipv4Addr,
    identity: Option<&IdentityConfig>,
    docs: &Docs<'_>,
    text: &str,
) -> Result<PeerKind, Invalid> {
    let kind = p.kind.map_or(PeerKindDto::Vtep, |k| *k.get_ref());
    let not_for = |span, field, kind, other| {
        Err(invalid(
            span,
            ErrorKind::FieldNotForPeer { field, kind, other },
        ))
    };
    match kind {
        PeerKindDto::Vtep => {
            if let Some(w) = p.warden_id {
                return not_for(w.span(), "warden_id", "vtep", "warden");
            }
            if let Some(s) = p.secret_file {
                return not_for(s.span(), "secret_file", "vtep", "warden");
            }
            if let Some(i) = p.identities {
                return not_for(i.span(), "identities", "vtep", "warden");
            }
            let mut gbp = Vec::new();
            if let Some(list) = p.gbp {
                if identity.is_none() {
                    return Err(invalid(
                        list.span(),
                        ErrorKind::NeedsIdentity { what: "peer gbp" },
                    ));
                }
                let mut groups = Seen::new(text, "gbp group");
                for g in list.get_ref() {
                    let g = g.get_ref();
                    let group = *g.group.get_ref();
                    if group == 0 {
                        return Err(invalid(
                            g.group.span(),
                            ErrorKind::OutOfRange {
                                what: "gbp group",
                                value: 0,
                                min: 1,
                                max: u64::from(u16::MAX),
                            },
                        ));
                    }
                    groups.insert(group, g.group.span(), || group.to_string())?;
                    gbp.push((group, docs.find(&g.identity, "gbp identity")?));
                }
            }
            Ok(PeerKind::Vtep { gbp })
        }
        PeerKindDto::Warden => {
            let kind_span = p.kind.map_or(0..0, Spanned::span);
            let Some(ours) = identity else {
                return Err(invalid(
                    kind_span,
                    ErrorKind::NeedsIdentity {
                        what: "a warden peer",
                    },
                ));
            };
            if let Some(g) = p.gbp {
                return not_for(g.span(), "gbp", "warden", "vtep");
            }
            let Some(w) = p.warden_id else {
                return Err(invalid(
                    kind_span,
                    ErrorKind::MissingWardenId { peer: address },
                ));
            };
            let warden_id = simple_name(w, "peer warden_id")?;
            let secret_file = p.secret_file.map(secret_path).transpose()?;
            if secret_file.is_none() && ours.secret_file.is_none() {
                return Err(invalid(kind_span, ErrorKind::NoSecret { peer: address }));
            }
            let mut identities = Vec::new();
            if let Some(list) = p.identities {
                let mut seen = Seen::new(text, "identity");
                for name in list.get_ref() {
                    let i = docs.find(name, "peer identity")?;
                    seen.insert(i, name.span(), || {
                        format!("`{}` in peer identities", name.get_ref())
                    })?;
                    identities.push(i);
                }
            }
            Ok(PeerKind::Warden {
                warden_id,
                secret_file,
                identities,
            })
        }
    }
}

/// Warden ids must be unique among this warden and its peers: two peers
/// with one id would share keys, and a peer with ours would be us. Their
/// numeric ids (what keys are derived from) must differ too. `peers` gives
/// each peer's kind and the span of its `warden_id`, in file order.
pub(crate) fn check_warden_ids<'a>(
    identity: Option<&'a Spanned<IdentityDto>>,
    peers: impl IntoIterator<Item = (&'a PeerKind, Option<Range<usize>>)>,
    text: &str,
) -> Result<(), Invalid> {
    let mut seen = Seen::new(text, "warden_id");
    // (numeric id, name, where declared)
    let mut numeric: Vec<(WardenId, &str, usize)> = Vec::new();
    if let Some(i) = identity {
        let w = &i.get_ref().warden_id;
        seen.insert(w.get_ref().as_str(), w.span(), String::new)?;
        numeric.push((
            identity::warden_id_of(w.get_ref()),
            w.get_ref(),
            w.span().start,
        ));
    }
    for (kind, span) in peers {
        if let (PeerKind::Warden { warden_id, .. }, Some(span)) = (kind, span) {
            seen.insert(warden_id.as_str(), span.clone(), || {
                format!("`{warden_id}`")
            })?;
            let id = identity::warden_id_of(warden_id);
            if let Some((_, other, at)) = numeric.iter().find(|(i, _, _)| *i == id) {
                return Err(invalid(
                    span,
                    ErrorKind::WardenIdCollision {
                        name: warden_id.clone(),
                        other: (*other).to_owned(),
                        id: id.0,
                        other_line: line_of(text, *at),
                    },
                ));
            }
            numeric.push((id, warden_id.as_str(), span.start));
        }
    }
    Ok(())
}

/// What [`build_bindings`] needs to know of one `[[port]]`.
pub(crate) struct PortFacts<'a> {
    pub name: &'a str,
    /// Span of its `name` value.
    pub name_span: Range<usize>,
    /// It is an access port (it has a `vni`).
    pub access: bool,
}

/// What [`build_bindings`] looks things up in.
pub(crate) struct Context<'a> {
    pub text: &'a str,
    pub identity: Option<&'a IdentityConfig>,
    pub docs: &'a Docs<'a>,
    /// The ports, by port index.
    pub ports: &'a [PortFacts<'a>],
    /// The `[[peer]]` addresses, in file order.
    pub peer_addresses: &'a [Ipv4Addr],
}

/// What [`build_bindings`] produces: workloads and identity maps.
pub(crate) type Bindings = (Vec<Workload>, Vec<IdentityMap>);

/// `[[workload]]` and `[[identity_map]]`, and the rule that with identity
/// enabled every access port has a workload.
pub(crate) fn build_bindings(
    cx: &Context<'_>,
    workload: &[Spanned<WorkloadDto>],
    identity_map: &[Spanned<IdentityMapDto>],
) -> Result<Bindings, Invalid> {
    if cx.identity.is_none() {
        let first = workload
            .first()
            .map(|w| (w.span(), "[[workload]]"))
            .or_else(|| identity_map.first().map(|m| (m.span(), "[[identity_map]]")));
        if let Some((span, what)) = first {
            return Err(invalid(span, ErrorKind::NeedsIdentity { what }));
        }
        return Ok((Vec::new(), Vec::new()));
    }
    let port_names: Vec<&str> = cx.ports.iter().map(|p| p.name).collect();

    let mut by_mac = Seen::new(cx.text, "workload");
    let mut by_ip = Seen::new(cx.text, "workload ip");
    let mut workloads = Vec::with_capacity(workload.len());
    for w in workload {
        let w = w.get_ref();
        let name = w.port.get_ref();
        let Some(port) = port_names.iter().position(|n| n == name) else {
            return Err(invalid(
                w.port.span(),
                ErrorKind::UnknownReference {
                    what: "workload port",
                    name: name.clone(),
                    expected: one_of("[[port]] names", &port_names),
                },
            ));
        };
        if !cx.ports.get(port).is_some_and(|p| p.access) {
            return Err(invalid(
                w.port.span(),
                ErrorKind::NotAccessPort {
                    what: "workload port",
                    port: name.clone(),
                },
            ));
        }
        let mac = w.mac.get_ref().0;
        if !mac.is_unicast() {
            return Err(invalid(
                w.mac.span(),
                ErrorKind::NotUnicastMac {
                    what: "workload mac",
                    mac,
                },
            ));
        }
        by_mac.insert((port, mac), w.mac.span(), || {
            format!("port `{name}` MAC {mac}")
        })?;
        let ip = w.ip.get_ref().0;
        if ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified() {
            return Err(invalid(
                w.ip.span(),
                ErrorKind::NotUnicastIp {
                    what: "workload ip",
                    address: ip,
                },
            ));
        }
        by_ip.insert(ip, w.ip.span(), || ip.to_string())?;
        let identity = cx.docs.find(&w.identity, "workload identity")?;
        workloads.push(Workload {
            port,
            mac,
            ip,
            identity,
        });
    }
    for (i, p) in cx.ports.iter().enumerate() {
        if p.access && !workloads.iter().any(|w| w.port == i) {
            return Err(invalid(
                p.name_span.clone(),
                ErrorKind::UnboundWorkload {
                    port: p.name.to_owned(),
                },
            ));
        }
    }

    let mut map_keys = Seen::new(cx.text, "identity_map");
    let mut maps = Vec::with_capacity(identity_map.len());
    for m in identity_map {
        let m = m.get_ref();
        let peer = m.peer.get_ref().0;
        if !cx.peer_addresses.contains(&peer) {
            let known: Vec<String> = cx.peer_addresses.iter().map(Ipv4Addr::to_string).collect();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(invalid(
                m.peer.span(),
                ErrorKind::UnknownReference {
                    what: "identity_map peer",
                    name: peer.to_string(),
                    expected: one_of("[[peer]] addresses", &known),
                },
            ));
        }
        let cidr = m.cidr.get_ref().0.network();
        map_keys.insert((peer, cidr), m.cidr.span(), || {
            format!("peer {peer} cidr {cidr}")
        })?;
        let identity = cx.docs.find(&m.identity, "identity_map identity")?;
        maps.push(IdentityMap {
            peer,
            cidr,
            identity,
        });
    }

    Ok((workloads, maps))
}

/// The secret file of warden peer `kind`: its own, else the default.
pub(crate) fn peer_secret<'a>(
    kind: &'a PeerKind,
    identity: Option<&'a IdentityConfig>,
) -> Option<&'a Path> {
    match kind {
        PeerKind::Warden { secret_file, .. } => secret_file
            .as_deref()
            .or(identity.and_then(|i| i.secret_file.as_deref())),
        PeerKind::Vtep { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_warden, PeerKind};

    const HASH: &str = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";

    /// A valid config with identity on; each case edits one thing in it.
    /// Line numbers: [identity] 5, documents at 9 and 13, ports at 18 and
    /// 23, peer at 32, workload at 38; appended text starts at line 43.
    fn base() -> String {
        format!(
            r#"[underlay]
port = "uplink"
address = "10.0.0.1/24"

[identity]
warden_id = "node-1"
secret_file = "/etc/warden/pair.key"

[[identity.document]]
name = "api"
labels = {{ app = "api" }}

[[identity.document]]
name = "db"
exe_sha256 = "{HASH}"
host_id = "node-2"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"

[[port]]
name = "w1"
backend = "tap"
interface = "wl0"
vni = 100

[[vni]]
id = 100

[[peer]]
address = "10.0.0.2"
kind = "warden"
warden_id = "node-2"
identities = ["db"]

[[workload]]
port = "w1"
mac = "02:00:00:00:01:21"
ip = "10.1.0.21"
identity = "api"
"#
        )
    }

    /// `base()` with `old` replaced by `new` (appended when `old` is empty).
    fn edit(old: &str, new: &str) -> String {
        let b = base();
        if old.is_empty() {
            return format!("{b}{new}");
        }
        assert!(b.contains(old), "base has no {old:?}");
        b.replacen(old, new, 1)
    }

    fn err(text: &str) -> String {
        match parse_warden(text, "i.toml") {
            Ok(c) => panic!("accepted:\n{text}\n{c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Two names whose documents share a 32-bit id (found by search).
    const COLLIDING: [&str; 2] = ["spiffe://lab/c28471", "spiffe://lab/c79014"];

    /// (what, replace this, with this (append when empty), expected error)
    const CASES: &[(&str, &str, &str, &str)] = &[
        (
            "identity id collision",
            "",
            "[[identity.document]]\nname = \"spiffe://lab/c28471\"\n[[identity.document]]\nname = \"spiffe://lab/c79014\"\n",
            "i.toml:46:8: identity `spiffe://lab/c79014` has id 275caee0, the same as identity `spiffe://lab/c28471` (declared at line 44), expected distinct ids: change a label of one of them",
        ),
        (
            "duplicate document name",
            "",
            "[[identity.document]]\nname = \"api\"\nhost_id = \"other\"\n",
            "i.toml:44:8: duplicate identity name `api` (first declared at line 10)",
        ),
        (
            "document named like the unauthenticated identity",
            "name = \"api\"",
            "name = \"unauthenticated\"",
            "i.toml:10:8: invalid identity document `unauthenticated`: the name `unauthenticated` is reserved for flows without identity, expected another name",
        ),
        (
            "empty document name",
            "name = \"api\"",
            "name = \"\"",
            "i.toml:10:8: invalid identity document ``: the name is empty, expected 1 to 255 bytes without control characters",
        ),
        (
            "label key with a control character",
            "labels = { app = \"api\" }",
            "labels = { \"a\\tb\" = \"api\" }",
            "i.toml:11:10: invalid identity document `api`: a label key contains a control character, expected 1 to 255 bytes without control characters",
        ),
        (
            "empty host_id",
            "host_id = \"node-2\"",
            "host_id = \"\"",
            "i.toml:16:11: invalid identity document `db`: host_id is empty, expected 1 to 255 bytes without control characters",
        ),
        (
            "exe_sha256 that is too short",
            HASH,
            "2d71",
            "i.toml:15:14: invalid SHA-256 \"2d71\", expected 64 hex digits (as printed by `sha256sum` or `warden identity attest`)",
        ),
        (
            "exe_sha256 with a sign inside a pair",
            "exe_sha256 = \"2d",
            "exe_sha256 = \"+d",
            "i.toml:15:14: invalid SHA-256 \"+d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\", expected 64 hex digits (as printed by `sha256sum` or `warden identity attest`)",
        ),
        (
            "unknown field in a document",
            "host_id = \"node-2\"",
            "host_id = \"node-2\"\nimage = \"x\"",
            "i.toml:17:1: unknown field `image`, expected one of `name`, `labels`, `exe_sha256`, `host_id`",
        ),
        (
            "grace not below epoch",
            "secret_file = \"/etc/warden/pair.key\"",
            "secret_file = \"/etc/warden/pair.key\"\nepoch_secs = 600\ngrace_secs = 600",
            "i.toml:9:14: grace_secs 600 is not less than epoch_secs 600, expected grace_secs < epoch_secs",
        ),
        (
            "default grace not below a short epoch",
            "secret_file = \"/etc/warden/pair.key\"",
            "secret_file = \"/etc/warden/pair.key\"\nepoch_secs = 120",
            "i.toml:8:14: grace_secs 300 is not less than epoch_secs 120, expected grace_secs < epoch_secs",
        ),
        (
            "epoch too short",
            "secret_file = \"/etc/warden/pair.key\"",
            "secret_file = \"/etc/warden/pair.key\"\nepoch_secs = 59",
            "i.toml:8:14: epoch_secs 59 is out of range, expected 60..=4294967295",
        ),
        (
            "zero window",
            "secret_file = \"/etc/warden/pair.key\"",
            "secret_file = \"/etc/warden/pair.key\"\nwindow_secs = 0",
            "i.toml:8:15: window_secs 0 is out of range, expected 1..=4294967295",
        ),
        (
            "bad warden_id",
            "warden_id = \"node-1\"",
            "warden_id = \"node 1\"",
            "i.toml:6:13: invalid warden_id `node 1`, expected 1 to 64 of A-Z a-z 0-9 _ . - (not starting with . or -)",
        ),
        (
            "unknown field in [identity]",
            "warden_id = \"node-1\"",
            "warden_id = \"node-1\"\nkey = \"x\"",
            "i.toml:7:1: unknown field `key`, expected one of `warden_id`, `secret_file`, `epoch_secs`, `grace_secs`, `window_secs`, `restamp_secs`, `document`",
        ),
        (
            "workload on an unknown port",
            "port = \"w1\"\nmac",
            "port = \"w9\"\nmac",
            "i.toml:39:8: unknown workload port `w9`, expected one of the [[port]] names: `uplink`, `w1`",
        ),
        (
            "workload on the underlay port",
            "port = \"w1\"\nmac",
            "port = \"uplink\"\nmac",
            "i.toml:39:8: workload port `uplink` is not an access port, expected a port with `vni`",
        ),
        (
            "workload identity not declared",
            "identity = \"api\"",
            "identity = \"web\"",
            "i.toml:42:12: unknown workload identity `web`, expected one of the [[identity.document]] names: `api`, `db`",
        ),
        (
            "unbound workload",
            "",
            "[[port]]\nname = \"w2\"\nbackend = \"tap\"\ninterface = \"wl2\"\nvni = 100\n",
            "i.toml:44:8: unbound workload: access port `w2` has no [[workload]], expected a [[workload]] with port = \"w2\" (with [identity] set, every access port is bound to an identity)",
        ),
        (
            "duplicate workload (port, MAC)",
            "",
            "[[workload]]\nport = \"w1\"\nmac = \"02:00:00:00:01:21\"\nip = \"10.1.0.22\"\nidentity = \"db\"\n",
            "i.toml:45:7: duplicate workload port `w1` MAC 02:00:00:00:01:21 (first declared at line 40)",
        ),
        (
            "duplicate workload IP",
            "",
            "[[workload]]\nport = \"w1\"\nmac = \"02:00:00:00:01:22\"\nip = \"10.1.0.21\"\nidentity = \"db\"\n",
            "i.toml:46:6: duplicate workload ip 10.1.0.21 (first declared at line 41)",
        ),
        (
            "workload group MAC",
            "mac = \"02:00:00:00:01:21\"",
            "mac = \"01:00:00:00:01:21\"",
            "i.toml:40:7: workload mac 01:00:00:00:01:21 is not a unicast address, expected a non-zero MAC with the group bit clear",
        ),
        (
            "warden peer without warden_id",
            "warden_id = \"node-2\"\n",
            "",
            "i.toml:34:8: warden peer 10.0.0.2 is missing field `warden_id`, expected the peer's [identity] warden_id",
        ),
        (
            "warden peer without any secret",
            "secret_file = \"/etc/warden/pair.key\"\n",
            "",
            "i.toml:33:8: warden peer 10.0.0.2 has no secret, expected `secret_file` on the peer or a default `secret_file` in [identity]",
        ),
        (
            "warden peer with our own warden_id",
            "warden_id = \"node-2\"",
            "warden_id = \"node-1\"",
            "i.toml:35:13: duplicate warden_id `node-1` (first declared at line 6)",
        ),
        (
            "two warden peers with one warden_id",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\nkind = \"warden\"\nwarden_id = \"node-2\"\n",
            "i.toml:46:13: duplicate warden_id `node-2` (first declared at line 35)",
        ),
        (
            "warden ids with equal numeric ids",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\nkind = \"warden\"\nwarden_id = \"node-24011\"\n[[peer]]\naddress = \"10.0.0.4\"\nkind = \"warden\"\nwarden_id = \"node-109290\"\n",
            "i.toml:50:13: warden_id `node-109290` has numeric id c5c1899d, the same as warden_id `node-24011` (declared at line 46), expected distinct ids: rename one of them",
        ),
        (
            "gbp on a warden peer",
            "identities = [\"db\"]",
            "identities = [\"db\"]\ngbp = [{ group = 1, identity = \"db\" }]",
            "i.toml:37:7: field `gbp` does not apply to a `warden` peer, expected it only with kind = \"vtep\"",
        ),
        (
            "identities on a vtep peer",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\nidentities = [\"db\"]\n",
            "i.toml:45:14: field `identities` does not apply to a `vtep` peer, expected it only with kind = \"warden\"",
        ),
        (
            "secret_file on a vtep peer",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\nsecret_file = \"/k\"\n",
            "i.toml:45:15: field `secret_file` does not apply to a `vtep` peer, expected it only with kind = \"warden\"",
        ),
        (
            "unknown peer kind",
            "kind = \"warden\"",
            "kind = \"router\"",
            "i.toml:34:8: unknown variant `router`, expected `vtep` or `warden`",
        ),
        (
            "unknown identity a warden peer may assert",
            "identities = [\"db\"]",
            "identities = [\"db\", \"cache\"]",
            "i.toml:36:21: unknown peer identity `cache`, expected one of the [[identity.document]] names: `api`, `db`",
        ),
        (
            "identity repeated in a peer's list",
            "identities = [\"db\"]",
            "identities = [\"db\", \"db\"]",
            "i.toml:36:21: duplicate identity `db` in peer identities (first declared at line 36)",
        ),
        (
            "unknown gbp identity",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\ngbp = [{ group = 7, identity = \"web\" }]\n",
            "i.toml:45:32: unknown gbp identity `web`, expected one of the [[identity.document]] names: `api`, `db`",
        ),
        (
            "gbp group 0",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\ngbp = [{ group = 0, identity = \"db\" }]\n",
            "i.toml:45:18: gbp group 0 is out of range, expected 1..=65535",
        ),
        (
            "gbp group repeated",
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\ngbp = [{ group = 7, identity = \"db\" },\n  { group = 7, identity = \"api\" }]\n",
            "i.toml:46:13: duplicate gbp group 7 (first declared at line 45)",
        ),
        (
            "identity_map peer not declared",
            "",
            "[[identity_map]]\npeer = \"10.0.0.9\"\ncidr = \"10.1.0.0/24\"\nidentity = \"api\"\n",
            "i.toml:44:8: unknown identity_map peer `10.0.0.9`, expected one of the [[peer]] addresses: `10.0.0.2`",
        ),
        (
            "identity_map identity not declared",
            "",
            "[[identity_map]]\npeer = \"10.0.0.2\"\ncidr = \"10.1.0.0/24\"\nidentity = \"web\"\n",
            "i.toml:46:12: unknown identity_map identity `web`, expected one of the [[identity.document]] names: `api`, `db`",
        ),
        (
            "duplicate identity_map (after normalising the CIDR)",
            "",
            "[[identity_map]]\npeer = \"10.0.0.2\"\ncidr = \"10.1.0.0/24\"\nidentity = \"api\"\n[[identity_map]]\npeer = \"10.0.0.2\"\ncidr = \"10.1.0.7/24\"\nidentity = \"db\"\n",
            "i.toml:49:8: duplicate identity_map peer 10.0.0.2 cidr 10.1.0.0/24 (first declared at line 45)",
        ),
        (
            "[[allow]], replaced by [policy]",
            "",
            "[[allow]]\ndestination = \"db\"\nsources = [\"api\"]\n",
            "i.toml:43:1: `[[allow]]` was replaced by `[policy]`: write `[[policy.set.rule]] from = [<sources>] to = [\"<destination>\"] action = \"allow\"`, and a rule on the sources' own wardens too (they decide their workloads' flows out); see docs/config-schema.md",
        ),
    ];

    #[test]
    fn each_error_points_at_its_value() {
        for (what, old, new, expected) in CASES {
            assert_eq!(err(&edit(old, new)), *expected, "case: {what}");
        }
    }

    /// `[[allow]]` is refused with the same message whether identity is
    /// on or not, and before any other problem of the file.
    #[test]
    fn allow_is_refused_everywhere() {
        let replaced = "`[[allow]]` was replaced by `[policy]`";
        let plain = "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\n\
                     [[port]]\nname = \"uplink\"\nbackend = \"af_packet\"\ninterface = \"eth0\"\n\
                     [[allow]]\ndestination = \"x\"\nsources = []\n";
        let e = err(plain);
        assert!(e.starts_with(&format!("i.toml:8:1: {replaced}")), "{e}");
        // Written inline, in a file with another (later) problem.
        let text = format!(
            "allow = [{{ destination = \"db\" }}]\n{}",
            edit("", "[[vni]]\nid = 0\n")
        );
        let e = err(&text);
        assert!(e.starts_with(&format!("i.toml:1:9: {replaced}")), "{e}");
    }

    #[test]
    fn colliding_names_really_collide() {
        let [a, b] = COLLIDING.map(|n| IdentityDoc {
            name: n.into(),
            ..Default::default()
        });
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().to_string(), "275caee0");
        assert_ne!(a, b);
    }

    #[test]
    fn colliding_warden_ids_really_collide() {
        let a = identity::warden_id_of("node-24011");
        assert_eq!(a, identity::warden_id_of("node-109290"));
        assert_eq!(a.0, 0xc5c1_899d);
    }

    /// Identity tables in a config without `[identity]`.
    #[test]
    fn identity_settings_need_identity() {
        let plain = r#"[underlay]
port = "uplink"
address = "10.0.0.1/24"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"
"#;
        let cases = [
            (
                "[[peer]]\naddress = \"10.0.0.2\"\nkind = \"warden\"\nwarden_id = \"n2\"\nsecret_file = \"/k\"\n",
                "i.toml:11:8: a warden peer needs identity enabled, expected an [identity] table with `warden_id`",
            ),
            (
                "[[peer]]\naddress = \"10.0.0.2\"\ngbp = []\n",
                "i.toml:11:7: peer gbp needs identity enabled, expected an [identity] table with `warden_id`",
            ),
            (
                "[[workload]]\nport = \"uplink\"\nmac = \"02:00:00:00:00:01\"\nip = \"10.1.0.1\"\nidentity = \"x\"\n",
                "i.toml:9:1: [[workload]] needs identity enabled, expected an [identity] table with `warden_id`",
            ),
            (
                "[[peer]]\naddress = \"10.0.0.2\"\n[[identity_map]]\npeer = \"10.0.0.2\"\ncidr = \"10.1.0.0/24\"\nidentity = \"x\"\n",
                "i.toml:11:1: [[identity_map]] needs identity enabled, expected an [identity] table with `warden_id`",
            ),
            (
                "[[identity.document]]\nname = \"x\"\n",
                "i.toml:9:3: missing field `warden_id`",
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(err(&format!("{plain}{extra}")), expected, "{extra}");
        }
        // Without any of them, identity is simply off.
        let c = parse_warden(plain, "i.toml").unwrap();
        assert_eq!(c.identity, None);
        assert!(c.documents.is_empty() && c.workloads.is_empty() && c.policy.is_none());
    }

    #[test]
    fn valid_config_builds_runtime_values() {
        let text = edit(
            "",
            "[[peer]]\naddress = \"10.0.0.3\"\nvnis = [100]\ngbp = [{ group = 7, identity = \"api\" }]\n\n\
             [[peer]]\naddress = \"10.0.0.4\"\nkind = \"warden\"\nwarden_id = \"node-4\"\nsecret_file = \"/etc/warden/n1-n4.key\"\n\n\
             [[identity_map]]\npeer = \"10.0.0.3\"\ncidr = \"10.1.0.9/24\"\nidentity = \"db\"\n\n\
             [policy]\ndefault_action = \"reject\"\n\
             [[policy.set]]\nname = \"db\"\nmode = \"learn\"\n\
             [[policy.set.rule]]\nfrom = [\"api\", { cidr = \"10.9.8.7/16\" }, { labels = { app = \"api\" } }]\n\
             to = [\"d?\", \"unauthenticated\"]\nproto = \"udp\"\nports = [53, \"5353-5354\"]\naction = \"deny\"\n",
        );
        let c = parse_warden(&text, "i.toml").unwrap();
        let rule = policy::RuleSpec {
            from: vec![
                policy::Selector::Identity("api".into()),
                policy::Selector::Cidr("10.9.0.0/16".parse().unwrap()),
                policy::Selector::Labels([("app".to_string(), "api".to_string())].into()),
            ],
            to: vec![
                policy::Selector::Glob("d?".into()),
                policy::Selector::Unauthenticated,
            ],
            proto: policy::Proto::Udp,
            ports: vec![
                policy::PortRange::single(53),
                policy::PortRange { lo: 5353, hi: 5354 },
            ],
            action: policy::Action::Deny,
            app: None,
            l7: None,
        };
        assert_eq!(
            c.policy,
            Some(policy::PolicySpec {
                default_mode: policy::Mode::Enforce,
                default_action: policy::DenyAction::Reject,
                sets: vec![policy::SetSpec {
                    name: "db".into(),
                    mode: policy::Mode::Learn,
                    rules: vec![rule],
                }],
            })
        );
        assert_eq!(
            c.identity,
            Some(IdentityConfig {
                warden_id: "node-1".into(),
                secret_file: Some("/etc/warden/pair.key".into()),
                epoch_secs: DEFAULT_EPOCH_SECS,
                grace_secs: DEFAULT_GRACE_SECS,
                window_secs: DEFAULT_WINDOW_SECS,
                restamp_secs: DEFAULT_RESTAMP_SECS,
            })
        );
        let api = IdentityDoc {
            name: "api".into(),
            labels: [("app".to_string(), "api".to_string())].into(),
            exe_sha256: None,
            host_id: None,
        };
        let db = IdentityDoc {
            name: "db".into(),
            labels: BTreeMap::new(),
            exe_sha256: identity::doc::parse_sha256(HASH),
            host_id: Some("node-2".into()),
        };
        assert_eq!(c.documents, vec![api.clone(), db.clone()]);
        assert_eq!(c.document_id(0), Some(api.id()));
        assert_eq!(c.document_id(1), Some(db.id()));
        assert_eq!(c.document_id(2), None);
        assert_eq!(c.document_index("db"), Some(1));
        assert_eq!(
            c.workloads,
            vec![Workload {
                port: 1,
                mac: "02:00:00:00:01:21".parse().unwrap(),
                ip: Ipv4Addr::new(10, 1, 0, 21),
                identity: 0,
            }]
        );
        let kinds: Vec<&PeerKind> = c.peers.iter().map(|p| &p.kind).collect();
        assert_eq!(
            kinds,
            [
                &PeerKind::Warden {
                    warden_id: "node-2".into(),
                    secret_file: None,
                    identities: vec![1],
                },
                &PeerKind::Vtep { gbp: vec![(7, 0)] },
                &PeerKind::Warden {
                    warden_id: "node-4".into(),
                    secret_file: Some("/etc/warden/n1-n4.key".into()),
                    identities: vec![],
                },
            ]
        );
        // A peer's own secret wins over the default; VTEPs have none.
        assert_eq!(c.peer_secret(0), Some(Path::new("/etc/warden/pair.key")));
        assert_eq!(c.peer_secret(1), None);
        assert_eq!(c.peer_secret(2), Some(Path::new("/etc/warden/n1-n4.key")));
        assert_eq!(c.peer_secret(3), None);
        assert_eq!(
            c.identity_maps,
            vec![IdentityMap {
                peer: Ipv4Addr::new(10, 0, 0, 3),
                cidr: "10.1.0.0/24".parse().unwrap(),
                identity: 1,
            }]
        );
        // Written back out, it parses to the same config.
        let out = c.to_toml();
        assert_eq!(parse_warden(&out, "out").unwrap(), c, "{out}");
    }

    #[test]
    fn per_peer_secret_is_enough_without_a_default() {
        let text = edit("secret_file = \"/etc/warden/pair.key\"\n", "").replace(
            "warden_id = \"node-2\"",
            "warden_id = \"node-2\"\nsecret_file = \"/k\"",
        );
        let c = parse_warden(&text, "i.toml").unwrap();
        assert_eq!(
            c.identity.as_ref().and_then(|i| i.secret_file.clone()),
            None
        );
        assert_eq!(c.peer_secret(0), Some(Path::new("/k")));
    }

    #[test]
    fn document_toml_round_trips_awkward_values() {
        let doc = IdentityDoc {
            name: "spiffe://lab/ns/a \"quoted\"/sa/é".into(),
            labels: [
                ("app".to_string(), "api".to_string()),
                ("needs quotes.key".to_string(), "a\\b".to_string()),
                ("empty".to_string(), String::new()),
            ]
            .into(),
            exe_sha256: Some([0xab; 32]),
            host_id: Some("node-1".into()),
        };
        assert_eq!(document_problem(&doc), None);
        let mut text = base().replacen(
            "[[identity.document]]\nname = \"api\"",
            &format!(
                "{}\n[[identity.document]]\nname = \"api\"",
                document_toml(&doc)
            ),
            1,
        );
        text.push('\n');
        let c = parse_warden(&text, "i.toml").unwrap();
        assert_eq!(c.documents.first(), Some(&doc));
        // Without labels there is no labels line; the id still matches.
        let bare = IdentityDoc {
            name: "x".into(),
            ..Default::default()
        };
        assert_eq!(
            document_toml(&bare),
            "[[identity.document]]\nname = \"x\"\n"
        );
    }

    #[test]
    fn document_problems() {
        let named = |n: &str| IdentityDoc {
            name: n.into(),
            ..Default::default()
        };
        assert!(document_problem(&named("spiffe://x")).is_none());
        assert!(document_problem(&named("")).is_some());
        assert!(document_problem(&named(UNAUTHENTICATED)).is_some());
        assert!(document_problem(&named("a\nb")).is_some());
        assert!(document_problem(&named(&"x".repeat(256))).is_some());
        assert!(document_problem(&named(&"x".repeat(255))).is_none());
        let mut d = named("x");
        d.labels.insert(String::new(), "v".into());
        assert!(document_problem(&d).is_some());
        let mut d = named("x");
        d.host_id = Some("h\u{7f}".into());
        assert!(document_problem(&d).is_some());
    }
}
