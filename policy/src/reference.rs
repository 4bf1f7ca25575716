//! The obviously correct evaluator: the semantics of the crate docs written
//! out as a linear scan, with no precomputation. Slow (a glob match per
//! rule per query) and only for tests, fuzzing and tools; the compiled
//! form must always give the same answer.

use identity::IdentityDoc;
use l7::pattern::{name_matches, path_prefix};

use crate::clause::{split_host, L7Clause, L7Request};
use crate::model::{
    Action, Decision, Endpoint, FlowQuery, PolicySpec, Proto, RuleId, RuleSpec, Selector, Subject,
    IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};
use crate::select::matches_doc;

/// The decision for `q` under `spec`, with `docs` the identity universe
/// (document index = identity index). `spec` is assumed valid (it compiles);
/// for an invalid one the answer is still defined but meaningless.
pub fn evaluate(spec: &PolicySpec, docs: &[IdentityDoc], q: &FlowQuery) -> Decision {
    aggregate(spec, docs, q, |src, dst| {
        walk(spec, docs, src, dst, q, 0, None)
    })
}

/// The decision for request `req` of an inspected flow `q` whose lookup
/// named rule `from` (crate docs, "L7 rules"): the rules matching the flow
/// at L4 from `from` on, in order; an L7 rule whose `app` and clause match
/// the request decides; an L7 rule that does not is skipped; the first L4
/// rule decides; else the default. An unknown destination aggregates over
/// the possible destinations as [`evaluate`] does.
pub fn request(
    spec: &PolicySpec,
    docs: &[IdentityDoc],
    q: &FlowQuery,
    from: RuleId,
    req: &L7Request<'_>,
) -> Decision {
    aggregate(spec, docs, q, |src, dst| {
        walk(spec, docs, src, dst, q, from.0 as usize, Some(req))
    })
}

/// `decide` for the concrete flow, or the aggregate over every possible
/// destination when it is unknown.
fn aggregate(
    spec: &PolicySpec,
    docs: &[IdentityDoc],
    q: &FlowQuery,
    decide: impl Fn(&Endpoint, &Endpoint) -> Decision,
) -> Decision {
    let src = concrete(q.src, docs);
    if q.dst.subject != Subject::Unknown {
        let dst = concrete(q.dst, docs);
        let mut d = decide(&src, &dst);
        d.provisional = false;
        return d;
    }
    // Unknown destination: every document, and unauthenticated, is possible.
    let possible = (0..docs.len() as u32)
        .map(Subject::Identity)
        .chain(std::iter::once(Subject::Unauthenticated))
        .map(|subject| {
            let dst = Endpoint {
                subject,
                addr: q.dst.addr,
            };
            decide(&src, &dst)
        });
    // The lowest-index allowing decision if any, else the lowest-index
    // decision of all (a rule before the default).
    let order = |d: &Decision| d.rule.map_or(u64::MAX, |r| u64::from(r.0));
    let all: Vec<Decision> = possible.collect();
    let chosen = all
        .iter()
        .filter(|d| d.action == Action::Allow)
        .min_by_key(|d| order(d))
        .or_else(|| all.iter().min_by_key(|d| order(d)))
        .copied()
        .unwrap_or_else(|| default(spec));
    Decision {
        provisional: true,
        ..chosen
    }
}

/// The default decision.
pub(crate) fn default(spec: &PolicySpec) -> Decision {
    Decision {
        action: spec.default_action.into(),
        mode: spec.default_mode,
        rule: None,
        provisional: false,
        l7: false,
    }
}

/// `ep` with the subjects that stand for someone else replaced: an unknown
/// source and an identity index past the end are unauthenticated.
fn concrete(ep: Endpoint, docs: &[IdentityDoc]) -> Endpoint {
    let subject = match ep.subject {
        Subject::Identity(i) if (i as usize) < docs.len() => ep.subject,
        _ => Subject::Unauthenticated,
    };
    Endpoint {
        subject,
        addr: ep.addr,
    }
}

/// Without a request: the first rule from `from` on that matches the flow
/// at L4, else the default. With one: the walk of [`request`].
fn walk(
    spec: &PolicySpec,
    docs: &[IdentityDoc],
    src: &Endpoint,
    dst: &Endpoint,
    q: &FlowQuery,
    from: usize,
    req: Option<&L7Request<'_>>,
) -> Decision {
    let fqdns = spec.fqdn_patterns();
    for (id, _, set, rule) in spec.rules().skip(from) {
        if !rule_matches_fqdn(rule, docs, src, dst, q, &fqdns) {
            continue;
        }
        let l7 = rule.is_l7();
        if let Some(req) = req {
            if l7 && !allows(rule, req) {
                continue;
            }
        }
        return Decision {
            action: rule.action,
            mode: set.mode,
            rule: Some(RuleId(id.0)),
            provisional: false,
            l7,
        };
    }
    default(spec)
}

