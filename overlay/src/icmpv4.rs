//! ICMPv4 (RFC 792): echo, destination unreachable (with the RFC 1191
//! next-hop MTU), time exceeded.

use crate::checksum;
use crate::ip::IpProtocol;
use crate::ipv4;
use crate::{be16, put16, Error, Result};
use std::net::Ipv4Addr;

/// An ICMPv4 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    pub const ECHO_REPLY: Message = Message(0);
    pub const DST_UNREACHABLE: Message = Message(3);
    pub const REDIRECT: Message = Message(5);
    pub const ECHO_REQUEST: Message = Message(8);
    pub const TIME_EXCEEDED: Message = Message(11);
    pub const PARAM_PROBLEM: Message = Message(12);

    /// Error messages quote the packet that caused them.
    pub const fn is_error(self) -> bool {
        matches!(self.0, 3 | 5 | 11 | 12)
    }
}

/// Destination unreachable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DstUnreachable(pub u8);

impl DstUnreachable {
    pub const NET_UNREACHABLE: DstUnreachable = DstUnreachable(0);
    pub const HOST_UNREACHABLE: DstUnreachable = DstUnreachable(1);
    pub const PROTO_UNREACHABLE: DstUnreachable = DstUnreachable(2);
    pub const PORT_UNREACHABLE: DstUnreachable = DstUnreachable(3);
    /// Fragmentation needed and DF set; carries the next-hop MTU.
    pub const FRAG_REQUIRED: DstUnreachable = DstUnreachable(4);
    pub const NET_PROHIBITED: DstUnreachable = DstUnreachable(9);
    pub const HOST_PROHIBITED: DstUnreachable = DstUnreachable(10);
    /// Communication administratively prohibited (RFC 1812): policy denial.
    pub const ADMIN_PROHIBITED: DstUnreachable = DstUnreachable(13);
}

/// Time exceeded codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeExceeded(pub u8);

impl TimeExceeded {
    pub const TTL_EXPIRED: TimeExceeded = TimeExceeded(0);
    pub const FRAG_EXPIRED: TimeExceeded = TimeExceeded(1);
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
    pub const UNUSED: Range<usize> = 4..6;
    pub const MTU: Range<usize> = 6..8;
}

/// Length of the header (type, code, checksum and the 4-byte rest).
pub const HEADER_LEN: usize = 8;

/// Most bytes of the offending packet an error quotes, so that the error
/// fits in 576 bytes (RFC 1812 section 4.3.2.3).
pub const MAX_ERROR_QUOTE: usize = 576 - 20 - HEADER_LEN;

/// The part of `ip_packet` to quote in an error message.
pub fn error_quote(ip_packet: &[u8]) -> &[u8] {
    &ip_packet[..ip_packet.len().min(MAX_ERROR_QUOTE)]
}

/// A view over an ICMPv4 message (the buffer ends where the IP payload ends).
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

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
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

    /// Echo identifier (echo request/reply only).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number (echo request/reply only).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ.start)
    }

    /// Next-hop MTU (destination unreachable, fragmentation needed).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MTU.start)
    }

    /// Echo payload, or the quoted packet of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
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

    /// Clear the unused half-word and set the next-hop MTU.
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::UNUSED.start, 0);
        put16(self.buffer.as_mut(), field::MTU.start, v);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Compute and store the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// The ICMPv4 messages the gateway answers or sends.
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
        code: DstUnreachable,
        /// Meaningful with [`DstUnreachable::FRAG_REQUIRED`]; 0 otherwise.
        next_hop_mtu: u16,
        /// The quoted packet: its IP header and at least 8 bytes more.
        data: &'a [u8],
    },
    TimeExceeded {
        code: TimeExceeded,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parse; other types are `Unsupported`, an echo with a nonzero code is
    /// `Malformed`. The checksum is not verified here.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        let inner: &'a T = p.buffer;
        let data = inner.as_ref().get(HEADER_LEN..).ok_or(Error::Truncated)?;
        let code = p.msg_code();
        match p.msg_type() {
            Message::ECHO_REQUEST | Message::ECHO_REPLY if code != 0 => Err(Error::Malformed),
            Message::ECHO_REQUEST => Ok(Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            Message::ECHO_REPLY => Ok(Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            Message::DST_UNREACHABLE => Ok(Repr::DstUnreachable {
                code: DstUnreachable(code),
                next_hop_mtu: p.next_hop_mtu(),
                data,
            }),
            Message::TIME_EXCEEDED => Ok(Repr::TimeExceeded {
                code: TimeExceeded(code),
                data,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. } => data,
        }
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
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

    /// Write the whole message, data and checksum included, into the first
    /// `buffer_len()` bytes; the checksum covers exactly those.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        let buf = p.buffer.as_mut().get_mut(..len).ok_or(Error::Truncated)?;
        let mut q = Packet::new_unchecked(buf);
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                let t = if matches!(self, Repr::EchoRequest { .. }) {
                    Message::ECHO_REQUEST
                } else {
                    Message::ECHO_REPLY
                };
                q.set_msg_type(t);
                q.set_msg_code(0);
                q.set_echo_ident(ident);
                q.set_echo_seq_no(seq_no);
            }
            Repr::DstUnreachable {
                code, next_hop_mtu, ..
            } => {
                q.set_msg_type(Message::DST_UNREACHABLE);
                q.set_msg_code(code.0);
                q.set_next_hop_mtu(next_hop_mtu);
            }
            Repr::TimeExceeded { code, .. } => {
                q.set_msg_type(Message::TIME_EXCEEDED);
                q.set_msg_code(code.0);
                q.set_next_hop_mtu(0);
            }
        }
        q.data_mut().copy_from_slice(self.data());
        q.fill_checksum();
        Ok(())
    }
}

