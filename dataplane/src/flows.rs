//! The flow table: each direction of each inner flow, bound to the origin
//! that opened it, with its identities, state and verdict.
//!
//! Flows are attack surface: their keys are chosen by senders, and a flow
//! admits the packets that follow. So:
//! - every entry records its **origin** (the underlay peer, or the local
//!   port and source MAC) and its **egress** (where the forward direction
//!   was sent); the classify stage admits a packet of a known flow only from
//!   that origin, and a reply only from that egress;
//! - flows a policy denies at their first packet are never inserted (the
//!   engine keeps a small ring of recent denials for display instead);
//! - **unestablished** entries (no reply seen yet) sit on a per-origin list,
//!   oldest first. An origin holds at most `quota` of them: its next new
//!   flow evicts its own oldest. A full table evicts the oldest unestablished
//!   entry of the origin holding the most. **Established** entries are never
//!   evicted; only when every entry is established is a new flow refused.
//! - aging walks a bounded slice of slots per call, never the whole table.
//!
//! Storage is a slab of slots (allocated up to the capacity as flows
//! arrive, never beyond) with a keyed-hash index (foldhash, seeded per
//! process: senders choose the keys). A [`FlowRef`] names a slot and its
//! generation, so a stage holding one from earlier in the burst sees
//! "gone" rather than another flow once the slot is reused.

use std::cell::Cell;
use std::collections::HashMap;

use foldhash::fast::RandomState;
use identity::IdentityId;
use overlay::{FlowKey, IpProtocol, MacAddr};
use serde::{Deserialize, Serialize};

/// Flows per worker.
pub const FLOW_CAPACITY: usize = 262_144;
/// An established flow with no packet for this long is forgotten.
pub const IDLE_ESTABLISHED_SECS: u32 = 120;
/// An unestablished flow (no reply yet) is forgotten sooner.
pub const IDLE_UNESTABLISHED_SECS: u32 = 20;
/// Slots the aging walk visits per call.
pub const AGING_SLICE: usize = 2048;
/// Rows `warden flows` shows at most (one publish stays cheap).
pub const MAX_ROWS: usize = 4096;

const NIL: u32 = u32::MAX;
/// Slots of the direct-mapped flow cache (a power of two).
const CACHE_SLOTS: usize = 1024;

const EMPTY_KEY: Key = Key {
    vni: u16::MAX,
    class: FlowClass::Ports,
    flow: FlowKey {
        src: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        dst: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        protocol: IpProtocol(0),
        src_port: 0,
        dst_port: 0,
    },
};

#[inline]
fn cache_slot(key: &Key, hash: u32) -> usize {
    (hash ^ u32::from(key.vni).wrapping_mul(0x9e37_79b9)) as usize & (CACHE_SLOTS - 1)
}

/// What kind of flow a key names: ICMP echo state must admit only echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum FlowClass {
    /// TCP, UDP and other protocols: ports (0 when the protocol has none).
    Ports,
    /// ICMP / ICMPv6 echo request and reply: `src_port` is the identifier.
    IcmpEcho,
    /// Other ICMP that is not an error (timestamp, router solicitation...).
    IcmpOther,
}

/// A flow table key: VNI index, class and 5-tuple, in the direction the
/// packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub vni: u16,
    pub class: FlowClass,
    pub flow: FlowKey,
}

impl std::hash::Hash for Key {
    /// Two or three wide words instead of field by field (enum tags, byte
    /// arrays): the hash runs on every packet that misses the flow cache.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let f = &self.flow;
        let tail = (u64::from(self.vni) << 48)
            | (u64::from(self.class as u8) << 40)
            | (u64::from(f.protocol.0) << 32)
            | (u64::from(f.src_port) << 16)
            | u64::from(f.dst_port);
        match (f.src, f.dst) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
                h.write_u64((u64::from(u32::from(s)) << 32) | u64::from(u32::from(d)));
                h.write_u64(tail);
            }
            (s, d) => {
                h.write_u128(v6_bits(s));
                h.write_u128(v6_bits(d));
                h.write_u64(tail | (1 << 63));
            }
        }
    }
}

