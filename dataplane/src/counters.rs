//! Counters: per port, per VNI, per drop reason, per peer, in one block per
//! worker.
//!
//! Each counter has exactly one writer (the worker that owns the block), so
//! an increment is a relaxed load and store, not a locked read-modify-write;
//! the control thread reads them with relaxed loads and sums the workers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// A counter written by one thread, read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    /// Overwrite with an absolute value (for values mirrored from elsewhere).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// Per-packet counters of a stage, summed per burst: packets and bytes of
/// a run of packets with the same key (peer, VNI index) go to the counters
/// in one add when the key changes and when the stage ends (a burst mostly
/// comes from one peer in one VNI).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunTally {
    key: (u16, u16),
    packets: u64,
    bytes: u64,
}

impl RunTally {
    pub(crate) const fn new() -> RunTally {
        RunTally {
            key: (u16::MAX, u16::MAX),
            packets: 0,
            bytes: 0,
        }
    }

    /// Count one packet of `bytes` under `key`; `flush(key, packets, bytes)`
    /// adds a finished run to the counters.
    #[inline]
    pub(crate) fn add(
        &mut self,
        key: (u16, u16),
        bytes: u64,
        flush: impl FnOnce((u16, u16), u64, u64),
    ) {
        if key != self.key {
            self.finish(flush);
            self.key = key;
        }
        self.packets += 1;
        self.bytes += bytes;
    }

    /// Add the current run, if any, to the counters.
    #[inline]
    pub(crate) fn finish(&mut self, flush: impl FnOnce((u16, u16), u64, u64)) {
        if self.packets > 0 {
            flush(self.key, self.packets, self.bytes);
            self.packets = 0;
            self.bytes = 0;
        }
    }
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a packet was dropped. A fixed set: each indexes one counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The stable name used in `warden stats` and its JSON.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            pub const fn describe(self) -> &'static str {
                match self { $(DropReason::$variant => $doc,)* }
            }
        }
    };
}

