//! The policy language end to end: arbitrary text appended to a fixed,
//! valid instance config (identity on, four documents) is parsed. On
//! success: the config writes back to TOML that parses equal; its policy
//! compiles (validation already compiled it, so a failure here is a bug);
//! and the compiled form answers like `policy::reference::evaluate` on
//! queries derived from the input (subjects including unknown and
//! out-of-range ones, addresses at the edges of the policy's CIDRs, ports
//! at the edges of its ranges, FQDN bits from the input). For inspected
//! flows, `request` answers like `policy::reference::request` on HTTP,
//! TLS, DNS and detected-protocol requests built from the input's bytes
//! and the policy's own patterns. Never a panic, whatever the text.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use l7::detect::Proto as App;
use policy::{Endpoint, FlowQuery, L7Request, Selector, Subject};

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
labels = { app = "api", tier = "gold" }

[[identity.document]]
name = "spiffe://lab/ns/payments/sa/db"
labels = { tier = "gold" }

[[identity.document]]
name = "legacy?batch"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(extra) = std::str::from_utf8(data) else {
        return;
    };
    let text = format!("{BASE}{extra}");
    let Ok(c) = config::parse_warden(&text, "fuzz.toml") else {
        return;
    };
    let again = config::parse_warden(&c.to_toml(), "out").expect("to_toml parses");
    assert_eq!(again, c, "to_toml round trip");
    let Some(spec) = &c.policy else {
        return;
    };
    let docs = &c.documents;
    let compiled = policy::compile(spec, docs).expect("a validated policy compiles");

    // Addresses and ports worth asking about: the edges of every CIDR and
    // port range in the policy, plus a few fixed ones.
    let mut addrs: Vec<Option<Ipv4Addr>> = vec![None, Some(Ipv4Addr::new(10, 1, 0, 5))];
    let mut ports: Vec<u16> = vec![0, 80, 443, 65535];
    for (_, _, _, r) in spec.rules() {
        for s in r.from.iter().chain(&r.to) {
            if let Selector::Cidr(c) = s {
                let lo = u32::from(c.address()) & c.mask();
                let hi = lo | !c.mask();
                for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                    addrs.push(Some(Ipv4Addr::from(a)));
                }
            }
        }
        for p in &r.ports {
            ports.extend([p.lo.wrapping_sub(1), p.lo, p.hi, p.hi.wrapping_add(1)]);
        }
    }
    // Every string of every L7 clause, to build requests from.
    let mut strings: Vec<&str> = Vec::new();
    for (_, _, _, r) in spec.rules() {
        match &r.l7 {
            Some(policy::L7Clause::Http(v)) => v.iter().for_each(|e| {
                strings.extend(e.methods.iter().chain(&e.paths).chain(&e.hosts).map(String::as_str))
            }),
            Some(policy::L7Clause::Tls(v)) => v.iter().for_each(|e| {
                strings.extend(e.server_names.iter().chain(&e.alpn).map(String::as_str))
            }),
            Some(policy::L7Clause::Dns(v)) => {
                v.iter().for_each(|e| strings.extend(e.names.iter().map(String::as_str)))
            }
            None => {}
        }
    }
    let n = docs.len() as u32;
    let subjects = [
        Subject::Identity(0),
        Subject::Identity(1),
        Subject::Identity(2),
        Subject::Identity(3),
        Subject::Identity(n + 7),
        Subject::Unauthenticated,
        Subject::Unknown,
    ];
    let protos = [6u8, 17, 1, 47];
    // Up to 64 queries, chosen by the input's bytes.
    let pick = |i: usize, k: usize, len: usize| {
        let b = data
            .get((i * 5 + k) % data.len().max(1))
            .copied()
            .unwrap_or(0) as usize;
        (b + i * 31 + k * 7) % len
    };
    for i in 0..64 {
        let q = FlowQuery {
            src: Endpoint {
                subject: subjects[pick(i, 0, subjects.len())],
                addr: addrs[pick(i, 1, addrs.len())],
            },
            dst: Endpoint {
                subject: subjects[pick(i, 2, subjects.len())],
                addr: addrs[pick(i, 3, addrs.len())],
            },
            proto: protos[pick(i, 4, protos.len())],
            dst_port: ports[pick(i, 5, ports.len())],
            dst_fqdns: pick(i, 6, 256) as u64,
        };
        let d = compiled.lookup(&q);
        assert_eq!(d, policy::reference::evaluate(spec, docs, &q), "{q:?}");
        let Some(from) = d.rule.filter(|_| d.l7) else {
            continue;
        };
        // Requests: the policy's own strings and a few fixed ones.
        let word = |k: usize| -> &[u8] {
            let w: [&[u8]; 8] = [
                b"GET",
                b"POST",
                b"/",
                b"/orders/7",
                b"api.example.com",
                b"x.svc",
                b"h2",
                b"",
            ];
            match strings.get(pick(i, k, strings.len() + w.len())) {
                Some(s) => s.as_bytes(),
                None => w[pick(i, k, w.len())],
            }
        };
        let alpn_wire = [2u8, b'h', b'2'];
        let reqs = [
            L7Request::Http {
                method: word(7),
                path: word(8),
                host: Some((word(9), (pick(i, 10, 2) == 0).then_some(8080))),
            },
            L7Request::Http {
                method: word(8),
                path: word(7),
                host: None,
            },
            L7Request::Tls {
                sni: Some(word(9)),
                alpn: l7::tls::Alpn::from_wire(&alpn_wire).expect("valid"),
                ech: pick(i, 11, 4) == 0,
            },
            L7Request::Dns { name: word(10) },
            L7Request::Detected([App::Http, App::Tls, App::Dns, App::Ssh, App::Unknown][pick(i, 12, 5)]),
        ];
        for req in &reqs {
            assert_eq!(
                compiled.request(&q, from, req),
                policy::reference::request(spec, docs, &q, from, req),
                "{req:?} {q:?}"
            );
        }
    }
});
