//! One test per semantic rule of the crate docs and per compile error.
//! Every query goes through both the reference and the compiled form.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use identity::IdentityDoc;
use policy::compile::{Side, MAX_DST_CLASSES, MAX_RULES};
use policy::reference::evaluate;
use policy::{
    compile, Action, CompileError, Decision, DenyAction, Endpoint, FlowQuery, Mode, PolicySpec,
    PortRange, Proto, RuleId, RuleLoc, RuleSpec, Selector, SetSpec, Subject,
};

fn doc(name: &str, labels: &[(&str, &str)]) -> IdentityDoc {
    IdentityDoc {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// 0 web/api, 1 payments/api, 2 payments/db.
fn docs() -> Vec<IdentityDoc> {
    vec![
        doc("spiffe://lab/ns/web/sa/api", &[("app", "web")]),
        doc(
            "spiffe://lab/ns/payments/sa/api",
            &[("app", "api"), ("tier", "gold")],
        ),
        doc(
            "spiffe://lab/ns/payments/sa/db",
            &[("app", "db"), ("tier", "gold")],
        ),
    ]
}

const WEB: u32 = 0;
const API: u32 = 1;
const DB: u32 = 2;

fn rule(from: Vec<Selector>, to: Vec<Selector>, action: Action) -> RuleSpec {
    RuleSpec::new(from, to, Proto::Any, vec![], action)
}

fn tcp(mut r: RuleSpec, ports: &[(u16, u16)]) -> RuleSpec {
    r.proto = Proto::Tcp;
    r.ports = ports.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect();
    r
}

fn id(n: &str) -> Selector {
    Selector::Identity(n.into())
}

fn cidr(c: &str) -> Selector {
    Selector::Cidr(c.parse().unwrap())
}

fn spec(sets: Vec<(Mode, Vec<RuleSpec>)>) -> PolicySpec {
    PolicySpec {
        sets: sets
            .into_iter()
            .enumerate()
            .map(|(i, (mode, rules))| SetSpec {
                name: format!("s{i}"),
                mode,
                rules,
            })
            .collect(),
        ..PolicySpec::default()
    }
}

fn ep(subject: Subject, addr: Option<[u8; 4]>) -> Endpoint {
    Endpoint {
        subject,
        addr: addr.map(Ipv4Addr::from),
    }
}

fn flow(src: Endpoint, dst: Endpoint, proto: u8, port: u16) -> FlowQuery {
    FlowQuery {
        src,
        dst,
        proto,
        dst_port: port,
        dst_fqdns: 0,
    }
}

/// Ask both evaluators; they must agree.
fn ask(spec: &PolicySpec, q: FlowQuery) -> Decision {
    let docs = docs();
    let c = compile(spec, &docs).unwrap_or_else(|e| panic!("{e}"));
    let want = evaluate(spec, &docs, &q);
    assert_eq!(c.lookup(&q), want, "{q:?}");
    want
}

fn who(i: u32) -> Endpoint {
    ep(Subject::Identity(i), Some([10, 1, 0, i as u8 + 1]))
}

fn unauth(a: [u8; 4]) -> Endpoint {
    ep(Subject::Unauthenticated, Some(a))
}

#[test]
fn first_match_lets_an_exception_carve_out_of_a_later_allow() {
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            rule(
                vec![id("spiffe://lab/ns/web/sa/api")],
                vec![],
                Action::Reject,
            ),
            rule(
                vec![Selector::Glob("spiffe://lab/ns/*".into())],
                vec![],
                Action::Allow,
            ),
        ],
    )]);
    let d = ask(&s, flow(who(WEB), who(DB), 6, 80));
    assert_eq!((d.action, d.rule), (Action::Reject, Some(RuleId(0))));
    let d = ask(&s, flow(who(API), who(DB), 6, 80));
    assert_eq!((d.action, d.rule), (Action::Allow, Some(RuleId(1))));
}

