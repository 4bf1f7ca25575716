//! The spec (what config produces), the query and the answer.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use overlay::Ipv4Cidr;

/// A whole policy: sets of rules in file order and what happens to flows
/// no rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Mode of the default decision (no rule matched).
    pub default_mode: Mode,
    /// What the default decision does: never allow (default deny).
    pub default_action: DenyAction,
    pub sets: Vec<SetSpec>,
}

impl Default for PolicySpec {
    /// No sets, default deny, enforced: the policy of a config that says
    /// nothing about policy.
    fn default() -> Self {
        PolicySpec {
            default_mode: Mode::Enforce,
            default_action: DenyAction::Deny,
            sets: Vec::new(),
        }
    }
}

impl PolicySpec {
    /// Every rule in file order with its global id and location.
    pub fn rules(&self) -> impl Iterator<Item = (RuleId, RuleLoc, &SetSpec, &RuleSpec)> + '_ {
        self.sets
            .iter()
            .enumerate()
            .flat_map(|(s, set)| {
                set.rules
                    .iter()
                    .enumerate()
                    .map(move |(r, rule)| (RuleLoc { set: s, rule: r }, set, rule))
            })
            .enumerate()
            .map(|(i, (loc, set, rule))| (RuleId(i as u32), loc, set, rule))
    }

    /// The distinct FQDN patterns of the `to` selectors, in order of
    /// first appearance (rules in file order, selectors in order): pattern
    /// `k` is bit `k` of [`FlowQuery::dst_fqdns`].
    pub fn fqdn_patterns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, _, _, r) in self.rules() {
            for s in &r.to {
                if let Selector::Fqdn(p) = s {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    /// Number of rules over all sets.
    pub fn rule_count(&self) -> usize {
        self.sets.iter().map(|s| s.rules.len()).sum()
    }

    /// Where rule `id` is: (set index, rule index in that set); `None` when
    /// the policy has fewer rules.
    pub fn locate(&self, id: RuleId) -> Option<RuleLoc> {
        let mut left = id.0 as usize;
        for (s, set) in self.sets.iter().enumerate() {
            if left < set.rules.len() {
                return Some(RuleLoc { set: s, rule: left });
            }
            left -= set.rules.len();
        }
        None
    }

    /// The rule `id` names.
    pub fn rule(&self, id: RuleId) -> Option<&RuleSpec> {
        let loc = self.locate(id)?;
        self.sets.get(loc.set)?.rules.get(loc.rule)
    }
}

/// A named group of rules sharing a mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    pub name: String,
    pub mode: Mode,
    pub rules: Vec<RuleSpec>,
}

/// Whether a decision bites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The action is carried out as it is.
    Enforce,
    /// A deny or reject is forwarded anyway and reported as `would_deny`.
    Monitor,
    /// Everything is forwarded and recorded, to propose a policy later.
    Learn,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
            Mode::Learn => "learn",
        }
    }
}

/// One rule: a flow matches when its source matches `from`, its
/// destination matches `to` and its protocol and port match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Empty: any source.
    pub from: Vec<Selector>,
    /// Empty: any destination.
    pub to: Vec<Selector>,
    pub proto: Proto,
    /// Destination ports; only with `Tcp` or `Udp`; empty: all ports.
    pub ports: Vec<PortRange>,
    pub action: Action,
    /// The application protocol the flow must speak (detected from its
    /// first bytes); with or without a clause, only on allow rules.
    pub app: Option<l7::detect::Proto>,
    /// The requests the rule allows; only on allow rules.
    pub l7: Option<crate::clause::L7Clause>,
}

impl RuleSpec {
    /// An L4 rule: no `app`, no clause.
    pub fn new(
        from: Vec<Selector>,
        to: Vec<Selector>,
        proto: Proto,
        ports: Vec<PortRange>,
        action: Action,
    ) -> RuleSpec {
        RuleSpec {
            from,
            to,
            proto,
            ports,
            action,
            app: None,
            l7: None,
        }
    }