fn v6_bits(a: std::net::IpAddr) -> u128 {
    match a {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Key {
    /// The key of the reply direction.
    #[inline]
    pub fn reversed(&self) -> Key {
        Key {
            vni: self.vni,
            class: self.class,
            flow: self.flow.reversed(),
        }
    }
}

/// Where a flow's forward packets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An underlay peer VTEP (peer index).
    Peer(u16),
    /// A local access port and the source MAC the flow was opened from.
    Port { port: u16, mac: MacAddr },
}

/// Where a flow's forward packets were sent; its replies must come from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Not forwarded yet.
    Unknown,
    Peer(u16),
    Port(u16),
    /// Flooded (destination MAC unknown): a reply may come from any segment
    /// of the VNI until a unicast forward names one.
    Flood,
}

impl Egress {
    /// Whether a reply arriving from `origin` comes from where this flow went.
    #[inline]
    pub fn admits(self, origin: Origin) -> bool {
        match (self, origin) {
            (Egress::Peer(a), Origin::Peer(b)) => a == b,
            (Egress::Port(a), Origin::Port { port, .. }) => a == port,
            (Egress::Flood, _) => true,
            _ => false,
        }
    }
}

/// Whether a reply has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// No reply yet: evictable, short idle time, counted against the origin.
    Unestablished,
    /// A reply was seen (this entry is one, or its reverse got one).
    Established,
}

/// How a flow's source identity was obtained, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// An identity header verified from a warden peer.
    Header,
    /// A local workload bound to the port, MAC and IP it sent from.
    LocalPort,
    /// A VXLAN-GBP group id from a trusted kernel VTEP (weaker).
    Gbp,
    /// A (peer VTEP, inner CIDR) map (weaker).
    AddressMap,
    /// Nothing vouched for it.
    Unauthenticated,
    /// Identity is not configured on this warden.
    None,
}

impl IdentitySource {
    pub const fn name(self) -> &'static str {
        match self {
            IdentitySource::Header => "header",
            IdentitySource::LocalPort => "local_port",
            IdentitySource::Gbp => "gbp",
            IdentitySource::AddressMap => "address_map",
            IdentitySource::Unauthenticated => "unauthenticated",
            IdentitySource::None => "none",
        }
    }
}

/// What was decided for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The policy allows it (its rule is in the entry).
    Allow,
    /// The reply direction of a flow this warden forwarded.
    Reply,
    /// A deny that a `monitor` policy did not carry out: forwarded and
    /// counted as `would_deny`.
    WouldDeny,
    /// Decided in `learn` mode: forwarded and recorded.
    Learn,
    /// Refused (only in the recent-denials ring, never in the table).
    Deny,
    /// Refused with a TCP RST or ICMP unreachable to the opener (only in
    /// the recent-denials ring).
    Reject,
    /// Addressed to warden's own gateway address: answered by warden,
    /// reaches no workload.
    Gateway,
    /// Identity is not configured: no policy.
    NoPolicy,
    /// Allowed once, refused by a reloaded policy: its next packets are
    /// dropped (TCP: both ends reset) until the entry ages out.
    Revoked,
}

impl Verdict {
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Reply => "reply",
            Verdict::WouldDeny => "would_deny",
            Verdict::Learn => "learn",
            Verdict::Deny => "deny",
            Verdict::Reject => "reject",
            Verdict::Gateway => "gateway",
            Verdict::NoPolicy => "no_policy",
            Verdict::Revoked => "revoked",
        }
    }
}

/// One direction of one flow. Laid out (`repr(C)`) with what a packet of
/// a known flow reads and writes first (one cache line with the slot's
/// generation and forwarding cache before it), the rest after.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct FlowEntry {
    pub packets: u64,
    pub bytes: u64,
    pub src_identity: IdentityId,
    pub dst_identity: IdentityId,
    /// Slot of its inspection state (`l7flows`) when its rule has an L7
    /// clause (this entry is the client-to-server direction).
    pub l7: u32,
    /// Engine seconds.
    pub last_seen: u32,
    pub egress: Egress,
    pub origin: Origin,
    pub verdict: Verdict,
    /// Decided before the destination's identity was known (egress toward
    /// a workload behind another warden): decided again at the first
    /// reply, when that warden has vouched for it.
    pub recheck: bool,
    pub source: IdentitySource,
    pub state: FlowState,
    /// When this warden last stamped (local origin) or verified a header.
    pub last_header: Option<u32>,
    pub created: u32,
    /// The policy rule that decided (None: the default, or no policy).
    pub rule: Option<policy::RuleId>,
    pub key: Key,
}

