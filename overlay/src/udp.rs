//! UDP datagrams (RFC 768).

use crate::checksum::{self, PseudoHeader};
use crate::ip::IpProtocol;
use crate::{be16, put16, Error, Result};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The header fits, the length field covers the header and fits in the
    /// buffer (which may be longer).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < field_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Never true for a checked view (the length covers the header); here
    /// for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Verify the checksum over the pseudo-header and the datagram (as
    /// bounded by its length field). A zero checksum means "none" over
    /// IPv4 and passes; over IPv6 it is invalid (RFC 8200 section 8.1).
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return matches!(ph, PseudoHeader::V4 { .. });
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::add(ph.sum(IpProtocol::UDP, u32::from(len)), checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Compute and store the checksum over the datagram as bounded by the
    /// length field. A computed 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let c = !checksum::add(ph.sum(IpProtocol::UDP, u32::from(len)), checksum::sum(data));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parse; the checksum is not verified here (see the crate docs).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.payload().len(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header with a zero checksum; write the payload, then call
    /// `fill_checksum` when one is wanted.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::Malformed)?;
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // Port 49120 -> 53, length 12, no checksum, payload "abcd".
    static PACKET: [u8; 12] = [
        0xbf, 0xe0, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, b'a', b'b', b'c', b'd',
    ];

    fn ph4() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 168, 1, 1),
            dst: Ipv4Addr::new(192, 168, 1, 2),
        }
    }

    fn ph6() -> PseudoHeader {
        PseudoHeader::V6 {
            src: Ipv6Addr::LOCALHOST,
            dst: "2001:db8::1".parse().unwrap(),
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.src_port(), 0xbfe0);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum(&ph4()), "zero checksum passes over IPv4");
        assert!(!p.verify_checksum(&ph6()), "zero checksum fails over IPv6");
    }

    #[test]
    fn checksum_fill_verify() {
        for ph in [ph4(), ph6()] {
            let mut b = PACKET;
            let mut p = Packet::new_unchecked(&mut b[..]);
            p.fill_checksum(&ph);
            assert_ne!(p.checksum(), 0);
            assert!(p.verify_checksum(&ph));
            b[9] ^= 1;
            assert!(!Packet::new_unchecked(&b[..]).verify_checksum(&ph));
        }
        // Known value: computed by hand for ph4 over PACKET.
        let mut b = PACKET;
        Packet::new_unchecked(&mut b[..]).fill_checksum(&ph4());
        let ph = checksum::pseudo_header_v4(
            Ipv4Addr::new(192, 168, 1, 1),
            Ipv4Addr::new(192, 168, 1, 2),
            IpProtocol::UDP,
            12,
        );
        assert_eq!(checksum::add(ph, checksum::sum(&b)), 0xffff);
    }

    #[test]
    fn construct_parse_emit() {
        let r = Repr::parse(&Packet::new_checked(&PACKET[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 0xbfe0,
                dst_port: 53,
                payload_len: 4
            }
        );
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"abcd");
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, PACKET);
    }

    #[test]
    fn length_edges() {
        assert_eq!(
            Packet::new_checked(&PACKET[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..11]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PACKET;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[5] = 8;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.payload().is_empty());
        let mut long = [0u8; 16];
        long[..12].copy_from_slice(&PACKET);
        assert_eq!(Packet::new_checked(&long[..]).unwrap().payload(), b"abcd");
        let big = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 65528,
        };
        assert_eq!(
            big.emit(&mut Packet::new_unchecked(&mut long[..])),
            Err(Error::Malformed)
        );
        let r = Repr {
            payload_len: 0,
            ..big
        };
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut long[..7])),
            Err(Error::Truncated)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(sp in any::<u16>(), dp in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = Repr { src_port: sp, dst_port: dp, payload_len: payload.len() };
            let mut b = vec![0u8; HEADER_LEN + payload.len()];
            r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
            let mut p = Packet::new_unchecked(&mut b[..]);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum(&ph6());
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert!(p.verify_checksum(&ph6()));
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
