//! FQDN egress: the addresses a workload may reach because a DNS answer
//! warden let through to it named them (Cilium's toFQDNs, without a
//! proxy). A policy selector `{ fqdn = "api.example.com" }` matches a
//! destination address that this table holds for the flow's source with
//! that pattern's bit set.
//!
//! Learned from the answers of DNS flows the policy allowed, at the
//! warden of the workload that asked: (source identity, address) -> the
//! FQDN patterns its question name matched, until the record's TTL runs
//! out (at least [`MIN_TTL`] seconds, at most [`MAX_TTL`]). Bounded: the
//! table holds [`FQDN_ENTRIES`] entries allocated at start; when full,
//! expired entries are dropped first, and an answer that still finds no
//! room is not learned (counted): a flood of answers cannot grow it, and
//! an address never learned is simply not allowed by an FQDN rule.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use identity::IdentityId;

/// Learned (source, address) pairs per worker.
pub const FQDN_ENTRIES: usize = 16384;
/// A TTL below this is raised to it (a 0 TTL answer still opens the
/// connection the client makes right after).
pub const MIN_TTL: u32 = 10;
/// A TTL above this is lowered to it.
pub const MAX_TTL: u32 = 86_400;

#[derive(Debug, Clone, Copy)]
struct Entry {
    mask: u64,
    expires: u32,
}

/// The learned addresses of one worker.
#[derive(Debug)]
pub struct FqdnTable {
    map: HashMap<(IdentityId, Ipv4Addr), Entry, foldhash::fast::FixedState>,
    refused: u64,
}

impl Default for FqdnTable {
    fn default() -> Self {
        FqdnTable::new()
    }
}

impl FqdnTable {
    pub fn new() -> FqdnTable {
        FqdnTable {
            map: HashMap::with_capacity_and_hasher(
                FQDN_ENTRIES,
                foldhash::fast::FixedState::with_seed(0xf9d4),
            ),
            refused: 0,
        }
    }

    /// Learn that `src` may reach `addr` by the patterns in `mask` for
    /// `ttl` seconds from `now`. Returns whether it was recorded.
    pub fn learn(
        &mut self,
        src: IdentityId,
        addr: Ipv4Addr,
        mask: u64,
        ttl: u32,
        now: u32,
    ) -> bool {
        if mask == 0 {
            return false;
        }
        let expires = now.saturating_add(ttl.clamp(MIN_TTL, MAX_TTL));
        if let Some(e) = self.map.get_mut(&(src, addr)) {
            // Bits whose answers expired are dropped with the old deadline.
            if e.expires <= now {
                e.mask = 0;
            }
            e.mask |= mask;
            e.expires = e.expires.max(expires);
            return true;
        }
        if self.map.len() >= FQDN_ENTRIES {
            self.map.retain(|_, e| e.expires > now);
        }
        if self.map.len() >= FQDN_ENTRIES {
            self.refused += 1;
            return false;
        }
        self.map.insert((src, addr), Entry { mask, expires });
        true
    }

    /// The FQDN pattern bits `src` may reach `addr` by, now.
    #[inline]
    pub fn mask(&self, src: IdentityId, addr: Ipv4Addr, now: u32) -> u64 {
        match self.map.get(&(src, addr)) {
            Some(e) if e.expires > now => e.mask,
            _ => 0,
        }
    }

    /// After a reload: pattern bit `k` is now bit `to[k]` (None: the
    /// pattern is gone); entries left with no bit go.
    pub fn remap(&mut self, to: &[Option<u32>]) {
        self.map.retain(|_, e| {
            let mut m = 0u64;
            for (k, t) in to.iter().enumerate().take(64) {
                if let (true, Some(t)) = (e.mask & (1 << k) != 0, t) {
                    m |= 1u64.checked_shl(*t).unwrap_or(0);
                }
            }
            e.mask = m;
            m != 0
        });
    }

    /// Drop expired entries (housekeeping).
    pub fn expire(&mut self, now: u32) {
        self.map.retain(|_, e| e.expires > now);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Answers not learned because the table was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: IdentityId = IdentityId(0xa);

    #[test]
    fn learned_addresses_expire_with_their_ttl_and_bits_accumulate() {
        let mut t = FqdnTable::new();
        let a = Ipv4Addr::new(203, 0, 113, 5);
        assert!(t.learn(API, a, 0b01, 60, 100));
        assert_eq!(t.mask(API, a, 150), 0b01);
        assert_eq!(
            t.mask(IdentityId(0xb), a, 150),
            0,
            "another source learned nothing"
        );
        assert!(t.learn(API, a, 0b10, 5, 150));
        assert_eq!(t.mask(API, a, 155), 0b11, "bits add up; TTL floor applies");
        assert_eq!(t.mask(API, a, 160), 0, "expired");
        assert!(t.learn(API, a, 0b10, 30, 170));
        assert_eq!(
            t.mask(API, a, 171),
            0b10,
            "an expired entry's old bits are gone"
        );
        assert!(!t.learn(API, a, 0, 30, 170), "no pattern, nothing learned");
    }

    #[test]
    fn a_full_table_drops_expired_entries_first_then_refuses() {
        let mut t = FqdnTable::new();
        let cap = t.map.capacity();
        for i in 0..FQDN_ENTRIES as u32 {
            assert!(t.learn(API, Ipv4Addr::from(i), 1, 10, 0));
        }
        assert!(
            !t.learn(API, Ipv4Addr::from(u32::MAX), 1, 10, 5),
            "full, nothing expired"
        );
        assert_eq!(t.refused(), 1);
        assert!(
            t.learn(API, Ipv4Addr::from(u32::MAX), 1, 10, 11),
            "expired ones make room"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.map.capacity(), cap, "never grew");
    }
}