impl FlowEntry {
    /// A new, unestablished entry.
    pub fn new(key: Key, origin: Origin, now: u32) -> FlowEntry {
        FlowEntry {
            key,
            origin,
            egress: Egress::Unknown,
            state: FlowState::Unestablished,
            src_identity: IdentityId::UNAUTHENTICATED,
            source: IdentitySource::None,
            dst_identity: IdentityId::UNAUTHENTICATED,
            verdict: Verdict::NoPolicy,
            rule: None,
            recheck: false,
            l7: crate::l7flows::NO_L7,
            packets: 0,
            bytes: 0,
            created: now,
            last_seen: now,
            last_header: None,
        }
    }
}

/// A handle on a slot; stale once the flow is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRef {
    idx: u32,
    gen: u32,
}

impl FlowRef {
    /// No flow.
    pub const NONE: FlowRef = FlowRef { idx: NIL, gen: 0 };

    #[inline]
    pub fn is_none(self) -> bool {
        self.idx == NIL
    }

    /// A distinct handle for tests of tables that key on flows.
    #[cfg(test)]
    pub fn for_tests(n: u32) -> FlowRef {
        FlowRef { idx: n, gen: 1 }
    }
}

/// A forwarding decision the switch cached on a flow entry (see
/// `engine/fwd_cache.rs`): it holds only for frames with the same MACs,
/// in the same VNI, under the same [`FwdStamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fwd {
    /// Destination and source MAC of the frame (`MacAddr::to_u64` bits).
    pub dst: u64,
    pub src: u64,
    pub vni: u16,
    pub action: FwdAction,
    pub stamp: FwdStamp,
    /// The flow's frames need nothing but this decision (classify found
    /// the flow plain: `engine/meta.rs` `PLAIN`), so the express lane may
    /// take them (`engine/express.rs`). Any change to the entry through
    /// [`FlowTable::get_mut`] clears it.
    pub express: bool,
}

/// Where a flow's frames went, as the switch (and the router) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FwdAction {
    /// Nothing cached.
    None,
    /// Switched to a local access port.
    Port(u16),
    /// Switched to a peer VTEP.
    Peer(u16),
    /// Routed into VNI `out_vni` toward next hop MAC `mac` (`to_u64` bits),
    /// which the FDB placed at `to` when this was cached (the stamp's FDB
    /// generation and second keep that answer current).
    Routed {
        out_vni: u16,
        mac: u64,
        to: crate::fdb::Location,
    },
}

/// What a cached decision depends on besides the frame: the FDB's and the
/// router's generations, the config epoch and the engine second (learned
/// entries are refreshed by the uncached path at least once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwdStamp {
    pub fdb: u32,
    pub router: u32,
    pub epoch: u32,
    pub second: u32,
}

impl Fwd {
    pub const NONE: Fwd = Fwd {
        dst: 0,
        src: 0,
        vni: 0,
        action: FwdAction::None,
        stamp: FwdStamp {
            fdb: 0,
            router: 0,
            epoch: 0,
            second: 0,
        },
        express: false,
    };
}

/// One entry of the flow cache in a cache line of its own: a lookup
/// reads one line (52 bytes packed would straddle two most of the time).
#[derive(Debug)]
#[repr(align(64))]
struct CacheEntry(Cell<(Key, FlowRef)>);

/// Cache-line aligned, its generation and forwarding cache in the first
/// line and the entry's per-packet fields in the second (`FlowEntry`).
#[derive(Debug)]
#[repr(C, align(64))]
struct Slot {
    gen: u32,
    /// The switch's cached decision for this flow (`Fwd::NONE`: none).
    fwd: Fwd,
    entry: Option<FlowEntry>,
    /// Links of the origin's unestablished list (NIL at the ends).
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct OriginList {
    head: u32,
    tail: u32,
    count: u32,
}

const EMPTY_LIST: OriginList = OriginList {
    head: NIL,
    tail: NIL,
    count: 0,
};

/// Why a new flow was not inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Every entry is established: nothing may be evicted.
    Full,
    /// The key is already in the table (the caller looks up first).
    Exists,
}

