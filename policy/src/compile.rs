//! The compiled form: rule bit vectors per equivalence class of each field.
//!
//! # Why bit vectors and not a cross product
//!
//! A selector list matches when *any* selector matches, and a list may mix
//! identity selectors with CIDRs, so whether a rule's `from` matches is
//! `subject matches OR address matches`. Folding subjects and addresses
//! into one class per side (and then crossing source and destination
//! classes, RFC-style) multiplies out: 1,000 documents with distinct rule
//! membership times 100 address intervals is already 100,000 source
//! classes, and crossing them with the destination side cannot be stored.
//! The bit-vector scheme (Lakshman and Stiliadis, with the aggregated
//! summaries of Baboescu and Varghese) keeps the fields apart instead:
//!
//! * every field value is mapped at compile time to an equivalence class,
//!   the values with identical rule membership: documents (plus
//!   unauthenticated) per side; IPv4 intervals split at every CIDR boundary
//!   (binary search at lookup); port intervals split at every range boundary,
//!   per protocol (TCP, UDP; ICMP and "other" are one class each);
//! * each class owns a bit vector over all rules in file order, deduplicated
//!   (identical classes share one vector);
//! * a lookup is `(src_subject | src_addr) & (dst_subject | dst_addr) & port`
//!   word by word, and the lowest set bit is the deciding rule: first match
//!   falls out of the bit order. Each vector carries a summary (one bit per
//!   non-zero 64-rule word), so only words that can hold a match are read:
//!   at 10,000 rules a lookup reads 3 summary words and then typically a
//!   handful of words, never allocates and takes no lock.
//!
//! # Unknown destinations
//!
//! With the destination's identity unknown, the answer aggregates over all
//! possible subjects (see the crate docs). The compiled form scans the
//! source's candidate rules `(src_subject | src_addr) & port` in order while
//! tracking which possible destination classes are still undecided (a bit
//! set on the stack): a rule that matches every destination (empty `to`, or
//! a `to` CIDR containing the address) decides all that remain; any other
//! rule decides the remaining classes its `to` names. The first allow rule
//! that decides anything is the answer; otherwise the first rule that
//! decided anything, or the default. Its cost grows with the number of deny
//! rules crossed before the answer; it runs once per new flow.
//!
//! # Bounds
//!
//! The vectors take `classes × rules / 8` bytes; the total is capped at
//! [`MAX_COMPILED_BYTES`], the number of possible destination classes at
//! [`MAX_DST_CLASSES`] and the rules at [`MAX_RULES`], all reported as
//! [`CompileError::TooLarge`].

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use identity::IdentityDoc;
use overlay::Ipv4Cidr;

use crate::clause::{name_ok, Inspect, L7At, L7Problem, L7Request, RuleL7};
use crate::model::{
    Action, Decision, FlowQuery, Mode, PolicySpec, PortRange, Proto, RuleId, RuleLoc, RuleSpec,
    Selector, Subject, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};
use crate::select::{glob_problem, matches_doc};

/// Most rules over all sets. Lookup cost does not depend on it much, but
/// the shadow check at compile time is quadratic in it (in 64-rule words).
pub const MAX_RULES: usize = 65_536;
/// Largest compiled policy, in bytes of bit vectors.
pub const MAX_COMPILED_BYTES: usize = 256 << 20;
/// Most distinct destination identity classes (documents with different
/// rule membership, plus unauthenticated): the unknown-destination scan
/// keeps one bit per class on the stack.
pub const MAX_DST_CLASSES: usize = MAX_DST_WORDS * 64;
const MAX_DST_WORDS: usize = 128;
/// Most distinct FQDN patterns: one bit each in [`FlowQuery::dst_fqdns`].
pub const MAX_FQDNS: usize = 64;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Which selector list of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    From,
    To,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::From => "from",
            Side::To => "to",
        }
    }
}

/// One selector of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectorAt {
    pub rule: RuleLoc,
    pub side: Side,
    /// Index into the rule's `from` or `to`.
    pub index: usize,
}

/// Why a spec does not compile. Each variant says where: the set and rule
/// indexes, and the selector or port index where one is at fault, so the
/// config can point at the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// An exact identity name that no document has.
    UnknownIdentity { at: SelectorAt, name: String },
    /// A glob no name could match.
    BadGlob {
        at: SelectorAt,
        glob: String,
        problem: &'static str,
    },
    /// A glob or labels selector that matches no declared document: almost
    /// certainly a typo, and a rule that silently never applies.
    MatchesNothing { at: SelectorAt },
    /// A port range with `lo > hi`.
    InvertedPorts {
        rule: RuleLoc,
        port: usize,
        range: PortRange,
    },
    /// Ports on a rule whose protocol has none (`icmp`, `any`).
    PortsWithoutPortProto {
        rule: RuleLoc,
        port: usize,
        proto: Proto,
    },
    /// A rule that can never decide a flow: every flow it matches is
    /// matched by the earlier rules `by` first.
    Shadowed { rule: RuleLoc, by: Vec<RuleLoc> },
    /// A rule's `app` or L7 clause is wrong (see [`L7Problem`]).
    L7 {
        rule: RuleLoc,
        at: L7At,
        problem: L7Problem,
    },
    /// An FQDN selector in a `from` list: only destinations are learned
    /// from DNS answers.
    FqdnOnSource { at: SelectorAt },
    /// An FQDN pattern that is not a lowercase name or `*.suffix`.
    BadFqdn { at: SelectorAt, fqdn: String },
    /// The first selector naming a distinct FQDN pattern past
    /// [`MAX_FQDNS`].
    TooManyFqdns { at: SelectorAt },
    /// The compiled form would exceed a bound.
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
}