drop_reasons! {
    Truncated => "truncated", "frame shorter than its headers claim";
    UnderlayNotIpv4 => "underlay_not_ipv4", "underlay frame that is neither IPv4 nor ARP";
    UnderlayNotForUs => "underlay_not_for_us", "underlay frame for another MAC or IP address";
    BadIpHeader => "bad_ip_header", "outer IPv4 header malformed (version, length)";
    BadIpChecksum => "bad_ip_checksum", "outer IPv4 header checksum wrong";
    OuterFragment => "outer_fragment", "fragmented outer IPv4 packet (VXLAN is never reassembled)";
    BadUdpLength => "bad_udp_length", "outer UDP length does not match the packet";
    BadUdpChecksum => "bad_udp_checksum", "outer UDP checksum present and wrong";
    BadVxlanFlags => "bad_vxlan_flags", "VXLAN header without the I flag or with reserved bits set";
    InnerTooShort => "inner_too_short", "VXLAN payload too short for an Ethernet header";
    NotAPeer => "not_a_peer", "VXLAN from an address that is not a configured peer";
    UnknownVni => "unknown_vni", "VXLAN for a VNI that is not configured";
    PeerVniNotAllowed => "peer_vni_not_allowed", "VXLAN from a peer for a VNI it does not carry";
    BadSourceMac => "bad_source_mac", "inner source MAC is multicast or zero";
    SameSegment => "same_segment", "destination is on the segment the frame came from";
    NoPeerNextHop => "no_peer_next_hop", "next-hop MAC of the peer VTEP not yet resolved";
    PeerDown => "peer_down", "the peer VTEP is down (no probe answered, no VXLAN received for 3 s)";
    BadInnerIpHeader => "bad_inner_ip_header", "inner IP header malformed (on a routed packet, or any with identity on)";
    BadInnerChecksum => "bad_inner_checksum", "routed packet with a wrong IPv4 header checksum";
    TtlExceeded => "ttl_exceeded", "routed packet whose TTL ran out (ICMP time exceeded sent)";
    NoRoute => "no_route", "no inner route to the destination (ICMP unreachable sent)";
    NeighborUnresolved => "neighbor_unresolved", "inner next hop MAC unknown (ARP request sent)";
    TooBig => "too_big", "routed packet larger than the egress MTU (ICMP frag-needed sent when DF)";
    ToGateway => "to_gateway", "packet for the gateway address that warden does not serve";
    NotIpv4Routed => "not_ipv4_routed", "non-IPv4 frame sent to the gateway MAC";
    PoolEmpty => "pool_empty", "no free packet buffer (for a copy or a reply)";
    TxFull => "tx_full", "transmit ring full";
    HostStackBusy => "host_stack_busy", "underlay host stack queue full";
    FloodOverflow => "flood_overflow", "flood copies beyond what one burst's packet vector holds";
    IdentityMissing => "identity_missing", "no identity header on a flow this warden does not know, from a warden peer";
    IdentityMalformed => "identity_malformed", "identity header malformed (or on an ICMP error, which is never stamped)";
    IdentityEpoch => "identity_epoch", "no key for the identity header's epoch (expired or unknown)";
    IdentityBadTag => "identity_bad_tag", "identity header tag does not verify";
    IdentityStale => "identity_stale", "identity header timestamp outside the window";
    IdentityNotAuthorized => "identity_not_authorized", "identity the peer may not assert (or a header from a plain VTEP)";
    IdentityNonce => "identity_nonce", "identity header on a TCP segment whose nonce is not its sequence number";
    PolicyDenied => "policy_denied", "the policy denies the flow (a deny rule or the default, in enforce mode)";
    PolicyRejected => "policy_rejected", "the policy rejects the flow: dropped, and a TCP RST or ICMP unreachable sent to the opener";
    L7Denied => "l7_denied", "a request the policy's L7 clauses do not admit: the connection was reset both ways";
    L7Refused => "l7_refused", "L7 bytes refused as malformed or ambiguous (smuggling, an oversized head, too many held segments): reset both ways";
    L7OutOfOrder => "l7_out_of_order", "a segment of an inspected flow out of sequence (a gap or an overlap): dropped, the client sends it again";
    L7Unavailable => "l7_unavailable", "an inspected flow found no inspection state (table full, reclaimed): refused, never passed uninspected";
    PolicyResponderDenied => "policy_responder_denied", "a reply whose (now known) identity the policy does not allow: the flow is cut both ways";
    PolicyRevoked => "policy_revoked", "a packet of a live flow that a reloaded policy no longer allows (TCP: both ends reset)";
    FlowTableFull => "flow_table_full", "no room for a new flow and nothing evictable (fail closed)";
    FlowOriginMismatch => "flow_origin_mismatch", "packet of a known flow from another origin than the one that opened it";
    ReplyWrongOrigin => "reply_wrong_origin", "reply to a flow from an origin the forward direction was not sent to";
    TooManyVlanTags => "too_many_vlan_tags", "inner frame with more than two 802.1Q/802.1ad tags (identity on)";
    Ipv6ExtChain => "ipv6_ext_chain", "inner IPv6 extension-header chain too long or malformed (identity on)";
    UnknownEthertype => "unknown_ethertype", "inner frame neither IPv4, IPv6 nor ARP (identity on)";
    InnerFragment => "inner_fragment", "non-first inner IP fragment, which cannot be tied to a flow (identity on)";
    PortSecurityMac => "port_security_mac", "frame from a bound port with a source MAC other than the bound one";
    PortSecurityIp => "port_security_ip", "source IP not the bound address of its port, or a locally bound address from elsewhere";
    BadArp => "bad_arp", "ARP that is neither a request nor a reply (identity on)";
    ArpSpoofed => "arp_spoofed", "ARP claiming a locally bound MAC or IP from elsewhere, or a bound workload's ARP with another sender";
    BoundMacElsewhere => "bound_mac_elsewhere", "frame whose source MAC is bound to a local port arriving from elsewhere";
    IcmpUnrelated => "icmp_unrelated", "ICMP error quoting no known flow, or from where the quoted flow was not sent";
    StampFailed => "stamp_failed", "the identity header could not be added (no room for the option)";
}

/// Counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub tx_dropped: Counter,
    pub rx_kernel_drops: Counter,
    /// Receive calls that failed (the port stays up and is polled again).
    pub rx_errors: Counter,
}