#[test]
fn no_match_is_the_default_in_the_default_mode() {
    let mut s = spec(vec![]);
    let d = ask(&s, flow(who(WEB), who(DB), 6, 80));
    assert_eq!(
        d,
        Decision {
            action: Action::Deny,
            mode: Mode::Enforce,
            rule: None,
            provisional: false,
            l7: false,
        }
    );
    s.default_action = DenyAction::Reject;
    s.default_mode = Mode::Monitor;
    let d = ask(&s, flow(who(WEB), who(DB), 6, 80));
    assert_eq!(
        (d.action, d.mode, d.rule),
        (Action::Reject, Mode::Monitor, None)
    );
    assert!(d.forwards() && d.effective().would_deny);
}

#[test]
fn the_deciding_rules_set_gives_the_mode() {
    let s = spec(vec![
        (
            Mode::Monitor,
            vec![rule(
                vec![],
                vec![id("spiffe://lab/ns/payments/sa/db")],
                Action::Deny,
            )],
        ),
        (Mode::Learn, vec![rule(vec![], vec![], Action::Allow)]),
    ]);
    let d = ask(&s, flow(who(API), who(DB), 6, 5432));
    assert_eq!(
        (d.action, d.mode, d.rule),
        (Action::Deny, Mode::Monitor, Some(RuleId(0)))
    );
    assert!(d.forwards() && d.effective().would_deny);
    let d = ask(&s, flow(who(DB), who(API), 6, 5432));
    assert_eq!((d.mode, d.rule), (Mode::Learn, Some(RuleId(1))));
    assert!(d.effective().learn);
}

#[test]
fn identity_selectors_match_only_authenticated_documents() {
    let s = spec(vec![(
        Mode::Enforce,
        vec![rule(
            vec![
                Selector::Labels([("tier".to_string(), "gold".to_string())].into()),
                Selector::Glob("spiffe://lab/ns/web/*".into()),
            ],
            vec![],
            Action::Allow,
        )],
    )]);
    for i in [WEB, API, DB] {
        assert_eq!(ask(&s, flow(who(i), who(DB), 1, 0)).action, Action::Allow);
    }
    assert_eq!(
        ask(&s, flow(unauth([10, 1, 0, 1]), who(DB), 1, 0)).action,
        Action::Deny
    );
    // Labels must all match.
    let s = spec(vec![(
        Mode::Enforce,
        vec![rule(
            vec![Selector::Labels(
                [("tier", "gold"), ("app", "db")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )],
            vec![],
            Action::Allow,
        )],
    )]);
    assert_eq!(ask(&s, flow(who(DB), who(API), 1, 0)).action, Action::Allow);
    assert_eq!(ask(&s, flow(who(API), who(DB), 1, 0)).action, Action::Deny);
}

#[test]
fn unauthenticated_and_cidr_selectors() {
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            rule(vec![Selector::Unauthenticated], vec![], Action::Reject),
            rule(vec![cidr("10.9.0.0/16")], vec![], Action::Allow),
        ],
    )]);
    // Unauthenticated matches whatever the address.
    let d = ask(&s, flow(unauth([10, 9, 0, 1]), who(DB), 6, 1));
    assert_eq!(d.rule, Some(RuleId(0)));
    // A CIDR matches an authenticated endpoint too.
    let d = ask(
        &s,
        flow(
            ep(Subject::Identity(API), Some([10, 9, 3, 3])),
            who(DB),
            6,
            1,
        ),
    );
    assert_eq!(d.rule, Some(RuleId(1)));
    // No address (IPv6): no CIDR matches.
    let d = ask(&s, flow(ep(Subject::Identity(API), None), who(DB), 6, 1));
    assert_eq!(d.rule, None);
    // An unknown source and an index past the end are unauthenticated.
    let d = ask(&s, flow(ep(Subject::Unknown, None), who(DB), 6, 1));
    assert_eq!(d.rule, Some(RuleId(0)));
    let d = ask(&s, flow(ep(Subject::Identity(99), None), who(DB), 6, 1));
    assert_eq!(d.rule, Some(RuleId(0)));
}

