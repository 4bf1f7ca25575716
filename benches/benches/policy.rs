//! The policy crate: compile time at 1,000 and 10,000 rules, and lookup
//! time at 10 and 10,000 rules, over about 1,000 documents.
//!
//! The generated policy is shaped like a real one: 50 namespaces × 20
//! service accounts (`spiffe://prod/ns/nsN/sa/svcM`, labels `app`, `ns`,
//! `tier`); rules toward one workload each on common ports (443, 8080,
//! 5432, a 9000-9100 range, ...), sources mixing exact names, namespace
//! globs, label selectors, /24 CIDRs and "unauthenticated", every tenth
//! rule a deny, every fiftieth toward a whole namespace. Each (destination,
//! port) pair appears once, so no rule is shadowed and the policy
//! compiles. Queries hit an early rule, a late rule, nothing (default
//! deny), and an unknown destination.
//!
//! `cargo bench -p warden-benches --bench policy -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use identity::IdentityDoc;
use policy::{
    compile, Action, Endpoint, FlowQuery, HttpMatch, L7Clause, L7Request, Mode, PolicySpec,
    PortRange, Proto, RuleSpec, Selector, SetSpec, Subject,
};

const NAMESPACES: u32 = 50;
const ACCOUNTS: u32 = 20;
const TIERS: [&str; 3] = ["web", "app", "data"];