    /// Whether the rule is an L7 rule (it has `app` or a clause): it
    /// decides the requests of the flows it is first to match, not the
    /// flows themselves.
    pub fn is_l7(&self) -> bool {
        self.app.is_some() || self.l7.is_some()
    }
}

/// Which endpoints a selector stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// The document with exactly this name.
    Identity(String),
    /// Documents whose name matches: `*` any run of characters (including
    /// `/`), `?` exactly one character, anything else itself.
    Glob(String),
    /// Documents that carry every one of these labels with these values.
    Labels(BTreeMap<String, String>),
    /// Endpoints nothing vouches for.
    Unauthenticated,
    /// Endpoints whose IPv4 address is inside, whatever their identity.
    Cidr(Ipv4Cidr),
    /// Destinations whose address the engine learned from DNS answers
    /// for a name matching this pattern (exact or `*.suffix`, lowercase);
    /// `to` only. The query says which patterns apply
    /// ([`FlowQuery::dst_fqdns`]).
    Fqdn(String),
}

/// The protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// Every IP protocol.
    Any,
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Any => "any",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// IP protocol numbers a rule can name.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// An inclusive range of destination ports (`lo == hi` for one port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// One port.
    pub const fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }
    pub fn contains(self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

/// What a rule does with the flows it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    /// Drop silently.
    Deny,
    /// Drop and tell the sender (the engine sends a TCP RST or an ICMP
    /// unreachable).
    Reject,
}

impl Action {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Reject => "reject",
        }
    }
}

/// What the default decision does: the default is never to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyAction {
    Deny,
    Reject,
}

impl From<DenyAction> for Action {
    fn from(d: DenyAction) -> Action {
        match d {
            DenyAction::Deny => Action::Deny,
            DenyAction::Reject => Action::Reject,
        }
    }
}

/// A rule's global index: its position over all sets in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u32);

/// A rule's place in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleLoc {
    /// Index into [`PolicySpec::sets`].
    pub set: usize,
    /// Index into that set's `rules`.
    pub rule: usize,
}

// ---------------------------------------------------------------------------
// Query and answer
// ---------------------------------------------------------------------------

/// Who an endpoint is, as far as the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Authenticated as this document (index into the documents the policy
    /// was compiled with). An index past the end vouches for nothing and is
    /// evaluated as [`Subject::Unauthenticated`].
    Identity(u32),
    /// Nothing vouches for it.
    Unauthenticated,
    /// Not known yet: a destination whose identity is verified only by the
    /// warden in front of it. As a destination it may be any document or
    /// unauthenticated (see the crate docs); as a source it is evaluated as
    /// [`Subject::Unauthenticated`], since a sender nobody vouched for is
    /// exactly that.
    Unknown,
}

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub subject: Subject,
    /// The IPv4 address; `None` for IPv6 or when not known (CIDR selectors
    /// then never match).
    pub addr: Option<Ipv4Addr>,
}

/// What the engine asks about a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowQuery {
    pub src: Endpoint,
    pub dst: Endpoint,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP; any other only matches
    /// rules with `Proto::Any`).
    pub proto: u8,
    /// Destination port; only looked at for TCP and UDP.
    pub dst_port: u16,
    /// Bit `k` set when the engine learned the destination address from a
    /// DNS answer (let through for this source) for a name matching FQDN
    /// pattern `k` ([`crate::CompiledPolicy::fqdn_patterns`]). Bits past
    /// the last pattern are ignored.
    pub dst_fqdns: u64,
}

/// The answer for a flow; `Copy` and 12 bytes, so the engine keeps it in
/// each flow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    pub action: Action,
    /// The mode of the deciding rule's set, or the default mode.
    pub mode: Mode,
    /// The deciding rule; `None` when no rule matched (the default).
    pub rule: Option<RuleId>,
    /// Decided without knowing the destination's identity
    /// ([`Subject::Unknown`]): the engine should ask again once the
    /// destination's warden has vouched for it.
    pub provisional: bool,
    /// From [`crate::CompiledPolicy::lookup`]: the deciding rule is an L7
    /// rule, so the flow is inspected and each of its requests is decided
    /// by [`crate::CompiledPolicy::request`] (starting at `rule`); the
    /// flow's own action is that rule's allow. From `request`: the
    /// request was allowed by an L7 rule's clause.
    pub l7: bool,
}

