//! The internet checksum (RFC 1071): full sums over buffers, pseudo-header
//! sums for UDP/TCP/ICMPv6, and incremental updates (RFC 1624) so that the
//! fast path can patch a TTL or a length without re-reading the header.
//!
//! Conventions: a *sum* is the folded 16-bit one's-complement sum, not yet
//! inverted; a *checksum* is the inverted sum as it sits on the wire.

use crate::ip::IpProtocol;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Fold a wide one's-complement accumulator to 16 bits. Works for any
/// accumulator because 2^16 = 1 (mod 0xffff).
#[inline(always)]
pub const fn fold(mut acc: u64) -> u16 {
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc = (acc >> 16) + (acc & 0xffff);
    acc = (acc >> 16) + (acc & 0xffff);
    acc as u16
}

/// One's-complement add of two 16-bit sums.
#[inline(always)]
pub const fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// The folded one's-complement sum of `data` read as big-endian 16-bit
/// words, an odd trailing byte padded with zero.
///
/// Adds native-endian 32-bit words into a 64-bit accumulator (no carry
/// handling needed below 2^32 words, i.e. 16 GiB) and swaps the bytes of
/// the folded result on little-endian machines: the one's-complement sum
/// is byte-order independent (RFC 1071 section 2.B).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        let mut w = [0u8; 16];
        w.copy_from_slice(c);
        let x = u128::from_ne_bytes(w);
        acc += u64::from(x as u32)
            + u64::from((x >> 32) as u32)
            + u64::from((x >> 64) as u32)
            + u64::from((x >> 96) as u32);
    }
    let mut words = chunks.remainder().chunks_exact(4);
    for c in &mut words {
        let mut w = [0u8; 4];
        w.copy_from_slice(c);
        acc += u64::from(u32::from_ne_bytes(w));
    }
    // Up to 3 bytes left: zero padding on the right, in memory order, is
    // RFC 1071's odd-byte rule whatever the machine's byte order.
    let tail = match *words.remainder() {
        [a] => [a, 0, 0, 0],
        [a, b] => [a, b, 0, 0],
        [a, b, c] => [a, b, c, 0],
        _ => [0; 4],
    };
    acc += u64::from(u32::from_ne_bytes(tail));
    let folded = fold(acc);
    if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    }
}

/// [`sum`] of an option-less IPv4 header: five 32-bit loads, no loop
/// (decap verifies one per received packet).
#[inline(always)]
pub fn sum_ipv4_header(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let folded = fold(w(0) + w(4) + w(8) + w(12) + w(16));
    if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    }
}

/// The checksum of `data` as written on the wire: the inverted sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Sum of the IPv4 pseudo-header (RFC 768/793).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, len: u32) -> u16 {
    let acc = u64::from(u32::from(src))
        + u64::from(u32::from(dst))
        + u64::from(protocol.0)
        + u64::from(len);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: IpProtocol, len: u32) -> u16 {
    let mut acc = u64::from(protocol.0) + u64::from(len);
    for a in [u128::from(src), u128::from(dst)] {
        for i in 0..4 {
            acc += u64::from((a >> (32 * i)) as u32);
        }
    }
    fold(acc)
}

/// The addresses that an upper-layer checksum covers. UDP, TCP and ICMPv6
/// views take one of these to verify or fill their checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PseudoHeader {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl PseudoHeader {
    /// The pseudo-header sum for `protocol` and an upper-layer length `len`.
    #[inline]
    pub fn sum(&self, protocol: IpProtocol, len: u32) -> u16 {
        match *self {
            PseudoHeader::V4 { src, dst } => pseudo_header_v4(src, dst, protocol, len),
            PseudoHeader::V6 { src, dst } => pseudo_header_v6(src, dst, protocol, len),
        }
    }
}

