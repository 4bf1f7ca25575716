//! L7 clauses: what a rule says about the requests of a flow, how they
//! are checked at compile time, and how a request is matched.
//!
//! The matchers are `l7::pattern`'s ([`PathPattern`], [`MethodSet`],
//! [`NamePattern`], [`HostPattern`]); this module only turns the spec's
//! strings into them and says which request a clause allows. The syntax
//! of the strings:
//!
//! | field | forms |
//! | --- | --- |
//! | `methods` | exact tokens `GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH` (case-sensitive) |
//! | `paths` | `/a/b` exact; with a `*`, a glob: `*` within one segment (`/api/*/items`), `**` as the whole last segment for any rest (`/static/**` matches `/static` and everything below it). In normal form (no `..`, `.`, `//`, needless `%xx`) and starting with `/` |
//! | `hosts` | `name` (any port) or `name:port`; `name` exact or `*.suffix`, lowercase |
//! | `server_names`, `names`, `{ fqdn = ... }` | exact or `*.suffix` (one or more labels), lowercase, no trailing dot |
//! | `alpn` | protocol ids as sent, e.g. `h2`, `http/1.1` (1 to 255 bytes) |

use std::fmt;

use l7::detect::Proto as App;
use l7::http::Method;
use l7::pattern::{HostPattern, MethodSet, NamePattern, PathPattern, PatternError};
use l7::tls::Alpn;

use crate::model::Proto;

/// The L7 part of a rule: a list of entries of one protocol; a request
/// that any entry matches is allowed by the rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum L7Clause {
    Http(Vec<HttpMatch>),
    Tls(Vec<TlsMatch>),
    Dns(Vec<DnsMatch>),
}