impl CompileError {
    /// The rule at fault, when there is one.
    pub fn rule(&self) -> Option<RuleLoc> {
        match self {
            CompileError::UnknownIdentity { at, .. }
            | CompileError::BadGlob { at, .. }
            | CompileError::MatchesNothing { at }
            | CompileError::FqdnOnSource { at }
            | CompileError::BadFqdn { at, .. }
            | CompileError::TooManyFqdns { at } => Some(at.rule),
            CompileError::L7 { rule, .. } => Some(*rule),
            CompileError::InvertedPorts { rule, .. }
            | CompileError::PortsWithoutPortProto { rule, .. }
            | CompileError::Shadowed { rule, .. } => Some(*rule),
            CompileError::TooLarge { .. } => None,
        }
    }
}

fn loc(f: &mut fmt::Formatter<'_>, r: RuleLoc) -> fmt::Result {
    write!(f, "set {} rule {}", r.set, r.rule)
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sel = |f: &mut fmt::Formatter<'_>, at: &SelectorAt| {
            loc(f, at.rule)?;
            write!(f, " {}[{}]: ", at.side.as_str(), at.index)
        };
        match self {
            CompileError::UnknownIdentity { at, name } => {
                sel(f, at)?;
                write!(f, "unknown identity `{name}`")
            }
            CompileError::BadGlob { at, glob, problem } => {
                sel(f, at)?;
                write!(f, "bad glob {glob:?}: {problem}")
            }
            CompileError::MatchesNothing { at } => {
                sel(f, at)?;
                write!(f, "the selector matches no identity document")
            }
            CompileError::InvertedPorts { rule, port, range } => {
                loc(f, *rule)?;
                write!(
                    f,
                    " ports[{port}]: port range {}-{} is inverted",
                    range.lo, range.hi
                )
            }
            CompileError::PortsWithoutPortProto { rule, port, proto } => {
                loc(f, *rule)?;
                write!(f, " ports[{port}]: proto {} has no ports", proto.as_str())
            }
            CompileError::Shadowed { rule, by } => {
                loc(f, *rule)?;
                write!(f, ": can never match, shadowed by")?;
                for (i, b) in by.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { ", " })?;
                    loc(f, *b)?;
                }
                Ok(())
            }
            CompileError::L7 { rule, problem, .. } => {
                loc(f, *rule)?;
                write!(f, ": {problem}")
            }
            CompileError::FqdnOnSource { at } => {
                sel(f, at)?;
                f.write_str("an FQDN selector can only be a destination")
            }
            CompileError::BadFqdn { at, fqdn } => {
                sel(f, at)?;
                write!(f, "bad FQDN pattern {fqdn:?}")
            }
            CompileError::TooManyFqdns { at } => {
                sel(f, at)?;
                write!(f, "more than {MAX_FQDNS} distinct FQDN patterns")
            }
            CompileError::TooLarge { what, size, limit } => write!(
                f,
                "policy too large to compile: {size} {what}, at most {limit}"
            ),
        }
    }
}

impl std::error::Error for CompileError {}

// ---------------------------------------------------------------------------
// The compiled form
// ---------------------------------------------------------------------------

/// An immutable, compiled policy; see the module docs for the layout.
/// Built once per config, shared between workers (`Send + Sync`), replaced
/// whole when the config changes.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// 64-rule words per rule bit vector.
    words: usize,
    /// Summary words per vector (one bit per word).
    sum_words: usize,
    /// Each vector is `sum_words` summary words then `words` words.
    arena: Vec<u64>,
    /// Class (vector index) of each document as a source, then as a
    /// destination.
    src_doc: Vec<u32>,
    dst_doc: Vec<u32>,
    src_unauth: u32,
    dst_unauth: u32,
    /// Rules with an empty `to`: what matches any destination subject.
    to_any: u32,
    /// The all-zero vector (no address).
    empty: u32,
    /// Start of each IPv4 interval (first is 0), and each interval's class.
    addr_bounds: Vec<u32>,
    src_addr: Vec<u32>,
    dst_addr: Vec<u32>,
    /// Start of each port interval (first is 0) per protocol, and classes.
    tcp_bounds: Vec<u16>,
    tcp_class: Vec<u32>,
    udp_bounds: Vec<u16>,
    udp_class: Vec<u32>,
    icmp_class: u32,
    other_class: u32,
    /// Per rule: action and the mode of its set.
    actions: Vec<Action>,
    modes: Vec<Mode>,
    default: Decision,
    /// Possible destination classes (for unknown destinations): how many,
    /// words per row, and per rule the row of classes its `to` names
    /// (identity and unauthenticated selectors only).
    dst_classes: usize,
    dst_class_words: usize,
    to_classes: Vec<u64>,
    /// The distinct destination classes (vector ids), for requests of
    /// flows with an unknown destination.
    dst_class_ids: Vec<u32>,
    /// Per rule: its compiled L7 part, `None` for an L4 rule.
    l7: Vec<Option<RuleL7>>,
    /// FQDN pattern `k` and the vector of rules whose `to` names it.
    fqdn_patterns: Vec<String>,
    fqdn_vecs: Vec<u32>,
}