/// Running totals of the table, published by the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub created: u64,
    pub evicted: u64,
    pub expired: u64,
    pub refused: u64,
}

/// The flow table of one worker.
#[derive(Debug)]
pub struct FlowTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<Key, u32, RandomState>,
    capacity: usize,
    quota: u32,
    n_peers: usize,
    origins: Vec<OriginList>,
    established: usize,
    unestablished: usize,
    cursor: usize,
    stats: TableStats,
    /// A direct-mapped cache in front of the index, by the (unkeyed) flow
    /// hash the engine computes anyway for the VXLAN source port: a hit
    /// costs a compare instead of the keyed hash and probe. An attacker who
    /// makes flows collide here only makes them miss (the index answers);
    /// a slot names a flow by generation, so a removed flow never hits.
    cache: Box<[CacheEntry]>,
}

impl FlowTable {
    /// A table of at most `capacity` flows, from `n_peers` underlay peers
    /// and `n_ports` local ports, each holding at most `quota` unestablished
    /// entries.
    pub fn new(capacity: usize, n_peers: usize, n_ports: usize, quota: usize) -> FlowTable {
        let capacity = capacity.max(1);
        FlowTable {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            capacity,
            quota: quota.clamp(1, capacity) as u32,
            n_peers,
            origins: vec![EMPTY_LIST; n_peers + n_ports],
            established: 0,
            unestablished: 0,
            cursor: 0,
            stats: TableStats::default(),
            cache: (0..CACHE_SLOTS)
                .map(|_| CacheEntry(Cell::new((EMPTY_KEY, FlowRef::NONE))))
                .collect(),
        }
    }

    /// The default per-origin quota for a table of `capacity`: a quarter,
    /// so that four flooding origins at most fill it with unestablished
    /// flows, and a fifth still gets in by eviction.
    pub fn default_quota(capacity: usize) -> usize {
        (capacity / 4).max(64)
    }

    /// The origin's list index (peers first, then ports); out of range
    /// (never a valid index) for a peer or port the table was not built
    /// for. Other per-origin tables use the same numbering.
    pub fn origin_slot(&self, o: Origin) -> usize {
        match o {
            Origin::Peer(p) if usize::from(p) < self.n_peers => usize::from(p),
            Origin::Peer(_) => usize::MAX,
            Origin::Port { port, .. } => self.n_peers + usize::from(port),
        }
    }

    /// The flow of `key`, if any.
    #[inline]
    pub fn lookup(&self, key: &Key) -> Option<FlowRef> {
        self.lookup_hashed(key, overlay::flow_hash(&key.flow))
    }

    /// The flow of `key`, given `overlay::flow_hash(&key.flow)`. The
    /// cache hit inline; a miss asks the index out of line.
    #[inline(always)]
    pub fn lookup_hashed(&self, key: &Key, hash: u32) -> Option<FlowRef> {
        let at = cache_slot(key, hash);
        let (k, r) = self.cache[at].0.get();
        if k == *key && self.is_live(r) {
            return Some(r);
        }
        self.lookup_index(key, at)
    }

    /// The cache's second way for `key`, else the index's answer,
    /// remembered in the cache (two ways per set: two flows that share a
    /// set do not evict each other on every packet).
    #[inline(never)]
    fn lookup_index(&self, key: &Key, at: usize) -> Option<FlowRef> {
        let (k, r) = self.cache[at ^ 1].0.get();
        if k == *key && self.is_live(r) {
            return Some(r);
        }
        let idx = *self.index.get(key)?;
        let r = FlowRef {
            idx,
            gen: self.slots[idx as usize].gen,
        };
        self.cache_fill(at, *key, r);
        Some(r)
    }

    /// Remember `key` -> `r` in the cache set of slot `at`: in the first
    /// way unless it holds a live flow, else in the second.
    #[inline]
    fn cache_fill(&self, at: usize, key: Key, r: FlowRef) {
        let (_, first) = self.cache[at].0.get();
        let way = if self.is_live(first) { at ^ 1 } else { at };
        self.cache[way].0.set((key, r));
    }

    #[inline]
    fn is_live(&self, r: FlowRef) -> bool {
        self.slots
            .get(r.idx as usize)
            .is_some_and(|s| s.gen == r.gen && s.entry.is_some())
    }