/// Counters of one VNI.
#[derive(Debug, Default)]
pub struct VniCounters {
    /// Frames that arrived VXLAN-encapsulated in this VNI.
    pub rx_decap_packets: Counter,
    pub rx_decap_bytes: Counter,
    /// Frames sent VXLAN-encapsulated in this VNI.
    pub tx_encap_packets: Counter,
    pub tx_encap_bytes: Counter,
    /// Frames that entered the VNI from a local access port.
    pub rx_local_packets: Counter,
    /// Frames delivered to a local access port of the VNI.
    pub tx_local_packets: Counter,
    /// Copies made to replicate broadcast, multicast and unknown unicast.
    pub flood_copies: Counter,
    /// Packets routed out of this VNI into another (ingress side).
    pub routed_out: Counter,
    /// Packets routed into this VNI (egress side).
    pub routed_in: Counter,
    pub macs_learned: Counter,
}

/// Flow-table occupancy and churn, published by the worker once a second.
#[derive(Debug, Default)]
pub struct FlowTableCounters {
    pub capacity: Counter,
    pub established: Counter,
    pub unestablished: Counter,
    pub created: Counter,
    /// Unestablished flows evicted to make room (per-origin quota or full table).
    pub evicted: Counter,
    pub expired: Counter,
    /// New flows refused because every entry was established.
    pub refused: Counter,
}

/// What the policy decided, per worker. Hits count flows (decisions), not
/// packets: established packets reuse the decision cached in their entry.
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// Flows decided by each rule, by rule id; slot [`DEFAULT_RULE_SLOT`]
    /// is the default. Sized for the largest policy, so that a reload can
    /// change the rules without the readers seeing the vector move.
    pub rule_hits: Vec<Counter>,
    /// Of those, decisions whose deny or reject a monitor or learn mode did
    /// not carry out, by rule id (and the default).
    pub rule_would_deny: Vec<Counter>,
    /// Flows forwarded although the policy would deny them (monitor, learn).
    pub would_deny: Counter,
    /// Flows allowed before their destination's identity was known, and of
    /// those, how many were decided again at their first reply.
    pub provisional: Counter,
    pub rechecked: Counter,
    /// TCP RSTs and ICMP unreachables sent for `reject`, and those not
    /// sent because the second's budget was spent.
    pub reject_answers: Counter,
    pub reject_answers_limited: Counter,
    /// Records in the learn table (a gauge), and records refused because
    /// it was full.
    pub learned: Counter,
    pub learn_dropped: Counter,
    /// Requests decided on inspected flows; segments held while a head was
    /// incomplete; connections cut (reset both ways).
    pub l7_requests: Counter,
    pub l7_held: Counter,
    pub l7_cut: Counter,
    /// Inspected flows a refusal would have cut (malformed or ambiguous
    /// bytes, limits) but whose rule's set is in monitor or learn mode:
    /// forwarded, no longer inspected.
    pub l7_would_refuse: Counter,
    /// Inspected flows, split heads and held segments refused because
    /// their origin held its share of the room (see `l7flows`).
    pub l7_share_limited: Counter,
    /// Addresses learned from DNS answers for FQDN selectors, and answers
    /// not learned because the table was full.
    pub fqdn_learned: Counter,
    pub fqdn_refused: Counter,
    /// The learn table as last published (copies, as `flow_rows`).
    pub learn_rows: std::sync::Mutex<Vec<crate::learn::LearnRecord>>,
}

/// The slot of the default's counters in [`PolicyCounters::rule_hits`].
pub const DEFAULT_RULE_SLOT: usize = policy::compile::MAX_RULES;

impl PolicyCounters {
    /// Counters for every rule a policy may have, plus the default (1 MiB
    /// per worker: two counters per rule).
    pub fn new() -> PolicyCounters {
        let slots = DEFAULT_RULE_SLOT + 1;
        PolicyCounters {
            rule_hits: (0..slots).map(|_| Counter::default()).collect(),
            rule_would_deny: (0..slots).map(|_| Counter::default()).collect(),
            learn_rows: std::sync::Mutex::new(Vec::with_capacity(crate::learn::LEARN_CAPACITY)),
            ..PolicyCounters::default()
        }
    }

    /// After a reload: rule `old` is now rule `new[old]` (None: gone).
    /// Called by the worker that owns these counters (their one writer),
    /// between bursts; a rule that left takes its counts with it.
    pub fn remap_rules(&self, new: &[Option<usize>]) {
        let take = |v: &[Counter]| -> Vec<u64> {
            new.iter().enumerate().map(|(i, _)| v[i].get()).collect()
        };
        let (hits, would) = (take(&self.rule_hits), take(&self.rule_would_deny));
        for c in self.rule_hits[..DEFAULT_RULE_SLOT]
            .iter()
            .chain(&self.rule_would_deny[..DEFAULT_RULE_SLOT])
        {
            if c.get() != 0 {
                c.set(0);
            }
        }
        for (old, to) in new.iter().enumerate() {
            if let Some(j) = to.filter(|j| *j < DEFAULT_RULE_SLOT) {
                self.rule_hits[j].set(hits[old]);
                self.rule_would_deny[j].set(would[old]);
            }
        }
    }

