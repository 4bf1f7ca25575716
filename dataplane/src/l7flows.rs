//! The state of inspected flows: the flows whose policy rule carries an L7
//! clause, whose client-to-server bytes are parsed (l7 crate) and whose
//! every request is decided before it reaches the server.
//!
//! Per flow: the parser's small state, where the stream stands (bytes up
//! to `forwarded` reached the server; bytes up to `fed` went into the
//! parser), and the segments held back while a request head is
//! incomplete. Everything is allocated at start and bounded, because
//! packets create it:
//!
//! - [`L7_FLOWS`] inspected flows per worker. A new inspected flow finds
//!   the table full: it is refused (fail closed, counted `l7_unavailable`),
//!   never admitted uninspected. Slots of flows that left the flow table
//!   are reclaimed by a sweep in housekeeping (and on demand).
//! - [`HOLD_PER_FLOW`] held segments per flow and [`HOLD_TOTAL`] per
//!   worker (packet buffers come from the worker's pool, which receiving
//!   needs too). A head spread over more segments than that is refused
//!   (`l7_hold_overflow`), not passed.
//! - [`HEAD_BUFS`] HTTP head buffers (8.5 KiB each), [`HELLO_BUFS`]
//!   ClientHello buffers (16 KiB) and [`DNS_BUFS`] DNS-over-TCP query
//!   buffers ([`DNS_QUERY_MAX`] bytes) lent to flows whose head, hello or
//!   query is split over segments; one that arrives in one segment is
//!   parsed where it lies and needs none past the call. None free: the
//!   flow is refused.
//! - **Per-origin shares.** One origin (an underlay peer, or a local port)
//!   holds at most half of each of these (inspected flows, held segments,
//!   each kind of buffer): a client flooding split heads or idle inspected
//!   connections from one origin leaves the other half to the rest, whose
//!   flows are not cut for its sake. Past its share, the origin's own new
//!   flow or split head is refused, as when the pool is empty.

use l7::http::{HeadBuf, HttpStream};
use l7::tls::{HelloBuf, HelloStream};

use crate::buffer::{Buf, Pool};
use crate::flows::FlowRef;

/// Inspected flows per worker.
pub const L7_FLOWS: usize = 4096;
/// Segments one flow may have held back at a time.
pub const HOLD_PER_FLOW: usize = 32;
/// Segments held back per worker, all flows together.
pub const HOLD_TOTAL: usize = 1024;
/// Head buffers per worker, lent to flows in the middle of a split head.
pub const HEAD_BUFS: usize = 128;
/// ClientHello buffers per worker, lent to flows in the middle of a split
/// hello.
pub const HELLO_BUFS: usize = 32;
/// DNS-over-TCP query buffers per worker, lent to flows whose query is
/// split over segments.
pub const DNS_BUFS: usize = 64;
/// The longest DNS query over TCP taken (a query is a header, one question
/// and an OPT record: a few hundred bytes; longer ones are refused).
pub const DNS_QUERY_MAX: usize = 1024;

/// The part of each pool one origin may hold: a half.
const fn share(pool: usize) -> u32 {
    (pool / 2) as u32
}

/// Slots checked for dead flows when a new flow finds the table full.
pub const SWEEP_ON_OPEN: usize = 64;

/// No L7 slot.
pub const NO_L7: u32 = u32::MAX;
/// On a reply entry's `l7`: the slot of its flow, whose server's sequence
/// numbers its packets show (they are not inspected).
pub const SERVER_SIDE: u32 = 1 << 31;

/// What is parsed on a flow.
#[derive(Debug, Clone, Copy)]
pub enum Parser {
    /// The first client bytes decide the protocol; `Inspect` says which
    /// protocols' clauses can decide this flow (their parser runs next).
    Detect(l7::detect::Detector, policy::Inspect),
    Http(HttpStream),
    Tls(HelloStream),
    /// Detected and allowed with no parser to run (a rule with only
    /// `app`), or past the ClientHello: the rest passes.
    Opaque,
    /// DNS over UDP: each query datagram is decided alone.
    DnsUdp,
    /// DNS over TCP: the stream cut into queries, each decided alone.
    DnsTcp(l7::dns::TcpFramer),
}

