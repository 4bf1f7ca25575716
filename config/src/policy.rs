//! `[policy]`: the identity firewall's rules, in the instance config.
//!
//! ```toml
//! [policy]
//! default = "enforce"          # mode of flows no rule matches (enforce | monitor | learn)
//! default_action = "deny"      # or "reject"
//!
//! [[policy.set]]
//! name = "payments"
//! mode = "monitor"             # enforce | monitor | learn; default enforce
//!
//! [[policy.set.rule]]
//! from = ["spiffe://lab/ns/web/*", { labels = { app = "web" } }, "unauthenticated", { cidr = "10.9.0.0/16" }]
//! to = ["spiffe://lab/ns/payments/sa/api"]
//! proto = "tcp"                # tcp | udp | icmp | any; default any
//! ports = [8080, "9000-9100"]
//! action = "allow"             # allow | deny | reject
//! ```
//!
//! The DTOs here only read the text; what the rules mean, and most of what
//! can be wrong with them (unknown names, globs and labels that match no
//! document, port ranges, rules that can never match), is decided by
//! `policy::compile`, which runs during validation. Its errors carry set,
//! rule and selector indexes; the spans kept beside the spec turn them into
//! `file:line:column`.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;

use identity::IdentityDoc;
use policy::{
    Action, CompileError, DenyAction, Mode, PolicySpec, PortRange, Proto, RuleLoc, RuleSpec,
    Selector, SetSpec, Side,
};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::{line_of, ErrorKind};
use crate::identities::{docs_names, key, UNAUTHENTICATED};
use crate::validate::{invalid, one_of, quote, Invalid, Seen};
use crate::value::{is_simple_name, CidrValue, SIMPLE_NAME};

// ---------------------------------------------------------------------------
// DTOs
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyDto {
    default: Option<ModeDto>,
    default_action: Option<DenyActionDto>,
    #[serde(default)]
    set: Vec<Spanned<SetDto>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ModeDto {
    Enforce,
    Monitor,
    Learn,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DenyActionDto {
    Deny,
    Reject,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionDto {
    Allow,
    Deny,
    Reject,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProtoDto {
    Tcp,
    Udp,
    Icmp,
    Any,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDto {
    name: Spanned<String>,
    mode: Option<ModeDto>,
    #[serde(default)]
    rule: Vec<Spanned<RuleDto>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDto {
    #[serde(default)]
    from: Vec<Spanned<SelectorDto>>,
    #[serde(default)]
    to: Vec<Spanned<SelectorDto>>,
    proto: Option<ProtoDto>,
    #[serde(default)]
    ports: Vec<Spanned<PortDto>>,
    action: ActionDto,
}

/// A selector as written: a string (exact name, glob, `unauthenticated`)
/// or a one-key table (`labels`, `cidr`, or `identity` for an exact name
/// that contains `*` or `?`).
#[derive(Debug)]
enum SelectorDto {
    Text(String),
    Labels(BTreeMap<String, String>),
    Cidr(overlay::Ipv4Cidr),
    Identity(String),
}

const SELECTOR_EXPECTED: &str = "an identity name, a glob, \"unauthenticated\", { labels = { KEY = \"VALUE\", ... } }, { cidr = \"ADDRESS/PREFIX\" } or { identity = \"NAME\" }";

impl<'de> Deserialize<'de> for SelectorDto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SelectorDto;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SELECTOR_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SelectorDto, E> {
                Ok(SelectorDto::Text(s.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SelectorDto, A::Error> {
                let Some(k) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format_args!(
                        "empty selector table, expected {SELECTOR_EXPECTED}"
                    )));
                };
                let sel = match k.as_str() {
                    "labels" => SelectorDto::Labels(map.next_value()?),
                    "cidr" => SelectorDto::Cidr(map.next_value::<CidrValue>()?.0),
                    "identity" => SelectorDto::Identity(map.next_value()?),
                    other => {
                        return Err(de::Error::custom(format_args!(
                        "unknown selector key `{other}`, expected `labels`, `cidr` or `identity`"
                    )))
                    }
                };
                if let Some(k2) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format_args!(
                        "selector table with both `{k}` and `{k2}`, expected exactly one key (list several selectors instead)"
                    )));
                }
                Ok(sel)
            }
        }
        d.deserialize_any(V)
    }
}

