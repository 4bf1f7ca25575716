//! Differential property test: the compiled policy answers every query as
//! the reference evaluator does, over random documents, random rule sets
//! mixing every selector kind, and queries biased toward the edges (addresses
//! at CIDR boundaries, ports at range ends, unknown destinations, identity
//! indexes past the end).
//!
//! A generated rule that the compiler reports as shadowed is removed and the
//! spec compiled again; before removing it, the test checks the report was
//! sound: the reference never answers with that rule on any query of the
//! case.
//!
//! Fixed seed unless `WARDEN_PROP_RANDOM=1`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How often the interesting paths were taken: requests allowed by a
/// clause; requests of an inspected flow that no clause allowed; lookups
/// decided through a learned FQDN.
static CLAUSE_ALLOWED: AtomicUsize = AtomicUsize::new(0);
static FELL_THROUGH: AtomicUsize = AtomicUsize::new(0);
static BY_FQDN: AtomicUsize = AtomicUsize::new(0);

use identity::IdentityDoc;
use l7::detect::Proto as App;
use l7::tls::Alpn;
use overlay::Ipv4Cidr;
use policy::reference::{evaluate, request};
use policy::{
    compile, Action, CompileError, DenyAction, DnsMatch, Endpoint, FlowQuery, HttpMatch, L7Clause,
    L7Request, Mode, PolicySpec, PortRange, Proto, RuleId, RuleSpec, Selector, SetSpec, Subject,
    TlsMatch,
};
use proptest::prelude::*;
use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};

const NAMESPACES: [&str; 3] = ["web", "payments", "legacy"];
const ACCOUNTS: [&str; 4] = ["api", "db", "batch", "a/b"];
const APPS: [&str; 3] = ["web", "api", "db"];
/// CIDRs rules pick from; they nest and overlap on purpose.
const CIDRS: [&str; 8] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.1.2.128/25",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "255.255.255.255/32",
];
const PORTS: [u16; 9] = [0, 1, 79, 80, 81, 443, 1000, 65534, 65535];
/// FQDN patterns `to` selectors pick from.
const FQDNS: [&str; 3] = ["x.example.com", "*.example.com", "*.svc"];

// L7 clause pools (rule side) and request pools (query side), chosen so
// that entries and requests overlap in every way: exact and wildcard
// names, globs and `**`, hosts with and without ports, ALPN offers.
const METHODS: [&str; 3] = ["GET", "POST", "HEAD"];
const PATHS: [&str; 5] = ["/a", "/a/**", "/a/*/c", "/**", "/b"];
const HOSTS: [&str; 3] = ["x.svc", "*.svc", "x.svc:8080"];
const NAMES: [&str; 3] = ["x.example.com", "*.example.com", "a.svc"];
const ALPNS: [&str; 2] = ["h2", "http/1.1"];
const Q_METHODS: [&[u8]; 4] = [b"GET", b"POST", b"get", b"PUT"];
const Q_PATHS: [&[u8]; 8] = [b"/a", b"/a/b", b"/a/b/c", b"/b", b"/", b"", b"*", b"/ab"];
const Q_HOSTS: [Option<(&[u8], Option<u16>)>; 5] = [
    None,
    Some((b"x.svc", None)),
    Some((b"y.svc", Some(8080))),
    Some((b"x.svc", Some(8080))),
    Some((b"svc", None)),
];
const Q_NAMES: [&[u8]; 6] = [
    b"x.example.com",
    b"X.Example.COM",
    b"example.com",
    b"a.svc",
    b"b.a.svc",
    b"a.b.example.com",
];
const Q_ALPN: [&[u8]; 3] = [b"", b"\x02h2", b"\x08http/1.1\x02h3"];
const APPS_DETECTED: [App; 5] = [App::Http, App::Tls, App::Dns, App::Ssh, App::Unknown];