/// One resolved selector list.
#[derive(Debug, Clone, Default)]
struct Resolved {
    /// Empty list: matches everything.
    any: bool,
    /// Documents named by identity selectors, sorted.
    docs: Vec<u32>,
    unauth: bool,
    cidrs: Vec<Ipv4Cidr>,
    /// FQDN patterns named (bit per pattern).
    fqdns: u64,
}

/// Builds deduplicated bit vectors.
struct Interner {
    words: usize,
    sum_words: usize,
    arena: Vec<u64>,
    ids: HashMap<Vec<u64>, u32>,
}

impl Interner {
    fn intern(&mut self, bits: &[u64]) -> Result<u32, CompileError> {
        if let Some(&id) = self.ids.get(bits) {
            return Ok(id);
        }
        let id = self.ids.len() as u32;
        let stride = self.words + self.sum_words;
        let bytes = (self.arena.len() + stride) * 8;
        if bytes > MAX_COMPILED_BYTES {
            return Err(CompileError::TooLarge {
                what: "bytes of rule bit vectors",
                size: bytes,
                limit: MAX_COMPILED_BYTES,
            });
        }
        let mut sum = vec![0u64; self.sum_words];
        for (w, &x) in bits.iter().enumerate() {
            if x != 0 {
                sum[w / 64] |= 1 << (w % 64);
            }
        }
        self.arena.extend_from_slice(&sum);
        self.arena.extend_from_slice(bits);
        self.ids.insert(bits.to_vec(), id);
        Ok(id)
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// Compile `spec` against the identity universe `docs` (document index =
/// identity index in queries).
pub fn compile(spec: &PolicySpec, docs: &[IdentityDoc]) -> Result<CompiledPolicy, CompileError> {
    let n_rules = spec.rule_count();
    if n_rules > MAX_RULES {
        return Err(CompileError::TooLarge {
            what: "rules",
            size: n_rules,
            limit: MAX_RULES,
        });
    }
    let words = n_rules.div_ceil(64).max(1);
    let sum_words = words.div_ceil(64);

    // Resolve and check every rule.
    let by_name: HashMap<&str, u32> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i as u32))
        .collect();
    let mut cache: HashMap<&Selector, Vec<u32>> = HashMap::new();
    let mut rules: Vec<(Resolved, Resolved)> = Vec::with_capacity(n_rules);
    let mut locs: Vec<RuleLoc> = Vec::with_capacity(n_rules);
    let mut actions = Vec::with_capacity(n_rules);
    let mut modes = Vec::with_capacity(n_rules);
    let mut l7 = Vec::with_capacity(n_rules);
    let mut fqdn_patterns: Vec<String> = Vec::new();
    for (_, rl, set, rule) in spec.rules() {
        check_ports(rule, rl)?;
        crate::clause::check(
            rule.app,
            rule.l7.as_ref(),
            rule.action == Action::Allow,
            rule.proto,
        )
        .map_err(|(at, problem)| CompileError::L7 {
            rule: rl,
            at,
            problem,
        })?;
        let ctx = Ctx {
            rule: rl,
            docs,
            by_name: &by_name,
        };
        let from = resolve(&rule.from, Side::From, &ctx, &mut cache, &mut fqdn_patterns)?;
        let to = resolve(&rule.to, Side::To, &ctx, &mut cache, &mut fqdn_patterns)?;
        rules.push((from, to));
        locs.push(rl);
        actions.push(rule.action);
        modes.push(set.mode);
        l7.push(RuleL7::new(rule.app, rule.l7.as_ref()));
    }

    let mut int = Interner {
        words,
        sum_words,
        arena: Vec::new(),
        ids: HashMap::new(),
    };
    let empty = int.intern(&vec![0; words])?;

