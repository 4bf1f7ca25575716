//! ICMPv6 (RFC 4443): echo, destination unreachable, packet too big, time
//! exceeded; and a minimal view of neighbor solicitation/advertisement
//! (RFC 4861).

use crate::checksum::{self, PseudoHeader};
use crate::ip::IpProtocol;
use crate::types::MacAddr;
use crate::{be16, be32, put16, put32, Error, Result};
use std::net::Ipv6Addr;

/// An ICMPv6 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    pub const DST_UNREACHABLE: Message = Message(1);
    pub const PKT_TOO_BIG: Message = Message(2);
    pub const TIME_EXCEEDED: Message = Message(3);
    pub const PARAM_PROBLEM: Message = Message(4);
    pub const ECHO_REQUEST: Message = Message(128);
    pub const ECHO_REPLY: Message = Message(129);
    pub const ROUTER_SOLICIT: Message = Message(133);
    pub const ROUTER_ADVERT: Message = Message(134);
    pub const NEIGHBOR_SOLICIT: Message = Message(135);
    pub const NEIGHBOR_ADVERT: Message = Message(136);
    pub const REDIRECT: Message = Message(137);

    /// Types below 128 are errors that quote the offending packet.
    pub const fn is_error(self) -> bool {
        self.0 < 128
    }
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 4..8;
    pub const RESERVED: Range<usize> = 4..8;
    pub const NA_FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
}

/// Length of the common header (type, code, checksum, 4-byte rest).
pub const HEADER_LEN: usize = 8;
/// Length of an NS/NA without options.
pub const ND_LEN: usize = field::TARGET.end;

/// Neighbor advertisement flags (in byte 4).
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;

/// ND option types that carry a link-layer address.
pub const ND_OPT_SOURCE_LL_ADDR: u8 = 1;
pub const ND_OPT_TARGET_LL_ADDR: u8 = 2;

/// A view over an ICMPv6 message (the buffer ends where the IP payload ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the common header; NS/NA must also hold their target address.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.is_nd() && len < ND_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn is_nd(&self) -> bool {
        matches!(
            self.msg_type(),
            Message::NEIGHBOR_SOLICIT | Message::NEIGHBOR_ADVERT
        )
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ.start)
    }

    /// MTU of a packet-too-big message.
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MTU.start)
    }

    /// NA flags byte (R, S, O in the top bits).
    pub fn na_flags(&self) -> u8 {
        self.buffer.as_ref()[field::NA_FLAGS]
    }

    /// Target address of an NS/NA; `None` for other types, whose checked
    /// length does not cover it.
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        if !self.is_nd() {
            return None;
        }
        let b: [u8; 16] = self.buffer.as_ref().get(field::TARGET)?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    /// ND options of an NS/NA (empty for other types).
    pub fn nd_options(&self) -> &[u8] {
        if !self.is_nd() {
            return &[];
        }
        self.buffer.as_ref().get(ND_LEN..).unwrap_or(&[])
    }

    /// Echo payload or quoted packet: everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Verify the checksum over the IPv6 pseudo-header and the buffer.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let ph = PseudoHeader::V6 { src, dst }.sum(IpProtocol::ICMPV6, len);
        checksum::add(ph, checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, v: Message) {
        self.buffer.as_mut()[field::TYPE] = v.0;
    }

    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT.start, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQ.start, v);
    }

    /// Set the 4-byte word after the checksum (MTU, or reserved/flags).
    pub fn set_rest(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::RESERVED.start, v);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Compute and store the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let ph = PseudoHeader::V6 { src, dst }.sum(IpProtocol::ICMPV6, len);
        let c = !checksum::add(ph, checksum::sum(data));
        self.set_checksum(c);
    }
}

/// The link-layer address from the first ND option of `kind`
/// ([`ND_OPT_SOURCE_LL_ADDR`] / [`ND_OPT_TARGET_LL_ADDR`]). Stops at a
/// zero-length option (invalid per RFC 4861) or the end of the slice.
pub fn nd_ll_addr(mut options: &[u8], kind: u8) -> Option<MacAddr> {
    while let [t, l, ..] = *options {
        let len = usize::from(l) * 8;
        if len == 0 {
            return None;
        }
        let opt = options.get(..len)?;
        if t == kind {
            return MacAddr::from_bytes(opt.get(2..)?);
        }
        options = options.get(len..)?;
    }
    None
}

