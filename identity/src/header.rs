//! The identity header: 28 bytes that carry an authenticated identity
//! inside the workload's own packet (docs/identity.md).
//!
//! ```text
//! 0      type     IPv4 option 0x9E / IPv6 destination option 0x1E
//! 1      length   IPv4: 28 (whole option); IPv6: 26 (option data)
//! 2      ver/flg  version 1 in the high nibble; flags (0x1 = ANNOUNCE)
//! 3      epoch    low 8 bits of the key epoch
//! 4..8   id       identity id of the sending workload
//! 8..12  ts       unix seconds
//! 12..16 nonce    TCP: the segment's sequence number
//! 16..28 tag      first 96 bits of HMAC-SHA256 over the tag input
//! ```
//!
//! [`Packet`] is a view over those 28 bytes and [`Repr`] their parsed form,
//! in the style of the overlay crate; the framing (IPv4 option or IPv6
//! destination option) only changes bytes 0 and 1. [`mint`] and [`verify`]
//! compute the tag; they never allocate.

use overlay::ip::IpProtocol;
use overlay::{Error, FlowKey};
use std::net::IpAddr;

use crate::doc::IdentityId;
use crate::keys::{TagMac, TAG_LEN};

type Result<T> = core::result::Result<T, Error>;

mod field {
    use core::ops::Range;
    pub const KIND: usize = 0;
    pub const LENGTH: usize = 1;
    pub const VER_FLAGS: usize = 2;
    pub const EPOCH: usize = 3;
    pub const ID: Range<usize> = 4..8;
    pub const TIMESTAMP: Range<usize> = 8..12;
    pub const NONCE: Range<usize> = 12..16;
    pub const TAG: Range<usize> = 16..28;
    /// The header bytes the tag covers.
    pub const COVERED: Range<usize> = VER_FLAGS..NONCE.end;
}

/// Length of the header, type and length bytes included.
pub const HEADER_LEN: usize = field::TAG.end;
/// IPv4 option type: RFC 4727 experimental number 30 with the copied flag
/// set, so that fragments keep it.
pub const IPV4_OPTION_TYPE: u8 = 0x9e;
/// IPv6 destination option type: RFC 4727 experimental; the top bits 00
/// tell a node that does not know it to skip it.
pub const IPV6_OPTION_TYPE: u8 = 0x1e;
/// The IPv6 Destination Options header that carries the option: next
/// header, hdr ext len 3, the option, PadN of two bytes.
pub const IPV6_EXT_LEN: usize = 32;
/// Header format version (high nibble of byte 2).
pub const VERSION: u8 = 1;
/// Flag: an announce-only packet (header and first L4 bytes, no payload),
/// sent ahead of a packet that could not grow by the header.
pub const FLAG_ANNOUNCE: u8 = 0x1;
/// Domain label that starts every tag input, so that these keys can never
/// sign anything that means something else.
pub const DOMAIN: &[u8] = b"warden-idh-v1";

const COVERED_LEN: usize = field::COVERED.end - field::COVERED.start;

/// How the header is framed on the wire: only the type and length bytes
/// differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// An IPv4 option; the length byte counts the whole option.
    Ipv4,
    /// An IPv6 destination option; the length byte counts the data only.
    Ipv6,
}

impl Framing {
    pub const fn kind(self) -> u8 {
        match self {
            Framing::Ipv4 => IPV4_OPTION_TYPE,
            Framing::Ipv6 => IPV6_OPTION_TYPE,
        }
    }

    pub const fn length(self) -> u8 {
        match self {
            Framing::Ipv4 => HEADER_LEN as u8,
            Framing::Ipv6 => (HEADER_LEN - 2) as u8,
        }
    }
}