impl Repr<'_> {
    /// Write a whole IPv4 packet carrying this message into `buf`: a
    /// 20-byte header (DF set, ident 0: atomic, RFC 6864) then the message.
    /// Returns the packet length. For the gateway's echo replies and errors.
    pub fn emit_ipv4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        buf: &mut [u8],
    ) -> Result<usize> {
        let ip = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::ICMP,
            payload_len: self.buffer_len(),
            ttl,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        };
        let total = ip.buffer_len() + ip.payload_len;
        let out = buf.get_mut(..total).ok_or(Error::Truncated)?;
        let (hdr, msg) = out.split_at_mut(ip.buffer_len());
        ip.emit(&mut ipv4::Packet::new_unchecked(hdr))?;
        self.emit(&mut Packet::new_unchecked(msg))?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Echo request, ident 0x1234, seq 1, data "ping".
    static ECHO: [u8; 12] = [
        0x08, 0x00, 0x06, 0xfa, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"ping");
        assert!(p.verify_checksum(), "checksum {:#06x}", p.checksum());
    }

    #[test]
    fn parse_emit_echo() {
        let r = Repr::parse(&Packet::new_checked(&ECHO[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"ping"
            }
        );
        let mut b = [0u8; 12];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, ECHO);
        let reply = r.echo_reply().unwrap();
        reply.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REPLY);
        assert!(p.verify_checksum());
        assert!(reply.echo_reply().is_none());
    }

    #[test]
    fn frag_needed() {
        let quoted = [0x45u8; 28];
        let r = Repr::DstUnreachable {
            code: DstUnreachable::FRAG_REQUIRED,
            next_hop_mtu: 1450,
            data: &quoted,
        };
        assert_eq!(r.buffer_len(), 36);
        let mut b = [0xffu8; 40];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(&b[..8], &[3, 4, b[2], b[3], 0, 0, 0x05, 0xaa]);
        assert_eq!(b[36..], [0xff; 4], "nothing written past buffer_len");
        let p = Packet::new_checked(&b[..36]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1450);
        assert_eq!(Repr::parse(&p).unwrap(), r);
        let te = Repr::TimeExceeded {
            code: TimeExceeded::TTL_EXPIRED,
            data: &quoted,
        };
        te.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..36]).unwrap()).unwrap(),
            te
        );
        assert!(Message::TIME_EXCEEDED.is_error() && !Message::ECHO_REPLY.is_error());
    }

    #[test]
    fn whole_ipv4_error_packet() {
        let offending = [0x45u8; 40];
        let r = Repr::TimeExceeded {
            code: TimeExceeded::TTL_EXPIRED,
            data: error_quote(&offending),
        };
        let mut buf = [0u8; 100];
        let gw = Ipv4Addr::new(10, 1, 0, 1);
        let to = Ipv4Addr::new(10, 1, 0, 11);
        let n = r.emit_ipv4(gw, to, 64, &mut buf).unwrap();
        assert_eq!(n, 20 + 8 + 40);
        let ip = ipv4::Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum() && ip.dont_frag());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.protocol()),
            (gw, to, IpProtocol::ICMP)
        );
        let icmp = Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(Repr::parse(&icmp).unwrap(), r);
        assert_eq!(
            r.emit_ipv4(gw, to, 64, &mut buf[..67]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn length_and_kind_edges() {
        assert_eq!(
            Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
        let p = Packet::new_checked(&ECHO[..8]).unwrap();
        assert!(p.data().is_empty());
        let mut b = ECHO;
        b[1] = 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Malformed)
        );
        b[0] = 13; // timestamp
        b[1] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Unsupported)
        );
        let r = Repr::EchoReply {
            ident: 1,
            seq_no: 2,
            data: b"toolong",
        };
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut [0u8; 14][..])),
            Err(Error::Truncated)
        );
        assert_eq!(error_quote(&[0u8; 1000]).len(), MAX_ERROR_QUOTE);
        assert_eq!(error_quote(&[0u8; 10]).len(), 10);
    }

    fn build(kind: u8, a: u16, b: u16, data: &[u8]) -> Repr<'_> {
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
                code: DstUnreachable(a as u8),
                next_hop_mtu: b,
                data,
            },
            _ => Repr::TimeExceeded {
                code: TimeExceeded(a as u8),
                data,
            },
        }
    }

    proptest! {
        #[test]
        fn roundtrip(kind in 0u8..4, a in any::<u16>(), b in any::<u16>(),
                     data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = build(kind, a, b, &data);
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(p.data(), &data[..]);
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
