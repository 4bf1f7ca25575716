//! Identity-aware firewall policy: the rule language's semantics, its
//! compiled lookup form, a reference evaluator, and learn mode's proposals.
//!
//! Pure: no I/O, no threads, no `unsafe`. The config crate produces a
//! [`PolicySpec`]; [`compile`] checks it against the declared identity
//! documents and builds an immutable [`CompiledPolicy`] that the engine
//! shares between workers and asks once per new flow
//! ([`CompiledPolicy::lookup`]: no allocation, no locks). A new config means
//! a new compiled policy, swapped whole, never edited in place (as DPDK's
//! rte_acl and VPP's ACL plugin do).
//!
//! # Semantics
//!
//! * **First match.** Rules are taken in file order, the sets in order and
//!   the rules of each set in order (a rule's [`RuleId`] is its position in
//!   that order). The first rule that matches decides, as in nftables, the
//!   VPP ACL plugin or NeuVector: an exception ("deny this one source") is
//!   written before the allow it carves out of.
//! * **Default deny.** When no rule matches, the decision is
//!   `default_action` (deny or reject, never allow) in `default_mode`.
//! * **Modes.** The mode of the deciding rule's set (or the default mode)
//!   says whether the action bites: `Enforce` carries it out; `Monitor`
//!   forwards a deny or reject and reports it as `would_deny`; `Learn`
//!   forwards everything and records it ([`Decision::effective`]).
//! * **Matching.** A rule matches when the source matches `from`, the
//!   destination matches `to`, and protocol and port match. An empty
//!   selector list matches any endpoint; otherwise the list matches when
//!   any of its selectors does. Identity selectors (exact name, glob,
//!   labels) match only authenticated endpoints whose document matches;
//!   `Unauthenticated` matches endpoints nothing vouches for; `Cidr`
//!   matches the endpoint's IPv4 address whatever its identity, and never
//!   an endpoint without one (IPv6). `Proto::Any` matches every protocol
//!   and takes no ports; `Icmp` matches protocol 1 and takes no ports;
//!   `Tcp`/`Udp` match 6/17 and the destination port against `ports`
//!   (empty: all ports). Protocols other than 6, 17 and 1 only match `Any`.
//! * **Subjects.** A document index past the end of the documents the
//!   policy was compiled with vouches for nothing: it is evaluated as
//!   unauthenticated. So is an unknown *source*: a sender nobody has
//!   vouched for is unauthenticated.
//! * **Unknown destinations.** At the source warden, before the
//!   destination's warden has verified who it is, the destination may be
//!   any declared document or unauthenticated (at its known address). Each
//!   possibility has its own first-match decision; the answer is the allowing
//!   one with the lowest rule index if any possibility is allowed, otherwise
//!   the non-allowing one with the lowest rule index (a rule before the
//!   default). The flow is then let through toward the destination's
//!   warden, which decides again with the identity known. Every decision
//!   for an unknown destination has `provisional` set.
//!
//! * **FQDN destinations.** `Selector::Fqdn(pattern)` (in `to` only)
//!   matches a destination whose address the engine learned from a DNS
//!   answer, let through for this source, for a name matching the pattern.
//!   The compiled policy numbers the distinct patterns (at most 64, in
//!   order of first appearance: [`CompiledPolicy::fqdn_patterns`]) and the
//!   query carries a bit per pattern ([`FlowQuery::dst_fqdns`]). It
//!   matches whatever the destination's identity, like a CIDR.
//! * **L7 rules.** A rule with an `app` or an L7 clause (`http`, `tls`,
//!   `dns`: [`L7Clause`]) is an L7 rule; it must allow. L4 matching is
//!   unchanged, and the first rule matching at L4 (`r0`) decides the flow.
//!   If `r0` is an L7 rule the decision has `l7` set: the flow is
//!   *inspected*. Each of its requests ([`L7Request`]: an HTTP head, a
//!   ClientHello, a DNS query, or the detected protocol) is decided by
//!   [`CompiledPolicy::request`]: the rules matching the flow at L4 are
//!   walked in order from `r0`; an L7 rule whose `app` and clause match
//!   the request decides (allow, in its set's mode, `l7` set); an L7 rule
//!   that does not is skipped; the first L4 rule reached decides (its
//!   action and mode); if none, the default. So the L7 rules on one port
//!   form a union of allow-lists, and the next L4 rule or the default
//!   decides what none of them allows. A clause matches a request of its
//!   own protocol only (an `http` clause never matches a ClientHello);
//!   `app` alone matches any request of that protocol. TLS: a ClientHello
//!   without SNI, or with ECH, never matches an entry that names servers.
//!   Which parser to run: [`CompiledPolicy::inspect`] (the engine detects
//!   the protocol, runs that parser if some clause of it can follow, and
//!   otherwise asks once with [`L7Request::Detected`]).
//! * **L7 and unknown destinations.** An L7 rule counts as allowing for the
//!   provisional decision (it is an allow rule); a request of a flow whose
//!   destination is unknown is decided for every possible destination and
//!   aggregated as for the flow (the lowest allowing rule, else the lowest
//!   other, provisional).
//! * **Shadowing.** L7 rules cover nothing (they do not decide every flow
//!   they match); an L7 rule that earlier L4 rules cover is reported.
//!
//! [`reference::evaluate`] is these rules written as a linear scan;
//! [`compile`]'s module docs explain how the compiled form reaches the
//! same answers, and the differential property test checks that it does.

#![deny(unsafe_code)]

pub mod clause;
pub mod compile;
pub mod learn;
pub mod model;
pub mod reference;
pub mod select;
mod shadow;

pub use clause::{
    DnsMatch, HttpMatch, Inspect, L7At, L7Clause, L7Field, L7Problem, L7Request, TlsMatch,
};
pub use compile::{compile, CompileError, CompiledPolicy, SelectorAt, Side};
pub use learn::{propose, LearnedFlow, LearnedL7, Peer};
pub use model::{
    Action, Decision, DenyAction, Effective, Endpoint, FlowQuery, Mode, PolicySpec, PortRange,
    Proto, RuleId, RuleLoc, RuleSpec, Selector, SetSpec, Subject, Verdict,
};