fn docs() -> Vec<IdentityDoc> {
    (0..NAMESPACES * ACCOUNTS)
        .map(|i| {
            let (ns, sa) = (i / ACCOUNTS, i % ACCOUNTS);
            let labels: BTreeMap<String, String> = [
                ("app", format!("svc{sa}")),
                ("ns", format!("ns{ns}")),
                ("tier", TIERS[(sa % 3) as usize].to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            IdentityDoc {
                name: format!("spiffe://prod/ns/ns{ns}/sa/svc{sa}"),
                labels,
                ..Default::default()
            }
        })
        .collect()
}

/// Port sets by "round" (rule index / number of documents): disjoint, so
/// one destination's rules never cover each other.
fn ports(round: u32) -> (Proto, Vec<PortRange>) {
    let p = |lo, hi| PortRange { lo, hi };
    match round % 10 {
        0 => (Proto::Tcp, vec![p(443, 443)]),
        1 => (Proto::Tcp, vec![p(8080, 8080)]),
        2 => (Proto::Tcp, vec![p(5432, 5432)]),
        3 => (Proto::Tcp, vec![p(6379, 6379)]),
        4 => (Proto::Tcp, vec![p(9000, 9100)]),
        5 => (Proto::Tcp, vec![p(80, 80), p(8443, 8443)]),
        6 => (Proto::Udp, vec![p(53, 53)]),
        7 => (Proto::Tcp, vec![p(30000, 32767)]),
        8 => (Proto::Tcp, vec![p(22, 22)]),
        _ => (Proto::Tcp, vec![p(3306, 3306)]),
    }
}

fn cidr(i: u32) -> Selector {
    Selector::Cidr(
        format!("10.{}.{}.0/24", i % 200, (i / 200) % 256)
            .parse()
            .expect("cidr"),
    )
}

fn rules(n: u32, docs: &[IdentityDoc]) -> PolicySpec {
    let nd = docs.len() as u32;
    let name = |i: u32| Selector::Identity(docs[(i % nd) as usize].name.clone());
    let rules = (0..n)
        .map(|i| {
            let from = match i % 5 {
                0 => vec![name(i * 7 + 1)],
                1 => vec![Selector::Glob(format!(
                    "spiffe://prod/ns/ns{}/*",
                    i % NAMESPACES
                ))],
                2 => vec![Selector::Labels(
                    [("app".to_string(), format!("svc{}", i % ACCOUNTS))].into(),
                )],
                3 => vec![cidr(i), name(i * 13 + 5)],
                _ => vec![Selector::Unauthenticated, cidr(i / 3)],
            };
            let (proto, ports) = ports(i / nd);
            let (to, ports) = if i % 50 == 49 {
                // Toward a whole namespace, on a port of its own.
                (
                    vec![Selector::Glob(format!(
                        "spiffe://prod/ns/ns{}/*",
                        (i / 50) % NAMESPACES
                    ))],
                    vec![PortRange::single(10_000 + i as u16)],
                )
            } else {
                (vec![name(i)], ports)
            };
            RuleSpec {
                from,
                to,
                proto,
                ports,
                action: if i % 10 == 0 {
                    Action::Deny
                } else {
                    Action::Allow
                },
                app: None,
                l7: None,
            }
        })
        .collect();
    PolicySpec {
        sets: vec![SetSpec {
            name: "prod".into(),
            mode: Mode::Enforce,
            rules,
        }],
        ..PolicySpec::default()
    }
}

fn ep(subject: Subject, a: [u8; 4]) -> Endpoint {
    Endpoint {
        subject,
        addr: Some(Ipv4Addr::from(a)),
    }
}

/// A flow that rule `i` of `rules(n, docs)` matches (an earlier rule may
/// still decide it first; the bench prints which rule did).
fn flow_for(i: u32, spec: &PolicySpec, docs: &[IdentityDoc]) -> FlowQuery {
    let r = spec.sets[0].rules.get(i as usize).expect("rule");
    let src = match &r.from[0] {
        Selector::Identity(n) => ep(
            Subject::Identity(docs.iter().position(|d| d.name == *n).unwrap_or(0) as u32),
            [10, 250, 0, 1],
        ),
        Selector::Glob(g) => {
            let prefix = g.trim_end_matches('*');
            let d = docs
                .iter()
                .position(|d| d.name.starts_with(prefix))
                .unwrap_or(0);
            ep(Subject::Identity(d as u32), [10, 250, 0, 1])
        }
        Selector::Labels(l) => {
            let d = docs
                .iter()
                .position(|d| l.iter().all(|(k, v)| d.labels.get(k) == Some(v)))
                .unwrap_or(0);
            ep(Subject::Identity(d as u32), [10, 250, 0, 1])
        }
        Selector::Cidr(c) => {
            let a = u32::from(c.address()) & c.mask();
            ep(Subject::Unauthenticated, (a + 1).to_be_bytes())
        }
        Selector::Unauthenticated | Selector::Fqdn(_) => {
            ep(Subject::Unauthenticated, [10, 251, 0, 1])
        }
    };
    let dst = match &r.to[0] {
        Selector::Identity(n) => docs.iter().position(|d| d.name == *n).unwrap_or(0),
        _ => 0,
    };
    FlowQuery {
        src,
        dst: ep(Subject::Identity(dst as u32), [10, 252, 0, 1]),
        proto: if r.proto == Proto::Udp { 17 } else { 6 },
        dst_port: r.ports.first().map_or(443, |p| p.lo),
        dst_fqdns: 0,
    }
}

fn bench(c: &mut Criterion) {
    let docs = docs();

    let mut g = c.benchmark_group("policy_compile");
    g.sample_size(10);
    for n in [1_000u32, 10_000] {
        let spec = rules(n, &docs);
        g.bench_with_input(BenchmarkId::from_parameter(n), &spec, |b, spec| {
            b.iter(|| compile(black_box(spec), &docs).expect("compiles"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("policy_lookup");
    for n in [10u32, 10_000] {
        let spec = rules(n, &docs);
        let compiled = compile(&spec, &docs).expect("compiles");
        let early = flow_for(3, &spec, &docs);
        let late = flow_for(n - 8, &spec, &docs);
        let none = FlowQuery {
            dst_port: 1,
            ..late
        };
        let unknown = FlowQuery {
            dst: Endpoint {
                subject: Subject::Unknown,
                ..late.dst
            },
            ..late
        };
        for (what, q) in [
            ("early", early),
            ("late", late),
            ("default", none),
            ("unknown_dst", unknown),
        ] {
            let d = compiled.lookup(&q);
            eprintln!(
                "policy_lookup {n} rules, {what}: {:?} by {:?} ({} table bytes)",
                d.action,
                d.rule,
                compiled.table_bytes()
            );
            g.bench_function(format!("{n}_rules/{what}"), |b| {
                b.iter(|| compiled.lookup(black_box(&q)))
            });
        }
    }
    g.finish();

    // Requests of an inspected flow: `l7` HTTP rules (4 entries each) on
    // port 80 in front of the 10,000 L4 rules; a request the last L7 rule
    // allows walks all of them, one none allows falls through to the
    // default.
    let mut g = c.benchmark_group("policy_request");
    for l7_rules in [1usize, 16] {
        let mut spec = rules(10_000, &docs);
        let q = FlowQuery {
            dst_port: 80,
            ..flow_for(3, &spec, &docs)
        };
        let front: Vec<RuleSpec> = (0..l7_rules)
            .map(|i| RuleSpec {
                app: None,
                l7: Some(L7Clause::Http(
                    (0..4)
                        .map(|e| HttpMatch {
                            methods: vec!["GET".into(), "HEAD".into()],
                            paths: vec![format!("/svc{i}/e{e}"), format!("/svc{i}/e{e}/**")],
                            hosts: vec!["orders.svc".into()],
                        })
                        .collect(),
                )),
                ..RuleSpec::new(
                    vec![],
                    vec![],
                    Proto::Tcp,
                    vec![PortRange::single(80)],
                    Action::Allow,
                )
            })
            .collect();
        spec.sets.insert(
            0,
            SetSpec {
                name: "l7".into(),
                mode: Mode::Enforce,
                rules: front,
            },
        );
        let compiled = compile(&spec, &docs).expect("compiles");
        let d = compiled.lookup(&q);
        assert!(d.l7, "{d:?}");
        let from = d.rule.expect("rule");
        let last = format!("/svc{}/e3/items/7", l7_rules - 1);
        for (what, path) in [("allowed_last", last.as_str()), ("none_allows", "/admin")] {
            let req = L7Request::Http {
                method: b"GET",
                path: path.as_bytes(),
                host: Some((b"orders.svc", None)),
            };
            let r = compiled.request(&q, from, &req);
            eprintln!(
                "policy_request {l7_rules} L7 rules, {what}: {:?} by {:?}",
                r.action, r.rule
            );
            g.bench_function(format!("{l7_rules}_l7_rules/{what}"), |b| {
                b.iter(|| compiled.request(black_box(&q), from, black_box(&req)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