/// Incremental update (RFC 1624, eqn. 3) of `old_csum` when one 16-bit
/// word of the covered data changes from `old_word` to `new_word`:
/// `HC' = ~(~HC + ~m + m')`.
#[inline(always)]
pub const fn update_u16(old_csum: u16, old_word: u16, new_word: u16) -> u16 {
    !fold(!old_csum as u64 + !old_word as u64 + new_word as u64)
}

/// Incremental update for a 32-bit field (an address, a sequence number)
/// aligned on a 16-bit boundary of the covered data.
#[inline(always)]
pub const fn update_u32(old_csum: u16, old: u32, new: u32) -> u16 {
    let acc = !old_csum as u64
        + (!(old >> 16) & 0xffff) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook RFC 1071 loop, the reference for the fast version.
    fn naive_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
            acc = (acc & 0xffff) + (acc >> 16);
            i += 2;
        }
        if i < data.len() {
            acc += u32::from(data[i]) << 8;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&d), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
    }

    #[test]
    fn known_ipv4_header() {
        // A real header; its checksum field (b8 61) makes the total 0xffff.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(sum(&h), 0xffff);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let s4 = Ipv4Addr::new(10, 0, 0, 1);
        let d4 = Ipv4Addr::new(192, 168, 255, 254);
        let mut b = Vec::new();
        b.extend_from_slice(&s4.octets());
        b.extend_from_slice(&d4.octets());
        b.extend_from_slice(&[0, 17, 0x05, 0xdc]);
        assert_eq!(
            pseudo_header_v4(s4, d4, IpProtocol::UDP, 1500),
            naive_sum(&b)
        );

        let s6: Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let d6: Ipv6Addr = "fe80::ffff:1".parse().unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(&s6.octets());
        b.extend_from_slice(&d6.octets());
        b.extend_from_slice(&70000u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            pseudo_header_v6(s6, d6, IpProtocol::ICMPV6, 70000),
            naive_sum(&b)
        );
    }

    #[test]
    fn incremental_ttl_decrement() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let c = update_u16(0xb861, old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(sum(&h), 0xffff);
    }

    fn put(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    proptest! {
        #[test]
        fn fast_sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..300),
                                  skip in 0usize..8) {
            let s = skip.min(data.len());
            prop_assert_eq!(sum(&data[s..]), naive_sum(&data[s..]));
        }

        #[test]
        fn ipv4_header_sum_matches_sum(h in any::<[u8; 20]>()) {
            prop_assert_eq!(sum_ipv4_header(&h), sum(&h));
        }

        #[test]
        fn update_u16_matches_recompute(mut data in proptest::collection::vec(any::<u8>(), 2..64),
                                        idx in any::<prop::sample::Index>(), new in any::<u16>()) {
            // Even length, so that the appended checksum is word-aligned.
            data.truncate(data.len() & !1);
            let words = data.len() / 2;
            let at = idx.index(words) * 2;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            put(&mut data, at, new);
            let inc = update_u16(before, old, new);
            // Both encodings of zero (0x0000 / 0xffff) verify the same way.
            let full = checksum(&data);
            prop_assert!(inc == full || (inc | full) == 0xffff && (inc & full) == 0,
                         "inc {inc:#x} full {full:#x}");
            // And the patched checksum verifies when stored in the data.
            let mut with = data.clone();
            with.extend_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(sum(&with), 0xffff);
        }

        #[test]
        fn update_u32_matches_recompute(mut data in proptest::collection::vec(any::<u8>(), 4..64),
                                        idx in any::<prop::sample::Index>(), new in any::<u32>()) {
            data.truncate(data.len() & !1);
            let at = idx.index(data.len() / 2 - 1) * 2;
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let inc = update_u32(before, old, new);
            let mut with = data.clone();
            with.extend_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(sum(&with), 0xffff);
        }

        #[test]
        fn pseudo_v6_matches_naive(s in any::<u128>(), d in any::<u128>(), p in any::<u8>(), len in any::<u32>()) {
            let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
            let mut b = Vec::new();
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, p]);
            prop_assert_eq!(pseudo_header_v6(s, d, IpProtocol(p), len), naive_sum(&b));
        }
    }
}