/// The ICMPv6 messages this crate models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    DstUnreachable {
        code: u8,
        data: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        data: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        data: &'a [u8],
    },
    NeighborSolicit {
        target: Ipv6Addr,
        options: &'a [u8],
    },
    NeighborAdvert {
        /// R, S, O bits as in [`NA_ROUTER`], [`NA_SOLICITED`], [`NA_OVERRIDE`].
        flags: u8,
        target: Ipv6Addr,
        options: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parse; other types are `Unsupported`, a nonzero code on echo or ND
    /// is `Malformed`. The checksum is not verified here.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        let inner: &'a T = p.buffer;
        let buf: &'a [u8] = inner.as_ref();
        let data = buf.get(HEADER_LEN..).ok_or(Error::Truncated)?;
        let code = p.msg_code();
        let t = p.msg_type();
        let needs_zero_code = matches!(
            t,
            Message::ECHO_REQUEST
                | Message::ECHO_REPLY
                | Message::NEIGHBOR_SOLICIT
                | Message::NEIGHBOR_ADVERT
        );
        if needs_zero_code && code != 0 {
            return Err(Error::Malformed);
        }
        let nd = || -> Result<(Ipv6Addr, &'a [u8])> {
            let target: [u8; 16] = buf
                .get(field::TARGET)
                .and_then(|b| b.try_into().ok())
                .ok_or(Error::Truncated)?;
            Ok((Ipv6Addr::from(target), buf.get(ND_LEN..).unwrap_or(&[])))
        };
        Ok(match t {
            Message::ECHO_REQUEST => Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            },
            Message::ECHO_REPLY => Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            },
            Message::DST_UNREACHABLE => Repr::DstUnreachable { code, data },
            Message::PKT_TOO_BIG => Repr::PacketTooBig { mtu: p.mtu(), data },
            Message::TIME_EXCEEDED => Repr::TimeExceeded { code, data },
            Message::NEIGHBOR_SOLICIT => {
                let (target, options) = nd()?;
                Repr::NeighborSolicit { target, options }
            }
            Message::NEIGHBOR_ADVERT => {
                let (target, options) = nd()?;
                Repr::NeighborAdvert {
                    flags: p.na_flags() & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE),
                    target,
                    options,
                }
            }
            _ => return Err(Error::Unsupported),
        })
    }

    pub fn buffer_len(&self) -> usize {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::PacketTooBig { data, .. }
            | Repr::TimeExceeded { data, .. } => HEADER_LEN + data.len(),
            Repr::NeighborSolicit { options, .. } | Repr::NeighborAdvert { options, .. } => {
                ND_LEN + options.len()
            }
        }
    }

    /// The reply to an echo request; `None` for anything else.
    pub fn echo_reply(&self) -> Option<Repr<'a>> {
        match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => Some(Repr::EchoReply {
                ident,
                seq_no,
                data,
            }),
            _ => None,
        }
    }

    /// Write the whole message and its checksum into the first
    /// `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        p: &mut Packet<T>,
    ) -> Result<()> {
        let len = self.buffer_len();
        let buf = p.buffer.as_mut().get_mut(..len).ok_or(Error::Truncated)?;
        let mut q = Packet::new_unchecked(buf);
        let (t, code, rest, tail) = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (Message::ECHO_REQUEST, 0, echo_word(ident, seq_no), data),
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (Message::ECHO_REPLY, 0, echo_word(ident, seq_no), data),
            Repr::DstUnreachable { code, data } => (Message::DST_UNREACHABLE, code, 0, data),
            Repr::PacketTooBig { mtu, data } => (Message::PKT_TOO_BIG, 0, mtu, data),
            Repr::TimeExceeded { code, data } => (Message::TIME_EXCEEDED, code, 0, data),
            Repr::NeighborSolicit { target, options } => {
                q.data_mut()[..16].copy_from_slice(&target.octets());
                (Message::NEIGHBOR_SOLICIT, 0, 0, options)
            }
            Repr::NeighborAdvert {
                flags,
                target,
                options,
            } => {
                q.data_mut()[..16].copy_from_slice(&target.octets());
                let f = flags & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE);
                (Message::NEIGHBOR_ADVERT, 0, u32::from(f) << 24, options)
            }
        };
        q.set_msg_type(t);
        q.set_msg_code(code);
        q.set_rest(rest);
        let start = len - tail.len();
        q.buffer[start..].copy_from_slice(tail);
        q.fill_checksum(src, dst);
        Ok(())
    }
}