#[test]
fn protocols_and_ports() {
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            tcp(
                rule(vec![], vec![], Action::Allow),
                &[(80, 80), (8000, 8100)],
            ),
            RuleSpec {
                proto: Proto::Udp,
                ..rule(vec![], vec![], Action::Reject)
            },
            RuleSpec {
                proto: Proto::Icmp,
                ..rule(vec![], vec![], Action::Allow)
            },
            rule(
                vec![],
                vec![id("spiffe://lab/ns/payments/sa/db")],
                Action::Allow,
            ),
        ],
    )]);
    let at = |proto, port| ask(&s, flow(who(WEB), who(API), proto, port)).rule;
    assert_eq!(at(6, 80), Some(RuleId(0)));
    assert_eq!(at(6, 8000), Some(RuleId(0)));
    assert_eq!(at(6, 8100), Some(RuleId(0)));
    assert_eq!(at(6, 8101), None);
    assert_eq!(at(6, 79), None);
    // Empty ports: every port.
    assert_eq!(at(17, 0), Some(RuleId(1)));
    assert_eq!(at(17, 65535), Some(RuleId(1)));
    // ICMP ignores the port; other protocols only match `any`.
    assert_eq!(at(1, 12345), Some(RuleId(2)));
    assert_eq!(at(47, 0), None);
    let d = ask(&s, flow(who(WEB), who(DB), 47, 0));
    assert_eq!(d.rule, Some(RuleId(3)));
}

#[test]
fn unknown_destination_is_allowed_when_any_possibility_is() {
    let unknown = ep(Subject::Unknown, Some([10, 1, 0, 3]));
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            rule(
                vec![],
                vec![id("spiffe://lab/ns/payments/sa/db")],
                Action::Deny,
            ),
            tcp(
                rule(
                    vec![],
                    vec![id("spiffe://lab/ns/payments/sa/api")],
                    Action::Reject,
                ),
                &[(443, 443)],
            ),
            tcp(
                rule(
                    vec![],
                    vec![Selector::Glob("spiffe://lab/ns/payments/*".into())],
                    Action::Allow,
                ),
                &[],
            ),
            tcp(
                rule(vec![], vec![Selector::Unauthenticated], Action::Allow),
                &[],
            ),
        ],
    )]);
    // API allowed by rule 2 on port 80 (db is denied by 0, unauthenticated
    // allowed by 3): the lowest allowing rule.
    let d = ask(&s, flow(who(WEB), unknown, 6, 80));
    assert_eq!(
        (d.action, d.rule, d.provisional),
        (Action::Allow, Some(RuleId(2)), true)
    );
    // On 443 api is rejected by rule 1; unauthenticated is still allowed by 3.
    let d = ask(&s, flow(who(WEB), unknown, 6, 443));
    assert_eq!((d.action, d.rule), (Action::Allow, Some(RuleId(3))));
    // UDP: db denied by 0, everyone else by the default: the lowest rule.
    let d = ask(&s, flow(who(WEB), unknown, 17, 53));
    assert_eq!(
        (d.action, d.rule, d.provisional),
        (Action::Deny, Some(RuleId(0)), true)
    );
    // No rule at all: the default, provisional.
    let d = ask(&spec(vec![]), flow(who(WEB), unknown, 17, 53));
    assert_eq!((d.rule, d.provisional), (None, true));
    // A rule whose `to` CIDR holds the address decides every possibility.
    let s = spec(vec![(
        Mode::Monitor,
        vec![
            rule(vec![], vec![cidr("10.1.0.0/24")], Action::Reject),
            rule(vec![], vec![], Action::Allow),
        ],
    )]);
    let d = ask(&s, flow(who(WEB), unknown, 6, 1));
    assert_eq!(
        (d.action, d.mode, d.rule),
        (Action::Reject, Mode::Monitor, Some(RuleId(0)))
    );
}