/// A port: an integer, or `"LO-HI"` (or a single number as a string).
#[derive(Debug, Clone, Copy)]
struct PortDto(PortRange);

const PORT_EXPECTED: &str = "a port 0..=65535 or a range \"LO-HI\" such as \"9000-9100\"";

impl<'de> Deserialize<'de> for PortDto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortDto;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PORT_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortDto, E> {
                u16::try_from(v)
                    .map(|p| PortDto(PortRange::single(p)))
                    .map_err(|_| {
                        E::custom(format_args!("invalid port {v}, expected {PORT_EXPECTED}"))
                    })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortDto, E> {
                u16::try_from(v)
                    .map(|p| PortDto(PortRange::single(p)))
                    .map_err(|_| {
                        E::custom(format_args!("invalid port {v}, expected {PORT_EXPECTED}"))
                    })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortDto, E> {
                let num = |t: &str| {
                    if !t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit()) {
                        t.parse::<u16>().ok()
                    } else {
                        None
                    }
                };
                let range = match s.split_once('-') {
                    Some((lo, hi)) => num(lo).zip(num(hi)).map(|(lo, hi)| PortRange { lo, hi }),
                    None => num(s).map(PortRange::single),
                };
                range.map(PortDto).ok_or_else(|| {
                    E::custom(format_args!(
                        "invalid port range {s:?}, expected {PORT_EXPECTED}"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

/// Where each part of each rule is in the text, by set and rule index.
struct RuleSpans {
    rule: Range<usize>,
    from: Vec<Range<usize>>,
    to: Vec<Range<usize>>,
    ports: Vec<Range<usize>>,
}

fn mode(m: Option<ModeDto>) -> Mode {
    match m {
        None | Some(ModeDto::Enforce) => Mode::Enforce,
        Some(ModeDto::Monitor) => Mode::Monitor,
        Some(ModeDto::Learn) => Mode::Learn,
    }
}

fn selector(s: &SelectorDto) -> Selector {
    match s {
        SelectorDto::Text(t) if t == UNAUTHENTICATED => Selector::Unauthenticated,
        SelectorDto::Text(t) if policy::select::is_glob(t) => Selector::Glob(t.clone()),
        SelectorDto::Text(t) | SelectorDto::Identity(t) => Selector::Identity(t.clone()),
        SelectorDto::Labels(l) => Selector::Labels(l.clone()),
        // Network form, as everywhere else in the config.
        SelectorDto::Cidr(c) => Selector::Cidr(c.network()),
    }
}

/// `[policy]`, checked and compiled against `documents` (compiled only to
/// validate: the engine compiles its own copy).
pub(crate) fn build_policy(
    dto: Option<&Spanned<PolicyDto>>,
    identity_on: bool,
    documents: &[IdentityDoc],
    text: &str,
) -> Result<Option<PolicySpec>, Invalid> {
    let Some(dto) = dto else {
        return Ok(None);
    };
    if !identity_on {
        return Err(invalid(
            dto.span(),
            ErrorKind::NeedsIdentity { what: "[policy]" },
        ));
    }
    let d = dto.get_ref();
    let mut names = Seen::new(text, "policy set name");
    let mut sets = Vec::with_capacity(d.set.len());
    let mut spans: Vec<Vec<RuleSpans>> = Vec::with_capacity(d.set.len());
    for s in &d.set {
        let s = s.get_ref();
        let name = s.name.get_ref();
        if !is_simple_name(name) {
            return Err(invalid(
                s.name.span(),
                ErrorKind::InvalidName {
                    what: "policy set name",
                    name: name.clone(),
                    expected: SIMPLE_NAME,
                },
            ));
        }
        names.insert(name.as_str(), s.name.span(), || format!("`{name}`"))?;
        let mut rules = Vec::with_capacity(s.rule.len());
        let mut rule_spans = Vec::with_capacity(s.rule.len());
        for r in &s.rule {
            let span = r.span();
            let r = r.get_ref();
            rules.push(RuleSpec {
                from: r.from.iter().map(|x| selector(x.get_ref())).collect(),
                to: r.to.iter().map(|x| selector(x.get_ref())).collect(),
                proto: match r.proto {
                    None | Some(ProtoDto::Any) => Proto::Any,
                    Some(ProtoDto::Tcp) => Proto::Tcp,
                    Some(ProtoDto::Udp) => Proto::Udp,
                    Some(ProtoDto::Icmp) => Proto::Icmp,
                },
                ports: r.ports.iter().map(|p| p.get_ref().0).collect(),
                action: match r.action {
                    ActionDto::Allow => Action::Allow,
                    ActionDto::Deny => Action::Deny,
                    ActionDto::Reject => Action::Reject,
                },
            });
            rule_spans.push(RuleSpans {
                rule: span,
                from: r.from.iter().map(Spanned::span).collect(),
                to: r.to.iter().map(Spanned::span).collect(),
                ports: r.ports.iter().map(Spanned::span).collect(),
            });
        }
        sets.push(SetSpec {
            name: name.clone(),
            mode: mode(s.mode),
            rules,
        });
        spans.push(rule_spans);
    }
    let spec = PolicySpec {
        default_mode: mode(d.default),
        default_action: match d.default_action {
            None | Some(DenyActionDto::Deny) => DenyAction::Deny,
            Some(DenyActionDto::Reject) => DenyAction::Reject,
        },
        sets,
    };
    match policy::compile(&spec, documents) {
        Ok(_) => Ok(Some(spec)),
        Err(e) => Err(locate(&e, &spec, &spans, documents, dto.span(), text)),
    }
}

/// A compile error as a config error at the text it is about.
fn locate(
    e: &CompileError,
    spec: &PolicySpec,
    spans: &[Vec<RuleSpans>],
    documents: &[IdentityDoc],
    whole: Range<usize>,
    text: &str,
) -> Invalid {
    let rule = |l: RuleLoc| spans.get(l.set).and_then(|s| s.get(l.rule));
    let sel_span = |at: &policy::SelectorAt| {
        rule(at.rule)
            .and_then(|r| match at.side {
                Side::From => r.from.get(at.index),
                Side::To => r.to.get(at.index),
            })
            .cloned()
            .unwrap_or_else(|| whole.clone())
    };
    let port_span = |l: RuleLoc, i: usize| {
        rule(l)
            .and_then(|r| r.ports.get(i))
            .cloned()
            .unwrap_or_else(|| whole.clone())
    };
    match e {
        CompileError::UnknownIdentity { at, name } => invalid(
            sel_span(at),
            ErrorKind::UnknownReference {
                what: "policy identity",
                name: name.clone(),
                expected: one_of("[[identity.document]] names", &docs_names(documents)),
            },
        ),
        CompileError::BadGlob { at, glob, problem } => invalid(
            sel_span(at),
            ErrorKind::PolicyGlob {
                glob: glob.clone(),
                problem,
            },
        ),
        CompileError::MatchesNothing { at } => {
            let shown = spec
                .sets
                .get(at.rule.set)
                .and_then(|s| s.rules.get(at.rule.rule))
                .and_then(|r| match at.side {
                    Side::From => r.from.get(at.index),
                    Side::To => r.to.get(at.index),
                })
                .map(selector_toml)
                .unwrap_or_default();
            invalid(
                sel_span(at),
                ErrorKind::PolicySelectorUnmatched { selector: shown },
            )
        }
        CompileError::InvertedPorts { rule, port, range } => invalid(
            port_span(*rule, *port),
            ErrorKind::InvertedPortRange {
                lo: range.lo,
                hi: range.hi,
            },
        ),
        CompileError::PortsWithoutPortProto { rule, port, proto } => invalid(
            port_span(*rule, *port),
            ErrorKind::PortsWithoutPortProto {
                proto: proto.as_str(),
            },
        ),
        CompileError::Shadowed { rule: at, by } => {
            let mut lines: Vec<usize> = by
                .iter()
                .filter_map(|l| rule(*l))
                .map(|r| line_of(text, r.rule.start))
                .collect();
            lines.sort_unstable();
            lines.dedup();
            let list: Vec<String> = lines.iter().map(usize::to_string).collect();
            let by = match list.as_slice() {
                [one] => format!("the rule at line {one}"),
                many => format!("the rules at lines {}", many.join(", ")),
            };
            invalid(
                rule(*at).map_or(whole, |r| r.rule.clone()),
                ErrorKind::PolicyShadowed { by },
            )
        }
        CompileError::TooLarge { .. } => invalid(whole, ErrorKind::PolicyTooLarge(e.to_string())),
    }
}

// ---------------------------------------------------------------------------
// Writing it back
// ---------------------------------------------------------------------------

/// One selector in the config's syntax.
pub(crate) fn selector_toml(s: &Selector) -> String {
    match s {
        Selector::Identity(n) if policy::select::is_glob(n) || n == UNAUTHENTICATED => {
            format!("{{ identity = {} }}", quote(n))
        }
        Selector::Identity(n) | Selector::Glob(n) => quote(n),
        Selector::Labels(l) => {
            let pairs: Vec<String> = l
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), quote(v)))
                .collect();
            format!("{{ labels = {{ {} }} }}", pairs.join(", "))
        }
        Selector::Unauthenticated => quote(UNAUTHENTICATED),
        Selector::Cidr(c) => format!("{{ cidr = \"{c}\" }}"),
    }
}

/// `[policy]` and its sets as TOML (starting with a blank line), every
/// default written out.
pub(crate) fn policy_toml(p: &PolicySpec) -> String {
    let mut out = String::new();
    let action = |a: DenyAction| Action::from(a).as_str();
    // Writing to a String cannot fail; the results are ignored.
    let _ = writeln!(
        out,
        "\n[policy]\ndefault = \"{}\"\ndefault_action = \"{}\"",
        p.default_mode.as_str(),
        action(p.default_action)
    );
    for s in &p.sets {
        let _ = writeln!(
            out,
            "\n[[policy.set]]\nname = {}\nmode = \"{}\"",
            quote(&s.name),
            s.mode.as_str()
        );
        for r in &s.rules {
            let list = |l: &[Selector]| l.iter().map(selector_toml).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                out,
                "\n[[policy.set.rule]]\nfrom = [{}]\nto = [{}]\nproto = \"{}\"",
                list(&r.from),
                list(&r.to),
                r.proto.as_str()
            );
            if !r.ports.is_empty() {
                let ports: Vec<String> = r
                    .ports
                    .iter()
                    .map(|p| {
                        if p.lo == p.hi {
                            p.lo.to_string()
                        } else {
                            format!("\"{}-{}\"", p.lo, p.hi)
                        }
                    })
                    .collect();
                let _ = writeln!(out, "ports = [{}]", ports.join(", "));
            }
            let _ = writeln!(out, "action = \"{}\"", r.action.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_warden;
    use policy::{Decision, Endpoint, FlowQuery, LearnedFlow, Peer, Subject};
    use std::net::Ipv4Addr;

    /// A valid config with identity and a policy; each case edits one
    /// thing. Lines: documents at 8, 12, 16; [policy] 24; the set 28 (name
    /// at 29); its rule 32 (from 33, to 34, ports 36); appended text starts
    /// at line 38.
    const BASE: &str = r#"[underlay]
port = "uplink"
address = "10.0.0.1/24"

[identity]
warden_id = "node-1"

[[identity.document]]
name = "spiffe://lab/ns/web/sa/api"
labels = { app = "web" }

[[identity.document]]
name = "spiffe://lab/ns/payments/sa/api"
labels = { app = "api" }

[[identity.document]]
name = "spiffe://lab/ns/payments/sa/db"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"

[policy]
default = "enforce"
default_action = "deny"

[[policy.set]]
name = "payments"
mode = "monitor"

[[policy.set.rule]]
from = ["spiffe://lab/ns/web/*", { labels = { app = "web" } }, "unauthenticated", { cidr = "10.9.0.0/16" }]
to = ["spiffe://lab/ns/payments/sa/api"]
proto = "tcp"
ports = [8080, "9000-9100"]
action = "allow"
"#;

    fn edit(old: &str, new: &str) -> String {
        if old.is_empty() {
            return format!("{BASE}{new}");
        }
        assert!(BASE.contains(old), "base has no {old:?}");
        BASE.replacen(old, new, 1)
    }

    fn err(text: &str) -> String {
        match parse_warden(text, "p.toml") {
            Ok(c) => panic!("accepted:\n{text}\n{:?}", c.policy),
            Err(e) => e.to_string(),
        }
    }

    const LATER_RULE: &str = "\n[[policy.set]]\nname = \"later\"\n\n[[policy.set.rule]]\nfrom = [\"spiffe://lab/ns/web/sa/api\"]\nto = [\"spiffe://lab/ns/payments/sa/api\"]\nproto = \"tcp\"\nports = [9050]\naction = \"deny\"\n";

    /// (what, replace this, with this (append when empty), expected error)
    const CASES: &[(&str, &str, &str, &str)] = &[
        (
            "unknown identity",
            "to = [\"spiffe://lab/ns/payments/sa/api\"]",
            "to = [\"spiffe://lab/ns/payments/sa/web\"]",
            "p.toml:34:7: unknown policy identity `spiffe://lab/ns/payments/sa/web`, expected one of the [[identity.document]] names: `spiffe://lab/ns/web/sa/api`, `spiffe://lab/ns/payments/sa/api`, `spiffe://lab/ns/payments/sa/db`",
        ),
        (
            "exact name in table form, not declared",
            "to = [\"spiffe://lab/ns/payments/sa/api\"]",
            "to = [{ identity = \"spiffe://lab/ns/*\" }]",
            "p.toml:34:7: unknown policy identity `spiffe://lab/ns/*`, expected one of the [[identity.document]] names: `spiffe://lab/ns/web/sa/api`, `spiffe://lab/ns/payments/sa/api`, `spiffe://lab/ns/payments/sa/db`",
        ),
        (
            "bad glob",
            "\"spiffe://lab/ns/web/*\"",
            "\"spiffe://lab/\\u0001*\"",
            "p.toml:33:9: invalid policy glob \"spiffe://lab/\\u{1}*\": the glob contains a control character, which no identity name can, expected name characters with `*` (any run, `/` included) and `?` (one character)",
        ),
        (
            "glob matching nothing",
            "\"spiffe://lab/ns/web/*\"",
            "\"spiffe://lab/ns/mail/*\"",
            "p.toml:33:9: policy selector \"spiffe://lab/ns/mail/*\" matches no [[identity.document]], expected a selector that matches at least one declared document",
        ),
        (
            "labels matching nothing",
            "{ labels = { app = \"web\" } }",
            "{ labels = { app = \"mail\" } }",
            "p.toml:33:34: policy selector { labels = { app = \"mail\" } } matches no [[identity.document]], expected a selector that matches at least one declared document",
        ),
        (
            "inverted port range",
            "ports = [8080, \"9000-9100\"]",
            "ports = [8080, \"90-80\"]",
            "p.toml:36:16: port range 90-80 is inverted, expected LO <= HI",
        ),
        (
            "ports with icmp",
            "proto = \"tcp\"",
            "proto = \"icmp\"",
            "p.toml:36:10: ports do not apply to proto = \"icmp\", expected proto = \"tcp\" or \"udp\" with ports",
        ),
        (
            "ports without proto (any)",
            "proto = \"tcp\"\n",
            "",
            "p.toml:35:10: ports do not apply to proto = \"any\", expected proto = \"tcp\" or \"udp\" with ports",
        ),
        (
            "port out of range",
            "ports = [8080,",
            "ports = [70000,",
            "p.toml:36:10: invalid port 70000, expected a port 0..=65535 or a range \"LO-HI\" such as \"9000-9100\"",
        ),
        (
            "port range that does not parse",
            "\"9000-9100\"",
            "\"9000-\"",
            "p.toml:36:16: invalid port range \"9000-\", expected a port 0..=65535 or a range \"LO-HI\" such as \"9000-9100\"",
        ),
        (
            "unknown mode",
            "mode = \"monitor\"",
            "mode = \"watch\"",
            "p.toml:30:8: unknown variant `watch`, expected one of `enforce`, `monitor`, `learn`",
        ),
        (
            "unknown default mode",
            "default = \"enforce\"",
            "default = \"on\"",
            "p.toml:25:11: unknown variant `on`, expected one of `enforce`, `monitor`, `learn`",
        ),
        (
            "default action allow",
            "default_action = \"deny\"",
            "default_action = \"allow\"",
            "p.toml:26:18: unknown variant `allow`, expected `deny` or `reject`",
        ),
        (
            "unknown action",
            "action = \"allow\"",
            "action = \"permit\"",
            "p.toml:37:10: unknown variant `permit`, expected one of `allow`, `deny`, `reject`",
        ),
        (
            "rule without action",
            "action = \"allow\"\n",
            "",
            "p.toml:32:1: missing field `action`",
        ),
        (
            "unknown proto",
            "proto = \"tcp\"",
            "proto = \"sctp\"",
            "p.toml:35:9: unknown variant `sctp`, expected one of `tcp`, `udp`, `icmp`, `any`",
        ),
        (
            "unknown selector key",
            "{ cidr = \"10.9.0.0/16\" }",
            "{ host = \"10.9.0.0\" }",
            "p.toml:33:83: unknown selector key `host`, expected `labels`, `cidr` or `identity`",
        ),
        (
            "selector table with two keys",
            "{ cidr = \"10.9.0.0/16\" }",
            "{ cidr = \"10.9.0.0/16\", labels = {} }",
            "p.toml:33:83: selector table with both `cidr` and `labels`, expected exactly one key (list several selectors instead)",
        ),
        (
            "bad CIDR in a selector",
            "\"10.9.0.0/16\"",
            "\"10.9.0.0/33\"",
            "p.toml:33:92: invalid CIDR \"10.9.0.0/33\", expected ADDRESS/PREFIX such as \"10.1.0.1/24\" (prefix 0..=32)",
        ),
        (
            "duplicate set name",
            "",
            "\n[[policy.set]]\nname = \"payments\"\n",
            "p.toml:40:8: duplicate policy set name `payments` (first declared at line 29)",
        ),
        (
            "bad set name",
            "name = \"payments\"",
            "name = \"pay ments\"",
            "p.toml:29:8: invalid policy set name `pay ments`, expected 1 to 64 of A-Z a-z 0-9 _ . - (not starting with . or -)",
        ),
        (
            "shadowed rule points at the shadowing rule",
            "",
            LATER_RULE,
            "p.toml:42:1: policy rule can never match: every flow it matches is decided first by the rule at line 32, expected it placed before them or removed",
        ),
        (
            "a rule that can never match: earlier rules split its ports",
            "",
            "\n[[policy.set.rule]]\nfrom = [\"spiffe://lab/ns/web/*\"]\nto = [\"spiffe://lab/ns/payments/sa/api\"]\nproto = \"tcp\"\nports = [\"0-8079\", \"8081-8999\", \"9101-65535\"]\naction = \"allow\"\n\n[[policy.set.rule]]\nfrom = [\"spiffe://lab/ns/web/sa/api\"]\nto = [\"spiffe://lab/ns/payments/sa/api\"]\nproto = \"tcp\"\naction = \"reject\"\n",
            "p.toml:46:1: policy rule can never match: every flow it matches is decided first by the rules at lines 32, 39, expected it placed before them or removed",
        ),
        (
            "unknown field in a rule",
            "action = \"allow\"",
            "action = \"allow\"\nport = 80",
            "p.toml:38:1: unknown field `port`, expected one of `from`, `to`, `proto`, `ports`, `action`",
        ),
    ];

    #[test]
    fn each_error_points_at_its_value() {
        assert!(parse_warden(BASE, "p.toml").is_ok());
        for (what, old, new, expected) in CASES {
            assert_eq!(err(&edit(old, new)), *expected, "case: {what}");
        }
    }

    #[test]
    fn policy_needs_identity() {
        let plain = "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\n\n[[port]]\nname = \"uplink\"\nbackend = \"af_packet\"\ninterface = \"eth0\"\n\n[policy]\n";
        assert_eq!(
            err(plain),
            "p.toml:10:1: [policy] needs identity enabled, expected an [identity] table with `warden_id`"
        );
    }

    #[test]
    fn parses_to_the_spec_and_round_trips() {
        let c = parse_warden(BASE, "p.toml").unwrap();
        let p = c.policy.clone().unwrap();
        assert_eq!(p.default_mode, Mode::Enforce);
        assert_eq!(p.sets.len(), 1);
        let set = &p.sets[0];
        assert_eq!((set.name.as_str(), set.mode), ("payments", Mode::Monitor));
        let r = &set.rules[0];
        assert_eq!(
            r.from,
            [
                Selector::Glob("spiffe://lab/ns/web/*".into()),
                Selector::Labels([("app".to_string(), "web".to_string())].into()),
                Selector::Unauthenticated,
                Selector::Cidr("10.9.0.0/16".parse().unwrap()),
            ]
        );
        assert_eq!(
            r.ports,
            [PortRange::single(8080), PortRange { lo: 9000, hi: 9100 }]
        );
        let out = c.to_toml();
        assert_eq!(parse_warden(&out, "out").unwrap(), c, "{out}");
        // Defaults when [policy] says nothing.
        let bare = BASE.replace("default = \"enforce\"\ndefault_action = \"deny\"\n", "");
        let c2 = parse_warden(&bare, "p.toml").unwrap();
        assert_eq!(c2.policy, c.policy);
    }

    #[test]
    fn selectors_written_back_keep_their_meaning() {
        let odd = Selector::Identity("a*b".into());
        assert_eq!(selector_toml(&odd), "{ identity = \"a*b\" }");
        assert_eq!(
            selector_toml(&Selector::Labels(
                [("needs quote".to_string(), "x".to_string())].into()
            )),
            "{ labels = { \"needs quote\" = \"x\" } }"
        );
        assert_eq!(
            selector_toml(&Selector::Unauthenticated),
            "\"unauthenticated\""
        );
    }

    #[test]
    fn learned_proposal_parses_compiles_and_admits_exactly_what_was_seen() {
        let c = parse_warden(BASE, "p.toml").unwrap();
        let docs = &c.documents;
        let at = |i: u32| Endpoint {
            subject: Subject::Identity(i),
            addr: Some(Ipv4Addr::new(10, 1, 0, i as u8 + 1)),
        };
        let stranger = Endpoint {
            subject: Subject::Unauthenticated,
            addr: Some(Ipv4Addr::new(10, 7, 0, 9)),
        };
        let unknown = Endpoint {
            subject: Subject::Unknown,
            addr: Some(Ipv4Addr::new(10, 1, 0, 3)),
        };
        let q = |src, dst, proto, dst_port| FlowQuery {
            src,
            dst,
            proto,
            dst_port,
        };
        let seen = [
            q(at(0), at(1), 6, 8080),
            q(at(0), at(1), 6, 8081),
            q(at(0), at(1), 6, 9000),
            q(at(0), at(2), 17, 53),
            q(stranger, at(2), 1, 0),
            q(at(1), unknown, 6, 5432),
        ];
        let flows: Vec<LearnedFlow> = seen.iter().filter_map(LearnedFlow::from_query).collect();
        assert_eq!(flows.len(), seen.len());
        assert_eq!(flows[4].src, Peer::Addr(Ipv4Addr::new(10, 7, 0, 9)));
        let proposal = policy::propose(&flows, docs, "learned");
        let text = BASE.replace(
            "[[policy.set]]\nname = \"payments\"",
            &format!("{proposal}\n[[policy.set]]\nname = \"payments\""),
        );
        // Only the proposal: drop the base's own set.
        let text = &text[..text.find("\n[[policy.set]]\nname = \"payments\"").unwrap()];
        let c = parse_warden(text, "learned.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let spec = c.policy.unwrap();
        let compiled = policy::compile(&spec, docs).unwrap();
        for s in &seen {
            // The unknown destination was recorded by address: ask as the
            // engine would after learning, with the same address.
            let d: Decision = compiled.lookup(s);
            assert_eq!(d.action, Action::Allow, "{s:?}\n{proposal}");
        }
        let not_seen = [
            q(at(0), at(1), 6, 8082),
            q(at(1), at(0), 6, 8080),
            q(at(0), at(2), 6, 53),
            q(stranger, at(1), 1, 0),
            q(at(2), at(1), 1, 0),
        ];
        for s in &not_seen {
            let d = compiled.lookup(s);
            assert_eq!(
                (d.action, d.rule),
                (Action::Deny, None),
                "{s:?}\n{proposal}"
            );
        }
    }
}
