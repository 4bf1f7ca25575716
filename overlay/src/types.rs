//! Small value types shared by the wire views, the config and the engine.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

/// An IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Build from the first six bytes of `b`; `None` when shorter.
    pub fn from_bytes(b: &[u8]) -> Option<MacAddr> {
        let a: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(MacAddr(a))
    }
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
    /// Group bit set: broadcast or multicast.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    pub const fn is_broadcast(&self) -> bool {
        u64::from_be_bytes([
            0, 0, self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5],
        ]) == 0xffff_ffff_ffff
    }
    /// A unicast address that can be learned (not zero, not group).
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != MacAddr::ZERO
    }
    /// The address as the low 48 bits of a word, first byte highest: one
    /// register to compare or to pack into a key.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        let m = self.0;
        // A 4-byte and a 2-byte load, not six byte loads.
        let hi = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as u64;
        let lo = u16::from_be_bytes([m[4], m[5]]) as u64;
        (hi << 16) | lo
    }
    /// The inverse of [`MacAddr::to_u64`] (bits above 48 ignored).
    #[inline]
    pub const fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
    /// Destination and source MACs of an Ethernet frame's first 12 bytes,
    /// as [`MacAddr::to_u64`] gives them (two loads, no byte shuffling).
    #[inline]
    pub fn pair_from_frame(hdr: &[u8; 12]) -> (u64, u64) {
        // Two 8-byte loads (the split points are constants).
        let (first, _) = hdr.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let (_, last) = hdr.split_last_chunk::<8>().unwrap_or((&[], &[0; 8]));
        let d = u64::from_be_bytes(*first);
        let s = u64::from_be_bytes(*last);
        (d >> 16, s & 0xffff_ffff_ffff)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a textual value did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Mac,
    Vni,
    Cidr,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Mac => {
                "invalid MAC address, expected six hex pairs such as 02:00:00:00:00:01"
            }
            ParseError::Vni => "invalid VNI, expected an integer from 0 to 16777215",
            ParseError::Cidr => {
                "invalid CIDR, expected ADDRESS/PREFIX such as 10.1.0.0/24 (prefix 0..=32)"
            }
        })
    }
}

impl std::error::Error for ParseError {}

impl FromStr for MacAddr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or(ParseError::Mac)?;
            if p.len() != 2 {
                return Err(ParseError::Mac);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| ParseError::Mac)?;
        }
        if parts.next().is_some() {
            return Err(ParseError::Mac);
        }
        Ok(MacAddr(out))
    }
}

/// A 24-bit VXLAN network identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Vni(u32);

impl Vni {
    pub const MAX: u32 = 0x00ff_ffff;
    /// `None` when `v` does not fit in 24 bits.
    pub const fn new(v: u32) -> Option<Vni> {
        if v <= Self::MAX {
            Some(Vni(v))
        } else {
            None
        }
    }
    /// The low 24 bits of `v`; for wire fields that cannot be wider.
    pub const fn new_masked(v: u32) -> Vni {
        Vni(v & Self::MAX)
    }
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Vni {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u32>()
            .ok()
            .and_then(Vni::new)
            .ok_or(ParseError::Vni)
    }
}

/// An IPv4 address with a prefix length, such as `10.1.0.1/24`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// `None` when `prefix_len > 32`.
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Cidr> {
        if prefix_len > 32 {
            None
        } else {
            Some(Ipv4Cidr { addr, prefix_len })
        }
    }
    pub const fn address(&self) -> Ipv4Addr {
        self.addr
    }
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub const fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len as u32)
        }
    }
    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix_len: self.prefix_len,
        }
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s.split_once('/').ok_or(ParseError::Cidr)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| ParseError::Cidr)?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::Cidr);
        }
        let prefix_len: u8 = p.parse().map_err(|_| ParseError::Cidr)?;
        Ipv4Cidr::new(addr, prefix_len).ok_or(ParseError::Cidr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_words() {
        let m = MacAddr([0x02, 0xab, 0x03, 0x04, 0x05, 0xf6]);
        assert_eq!(m.to_u64(), 0x02ab_0304_05f6);
        assert_eq!(MacAddr::from_u64(m.to_u64() | (0xffff << 48)), m);
        let mut hdr = [0u8; 12];
        hdr[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        hdr[6..].copy_from_slice(&m.0);
        assert_eq!(
            MacAddr::pair_from_frame(&hdr),
            (MacAddr::BROADCAST.to_u64(), m.to_u64())
        );
    }

    #[test]
    fn mac_roundtrip_and_errors() {
        let m: MacAddr = "02:aB:00:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:00:00:00:01");
        assert!(m.is_unicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "zz:00:00:00:00:00",
            "2:00:00:00:00:001",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vni_bounds() {
        assert_eq!("16777215".parse::<Vni>().unwrap().get(), Vni::MAX);
        assert!("16777216".parse::<Vni>().is_err());
        assert!("-1".parse::<Vni>().is_err());
    }

    #[test]
    fn cidr_parse_contains() {
        let c: Ipv4Cidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(c.network().to_string(), "10.1.2.0/24");
        assert!(c.contains("10.1.2.200".parse().unwrap()));
        assert!(!c.contains("10.1.3.1".parse().unwrap()));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "10.1.2/24",
            "10.1.2.3/",
            "10.1.2.3/+1",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }
}
