//! What `learn` mode records: one entry per distinct (source, destination,
//! protocol, destination port) of the flows a learning policy forwarded,
//! for `warden policy learned` to turn into an allow-list.
//!
//! Bounded: the table holds [`LEARN_CAPACITY`] records, allocated at start
//! (no allocation when a flow is recorded). When it is full, new records
//! are refused and counted (`policy learn_dropped` in `warden stats`);
//! the proposal then says how many were lost, so an operator never loads
//! a partial allow-list believing it complete. Records are never evicted:
//! what was seen first stays (a flood of spoofed flows cannot push out
//! the real traffic recorded before it).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use identity::IdentityId;
use serde::{Deserialize, Serialize};

/// Records one worker keeps.
pub const LEARN_CAPACITY: usize = 16384;

/// One end of a learned flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LearnEnd {
    /// An authenticated workload (its identity id).
    Identity(IdentityId),
    /// Nothing vouched for it (or not yet known): its address.
    Addr(Ipv4Addr),
    /// Neither an identity nor an IPv4 address (IPv6 without identity).
    Unknown,
}

/// One learned (source, destination, protocol, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnRecord {
    pub src: LearnEnd,
    pub dst: LearnEnd,
    pub protocol: u8,
    /// Destination port for TCP and UDP, else 0.
    pub port: u16,
}

/// The bounded set of records.
#[derive(Debug)]
pub struct LearnTable {
    set: HashSet<LearnRecord, foldhash::fast::FixedState>,
    dropped: u64,
}

impl Default for LearnTable {
    fn default() -> Self {
        LearnTable::new()
    }
}

impl LearnTable {
    pub fn new() -> LearnTable {
        LearnTable {
            set: HashSet::with_capacity_and_hasher(
                LEARN_CAPACITY,
                foldhash::fast::FixedState::with_seed(0x1ea7),
            ),
            dropped: 0,
        }
    }

    /// Record `r`; returns whether it is new. A full table refuses it.
    pub fn record(&mut self, r: LearnRecord) -> bool {
        if self.set.contains(&r) {
            return false;
        }
        if self.set.len() >= LEARN_CAPACITY {
            self.dropped += 1;
            return false;
        }
        self.set.insert(r)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Records refused because the table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn iter(&self) -> impl Iterator<Item = &LearnRecord> {
        self.set.iter()
    }

    pub fn clear(&mut self) {
        self.set.clear();
        self.dropped = 0;
    }
}

/// What the control socket answers to `learned`: every worker's records
/// and how many were refused because a table was full.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LearnedReport {
    pub records: Vec<LearnedRow>,
    pub dropped: u64,
}

/// One record as sent over the control socket.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LearnedRow {
    pub src: EndRow,
    pub dst: EndRow,
    pub protocol: u8,
    pub port: u16,
}

/// One end as sent over the control socket (an identity by its 32-bit id).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndRow {
    Identity(u32),
    Addr(Ipv4Addr),
    Unknown,
}

impl From<&LearnRecord> for LearnedRow {
    fn from(r: &LearnRecord) -> LearnedRow {
        let end = |e: LearnEnd| match e {
            LearnEnd::Identity(i) => EndRow::Identity(i.0),
            LearnEnd::Addr(a) => EndRow::Addr(a),
            LearnEnd::Unknown => EndRow::Unknown,
        };
        LearnedRow {
            src: end(r.src),
            dst: end(r.dst),
            protocol: r.protocol,
            port: r.port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> LearnRecord {
        LearnRecord {
            src: LearnEnd::Identity(IdentityId(1)),
            dst: LearnEnd::Addr(Ipv4Addr::from(i)),
            protocol: 6,
            port: 80,
        }
    }

    #[test]
    fn duplicates_count_once_and_a_full_table_refuses_and_counts() {
        let mut t = LearnTable::new();
        let cap = t.set.capacity();
        assert!(t.record(rec(1)));
        assert!(!t.record(rec(1)));
        for i in 2..=LEARN_CAPACITY as u32 {
            assert!(t.record(rec(i)));
        }
        assert_eq!(t.len(), LEARN_CAPACITY);
        assert!(!t.record(rec(u32::MAX)));
        assert!(!t.record(rec(u32::MAX - 1)));
        assert_eq!(t.dropped(), 2);
        assert!(!t.record(rec(5)), "known records are still known");
        assert_eq!(t.dropped(), 2);
        assert_eq!(
            t.set.capacity(),
            cap,
            "never grew past what start allocated"
        );
    }
}