fn docs() -> impl Strategy<Value = Vec<IdentityDoc>> {
    prop::collection::vec(
        (
            0..NAMESPACES.len(),
            0..ACCOUNTS.len(),
            prop::option::of(0..APPS.len()),
            any::<bool>(),
        ),
        1..8,
    )
    .prop_map(|raw| {
        let mut out: Vec<IdentityDoc> = Vec::new();
        for (ns, sa, app, gold) in raw {
            let name = format!("spiffe://lab/ns/{}/sa/{}", NAMESPACES[ns], ACCOUNTS[sa]);
            if out.iter().any(|d| d.name == name) {
                continue;
            }
            let mut labels = BTreeMap::new();
            if let Some(a) = app {
                labels.insert("app".to_string(), APPS[a].to_string());
            }
            if gold {
                labels.insert("tier".to_string(), "gold".to_string());
            }
            out.push(IdentityDoc {
                name,
                labels,
                ..Default::default()
            });
        }
        out
    })
}

/// A selector, built against the documents so that identity selectors
/// match at least one (or they would not compile).
#[derive(Debug, Clone)]
enum RawSel {
    Identity(usize),
    /// Document, and which way to turn its name into a glob.
    Glob(usize, u8),
    /// Document, and which of its labels to require (bit mask).
    Labels(usize, u8),
    Unauth,
    Cidr(usize),
    /// An FQDN pattern (destinations only; a source keeps `Unauth`).
    Fqdn(usize),
}

fn raw_sel() -> impl Strategy<Value = RawSel> {
    prop_oneof![
        3 => (0..8usize).prop_map(RawSel::Identity),
        2 => (0..8usize, 0..4u8).prop_map(|(d, k)| RawSel::Glob(d, k)),
        2 => (0..8usize, 0..4u8).prop_map(|(d, k)| RawSel::Labels(d, k)),
        1 => Just(RawSel::Unauth),
        2 => (0..CIDRS.len()).prop_map(RawSel::Cidr),
        1 => (0..FQDNS.len()).prop_map(RawSel::Fqdn),
    ]
}

fn build_sel(s: &RawSel, docs: &[IdentityDoc]) -> Selector {
    let doc = |d: usize| &docs[d % docs.len()];
    match *s {
        RawSel::Identity(d) => Selector::Identity(doc(d).name.clone()),
        RawSel::Glob(d, k) => {
            let name = &doc(d).name;
            Selector::Glob(match k {
                0 => "spiffe://lab/ns/*".to_string(),
                1 => format!("{}*", &name[..name.rfind('/').unwrap_or(0) + 1]),
                2 => format!("*{}", &name[name.len() - 2..]),
                _ => format!("{}?", &name[..name.len() - 1]),
            })
        }
        RawSel::Labels(d, mask) => Selector::Labels(
            doc(d)
                .labels
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, (k, v))| (k.clone(), v.clone()))
                .collect(),
        ),
        RawSel::Unauth => Selector::Unauthenticated,
        RawSel::Cidr(i) => Selector::Cidr(CIDRS[i].parse().unwrap()),
        RawSel::Fqdn(i) => Selector::Fqdn(FQDNS[i].to_string()),
    }
}

#[derive(Debug, Clone)]
struct RawRule {
    from: Vec<RawSel>,
    to: Vec<RawSel>,
    proto: Proto,
    ports: Vec<(usize, usize)>,
    action: Action,
    /// 0 none, 1 app only, 2 http, 3 tls, 4 dns; the app: 0 none, else
    /// the clause's (or for app only, one of the detected protocols).
    l7: (u8, u8, Vec<(u8, u8, u8)>),
}