/// A view over the 28 bytes of an identity header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// For emitting into a buffer of at least [`HEADER_LEN`] bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap wire input: the buffer holds at least the 28 header bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The option type byte.
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }

    /// The option length byte (its meaning depends on the framing).
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] >> 4
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] & 0x0f
    }

    pub fn epoch(&self) -> u8 {
        self.buffer.as_ref()[field::EPOCH]
    }

    pub fn id(&self) -> IdentityId {
        IdentityId(be32(self.buffer.as_ref(), field::ID.start))
    }

    pub fn timestamp(&self) -> u32 {
        be32(self.buffer.as_ref(), field::TIMESTAMP.start)
    }

    pub fn nonce(&self) -> u32 {
        be32(self.buffer.as_ref(), field::NONCE.start)
    }

    pub fn tag(&self) -> [u8; TAG_LEN] {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&self.buffer.as_ref()[field::TAG]);
        t
    }

    /// The header bytes the tag covers (version and flags through nonce).
    pub fn covered(&self) -> &[u8] {
        &self.buffer.as_ref()[field::COVERED]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_kind(&mut self, v: u8) {
        self.buffer.as_mut()[field::KIND] = v;
    }

    pub fn set_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }

    /// Version in the high nibble, flags (low 4 bits kept) in the low one.
    pub fn set_version_and_flags(&mut self, version: u8, flags: u8) {
        self.buffer.as_mut()[field::VER_FLAGS] = (version << 4) | (flags & 0x0f);
    }

    pub fn set_epoch(&mut self, v: u8) {
        self.buffer.as_mut()[field::EPOCH] = v;
    }

    pub fn set_id(&mut self, v: IdentityId) {
        self.buffer.as_mut()[field::ID].copy_from_slice(&v.0.to_be_bytes());
    }

    pub fn set_timestamp(&mut self, v: u32) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_nonce(&mut self, v: u32) {
        self.buffer.as_mut()[field::NONCE].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_tag(&mut self, v: &[u8; TAG_LEN]) {
        self.buffer.as_mut()[field::TAG].copy_from_slice(v);
    }
}

/// An identity header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Flag bits, 0..=15 ([`FLAG_ANNOUNCE`]).
    pub flags: u8,
    /// Low 8 bits of the key epoch.
    pub epoch: u8,
    pub id: IdentityId,
    /// Unix seconds when the header was minted.
    pub timestamp: u32,
    /// TCP: the segment's sequence number; otherwise any value.
    pub nonce: u32,
    pub tag: [u8; TAG_LEN],
}

impl Repr {
    /// Parse a header framed as `framing`: the type and length bytes must
    /// be the framing's, and the version 1. Flag bits are kept as they are
    /// (the tag covers them).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, framing: Framing) -> Result<Repr> {
        p.check_len()?;
        if p.kind() != framing.kind() || p.length() != framing.length() {
            return Err(Error::Malformed);
        }
        if p.version() != VERSION {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            flags: p.flags(),
            epoch: p.epoch(),
            id: p.id(),
            timestamp: p.timestamp(),
            nonce: p.nonce(),
            tag: p.tag(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header, framed as `framing`. Flags above 4 bits are
    /// `Malformed`; a short buffer is `Truncated`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        framing: Framing,
    ) -> Result<()> {
        if self.flags > 0x0f {
            return Err(Error::Malformed);
        }
        p.check_len()?;
        p.set_kind(framing.kind());
        p.set_length(framing.length());
        p.set_version_and_flags(VERSION, self.flags);
        p.set_epoch(self.epoch);
        p.set_id(self.id);
        p.set_timestamp(self.timestamp);
        p.set_nonce(self.nonce);
        p.set_tag(&self.tag);
        Ok(())
    }

    /// The header as 28 bytes framed as `framing` (flags masked to 4 bits).
    pub fn to_bytes(&self, framing: Framing) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_kind(framing.kind());
        p.set_length(framing.length());
        p.set_version_and_flags(VERSION, self.flags);
        p.set_epoch(self.epoch);
        p.set_id(self.id);
        p.set_timestamp(self.timestamp);
        p.set_nonce(self.nonce);
        p.set_tag(&self.tag);
        b
    }

    pub const fn is_announce(&self) -> bool {
        self.flags & FLAG_ANNOUNCE != 0
    }

    /// Bytes 2..16 as they go on the wire: what the tag covers of the header.
    pub fn covered(&self) -> [u8; COVERED_LEN] {
        let b = self.to_bytes(Framing::Ipv4);
        let mut c = [0u8; COVERED_LEN];
        c.copy_from_slice(&b[field::COVERED]);
        c
    }

    /// Parse the IPv6 Destination Options header that [`emit_ipv6_ext`]
    /// writes: `ext` starts at the extension header. Returns the next
    /// header it names and the identity header. Any other layout (more
    /// options, other padding, a different length) is `Malformed`.
    ///
    /// [`emit_ipv6_ext`]: Repr::emit_ipv6_ext
    pub fn parse_ipv6_ext(ext: &[u8]) -> Result<(IpProtocol, Repr)> {
        let (e, _) = ext
            .split_first_chunk::<IPV6_EXT_LEN>()
            .ok_or(Error::Truncated)?;
        if usize::from(e[1]) != IPV6_EXT_LEN / 8 - 1 || e[30] != 1 || e[31] != 0 {
            return Err(Error::Malformed);
        }
        let repr = Repr::parse(&Packet::new_checked(&e[2..30])?, Framing::Ipv6)?;
        Ok((IpProtocol(e[0]), repr))
    }

