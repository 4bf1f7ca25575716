//! The flow table: each direction of each inner flow, with the identities
//! that were established for it, how, and the verdict.
//!
//! Keys are (VNI index, 5-tuple) in the direction the packet travels. An
//! `Inbound` entry is a flow whose source was authenticated (or not) on the
//! way in; an `Outbound` entry is a flow a local workload opened toward a
//! warden peer, and remembers when it was last stamped. The table is sized
//! at start; when full, a new flow is refused (fail closed) and counted.
//! Flows are attacker-chosen, so the table uses a keyed hasher (foldhash
//! seeded per process), not the unkeyed flow hash.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use identity::IdentityId;
use overlay::FlowKey;
use serde::Serialize;

/// How a flow's source identity was obtained, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// An identity header verified from a warden peer (peer index).
    Header,
    /// A local workload bound to the port, MAC and IP it sent from.
    LocalPort,
    /// A VXLAN-GBP group id from a trusted kernel VTEP (weaker).
    Gbp,
    /// A (peer VTEP, inner CIDR) map (weaker).
    AddressMap,
    /// Nothing vouched for it.
    Unauthenticated,
}

impl Verdict {
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Reply => "reply",
        }
    }
}

impl IdentitySource {
    pub const fn name(self) -> &'static str {
        match self {
            IdentitySource::Header => "header",
            IdentitySource::LocalPort => "local_port",
            IdentitySource::Gbp => "gbp",
            IdentitySource::AddressMap => "address_map",
            IdentitySource::Unauthenticated => "unauthenticated",
        }
    }
}

/// What the allow hook decided for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not decided yet: the flow has not reached a local workload.
    Pending,
    Allow,
    Deny,
    /// The reply direction of a flow a local workload opened.
    Reply,
}

/// Which way the flow goes through this warden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Arrived from a peer or a local port; policy was applied here.
    Inbound,
    /// A local workload's flow leaving toward a warden peer (stamped).
    Outbound,
}

/// One direction of one flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowEntry {
    pub direction: Direction,
    pub src_identity: IdentityId,
    pub source: IdentitySource,
    /// Peer index the flow came from or goes to (u16::MAX: local).
    pub peer: u16,
    pub dst_identity: IdentityId,
    pub verdict: Verdict,
    pub packets: u64,
    pub bytes: u64,
    /// Engine seconds.
    pub created: u32,
    pub last_seen: u32,
    /// When this warden last stamped (Outbound) or verified (Inbound) a header.
    pub last_header: Option<u32>,
}

/// One flow as `warden flows` shows it: published by the worker once a
/// second, read by the control thread.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct FlowRow {
    pub vni: u32,
    pub src: String,
    pub dst: String,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Peer address the flow came from, or "local".
    pub from: String,
    pub src_identity: String,
    pub identity_source: String,
    pub dst_identity: String,
    pub verdict: String,
    pub packets: u64,
    pub bytes: u64,
    pub age_secs: u32,
    pub idle_secs: u32,
}

/// Rows are capped so one publish stays cheap.
pub const MAX_ROWS: usize = 4096;

/// A flow table key: VNI index and 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub vni: u16,
    pub flow: FlowKey,
}

/// The flow table of one worker.
#[derive(Debug)]
pub struct FlowTable {
    map: HashMap<Key, FlowEntry, RandomState>,
    capacity: usize,
    idle_secs: u32,
}

/// Result of [`FlowTable::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Inserted,
    Full,
}

impl FlowTable {
    pub fn new(capacity: usize, idle_secs: u32) -> FlowTable {
        FlowTable {
            map: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            capacity,
            idle_secs,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut FlowEntry> {
        self.map.get_mut(key)
    }

    #[inline]
    pub fn get(&self, key: &Key) -> Option<&FlowEntry> {
        self.map.get(key)
    }

    /// Insert or replace; refuses a new key when the table is full.
    pub fn insert(&mut self, key: Key, entry: FlowEntry) -> Insert {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            return Insert::Full;
        }
        self.map.insert(key, entry);
        Insert::Inserted
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn remove(&mut self, key: &Key) {
        self.map.remove(key);
    }

    /// Drop flows idle for longer than the idle timeout (housekeeping).
    pub fn expire(&mut self, now: u32) -> usize {
        let before = self.map.len();
        let idle = self.idle_secs;
        self.map
            .retain(|_, e| now.saturating_sub(e.last_seen) < idle);
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &FlowEntry)> {
        self.map.iter()
    }
}

/// The minimal allow hook: per destination identity, the source identities
/// allowed. Default deny. (The L4-L7 policy engine replaces this.)
#[derive(Debug, Default, Clone)]
pub struct AllowHook {
    /// (destination, source) pairs, sorted for binary search.
    pairs: Vec<(u32, u32)>,
}

impl AllowHook {
    pub fn new(mut pairs: Vec<(IdentityId, IdentityId)>) -> AllowHook {
        let mut v: Vec<(u32, u32)> = pairs.drain(..).map(|(d, s)| (d.0, s.0)).collect();
        v.sort_unstable();
        v.dedup();
        AllowHook { pairs: v }
    }

    #[inline]
    pub fn allows(&self, src: IdentityId, dst: IdentityId) -> bool {
        self.pairs.binary_search(&(dst.0, src.0)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlay::IpProtocol;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(sport: u16) -> Key {
        Key {
            vni: 0,
            flow: FlowKey {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                protocol: IpProtocol::TCP,
                src_port: sport,
                dst_port: 80,
            },
        }
    }

    fn entry(now: u32) -> FlowEntry {
        FlowEntry {
            direction: Direction::Inbound,
            src_identity: IdentityId(7),
            source: IdentitySource::Header,
            peer: 0,
            dst_identity: IdentityId(9),
            verdict: Verdict::Allow,
            packets: 0,
            bytes: 0,
            created: now,
            last_seen: now,
            last_header: Some(now),
        }
    }

    #[test]
    fn bounded_and_ages() {
        let mut t = FlowTable::new(2, 10);
        assert_eq!(t.insert(key(1), entry(0)), Insert::Inserted);
        assert_eq!(t.insert(key(2), entry(5)), Insert::Inserted);
        assert_eq!(t.insert(key(3), entry(5)), Insert::Full);
        assert_eq!(
            t.insert(key(2), entry(6)),
            Insert::Inserted,
            "replace is fine"
        );
        assert_eq!(t.expire(12), 1);
        assert!(t.get(&key(1)).is_none());
        assert!(t.get(&key(2)).is_some());
    }

    #[test]
    fn allow_hook_is_default_deny_and_directional() {
        let h = AllowHook::new(vec![(IdentityId(9), IdentityId(7))]);
        assert!(h.allows(IdentityId(7), IdentityId(9)));
        assert!(!h.allows(IdentityId(9), IdentityId(7)));
        assert!(!h.allows(IdentityId::UNAUTHENTICATED, IdentityId(9)));
    }
}