/// Picks from `pool` by the bits of `mask`.
fn pick(pool: &[&str], mask: u8) -> Vec<String> {
    pool.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn build_l7(raw: &(u8, u8, Vec<(u8, u8, u8)>)) -> (Option<App>, Option<L7Clause>) {
    let (kind, app, entries) = raw;
    // Entries with no condition are refused at compile time: give each one.
    let nonempty = |v: Vec<String>, pool: &[&str]| {
        if v.is_empty() {
            vec![pool[0].to_string()]
        } else {
            v
        }
    };
    let clause = match kind {
        2 => Some(L7Clause::Http(
            entries
                .iter()
                .map(|&(m, p, h)| HttpMatch {
                    methods: pick(&METHODS, m),
                    paths: nonempty(pick(&PATHS, p), &PATHS),
                    hosts: pick(&HOSTS, h),
                })
                .collect(),
        )),
        3 => Some(L7Clause::Tls(
            entries
                .iter()
                .map(|&(n, a, _)| TlsMatch {
                    server_names: nonempty(pick(&NAMES, n), &NAMES),
                    alpn: pick(&ALPNS, a),
                })
                .collect(),
        )),
        4 => Some(L7Clause::Dns(
            entries
                .iter()
                .map(|&(n, _, _)| DnsMatch {
                    names: nonempty(pick(&NAMES, n), &NAMES),
                })
                .collect(),
        )),
        _ => None,
    };
    let app = match (kind, &clause) {
        (1, _) => Some(APPS_DETECTED[*app as usize % 4]),
        (_, Some(c)) if *app % 2 == 1 => Some(c.app()),
        _ => None,
    };
    (app, clause)
}

fn raw_rule() -> impl Strategy<Value = RawRule> {
    (
        prop::collection::vec(raw_sel(), 0..3),
        prop::collection::vec(raw_sel(), 0..3),
        prop_oneof![
            Just(Proto::Any),
            Just(Proto::Tcp),
            Just(Proto::Udp),
            Just(Proto::Icmp)
        ],
        prop::collection::vec((0..PORTS.len(), 0..PORTS.len()), 0..3),
        prop_oneof![
            Just(Action::Allow),
            Just(Action::Deny),
            Just(Action::Reject)
        ],
        (
            prop_oneof![3 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3), 1 => Just(4)],
            0..4u8,
            prop::collection::vec((0..32u8, 0..32u8, 0..8u8), 1..3),
        ),
    )
        .prop_map(|(from, to, proto, ports, action, l7)| RawRule {
            from,
            to,
            proto,
            ports,
            action,
            l7,
        })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Enforce), Just(Mode::Monitor), Just(Mode::Learn)]
}

#[derive(Debug, Clone)]
struct RawQuery {
    src: (u8, usize, Option<(usize, u8)>),
    dst: (u8, usize, Option<(usize, u8)>),
    proto: u8,
    port: usize,
    fqdns: u64,
    /// Requests to ask for: (kind, a, b, c, from).
    reqs: Vec<(u8, usize, usize, usize, u8)>,
}

fn raw_endpoint() -> impl Strategy<Value = (u8, usize, Option<(usize, u8)>)> {
    (
        0..4u8,
        0..9usize,
        prop::option::weighted(0.8, (0..CIDRS.len() + 1, 0..4u8)),
    )
}

fn raw_query() -> impl Strategy<Value = RawQuery> {
    (
        raw_endpoint(),
        raw_endpoint(),
        prop_oneof![Just(6u8), Just(17), Just(1), Just(47)],
        0..PORTS.len() + 1,
        prop_oneof![2 => Just(0u64), 1 => 0..16u64],
        prop::collection::vec((0..4u8, 0..8usize, 0..8usize, 0..8usize, 0..8u8), 0..6),
    )
        .prop_map(|(src, dst, proto, port, fqdns, reqs)| RawQuery {
            src,
            dst,
            proto,
            port,
            fqdns,
            reqs,
        })
}

/// An address at an edge of CIDR `i` (first, last, just outside), or a
/// random-ish one.
fn addr_of(i: usize, edge: u8) -> Ipv4Addr {
    let Some(c) = CIDRS.get(i) else {
        return Ipv4Addr::new(172, 16, 0, 1);
    };
    let c: Ipv4Cidr = c.parse().unwrap();
    let lo = u32::from(c.address()) & c.mask();
    let hi = lo | !c.mask();
    Ipv4Addr::from(match edge {
        0 => lo,
        1 => hi,
        2 => lo.wrapping_sub(1),
        _ => hi.wrapping_add(1),
    })
}