/// The kinds of buffer lent to parsers, each from its own pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufKind {
    Head,
    Hello,
    Dns,
}

impl BufKind {
    fn of(p: &Parser) -> BufKind {
        match p {
            Parser::Tls(_) => BufKind::Hello,
            Parser::DnsTcp(_) => BufKind::Dns,
            _ => BufKind::Head,
        }
    }
}

/// Why the table did not give what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Short {
    /// The pool is empty.
    Exhausted,
    /// The flow's origin holds its share of the pool.
    OriginShare,
}

/// The buffer lent to a flow's parser for one call.
pub enum Lent<'a> {
    Http(&'a mut HeadBuf),
    Tls(&'a mut HelloBuf),
    Dns(&'a mut [u8; DNS_QUERY_MAX]),
}

impl std::fmt::Debug for Lent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lent::Http(_) => "Lent::Http",
            Lent::Tls(_) => "Lent::Tls",
            Lent::Dns(_) => "Lent::Dns",
        })
    }
}

/// The last L7 decision on a flow, for `warden flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastL7 {
    None,
    Allowed,
    /// Forwarded although the policy would deny it (monitor, learn).
    WouldDeny,
    /// Denied by the policy (the rule's clauses do not admit it).
    Denied,
    /// Malformed or ambiguous (the parser's reason), or held too long.
    Refused(&'static str),
}

impl Parser {
    /// What `warden flows` calls the parser.
    pub fn name(&self) -> &'static str {
        match self {
            Parser::Detect(..) => "detecting",
            Parser::Http(_) => "http",
            Parser::Tls(_) => "tls",
            Parser::Opaque => "opaque",
            Parser::DnsUdp | Parser::DnsTcp(_) => "dns",
        }
    }
}

impl LastL7 {
    pub fn name(self) -> &'static str {
        match self {
            LastL7::None => "-",
            LastL7::Allowed => "allow",
            LastL7::WouldDeny => "would_deny",
            LastL7::Denied => "deny",
            LastL7::Refused(r) => r,
        }
    }
}

/// One inspected flow.
#[derive(Debug)]
pub struct L7Flow {
    /// The client-to-server entry of the flow table.
    pub flow: FlowRef,
    /// The origin's index (see [`L7Table::open`]): whose share it uses.
    pub origin: u16,
    /// The rule that decided the flow at L4: requests are decided from it.
    pub first_rule: policy::RuleId,
    pub parser: Parser,
    /// Sequence numbers: set from the SYN (or the first segment seen).
    pub synced: bool,
    pub forwarded: u32,
    pub fed: u32,
    /// The buffer lent to this flow (its kind and index), while mid-head.
    pub head: Option<(BufKind, u16)>,
    /// Held segments, in arrival order, with their sequence numbers.
    pub held: [Option<(u32, Buf)>; HOLD_PER_FLOW],
    pub held_n: usize,
    /// Reset: every later segment is dropped.
    pub denied: bool,
    /// Retransmissions of held bytes seen (see the inspect stage).
    pub stalls: u8,
    /// The reply direction's entry, and the server's next sequence number
    /// as its segments show it (where a RST to the client must be).
    pub reply: FlowRef,
    pub server_next: Option<u32>,
    pub requests: u32,
    pub last: LastL7,
}

/// The inspected flows of one worker.
pub struct L7Table {
    slots: Vec<Option<L7Flow>>,
    free: Vec<u32>,
    heads: Vec<HeadBuf>,
    free_heads: Vec<u16>,
    hellos: Vec<HelloBuf>,
    free_hellos: Vec<u16>,
    dns: Vec<[u8; DNS_QUERY_MAX]>,
    free_dns: Vec<u16>,
    held_total: usize,
    sweep_at: usize,
    /// What each origin holds; the last entry stands for any origin index
    /// out of range.
    origins: Vec<OriginUse>,
}

/// What one origin holds of each pool.
#[derive(Debug, Clone, Copy, Default)]
struct OriginUse {
    flows: u32,
    held: u32,
    bufs: [u32; 3],
}