impl L7Clause {
    /// The application protocol the clause is about.
    pub fn app(&self) -> App {
        match self {
            L7Clause::Http(_) => App::Http,
            L7Clause::Tls(_) => App::Tls,
            L7Clause::Dns(_) => App::Dns,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            L7Clause::Http(v) => v.len(),
            L7Clause::Tls(v) => v.len(),
            L7Clause::Dns(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One HTTP entry: a request matches when its method, path and host each
/// match (an empty list: any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HttpMatch {
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub hosts: Vec<String>,
}

/// One TLS entry: a ClientHello matches when its server name and its ALPN
/// offer each match (an empty list: any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsMatch {
    pub server_names: Vec<String>,
    /// Matches when the client offers any of these.
    pub alpn: Vec<String>,
}

/// One DNS entry: a query matches when its name matches any of `names`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DnsMatch {
    pub names: Vec<String>,
}

/// A request of an inspected flow, as the parsers produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L7Request<'a> {
    /// An HTTP request head: the method token as sent, the normalised
    /// path ([`l7::http::normalize_path`]) and the normalised host (name
    /// lowercase, port `None` when it was absent or 80).
    Http {
        method: &'a [u8],
        path: &'a [u8],
        host: Option<(&'a [u8], Option<u16>)>,
    },
    /// A ClientHello: the server name (lowercase), the ALPN offer, and
    /// whether it was encrypted (ECH/ESNI: the outer name is a decoy).
    Tls {
        sni: Option<&'a [u8]>,
        alpn: Alpn<'a>,
        ech: bool,
    },
    /// A DNS query: its name (lowercase, no trailing dot).
    Dns { name: &'a [u8] },
    /// The first bytes decided the protocol and no clause of that
    /// protocol can follow (see [`Inspect`]): decides the flow by the
    /// rules that require only `app`.
    Detected(App),
}

impl<'a> L7Request<'a> {
    /// The request of a parsed HTTP head.
    pub fn http(r: &l7::http::Request<'a>) -> L7Request<'a> {
        L7Request::Http {
            method: r.method,
            path: r.path,
            host: r.host.map(|h| (h.name, h.port)),
        }
    }

    /// The request of a parsed ClientHello.
    pub fn tls(h: &l7::tls::ClientHello<'a>) -> L7Request<'a> {
        L7Request::Tls {
            sni: h.sni,
            alpn: h.alpn,
            ech: h.ech,
        }
    }

    /// The protocol the request is in.
    pub fn app(&self) -> App {
        match self {
            L7Request::Http { .. } => App::Http,
            L7Request::Tls { .. } => App::Tls,
            L7Request::Dns { .. } => App::Dns,
            L7Request::Detected(p) => *p,
        }
    }
}

/// Which parsers an inspected flow needs: the kinds of clause among the
/// L7 rules that can decide its requests. The engine detects the
/// protocol `p` from the first bytes; if [`Inspect::parses`]`(p)` it feeds
/// `p`'s parser and asks [`crate::CompiledPolicy::request`] for each
/// request (head, ClientHello, query); otherwise it asks once with
/// [`L7Request::Detected`]`(p)`. Several rules wanting different
/// protocols on one flow are fine: detection picks the one parser, and
/// the clauses of the other protocols simply do not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Inspect(u8);

impl Inspect {
    const HTTP: u8 = 1;
    const TLS: u8 = 2;
    const DNS: u8 = 4;

    pub(crate) fn add(&mut self, app: Option<App>) {
        self.0 |= match app {
            Some(App::Http) => Self::HTTP,
            Some(App::Tls) => Self::TLS,
            Some(App::Dns) => Self::DNS,
            _ => 0,
        };
    }

    /// Whether some clause of protocol `p` can decide this flow's
    /// requests, so `p`'s parser must run.
    pub fn parses(self, p: App) -> bool {
        let bit = match p {
            App::Http => Self::HTTP,
            App::Tls => Self::TLS,
            App::Dns => Self::DNS,
            App::Ssh | App::Unknown => 0,
        };
        self.0 & bit != 0
    }
}

// ---------------------------------------------------------------------------
// Compile-time checks
// ---------------------------------------------------------------------------

/// Which part of a rule's L7 clause an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L7Field {
    /// The rule's `app`.
    App,
    /// The clause as a whole (`http`, `tls` or `dns`).
    Clause,
    /// One entry of the clause, as a whole.
    Entry,
    Methods,
    Paths,
    Hosts,
    ServerNames,
    Alpn,
    Names,
}

/// Where in a rule's L7 part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L7At {
    pub field: L7Field,
    /// The clause entry (for `Entry` and the fields inside one).
    pub entry: usize,
    /// The item of the field's list.
    pub index: usize,
}

/// What is wrong with a rule's L7 part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L7Problem {
    /// An L7 clause or `app` on a deny or reject rule.
    NotAllow,
    /// `app` names another protocol than the clause.
    AppMismatch {
        app: App,
        clause: App,
    },
    /// A protocol the rule's `proto` cannot carry.
    WrongProto {
        app: App,
        proto: Proto,
    },
    /// An empty clause: allows nothing.
    EmptyClause,
    /// An entry without any condition: write `app` instead.
    EmptyEntry,
    UnknownMethod(String),
    BadPath {
        path: String,
        problem: &'static str,
    },
    BadName {
        name: String,
    },
    BadHost {
        host: String,
        problem: &'static str,
    },
    BadAlpn {
        alpn: String,
    },
}

impl fmt::Display for L7Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L7Problem::NotAllow => f.write_str("an L7 clause or app on a rule that does not allow"),
            L7Problem::AppMismatch { app, clause } => write!(
                f,
                "app = {} with a {} clause",
                app.as_str(),
                clause.as_str()
            ),
            L7Problem::WrongProto { app, proto } => {
                write!(f, "{} on proto {}", app.as_str(), proto.as_str())
            }
            L7Problem::EmptyClause => f.write_str("an empty clause allows nothing"),
            L7Problem::EmptyEntry => f.write_str("an entry without conditions"),
            L7Problem::UnknownMethod(m) => write!(f, "unknown method {m:?}"),
            L7Problem::BadPath { path, problem } => write!(f, "path {path:?}: {problem}"),
            L7Problem::BadName { name } => write!(f, "bad name pattern {name:?}"),
            L7Problem::BadHost { host, problem } => write!(f, "host {host:?}: {problem}"),
            L7Problem::BadAlpn { alpn } => write!(f, "bad ALPN protocol id {alpn:?}"),
        }
    }
}

/// The [`PathPattern`] a path string stands for: with a `*` a glob, else
/// exact. Not checked: see [`check_path`].
pub fn path_pattern(p: &str) -> PathPattern<'_> {
    if p.contains('*') {
        PathPattern::Glob(p.as_bytes())
    } else {
        PathPattern::Exact(p.as_bytes())
    }
}

/// Why `p` is not a usable path pattern, or `None`.
pub fn check_path(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("does not start with `/`");
    }
    match PathPattern::new(path_pattern(p)) {
        Ok(_) => None,
        Err(PatternError::MisplacedDoubleStar) => {
            Some("`**` is only allowed as the whole last segment")
        }
        Err(_) => Some("not in normal form (no `.` or `..` segments, `//`, or needless %-escapes)"),
    }
}