    #[inline]
    pub fn get(&self, r: FlowRef) -> Option<&FlowEntry> {
        let s = self.slots.get(r.idx as usize)?;
        if s.gen != r.gen {
            return None;
        }
        s.entry.as_ref()
    }

    /// The entry of `r`, to change. Whatever the caller changes, the
    /// flow's frames leave the express lane until classify finds the flow
    /// plain again ([`Fwd::express`]); counting a packet is [`FlowTable::touch`].
    #[inline]
    pub fn get_mut(&mut self, r: FlowRef) -> Option<&mut FlowEntry> {
        let s = self.slots.get_mut(r.idx as usize)?;
        if s.gen != r.gen {
            return None;
        }
        s.fwd.express = false;
        s.entry.as_mut()
    }

    /// Counts a packet of `len` bytes at engine second `now` on flow `r`
    /// if it came from the flow's `origin`, and returns the entry; None
    /// (nothing changed) for a stale handle or another origin. Only the
    /// counters change: cached decisions stay.
    #[inline]
    pub fn touch(&mut self, r: FlowRef, origin: Origin, now: u32, len: u64) -> Option<&FlowEntry> {
        let s = self.slots.get_mut(r.idx as usize)?;
        if s.gen != r.gen {
            return None;
        }
        let e = s.entry.as_mut().filter(|e| e.origin == origin)?;
        e.last_seen = now;
        e.packets += 1;
        e.bytes += len;
        Some(e)
    }

    /// The switch's cached decision for flow `r` (none for a stale handle).
    #[inline]
    pub fn fwd(&self, r: FlowRef) -> Option<&Fwd> {
        let s = self.slots.get(r.idx as usize)?;
        (s.gen == r.gen && s.entry.is_some()).then_some(&s.fwd)
    }

    /// Cache a forwarding decision on flow `r` (ignored for a stale handle).
    #[inline]
    pub fn set_fwd(&mut self, r: FlowRef, fwd: Fwd) {
        if let Some(s) = self.slots.get_mut(r.idx as usize) {
            if s.gen == r.gen && s.entry.is_some() {
                s.fwd = fwd;
            }
        }
    }

    /// Lets flow `r`'s cached decision take the express lane (ignored for
    /// a stale handle).
    #[inline]
    pub fn set_express(&mut self, r: FlowRef) {
        if let Some(s) = self.slots.get_mut(r.idx as usize) {
            if s.gen == r.gen && s.entry.is_some() {
                s.fwd.express = true;
            }
        }
    }

    /// Insert a new unestablished flow, evicting as the module doc says.
    pub fn insert(&mut self, entry: FlowEntry) -> Result<FlowRef, InsertError> {
        let hash = overlay::flow_hash(&entry.key.flow);
        self.insert_hashed(entry, hash)
    }

