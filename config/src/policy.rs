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
use crate::value::{is_simple_name, CidrValue, SIMPLE_NAME};
use crate::warden::{invalid, one_of, quote, Invalid, Seen};

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
                    other => return Err(de::Error::custom(format_args!(
                        "unknown selector key `{other}`, expected `labels`, `cidr` or `identity`"
                    ))),
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