/// A host string split into its name and port.
pub fn split_host(h: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) => {
            let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u16>() {
                Ok(port) if ok && port != 0 => (n, Some(port)),
                _ => return Err("the port is not 1..=65535"),
            }
        }
        None => (h, None),
    };
    if NamePattern::new(name.as_bytes()).is_err() {
        return Err("the name is not a lowercase name or `*.suffix`");
    }
    Ok((name, port))
}

/// Whether `n` is a usable name pattern.
pub fn name_ok(n: &str) -> bool {
    NamePattern::new(n.as_bytes()).is_ok()
}

fn alpn_ok(a: &str) -> bool {
    !a.is_empty() && a.len() <= 255
}

/// Checks a rule's L7 part (`app` and clause) against its action and
/// protocol.
pub(crate) fn check(
    app: Option<App>,
    clause: Option<&L7Clause>,
    allow: bool,
    proto: Proto,
) -> Result<(), (L7At, L7Problem)> {
    let at = |field, entry, index| L7At {
        field,
        entry,
        index,
    };
    let whole = if clause.is_some() {
        L7Field::Clause
    } else {
        L7Field::App
    };
    if (app.is_some() || clause.is_some()) && !allow {
        return Err((at(whole, 0, 0), L7Problem::NotAllow));
    }
    if let (Some(a), Some(c)) = (app, clause) {
        if a != c.app() {
            return Err((
                at(L7Field::App, 0, 0),
                L7Problem::AppMismatch {
                    app: a,
                    clause: c.app(),
                },
            ));
        }
    }
    if let Some(a) = clause.map(L7Clause::app).or(app) {
        let fits = match a {
            App::Dns => proto != Proto::Icmp,
            App::Unknown => true,
            App::Http | App::Tls | App::Ssh => proto == Proto::Tcp,
        };
        if !fits {
            return Err((at(whole, 0, 0), L7Problem::WrongProto { app: a, proto }));
        }
    }
    let Some(c) = clause else {
        return Ok(());
    };
    if c.is_empty() {
        return Err((at(L7Field::Clause, 0, 0), L7Problem::EmptyClause));
    }
    let names = |field, e: usize, list: &[String]| {
        for (i, n) in list.iter().enumerate() {
            if !name_ok(n) {
                return Err((at(field, e, i), L7Problem::BadName { name: n.clone() }));
            }
        }
        Ok(())
    };
    match c {
        L7Clause::Http(entries) => {
            for (e, m) in entries.iter().enumerate() {
                if m.methods.is_empty() && m.paths.is_empty() && m.hosts.is_empty() {
                    return Err((at(L7Field::Entry, e, 0), L7Problem::EmptyEntry));
                }
                for (i, t) in m.methods.iter().enumerate() {
                    if Method::from_bytes(t.as_bytes()).is_none() {
                        return Err((
                            at(L7Field::Methods, e, i),
                            L7Problem::UnknownMethod(t.clone()),
                        ));
                    }
                }
                for (i, p) in m.paths.iter().enumerate() {
                    if let Some(problem) = check_path(p) {
                        return Err((
                            at(L7Field::Paths, e, i),
                            L7Problem::BadPath {
                                path: p.clone(),
                                problem,
                            },
                        ));
                    }
                }
                for (i, h) in m.hosts.iter().enumerate() {
                    if let Err(problem) = split_host(h) {
                        return Err((
                            at(L7Field::Hosts, e, i),
                            L7Problem::BadHost {
                                host: h.clone(),
                                problem,
                            },
                        ));
                    }
                }
            }
        }
        L7Clause::Tls(entries) => {
            for (e, m) in entries.iter().enumerate() {
                if m.server_names.is_empty() && m.alpn.is_empty() {
                    return Err((at(L7Field::Entry, e, 0), L7Problem::EmptyEntry));
                }
                names(L7Field::ServerNames, e, &m.server_names)?;
                for (i, a) in m.alpn.iter().enumerate() {
                    if !alpn_ok(a) {
                        return Err((
                            at(L7Field::Alpn, e, i),
                            L7Problem::BadAlpn { alpn: a.clone() },
                        ));
                    }
                }
            }
        }
        L7Clause::Dns(entries) => {
            for (e, m) in entries.iter().enumerate() {
                if m.names.is_empty() {
                    return Err((at(L7Field::Entry, e, 0), L7Problem::EmptyEntry));
                }
                names(L7Field::Names, e, &m.names)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Compiled matchers
// ---------------------------------------------------------------------------

/// One rule's L7 part, compiled: owned bytes, turned into `l7::pattern`
/// matchers (free to build) at match time.
#[derive(Debug, Clone)]
pub(crate) struct RuleL7 {
    app: Option<App>,
    clause: Clause,
}

#[derive(Debug, Clone)]
enum Clause {
    /// `app` only.
    None,
    Http(Box<[HttpEntry]>),
    Tls(Box<[TlsEntry]>),
    Dns(Box<[Names]>),
}

/// Name patterns; empty: any.
type Names = Box<[Box<[u8]>]>;

#[derive(Debug, Clone)]
struct HttpEntry {
    methods: MethodSet,
    /// (glob, bytes); empty: any.
    paths: Box<[(bool, Box<[u8]>)]>,
    hosts: Box<[HostEntry]>,
}

/// A host name pattern and its port (`None`: any).
type HostEntry = (Box<[u8]>, Option<u16>);

#[derive(Debug, Clone)]
struct TlsEntry {
    names: Names,
    alpn: Names,
}

fn bytes_list(v: &[String]) -> Names {
    v.iter().map(|s| s.as_bytes().into()).collect()
}

impl RuleL7 {
    /// The compiled form of a checked rule's L7 part; `None` for an L4
    /// rule.
    pub(crate) fn new(app: Option<App>, clause: Option<&L7Clause>) -> Option<RuleL7> {
        let clause = match clause {
            None if app.is_none() => return None,
            None => Clause::None,
            Some(L7Clause::Http(v)) => Clause::Http(
                v.iter()
                    .map(|m| HttpEntry {
                        methods: if m.methods.is_empty() {
                            MethodSet::ANY
                        } else {
                            m.methods
                                .iter()
                                .filter_map(|t| Method::from_bytes(t.as_bytes()))
                                .fold(MethodSet::EMPTY, MethodSet::with)
                        },
                        paths: m
                            .paths
                            .iter()
                            .map(|p| (p.contains('*'), p.as_bytes().into()))
                            .collect(),
                        hosts: m
                            .hosts
                            .iter()
                            .filter_map(|h| split_host(h).ok())
                            .map(|(n, p)| (n.as_bytes().into(), p))
                            .collect(),
                    })
                    .collect(),
            ),
            Some(L7Clause::Tls(v)) => Clause::Tls(
                v.iter()
                    .map(|m| TlsEntry {
                        names: bytes_list(&m.server_names),
                        alpn: bytes_list(&m.alpn),
                    })
                    .collect(),
            ),
            Some(L7Clause::Dns(v)) => Clause::Dns(v.iter().map(|m| bytes_list(&m.names)).collect()),
        };
        Some(RuleL7 { app, clause })
    }

    /// The parser this rule needs, if it has a clause.
    pub(crate) fn parser(&self) -> Option<App> {
        match self.clause {
            Clause::None => None,
            Clause::Http(_) => Some(App::Http),
            Clause::Tls(_) => Some(App::Tls),
            Clause::Dns(_) => Some(App::Dns),
        }
    }

    /// Whether the rule allows `req`.
    pub(crate) fn matches(&self, req: &L7Request<'_>) -> bool {
        if self.app.is_some_and(|a| a != req.app()) {
            return false;
        }
        let name = |pats: &Names, n: &[u8]| {
            pats.iter()
                .any(|p| NamePattern::new(p).is_ok_and(|p| p.matches(n)))
        };
        match (&self.clause, req) {
            (Clause::None, _) => true,
            (Clause::Http(entries), L7Request::Http { method, path, host }) => {
                entries.iter().any(|e| {
                    e.methods.contains(method)
                        && (e.paths.is_empty()
                            || e.paths.iter().any(|(glob, p)| {
                                if *glob {
                                    PathPattern::Glob(p).matches(path)
                                } else {
                                    PathPattern::Exact(p).matches(path)
                                }
                            }))
                        && (e.hosts.is_empty()
                            || host.is_some_and(|(hn, hp)| {
                                let h = l7::http::Host { name: hn, port: hp };
                                e.hosts.iter().any(|(n, port)| {
                                    NamePattern::new(n).is_ok_and(|name| {
                                        HostPattern { name, port: *port }.matches(&h, 80)
                                    })
                                })
                            }))
                })
            }
            (Clause::Tls(entries), L7Request::Tls { sni, alpn, ech }) => entries.iter().any(|e| {
                (e.names.is_empty() || (!ech && sni.is_some_and(|s| name(&e.names, s))))
                    && (e.alpn.is_empty() || e.alpn.iter().any(|a| alpn.contains(a)))
            }),
            (Clause::Dns(entries), L7Request::Dns { name: n }) => {
                entries.iter().any(|e| name(e, n))
            }
            _ => false,
        }
    }
}
