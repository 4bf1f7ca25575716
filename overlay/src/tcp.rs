//! TCP segments (RFC 9293), options included.

use crate::checksum::{self, PseudoHeader};
use crate::ip::IpProtocol;
use crate::{be16, be32, put16, put32, Error, Result};
use core::fmt;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFF_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Longest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

/// The nine TCP flag bits as in the low bits of bytes 12-13.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    pub const FIN: Flags = Flags(0x001);
    pub const SYN: Flags = Flags(0x002);
    pub const RST: Flags = Flags(0x004);
    pub const PSH: Flags = Flags(0x008);
    pub const ACK: Flags = Flags(0x010);
    pub const URG: Flags = Flags(0x020);
    pub const ECE: Flags = Flags(0x040);
    pub const CWR: Flags = Flags(0x080);
    pub const NS: Flags = Flags(0x100);
    const MASK: u16 = 0x1ff;

    /// Every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// SYN without ACK: a connection attempt.
    pub const fn is_syn_only(self) -> bool {
        self.0 & (Flags::SYN.0 | Flags::ACK.0) == Flags::SYN.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"];
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A view over a TCP segment. TCP has no length field: the buffer must end
/// where the IP payload ends.
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

    /// The fixed header fits, the data offset is at least 5 and the header
    /// with options fits.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(self.header_len());
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < hl {
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

    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ.start)
    }

    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK.start)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::OFF_FLAGS.start] >> 4) * 4
    }

    pub fn flags(&self) -> Flags {
        Flags(be16(self.buffer.as_ref(), field::OFF_FLAGS.start) & Flags::MASK)
    }

    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW.start)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Raw option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Iterate the options; see [`OptionsIter`].
    pub fn options_iter(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.options())
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Verify the checksum over the pseudo-header and the whole buffer.
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        checksum::add(ph.sum(IpProtocol::TCP, len), checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ.start, v);
    }

    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK.start, v);
    }

    /// Set the header length in bytes (a multiple of 4, 20..=60) and flags.
    pub fn set_header_len_and_flags(&mut self, header_len: u8, flags: Flags) {
        let v = (u16::from((header_len / 4) & 0x0f) << 12) | (flags.0 & Flags::MASK);
        put16(self.buffer.as_mut(), field::OFF_FLAGS.start, v);
    }

    pub fn set_window_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW.start, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT.start, v);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[hl..]
    }

    /// Compute and store the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let c = !checksum::add(ph.sum(IpProtocol::TCP, len), checksum::sum(data));
        self.set_checksum(c);
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// SACK blocks, raw: pairs of big-endian (left, right) u32 edges.
    Sack(&'a [u8]),
    Timestamp {
        tsval: u32,
        tsecr: u32,
    },
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterates options; yields `Err(Malformed)` once and stops on a bad
/// length, and stops after end-of-list. It never reads past its slice.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionsIter<'a> {
    pub const fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter { rest: options }
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let len = match after_kind.first() {
            Some(&l) if l >= 2 && usize::from(l) <= self.rest.len() => usize::from(l),
            _ => {
                self.rest = &[];
                return Some(Err(Error::Malformed));
            }
        };
        let (opt, tail) = self.rest.split_at(len);
        self.rest = tail;
        let data = opt.get(2..).unwrap_or(&[]);
        let parsed = match (kind, data.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(u16::from_be_bytes([data[0], data[1]])),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n.is_multiple_of(8) && n > 0 => TcpOption::Sack(data),
            (8, 8) => TcpOption::Timestamp {
                tsval: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                tsecr: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            },
            (2..=5 | 8, _) => {
                self.rest = &[];
                return Some(Err(Error::Malformed));
            }
            _ => TcpOption::Unknown { kind, data },
        };
        Some(Ok(parsed))
    }
}

/// A TCP header. Options are kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: Flags,
    pub window_len: u16,
    pub urgent_at: u16,
    /// Raw option bytes, a multiple of 4 and at most 40 long.
    pub options: &'a [u8],
    pub payload_len: usize,
}

