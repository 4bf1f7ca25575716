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

/// Longest path or name a record keeps (longer paths are kept as their
/// leading segments plus `**`; longer names are not kept).
pub const L7_TEXT: usize = 64;

/// Bytes of a path or name, fixed size (no allocation when recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text {
    len: u8,
    bytes: [u8; L7_TEXT],
}

impl Text {
    /// `b` if it fits.
    pub fn new(b: &[u8]) -> Option<Text> {
        let mut t = Text {
            len: u8::try_from(b.len()).ok()?,
            bytes: [0; L7_TEXT],
        };
        t.bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(t)
    }

    /// A normalised path: whole if it fits, else its leading segments that
    /// fit followed by `**` (a glob covering the path).
    pub fn path(p: &[u8]) -> Option<Text> {
        if let Some(t) = Text::new(p) {
            return Some(t);
        }
        let cut = p.get(..L7_TEXT - 2)?.iter().rposition(|&b| b == b'/')?;
        let mut v = [0u8; L7_TEXT];
        v[..=cut].copy_from_slice(&p[..=cut]);
        v[cut + 1..cut + 3].copy_from_slice(b"**");
        Text::new(&v[..cut + 3])
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What an inspected flow's request said, as learn records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LearnL7 {
    None,
    /// A known method (its index in `l7::http::Method::ALL`) and the path.
    Http {
        method: u8,
        path: Text,
    },
    Tls {
        name: Text,
    },
    Dns {
        name: Text,
    },
}

impl LearnL7 {
    /// As `warden policy learned` reads it.
    pub fn row(&self) -> Option<L7Row> {
        let text = |t: &Text| String::from_utf8_lossy(t.as_bytes()).into_owned();
        match self {
            LearnL7::None => None,
            LearnL7::Http { method, path } => Some(L7Row::Http {
                method: l7::http::Method::ALL
                    .get(usize::from(*method))
                    .map_or("", |m| std::str::from_utf8(m.as_bytes()).unwrap_or(""))
                    .to_string(),
                path: text(path),
            }),
            LearnL7::Tls { name } => Some(L7Row::Tls {
                server_name: text(name),
            }),
            LearnL7::Dns { name } => Some(L7Row::Dns { name: text(name) }),
        }
    }

    /// (protocol, request) for the flow log: `("http", "GET /path")`.
    pub fn describe(&self) -> (&'static str, String) {
        match self.row() {
            None => ("-", String::new()),
            Some(L7Row::Http { method, path }) => ("http", format!("{method} {path}")),
            Some(L7Row::Tls { server_name }) => ("tls", server_name),
            Some(L7Row::Dns { name }) => ("dns", name),
        }
    }
}

/// One learned (source, destination, protocol, port[, request]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnRecord {
    pub src: LearnEnd,
    pub dst: LearnEnd,
    pub protocol: u8,
    /// Destination port for TCP and UDP, else 0.
    pub port: u16,
    pub l7: LearnL7,
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LearnedRow {
    pub src: EndRow,
    pub dst: EndRow,
    pub protocol: u8,
    pub port: u16,
    /// The request seen, for inspected flows.
    #[serde(default)]
    pub l7: Option<L7Row>,
}

/// A learned request as sent over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum L7Row {
    Http { method: String, path: String },
    Tls { server_name: String },
    Dns { name: String },
}

/// One end as sent over the control socket (an identity by its 32-bit id).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndRow {
    Identity(u32),
    Addr(Ipv4Addr),
    Unknown,
}

impl LearnedRow {
    /// The record as `policy::propose` takes it, identities by their index
    /// in `ids` (the config's document ids); None when an end has neither
    /// a known identity nor an IPv4 address.
    pub fn to_learned_flow(&self, ids: &[u32]) -> Option<policy::LearnedFlow> {
        let end = |e: EndRow| match e {
            EndRow::Identity(id) => ids
                .iter()
                .position(|&x| x == id)
                .map(|i| policy::Peer::Identity(i as u32)),
            EndRow::Addr(a) => Some(policy::Peer::Addr(a)),
            EndRow::Unknown => None,
        };
        Some(policy::LearnedFlow {
            src: end(self.src)?,
            dst: end(self.dst)?,
            proto: self.protocol,
            port: self.port,
            l7: self.l7.as_ref().map(|l| match l {
                L7Row::Http { method, path } => policy::LearnedL7::Http {
                    method: method.clone(),
                    path: path.clone(),
                },
                L7Row::Tls { server_name } => policy::LearnedL7::Tls {
                    server_name: server_name.clone(),
                },
                L7Row::Dns { name } => policy::LearnedL7::Dns { name: name.clone() },
            }),
        })
    }
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
            l7: r.l7.row(),
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
            l7: LearnL7::None,
        }
    }

    #[test]
    fn long_paths_are_kept_as_a_covering_glob() {
        let long = format!("/a/b/{}/c", "x".repeat(80));
        let t = Text::path(long.as_bytes()).expect("kept");
        assert_eq!(t.as_bytes(), b"/a/b/**");
        assert_eq!(Text::path(b"/a").unwrap().as_bytes(), b"/a");
        assert!(Text::new(&[b'n'; 65]).is_none());
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