    // Subjects, per side: documents and unauthenticated.
    let side_subjects = |int: &mut Interner, side: Side| -> Result<(Vec<u32>, u32), CompileError> {
        let mut base = vec![0u64; words];
        let mut unauth = vec![0u64; words];
        let mut per_doc: Vec<Vec<usize>> = vec![Vec::new(); docs.len()];
        for (r, pair) in rules.iter().enumerate() {
            let res = if side == Side::From { &pair.0 } else { &pair.1 };
            if res.any {
                set_bit(&mut base, r);
            }
            if res.any || res.unauth {
                set_bit(&mut unauth, r);
            }
            for &d in &res.docs {
                per_doc[d as usize].push(r);
            }
        }
        let mut classes = Vec::with_capacity(docs.len());
        let mut bits = base.clone();
        for rs in &per_doc {
            bits.copy_from_slice(&base);
            for &r in rs {
                set_bit(&mut bits, r);
            }
            classes.push(int.intern(&bits)?);
        }
        Ok((classes, int.intern(&unauth)?))
    };
    let (src_doc, src_unauth) = side_subjects(&mut int, Side::From)?;
    let (dst_doc, dst_unauth) = side_subjects(&mut int, Side::To)?;
    let mut to_any_bits = vec![0u64; words];
    for (r, (_, to)) in rules.iter().enumerate() {
        if to.any {
            set_bit(&mut to_any_bits, r);
        }
    }
    let to_any = int.intern(&to_any_bits)?;
    let mut fqdn_vecs = Vec::with_capacity(fqdn_patterns.len());
    for k in 0..fqdn_patterns.len() {
        let mut bits = vec![0u64; words];
        for (r, (_, to)) in rules.iter().enumerate() {
            if to.fqdns & (1 << k) != 0 {
                set_bit(&mut bits, r);
            }
        }
        fqdn_vecs.push(int.intern(&bits)?);
    }

    // Addresses: intervals split at every CIDR boundary of either side.
    let mut points: Vec<u64> = vec![0];
    for (from, to) in &rules {
        for c in from.cidrs.iter().chain(&to.cidrs) {
            let (lo, hi) = cidr_range(*c);
            points.push(u64::from(lo));
            points.push(u64::from(hi) + 1);
        }
    }
    points.sort_unstable();
    points.dedup();
    points.retain(|&p| p <= u64::from(u32::MAX));
    let addr_bounds: Vec<u32> = points.iter().map(|&p| p as u32).collect();
    let interval_of = |a: u32| addr_bounds.partition_point(|&b| b <= a) - 1;
    let sweep_addrs = |int: &mut Interner, side: Side| -> Result<Vec<u32>, CompileError> {
        let n = addr_bounds.len();
        let mut starts: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut ends: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
        for (r, pair) in rules.iter().enumerate() {
            let res = if side == Side::From { &pair.0 } else { &pair.1 };
            for c in &res.cidrs {
                let (lo, hi) = cidr_range(*c);
                starts[interval_of(lo)].push(r);
                let end = if hi == u32::MAX {
                    n
                } else {
                    interval_of(hi + 1)
                };
                ends[end].push(r);
            }
        }
        sweep(int, n, &starts, &ends, n_rules)
    };
    let src_addr = sweep_addrs(&mut int, Side::From)?;
    let dst_addr = sweep_addrs(&mut int, Side::To)?;

    // Ports, per protocol.
    let ports_of = |proto: Proto| -> Vec<(usize, u16, u16)> {
        let mut out = Vec::new();
        for (r, (_, _, _, rule)) in spec.rules().enumerate() {
            if rule.proto == Proto::Any || (rule.proto == proto && rule.ports.is_empty()) {
                out.push((r, 0, u16::MAX));
            } else if rule.proto == proto {
                for p in &rule.ports {
                    out.push((r, p.lo, p.hi));
                }
            }
        }
        out
    };
    let port_table =
        |int: &mut Interner, proto: Proto| -> Result<(Vec<u16>, Vec<u32>), CompileError> {
            let ranges = ports_of(proto);
            let mut pts: Vec<u32> = vec![0];
            for &(_, lo, hi) in &ranges {
                pts.push(u32::from(lo));
                pts.push(u32::from(hi) + 1);
            }
            pts.sort_unstable();
            pts.dedup();
            pts.retain(|&p| p <= u32::from(u16::MAX));
            let bounds: Vec<u16> = pts.iter().map(|&p| p as u16).collect();
            let idx = |p: u16| bounds.partition_point(|&b| b <= p) - 1;
            let n = bounds.len();
            let mut starts: Vec<Vec<usize>> = vec![Vec::new(); n];
            let mut ends: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
            for &(r, lo, hi) in &ranges {
                starts[idx(lo)].push(r);
                ends[if hi == u16::MAX { n } else { idx(hi + 1) }].push(r);
            }
            Ok((bounds, sweep(int, n, &starts, &ends, n_rules)?))
        };
    let (tcp_bounds, tcp_class) = port_table(&mut int, Proto::Tcp)?;
    let (udp_bounds, udp_class) = port_table(&mut int, Proto::Udp)?;
    let mut icmp_bits = vec![0u64; words];
    let mut other_bits = vec![0u64; words];
    for (r, (_, _, _, rule)) in spec.rules().enumerate() {
        if matches!(rule.proto, Proto::Any | Proto::Icmp) {
            set_bit(&mut icmp_bits, r);
        }
        if rule.proto == Proto::Any {
            set_bit(&mut other_bits, r);
        }
    }
    let icmp_class = int.intern(&icmp_bits)?;
    let other_class = int.intern(&other_bits)?;