    /// [`FlowTable::insert`] given `overlay::flow_hash(&entry.key.flow)`
    /// (it places the flow in the cache; a wrong one only costs a miss).
    pub fn insert_hashed(
        &mut self,
        mut entry: FlowEntry,
        hash: u32,
    ) -> Result<FlowRef, InsertError> {
        let o = self.origin_slot(entry.origin);
        let evicts = o < self.origins.len()
            && (self.origins[o].count >= self.quota || self.len() >= self.capacity);
        if evicts || o >= self.origins.len() {
            // Refused before anything is evicted when the key is there.
            if self.index.contains_key(&entry.key) {
                return Err(InsertError::Exists);
            }
            if o >= self.origins.len() {
                return Err(InsertError::Full);
            }
            if self.origins[o].count >= self.quota {
                self.evict_oldest(o);
            }
            if self.len() >= self.capacity {
                let most = (0..self.origins.len())
                    .filter(|&i| self.origins[i].count > 0)
                    .max_by_key(|&i| self.origins[i].count);
                match most {
                    Some(i) => self.evict_oldest(i),
                    None => {
                        self.stats.refused += 1;
                        return Err(InsertError::Full);
                    }
                }
            }
        }
        entry.state = FlowState::Unestablished;
        let key = entry.key;
        // One hash and probe both refuses a present key and places a new one.
        let vacant = match self.index.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => return Err(InsertError::Exists),
            std::collections::hash_map::Entry::Vacant(v) => v,
        };
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    entry: None,
                    fwd: Fwd::NONE,
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        vacant.insert(idx);
        let slot = &mut self.slots[idx as usize];
        slot.entry = Some(entry);
        slot.fwd = Fwd::NONE;
        let r = FlowRef { idx, gen: slot.gen };
        self.link(o, idx);
        self.unestablished += 1;
        self.stats.created += 1;
        self.cache_fill(cache_slot(&key, hash), key, r);
        Ok(r)
    }

    /// Append slot `idx` to origin `o`'s unestablished list (newest last).
    fn link(&mut self, o: usize, idx: u32) {
        let tail = self.origins[o].tail;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.origins[o].head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        self.origins[o].tail = idx;
        self.origins[o].count += 1;
    }

    fn unlink(&mut self, o: usize, idx: u32) {
        let (prev, next) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.origins[o].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.origins[o].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
        self.origins[o].count -= 1;
    }

    fn evict_oldest(&mut self, o: usize) {
        let head = self.origins[o].head;
        if head != NIL {
            self.remove_idx(head);
            self.stats.evicted += 1;
        }
    }

    /// Mark a flow established (a reply was seen): it leaves its origin's
    /// list and is never evicted.
    pub fn establish(&mut self, r: FlowRef) {
        let Some(e) = self.get(r) else { return };
        if e.state == FlowState::Established {
            return;
        }
        let o = self.origin_slot(e.origin);
        self.unlink(o, r.idx);
        if let Some(e) = self.get_mut(r) {
            e.state = FlowState::Established;
        }
        self.unestablished -= 1;
        self.established += 1;
    }

    /// Forget a flow.
    pub fn remove(&mut self, r: FlowRef) {
        if self.get(r).is_some() {
            self.remove_idx(r.idx);
        }
    }

    fn remove_idx(&mut self, idx: u32) {
        let Some(e) = self.slots[idx as usize].entry else {
            return;
        };
        match e.state {
            FlowState::Unestablished => {
                let o = self.origin_slot(e.origin);
                self.unlink(o, idx);
                self.unestablished -= 1;
            }
            FlowState::Established => self.established -= 1,
        }
        self.index.remove(&e.key);
        let s = &mut self.slots[idx as usize];
        s.entry = None;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(idx);
    }

    /// Visit at most `budget` slots from where the last call stopped and
    /// forget the flows idle for longer than their state allows. Returns
    /// how many were forgotten.
    pub fn expire_slice(&mut self, now: u32, budget: usize) -> usize {
        self.expire_slice_with(now, budget, |_| {})
    }

    /// [`FlowTable::expire_slice`], telling `gone` each entry that aged out.
    pub fn expire_slice_with(
        &mut self,
        now: u32,
        budget: usize,
        mut gone_entry: impl FnMut(&FlowEntry),
    ) -> usize {
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let mut gone = 0;
        for _ in 0..budget.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            let idx = self.cursor;
            self.cursor += 1;
            let Some(e) = &self.slots[idx].entry else {
                continue;
            };
            let idle = match e.state {
                FlowState::Established => IDLE_ESTABLISHED_SECS,
                FlowState::Unestablished => IDLE_UNESTABLISHED_SECS,
            };
            if now.saturating_sub(e.last_seen) >= idle {
                gone_entry(e);
                self.remove_idx(idx as u32);
                gone += 1;
            }
        }
        self.stats.expired += gone as u64;
        gone
    }

    /// Forget every flow.
    pub fn clear(&mut self) {
        for idx in 0..self.slots.len() {
            if self.slots[idx].entry.is_some() {
                self.remove_idx(idx as u32);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.established + self.unestablished
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn established(&self) -> usize {
        self.established
    }

    pub fn unestablished(&self) -> usize {
        self.unestablished
    }

    /// Unestablished flows held by `origin`.
    pub fn unestablished_of(&self, origin: Origin) -> usize {
        self.origins
            .get(self.origin_slot(origin))
            .map_or(0, |l| l.count as usize)
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Every live flow.
    pub fn iter(&self) -> impl Iterator<Item = (FlowRef, &FlowEntry)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.entry.as_ref().map(|e| {
                (
                    FlowRef {
                        idx: i as u32,
                        gen: s.gen,
                    },
                    e,
                )
            })
        })
    }
}