fn err(s: &PolicySpec) -> CompileError {
    compile(s, &docs()).expect_err("compiles")
}

fn one(r: RuleSpec) -> PolicySpec {
    spec(vec![(Mode::Enforce, vec![r])])
}

const AT0: RuleLoc = RuleLoc { set: 0, rule: 0 };

#[test]
fn compile_errors_name_their_place() {
    let e = err(&one(rule(
        vec![],
        vec![cidr("10.0.0.0/8"), id("nope")],
        Action::Allow,
    )));
    assert_eq!(e.to_string(), "set 0 rule 0 to[1]: unknown identity `nope`");
    let CompileError::UnknownIdentity { at, .. } = e else {
        panic!()
    };
    assert_eq!((at.rule, at.side, at.index), (AT0, Side::To, 1));

    let e = err(&one(rule(
        vec![Selector::Glob(String::new())],
        vec![],
        Action::Allow,
    )));
    assert_eq!(
        e.to_string(),
        "set 0 rule 0 from[0]: bad glob \"\": the glob is empty"
    );
    let e = err(&one(rule(
        vec![Selector::Glob("a\n*".into())],
        vec![],
        Action::Allow,
    )));
    assert!(matches!(e, CompileError::BadGlob { .. }), "{e}");

    let e = err(&one(rule(
        vec![Selector::Glob("spiffe://other/*".into())],
        vec![],
        Action::Allow,
    )));
    assert_eq!(
        e.to_string(),
        "set 0 rule 0 from[0]: the selector matches no identity document"
    );
    let labels = Selector::Labels([("app".to_string(), "nope".to_string())].into());
    assert!(matches!(
        err(&one(rule(vec![], vec![labels], Action::Allow))),
        CompileError::MatchesNothing { .. }
    ));

    let e = err(&one(tcp(
        rule(vec![], vec![], Action::Allow),
        &[(1, 2), (90, 80)],
    )));
    assert_eq!(
        e.to_string(),
        "set 0 rule 0 ports[1]: port range 90-80 is inverted"
    );
    let mut icmp = tcp(rule(vec![], vec![], Action::Allow), &[(1, 2)]);
    icmp.proto = Proto::Icmp;
    assert_eq!(
        err(&one(icmp)).to_string(),
        "set 0 rule 0 ports[0]: proto icmp has no ports"
    );
    let mut any = tcp(rule(vec![], vec![], Action::Allow), &[(1, 2)]);
    any.proto = Proto::Any;
    assert!(matches!(
        err(&one(any)),
        CompileError::PortsWithoutPortProto {
            proto: Proto::Any,
            ..
        }
    ));
}

#[test]
fn shadowed_rules_are_errors() {
    // One earlier rule covers it (across sets).
    let s = spec(vec![
        (
            Mode::Enforce,
            vec![rule(
                vec![Selector::Glob("*".into()), Selector::Unauthenticated],
                vec![],
                Action::Deny,
            )],
        ),
        (
            Mode::Monitor,
            vec![tcp(
                rule(
                    vec![id("spiffe://lab/ns/web/sa/api")],
                    vec![],
                    Action::Allow,
                ),
                &[(80, 80)],
            )],
        ),
    ]);
    assert_eq!(
        err(&s).to_string(),
        "set 1 rule 0: can never match, shadowed by set 0 rule 0"
    );
    // Earlier rules that split the ports between them.
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            tcp(rule(vec![], vec![], Action::Allow), &[(80, 80)]),
            tcp(rule(vec![], vec![], Action::Allow), &[(81, 443)]),
            tcp(rule(vec![], vec![], Action::Deny), &[(80, 90), (400, 443)]),
        ],
    )]);
    assert_eq!(
        err(&s).to_string(),
        "set 0 rule 2: can never match, shadowed by set 0 rule 0, set 0 rule 1"
    );
    // Earlier rules that split the sources: a CIDR holds every identity.
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            rule(
                vec![id("spiffe://lab/ns/web/sa/api")],
                vec![],
                Action::Allow,
            ),
            rule(vec![cidr("10.0.0.0/8")], vec![], Action::Allow),
            rule(
                vec![id("spiffe://lab/ns/web/sa/api"), cidr("10.1.0.0/16")],
                vec![],
                Action::Deny,
            ),
        ],
    )]);
    assert!(matches!(err(&s), CompileError::Shadowed { by, .. } if by.len() == 2));
    // Not shadowed: a CIDR does not cover an identity anywhere.
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            rule(vec![cidr("0.0.0.0/0")], vec![], Action::Allow),
            rule(vec![id("spiffe://lab/ns/web/sa/api")], vec![], Action::Deny),
        ],
    )]);
    // ...because an endpoint without an IPv4 address reaches rule 1.
    let d = ask(&s, flow(ep(Subject::Identity(WEB), None), who(DB), 6, 1));
    assert_eq!(d.rule, Some(RuleId(1)));
}