    // Possible destinations of an unknown destination: the distinct
    // destination classes of the documents and of unauthenticated.
    let mut class_ids: Vec<u32> = dst_doc.clone();
    class_ids.push(dst_unauth);
    class_ids.sort_unstable();
    class_ids.dedup();
    let dst_classes = class_ids.len();
    if dst_classes > MAX_DST_CLASSES {
        return Err(CompileError::TooLarge {
            what: "distinct destination identity classes",
            size: dst_classes,
            limit: MAX_DST_CLASSES,
        });
    }
    let dst_class_words = dst_classes.div_ceil(64);
    let stride = words + sum_words;
    let to_bytes = n_rules * dst_class_words * 8;
    if int.arena.len() * 8 + to_bytes > MAX_COMPILED_BYTES {
        return Err(CompileError::TooLarge {
            what: "bytes of rule bit vectors",
            size: int.arena.len() * 8 + to_bytes,
            limit: MAX_COMPILED_BYTES,
        });
    }
    let mut to_classes = vec![0u64; n_rules * dst_class_words];
    for (k, &c) in class_ids.iter().enumerate() {
        let start = c as usize * stride + sum_words;
        let body = &int.arena[start..start + words];
        for (w, &x) in body.iter().enumerate() {
            let mut x = x;
            while x != 0 {
                let r = w * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                // Rules with an empty `to` are handled as "matches every
                // destination" by the scan; only the named classes go here.
                if r < n_rules && !rules[r].1.any {
                    set_bit(&mut to_classes[r * dst_class_words..][..dst_class_words], k);
                }
            }
        }
    }

    let compiled = CompiledPolicy {
        words,
        sum_words,
        arena: int.arena,
        src_doc,
        dst_doc,
        src_unauth,
        dst_unauth,
        to_any,
        empty,
        addr_bounds,
        src_addr,
        dst_addr,
        tcp_bounds,
        tcp_class,
        udp_bounds,
        udp_class,
        icmp_class,
        other_class,
        actions,
        modes,
        default: crate::reference::default(spec),
        dst_classes,
        dst_class_words,
        to_classes,
        dst_class_ids: class_ids,
        l7,
        fqdn_patterns,
        fqdn_vecs,
    };
    crate::shadow::check(
        &compiled,
        &rules_for_shadow(&rules, spec, docs.len()),
        &locs,
    )?;
    Ok(compiled)
}

/// First and last address of `c`.
fn cidr_range(c: Ipv4Cidr) -> (u32, u32) {
    let lo = u32::from(c.address()) & c.mask();
    (lo, lo | !c.mask())
}

/// One class per interval: walk the intervals, counting for each rule how
/// many of its ranges cover the current one (a rule's ranges may overlap).
fn sweep(
    int: &mut Interner,
    n: usize,
    starts: &[Vec<usize>],
    ends: &[Vec<usize>],
    n_rules: usize,
) -> Result<Vec<u32>, CompileError> {
    let mut count = vec![0u32; n_rules];
    let mut bits = vec![0u64; int.words];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        for &r in &ends[i] {
            count[r] -= 1;
            if count[r] == 0 {
                bits[r / 64] &= !(1 << (r % 64));
            }
        }
        for &r in &starts[i] {
            count[r] += 1;
            set_bit(&mut bits, r);
        }
        out.push(int.intern(&bits)?);
    }
    Ok(out)
}

fn check_ports(rule: &RuleSpec, rl: RuleLoc) -> Result<(), CompileError> {
    for (i, p) in rule.ports.iter().enumerate() {
        if matches!(rule.proto, Proto::Any | Proto::Icmp) {
            return Err(CompileError::PortsWithoutPortProto {
                rule: rl,
                port: i,
                proto: rule.proto,
            });
        }
        if p.lo > p.hi {
            return Err(CompileError::InvertedPorts {
                rule: rl,
                port: i,
                range: *p,
            });
        }
    }
    Ok(())
}

/// What [`resolve`] needs besides the list.
struct Ctx<'a> {
    rule: RuleLoc,
    docs: &'a [IdentityDoc],
    by_name: &'a HashMap<&'a str, u32>,
}