impl std::fmt::Debug for L7Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L7Table")
            .field("flows", &(self.slots.len() - self.free.len()))
            .field("heads_free", &self.free_heads.len())
            .field("held", &self.held_total)
            .finish()
    }
}

impl L7Table {
    /// A table whose flows come from `origins` origins (indices
    /// `0..origins`; see [`L7Table::open`]).
    pub fn new(origins: usize) -> L7Table {
        L7Table {
            slots: (0..L7_FLOWS).map(|_| None).collect(),
            free: (0..L7_FLOWS as u32).rev().collect(),
            heads: (0..HEAD_BUFS).map(|_| HeadBuf::new()).collect(),
            free_heads: (0..HEAD_BUFS as u16).rev().collect(),
            hellos: (0..HELLO_BUFS).map(|_| HelloBuf::new()).collect(),
            free_hellos: (0..HELLO_BUFS as u16).rev().collect(),
            dns: (0..DNS_BUFS).map(|_| [0; DNS_QUERY_MAX]).collect(),
            free_dns: (0..DNS_BUFS as u16).rev().collect(),
            held_total: 0,
            sweep_at: 0,
            origins: vec![OriginUse::default(); origins + 1],
        }
    }

    /// Inspected flows now.
    pub fn len(&self) -> usize {
        L7_FLOWS - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segments held now (all flows).
    pub fn held(&self) -> usize {
        self.held_total
    }

    fn origin_index(&self, origin: u16) -> usize {
        usize::from(origin).min(self.origins.len() - 1)
    }

    /// A slot for `flow` from origin `origin` (an index the caller gives
    /// each underlay peer and local port), or why not: the table is full,
    /// or the origin holds its share, even after reclaiming the slots of
    /// flows `alive` says are gone.
    pub fn open(
        &mut self,
        flow: FlowRef,
        origin: u16,
        first_rule: policy::RuleId,
        parser: Parser,
        pool: &mut Pool,
        alive: impl Fn(FlowRef) -> bool,
    ) -> Result<u32, Short> {
        let o = self.origin_index(origin);
        let over = |t: &Self| t.origins[o].flows >= share(L7_FLOWS);
        if self.free.is_empty() || over(self) {
            // A bounded look (a flood of new flows must not buy a full scan
            // each); housekeeping sweeps the rest.
            self.sweep(SWEEP_ON_OPEN, pool, &alive);
        }
        if over(self) {
            return Err(Short::OriginShare);
        }
        let i = self.free.pop().ok_or(Short::Exhausted)?;
        self.origins[o].flows += 1;
        self.slots[i as usize] = Some(L7Flow {
            flow,
            origin: o as u16,
            first_rule,
            parser,
            synced: false,
            forwarded: 0,
            fed: 0,
            head: None,
            held: std::array::from_fn(|_| None),
            held_n: 0,
            denied: false,
            stalls: 0,
            reply: FlowRef::NONE,
            server_next: None,
            requests: 0,
            last: LastL7::None,
        });
        Ok(i)
    }

    /// Start slot `i`'s stream at `seq` (the handshake was seen elsewhere:
    /// `seq` is the client's next sequence number, from the server's ACK).
    pub fn sync(&mut self, i: u32, seq: u32) {
        if let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) {
            l.synced = true;
            l.forwarded = seq;
            l.fed = seq;
        }
    }

