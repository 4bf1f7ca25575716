//! The forwarding database of the VTEP: (VNI, MAC) -> where the MAC lives.
//!
//! Static entries come from config and never age; learned entries are
//! refreshed by every frame the MAC sends and expire after the VNI's aging
//! time. The table is sized at start and never grows: when it is full, a new
//! MAC is not learned (and is counted), so its frames keep being flooded.

use overlay::MacAddr;
use std::cell::Cell;
use std::collections::HashMap;

use foldhash::fast::RandomState;

/// (VNI index, MAC) packed in one word: a cheap key to hash and compare.
#[inline]
fn key(vni: u16, mac: MacAddr) -> u64 {
    key_bits(vni, mac.to_u64())
}

/// As [`key`], for a MAC given as [`MacAddr::to_u64`] bits.
#[inline]
fn key_bits(vni: u16, mac: u64) -> u64 {
    (u64::from(vni) << 48) | (mac & 0xffff_ffff_ffff)
}

#[inline]
fn key_vni(k: u64) -> u16 {
    (k >> 48) as u16
}

#[inline]
fn key_mac(k: u64) -> MacAddr {
    let b = k.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Where a MAC address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Behind a local access port (port index).
    Port(u16),
    /// Behind a peer VTEP (peer index).
    Peer(u16),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    location: Location,
    /// Seconds (engine clock) when last seen; ignored for static entries.
    last_seen: u32,
    is_static: bool,
}

/// Result of learning one source MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Already known at that location: refreshed.
    Refreshed,
    /// New entry, or a move to another location.
    New,
    /// A static entry says otherwise: not changed.
    Static,
    /// No room left.
    Full,
}

/// The FDB of every VNI, keyed by (VNI index, MAC).
#[derive(Debug)]
pub struct Fdb {
    // Source MACs are chosen by whoever sends, so the hasher is keyed per
    // process (foldhash); SipHash cost a quarter of the pipeline in the bench.
    map: HashMap<u64, Entry, RandomState>,
    capacity: usize,
    /// Aging time in seconds, per VNI index.
    aging: Vec<u32>,
    /// Bumped whenever an entry appears, moves or goes: validates the caches.
    generation: u64,
    /// Last-hit caches (VPP keeps one per decap node): a stream of frames
    /// between the same two MACs learns and looks up the same keys in a row.
    /// Learn: (key, location, second) already refreshed.
    last_learned: Option<(u64, Location, u32)>,
    /// Lookup: (key, answer, second, generation).
    last_lookup: Cell<Option<(u64, Location, u32, u64)>>,
}

impl Fdb {
    /// A table that holds at most `capacity` entries; `aging[v]` is the aging
    /// time of VNI index `v` in seconds.
    pub fn new(capacity: usize, aging: Vec<u32>) -> Fdb {
        Fdb {
            map: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            capacity,
            aging,
            generation: 0,
            last_learned: None,
            last_lookup: Cell::new(None),
        }
    }