fn echo_word(ident: u16, seq_no: u16) -> u32 {
    (u32::from(ident) << 16) | u32::from(seq_no)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }
    fn dst() -> Ipv6Addr {
        "fe80::2".parse().unwrap()
    }

    // Echo request ident 0x1234 seq 7 "hi", checksum for fe80::1 -> fe80::2.
    fn echo_bytes() -> Vec<u8> {
        let mut b = vec![0x80, 0x00, 0, 0, 0x12, 0x34, 0x00, 0x07, b'h', b'i'];
        // Reference checksum by the naive definition.
        let mut ph = Vec::new();
        ph.extend_from_slice(&src().octets());
        ph.extend_from_slice(&dst().octets());
        ph.extend_from_slice(&(b.len() as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        ph.extend_from_slice(&b);
        let c = checksum::checksum(&ph);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn echo_deconstruct_parse_emit() {
        let bytes = echo_bytes();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REQUEST);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 7));
        assert!(p.verify_checksum(src(), dst()));
        assert!(!p.verify_checksum(dst(), "fe80::3".parse().unwrap()));
        assert_eq!(p.target_addr(), None);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 7,
                data: b"hi"
            }
        );
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(src(), dst(), &mut Packet::new_unchecked(&mut b[..]))
            .unwrap();
        assert_eq!(b, bytes);
        assert!(matches!(
            r.echo_reply(),
            Some(Repr::EchoReply { ident: 0x1234, .. })
        ));
    }

    #[test]
    fn neighbor_discovery() {
        let target: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let opt = [ND_OPT_SOURCE_LL_ADDR, 1, 2, 0, 0, 0, 0, 9];
        let ns = Repr::NeighborSolicit {
            target,
            options: &opt,
        };
        let mut b = vec![0u8; ns.buffer_len()];
        ns.emit(src(), dst(), &mut Packet::new_unchecked(&mut b[..]))
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.target_addr(), Some(target));
        assert_eq!(
            nd_ll_addr(p.nd_options(), ND_OPT_SOURCE_LL_ADDR),
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(nd_ll_addr(p.nd_options(), ND_OPT_TARGET_LL_ADDR), None);
        assert!(p.verify_checksum(src(), dst()));
        assert_eq!(Repr::parse(&p).unwrap(), ns);

        let na = Repr::NeighborAdvert {
            flags: NA_SOLICITED | NA_OVERRIDE,
            target,
            options: &[],
        };
        let mut b = vec![0u8; na.buffer_len()];
        na.emit(src(), dst(), &mut Packet::new_unchecked(&mut b[..]))
            .unwrap();
        assert_eq!(b[4], 0x60);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(),
            na
        );
        // An NS cut before the end of its target.
        assert_eq!(Packet::new_checked(&b[..23]).unwrap_err(), Error::Truncated);
        // Bad option lengths end the search without panicking.
        assert_eq!(nd_ll_addr(&[1, 0, 0, 0], 1), None);
        assert_eq!(nd_ll_addr(&[1, 2, 0, 0], 1), None);
        assert_eq!(nd_ll_addr(&[1], 1), None);
    }

    #[test]
    fn errors_and_edges() {
        let quoted = [0x60u8; 48];
        let ptb = Repr::PacketTooBig {
            mtu: 1280,
            data: &quoted,
        };
        let mut b = vec![0u8; ptb.buffer_len()];
        ptb.emit(src(), dst(), &mut Packet::new_unchecked(&mut b[..]))
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.mtu(), 1280);
        assert!(p.msg_type().is_error());
        assert_eq!(Repr::parse(&p).unwrap(), ptb);
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
        let mut bad = b.clone();
        bad[0] = 128;
        bad[1] = 3;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::Malformed)
        );
        bad[0] = 200;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::Unsupported)
        );
        assert_eq!(
            ptb.emit(src(), dst(), &mut Packet::new_unchecked(&mut b[..20])),
            Err(Error::Truncated)
        );
    }

    fn build(kind: u8, a: u16, b: u16, addr: u128, data: &[u8]) -> Repr<'_> {
        match kind {
            0 => Repr::EchoRequest {
                ident: a,
                seq_no: b,
                data,
            },
            1 => Repr::EchoReply {
                ident: a,
                seq_no: b,
                data,
            },
            2 => Repr::DstUnreachable {
                code: a as u8,
                data,
            },
            3 => Repr::PacketTooBig {
                mtu: (u32::from(a) << 16) | u32::from(b),
                data,
            },
            4 => Repr::TimeExceeded {
                code: a as u8,
                data,
            },
            5 => Repr::NeighborSolicit {
                target: Ipv6Addr::from(addr),
                options: data,
            },
            _ => Repr::NeighborAdvert {
                flags: (a as u8) & 0xe0,
                target: Ipv6Addr::from(addr),
                options: data,
            },
        }
    }

    proptest! {
        #[test]
        fn roundtrip(kind in 0u8..7, a in any::<u16>(), b in any::<u16>(), addr in any::<u128>(),
                     data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = build(kind, a, b, addr, &data);
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(src(), dst(), &mut Packet::new_unchecked(&mut buf[..])).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(src(), dst()));
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