/// What the engine does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Forward,
    /// Drop silently.
    Drop,
    /// Drop and send a TCP RST or ICMP unreachable.
    Reject,
}

/// A decision with its mode applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Effective {
    pub verdict: Verdict,
    /// The action was a deny or reject that the mode did not carry out
    /// (monitor or learn): report it.
    pub would_deny: bool,
    /// Decided in learn mode: record the flow for [`crate::learn::propose`].
    pub learn: bool,
}

impl Decision {
    /// What to do with the packet, and what to report.
    pub fn effective(self) -> Effective {
        let bites = self.mode == Mode::Enforce;
        let verdict = match (self.action, bites) {
            (Action::Allow, _) | (_, false) => Verdict::Forward,
            (Action::Deny, true) => Verdict::Drop,
            (Action::Reject, true) => Verdict::Reject,
        };
        Effective {
            verdict,
            would_deny: !bites && self.action != Action::Allow,
            learn: self.mode == Mode::Learn,
        }
    }

    /// `true` when the packet goes on (allowed, or not enforced).
    pub fn forwards(self) -> bool {
        self.effective().verdict == Verdict::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_is_small() {
        assert!(std::mem::size_of::<Decision>() <= 12);
    }

    #[test]
    fn effective_applies_the_mode() {
        let d = |action, mode| Decision {
            action,
            mode,
            rule: None,
            provisional: false,
            l7: false,
        };
        let e = d(Action::Reject, Mode::Enforce).effective();
        assert_eq!(
            (e.verdict, e.would_deny, e.learn),
            (Verdict::Reject, false, false)
        );
        let e = d(Action::Deny, Mode::Enforce).effective();
        assert_eq!(e.verdict, Verdict::Drop);
        let e = d(Action::Deny, Mode::Monitor).effective();
        assert_eq!(
            (e.verdict, e.would_deny, e.learn),
            (Verdict::Forward, true, false)
        );
        let e = d(Action::Allow, Mode::Monitor).effective();
        assert_eq!((e.verdict, e.would_deny), (Verdict::Forward, false));
        let e = d(Action::Reject, Mode::Learn).effective();
        assert_eq!(
            (e.verdict, e.would_deny, e.learn),
            (Verdict::Forward, true, true)
        );
        let e = d(Action::Allow, Mode::Learn).effective();
        assert_eq!(
            (e.verdict, e.would_deny, e.learn),
            (Verdict::Forward, false, true)
        );
        assert!(!d(Action::Deny, Mode::Enforce).forwards());
    }

    #[test]
    fn rule_ids_count_over_sets_in_file_order() {
        let rule = RuleSpec::new(vec![], vec![], Proto::Any, vec![], Action::Allow);
        let set = |n: usize| SetSpec {
            name: format!("s{n}"),
            mode: Mode::Enforce,
            rules: vec![rule.clone(); n],
        };
        let spec = PolicySpec {
            sets: vec![set(2), set(0), set(3)],
            ..PolicySpec::default()
        };
        assert_eq!(spec.rule_count(), 5);
        assert_eq!(spec.locate(RuleId(1)), Some(RuleLoc { set: 0, rule: 1 }));
        assert_eq!(spec.locate(RuleId(2)), Some(RuleLoc { set: 2, rule: 0 }));
        assert_eq!(spec.locate(RuleId(4)), Some(RuleLoc { set: 2, rule: 2 }));
        assert_eq!(spec.locate(RuleId(5)), None);
        let ids: Vec<(u32, usize, usize)> = spec
            .rules()
            .map(|(id, loc, _, _)| (id.0, loc.set, loc.rule))
            .collect();
        assert_eq!(ids, [(0, 0, 0), (1, 0, 1), (2, 2, 0), (3, 2, 1), (4, 2, 2)]);
    }
}
