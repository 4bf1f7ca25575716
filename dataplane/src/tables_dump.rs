//! `warden fdb` and `warden neighbors`: the learned tables as the worker
//! last published them. Once a second the worker copies at most
//! [`MAX_TABLE_ROWS`] entries of each into vectors whose capacity was
//! reserved at start (`try_lock`, never waits, never allocates), as it does
//! for the flow rows; the control thread names them.

use std::net::Ipv4Addr;

use overlay::MacAddr;
use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::fdb::Location;
use crate::stats::Names;

/// Entries of each table published per worker (the rest is counted).
pub const MAX_TABLE_ROWS: usize = 4096;

/// One FDB entry as the worker copies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFdbRow {
    /// VNI index.
    pub vni: u16,
    pub mac: MacAddr,
    pub location: Location,
    pub is_static: bool,
    pub age_secs: u32,
}

/// One inner neighbor (ARP entry of the L3 gateway) as the worker copies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawNeighborRow {
    /// VNI index.
    pub vni: u16,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub is_static: bool,
    pub age_secs: u32,
}

/// One FDB entry for people and scripts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FdbRow {
    pub vni: u32,
    pub mac: String,
    /// `port NAME` or `peer ADDRESS`.
    pub location: String,
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Seconds since the MAC was last seen (0 for static entries).
    pub age_secs: u32,
}

/// One inner neighbor for people and scripts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NeighborRow {
    pub vni: u32,
    pub ip: String,
    pub mac: String,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub age_secs: u32,
}

/// A table dump: the rows published, and how many entries the tables
/// hold (more than the rows when a worker's table exceeds [`MAX_TABLE_ROWS`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dump<T> {
    pub entries: u64,
    pub rows: Vec<T>,
}

fn vni_id(names: &Names, v: u16) -> u32 {
    names.vnis.get(usize::from(v)).copied().unwrap_or(0)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every worker's published FDB rows, named, sorted by VNI and MAC.
pub fn fdb_rows(names: &Names, c: &Counters) -> Dump<FdbRow> {
    let mut rows: Vec<FdbRow> = Vec::new();
    for w in &c.workers {
        rows.extend(lock(&w.fdb_rows).iter().map(|r| FdbRow {
            vni: vni_id(names, r.vni),
            mac: r.mac.to_string(),
            location: match r.location {
                Location::Port(p) => format!(
                    "port {}",
                    names
                        .ports
                        .get(usize::from(p))
                        .map_or_else(|| format!("#{p}"), Clone::clone)
                ),
                Location::Peer(p) => format!(
                    "peer {}",
                    names
                        .peers
                        .get(usize::from(p))
                        .map_or_else(|| format!("#{p}"), |(a, _)| a.clone())
                ),
            },
            is_static: r.is_static,
            age_secs: if r.is_static { 0 } else { r.age_secs },
        }));
    }
    rows.sort_by(|a, b| (a.vni, &a.mac).cmp(&(b.vni, &b.mac)));
    Dump {
        entries: c.sum(|w| w.fdb_entries.get()),
        rows,
    }
}

/// Every worker's published neighbor rows, named, sorted by VNI and address.
pub fn neighbor_rows(names: &Names, c: &Counters) -> Dump<NeighborRow> {
    let mut rows: Vec<(u32, Ipv4Addr, NeighborRow)> = Vec::new();
    for w in &c.workers {
        rows.extend(lock(&w.neighbor_rows).iter().map(|r| {
            let vni = vni_id(names, r.vni);
            (
                vni,
                r.ip,
                NeighborRow {
                    vni,
                    ip: r.ip.to_string(),
                    mac: r.mac.to_string(),
                    is_static: r.is_static,
                    age_secs: if r.is_static { 0 } else { r.age_secs },
                },
            )
        }));
    }
    rows.sort_by_key(|(v, ip, _)| (*v, *ip));
    Dump {
        entries: c.sum(|w| w.neighbors.get()),
        rows: rows.into_iter().map(|(_, _, r)| r).collect(),
    }
}

/// The text `warden fdb` prints.
pub fn render_fdb(d: &Dump<FdbRow>) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{:<10} {:<18} {:<28} {:<7} {:>8}\n",
        "vni", "mac", "location", "kind", "age s"
    );
    for r in &d.rows {
        let _ = writeln!(
            s,
            "{:<10} {:<18} {:<28} {:<7} {:>8}",
            r.vni,
            r.mac,
            r.location,
            if r.is_static { "static" } else { "learned" },
            if r.is_static {
                "-".to_string()
            } else {
                r.age_secs.to_string()
            }
        );
    }
    let _ = writeln!(s, "{}", shown_line(d.rows.len(), d.entries, "FDB entries"));
    s
}

/// The text `warden neighbors` prints.
pub fn render_neighbors(d: &Dump<NeighborRow>) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{:<10} {:<16} {:<18} {:<7} {:>8}\n",
        "vni", "address", "mac", "kind", "age s"
    );
    for r in &d.rows {
        let _ = writeln!(
            s,
            "{:<10} {:<16} {:<18} {:<7} {:>8}",
            r.vni,
            r.ip,
            r.mac,
            if r.is_static { "static" } else { "learned" },
            if r.is_static {
                "-".to_string()
            } else {
                r.age_secs.to_string()
            }
        );
    }
    let _ = writeln!(s, "{}", shown_line(d.rows.len(), d.entries, "neighbors"));
    s
}

/// "N THINGS", or "N THINGS shown of M in the table" when rows were capped.
pub fn shown_line(shown: usize, total: u64, what: &str) -> String {
    if (shown as u64) < total {
        format!("{shown} {what} shown of {total} in the table (at most {MAX_TABLE_ROWS} per worker are published)")
    } else {
        format!("{shown} {what}")
    }
}