    /// Count a decision by `rule` (None: the default).
    #[inline]
    pub fn hit(&self, rule: Option<policy::RuleId>, would_deny: bool) {
        let i = rule.map_or(DEFAULT_RULE_SLOT, |r| r.0 as usize);
        if let Some(c) = self.rule_hits.get(i) {
            c.inc();
        }
        if would_deny {
            self.would_deny.inc();
            if let Some(c) = self.rule_would_deny.get(i) {
                c.inc();
            }
        }
    }
}

/// Everything one worker counts. Each counter has one writer (that worker);
/// `warden stats` sums the workers.
#[derive(Debug)]
pub struct WorkerCounters {
    pub ports: Vec<PortCounters>,
    pub vnis: Vec<VniCounters>,
    pub drops: [Counter; DropReason::COUNT],
    pub peers: Vec<PeerCounters>,
    pub routed_packets: Counter,
    /// Frames the switch forwarded by a flow's cached decision.
    pub fwd_cache_hits: Counter,
    /// Of those, frames the express lane took from the wire to encap or
    /// delivery in one pass (`engine/express.rs`).
    pub express_hits: Counter,
    pub icmp_errors_sent: Counter,
    pub arp_replies_sent: Counter,
    pub arp_requests_sent: Counter,
    /// ARP to the gateway that it learned from and consumed (replies).
    pub arp_consumed: Counter,
    pub host_stack_rx: Counter,
    pub identity_stamped: Counter,
    /// Announce-only identity packets verified and consumed.
    pub identity_announces: Counter,
    // Gauges published once a second.
    pub fdb_entries: Counter,
    pub neighbors: Counter,
    pub flows: Counter,
    pub flow_table: FlowTableCounters,
    // Cycle accounting, as OVS's pmd-stats-show.
    pub busy_cycles: Counter,
    pub idle_cycles: Counter,
    pub busy_polls: Counter,
    pub idle_polls: Counter,
    pub packets: Counter,
    /// The flow table as last published: plain copies written by the worker
    /// (`try_lock`, never waits, never allocates: capacity reserved), turned
    /// into text by the control thread.
    pub flow_rows: std::sync::Mutex<Vec<crate::flows::RawFlowRow>>,
    /// Flow-log events handed to the writer, and events counted instead
    /// (over the rate budget, or the writer behind); mirrored once a second.
    pub flow_log_events: Counter,
    pub flow_log_dropped: Counter,
    /// The FDB and the gateway's neighbors as last published (the same way).
    pub fdb_rows: std::sync::Mutex<Vec<crate::tables_dump::RawFdbRow>>,
    pub neighbor_rows: std::sync::Mutex<Vec<crate::tables_dump::RawNeighborRow>>,
    pub policy: PolicyCounters,
}

impl WorkerCounters {
    pub fn new(ports: usize, vnis: usize, peers: usize) -> WorkerCounters {
        WorkerCounters {
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
            vnis: (0..vnis).map(|_| VniCounters::default()).collect(),
            drops: std::array::from_fn(|_| Counter::default()),
            peers: (0..peers).map(|_| PeerCounters::default()).collect(),
            routed_packets: Counter::default(),
            fwd_cache_hits: Counter::default(),
            express_hits: Counter::default(),
            icmp_errors_sent: Counter::default(),
            arp_replies_sent: Counter::default(),
            arp_requests_sent: Counter::default(),
            arp_consumed: Counter::default(),
            host_stack_rx: Counter::default(),
            identity_stamped: Counter::default(),
            identity_announces: Counter::default(),
            fdb_entries: Counter::default(),
            neighbors: Counter::default(),
            flows: Counter::default(),
            flow_table: FlowTableCounters::default(),
            busy_cycles: Counter::default(),
            idle_cycles: Counter::default(),
            busy_polls: Counter::default(),
            idle_polls: Counter::default(),
            packets: Counter::default(),
            flow_rows: std::sync::Mutex::new(Vec::with_capacity(crate::flows::MAX_ROWS)),
            flow_log_events: Counter::default(),
            flow_log_dropped: Counter::default(),
            fdb_rows: std::sync::Mutex::new(Vec::with_capacity(crate::tables_dump::MAX_TABLE_ROWS)),
            neighbor_rows: std::sync::Mutex::new(Vec::with_capacity(
                crate::tables_dump::MAX_TABLE_ROWS,
            )),
            policy: PolicyCounters::new(),
        }
    }

    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}