    /// Write the 32-byte Destination Options header carrying this identity
    /// header into the front of `out`.
    pub fn emit_ipv6_ext(&self, next_header: IpProtocol, out: &mut [u8]) -> Result<()> {
        let e = out.get_mut(..IPV6_EXT_LEN).ok_or(Error::Truncated)?;
        e[0] = next_header.0;
        e[1] = (IPV6_EXT_LEN / 8 - 1) as u8;
        self.emit(&mut Packet::new_unchecked(&mut e[2..30]), Framing::Ipv6)?;
        e[30] = 1;
        e[31] = 0;
        Ok(())
    }
}

/// What, beside the header fields, a tag binds: the inner flow (addresses,
/// protocol, ports or ICMP echo id, as [`FlowKey`] extracts them) and the
/// VNI it travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagInput {
    pub flow: FlowKey,
    pub vni: u32,
}

/// Longest tag input: domain, covered header bytes, family, two IPv6
/// addresses, protocol, two ports, VNI.
const MAX_INPUT: usize = DOMAIN.len() + COVERED_LEN + 1 + 16 + 16 + 1 + 2 + 2 + 4;

impl TagInput {
    pub const fn new(flow: FlowKey, vni: u32) -> TagInput {
        TagInput { flow, vni }
    }

    /// The message the HMAC runs over, in the documented order, written to
    /// a stack buffer; returns its length. The family byte is 4 or 6; a
    /// key that mixes families (no packet has one) is written as two
    /// IPv4-mapped IPv6 addresses under family 0, so it cannot collide
    /// with a real IPv4 or IPv6 flow.
    fn message(&self, covered: &[u8; COVERED_LEN], out: &mut [u8; MAX_INPUT]) -> usize {
        let mut w = Writer { out, at: 0 };
        w.put(DOMAIN);
        w.put(covered);
        match (self.flow.src, self.flow.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                w.put(&[4]);
                w.put(&s.octets());
                w.put(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                w.put(&[6]);
                w.put(&s.octets());
                w.put(&d.octets());
            }
            (s, d) => {
                w.put(&[0]);
                w.put(&v6(s).octets());
                w.put(&v6(d).octets());
            }
        }
        w.put(&[self.flow.protocol.0]);
        w.put(&self.flow.src_port.to_be_bytes());
        w.put(&self.flow.dst_port.to_be_bytes());
        w.put(&self.vni.to_be_bytes());
        w.at
    }
}

fn v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Appends into a fixed buffer sized for the longest message.
struct Writer<'a> {
    out: &'a mut [u8; MAX_INPUT],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        // MAX_INPUT is the sum of every field's longest form, so this
        // range always fits; `get_mut` keeps it panic-free regardless.
        if let Some(dst) = self.out.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
            self.at += b.len();
        }
    }
}

fn full_mac<K: TagMac + ?Sized>(key: &K, repr: &Repr, input: &TagInput) -> [u8; 32] {
    let mut buf = [0u8; MAX_INPUT];
    let n = input.message(&repr.covered(), &mut buf);
    key.mac(&[buf.get(..n).unwrap_or_default()])
}

fn truncate(mac: &[u8; 32]) -> [u8; TAG_LEN] {
    let mut t = [0u8; TAG_LEN];
    for (t, m) in t.iter_mut().zip(mac) {
        *t = *m;
    }
    t
}

/// The tag for `repr` (its own `tag` field is ignored) and `input`: the
/// first 96 bits of HMAC-SHA256. Set it with `repr.tag = mint(..)`.
pub fn mint<K: TagMac + ?Sized>(key: &K, repr: &Repr, input: &TagInput) -> [u8; TAG_LEN] {
    truncate(&full_mac(key, repr, input))
}