    /// After a reload: slot `i`'s requests are decided from `rule`, or,
    /// with None (its flow's new rule has no L7 clause), no longer parsed.
    pub fn redecide(&mut self, i: u32, rule: Option<policy::RuleId>) {
        if let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) {
            match rule {
                Some(r) => l.first_rule = r,
                None => l.parser = Parser::Opaque,
            }
        }
    }

    /// Tie slot `i` to its flow's reply entry.
    pub fn set_reply(&mut self, i: u32, reply: FlowRef) {
        if let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) {
            l.reply = reply;
        }
    }

    /// Record the server's segment (`seq`, `len` counting SYN and FIN) on
    /// the slot whose reply entry is `reply`.
    pub fn server_segment(&mut self, i: u32, reply: FlowRef, seq: u32, len: u32) {
        let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return;
        };
        if l.reply != reply {
            return;
        }
        let next = seq.wrapping_add(len);
        l.server_next = match l.server_next {
            Some(n) if next.wrapping_sub(n) >= 1 << 31 => Some(n),
            _ => Some(next),
        };
    }

    /// The flow in slot `i`, if it still belongs to `flow`.
    #[inline]
    pub fn get_mut(&mut self, i: u32, flow: FlowRef) -> Option<&mut L7Flow> {
        self.slots
            .get_mut(i as usize)?
            .as_mut()
            .filter(|l| l.flow == flow)
    }

    #[inline]
    pub fn get(&self, i: u32) -> Option<&L7Flow> {
        self.slots.get(i as usize)?.as_ref()
    }

    /// Close slot `i`: its held segments and head buffer go back.
    pub fn close(&mut self, i: u32, pool: &mut Pool) {
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        let Some(mut l) = slot.take() else {
            return;
        };
        self.held_total -= l.held_n;
        let o = usize::from(l.origin);
        self.origins[o].held -= l.held_n as u32;
        self.origins[o].flows -= 1;
        for h in l.held.iter_mut().take(l.held_n) {
            if let Some((_, b)) = h.take() {
                pool.put(b);
            }
        }
        if let Some((kind, h)) = l.head.take() {
            self.give_back(o, kind, h);
        }
        self.free.push(i);
    }

    /// Close up to `n` slots' worth of flows that `alive` says left the
    /// flow table, resuming where the last sweep stopped.
    pub fn sweep(&mut self, n: usize, pool: &mut Pool, alive: &impl Fn(FlowRef) -> bool) {
        for _ in 0..n.min(L7_FLOWS) {
            let i = self.sweep_at;
            self.sweep_at = (self.sweep_at + 1) % L7_FLOWS;
            let dead = self.slots[i].as_ref().is_some_and(|l| !alive(l.flow));
            if dead {
                self.close(i as u32, pool);
            }
        }
    }

    /// Hold `buf` (sequence number `seq`) for slot `i`; hands it back when
    /// the flow or the worker holds as many as it may.
    pub fn hold(&mut self, i: u32, seq: u32, buf: Buf) -> Result<(), (Buf, Short)> {
        if self.held_total >= HOLD_TOTAL {
            return Err((buf, Short::Exhausted));
        }
        let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return Err((buf, Short::Exhausted));
        };
        if l.held_n >= HOLD_PER_FLOW {
            return Err((buf, Short::Exhausted));
        }
        let o = &mut self.origins[usize::from(l.origin)];
        if o.held >= share(HOLD_TOTAL) {
            return Err((buf, Short::OriginShare));
        }
        o.held += 1;
        l.held[l.held_n] = Some((seq, buf));
        l.held_n += 1;
        self.held_total += 1;
        Ok(())
    }

    /// Take slot `i`'s held segments, in the order they were held.
    pub fn release(&mut self, i: u32, mut each: impl FnMut(u32, Buf)) {
        let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return;
        };
        self.held_total -= l.held_n;
        self.origins[usize::from(l.origin)].held -= l.held_n as u32;
        for h in l.held.iter_mut().take(l.held_n) {
            if let Some((seq, b)) = h.take() {
                each(seq, b);
            }
        }
        l.held_n = 0;
    }

    fn free_list(&mut self, kind: BufKind) -> &mut Vec<u16> {
        match kind {
            BufKind::Head => &mut self.free_heads,
            BufKind::Hello => &mut self.free_hellos,
            BufKind::Dns => &mut self.free_dns,
        }
    }

    fn give_back(&mut self, origin: usize, kind: BufKind, h: u16) {
        self.origins[origin].bufs[kind as usize] -= 1;
        self.free_list(kind).push(h);
    }

    /// Lend slot `i` a buffer for its parser (its own if it has one), or
    /// why not.
    pub fn head_for(&mut self, i: u32) -> Result<u16, Short> {
        let l = self
            .slots
            .get_mut(i as usize)
            .and_then(Option::as_mut)
            .ok_or(Short::Exhausted)?;
        let kind = BufKind::of(&l.parser);
        match l.head {
            Some((k, h)) if k == kind => return Ok(h),
            // Lent for another parser (the flow's protocol changed): back
            // to its own pool.
            Some((k, h)) => {
                l.head = None;
                let o = usize::from(l.origin);
                self.give_back(o, k, h);
            }
            None => {}
        }
        let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return Err(Short::Exhausted);
        };
        let o = usize::from(l.origin);
        let pool = match kind {
            BufKind::Head => HEAD_BUFS,
            BufKind::Hello => HELLO_BUFS,
            BufKind::Dns => DNS_BUFS,
        };
        if self.origins[o].bufs[kind as usize] >= share(pool) {
            return Err(Short::OriginShare);
        }
        let free = match kind {
            BufKind::Head => &mut self.free_heads,
            BufKind::Hello => &mut self.free_hellos,
            BufKind::Dns => &mut self.free_dns,
        };
        let h = free.pop().ok_or(Short::Exhausted)?;
        l.head = Some((kind, h));
        self.origins[o].bufs[kind as usize] += 1;
        Ok(h)
    }

    /// Give slot `i`'s buffer back unless its parser still holds a partial
    /// head, hello or query in it.
    pub fn settle_head(&mut self, i: u32, buffered: usize) {
        if buffered > 0 {
            return;
        }
        let Some(l) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some((kind, h)) = l.head.take() {
            let o = usize::from(l.origin);
            self.give_back(o, kind, h);
        }
    }

    /// Slot `i` and the buffer `head` lent to its parser, borrowed together.
    pub fn parts(&mut self, i: u32, head: u16) -> Option<(&mut L7Flow, Lent<'_>)> {
        let l = self.slots.get_mut(i as usize)?.as_mut()?;
        let h = usize::from(head);
        let lent = match l.head {
            Some((BufKind::Head, n)) if n == head => Lent::Http(self.heads.get_mut(h)?),
            Some((BufKind::Hello, n)) if n == head => Lent::Tls(self.hellos.get_mut(h)?),
            Some((BufKind::Dns, n)) if n == head => Lent::Dns(self.dns.get_mut(h)?),
            _ => return None,
        };
        Some((l, lent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> FlowRef {
        FlowRef::for_tests(n)
    }

    #[test]
    fn full_table_reclaims_dead_flows_and_otherwise_refuses() {
        let mut pool = Pool::new(64);
        let mut t = L7Table::new(4);
        let p = Parser::Opaque;
        for n in 0..L7_FLOWS as u32 {
            let o = (n % 4) as u16;
            assert!(t
                .open(flow(n), o, policy::RuleId(0), p, &mut pool, |_| true)
                .is_ok());
        }
        assert_eq!(
            t.open(flow(99_999), 0, policy::RuleId(0), p, &mut pool, |_| true),
            Err(Short::Exhausted)
        );
        // Flow 7 left the flow table: its slot is reclaimed, by the bounded
        // look a new flow takes (not far enough here) or by housekeeping.
        let dead = |f: FlowRef| f != flow(7);
        let i = t.open(flow(99_999), 0, policy::RuleId(0), p, &mut pool, dead);
        assert!(i.is_err(), "slot 7 is beyond the bounded look");
        t.sweep(L7_FLOWS, &mut pool, &dead);
        let i = t.open(flow(99_999), 0, policy::RuleId(0), p, &mut pool, dead);
        assert!(i.is_ok());
        assert_eq!(t.len(), L7_FLOWS);
    }

    #[test]
    fn one_origin_holds_at_most_half_of_each_pool() {
        let mut pool = Pool::new(2048);
        let mut t = L7Table::new(2);
        let p = Parser::Http(HttpStream::new());
        let (attacker, other) = (0u16, 1u16);
        let half = L7_FLOWS as u32 / 2;
        for n in 0..half {
            t.open(flow(n), attacker, policy::RuleId(0), p, &mut pool, |_| true)
                .unwrap();
        }
        assert_eq!(
            t.open(
                flow(half),
                attacker,
                policy::RuleId(0),
                p,
                &mut pool,
                |_| true
            ),
            Err(Short::OriginShare)
        );
        // Out-of-range origin indices share one entry, not the attacker's.
        let mine = t
            .open(flow(50_000), other, policy::RuleId(0), p, &mut pool, |_| {
                true
            })
            .unwrap();
        // Head buffers and held segments: the attacker gets half of each.
        let mut lent = 0;
        for n in 0..HEAD_BUFS as u32 {
            match t.head_for(n) {
                Ok(_) => lent += 1,
                Err(e) => assert_eq!(e, Short::OriginShare),
            }
        }
        assert_eq!(lent, HEAD_BUFS / 2);
        assert!(t.head_for(mine).is_ok(), "the other origin still gets one");
        let mut held = 0;
        'all: for n in 0..half {
            for s in 0..HOLD_PER_FLOW as u32 {
                let b = pool.get().unwrap();
                match t.hold(n, s, b) {
                    Ok(()) => held += 1,
                    Err((b, why)) => {
                        pool.put(b);
                        assert_eq!(why, Short::OriginShare);
                        break 'all;
                    }
                }
            }
        }
        assert_eq!(held, HOLD_TOTAL / 2);
        let b = pool.get().unwrap();
        assert!(t.hold(mine, 1, b).is_ok(), "the other origin still holds");
        // Closing gives the share back.
        for n in 0..half {
            t.close(n, &mut pool);
        }
        let again = t
            .open(
                flow(70_000),
                attacker,
                policy::RuleId(0),
                p,
                &mut pool,
                |_| true,
            )
            .unwrap();
        assert!(t.head_for(again).is_ok());
        let b = pool.get().unwrap();
        assert!(t.hold(again, 1, b).is_ok());
    }

    #[test]
    fn a_buffer_goes_back_to_its_own_pool_when_the_parser_changes() {
        let mut pool = Pool::new(64);
        let mut t = L7Table::new(1);
        let tls = Parser::Tls(HelloStream::new());
        let i = t
            .open(flow(1), 0, policy::RuleId(0), tls, &mut pool, |_| true)
            .unwrap();
        let h = t.head_for(i).unwrap();
        assert!(matches!(t.parts(i, h), Some((_, Lent::Tls(_)))));
        // The flow goes opaque mid-hello (a monitor set let it on).
        t.slots[i as usize].as_mut().unwrap().parser = Parser::Opaque;
        t.settle_head(i, 0);
        assert!(t.free_hellos.contains(&h), "back among the hellos");
        assert_eq!(t.free_heads.len(), HEAD_BUFS);
        assert_eq!(t.free_hellos.len(), HELLO_BUFS);
    }

    #[test]
    fn holding_is_bounded_per_flow_and_returns_buffers_on_close() {
        let mut pool = Pool::new(64);
        let mut t = L7Table::new(1);
        let p = Parser::Http(HttpStream::new());
        let i = t
            .open(flow(1), 0, policy::RuleId(0), p, &mut pool, |_| true)
            .unwrap();
        let before = pool.available();
        for s in 0..HOLD_PER_FLOW as u32 {
            let b = pool.get().unwrap();
            assert!(t.hold(i, s, b).is_ok());
        }
        let extra = pool.get().unwrap();
        let (back, why) = t.hold(i, 99, extra).expect_err("per-flow bound");
        assert_eq!(why, Short::Exhausted);
        pool.put(back);
        assert_eq!(t.held(), HOLD_PER_FLOW);
        let mut seqs = Vec::new();
        t.release(i, |s, b| {
            seqs.push(s);
            pool.put(b);
        });
        assert_eq!(seqs, (0..HOLD_PER_FLOW as u32).collect::<Vec<_>>());
        assert_eq!(t.held(), 0);
        let b = pool.get().unwrap();
        t.hold(i, 5, b).unwrap();
        let h = t.head_for(i).unwrap();
        t.close(i, &mut pool);
        assert_eq!(pool.available(), before, "every buffer back in the pool");
        assert!(t.head_for(i).is_err(), "closed");
        assert!(t.free_heads.contains(&h));
    }
}
