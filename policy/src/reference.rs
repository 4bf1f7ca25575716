//! The obviously correct evaluator: the semantics of the crate docs written
//! out as a linear scan, with no precomputation. Slow (a glob match per
//! rule per query) and only for tests, fuzzing and tools; the compiled
//! form must always give the same answer.

use identity::IdentityDoc;

use crate::model::{
    Action, Decision, Endpoint, FlowQuery, PolicySpec, Proto, RuleId, RuleSpec, Selector, Subject,
    IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};
use crate::select::matches_doc;

/// The decision for `q` under `spec`, with `docs` the identity universe
/// (document index = identity index). `spec` is assumed valid (it compiles);
/// for an invalid one the answer is still defined but meaningless.
pub fn evaluate(spec: &PolicySpec, docs: &[IdentityDoc], q: &FlowQuery) -> Decision {
    let src = concrete(q.src, docs);
    if q.dst.subject != Subject::Unknown {
        let dst = concrete(q.dst, docs);
        let mut d = first_match(spec, docs, &src, &dst, q);
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
            first_match(spec, docs, &src, &dst, q)
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

/// First match over every rule in file order, else the default.
fn first_match(
    spec: &PolicySpec,
    docs: &[IdentityDoc],
    src: &Endpoint,
    dst: &Endpoint,
    q: &FlowQuery,
) -> Decision {
    for (id, _, set, rule) in spec.rules() {
        if rule_matches(rule, docs, src, dst, q.proto, q.dst_port) {
            return Decision {
                action: rule.action,
                mode: set.mode,
                rule: Some(RuleId(id.0)),
                provisional: false,
            };
        }
    }
    default(spec)
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