/// Whether `repr.tag` is the tag of `repr` and `input` under `key`.
///
/// `ring::hmac::verify` wants the full 32-byte tag, and the header carries
/// 12, so this computes the HMAC and compares the first 12 bytes itself,
/// in constant time: every byte is XORed and ORed into one accumulator,
/// with no early exit, and `black_box` keeps the compiler from turning the
/// fold into a short-circuit. (ring's own `constant_time` module is
/// deprecated.)
pub fn verify<K: TagMac + ?Sized>(key: &K, repr: &Repr, input: &TagInput) -> bool {
    let want = truncate(&full_mac(key, repr, input));
    ct_eq(&want, &repr.tag)
}

fn ct_eq(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let (a, b) = (std::hint::black_box(a), std::hint::black_box(b));
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether a header minted at `timestamp` is within `window_secs` of
/// `now_unix`, either way (clocks of two wardens differ a little). The
/// comparison wraps like the 32-bit field does.
pub fn timestamp_fresh(timestamp: u32, now_unix: u64, window_secs: u32) -> bool {
    let d = (now_unix as u32).wrapping_sub(timestamp) as i32;
    d.unsigned_abs() <= window_secs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::WardenId;
    use crate::keys::{derive_key, Secret, TagKey};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // IPv4 framing; ANNOUNCE flag; epoch 0x2a; id 0x11223344;
    // ts 0x65000000; nonce 0xdeadbeef; tag 0xa0..0xab.
    static HEADER_V4: [u8; 28] = [
        0x9e, 0x1c, 0x11, 0x2a, 0x11, 0x22, 0x33, 0x44, 0x65, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe,
        0xef, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
    ];

    fn repr() -> Repr {
        Repr {
            flags: FLAG_ANNOUNCE,
            epoch: 0x2a,
            id: IdentityId(0x1122_3344),
            timestamp: 0x6500_0000,
            nonce: 0xdead_beef,
            tag: [
                0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
            ],
        }
    }

    fn key(sender: u32, epoch: u32) -> TagKey {
        let s = Secret::new(vec![0x42; 32]).unwrap();
        derive_key(&s, WardenId(sender), WardenId(2), epoch)
    }

    fn flow4() -> FlowKey {
        FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 3)),
            protocol: IpProtocol::TCP,
            src_port: 40000,
            dst_port: 80,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&HEADER_V4[..]).unwrap();
        assert_eq!(p.kind(), 0x9e);
        assert_eq!(p.length(), 28);
        assert_eq!(p.version(), 1);
        assert_eq!(p.flags(), FLAG_ANNOUNCE);
        assert_eq!(p.epoch(), 0x2a);
        assert_eq!(p.id(), IdentityId(0x1122_3344));
        assert_eq!(p.timestamp(), 0x6500_0000);
        assert_eq!(p.nonce(), 0xdead_beef);
        assert_eq!(p.tag()[0], 0xa0);
        assert_eq!(p.covered(), &HEADER_V4[2..16]);
        assert_eq!(Repr::parse(&p, Framing::Ipv4), Ok(repr()));
        assert_eq!(
            Repr::parse(&p, Framing::Ipv6),
            Err(Error::Malformed),
            "IPv4 type and length are not an IPv6 option"
        );
    }

    #[test]
    fn construct_both_framings() {
        let mut b = [0u8; 28];
        repr()
            .emit(&mut Packet::new_unchecked(&mut b[..]), Framing::Ipv4)
            .unwrap();
        assert_eq!(b, HEADER_V4);
        assert_eq!(repr().to_bytes(Framing::Ipv4), HEADER_V4);
        repr()
            .emit(&mut Packet::new_unchecked(&mut b[..]), Framing::Ipv6)
            .unwrap();
        assert_eq!(&b[..2], &[0x1e, 26]);
        assert_eq!(&b[2..], &HEADER_V4[2..]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, Framing::Ipv6), Ok(repr()));
        assert_eq!(repr().buffer_len(), 28);
        assert!(repr().is_announce());
    }

    #[test]
    fn length_edges_and_bad_fields() {
        assert_eq!(Packet::new_checked(&HEADER_V4[..27]), Err(Error::Truncated));
        let mut b = HEADER_V4;
        b[1] = 27;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, Framing::Ipv4), Err(Error::Malformed));
        let mut b = HEADER_V4;
        b[2] = 0x21;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, Framing::Ipv4), Err(Error::Unsupported));
        let mut short = [0u8; 27];
        assert_eq!(
            repr().emit(&mut Packet::new_unchecked(&mut short[..]), Framing::Ipv4),
            Err(Error::Truncated)
        );
        let mut b = [0u8; 28];
        let bad = Repr {
            flags: 0x10,
            ..repr()
        };
        assert_eq!(
            bad.emit(&mut Packet::new_unchecked(&mut b[..]), Framing::Ipv4),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn ipv6_extension_header() {
        let mut e = [0u8; 32];
        repr().emit_ipv6_ext(IpProtocol::TCP, &mut e).unwrap();
        assert_eq!(&e[..4], &[6, 3, 0x1e, 26]);
        assert_eq!(&e[30..], &[1, 0]);
        assert_eq!(Repr::parse_ipv6_ext(&e), Ok((IpProtocol::TCP, repr())));
        assert_eq!(Repr::parse_ipv6_ext(&e[..31]), Err(Error::Truncated));
        for (i, v) in [(1, 2), (30, 0), (31, 1), (2, 0x9e), (3, 28)] {
            let mut bad = e;
            bad[i] = v;
            assert_eq!(
                Repr::parse_ipv6_ext(&bad),
                Err(Error::Malformed),
                "byte {i}"
            );
        }
        assert_eq!(
            repr().emit_ipv6_ext(IpProtocol::TCP, &mut [0u8; 31]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn tag_input_is_the_documented_message() {
        let input = TagInput::new(flow4(), 0x0012_3456);
        let mut buf = [0u8; MAX_INPUT];
        let n = input.message(&repr().covered(), &mut buf);
        let mut want = b"warden-idh-v1".to_vec();
        want.extend_from_slice(&HEADER_V4[2..16]);
        want.extend_from_slice(&[4, 10, 1, 0, 2, 10, 1, 0, 3, 6]);
        want.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(&buf[..n], &want[..]);

        let v6 = TagInput::new(
            FlowKey {
                src: IpAddr::V6(Ipv6Addr::LOCALHOST),
                dst: IpAddr::V6("2001:db8::1".parse().unwrap()),
                protocol: IpProtocol::ICMPV6,
                src_port: 7,
                dst_port: 0,
            },
            1,
        );
        assert_eq!(v6.message(&repr().covered(), &mut buf), MAX_INPUT);
        assert_eq!(buf[27], 6);

        // The tag is HMAC-SHA256 of exactly that message, truncated.
        let k = key(1, 9);
        let full = k.mac(&[&want]);
        assert_eq!(mint(&k, &repr(), &input), full[..12]);
    }

    #[test]
    fn mint_then_verify() {
        let k = key(1, 9);
        let input = TagInput::new(flow4(), 100);
        let mut r = repr();
        r.tag = mint(&k, &r, &input);
        assert!(verify(&k, &r, &input));
        assert_eq!(k.uses(), 2);
        assert!(!verify(&key(3, 9), &r, &input), "key from another pair");
        assert!(!verify(&key(1, 10), &r, &input), "key from another epoch");
        assert!(!verify(&k, &r, &TagInput::new(flow4(), 101)), "other VNI");
        assert!(!verify(&k, &r, &TagInput::new(flow4().reversed(), 100)));
        // A mixed-family key (never from a packet) still mints and differs
        // from the IPv4 flow.
        let mut mixed = flow4();
        mixed.dst = IpAddr::V6(Ipv4Addr::new(10, 1, 0, 3).to_ipv6_mapped());
        assert!(!verify(&k, &r, &TagInput::new(mixed, 100)));
    }

    #[test]
    fn constant_time_compare() {
        let a = [7u8; 12];
        assert!(ct_eq(&a, &a));
        for i in 0..12 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!ct_eq(&a, &b));
        }
    }

    #[test]
    fn freshness_window() {
        assert!(timestamp_fresh(1000, 1000, 30));
        assert!(timestamp_fresh(1000, 1030, 30));
        assert!(!timestamp_fresh(1000, 1031, 30));
        assert!(timestamp_fresh(1030, 1000, 30), "sender clock ahead");
        assert!(!timestamp_fresh(1031, 1000, 30));
        assert!(timestamp_fresh(u32::MAX, 1u64 << 32, 30), "wraps");
        assert!(!timestamp_fresh(0, 1u64 << 31, 30));
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            0u8..16,
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 12]>(),
        )
            .prop_map(|(flags, epoch, id, timestamp, nonce, tag)| Repr {
                flags,
                epoch,
                id: IdentityId(id),
                timestamp,
                nonce,
                tag,
            })
    }

    fn arb_flow() -> impl Strategy<Value = FlowKey> {
        let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d)));
        let v6 = (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d)));
        (prop_oneof![v4, v6], any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
            |((src, dst), p, src_port, dst_port)| FlowKey {
                src,
                dst,
                protocol: IpProtocol(p),
                src_port,
                dst_port,
            },
        )
    }

    proptest! {
        #[test]
        fn emit_parse_roundtrip(r in arb_repr(), v6 in any::<bool>()) {
            let framing = if v6 { Framing::Ipv6 } else { Framing::Ipv4 };
            let mut b = [0u8; 28];
            r.emit(&mut Packet::new_unchecked(&mut b[..]), framing).unwrap();
            prop_assert_eq!(b, r.to_bytes(framing));
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, framing), Ok(r));
            let mut e = [0u8; 32];
            r.emit_ipv6_ext(IpProtocol::UDP, &mut e).unwrap();
            prop_assert_eq!(Repr::parse_ipv6_ext(&e), Ok((IpProtocol::UDP, r)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.id(), p.tag(), p.covered(), p.nonce(), p.timestamp());
                for f in [Framing::Ipv4, Framing::Ipv6] {
                    if let Ok(r) = Repr::parse(&p, f) {
                        prop_assert_eq!(&r.to_bytes(f)[..], &b[..28]);
                    }
                }
            }
            let _ = Repr::parse_ipv6_ext(&b);
        }

        /// Any change to a covered header byte, the flow or the VNI makes
        /// the tag fail.
        #[test]
        fn any_flipped_bit_fails(
            r in arb_repr(),
            flow in arb_flow(),
            vni in any::<u32>(),
            which in 0usize..20,
            bit in 0u8..8,
        ) {
            let k = key(1, 5);
            let input = TagInput::new(flow, vni);
            let mut r = r;
            r.tag = mint(&k, &r, &input);
            prop_assert!(verify(&k, &r, &input));
            let (mut r2, mut in2) = (r, input);
            let m = 1u8 << bit;
            match which {
                // Flags are 4 bits wide on the wire.
                0 => r2.flags ^= 1 << (bit % 4),
                1 => r2.epoch ^= m,
                2 => r2.id.0 ^= u32::from(m) << 8,
                3 => r2.timestamp ^= u32::from(m),
                4 => r2.nonce ^= u32::from(m) << 24,
                5..=8 => r2.tag[(which - 5) * 3] ^= m,
                9 => in2.vni ^= u32::from(m) << 16,
                10 => in2.flow.protocol.0 ^= m,
                11 => in2.flow.src_port ^= u16::from(m),
                12 => in2.flow.dst_port ^= u16::from(m) << 8,
                13..=16 => {
                    let flip = |a: IpAddr, i: usize| match a {
                        IpAddr::V4(a) => {
                            let mut o = a.octets();
                            o[i % 4] ^= m;
                            IpAddr::from(o)
                        }
                        IpAddr::V6(a) => {
                            let mut o = a.octets();
                            o[i * 4 % 16] ^= m;
                            IpAddr::from(o)
                        }
                    };
                    if which < 15 {
                        in2.flow.src = flip(in2.flow.src, which);
                    } else {
                        in2.flow.dst = flip(in2.flow.dst, which);
                    }
                }
                _ => {
                    // The other family with the same low bytes.
                    in2.flow.src = match in2.flow.src {
                        IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
                        IpAddr::V6(a) => IpAddr::V4(Ipv4Addr::from(
                            <[u8; 4]>::try_from(&a.octets()[12..]).unwrap(),
                        )),
                    };
                    in2.flow.dst = match in2.flow.dst {
                        IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
                        IpAddr::V6(a) => IpAddr::V4(Ipv4Addr::from(
                            <[u8; 4]>::try_from(&a.octets()[12..]).unwrap(),
                        )),
                    };
                }
            }
            prop_assert!(!verify(&k, &r2, &in2));
        }

        #[test]
        fn other_keys_fail(r in arb_repr(), flow in arb_flow(), epoch in 0u32..1000) {
            let input = TagInput::new(flow, 7);
            let k = key(1, epoch);
            let mut r = r;
            r.tag = mint(&k, &r, &input);
            prop_assert!(verify(&k, &r, &input));
            prop_assert!(!verify(&key(1, epoch + 1), &r, &input));
            prop_assert!(!verify(&key(3, epoch), &r, &input));
        }
    }
}