#[test]
fn too_many_destination_classes_is_an_error_not_an_oom() {
    let n = MAX_DST_CLASSES + 1;
    let docs: Vec<IdentityDoc> = (0..n).map(|i| doc(&format!("d{i}"), &[])).collect();
    let rules = (0..n)
        .map(|i| rule(vec![], vec![id(&format!("d{i}"))], Action::Allow))
        .collect();
    let e = compile(&spec(vec![(Mode::Enforce, rules)]), &docs).unwrap_err();
    assert!(matches!(e, CompileError::TooLarge { .. }));
    assert!(
        e.to_string().starts_with("policy too large to compile: "),
        "{e}"
    );
}

#[test]
fn too_many_rules_is_an_error() {
    let rules = vec![rule(vec![], vec![], Action::Allow); MAX_RULES + 1];
    let e = compile(&spec(vec![(Mode::Enforce, rules)]), &docs()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "policy too large to compile: {} rules, at most {MAX_RULES}",
            MAX_RULES + 1
        )
    );
}

fn http_rule(to: Vec<Selector>, methods: &[&str], paths: &[&str]) -> RuleSpec {
    let mut r = tcp(rule(vec![], to, Action::Allow), &[(80, 80)]);
    r.l7 = Some(policy::L7Clause::Http(vec![policy::HttpMatch {
        methods: methods.iter().map(|s| s.to_string()).collect(),
        paths: paths.iter().map(|s| s.to_string()).collect(),
        hosts: vec![],
    }]));
    r
}

fn get(path: &'static str) -> policy::L7Request<'static> {
    policy::L7Request::Http {
        method: b"GET",
        path: path.as_bytes(),
        host: None,
    }
}

#[test]
fn l7_rules_union_then_the_next_l4_rule_decides() {
    let docs = docs();
    let s = spec(vec![
        (
            Mode::Enforce,
            vec![
                http_rule(vec![], &["GET"], &["/orders/**"]),
                tcp(rule(vec![], vec![], Action::Deny), &[(81, 81)]),
            ],
        ),
        (
            Mode::Monitor,
            vec![
                http_rule(vec![], &[], &["/items"]),
                tcp(rule(vec![], vec![], Action::Reject), &[(80, 80)]),
            ],
        ),
    ]);
    let c = compile(&s, &docs).unwrap();
    let q = flow(who(WEB), who(API), 6, 80);
    let d = ask(&s, q);
    assert_eq!(
        (d.rule, d.l7, d.action),
        (Some(RuleId(0)), true, Action::Allow)
    );
    let req = |path| {
        let r = c.request(&q, RuleId(0), &get(path));
        assert_eq!(
            r,
            policy::reference::request(&s, &docs, &q, RuleId(0), &get(path))
        );
        (r.rule, r.action, r.mode, r.l7)
    };
    assert_eq!(
        req("/orders/1"),
        (Some(RuleId(0)), Action::Allow, Mode::Enforce, true)
    );
    // The second set's L7 rule, in its mode.
    assert_eq!(
        req("/items"),
        (Some(RuleId(2)), Action::Allow, Mode::Monitor, true)
    );
    // Nothing allows it: the next L4 rule decides.
    assert_eq!(
        req("/late"),
        (Some(RuleId(3)), Action::Reject, Mode::Monitor, false)
    );
    // The other protocol falls through to the same rule.
    let ssh = policy::L7Request::Detected(l7::detect::Proto::Ssh);
    assert_eq!(c.request(&q, RuleId(0), &ssh).rule, Some(RuleId(3)));
    assert!(c.inspect(&q, RuleId(0)).parses(l7::detect::Proto::Http));
    assert!(!c.inspect(&q, RuleId(0)).parses(l7::detect::Proto::Tls));
}

#[test]
fn l7_rules_cover_nothing_but_can_be_shadowed() {
    let docs = docs();
    // An L4 rule after an L7 rule with the same region is reachable.
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            http_rule(vec![], &["GET"], &[]),
            tcp(rule(vec![], vec![], Action::Deny), &[(80, 80)]),
        ],
    )]);
    assert!(compile(&s, &docs).is_ok());
    // An L7 rule after an L4 rule covering it is not.
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            tcp(rule(vec![], vec![], Action::Deny), &[(80, 80)]),
            http_rule(vec![], &["GET"], &[]),
        ],
    )]);
    assert!(matches!(
        compile(&s, &docs),
        Err(CompileError::Shadowed {
            rule: RuleLoc { set: 0, rule: 1 },
            ..
        })
    ));
}