fn endpoint(raw: &(u8, usize, Option<(usize, u8)>), n_docs: usize) -> Endpoint {
    let subject = match raw.0 {
        0 | 1 => Subject::Identity((raw.1 % (n_docs + 1)) as u32),
        2 => Subject::Unauthenticated,
        _ => Subject::Unknown,
    };
    Endpoint {
        subject,
        addr: raw.2.map(|(i, e)| addr_of(i, e)),
    }
}

fn build_spec(
    docs: &[IdentityDoc],
    sets: &[(Mode, Vec<RawRule>)],
    default_mode: Mode,
    reject: bool,
) -> PolicySpec {
    PolicySpec {
        default_mode,
        default_action: if reject {
            DenyAction::Reject
        } else {
            DenyAction::Deny
        },
        sets: sets
            .iter()
            .enumerate()
            .map(|(i, (mode, rules))| SetSpec {
                name: format!("s{i}"),
                mode: *mode,
                rules: rules
                    .iter()
                    .map(|r| {
                        let (app, l7) = build_l7(&r.l7);
                        // L7 rules allow, on a protocol that carries them.
                        let want = l7.as_ref().map(L7Clause::app).or(app);
                        let proto = match want {
                            Some(App::Dns) if r.proto == Proto::Icmp => Proto::Udp,
                            Some(App::Http | App::Tls | App::Ssh) => Proto::Tcp,
                            _ => r.proto,
                        };
                        let action = if want.is_some() {
                            Action::Allow
                        } else {
                            r.action
                        };
                        let ports = if matches!(proto, Proto::Tcp | Proto::Udp) {
                            r.ports
                                .iter()
                                .map(|&(a, b)| PortRange {
                                    lo: PORTS[a.min(b)],
                                    hi: PORTS[a.max(b)],
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        RuleSpec {
                            from: r
                                .from
                                .iter()
                                .map(|s| match s {
                                    RawSel::Fqdn(_) => Selector::Unauthenticated,
                                    s => build_sel(s, docs),
                                })
                                .collect(),
                            to: r.to.iter().map(|s| build_sel(s, docs)).collect(),
                            proto,
                            ports,
                            action,
                            app,
                            l7,
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn run_case(
    docs: &[IdentityDoc],
    sets: &[(Mode, Vec<RawRule>)],
    default_mode: Mode,
    reject: bool,
    raw_queries: &[RawQuery],
) -> Result<usize, TestCaseError> {
    let mut spec = build_spec(docs, sets, default_mode, reject);
    let queries: Vec<FlowQuery> = raw_queries
        .iter()
        .map(|q| FlowQuery {
            src: endpoint(&q.src, docs.len()),
            dst: endpoint(&q.dst, docs.len()),
            proto: q.proto,
            dst_port: PORTS.get(q.port).copied().unwrap_or(8080),
            dst_fqdns: q.fqdns,
        })
        .collect();
    let mut removed = 0;
    let compiled = loop {
        match compile(&spec, docs) {
            Ok(c) => break c,
            Err(CompileError::Shadowed { rule, by }) => {
                prop_assert!(!by.is_empty());
                let id = spec
                    .rules()
                    .find(|(_, l, _, _)| *l == rule)
                    .map(|(id, _, _, _)| id)
                    .unwrap();
                for q in &queries {
                    prop_assert_ne!(
                        evaluate(&spec, docs, q).rule,
                        Some(id),
                        "reported shadowed (by {:?}) but decides {:?}",
                        by,
                        q
                    );
                }
                spec.sets[rule.set].rules.remove(rule.rule);
                removed += 1;
            }
            Err(e) => return Err(TestCaseError::fail(format!("compile: {e}"))),
        }
    };
    let n_rules = spec.rule_count() as u32;
    for (q, raw) in queries.iter().zip(raw_queries) {
        let want = evaluate(&spec, docs, q);
        let got = compiled.lookup(q);
        prop_assert_eq!(
            got,
            want,
            "query {:?}\nspec {:#?}\ndocs {:#?}",
            q,
            spec,
            docs
        );
        prop_assert_eq!(got.l7, got.rule.is_some_and(|r| compiled.is_l7(r)));
        if q.dst_fqdns != 0 {
            let without = FlowQuery { dst_fqdns: 0, ..*q };
            if evaluate(&spec, docs, &without) != want {
                BY_FQDN.fetch_add(1, Relaxed);
            }
        }
        for &(kind, a, b, c, from) in &raw.reqs {
            let alpn = Alpn::from_wire(Q_ALPN[b % Q_ALPN.len()]).unwrap();
            let req = match kind {
                0 => L7Request::Http {
                    method: Q_METHODS[a % Q_METHODS.len()],
                    path: Q_PATHS[b % Q_PATHS.len()],
                    host: Q_HOSTS[c % Q_HOSTS.len()],
                },
                1 => L7Request::Tls {
                    sni: (c % 4 != 0).then(|| Q_NAMES[a % Q_NAMES.len()]),
                    alpn,
                    ech: c % 3 == 0,
                },
                2 => L7Request::Dns {
                    name: Q_NAMES[a % Q_NAMES.len()],
                },
                _ => L7Request::Detected(APPS_DETECTED[a % APPS_DETECTED.len()]),
            };
            // From the deciding rule (the engine's case), or any rule.
            let from = match got.rule {
                Some(r) if from % 2 == 0 => r,
                _ => RuleId(u32::from(from) % n_rules.max(1)),
            };
            let want = request(&spec, docs, q, from, &req);
            if got.l7 && Some(from) == got.rule {
                if want.l7 {
                    CLAUSE_ALLOWED.fetch_add(1, Relaxed);
                } else {
                    FELL_THROUGH.fetch_add(1, Relaxed);
                }
            }
            let got_r = compiled.request(q, from, &req);
            prop_assert_eq!(
                got_r,
                want,
                "request {:?} from {:?} on {:?}\nspec {:#?}",
                req,
                from,
                q,
                spec
            );
            // A clause that allowed a request was one the flow parses for.
            if got_r.l7 && !matches!(req, L7Request::Detected(_)) {
                let by = spec.rule(got_r.rule.unwrap()).unwrap();
                if by.l7.is_some() {
                    prop_assert!(compiled.inspect(q, from).parses(req.app()));
                }
            }
        }
    }
    Ok(removed)
}

#[test]
fn compiled_agrees_with_reference() {
    let cases = if cfg!(debug_assertions) { 512 } else { 4096 };
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = if std::env::var_os("WARDEN_PROP_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let strategy = (
        docs(),
        prop::collection::vec((mode(), prop::collection::vec(raw_rule(), 0..7)), 0..4),
        mode(),
        any::<bool>(),
        prop::collection::vec(raw_query(), 1..48),
    );
    let removed = std::cell::Cell::new(0usize);
    let result = runner.run(&strategy, |(docs, sets, default_mode, reject, queries)| {
        let n = run_case(&docs, &sets, default_mode, reject, &queries)?;
        removed.set(removed.get() + n);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{cases} cases, {} shadowed rules reported and checked",
        removed.get()
    );
    // The shadow check must have fired at all for its soundness check to
    // mean anything; so must the L7 and FQDN paths.
    assert!(removed.get() > 0);
    let (a, f, q) = (
        CLAUSE_ALLOWED.load(Relaxed),
        FELL_THROUGH.load(Relaxed),
        BY_FQDN.load(Relaxed),
    );
    eprintln!("{a} requests allowed by a clause, {f} fell through, {q} lookups changed by FQDNs");
    // In proportion to the cases (a debug build runs an eighth of them):
    // about one FQDN-changed lookup per seven cases at the fixed seed.
    let min = cases as usize / 16;
    assert!(a > min && f > min && q > min, "fewer than {min}");
}
