//! ARP (RFC 826). The view reads any hardware/protocol sizes within the
//! buffer; the Repr models only Ethernet/IPv4, the one the gateway answers.

use crate::ethernet::EtherType;
use crate::types::MacAddr;
use crate::{be16, put16, Error, Result};
use std::net::Ipv4Addr;

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u16);

impl Operation {
    pub const REQUEST: Operation = Operation(1);
    pub const REPLY: Operation = Operation(2);
}

/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const ADDRS: usize = 8;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = 28;

/// A view over an ARP packet.
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

    /// The fixed part and the four addresses that `hlen`/`plen` announce
    /// must fit.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::ADDRS {
            return Err(Error::Truncated);
        }
        if b.len() < field::ADDRS + 2 * (self.hlen() + self.plen()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }

    pub fn protocol_type(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), field::PTYPE.start))
    }

    fn hlen(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::HLEN])
    }

    fn plen(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::PLEN])
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> Operation {
        Operation(be16(self.buffer.as_ref(), field::OPER.start))
    }

    /// Whether the sizes are those of Ethernet/IPv4, the only ones the
    /// accessors below that return typed addresses make sense for.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::IPV4
            && self.hlen() == 6
            && self.plen() == 4
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        let s = field::ADDRS;
        &self.buffer.as_ref()[s..s + self.hlen()]
    }

    pub fn source_protocol_addr(&self) -> &[u8] {
        let s = field::ADDRS + self.hlen();
        &self.buffer.as_ref()[s..s + self.plen()]
    }

    pub fn target_hardware_addr(&self) -> &[u8] {
        let s = field::ADDRS + self.hlen() + self.plen();
        &self.buffer.as_ref()[s..s + self.hlen()]
    }

    pub fn target_protocol_addr(&self) -> &[u8] {
        let s = field::ADDRS + 2 * self.hlen() + self.plen();
        &self.buffer.as_ref()[s..s + self.plen()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::HTYPE.start, v);
    }

    pub fn set_protocol_type(&mut self, v: EtherType) {
        put16(self.buffer.as_mut(), field::PTYPE.start, v.0);
    }

    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    pub fn set_operation(&mut self, v: Operation) {
        put16(self.buffer.as_mut(), field::OPER.start, v.0);
    }

    /// Set the four addresses; their sizes must match `hlen`/`plen`.
    fn set_addrs(&mut self, sha: &[u8], spa: &[u8], tha: &[u8], tpa: &[u8]) {
        let mut at = field::ADDRS;
        let b = self.buffer.as_mut();
        for a in [sha, spa, tha, tpa] {
            b[at..at + a.len()].copy_from_slice(a);
            at += a.len();
        }
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4(b: &[u8]) -> Result<Ipv4Addr> {
    let a: [u8; 4] = b.try_into().map_err(|_| Error::Truncated)?;
    Ok(Ipv4Addr::from(a))
}

impl Repr {
    /// Parse; anything other than Ethernet/IPv4 is `Unsupported`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if !p.is_ethernet_ipv4() {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation: p.operation(),
            source_hardware_addr: MacAddr::from_bytes(p.source_hardware_addr())
                .ok_or(Error::Truncated)?,
            source_protocol_addr: ipv4(p.source_protocol_addr())?,
            target_hardware_addr: MacAddr::from_bytes(p.target_hardware_addr())
                .ok_or(Error::Truncated)?,
            target_protocol_addr: ipv4(p.target_protocol_addr())?,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        if p.buffer.as_ref().len() < ETHERNET_IPV4_LEN {
            return Err(Error::Truncated);
        }
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(EtherType::IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_addrs(
            &self.source_hardware_addr.0,
            &self.source_protocol_addr.octets(),
            &self.target_hardware_addr.0,
            &self.target_protocol_addr.octets(),
        );
        Ok(())
    }

    /// The reply to this request from the owner of `target_protocol_addr`
    /// whose MAC is `mac`; `None` when this is not a request.
    pub fn reply(&self, mac: MacAddr) -> Option<Repr> {
        if self.operation != Operation::REQUEST {
            return None;
        }
        Some(Repr {
            operation: Operation::REPLY,
            source_hardware_addr: mac,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // fixed
        0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 10, 1, 0, 11, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 1, 0, 1, // target
    ];

    fn request() -> Repr {
        Repr {
            operation: Operation::REQUEST,
            source_hardware_addr: MacAddr([2, 0, 0, 0, 0, 0x11]),
            source_protocol_addr: Ipv4Addr::new(10, 1, 0, 11),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 1, 0, 1),
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), Operation::REQUEST);
        assert_eq!(p.source_protocol_addr(), &[10, 1, 0, 11]);
        assert_eq!(p.target_protocol_addr(), &[10, 1, 0, 1]);
        assert_eq!(p.target_hardware_addr(), &[0; 6]);
    }

    #[test]
    fn parse_emit_reply() {
        let r = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap()).unwrap();
        assert_eq!(r, request());
        let mut b = [0u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, REQUEST);
        let gw = MacAddr([2, 0x77, 0x64, 0, 0, 100]);
        let rep = r.reply(gw).unwrap();
        assert_eq!(rep.source_hardware_addr, gw);
        assert_eq!(rep.target_protocol_addr, Ipv4Addr::new(10, 1, 0, 11));
        assert!(rep.reply(gw).is_none());
    }

    #[test]
    fn lengths_and_other_kinds() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        // hlen 255 / plen 255 announce 1028 bytes of addresses.
        let mut big = REQUEST;
        big[4] = 255;
        big[5] = 255;
        assert_eq!(Packet::new_checked(&big[..]).unwrap_err(), Error::Truncated);
        // A well-sized packet of another protocol: the view works, Repr refuses.
        let mut other = REQUEST;
        other[2] = 0x86;
        other[3] = 0xdd;
        let p = Packet::new_checked(&other[..]).unwrap();
        assert!(!p.is_ethernet_ipv4());
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
        // hlen 0, plen 0: an 8-byte packet is complete, and not Ethernet/IPv4.
        let mut tiny = [0u8; 8];
        tiny[..4].copy_from_slice(&REQUEST[..4]);
        let p = Packet::new_checked(&tiny[..]).unwrap();
        assert!(p.source_hardware_addr().is_empty());
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
        let mut short = [0u8; 27];
        assert_eq!(
            request().emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::Truncated)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(op in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<u32>(),
                     tha in any::<[u8; 6]>(), tpa in any::<u32>()) {
            let r = Repr {
                operation: Operation(op),
                source_hardware_addr: MacAddr(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: MacAddr(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut b = [0u8; 28];
            r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