impl<'a> Repr<'a> {
    /// Parse; the checksum is not verified here (see the crate docs).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        let inner: &'a T = p.buffer;
        let buf: &'a [u8] = inner.as_ref();
        let hl = usize::from(p.header_len());
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window_len: p.window_len(),
            urgent_at: p.urgent_at(),
            options: buf.get(HEADER_LEN..hl).ok_or(Error::Truncated)?,
            payload_len: buf.len() - hl,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Write the header and options with a zero checksum; write the payload,
    /// then call `fill_checksum`. `Malformed` when the options are not a
    /// multiple of 4 or longer than 40 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        if !self.options.len().is_multiple_of(4) || self.options.len() > MAX_OPTIONS_LEN {
            return Err(Error::Malformed);
        }
        let hl = self.buffer_len();
        if p.buffer.as_ref().len() < hl {
            return Err(Error::Truncated);
        }
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_and_flags(hl as u8, self.flags);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent_at);
        p.options_mut().copy_from_slice(self.options);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // SYN 49152 -> 80, seq 0x01020304, MSS 1460, NOP, WS 7, SACK-perm,
    // then EOL padding (options 12 bytes, data offset 8).
    static SYN: [u8; 32] = [
        0xc0, 0x00, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x80, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07, 0x04, 0x02,
        0x00, 0x00,
    ];

    fn ph() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 1, 0, 11),
            dst: Ipv4Addr::new(10, 2, 0, 12),
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (49152, 80));
        assert_eq!(p.seq_number(), 0x0102_0304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), Flags::SYN);
        assert!(p.flags().is_syn_only());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.options().len(), 12);
        assert!(p.payload().is_empty());
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(
            opts,
            vec![
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::EndOfList),
            ]
        );
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", Flags::default()), "-");
    }

    #[test]
    fn construct_parse_emit_checksum() {
        let r = Repr::parse(&Packet::new_checked(&SYN[..]).unwrap()).unwrap();
        assert_eq!(r.options, &SYN[20..]);
        assert_eq!(r.payload_len, 0);
        let mut b = [0u8; 36];
        let r2 = Repr {
            payload_len: 4,
            ..r
        };
        r2.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b[..32], SYN);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.payload_mut().copy_from_slice(b"GET ");
        p.fill_checksum(&ph());
        assert!(p.verify_checksum(&ph()));
        b[35] ^= 0x80;
        assert!(!Packet::new_unchecked(&b[..]).verify_checksum(&ph()));
        let odd = Repr {
            options: &[1, 1, 1],
            ..r
        };
        assert_eq!(
            odd.emit(&mut Packet::new_unchecked(&mut b[..])),
            Err(Error::Malformed)
        );
        let long = Repr {
            options: &[1; 44],
            ..r
        };
        assert_eq!(
            long.emit(&mut Packet::new_unchecked(&mut [0u8; 80][..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut b[..31])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn length_edges() {
        assert_eq!(
            Packet::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&SYN[..31]).unwrap_err(),
            Error::Truncated
        );
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[12] = 0x50;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 12);
    }

    #[test]
    fn options_iterator_edges() {
        fn collect(o: &[u8]) -> Vec<Result<TcpOption<'_>>> {
            OptionsIter::new(o).collect()
        }
        // Length 0, 1 and past the end all end the walk with one error.
        assert_eq!(collect(&[2, 0, 5, 0xb4]), vec![Err(Error::Malformed)]);
        assert_eq!(
            collect(&[1, 99, 1]),
            vec![Ok(TcpOption::NoOperation), Err(Error::Malformed)]
        );
        assert_eq!(collect(&[99]), vec![Err(Error::Malformed)]);
        // Known kind with the wrong length.
        assert_eq!(collect(&[2, 3, 5]), vec![Err(Error::Malformed)]);
        assert_eq!(collect(&[5, 4, 0, 0]), vec![Err(Error::Malformed)]);
        // Unknown kinds carry their data; timestamps and SACK parse.
        assert_eq!(
            collect(&[30, 3, 7, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
            vec![
                Ok(TcpOption::Unknown {
                    kind: 30,
                    data: &[7]
                }),
                Ok(TcpOption::Timestamp { tsval: 1, tsecr: 2 })
            ]
        );
        let sack = [5, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(collect(&sack), vec![Ok(TcpOption::Sack(&sack[2..]))]);
        assert!(collect(&[]).is_empty());
        // Bytes after end-of-list are ignored.
        assert_eq!(collect(&[0, 2, 0]), vec![Ok(TcpOption::EndOfList)]);
    }

    proptest! {
        #[test]
        fn roundtrip(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
                     flags in 0u16..0x200, win in any::<u16>(), urg in any::<u16>(),
                     words in 0usize..=10, fill in any::<u8>(), payload_len in 0usize..32) {
            let opts = vec![fill; words * 4];
            let r = Repr { src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack,
                           flags: Flags(flags), window_len: win, urgent_at: urg,
                           options: &opts, payload_len };
            let mut b = vec![0u8; r.buffer_len() + payload_len];
            r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
            Packet::new_unchecked(&mut b[..]).fill_checksum(&ph());
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert!(p.verify_checksum(&ph()));
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn options_never_panic(data in proptest::collection::vec(any::<u8>(), 0..48)) {
            let n = OptionsIter::new(&data).count();
            prop_assert!(n <= data.len());
        }
    }
}