/// Every worker's counters, shared with the control thread.
#[derive(Debug)]
pub struct Counters {
    pub workers: Vec<WorkerCounters>,
}

impl Counters {
    pub fn new(ports: usize, vnis: usize, peers: usize, workers: usize) -> Counters {
        Counters {
            workers: (0..workers.max(1))
                .map(|_| WorkerCounters::new(ports, vnis, peers))
                .collect(),
        }
    }

    /// The sum of `f` over every worker.
    pub fn sum(&self, f: impl Fn(&WorkerCounters) -> u64) -> u64 {
        self.workers.iter().map(f).sum()
    }

    /// Packets dropped for `reason`, all workers.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.sum(|w| w.drops[reason as usize].get())
    }

    pub fn drops_total(&self) -> u64 {
        self.sum(WorkerCounters::drops_total)
    }
}

/// What the worker publishes about each peer VTEP once a second.
#[derive(Debug, Default)]
pub struct PeerCounters {
    /// Next-hop MAC as 48 bits, plus bit 63 when resolved.
    pub next_hop: Counter,
    pub up: Counter,
    /// Liveness as the engine last saw it: 0 unknown, 1 up, 2 down.
    pub state: Counter,
    /// Times the liveness changed.
    pub state_changes: Counter,
    pub probes_sent: Counter,
    pub replies: Counter,
    pub rx_packets: Counter,
    pub tx_packets: Counter,
}

impl PeerCounters {
    pub fn next_hop_mac(&self) -> Option<overlay::MacAddr> {
        let v = self.next_hop.get();
        if v >> 63 == 0 {
            return None;
        }
        let b = v.to_be_bytes();
        Some(overlay::MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    pub fn set_next_hop_mac(&self, mac: Option<overlay::MacAddr>) {
        let v = match mac {
            None => 0,
            Some(m) => {
                let b = m.0;
                (1u64 << 63) | u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
            }
        };
        self.next_hop.set(v);
    }
}

/// Per-worker figures derived for display: cycles per packet as OVS shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerReport {
    pub id: usize,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub busy_polls: u64,
    pub idle_polls: u64,
    pub packets: u64,
    /// Busy share of all cycles, percent.
    pub busy_pct: f64,
    /// Busy cycles divided by packets: processing cycles per packet.
    pub cycles_per_packet: f64,
}

impl WorkerReport {
    pub fn from_counters(id: usize, w: &WorkerCounters) -> WorkerReport {
        let busy = w.busy_cycles.get();
        let idle = w.idle_cycles.get();
        let packets = w.packets.get();
        let total = busy + idle;
        WorkerReport {
            id,
            busy_cycles: busy,
            idle_cycles: idle,
            busy_polls: w.busy_polls.get(),
            idle_polls: w.idle_polls.get(),
            packets,
            busy_pct: if total == 0 {
                0.0
            } else {
                busy as f64 * 100.0 / total as f64
            },
            cycles_per_packet: if packets == 0 {
                0.0
            } else {
                busy as f64 / packets as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_are_unique_and_index_counters() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        let c = Counters::new(1, 1, 1, 2);
        c.workers[0].count_drop(DropReason::HostStackBusy);
        c.workers[1].count_drop(DropReason::HostStackBusy);
        assert_eq!(
            c.workers[0].drops[DropReason::HostStackBusy as usize].get(),
            1
        );
        assert_eq!(c.drop_count(DropReason::HostStackBusy), 2);
        assert_eq!(c.drops_total(), 2);
    }

    #[test]
    fn cycles_per_packet() {
        let w = WorkerCounters::new(0, 0, 0);
        w.busy_cycles.add(1000);
        w.idle_cycles.add(3000);
        w.packets.add(10);
        let r = WorkerReport::from_counters(0, &w);
        assert_eq!(r.cycles_per_packet, 100.0);
        assert_eq!(r.busy_pct, 25.0);
    }
}