/// A flow as the worker publishes it: plain data, copied without
/// allocating; the control thread turns it into a [`FlowRow`].
#[derive(Debug, Clone, Copy)]
pub struct RawFlowRow {
    pub entry: FlowEntry,
    /// Engine seconds at publication.
    pub now: u32,
    /// An inspected flow: the protocol its parser reads, the requests
    /// decided, the last L7 verdict.
    pub l7: Option<(&'static str, u32, crate::l7flows::LastL7)>,
}

/// One flow as `warden flows` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowRow {
    pub vni: u32,
    pub src: String,
    pub dst: String,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub class: FlowClass,
    /// Where the flow came from: a peer address, or "local".
    pub from: String,
    /// The origin in full: `peer ADDRESS` or `port NAME mac MAC`.
    pub origin: String,
    /// Where the forward direction was sent.
    pub egress: String,
    pub state: FlowState,
    pub src_identity: String,
    pub identity_source: String,
    pub dst_identity: String,
    pub verdict: String,
    /// The policy rule that decided (`set#n`, n from 1), `default`, or `-`.
    pub rule: String,
    /// Allowed before the destination's identity was known; decided again
    /// at its first reply.
    pub recheck: bool,
    /// Inspected flows: `PROTO REQUESTS LAST` (`http 3 deny`), else `-`.
    pub l7: String,
    pub packets: u64,
    pub bytes: u64,
    pub age_secs: u32,
    pub idle_secs: u32,
}

impl FlowRow {
    /// Text for a published row; `peer(i)`, `port(i)` and `rule(r)` name
    /// peers, ports and policy rules.
    pub fn from_raw(
        raw: &RawFlowRow,
        vni_id: impl Fn(u16) -> u32,
        peer: impl Fn(u16) -> String,
        port: impl Fn(u16) -> String,
        rule: impl Fn(policy::RuleId) -> String,
    ) -> FlowRow {
        let e = &raw.entry;
        let k = &e.key;
        let (from, origin) = match e.origin {
            Origin::Peer(p) => (peer(p), format!("peer {}", peer(p))),
            Origin::Port { port: p, mac } => {
                ("local".to_string(), format!("port {} mac {mac}", port(p)))
            }
        };
        let egress = match e.egress {
            Egress::Unknown => "-".to_string(),
            Egress::Peer(p) => format!("peer {}", peer(p)),
            Egress::Port(p) => format!("port {}", port(p)),
            Egress::Flood => "flood".to_string(),
        };
        FlowRow {
            vni: vni_id(k.vni),
            src: k.flow.src.to_string(),
            dst: k.flow.dst.to_string(),
            protocol: k.flow.protocol.0,
            src_port: k.flow.src_port,
            dst_port: k.flow.dst_port,
            class: k.class,
            from,
            origin,
            egress,
            state: e.state,
            src_identity: format!("{:08x}", e.src_identity.0),
            identity_source: e.source.name().to_string(),
            dst_identity: format!("{:08x}", e.dst_identity.0),
            verdict: e.verdict.name().to_string(),
            rule: match (e.verdict, e.rule) {
                (Verdict::NoPolicy | Verdict::Reply | Verdict::Gateway, _) => "-".to_string(),
                (_, Some(r)) => rule(r),
                (_, None) => "default".to_string(),
            },
            recheck: e.recheck,
            l7: raw.l7.map_or_else(
                || "-".to_string(),
                |(app, n, last)| format!("{app} {n} {}", last.name()),
            ),
            packets: e.packets,
            bytes: e.bytes,
            age_secs: raw.now.saturating_sub(e.created),
            idle_secs: raw.now.saturating_sub(e.last_seen),
        }
    }
}

/// The class of an ICMP message type, or None for errors (which belong to
/// the flow they quote, never to one of their own).
pub fn icmp_class(protocol: IpProtocol, icmp_type: u8) -> Option<FlowClass> {
    match (protocol, icmp_type) {
        (IpProtocol::ICMP, 0 | 8) | (IpProtocol::ICMPV6, 128 | 129) => Some(FlowClass::IcmpEcho),
        (IpProtocol::ICMP, 3 | 4 | 5 | 11 | 12) | (IpProtocol::ICMPV6, 1..=4) => None,
        _ => Some(FlowClass::IcmpOther),
    }
}

#[cfg(test)]
mod tests;
