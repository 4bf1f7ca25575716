//! IPv6 headers (RFC 8200) and a bounded walk over extension headers.

use crate::ip::IpProtocol;
use crate::{be16, be32, put16, put32, Error, Result};
use std::net::Ipv6Addr;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST.end;

/// Most extension headers [`find_upper_layer`] walks before giving up, so
/// that a packet made of nothing but headers costs a bounded amount.
pub const MAX_EXT_HEADERS: usize = 8;

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap wire input: checks the lengths and that the version is 6.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// The fixed header and the announced payload fit in the buffer.
    /// (Jumbograms, payload length 0 with a jumbo option, are not supported:
    /// they read as an empty payload.)
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn first_word(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }

    /// The payload as bounded by the payload length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walk the extension headers of this packet; the returned offset is
    /// counted from the start of the IPv6 header.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let mut u = find_upper_layer(self.next_header(), self.payload())?;
        u.offset += HEADER_LEN;
        Ok(u)
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version 6, the traffic class and the flow label (low 20 bits).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        put32(self.buffer.as_mut(), field::VER_TC_FLOW.start, w);
    }

    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = v.0;
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// Forwarding step; `None` (untouched) when the hop limit is 0 or 1.
    pub fn decrement_hop_limit(&mut self) -> Option<u8> {
        let h = self.hop_limit();
        if h <= 1 {
            return None;
        }
        self.set_hop_limit(h - 1);
        Some(h - 1)
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// What a fragment header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Offset of this fragment in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

impl FragmentInfo {
    /// The first fragment carries the upper-layer header; others do not.
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// Where the upper-layer header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The first next-header value that is not a walked extension header
    /// (TCP, UDP, ICMPv6, ESP, no-next-header, ...).
    pub protocol: IpProtocol,
    /// Offset of that header (see the function that returned this).
    pub offset: usize,
    /// Set when a fragment header was crossed. With a non-first fragment
    /// the walk stops there: the bytes at `offset` are not a header.
    pub fragment: Option<FragmentInfo>,
}

/// Walk the extension headers (hop-by-hop, routing, fragment, destination
/// options, AH) that start at `data[0]` with type `first`. Returns the
/// upper-layer protocol and its offset within `data`. `Truncated` when a
/// header runs past `data`, `Malformed` for a hop-by-hop header that is not
/// first, `Unsupported` after [`MAX_EXT_HEADERS`] headers. The upper-layer
/// header itself is not checked for length.
pub fn find_upper_layer(first: IpProtocol, data: &[u8]) -> Result<UpperLayer> {
    let mut next = first;
    let mut offset = 0usize;
    let mut fragment = None;
    for i in 0..=MAX_EXT_HEADERS {
        if !next.is_ipv6_extension() {
            return Ok(UpperLayer {
                protocol: next,
                offset,
                fragment,
            });
        }
        if i == MAX_EXT_HEADERS {
            break;
        }
        let hdr = data.get(offset..).ok_or(Error::Truncated)?;
        let (&nh, rest) = hdr.split_first().ok_or(Error::Truncated)?;
        let &len_field = rest.first().ok_or(Error::Truncated)?;
        let len = match next {
            IpProtocol::HOP_BY_HOP if i != 0 => return Err(Error::Malformed),
            IpProtocol::IPV6_FRAG => {
                let f = hdr.get(..8).ok_or(Error::Truncated)?;
                let off_flags = u16::from_be_bytes([f[2], f[3]]);
                let info = FragmentInfo {
                    offset: off_flags & 0xfff8,
                    more: off_flags & 1 != 0,
                    ident: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                };
                fragment = Some(info);
                if !info.is_first() {
                    return Ok(UpperLayer {
                        protocol: IpProtocol(nh),
                        offset: offset + 8,
                        fragment,
                    });
                }
                8
            }
            IpProtocol::AH => (usize::from(len_field) + 2) * 4,
            _ => (usize::from(len_field) + 1) * 8,
        };
        if hdr.len() < len {
            return Err(Error::Truncated);
        }
        offset += len;
        next = IpProtocol(nh);
    }
    Err(Error::Unsupported)
}

/// A fixed IPv6 header; extension headers are part of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header. `Malformed` when the payload length or the flow
    /// label does not fit its field.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = u16::try_from(self.payload_len).map_err(|_| Error::Malformed)?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Malformed);
        }
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // fe80::1 -> ff02::1, next header UDP, hop limit 64, 8 payload bytes,
    // traffic class 0xb8, flow label 0x12345.
    static PACKET: [u8; 48] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 0x11, 0x40, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0x12, 0x34, 0x56, 0x78, 0x00, 0x08, 0x00, 0x00,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: "fe80::1".parse().unwrap(),
            dst_addr: "ff02::1".parse().unwrap(),
            next_header: IpProtocol::UDP,
            payload_len: 8,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &PACKET[40..]);
        let u = p.upper_layer().unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.fragment),
            (IpProtocol::UDP, 40, None)
        );
    }

    #[test]
    fn construct_parse_emit() {
        assert_eq!(
            Repr::parse(&Packet::new_checked(&PACKET[..]).unwrap()).unwrap(),
            repr()
        );
        let mut b = [0u8; 48];
        b[40..].copy_from_slice(&PACKET[40..]);
        repr().emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, PACKET);
        let mut p = Packet::new_unchecked(&mut b[..]);
        assert_eq!(p.decrement_hop_limit(), Some(63));
        p.set_hop_limit(1);
        assert_eq!(p.decrement_hop_limit(), None);
    }

    #[test]
    fn length_edges() {
        assert_eq!(
            Packet::new_checked(&PACKET[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..47]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PACKET;
        b[0] = 0x4b;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = [0u8; 40];
        let big = Repr {
            payload_len: 65536,
            ..repr()
        };
        assert_eq!(
            big.emit(&mut Packet::new_unchecked(&mut b[..])),
            Err(Error::Malformed)
        );
        let fl = Repr {
            flow_label: 0x100000,
            ..repr()
        };
        assert_eq!(
            fl.emit(&mut Packet::new_unchecked(&mut b[..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            repr().emit(&mut Packet::new_unchecked(&mut b[..39])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn extension_walk() {
        // Hop-by-hop (8) -> routing (16) -> AH (12 = (1+2)*4) -> dest opts (8) -> TCP.
        let mut d = Vec::new();
        d.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]);
        d.extend_from_slice(&[51, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        d.extend_from_slice(&[0; 20]);
        let u = find_upper_layer(IpProtocol::HOP_BY_HOP, &d).unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::TCP, 44));
        // Cut inside the AH header.
        assert_eq!(
            find_upper_layer(IpProtocol::HOP_BY_HOP, &d[..30]),
            Err(Error::Truncated)
        );
        assert_eq!(
            find_upper_layer(IpProtocol::HOP_BY_HOP, &d[..1]),
            Err(Error::Truncated)
        );
        assert_eq!(
            find_upper_layer(IpProtocol::HOP_BY_HOP, &[]),
            Err(Error::Truncated)
        );
        // No extension at all: offset 0, even with no data.
        let u = find_upper_layer(IpProtocol::UDP, &[]).unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::UDP, 0));
        // Hop-by-hop after another header.
        assert_eq!(
            find_upper_layer(
                IpProtocol::IPV6_OPTS,
                &[0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0]
            ),
            Err(Error::Malformed)
        );
        // A chain of destination options longer than the bound.
        let mut chain = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            chain.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            find_upper_layer(IpProtocol::IPV6_OPTS, &chain),
            Err(Error::Unsupported)
        );
        // Exactly the bound then UDP is accepted.
        let mut chain = Vec::new();
        for i in 0..MAX_EXT_HEADERS {
            let nh = if i + 1 == MAX_EXT_HEADERS { 17 } else { 60 };
            chain.extend_from_slice(&[nh, 0, 0, 0, 0, 0, 0, 0]);
        }
        let u = find_upper_layer(IpProtocol::IPV6_OPTS, &chain).unwrap();
        assert_eq!(
            (u.protocol, u.offset),
            (IpProtocol::UDP, 8 * MAX_EXT_HEADERS)
        );
    }

    #[test]
    fn fragments() {
        // First fragment: the walk continues into UDP.
        let first = [
            17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let u = find_upper_layer(IpProtocol::IPV6_FRAG, &first).unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::UDP, 8));
        let f = u.fragment.unwrap();
        assert!(f.is_first() && f.more);
        assert_eq!(f.ident, 0xdead_beef);
        // Later fragment, offset 1448: stop right after the fragment header.
        let later = [60, 0, 0x05, 0xa8, 0, 0, 0, 1, 0xff, 0xff];
        let u = find_upper_layer(IpProtocol::IPV6_FRAG, &later).unwrap();
        assert_eq!(u.protocol, IpProtocol::IPV6_OPTS);
        assert_eq!(u.offset, 8);
        assert_eq!(u.fragment.unwrap().offset, 1448);
        assert!(!u.fragment.unwrap().more);
        assert_eq!(
            find_upper_layer(IpProtocol::IPV6_FRAG, &first[..7]),
            Err(Error::Truncated)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(src in any::<u128>(), dst in any::<u128>(), nh in any::<u8>(), len in 0usize..100,
                     hl in any::<u8>(), tc in any::<u8>(), fl in 0u32..0x100000) {
            let r = Repr {
                src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst), next_header: IpProtocol(nh),
                payload_len: len, hop_limit: hl, traffic_class: tc, flow_label: fl,
            };
            let mut b = vec![0u8; HEADER_LEN + len];
            r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
        }

        #[test]
        fn walk_never_panics(first in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(u) = find_upper_layer(IpProtocol(first), &data) {
                prop_assert!(u.offset <= data.len());
            }
        }
    }
}
