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
//!
//! [[policy.set.rule]]           # an L7 rule: only with action = "allow"
//! from = ["spiffe://lab/ns/web/*"]
//! to = ["spiffe://lab/ns/payments/sa/api", { fqdn = "*.example.com" }]
//! proto = "tcp"
//! ports = [8080]
//! action = "allow"
//! app = "http"                 # http | tls | dns | ssh: the detected protocol
//! http = [ { methods = ["GET", "HEAD"], paths = ["/orders", "/orders/**"], hosts = ["orders.svc"] } ]
//! # or tls = [ { server_names = ["*.example.com"], alpn = ["h2"] } ]
//! # or dns = [ { names = ["api.example.com"] } ]
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
    Action, CompileError, DenyAction, DnsMatch, HttpMatch, L7At, L7Clause, L7Field, L7Problem,
    Mode, PolicySpec, PortRange, Proto, RuleLoc, RuleSpec, Selector, SetSpec, Side, TlsMatch,
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
    app: Option<Spanned<AppDto>>,
    http: Option<Spanned<Vec<Spanned<HttpDto>>>>,
    tls: Option<Spanned<Vec<Spanned<TlsDto>>>>,
    dns: Option<Spanned<Vec<Spanned<DnsDto>>>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AppDto {
    Http,
    Tls,
    Dns,
    Ssh,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpDto {
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    #[serde(default)]
    paths: Vec<Spanned<String>>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsDto {
    #[serde(default)]
    server_names: Vec<Spanned<String>>,
    #[serde(default)]
    alpn: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsDto {
    #[serde(default)]
    names: Vec<Spanned<String>>,
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
    Fqdn(String),
}

const SELECTOR_EXPECTED: &str = "an identity name, a glob, \"unauthenticated\", { labels = { KEY = \"VALUE\", ... } }, { cidr = \"ADDRESS/PREFIX\" }, { identity = \"NAME\" } or { fqdn = \"NAME\" }";

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
                    "fqdn" => SelectorDto::Fqdn(map.next_value()?),
                    other => {
                        return Err(de::Error::custom(format_args!(
                        "unknown selector key `{other}`, expected `labels`, `cidr`, `identity` or `fqdn`"
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
    /// `app`'s value, the clause's value, and per clause entry its span
    /// and the spans of its three (or fewer) lists' items.
    app: Option<Range<usize>>,
    clause: Option<Range<usize>>,
    entries: EntrySpans,
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
        SelectorDto::Fqdn(n) => Selector::Fqdn(n.clone()),
    }
}

fn strings(v: &[Spanned<String>]) -> Vec<String> {
    v.iter().map(|x| x.get_ref().clone()).collect()
}

fn spans(v: &[Spanned<String>]) -> Vec<Range<usize>> {
    v.iter().map(Spanned::span).collect()
}

/// Per clause entry: its span and its lists' item spans.
type EntrySpans = Vec<(Range<usize>, [Vec<Range<usize>>; 3])>;

/// A rule's `app`, clause, the clause's span and its entries' spans.
type RuleL7Parts = (
    Option<l7::detect::Proto>,
    Option<L7Clause>,
    Option<Range<usize>>,
    EntrySpans,
);

/// A rule's `app` and clause, with their spans; an error when it has more
/// than one of `http`, `tls`, `dns`.
fn rule_l7(r: &RuleDto) -> Result<RuleL7Parts, Invalid> {
    use l7::detect::Proto as App;
    let app = r.app.as_ref().map(|a| match a.get_ref() {
        AppDto::Http => App::Http,
        AppDto::Tls => App::Tls,
        AppDto::Dns => App::Dns,
        AppDto::Ssh => App::Ssh,
    });
    let given: Vec<(&str, Range<usize>)> = [
        r.http.as_ref().map(|c| ("http", c.span())),
        r.tls.as_ref().map(|c| ("tls", c.span())),
        r.dns.as_ref().map(|c| ("dns", c.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [(first, _), (second, at), ..] = given.as_slice() {
        return Err(invalid(
            at.clone(),
            ErrorKind::PolicyL7(format!(
                "a rule with both `{first}` and `{second}`, expected at most one of `http`, `tls`, `dns` per rule (write another rule)"
            )),
        ));
    }
    let clause_span = given.first().map(|(_, s)| s.clone());
    let (clause, entries) = if let Some(c) = &r.http {
        (
            Some(L7Clause::Http(
                c.get_ref()
                    .iter()
                    .map(|e| {
                        let e = e.get_ref();
                        HttpMatch {
                            methods: strings(&e.methods),
                            paths: strings(&e.paths),
                            hosts: strings(&e.hosts),
                        }
                    })
                    .collect(),
            )),
            c.get_ref()
                .iter()
                .map(|e| {
                    let d = e.get_ref();
                    (
                        e.span(),
                        [spans(&d.methods), spans(&d.paths), spans(&d.hosts)],
                    )
                })
                .collect(),
        )
    } else if let Some(c) = &r.tls {
        (
            Some(L7Clause::Tls(
                c.get_ref()
                    .iter()
                    .map(|e| {
                        let e = e.get_ref();
                        TlsMatch {
                            server_names: strings(&e.server_names),
                            alpn: strings(&e.alpn),
                        }
                    })
                    .collect(),
            )),
            c.get_ref()
                .iter()
                .map(|e| {
                    let d = e.get_ref();
                    (
                        e.span(),
                        [spans(&d.server_names), spans(&d.alpn), Vec::new()],
                    )
                })
                .collect(),
        )
    } else if let Some(c) = &r.dns {
        (
            Some(L7Clause::Dns(
                c.get_ref()
                    .iter()
                    .map(|e| DnsMatch {
                        names: strings(&e.get_ref().names),
                    })
                    .collect(),
            )),
            c.get_ref()
                .iter()
                .map(|e| {
                    (
                        e.span(),
                        [spans(&e.get_ref().names), Vec::new(), Vec::new()],
                    )
                })
                .collect(),
        )
    } else {
        (None, Vec::new())
    };
    Ok((app, clause, clause_span, entries))
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
            let (app, l7, clause_span, entries) = rule_l7(r)?;
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
                app,
                l7,
            });
            rule_spans.push(RuleSpans {
                rule: span,
                from: r.from.iter().map(Spanned::span).collect(),
                to: r.to.iter().map(Spanned::span).collect(),
                ports: r.ports.iter().map(Spanned::span).collect(),
                app: r.app.as_ref().map(Spanned::span),
                clause: clause_span,
                entries,
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
        CompileError::FqdnOnSource { at } => invalid(
            sel_span(at),
            ErrorKind::PolicyFqdn(
                "an fqdn selector in `from`, expected fqdn selectors only in `to` (addresses are learned for destinations)".into(),
            ),
        ),
        CompileError::BadFqdn { at, fqdn } => invalid(
            sel_span(at),
            ErrorKind::PolicyFqdn(format!(
                "invalid fqdn {fqdn:?}, expected a lowercase name or `*.suffix` such as \"*.example.com\""
            )),
        ),
        CompileError::TooManyFqdns { at } => invalid(
            sel_span(at),
            ErrorKind::PolicyFqdn(format!(
                "more than {} distinct fqdn patterns, expected at most {}",
                policy::compile::MAX_FQDNS,
                policy::compile::MAX_FQDNS
            )),
        ),
        CompileError::L7 {
            rule: l,
            at,
            problem,
        } => {
            let r = rule(*l);
            let span = r.and_then(|r| l7_span(r, at)).unwrap_or_else(|| whole.clone());
            invalid(span, ErrorKind::PolicyL7(l7_message(problem)))
        }
        CompileError::TooLarge { .. } => invalid(whole, ErrorKind::PolicyTooLarge(e.to_string())),
    }
}

/// The text an L7 error is about.
fn l7_span(r: &RuleSpans, at: &L7At) -> Option<Range<usize>> {
    let entry = |i: usize| r.entries.get(i);
    let item = |list: usize| {
        entry(at.entry)
            .and_then(|(_, lists)| lists[list].get(at.index))
            .cloned()
    };
    match at.field {
        L7Field::App => r.app.clone().or_else(|| r.clause.clone()),
        L7Field::Clause => r.clause.clone().or_else(|| r.app.clone()),
        L7Field::Entry => entry(at.entry).map(|(s, _)| s.clone()),
        L7Field::Methods | L7Field::ServerNames | L7Field::Names => item(0),
        L7Field::Paths | L7Field::Alpn => item(1),
        L7Field::Hosts => item(2),
    }
}

/// An L7 problem as a config message, with what was expected.
fn l7_message(p: &L7Problem) -> String {
    match p {
        L7Problem::NotAllow => "an L7 clause or `app` on a deny or reject rule, expected action = \"allow\" (L7 rules are allow-lists: a later rule or the default decides what they do not allow)".into(),
        L7Problem::AppMismatch { app, clause } => format!(
            "app = \"{}\" with a `{}` clause, expected app = \"{}\" or no app",
            app.as_str(),
            clause.as_str(),
            clause.as_str()
        ),
        L7Problem::WrongProto { app, proto } => format!(
            "{} on proto = \"{}\", expected {}",
            app.as_str(),
            proto.as_str(),
            if *app == l7::detect::Proto::Dns {
                "proto = \"udp\", \"tcp\" or \"any\""
            } else {
                "proto = \"tcp\""
            }
        ),
        L7Problem::EmptyClause => "an empty clause allows nothing, expected at least one entry".into(),
        L7Problem::EmptyEntry => "an entry without conditions, expected at least one non-empty list in it (or `app` alone for any request of the protocol)".into(),
        L7Problem::UnknownMethod(m) => format!(
            "unknown HTTP method {m:?}, expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (exact case)"
        ),
        L7Problem::BadPath { path, problem } => format!(
            "invalid path pattern {path:?}: {problem}, expected /exact, a glob /a/*/b, or /prefix/** in normal form"
        ),
        L7Problem::BadName { name } => format!(
            "invalid name pattern {name:?}, expected a lowercase name or `*.suffix` such as \"*.example.com\""
        ),
        L7Problem::BadHost { host, problem } => format!(
            "invalid host {host:?}: {problem}, expected NAME or NAME:PORT, NAME lowercase or `*.suffix`"
        ),
        L7Problem::BadAlpn { alpn } => format!(
            "invalid ALPN protocol id {alpn:?}, expected 1 to 255 bytes such as \"h2\" or \"http/1.1\""
        ),
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
        Selector::Fqdn(n) => format!("{{ fqdn = {} }}", quote(n)),
    }
}

/// A list of strings as TOML.
fn string_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

/// An L7 clause as `http = [...]`, `tls = [...]` or `dns = [...]`.
pub(crate) fn clause_toml(c: &L7Clause) -> String {
    let table = |fields: &[(&str, &Vec<String>)]| {
        let parts: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} = {}", string_list(v)))
            .collect();
        format!("{{ {} }}", parts.join(", "))
    };
    let (key, entries): (&str, Vec<String>) = match c {
        L7Clause::Http(v) => (
            "http",
            v.iter()
                .map(|e| {
                    table(&[
                        ("methods", &e.methods),
                        ("paths", &e.paths),
                        ("hosts", &e.hosts),
                    ])
                })
                .collect(),
        ),
        L7Clause::Tls(v) => (
            "tls",
            v.iter()
                .map(|e| table(&[("server_names", &e.server_names), ("alpn", &e.alpn)]))
                .collect(),
        ),
        L7Clause::Dns(v) => (
            "dns",
            v.iter().map(|e| table(&[("names", &e.names)])).collect(),
        ),
    };
    format!("{key} = [{}]", entries.join(", "))
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
            if let Some(a) = r.app {
                let _ = writeln!(out, "app = \"{}\"", a.as_str());
            }
            if let Some(c) = &r.l7 {
                let _ = writeln!(out, "{}", clause_toml(c));
            }
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
            "p.toml:33:83: unknown selector key `host`, expected `labels`, `cidr`, `identity` or `fqdn`",
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
            "p.toml:38:1: unknown field `port`, expected one of `from`, `to`, `proto`, `ports`, `action`, `app`, `http`, `tls`, `dns`",
        ),
    ];

    const TCP_RULE: &str = "proto = \"tcp\"\nports = [8080, \"9000-9100\"]\naction = \"allow\"";
    const ALLOW: &str = "action = \"allow\"";

    /// L7 clauses and FQDN selectors: (what, replace, with, expected).
    const L7_CASES: &[(&str, &str, &str, &str)] = &[
        ("clause on a deny rule", ALLOW, "action = \"deny\"\nhttp = [{ methods = [\"GET\"] }]", "p.toml:38:8: an L7 clause or `app` on a deny or reject rule, expected action = \"allow\" (L7 rules are allow-lists: a later rule or the default decides what they do not allow)"),
        ("app on a reject rule", ALLOW, "action = \"reject\"\napp = \"http\"", "p.toml:38:7: an L7 clause or `app` on a deny or reject rule, expected action = \"allow\" (L7 rules are allow-lists: a later rule or the default decides what they do not allow)"),
        ("two clauses", ALLOW, "action = \"allow\"\nhttp = [{ methods = [\"GET\"] }]\ntls = [{ server_names = [\"a.b\"] }]", "p.toml:39:7: a rule with both `http` and `tls`, expected at most one of `http`, `tls`, `dns` per rule (write another rule)"),
        ("app contradicts the clause", ALLOW, "action = \"allow\"\napp = \"tls\"\nhttp = [{ methods = [\"GET\"] }]", "p.toml:38:7: app = \"tls\" with a `http` clause, expected app = \"http\" or no app"),
        ("http on udp", TCP_RULE, "proto = \"udp\"\nports = [8080]\naction = \"allow\"\nhttp = [{ methods = [\"GET\"] }]", "p.toml:38:8: http on proto = \"udp\", expected proto = \"tcp\""),
        ("tls on any", TCP_RULE, "action = \"allow\"\ntls = [{ server_names = [\"a.example.com\"] }]", "p.toml:36:7: tls on proto = \"any\", expected proto = \"tcp\""),
        ("ssh on udp", TCP_RULE, "proto = \"udp\"\naction = \"allow\"\napp = \"ssh\"", "p.toml:37:7: ssh on proto = \"udp\", expected proto = \"tcp\""),
        ("dns on icmp", TCP_RULE, "proto = \"icmp\"\naction = \"allow\"\ndns = [{ names = [\"a.example.com\"] }]", "p.toml:37:7: dns on proto = \"icmp\", expected proto = \"udp\", \"tcp\" or \"any\""),
        ("unknown method", ALLOW, "action = \"allow\"\nhttp = [{ methods = [\"GET\", \"get\"] }]", "p.toml:38:29: unknown HTTP method \"get\", expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (exact case)"),
        ("path with dot segments", ALLOW, "action = \"allow\"\nhttp = [{ paths = [\"/api/../x\"] }]", "p.toml:38:20: invalid path pattern \"/api/../x\": not in normal form (no `.` or `..` segments, `//`, or needless %-escapes), expected /exact, a glob /a/*/b, or /prefix/** in normal form"),
        ("relative path", ALLOW, "action = \"allow\"\nhttp = [{ paths = [\"api\"] }]", "p.toml:38:20: invalid path pattern \"api\": does not start with `/`, expected /exact, a glob /a/*/b, or /prefix/** in normal form"),
        ("misplaced **", ALLOW, "action = \"allow\"\nhttp = [{ paths = [\"/a/**/b\"] }]", "p.toml:38:20: invalid path pattern \"/a/**/b\": `**` is only allowed as the whole last segment, expected /exact, a glob /a/*/b, or /prefix/** in normal form"),
        ("server name not lowercase", ALLOW, "action = \"allow\"\ntls = [{ server_names = [\"*.Example.com\"] }]", "p.toml:38:26: invalid name pattern \"*.Example.com\", expected a lowercase name or `*.suffix` such as \"*.example.com\""),
        ("dns name with a star inside", ALLOW, "action = \"allow\"\ndns = [{ names = [\"a.*.com\"] }]", "p.toml:38:19: invalid name pattern \"a.*.com\", expected a lowercase name or `*.suffix` such as \"*.example.com\""),
        ("host port out of range", ALLOW, "action = \"allow\"\nhttp = [{ hosts = [\"a.svc:99999\"] }]", "p.toml:38:20: invalid host \"a.svc:99999\": the port is not 1..=65535, expected NAME or NAME:PORT, NAME lowercase or `*.suffix`"),
        ("host with a bad name", ALLOW, "action = \"allow\"\nhttp = [{ hosts = [\"a svc:80\"] }]", "p.toml:38:20: invalid host \"a svc:80\": the name is not a lowercase name or `*.suffix`, expected NAME or NAME:PORT, NAME lowercase or `*.suffix`"),
        ("empty alpn", ALLOW, "action = \"allow\"\ntls = [{ alpn = [\"\"] }]", "p.toml:38:18: invalid ALPN protocol id \"\", expected 1 to 255 bytes such as \"h2\" or \"http/1.1\""),
        ("empty clause", ALLOW, "action = \"allow\"\nhttp = []", "p.toml:38:8: an empty clause allows nothing, expected at least one entry"),
        ("entry without conditions", ALLOW, "action = \"allow\"\nhttp = [{ methods = [\"GET\"] }, {}]", "p.toml:38:32: an entry without conditions, expected at least one non-empty list in it (or `app` alone for any request of the protocol)"),
        ("dns entry without names", ALLOW, "action = \"allow\"\ndns = [{ names = [] }]", "p.toml:38:8: an entry without conditions, expected at least one non-empty list in it (or `app` alone for any request of the protocol)"),
        ("unknown field in an entry", ALLOW, "action = \"allow\"\nhttp = [{ method = [\"GET\"] }]", "p.toml:38:11: unknown field `method`, expected one of `methods`, `paths`, `hosts`"),
        ("unknown app", ALLOW, "action = \"allow\"\napp = \"ftp\"", "p.toml:38:7: unknown variant `ftp`, expected one of `http`, `tls`, `dns`, `ssh`"),
        ("fqdn on the source", "from = [\"spiffe", "from = [{ fqdn = \"a.example.com\" }, \"spiffe", "p.toml:33:9: an fqdn selector in `from`, expected fqdn selectors only in `to` (addresses are learned for destinations)"),
        ("bad fqdn", "to = [\"spiffe://lab/ns/payments/sa/api\"]", "to = [{ fqdn = \"A.example.com\" }]", "p.toml:34:7: invalid fqdn \"A.example.com\", expected a lowercase name or `*.suffix` such as \"*.example.com\""),
    ];

    #[test]
    fn each_l7_error_points_at_its_value() {
        for (what, old, new, expected) in L7_CASES {
            assert_eq!(err(&edit(old, new)), *expected, "case: {what}");
        }
    }

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

    const L7_SET: &str = r#"
[[policy.set]]
name = "l7"

[[policy.set.rule]]
from = ["spiffe://lab/ns/web/sa/api"]
to = ["spiffe://lab/ns/payments/sa/api"]
proto = "tcp"
ports = [80]
action = "allow"
app = "http"
http = [ { methods = ["GET", "HEAD"], paths = ["/orders", "/orders/**", "/items/*/price"], hosts = ["orders.svc", "*.orders.svc:8080"] },
         { methods = ["POST"], paths = ["/orders"] } ]

[[policy.set.rule]]
from = ["spiffe://lab/ns/web/sa/api"]
to = [{ fqdn = "*.example.com" }, { fqdn = "api.example.com" }]
proto = "tcp"
ports = [443]
action = "allow"
tls = [ { server_names = ["*.example.com"], alpn = ["h2", "http/1.1"] } ]

[[policy.set.rule]]
from = ["spiffe://lab/ns/web/sa/api"]
proto = "udp"
ports = [53]
action = "allow"
dns = [ { names = ["api.example.com", "*.svc.cluster.local"] } ]

[[policy.set.rule]]
from = ["spiffe://lab/ns/web/sa/api"]
to = ["spiffe://lab/ns/payments/sa/db"]
proto = "tcp"
ports = [22]
action = "allow"
app = "ssh"
"#;

    #[test]
    fn l7_rules_parse_compile_and_round_trip() {
        use l7::detect::Proto as App;
        use policy::{DnsMatch, L7Request};
        let text = format!("{BASE}{L7_SET}");
        let c = parse_warden(&text, "p.toml").unwrap_or_else(|e| panic!("{e}"));
        let p = c.policy.clone().unwrap();
        let rules = &p.sets[1].rules;
        assert_eq!(rules[0].app, Some(App::Http));
        let Some(L7Clause::Http(h)) = &rules[0].l7 else {
            panic!("{:?}", rules[0].l7)
        };
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].hosts, ["orders.svc", "*.orders.svc:8080"]);
        assert_eq!(h[1].methods, ["POST"]);
        assert_eq!(
            rules[1].to,
            [
                Selector::Fqdn("*.example.com".into()),
                Selector::Fqdn("api.example.com".into())
            ]
        );
        assert_eq!(
            rules[2].l7,
            Some(L7Clause::Dns(vec![DnsMatch {
                names: vec!["api.example.com".into(), "*.svc.cluster.local".into()]
            }]))
        );
        assert_eq!((rules[3].app, &rules[3].l7), (Some(App::Ssh), &None));
        let out = c.to_toml();
        assert!(
            out.contains("app = \"http\"\nhttp = [{ methods = [\"GET\", \"HEAD\"]"),
            "{out}"
        );
        assert_eq!(parse_warden(&out, "out").unwrap(), c, "{out}");

        // The compiled policy answers requests as written.
        let compiled = policy::compile(&p, &c.documents).unwrap();
        assert_eq!(
            compiled.fqdn_patterns(),
            ["*.example.com", "api.example.com"]
        );
        let at = |i: u32| Endpoint {
            subject: Subject::Identity(i),
            addr: Some(Ipv4Addr::new(10, 1, 0, i as u8 + 1)),
        };
        let q = FlowQuery {
            src: at(0),
            dst: at(1),
            proto: 6,
            dst_port: 80,
            dst_fqdns: 0,
        };
        let d = compiled.lookup(&q);
        assert!(d.l7 && d.action == Action::Allow, "{d:?}");
        let r0 = d.rule.unwrap();
        let get =
            |m: &'static str, path: &'static str, host: Option<(&'static str, Option<u16>)>| {
                compiled
                    .request(
                        &q,
                        r0,
                        &L7Request::Http {
                            method: m.as_bytes(),
                            path: path.as_bytes(),
                            host: host.map(|(n, p)| (n.as_bytes(), p)),
                        },
                    )
                    .action
            };
        assert_eq!(
            get("GET", "/orders/7", Some(("orders.svc", None))),
            Action::Allow
        );
        assert_eq!(
            get("HEAD", "/items/3/price", Some(("a.orders.svc", Some(8080)))),
            Action::Allow
        );
        assert_eq!(
            get("GET", "/items/3/price", Some(("a.orders.svc", None))),
            Action::Deny
        );
        assert_eq!(
            get("GET", "/admin", Some(("orders.svc", None))),
            Action::Deny
        );
        assert_eq!(get("POST", "/orders", None), Action::Allow);
        assert_eq!(get("POST", "/orders/1", None), Action::Deny);
        // TLS toward a learned name only.
        let tls_q = FlowQuery {
            dst: Endpoint {
                subject: Subject::Unauthenticated,
                addr: Some(Ipv4Addr::new(93, 184, 216, 34)),
            },
            dst_port: 443,
            ..q
        };
        assert_eq!(compiled.lookup(&tls_q).rule, None);
        let learned = FlowQuery {
            dst_fqdns: 0b01,
            ..tls_q
        };
        let d = compiled.lookup(&learned);
        assert!(d.l7, "{d:?}");
        assert!(compiled.inspect(&learned, d.rule.unwrap()).parses(App::Tls));
    }

    #[test]
    fn learned_l7_proposal_admits_exactly_the_requests_seen() {
        use policy::{L7Request, LearnedL7};
        let c = parse_warden(BASE, "p.toml").unwrap();
        let docs = &c.documents;
        let f = |proto, port, l7| LearnedFlow {
            src: Peer::Identity(0),
            dst: Peer::Identity(1),
            proto,
            port,
            l7: Some(l7),
        };
        let http = |m: &str, p: &str| LearnedL7::Http {
            method: m.into(),
            path: p.into(),
        };
        let flows = [
            f(6, 80, http("GET", "/orders/1")),
            f(6, 80, http("GET", "/orders/2")),
            f(6, 80, http("POST", "/orders")),
            f(6, 80, http("get", "/x")),
            f(
                6,
                443,
                LearnedL7::Tls {
                    server_name: "api.example.com".into(),
                },
            ),
            f(
                17,
                53,
                LearnedL7::Dns {
                    name: "db.svc.cluster.local".into(),
                },
            ),
            // Recorded at L4 too: the port stays L7-only.
            LearnedFlow {
                l7: None,
                ..f(6, 80, http("GET", "/"))
            },
            LearnedFlow {
                l7: None,
                ..f(6, 9000, http("GET", "/"))
            },
        ];
        let proposal = policy::propose(&flows, docs, "learned");
        assert!(proposal.contains("# not admitted:"), "{proposal}");
        let head = &BASE[..BASE.find("[[policy.set]]").unwrap()];
        let text = format!("{head}{proposal}");
        let c = parse_warden(&text, "learned.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let spec = c.policy.unwrap();
        let compiled = policy::compile(&spec, docs).unwrap();
        let q = |proto, dst_port| FlowQuery {
            src: Endpoint {
                subject: Subject::Identity(0),
                addr: None,
            },
            dst: Endpoint {
                subject: Subject::Identity(1),
                addr: None,
            },
            proto,
            dst_port,
            dst_fqdns: 0,
        };
        let ask = |proto, port, req: L7Request<'_>| {
            let fq = q(proto, port);
            let d = compiled.lookup(&fq);
            assert!(d.l7, "{d:?}\n{proposal}");
            compiled.request(&fq, d.rule.unwrap(), &req).action
        };
        let get = |m: &'static str, p: &'static str| L7Request::Http {
            method: m.as_bytes(),
            path: p.as_bytes(),
            host: None,
        };
        let alpn = l7::tls::Alpn::from_wire(b"").unwrap();
        let tls = |n: &'static str| L7Request::Tls {
            sni: Some(n.as_bytes()),
            alpn,
            ech: false,
        };
        for (proto, port, req) in [
            (6, 80, get("GET", "/orders/1")),
            (6, 80, get("GET", "/orders/2")),
            (6, 80, get("POST", "/orders")),
            (6, 443, tls("api.example.com")),
            (
                17,
                53,
                L7Request::Dns {
                    name: b"db.svc.cluster.local",
                },
            ),
        ] {
            assert_eq!(ask(proto, port, req), Action::Allow, "{req:?}\n{proposal}");
        }
        for (proto, port, req) in [
            (6, 80, get("GET", "/orders/3")),
            (6, 80, get("POST", "/orders/1")),
            (6, 80, get("GET", "/")),
            (6, 443, tls("www.example.com")),
            (
                17,
                53,
                L7Request::Dns {
                    name: b"other.svc.cluster.local",
                },
            ),
        ] {
            assert_eq!(ask(proto, port, req), Action::Deny, "{req:?}\n{proposal}");
        }
        assert_eq!(compiled.lookup(&q(6, 9000)).action, Action::Allow);
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
            dst_fqdns: 0,
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