fn resolve<'s>(
    list: &'s [Selector],
    side: Side,
    ctx: &Ctx<'_>,
    cache: &mut HashMap<&'s Selector, Vec<u32>>,
    fqdns: &mut Vec<String>,
) -> Result<Resolved, CompileError> {
    let (rule, docs, by_name) = (ctx.rule, ctx.docs, ctx.by_name);
    let mut out = Resolved {
        any: list.is_empty(),
        ..Resolved::default()
    };
    for (index, sel) in list.iter().enumerate() {
        let at = SelectorAt { rule, side, index };
        match sel {
            Selector::Unauthenticated => out.unauth = true,
            Selector::Cidr(c) => out.cidrs.push(*c),
            Selector::Fqdn(p) => {
                if side == Side::From {
                    return Err(CompileError::FqdnOnSource { at });
                }
                if !name_ok(p) {
                    return Err(CompileError::BadFqdn {
                        at,
                        fqdn: p.clone(),
                    });
                }
                let k = match fqdns.iter().position(|x| x == p) {
                    Some(k) => k,
                    None => {
                        fqdns.push(p.clone());
                        fqdns.len() - 1
                    }
                };
                if k >= MAX_FQDNS {
                    return Err(CompileError::TooManyFqdns { at });
                }
                out.fqdns |= 1 << k;
            }
            Selector::Identity(name) => match by_name.get(name.as_str()) {
                Some(&d) => out.docs.push(d),
                None => {
                    return Err(CompileError::UnknownIdentity {
                        at,
                        name: name.clone(),
                    })
                }
            },
            Selector::Glob(_) | Selector::Labels(_) => {
                if let Selector::Glob(g) = sel {
                    if let Some(problem) = glob_problem(g) {
                        return Err(CompileError::BadGlob {
                            at,
                            glob: g.clone(),
                            problem,
                        });
                    }
                }
                let matched = cache.entry(sel).or_insert_with(|| {
                    docs.iter()
                        .enumerate()
                        .filter(|(_, d)| matches_doc(sel, d))
                        .map(|(i, _)| i as u32)
                        .collect()
                });
                if matched.is_empty() {
                    return Err(CompileError::MatchesNothing { at });
                }
                out.docs.extend_from_slice(matched);
            }
        }
    }
    out.docs.sort_unstable();
    out.docs.dedup();
    Ok(out)
}

