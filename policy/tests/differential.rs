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

use identity::IdentityDoc;
use overlay::Ipv4Cidr;
use policy::reference::evaluate;
use policy::{
    compile, Action, CompileError, DenyAction, Endpoint, FlowQuery, Mode, PolicySpec, PortRange,
    Proto, RuleSpec, Selector, SetSpec, Subject,
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
}

fn raw_sel() -> impl Strategy<Value = RawSel> {
    prop_oneof![
        3 => (0..8usize).prop_map(RawSel::Identity),
        2 => (0..8usize, 0..4u8).prop_map(|(d, k)| RawSel::Glob(d, k)),
        2 => (0..8usize, 0..4u8).prop_map(|(d, k)| RawSel::Labels(d, k)),
        1 => Just(RawSel::Unauth),
        2 => (0..CIDRS.len()).prop_map(RawSel::Cidr),
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
    }
}

#[derive(Debug, Clone)]
struct RawRule {
    from: Vec<RawSel>,
    to: Vec<RawSel>,
    proto: Proto,
    ports: Vec<(usize, usize)>,
    action: Action,
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
    )
        .prop_map(|(from, to, proto, ports, action)| RawRule {
            from,
            to,
            proto,
            ports,
            action,
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
    )
        .prop_map(|(src, dst, proto, port)| RawQuery {
            src,
            dst,
            proto,
            port,
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
                        let ports = if matches!(r.proto, Proto::Tcp | Proto::Udp) {
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
                            from: r.from.iter().map(|s| build_sel(s, docs)).collect(),
                            to: r.to.iter().map(|s| build_sel(s, docs)).collect(),
                            proto: r.proto,
                            ports,
                            action: r.action,
                            app: None,
                            l7: None,
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
            dst_fqdns: 0,
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
    for q in &queries {
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
    // mean anything.
    assert!(removed.get() > 0);
}