/// Whether L7 rule `rule` allows `req`: its `app` (if any) is the
/// request's protocol, and its clause (if any) has an entry matching the
/// request, written out from the spec's strings.
pub fn allows(rule: &RuleSpec, req: &L7Request<'_>) -> bool {
    if rule.app.is_some_and(|a| a != req.app()) {
        return false;
    }
    let Some(clause) = &rule.l7 else {
        return true;
    };
    let any_name = |pats: &[String], n: &[u8]| pats.iter().any(|p| name_matches(p.as_bytes(), n));
    match (clause, req) {
        (L7Clause::Http(entries), L7Request::Http { method, path, host }) => {
            entries.iter().any(|e| {
                (e.methods.is_empty() || e.methods.iter().any(|m| m.as_bytes() == *method))
                    && (e.paths.is_empty() || e.paths.iter().any(|p| path_matches(p, path)))
                    && (e.hosts.is_empty()
                        || e.hosts.iter().any(|h| {
                            let Some((hn, hp)) = host else {
                                return false;
                            };
                            let Ok((n, port)) = split_host(h) else {
                                return false;
                            };
                            name_matches(n.as_bytes(), hn)
                                && port.is_none_or(|p| hp.unwrap_or(80) == p)
                        }))
            })
        }
        (L7Clause::Tls(entries), L7Request::Tls { sni, alpn, ech }) => entries.iter().any(|e| {
            let names_ok = e.server_names.is_empty()
                || match sni {
                    Some(s) if !ech => any_name(&e.server_names, s),
                    _ => false,
                };
            let alpn_ok = e.alpn.is_empty()
                || e.alpn
                    .iter()
                    .any(|a| alpn.iter().any(|offered| offered == a.as_bytes()));
            names_ok && alpn_ok
        }),
        (L7Clause::Dns(entries), L7Request::Dns { name }) => {
            entries.iter().any(|e| any_name(&e.names, name))
        }
        _ => false,
    }
}

/// A path pattern against a normalised path, spelled out: exact without
/// `*`; otherwise segment by segment, `*` any run within one segment, a
/// last segment `**` any rest (none included).
fn path_matches(pattern: &str, path: &[u8]) -> bool {
    if !pattern.contains('*') {
        return pattern.as_bytes() == path;
    }
    let pats: Vec<&[u8]> = pattern.as_bytes().split(|&b| b == b'/').collect();
    let segs: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    if pats.last() == Some(&&b"**"[..]) {
        let head = &pats[..pats.len() - 1];
        // `**` matches any rest: the path must start with the segments
        // before it (whole segments).
        let literal = !head.iter().any(|s| s.contains(&b'*'));
        if literal {
            let prefix = head.join(&b'/');
            return path_prefix(&prefix, path);
        }
        return segs.len() >= head.len() && head.iter().zip(&segs).all(|(p, s)| segment(p, s));
    }
    pats.len() == segs.len() && pats.iter().zip(&segs).all(|(p, s)| segment(p, s))
}

/// One segment against a pattern with `*` (any run), by recursion.
fn segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| segment(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
    }
}

/// [`rule_matches`] with FQDN selectors: `to` pattern `k` (numbered by
/// [`PolicySpec::fqdn_patterns`]) matches when bit `k` of `q.dst_fqdns` is
/// set.
fn rule_matches_fqdn(
    rule: &RuleSpec,
    docs: &[IdentityDoc],
    src: &Endpoint,
    dst: &Endpoint,
    q: &FlowQuery,
    fqdns: &[String],
) -> bool {
    let fqdn_hit = rule.to.iter().any(|s| match s {
        Selector::Fqdn(p) => fqdns
            .iter()
            .position(|x| x == p)
            .is_some_and(|k| k < 64 && q.dst_fqdns & (1 << k) != 0),
        _ => false,
    });
    list_matches(&rule.from, docs, src)
        && (fqdn_hit || list_matches(&rule.to, docs, dst))
        && proto_matches(rule, q.proto, q.dst_port)
}

/// Whether `rule` matches the (concrete) flow.
pub fn rule_matches(
    rule: &RuleSpec,
    docs: &[IdentityDoc],
    src: &Endpoint,
    dst: &Endpoint,
    proto: u8,
    port: u16,
) -> bool {
    list_matches(&rule.from, docs, src)
        && list_matches(&rule.to, docs, dst)
        && proto_matches(rule, proto, port)
}

fn list_matches(list: &[Selector], docs: &[IdentityDoc], ep: &Endpoint) -> bool {
    list.is_empty() || list.iter().any(|s| selector_matches(s, docs, ep))
}

/// Whether one selector matches a concrete endpoint.
pub fn selector_matches(sel: &Selector, docs: &[IdentityDoc], ep: &Endpoint) -> bool {
    match sel {
        Selector::Unauthenticated => ep.subject == Subject::Unauthenticated,
        Selector::Cidr(c) => ep.addr.is_some_and(|a| c.contains(a)),
        // Needs the query's learned names: see `rule_matches_fqdn`.
        Selector::Fqdn(_) => false,
        Selector::Identity(_) | Selector::Glob(_) | Selector::Labels(_) => match ep.subject {
            Subject::Identity(i) => docs.get(i as usize).is_some_and(|d| matches_doc(sel, d)),
            Subject::Unauthenticated | Subject::Unknown => false,
        },
    }
}

fn proto_matches(rule: &RuleSpec, proto: u8, port: u16) -> bool {
    let ports_match = || rule.ports.is_empty() || rule.ports.iter().any(|r| r.contains(port));
    match rule.proto {
        Proto::Any => true,
        Proto::Icmp => proto == IPPROTO_ICMP,
        Proto::Tcp => proto == IPPROTO_TCP && ports_match(),
        Proto::Udp => proto == IPPROTO_UDP && ports_match(),
    }
}