/// The sets each rule matches, for the shadow check.
fn rules_for_shadow(
    rules: &[(Resolved, Resolved)],
    spec: &PolicySpec,
    n_docs: usize,
) -> Vec<crate::shadow::Region> {
    spec.rules()
        .zip(rules)
        .map(|((_, _, _, rule), (from, to))| crate::shadow::Region {
            from: crate::shadow::EndpointSet::new(
                from.any,
                &from.docs,
                from.unauth,
                &from.cidrs,
                from.fqdns,
                n_docs,
            ),
            to: crate::shadow::EndpointSet::new(
                to.any, &to.docs, to.unauth, &to.cidrs, to.fqdns, n_docs,
            ),
            ports: crate::shadow::PortSet::new(rule.proto, &rule.ports),
            l7: rule.is_l7(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Lookup
// ---------------------------------------------------------------------------

impl CompiledPolicy {
    /// The decision for `q`: the same as [`crate::reference::evaluate`].
    /// No allocation, no locks. With `l7` set, the flow is inspected: see
    /// [`CompiledPolicy::inspect`] and [`CompiledPolicy::request`].
    pub fn lookup(&self, q: &FlowQuery) -> Decision {
        let [ss, sa, ds, da, p] = self.classes_of(q);
        let fq = self.fq_mask(q);
        if q.dst.subject == Subject::Unknown {
            return self.unknown_dst(ss, sa, da, p, fq);
        }
        match self.walk([ss, sa, ds, da, p], fq, 0, |_| true) {
            Some(r) => self.decision(r, false),
            None => self.default,
        }
    }

    /// The decision for request `req` of an inspected flow `q` whose
    /// lookup named rule `from`: the same as
    /// [`crate::reference::request`]. The rules matching the flow at L4
    /// are walked in order from `from`: an L7 rule whose `app` and clause
    /// match the request decides (`l7` set); one that does not is skipped;
    /// the first L4 rule decides; else the default. No allocation. With
    /// an unknown destination it walks once per possible destination
    /// class (as `lookup` aggregates them), so it costs more.
    pub fn request(&self, q: &FlowQuery, from: RuleId, req: &L7Request<'_>) -> Decision {
        let [ss, sa, ds, da, p] = self.classes_of(q);
        let fq = self.fq_mask(q);
        let from = from.0 as usize;
        let pick = |r: usize| self.l7[r].as_ref().is_none_or(|l| l.matches(req));
        if q.dst.subject != Subject::Unknown {
            return match self.walk([ss, sa, ds, da, p], fq, from, pick) {
                Some(r) => self.decision(r, false),
                None => self.default,
            };
        }
        let mut allow: Option<usize> = None;
        let mut other: Option<usize> = None;
        let mut default = false;
        for &c in &self.dst_class_ids {
            match self.walk([ss, sa, c, da, p], fq, from, pick) {
                Some(r) if self.actions[r] == Action::Allow => {
                    allow = Some(allow.map_or(r, |a| a.min(r)));
                }
                Some(r) => other = Some(other.map_or(r, |o| o.min(r))),
                None => default = true,
            }
        }
        match allow.or(other) {
            Some(r) => self.decision(r, true),
            None => {
                debug_assert!(default);
                Decision {
                    provisional: true,
                    ..self.default
                }
            }
        }
    }

    /// The parsers flow `q` needs when its lookup named L7 rule `from`:
    /// the clause kinds of the L7 rules that can decide its requests (those
    /// matching the flow at L4 from `from` up to the first L4 rule; for an
    /// unknown destination, over every possible destination). Empty for
    /// an L4 rule.
    pub fn inspect(&self, q: &FlowQuery, from: RuleId) -> Inspect {
        let [ss, sa, ds, da, p] = self.classes_of(q);
        let fq = self.fq_mask(q);
        let mut out = Inspect::default();
        let mut scan = |ds: u32| {
            self.walk([ss, sa, ds, da, p], fq, from.0 as usize, |r| {
                match &self.l7[r] {
                    Some(l) => {
                        out.add(l.parser());
                        false
                    }
                    None => true,
                }
            });
        };
        if q.dst.subject == Subject::Unknown {
            self.dst_class_ids.iter().for_each(|&c| scan(c));
        } else {
            scan(ds);
        }
        out
    }

    /// The FQDN patterns, numbered: bit `k` of [`FlowQuery::dst_fqdns`]
    /// stands for `fqdn_patterns()[k]` (exact or `*.suffix`, lowercase;
    /// match a DNS answer's name with [`l7::pattern::name_matches`]).
    pub fn fqdn_patterns(&self) -> &[String] {
        &self.fqdn_patterns
    }

    /// The mode of rule `r`'s set (the default mode for an unknown id).
    pub fn mode_of(&self, r: RuleId) -> Mode {
        self.modes
            .get(r.0 as usize)
            .copied()
            .unwrap_or(self.default.mode)
    }

    /// Whether rule `r` is an L7 rule.
    pub fn is_l7(&self, r: RuleId) -> bool {
        self.l7.get(r.0 as usize).is_some_and(Option::is_some)
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.actions.len()
    }

    /// Bytes of lookup tables (for reports and the size cap).
    pub fn table_bytes(&self) -> usize {
        (self.arena.len() + self.to_classes.len()) * 8
            + (self.src_doc.len() + self.dst_doc.len() + self.src_addr.len() + self.dst_addr.len())
                * 4
    }

    fn decision(&self, r: usize, provisional: bool) -> Decision {
        Decision {
            action: self.actions[r],
            mode: self.modes[r],
            rule: Some(RuleId(r as u32)),
            provisional,
            l7: self.l7[r].is_some(),
        }
    }

    /// The query's FQDN bits that name a pattern.
    fn fq_mask(&self, q: &FlowQuery) -> u64 {
        let n = self.fqdn_vecs.len();
        if n >= 64 {
            q.dst_fqdns
        } else {
            q.dst_fqdns & ((1u64 << n) - 1)
        }
    }

    /// OR of word `w` of the FQDN vectors in `mask` (summary or body).
    #[inline]
    fn fq_word(&self, mask: u64, w: usize, summary: bool) -> u64 {
        let mut m = mask;
        let mut x = 0;
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            m &= m - 1;
            let (s, b) = self.vector(self.fqdn_vecs[k]);
            x |= if summary { s[w] } else { b[w] };
        }
        x
    }

    fn src_subject(&self, s: Subject) -> u32 {
        match s {
            Subject::Identity(i) => self
                .src_doc
                .get(i as usize)
                .copied()
                .unwrap_or(self.src_unauth),
            Subject::Unauthenticated | Subject::Unknown => self.src_unauth,
        }
    }

    fn addr_class(&self, classes: &[u32], a: Option<Ipv4Addr>) -> u32 {
        match a {
            // The first bound is 0, so the partition point is at least 1.
            Some(a) => classes[self.addr_bounds.partition_point(|&b| b <= u32::from(a)) - 1],
            None => self.empty,
        }
    }

    fn port_class(&self, proto: u8, port: u16) -> u32 {
        match proto {
            IPPROTO_TCP => self.tcp_class[self.tcp_bounds.partition_point(|&b| b <= port) - 1],
            IPPROTO_UDP => self.udp_class[self.udp_bounds.partition_point(|&b| b <= port) - 1],
            IPPROTO_ICMP => self.icmp_class,
            _ => self.other_class,
        }
    }

    /// Vector `c`: (summary, body).
    fn vector(&self, c: u32) -> (&[u64], &[u64]) {
        let stride = self.words + self.sum_words;
        let v = &self.arena[c as usize * stride..][..stride];
        v.split_at(self.sum_words)
    }

    /// The rules from `from` on in `(ss | sa) & (ds | da | fqdns) & p`, in
    /// order, until `pick` takes one.
    #[inline]
    fn walk(
        &self,
        [ss, sa, ds, da, p]: [u32; 5],
        fq: u64,
        from: usize,
        mut pick: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let (s1, b1) = self.vector(ss);
        let (s2, b2) = self.vector(sa);
        let (s3, b3) = self.vector(ds);
        let (s4, b4) = self.vector(da);
        let (s5, b5) = self.vector(p);
        let w0 = from / 64;
        for j in w0 / 64..self.sum_words {
            let f = if fq == 0 {
                0
            } else {
                self.fq_word(fq, j, true)
            };
            let mut cand = (s1[j] | s2[j]) & (s3[j] | s4[j] | f) & s5[j];
            if j == w0 / 64 {
                cand &= u64::MAX << (w0 % 64);
            }
            while cand != 0 {
                let w = j * 64 + cand.trailing_zeros() as usize;
                cand &= cand - 1;
                let f = if fq == 0 {
                    0
                } else {
                    self.fq_word(fq, w, false)
                };
                let mut m = (b1[w] | b2[w]) & (b3[w] | b4[w] | f) & b5[w];
                if w == w0 {
                    m &= u64::MAX << (from % 64);
                }
                while m != 0 {
                    let r = w * 64 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    if pick(r) {
                        return Some(r);
                    }
                }
            }
        }
        None
    }

    /// The aggregate over every possible destination subject (module docs).
    fn unknown_dst(&self, ss: u32, sa: u32, da: u32, p: u32, fq: u64) -> Decision {
        let mut remaining = [0u64; MAX_DST_WORDS];
        let rw = self.dst_class_words;
        for (k, w) in remaining.iter_mut().take(rw).enumerate() {
            let left = self.dst_classes - k * 64;
            *w = if left >= 64 {
                u64::MAX
            } else {
                (1u64 << left) - 1
            };
        }
        let (s1, b1) = self.vector(ss);
        let (s2, b2) = self.vector(sa);
        let b3 = self.vector(self.to_any).1;
        let b4 = self.vector(da).1;
        let (s5, b5) = self.vector(p);
        let mut first_other: Option<usize> = None;
        for j in 0..self.sum_words {
            let mut cand = (s1[j] | s2[j]) & s5[j];
            while cand != 0 {
                let w = j * 64 + cand.trailing_zeros() as usize;
                cand &= cand - 1;
                let mut m = (b1[w] | b2[w]) & b5[w];
                // Rules matching every destination: any destination, the
                // address, or a learned name (whatever the subject).
                let f = if fq == 0 {
                    0
                } else {
                    self.fq_word(fq, w, false)
                };
                let every = b3[w] | b4[w] | f;
                while m != 0 {
                    let r = w * 64 + m.trailing_zeros() as usize;
                    let bit = m & m.wrapping_neg();
                    m &= m - 1;
                    let allow = self.actions[r] == Action::Allow;
                    if every & bit != 0 {
                        // Decides every destination still undecided (there
                        // is at least one, or the scan would have stopped).
                        let r = if allow { r } else { first_other.unwrap_or(r) };
                        return self.decision(r, true);
                    }
                    let row = &self.to_classes[r * rw..][..rw];
                    let hits = row.iter().zip(&remaining[..rw]).any(|(a, b)| a & b != 0);
                    if !hits {
                        continue;
                    }
                    if allow {
                        return self.decision(r, true);
                    }
                    first_other.get_or_insert(r);
                    let mut left = false;
                    for (x, a) in remaining[..rw].iter_mut().zip(row) {
                        *x &= !a;
                        left |= *x != 0;
                    }
                    if !left {
                        return self.decision(first_other.unwrap_or(r), true);
                    }
                }
            }
        }
        match first_other {
            Some(r) => self.decision(r, true),
            None => Decision {
                provisional: true,
                ..self.default
            },
        }
    }

    /// The class ids of a query (the destination subject's as if known).
    pub(crate) fn classes_of(&self, q: &FlowQuery) -> [u32; 5] {
        let ds = match q.dst.subject {
            Subject::Identity(i) => self
                .dst_doc
                .get(i as usize)
                .copied()
                .unwrap_or(self.dst_unauth),
            _ => self.dst_unauth,
        };
        [
            self.src_subject(q.src.subject),
            self.addr_class(&self.src_addr, q.src.addr),
            ds,
            self.addr_class(&self.dst_addr, q.dst.addr),
            self.port_class(q.proto, q.dst_port),
        ]
    }

    /// The rules below `limit` whose vectors contain all of `classes`
    /// (`(c0 | c1) & (c2 | c3 | fqdns) & c4`; a `None` field is not
    /// constrained, and `fq` only counts when the destination is).
    pub(crate) fn rules_matching(
        &self,
        classes: [Option<u32>; 5],
        fq: u64,
        limit: usize,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        for w in 0..self.words {
            let get = |c: Option<u32>| c.map_or(u64::MAX, |c| self.vector(c).1[w]);
            let side = |a: Option<u32>, b: Option<u32>, extra: u64| match (a, b) {
                (None, None) => u64::MAX,
                _ => {
                    let x = a.map_or(0, |c| self.vector(c).1[w]);
                    let y = b.map_or(0, |c| self.vector(c).1[w]);
                    x | y | extra
                }
            };
            let f = self.fq_word(fq, w, false);
            let mut m =
                side(classes[0], classes[1], 0) & side(classes[2], classes[3], f) & get(classes[4]);
            while m != 0 {
                let r = w * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                if r >= limit {
                    return out;
                }
                out.push(r);
            }
        }
        out
    }
}