#[test]
fn unknown_destination_counts_an_l7_rule_as_allowing() {
    let docs = docs();
    let s = spec(vec![(
        Mode::Enforce,
        vec![
            tcp(
                rule(
                    vec![],
                    vec![id("spiffe://lab/ns/payments/sa/db")],
                    Action::Deny,
                ),
                &[(80, 80)],
            ),
            http_rule(vec![id("spiffe://lab/ns/payments/sa/api")], &["GET"], &[]),
        ],
    )]);
    let q = flow(who(WEB), ep(Subject::Unknown, Some([10, 0, 0, 9])), 6, 80);
    let d = ask(&s, q);
    assert_eq!((d.rule, d.l7, d.provisional), (Some(RuleId(1)), true, true));
    let c = compile(&s, &docs).unwrap();
    let r = c.request(&q, RuleId(1), &get("/x"));
    assert_eq!(
        r,
        policy::reference::request(&s, &docs, &q, RuleId(1), &get("/x"))
    );
    assert_eq!((r.action, r.provisional, r.l7), (Action::Allow, true, true));
}

#[test]
fn fqdn_selectors_match_learned_destinations() {
    let docs = docs();
    let mut r = tcp(
        rule(
            vec![],
            vec![Selector::Fqdn("*.example.com".into())],
            Action::Allow,
        ),
        &[(443, 443)],
    );
    r.to.push(Selector::Fqdn("api.example.com".into()));
    let s = spec(vec![(Mode::Enforce, vec![r])]);
    let c = compile(&s, &docs).unwrap();
    assert_eq!(c.fqdn_patterns(), ["*.example.com", "api.example.com"]);
    let mut q = flow(
        who(WEB),
        ep(Subject::Unauthenticated, Some([93, 184, 216, 34])),
        6,
        443,
    );
    assert_eq!(ask(&s, q).rule, None);
    q.dst_fqdns = 0b10;
    assert_eq!(ask(&s, q).rule, Some(RuleId(0)));
    q.dst_fqdns = 1 << 40; // no such pattern
    assert_eq!(ask(&s, q).rule, None);
    // Sources cannot be FQDNs.
    let bad = spec(vec![(
        Mode::Enforce,
        vec![rule(
            vec![Selector::Fqdn("a.example.com".into())],
            vec![],
            Action::Allow,
        )],
    )]);
    assert!(matches!(
        compile(&bad, &docs),
        Err(CompileError::FqdnOnSource { .. })
    ));
}