    /// Bumped whenever an entry appears, moves or goes (`Fdb::learn`
    /// refreshing a known entry leaves it).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.last_learned = None;
    }

    pub fn insert_static(&mut self, vni: u16, mac: MacAddr, location: Location) {
        self.changed();
        self.map.insert(
            key(vni, mac),
            Entry {
                location,
                last_seen: 0,
                is_static: true,
            },
        );
    }

    /// Remove a static entry (a reload dropped it); learned entries stay.
    pub fn remove_static(&mut self, vni: u16, mac: MacAddr) {
        let k = key(vni, mac);
        if self.map.get(&k).is_some_and(|e| e.is_static) {
            self.map.remove(&k);
            self.changed();
        }
    }

    /// Record that `mac` was seen at `location` in VNI `vni` at time `now` (s).
    #[inline]
    pub fn learn(&mut self, vni: u16, mac: MacAddr, location: Location, now: u32) -> Learned {
        self.learn_bits(vni, mac.to_u64(), location, now)
    }

    /// [`Fdb::learn`] for a MAC given as [`MacAddr::to_u64`] bits (the
    /// switch reads them from the frame so).
    #[inline]
    pub fn learn_bits(&mut self, vni: u16, mac: u64, location: Location, now: u32) -> Learned {
        let k = key_bits(vni, mac);
        if self.last_learned == Some((k, location, now)) {
            return Learned::Refreshed;
        }
        let len = self.map.len();
        let learned = match self.map.get_mut(&k) {
            Some(e) if e.is_static => Learned::Static,
            Some(e) => {
                e.last_seen = now;
                if e.location == location {
                    Learned::Refreshed
                } else {
                    e.location = location;
                    Learned::New
                }
            }
            None if len >= self.capacity => Learned::Full,
            None => {
                self.map.insert(
                    k,
                    Entry {
                        location,
                        last_seen: now,
                        is_static: false,
                    },
                );
                Learned::New
            }
        };
        if learned == Learned::New {
            self.changed();
        }
        if matches!(learned, Learned::Refreshed | Learned::New) {
            self.last_learned = Some((k, location, now));
        }
        learned
    }

    /// Where `mac` lives in `vni`, if known and not expired.
    #[inline]
    pub fn lookup(&self, vni: u16, mac: MacAddr, now: u32) -> Option<Location> {
        self.lookup_bits(vni, mac.to_u64(), now)
    }

    /// [`Fdb::lookup`] for a MAC given as [`MacAddr::to_u64`] bits.
    #[inline]
    pub fn lookup_bits(&self, vni: u16, mac: u64, now: u32) -> Option<Location> {
        let k = key_bits(vni, mac);
        if let Some((ck, loc, t, g)) = self.last_lookup.get() {
            if ck == k && t == now && g == self.generation {
                return Some(loc);
            }
        }
        let e = self.map.get(&k)?;
        if e.is_static || now.saturating_sub(e.last_seen) < self.aging_of(vni) {
            self.last_lookup
                .set(Some((k, e.location, now, self.generation)));
            Some(e.location)
        } else {
            None
        }
    }

    fn aging_of(&self, vni: u16) -> u32 {
        self.aging.get(vni as usize).copied().unwrap_or(300)
    }

    /// Remove learned entries older than their VNI's aging time. Called from
    /// the housekeeping tick, not per packet. Returns how many were removed.
    pub fn expire(&mut self, now: u32) -> usize {
        self.changed();
        let before = self.map.len();
        let aging = &self.aging;
        self.map.retain(|k, e| {
            e.is_static
                || now.saturating_sub(e.last_seen)
                    < aging.get(key_vni(*k) as usize).copied().unwrap_or(300)
        });
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry as (VNI index, MAC, location, static, age s), in no
    /// order (no allocation: the worker publishes from it).
    pub fn iter(&self, now: u32) -> impl Iterator<Item = (u16, MacAddr, Location, bool, u32)> + '_ {
        self.map.iter().map(move |(k, e)| {
            (
                key_vni(*k),
                key_mac(*k),
                e.location,
                e.is_static,
                now.saturating_sub(e.last_seen),
            )
        })
    }

    /// A snapshot for display: (VNI index, MAC, location, static, age s).
    pub fn entries(&self, now: u32) -> Vec<(u16, MacAddr, Location, bool, u32)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(k, e)| {
                (
                    key_vni(*k),
                    key_mac(*k),
                    e.location,
                    e.is_static,
                    now.saturating_sub(e.last_seen),
                )
            })
            .collect();
        v.sort_by_key(|e| (e.0, e.1));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);

    #[test]
    fn learn_lookup_move_and_age() {
        let mut f = Fdb::new(4, vec![10, 10]);
        assert_eq!(f.learn(0, A, Location::Port(1), 100), Learned::New);
        assert_eq!(f.learn(0, A, Location::Port(1), 101), Learned::Refreshed);
        assert_eq!(f.lookup(0, A, 105), Some(Location::Port(1)));
        assert_eq!(f.lookup(1, A, 105), None, "VNIs are separate");
        assert_eq!(
            f.learn(0, A, Location::Peer(0), 102),
            Learned::New,
            "a move"
        );
        assert_eq!(f.lookup(0, A, 111), Some(Location::Peer(0)));
        assert_eq!(f.lookup(0, A, 112), None, "aged out");
        assert_eq!(f.expire(112), 1);
        assert!(f.is_empty());
    }

    #[test]
    fn last_hit_caches_follow_moves_within_one_second() {
        let mut f = Fdb::new(4, vec![10]);
        assert_eq!(f.learn(0, A, Location::Port(1), 7), Learned::New);
        assert_eq!(f.learn(0, A, Location::Port(1), 7), Learned::Refreshed);
        assert_eq!(f.lookup(0, A, 7), Some(Location::Port(1)));
        assert_eq!(f.lookup(0, A, 7), Some(Location::Port(1)), "cached");
        assert_eq!(f.learn(0, A, Location::Peer(2), 7), Learned::New, "a move");
        assert_eq!(f.lookup(0, A, 7), Some(Location::Peer(2)), "cache dropped");
        f.insert_static(0, A, Location::Port(3));
        assert_eq!(f.lookup(0, A, 7), Some(Location::Port(3)));
        assert_eq!(f.learn(0, A, Location::Port(3), 7), Learned::Static);
        assert_eq!(
            f.learn(0, A, Location::Port(3), 7),
            Learned::Static,
            "never cached"
        );
    }

    #[test]
    fn static_entries_win_and_never_age() {
        let mut f = Fdb::new(4, vec![10]);
        f.insert_static(0, A, Location::Peer(3));
        assert_eq!(f.learn(0, A, Location::Port(1), 5), Learned::Static);
        assert_eq!(f.lookup(0, A, 1_000_000), Some(Location::Peer(3)));
        assert_eq!(f.expire(1_000_000), 0);
    }

    #[test]
    fn full_table_refuses_new_macs() {
        let mut f = Fdb::new(1, vec![10]);
        assert_eq!(f.learn(0, A, Location::Port(1), 0), Learned::New);
        let b = MacAddr([2, 0, 0, 0, 0, 0xb]);
        assert_eq!(f.learn(0, b, Location::Port(1), 0), Learned::Full);
        assert_eq!(f.lookup(0, b, 0), None);
    }
}
