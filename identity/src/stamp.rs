//! Insert, find and strip the identity header in an Ethernet frame, and
//! build announce-only packets.
//!
//! Frames sit in a byte buffer with headroom: `buf[start..]` is the frame
//! (Ethernet II, up to two VLAN tags, then IPv4 or IPv6). Inserting moves
//! the link and IP headers toward the front of the buffer by the size of
//! the header (28 bytes for IPv4, 32 for IPv6) and returns the new start;
//! the payload never moves. Stripping is the exact reverse and returns the
//! original frame byte for byte (with one exception: an IPv4 header
//! checksum of 0xffff, the one's-complement "-0" that verifies like 0x0000
//! but that no sender writes, comes back as 0x0000).
//!
//! The L4 checksum never changes: TCP and UDP checksums cover a
//! pseudo-header (addresses, protocol, L4 length) and the L4 segment, not
//! IPv4 options, and the IPv6 pseudo-header holds the upper-layer length,
//! not the payload length that an extension header grows. The IPv4 header
//! checksum is updated incrementally (RFC 1624), so a header that arrived
//! with a bad checksum still has a bad one.
//!
//! Every function here checks all it needs before it writes, so on error
//! the buffer is unchanged. None allocates.

use core::fmt;

use overlay::checksum;
use overlay::ethernet::EtherType;
use overlay::ip::IpProtocol;
use overlay::{ipv4, ipv6, vlan};

use crate::header::{self, Framing, Repr, HEADER_LEN, IPV4_OPTION_TYPE, IPV6_EXT_LEN};

/// Bytes an IPv4 frame grows by when stamped (the headroom it needs).
pub const IPV4_GROWTH: usize = HEADER_LEN;
/// Bytes an IPv6 frame grows by when stamped (the headroom it needs).
pub const IPV6_GROWTH: usize = IPV6_EXT_LEN;
/// Most bytes of IPv4 options a header can hold (IHL 15).
const MAX_IPV4_OPTIONS: usize = 40;
/// Bytes of the L4 header an announce-only packet carries.
const ANNOUNCE_L4_LEN: usize = 8;

/// Why a frame could not be stamped, searched or stripped. Small and
/// `Copy` for the packet path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StampError {
    /// Not Ethernet carrying the IP version asked for (after VLAN tags).
    NotIp,
    /// The frame ends inside a header, or before a length field says.
    Truncated,
    /// The IP header is inconsistent (version, IHL, total length).
    BadIpHeader,
    /// The IPv4 options cannot be walked (bad option lengths).
    BadOptions,
    /// An identity header is there but malformed (length, version, layout),
    /// or there are two.
    Malformed,
    /// Fewer bytes before `start` than the frame would grow by.
    NoHeadroom,
    /// The IPv4 options have no room for 28 more bytes (40 at most).
    OptionsFull,
    /// The IP length would pass 65535.
    TooLong,
    /// The frame already carries an identity header.
    AlreadyStamped,
    /// Strip found no identity header.
    NotStamped,
    /// IPv6 with a Hop-by-Hop header, which must stay first.
    Unsupported,
    /// An announce-only packet needs a header with the ANNOUNCE flag.
    NotAnnounce,
    /// The output buffer is too small for the announce-only packet.
    BufferTooSmall,
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StampError::NotIp => "frame is not IP of the expected version",
            StampError::Truncated => "truncated frame",
            StampError::BadIpHeader => "bad IP header",
            StampError::BadOptions => "bad IPv4 options",
            StampError::Malformed => "malformed identity header",
            StampError::NoHeadroom => "no headroom for the identity header",
            StampError::OptionsFull => "no room left in the IPv4 options",
            StampError::TooLong => "packet too long for the identity header",
            StampError::AlreadyStamped => "frame already carries an identity header",
            StampError::NotStamped => "frame carries no identity header",
            StampError::Unsupported => "IPv6 hop-by-hop header present",
            StampError::NotAnnounce => "announce packet without the ANNOUNCE flag",
            StampError::BufferTooSmall => "output buffer too small",
        })
    }
}

impl std::error::Error for StampError {}

/// An IPv4 packet inside a frame: where it is and what its header says.
struct V4 {
    /// Offset of the IP header in the frame.
    l3: usize,
    /// IP header length with options.
    ihl: usize,
    /// IP total length.
    total: usize,
    /// Offset of the identity option within the options, if any.
    found: Option<usize>,
    /// Where a new option goes within the options: at the End of Option
    /// List if there is one (what follows it is padding), else at the end.
    insert_at: usize,
}

fn locate(frame: &[u8], want: EtherType) -> Result<usize, StampError> {
    let loc = vlan::locate_l3(frame).map_err(|e| match e {
        overlay::Error::Truncated => StampError::Truncated,
        _ => StampError::NotIp,
    })?;
    if loc.ethertype != want {
        return Err(StampError::NotIp);
    }
    Ok(loc.offset)
}

fn ip_err(e: overlay::Error) -> StampError {
    match e {
        overlay::Error::Truncated => StampError::Truncated,
        _ => StampError::BadIpHeader,
    }
}

fn parse_v4(frame: &[u8]) -> Result<V4, StampError> {
    let l3 = locate(frame, EtherType::IPV4)?;
    let ip = frame.get(l3..).ok_or(StampError::Truncated)?;
    let p = ipv4::Packet::new_checked(ip).map_err(ip_err)?;
    let (found, insert_at) = scan_options(p.options())?;
    Ok(V4 {
        l3,
        ihl: usize::from(p.header_len()),
        total: usize::from(p.total_len()),
        found,
        insert_at,
    })
}

/// Walk IPv4 options (RFC 791): End of Option List stops the walk, No
/// Operation is one byte, every other option has a length byte of at least
/// 2 that must not run past the options. Returns the offset of the identity
/// option (two are `Malformed`) and where a new option would go.
fn scan_options(opts: &[u8]) -> Result<(Option<usize>, usize), StampError> {
    let mut found = None;
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => return Ok((found, i)),
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1).ok_or(StampError::BadOptions)?);
                if len < 2 || i + len > opts.len() {
                    return Err(StampError::BadOptions);
                }
                if kind == IPV4_OPTION_TYPE {
                    if found.is_some() {
                        return Err(StampError::Malformed);
                    }
                    found = Some(i);
                }
                i += len;
            }
        }
    }
    Ok((found, opts.len()))
}

/// The header sum of `bytes` placed at `offset` within a checksummed
/// header: a sum at an odd offset is the byte-swapped sum (RFC 1071).
fn sum_at(bytes: &[u8], offset: usize) -> u16 {
    let s = checksum::sum(bytes);
    if offset % 2 == 1 {
        s.swap_bytes()
    } else {
        s
    }
}

/// Rewrite IHL and total length of the IPv4 header at `ip` and update its
/// checksum incrementally: the two changed words, plus `added` (the sum of
/// bytes that joined the header) or minus `removed`.
fn fix_v4(ip: &mut [u8], ihl: usize, total: usize, added: u16, removed: u16) {
    let Some(h) = ip.first_chunk_mut::<{ ipv4::HEADER_LEN }>() else {
        return;
    };
    let old0 = u16::from_be_bytes([h[0], h[1]]);
    let old1 = u16::from_be_bytes([h[2], h[3]]);
    // Callers checked ihl <= 60 and total <= 65535.
    h[0] = 0x40 | ((ihl / 4) as u8 & 0x0f);
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    let new0 = u16::from_be_bytes([h[0], h[1]]);
    let mut c = u16::from_be_bytes([h[10], h[11]]);
    c = checksum::update_u16(c, old0, new0);
    c = checksum::update_u16(c, old1, total as u16);
    c = !checksum::add(!c, added);
    c = !checksum::add(!c, !removed);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Stamp an IPv4 frame: `buf[start..]` is the frame, `start` must leave at
/// least [`IPV4_GROWTH`] bytes of headroom. The identity option goes after
/// the existing options (before an End of Option List); IHL, total length
/// and header checksum are fixed. Returns the new start of the frame.
pub fn insert_ipv4(buf: &mut [u8], start: usize, repr: &Repr) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    let v = parse_v4(frame)?;
    if v.found.is_some() {
        return Err(StampError::AlreadyStamped);
    }
    if v.ihl - ipv4::HEADER_LEN + HEADER_LEN > MAX_IPV4_OPTIONS {
        return Err(StampError::OptionsFull);
    }
    if v.total + HEADER_LEN > usize::from(u16::MAX) {
        return Err(StampError::TooLong);
    }
    let new_start = start
        .checked_sub(IPV4_GROWTH)
        .ok_or(StampError::NoHeadroom)?;
    if repr.flags > 0x0f {
        return Err(StampError::Malformed);
    }
    let opt_in_ip = ipv4::HEADER_LEN + v.insert_at;
    let split = start + v.l3 + opt_in_ip;
    buf.copy_within(start..split, new_start);
    let bytes = repr.to_bytes(Framing::Ipv4);
    let dst = buf
        .get_mut(split - IPV4_GROWTH..split)
        .ok_or(StampError::Truncated)?;
    dst.copy_from_slice(&bytes);
    let ip = buf
        .get_mut(new_start + v.l3..)
        .ok_or(StampError::Truncated)?;
    fix_v4(
        ip,
        v.ihl + IPV4_GROWTH,
        v.total + IPV4_GROWTH,
        sum_at(&bytes, opt_in_ip),
        0,
    );
    Ok(new_start)
}

/// Find the identity option of an IPv4 frame: `Ok(Some((offset, repr)))`
/// with the option's offset from the start of the frame, `Ok(None)` when
/// there is none, an error when the frame or the option is malformed.
pub fn find_ipv4(frame: &[u8]) -> Result<Option<(usize, Repr)>, StampError> {
    let v = parse_v4(frame)?;
    parse_found_v4(frame, &v)
}

/// Parse the identity option that the walk found, if any.
fn parse_found_v4(frame: &[u8], v: &V4) -> Result<Option<(usize, Repr)>, StampError> {
    let Some(at) = v.found else {
        return Ok(None);
    };
    let offset = v.l3 + ipv4::HEADER_LEN + at;
    let opt = frame
        .get(offset..v.l3 + v.ihl)
        .ok_or(StampError::Truncated)?;
    let p = header::Packet::new_checked(opt).map_err(|_| StampError::Malformed)?;
    let repr = Repr::parse(&p, Framing::Ipv4).map_err(|_| StampError::Malformed)?;
    Ok(Some((offset, repr)))
}

/// Remove the identity option from the IPv4 frame at `buf[start..]`,
/// moving the link and IP headers back by [`IPV4_GROWTH`]; IHL, total
/// length and checksum are fixed. Returns the new start. An identity
/// option that [`find_ipv4`] calls `Malformed` is refused and stays.
pub fn strip_ipv4(buf: &mut [u8], start: usize) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    let v = parse_v4(frame)?;
    let (offset, _) = parse_found_v4(frame, &v)?.ok_or(StampError::NotStamped)?;
    remove_v4(buf, start, v.l3, v.ihl, v.total, offset)
}

/// The removal half of [`strip_ipv4`], for the option at `offset` of the
/// IPv4 frame at `buf[start..]` (IP header at `l3`, `ihl` and `total` as
/// its header says), as [`parse_v4`] and [`parse_found_v4`] found them.
fn remove_v4(
    buf: &mut [u8],
    start: usize,
    l3: usize,
    ihl: usize,
    total: usize,
    offset: usize,
) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    let opt_in_ip = offset - l3;
    let opt = frame
        .get(offset..offset + HEADER_LEN)
        .ok_or(StampError::Truncated)?;
    let removed = sum_at(opt, opt_in_ip);
    let split = start + l3 + opt_in_ip;
    buf.copy_within(start..split, start + IPV4_GROWTH);
    let new_start = start + IPV4_GROWTH;
    let ip = buf.get_mut(new_start + l3..).ok_or(StampError::Truncated)?;
    fix_v4(ip, ihl - IPV4_GROWTH, total - IPV4_GROWTH, 0, removed);
    Ok(new_start)
}

/// An announce-only packet for the IPv4 frame `frame`: the same link
/// header and IP header with the identity option added (`repr` must carry
/// [`header::FLAG_ANNOUNCE`], and its tag must have been minted with it),
/// then the first 8 bytes of the L4 header (fewer if the packet has fewer)
/// and no payload. Written to the front of `out`; returns its length.
pub fn announce_ipv4(frame: &[u8], repr: &Repr, out: &mut [u8]) -> Result<usize, StampError> {
    if !repr.is_announce() {
        return Err(StampError::NotAnnounce);
    }
    let v = parse_v4(frame)?;
    if v.found.is_some() {
        return Err(StampError::AlreadyStamped);
    }
    if v.ihl - ipv4::HEADER_LEN + HEADER_LEN > MAX_IPV4_OPTIONS {
        return Err(StampError::OptionsFull);
    }
    if repr.flags > 0x0f {
        return Err(StampError::Malformed);
    }
    let l4_len = (v.total - v.ihl).min(ANNOUNCE_L4_LEN);
    let split = v.l3 + ipv4::HEADER_LEN + v.insert_at;
    let hdr_end = v.l3 + v.ihl;
    let len = hdr_end + IPV4_GROWTH + l4_len;
    let out = out.get_mut(..len).ok_or(StampError::BufferTooSmall)?;
    let (head, rest) = out.split_at_mut(split);
    let (opt, tail) = rest.split_at_mut(IPV4_GROWTH);
    head.copy_from_slice(frame.get(..split).ok_or(StampError::Truncated)?);
    opt.copy_from_slice(&repr.to_bytes(Framing::Ipv4));
    tail.copy_from_slice(
        frame
            .get(split..hdr_end + l4_len)
            .ok_or(StampError::Truncated)?,
    );
    let ip = out.get_mut(v.l3..).ok_or(StampError::Truncated)?;
    let mut p = ipv4::Packet::new_unchecked(ip);
    p.set_version_and_header_len((v.ihl + IPV4_GROWTH) as u8);
    p.set_total_len((v.ihl + IPV4_GROWTH + l4_len) as u16);
    p.fill_checksum();
    Ok(len)
}

/// An IPv6 packet inside a frame.
struct V6 {
    l3: usize,
    next_header: IpProtocol,
    payload_len: usize,
}

fn parse_v6(frame: &[u8]) -> Result<V6, StampError> {
    let l3 = locate(frame, EtherType::IPV6)?;
    let ip = frame.get(l3..).ok_or(StampError::Truncated)?;
    let p = ipv6::Packet::new_checked(ip).map_err(ip_err)?;
    Ok(V6 {
        l3,
        next_header: p.next_header(),
        payload_len: usize::from(p.payload_len()),
    })
}

/// The IPv6 payload (as bounded by the payload length) of a parsed frame.
fn v6_payload<'a>(frame: &'a [u8], v: &V6) -> Result<&'a [u8], StampError> {
    let from = v.l3 + ipv6::HEADER_LEN;
    frame
        .get(from..from + v.payload_len)
        .ok_or(StampError::Truncated)
}

/// Whether the first extension header is a Destination Options header
/// whose first option is ours (well-formed or not).
fn v6_has_identity(frame: &[u8], v: &V6) -> Result<bool, StampError> {
    if v.next_header != IpProtocol::IPV6_OPTS {
        return Ok(false);
    }
    Ok(v6_payload(frame, v)?.get(2) == Some(&header::IPV6_OPTION_TYPE))
}

fn set_v6(ip: &mut [u8], next_header: IpProtocol, payload_len: usize) {
    if let Some(h) = ip.first_chunk_mut::<{ ipv6::HEADER_LEN }>() {
        let mut p = ipv6::Packet::new_unchecked(&mut h[..]);
        p.set_next_header(next_header);
        // Callers checked payload_len <= 65535.
        p.set_payload_len(payload_len as u16);
    }
}

/// Stamp an IPv6 frame: a Destination Options header carrying the
/// identity option goes right after the fixed header (first in any
/// existing chain). `start` must leave [`IPV6_GROWTH`] bytes of headroom.
/// A Hop-by-Hop header, which must stay first, is `Unsupported`. Returns
/// the new start of the frame.
pub fn insert_ipv6(buf: &mut [u8], start: usize, repr: &Repr) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    let v = parse_v6(frame)?;
    if v.next_header == IpProtocol::HOP_BY_HOP {
        return Err(StampError::Unsupported);
    }
    if v6_has_identity(frame, &v)? {
        return Err(StampError::AlreadyStamped);
    }
    if v.payload_len + IPV6_GROWTH > usize::from(u16::MAX) {
        return Err(StampError::TooLong);
    }
    let new_start = start
        .checked_sub(IPV6_GROWTH)
        .ok_or(StampError::NoHeadroom)?;
    let split = start + v.l3 + ipv6::HEADER_LEN;
    let mut ext = [0u8; IPV6_EXT_LEN];
    repr.emit_ipv6_ext(v.next_header, &mut ext)
        .map_err(|_| StampError::Malformed)?;
    buf.copy_within(start..split, new_start);
    buf.get_mut(split - IPV6_GROWTH..split)
        .ok_or(StampError::Truncated)?
        .copy_from_slice(&ext);
    let ip = buf
        .get_mut(new_start + v.l3..)
        .ok_or(StampError::Truncated)?;
    set_v6(ip, IpProtocol::IPV6_OPTS, v.payload_len + IPV6_GROWTH);
    Ok(new_start)
}

/// Find the identity header of an IPv6 frame in its first extension
/// header: `Ok(Some((offset, repr)))` with the option's offset from the
/// start of the frame, `Ok(None)` when the first extension header is not
/// ours, `Malformed` when it starts with our option but is not the exact
/// 32-byte layout that [`insert_ipv6`] writes.
pub fn find_ipv6(frame: &[u8]) -> Result<Option<(usize, Repr)>, StampError> {
    let v = parse_v6(frame)?;
    if !v6_has_identity(frame, &v)? {
        return Ok(None);
    }
    let (_, repr) =
        Repr::parse_ipv6_ext(v6_payload(frame, &v)?).map_err(|_| StampError::Malformed)?;
    Ok(Some((v.l3 + ipv6::HEADER_LEN + 2, repr)))
}

/// Remove the Destination Options header that carries the identity
/// option from the IPv6 frame at `buf[start..]`, moving the link and IP
/// headers back by [`IPV6_GROWTH`]. Returns the new start.
pub fn strip_ipv6(buf: &mut [u8], start: usize) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    let v = parse_v6(frame)?;
    if !v6_has_identity(frame, &v)? {
        return Err(StampError::NotStamped);
    }
    let (next, _) =
        Repr::parse_ipv6_ext(v6_payload(frame, &v)?).map_err(|_| StampError::Malformed)?;
    let split = start + v.l3 + ipv6::HEADER_LEN;
    buf.copy_within(start..split, start + IPV6_GROWTH);
    let new_start = start + IPV6_GROWTH;
    let ip = buf
        .get_mut(new_start + v.l3..)
        .ok_or(StampError::Truncated)?;
    // parse_ipv6_ext read 32 bytes inside the payload: no underflow.
    set_v6(ip, next, v.payload_len - IPV6_GROWTH);
    Ok(new_start)
}

/// An announce-only packet for the IPv6 frame `frame`: link header, IPv6
/// header, the Destination Options header with the identity option
/// (`repr` must carry [`header::FLAG_ANNOUNCE`]) naming the upper-layer
/// protocol, then the first 8 bytes of the upper-layer header. Other
/// extension headers of the original are left out. Returns its length.
pub fn announce_ipv6(frame: &[u8], repr: &Repr, out: &mut [u8]) -> Result<usize, StampError> {
    if !repr.is_announce() {
        return Err(StampError::NotAnnounce);
    }
    let v = parse_v6(frame)?;
    if v.next_header == IpProtocol::HOP_BY_HOP {
        return Err(StampError::Unsupported);
    }
    if v6_has_identity(frame, &v)? {
        return Err(StampError::AlreadyStamped);
    }
    let payload = v6_payload(frame, &v)?;
    let upper = ipv6::find_upper_layer(v.next_header, payload).map_err(ip_err)?;
    let l4 = payload.get(upper.offset..).unwrap_or_default();
    let l4 = l4.get(..ANNOUNCE_L4_LEN).unwrap_or(l4);
    let hdr_end = v.l3 + ipv6::HEADER_LEN;
    let len = hdr_end + IPV6_GROWTH + l4.len();
    let out = out.get_mut(..len).ok_or(StampError::BufferTooSmall)?;
    let (head, rest) = out.split_at_mut(hdr_end);
    let (ext, tail) = rest.split_at_mut(IPV6_GROWTH);
    head.copy_from_slice(frame.get(..hdr_end).ok_or(StampError::Truncated)?);
    repr.emit_ipv6_ext(upper.protocol, ext)
        .map_err(|_| StampError::Malformed)?;
    tail.copy_from_slice(l4);
    let ip = out.get_mut(v.l3..).ok_or(StampError::Truncated)?;
    set_v6(ip, IpProtocol::IPV6_OPTS, IPV6_GROWTH + l4.len());
    Ok(len)
}

/// Where [`find_located`] found an identity header: what [`strip_found`]
/// needs to remove it from the same, unchanged frame without walking the
/// frame and parsing the header again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found(FoundAt);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoundAt {
    /// Offsets and lengths within one frame: they fit 16 bits (an IPv4
    /// total length does), and keep the value small.
    V4 {
        l3: u16,
        ihl: u16,
        total: u16,
        offset: u16,
    },
    /// IPv6 (or an offset beyond 16 bits): [`strip_found`] walks the
    /// frame again.
    Walk,
}

impl Found {
    /// Offset of the header from the start of the frame (IPv4), as
    /// [`find`] gives it; `None` for IPv6.
    pub fn ipv4_offset(&self) -> Option<usize> {
        match self.0 {
            FoundAt::V4 { offset, .. } => Some(usize::from(offset)),
            FoundAt::Walk => None,
        }
    }
}

/// [`find`], and where the header was found, for [`strip_found`]: the
/// same answers and errors.
pub fn find_located(frame: &[u8]) -> Result<Option<(Found, Repr)>, StampError> {
    match vlan::locate_l3(frame).map(|l| l.ethertype) {
        Ok(EtherType::IPV6) => Ok(find_ipv6(frame)?.map(|(_, r)| (Found(FoundAt::Walk), r))),
        Ok(_) => {
            let v = parse_v4(frame)?;
            let Some((offset, r)) = parse_found_v4(frame, &v)? else {
                return Ok(None);
            };
            // A frame longer than 64 KiB (never one with a valid IPv4
            // header in it) is walked again by `strip_found`.
            let at = match (
                u16::try_from(v.l3),
                u16::try_from(v.ihl),
                u16::try_from(v.total),
                u16::try_from(offset),
            ) {
                (Ok(l3), Ok(ihl), Ok(total), Ok(offset)) => FoundAt::V4 {
                    l3,
                    ihl,
                    total,
                    offset,
                },
                _ => FoundAt::Walk,
            };
            Ok(Some((Found(at), r)))
        }
        Err(overlay::Error::Truncated) => Err(StampError::Truncated),
        Err(_) => Err(StampError::NotIp),
    }
}

/// [`strip`] of the header that [`find_located`] found in the frame at
/// `buf[start..]`, which must not have changed since: the IPv4 option is
/// removed without walking the frame again.
pub fn strip_found(buf: &mut [u8], start: usize, found: &Found) -> Result<usize, StampError> {
    match found.0 {
        FoundAt::V4 {
            l3,
            ihl,
            total,
            offset,
        } => remove_v4(
            buf,
            start,
            usize::from(l3),
            usize::from(ihl),
            usize::from(total),
            usize::from(offset),
        ),
        FoundAt::Walk => strip(buf, start),
    }
}

/// [`find_ipv4`] or [`find_ipv6`] by the frame's EtherType (after VLAN
/// tags); `NotIp` for anything else.
pub fn find(frame: &[u8]) -> Result<Option<(usize, Repr)>, StampError> {
    match vlan::locate_l3(frame).map(|l| l.ethertype) {
        Ok(EtherType::IPV6) => find_ipv6(frame),
        Ok(_) => find_ipv4(frame),
        Err(overlay::Error::Truncated) => Err(StampError::Truncated),
        Err(_) => Err(StampError::NotIp),
    }
}

/// [`strip_ipv4`] or [`strip_ipv6`] by the frame's EtherType.
pub fn strip(buf: &mut [u8], start: usize) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    match vlan::locate_l3(frame).map(|l| l.ethertype) {
        Ok(EtherType::IPV6) => strip_ipv6(buf, start),
        Ok(_) => strip_ipv4(buf, start),
        Err(overlay::Error::Truncated) => Err(StampError::Truncated),
        Err(_) => Err(StampError::NotIp),
    }
}

/// [`insert_ipv4`] or [`insert_ipv6`] by the frame's EtherType.
pub fn insert(buf: &mut [u8], start: usize, repr: &Repr) -> Result<usize, StampError> {
    let frame = buf.get(start..).ok_or(StampError::Truncated)?;
    match vlan::locate_l3(frame).map(|l| l.ethertype) {
        Ok(EtherType::IPV6) => insert_ipv6(buf, start, repr),
        Ok(_) => insert_ipv4(buf, start, repr),
        Err(overlay::Error::Truncated) => Err(StampError::Truncated),
        Err(_) => Err(StampError::NotIp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::WardenId;
    use crate::doc::IdentityId;
    use crate::header::{mint, verify, TagInput, FLAG_ANNOUNCE};
    use crate::keys::{derive_key, Secret, TagKey};
    use overlay::checksum::PseudoHeader;
    use overlay::{tcp, udp, FlowKey};
    use proptest::prelude::*;

    // A TCP SYN 10.1.0.2:40000 -> 10.1.0.3:80, ISN 0x11223344, MSS/SACK/TS/WS options.
    static TCP_SYN: [u8; 74] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x70, 0x0a, 0x01, 0x00, 0x02,
        0x0a, 0x01, 0x00, 0x03, 0x9c, 0x40, 0x00, 0x50, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00,
        0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x23, 0xaa, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    // UDP 10.1.0.2:5353 -> 10.1.0.3:53, payload "hello warden".
    static UDP: [u8; 54] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x0a, 0x79, 0x0a, 0x01, 0x00, 0x02,
        0x0a, 0x01, 0x00, 0x03, 0x14, 0xe9, 0x00, 0x35, 0x00, 0x14, 0x43, 0x7b, 0x68, 0x65, 0x6c,
        0x6c, 0x6f, 0x20, 0x77, 0x61, 0x72, 0x64, 0x65, 0x6e,
    ];

    // ICMP echo request, id 1234, seq 1, padded to 60 bytes by Ethernet.
    static ICMP_ECHO: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x24, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x0a, 0x8d, 0x0a, 0x01, 0x00, 0x02,
        0x0a, 0x01, 0x00, 0x03, 0x08, 0x00, 0x61, 0x97, 0x04, 0xd2, 0x00, 0x01, 0x61, 0x62, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    // UDP with IPv4 options: NOP, Router Alert (4 bytes), NOP, EOL + 1 byte padding (8 bytes).
    static UDP_OPTIONS: [u8; 53] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x00, 0x47,
        0x00, 0x00, 0x27, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x02, 0xe5, 0x0a, 0x01, 0x00, 0x02,
        0x0a, 0x01, 0x00, 0x03, 0x01, 0x94, 0x04, 0x00, 0x00, 0x01, 0x00, 0x00, 0x14, 0xe9, 0x00,
        0x35, 0x00, 0x0b, 0xf3, 0x42, 0x6f, 0x70, 0x74,
    ];

    // IPv6 TCP SYN fd00::2:40000 -> fd00::3:80.
    static TCP6_SYN: [u8; 94] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x28, 0x06, 0x40, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x9c, 0x40, 0x00, 0x50, 0x11, 0x22,
        0x33, 0x44, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x3d, 0xaa, 0x00, 0x00, 0x02,
        0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];

    const HEADROOM: usize = 64;

    fn repr() -> Repr {
        Repr {
            flags: 0,
            epoch: 7,
            id: IdentityId(0xcafe_f00d),
            timestamp: 1_700_000_000,
            nonce: 0x1122_3344,
            tag: [0x5a; 12],
        }
    }

    /// `frame` after `HEADROOM` bytes of 0xee, so stray writes show.
    fn with_headroom(frame: &[u8]) -> Vec<u8> {
        let mut b = vec![0xee; HEADROOM];
        b.extend_from_slice(frame);
        b
    }

    /// The L4 checksum of an IP packet (TCP or UDP, IPv4 or IPv6, through
    /// extension headers) verifies.
    fn l4_checksum_ok(frame: &[u8]) -> bool {
        let loc = vlan::locate_l3(frame).unwrap();
        let ip = &frame[loc.offset..];
        let (ph, proto, l4) = if loc.ethertype == EtherType::IPV4 {
            let p = ipv4::Packet::new_checked(ip).unwrap();
            let ph = PseudoHeader::V4 {
                src: p.src_addr(),
                dst: p.dst_addr(),
            };
            let (hl, total) = (usize::from(p.header_len()), usize::from(p.total_len()));
            (ph, p.protocol(), &ip[hl..total])
        } else {
            let p = ipv6::Packet::new_checked(ip).unwrap();
            let u = p.upper_layer().unwrap();
            let ph = PseudoHeader::V6 {
                src: p.src_addr(),
                dst: p.dst_addr(),
            };
            let end = 40 + usize::from(p.payload_len());
            (ph, u.protocol, &ip[u.offset..end])
        };
        match proto {
            IpProtocol::TCP => tcp::Packet::new_checked(l4).unwrap().verify_checksum(&ph),
            IpProtocol::UDP => udp::Packet::new_checked(l4).unwrap().verify_checksum(&ph),
            _ => panic!("not TCP or UDP"),
        }
    }

    fn ip4_header_ok(frame: &[u8]) -> bool {
        let loc = vlan::locate_l3(frame).unwrap();
        ipv4::Packet::new_checked(&frame[loc.offset..])
            .unwrap()
            .verify_checksum()
    }

    /// Stamp, check everything, strip, compare with the original.
    fn roundtrip(frame: &[u8]) -> Vec<u8> {
        let mut buf = with_headroom(frame);
        let v6 = vlan::locate_l3(frame).unwrap().ethertype == EtherType::IPV6;
        let grow = if v6 { IPV6_GROWTH } else { IPV4_GROWTH };
        let key = FlowKey::from_inner_ethernet(frame).unwrap();
        let start = insert(&mut buf, HEADROOM, &repr()).unwrap();
        assert_eq!(start, HEADROOM - grow);
        let stamped = buf[start..].to_vec();
        assert_eq!(stamped.len(), frame.len() + grow);
        assert_eq!(FlowKey::from_inner_ethernet(&stamped), Ok(key));
        if !v6 {
            assert!(ip4_header_ok(&stamped), "IPv4 header checksum");
            assert!(find_ipv6(&stamped).is_err());
        } else {
            assert!(find_ipv4(&stamped).is_err());
        }
        let (off, r) = find(&stamped).unwrap().unwrap();
        assert_eq!(r, repr());
        let framing = if v6 { Framing::Ipv6 } else { Framing::Ipv4 };
        assert_eq!(stamped[off..off + 28], repr().to_bytes(framing));
        assert_eq!(buf[..start], vec![0xee; start][..], "headroom untouched");
        assert_eq!(
            insert(&mut buf, start, &repr()),
            Err(StampError::AlreadyStamped)
        );
        let (found, r2) = find_located(&stamped).unwrap().unwrap();
        assert_eq!(r2, r);
        if !v6 {
            assert_eq!(found.ipv4_offset(), Some(off));
        }
        let mut again = buf.clone();
        let back2 = strip_found(&mut again, start, &found).unwrap();
        let back = strip(&mut buf, start).unwrap();
        assert_eq!((back2, &again), (back, &buf), "strip_found is strip");
        assert_eq!(back, HEADROOM);
        assert_eq!(&buf[back..], frame, "strip restores the frame");
        assert_eq!(find(&buf[back..]), Ok(None));
        assert_eq!(strip(&mut buf, back), Err(StampError::NotStamped));
        stamped
    }

    #[test]
    fn tcp_syn_roundtrip() {
        assert!(l4_checksum_ok(&TCP_SYN));
        let s = roundtrip(&TCP_SYN);
        // Option right after the 20-byte header, IHL 12, total 60 + 28.
        assert_eq!(s[14], 0x4c);
        assert_eq!(u16::from_be_bytes([s[16], s[17]]), 60 + 28);
        assert_eq!(s[34..36], [0x9e, 28]);
        assert_eq!(s[14 + 48..], TCP_SYN[34..], "TCP segment unchanged");
        assert!(l4_checksum_ok(&s), "TCP checksum still verifies");
    }

    #[test]
    fn udp_and_icmp_roundtrip() {
        let s = roundtrip(&UDP);
        assert!(l4_checksum_ok(&s));
        // ICMP echo with Ethernet padding: the padding stays at the end.
        let s = roundtrip(&ICMP_ECHO);
        assert_eq!(s.len(), 60 + 28);
        assert_eq!(s[s.len() - 6..], [0; 6]);
        let k = FlowKey::from_inner_ethernet(&s).unwrap();
        assert_eq!(
            (k.protocol, k.src_port, k.dst_port),
            (IpProtocol::ICMP, 1234, 0)
        );
    }

    #[test]
    fn existing_options_and_end_of_list() {
        let s = roundtrip(&UDP_OPTIONS);
        // NOP, Router Alert, NOP stay first; ours goes where End of Option
        // List was; EOL and its padding byte follow.
        assert_eq!(s[14], 0x47 + 7);
        assert_eq!(s[34..40], [1, 0x94, 4, 0, 0, 1]);
        assert_eq!(s[40..42], [0x9e, 28]);
        assert_eq!(s[68..70], [0, 0]);
        assert!(l4_checksum_ok(&s));
    }

    #[test]
    fn odd_offset_option_keeps_checksums_right() {
        // One NOP then EOL: our option starts at an odd header offset.
        let f = v4_frame(None, &[1, 0, 0, 0], IpProtocol::UDP, b"odd");
        let s = roundtrip(&f);
        assert_eq!(s[35..37], [0x9e, 28]);
        assert!(ip4_header_ok(&s));
    }

    #[test]
    fn negative_zero_checksum_comes_back_canonical() {
        let mut f = TCP_SYN;
        f[24..26].copy_from_slice(&[0xff, 0xff]);
        let mut buf = with_headroom(&f);
        let s = insert_ipv4(&mut buf, HEADROOM, &repr()).unwrap();
        let back = strip_ipv4(&mut buf, s).unwrap();
        assert_eq!(buf[back + 24..back + 26], [0, 0]);
        assert_eq!(buf[back..back + 24], f[..24]);
        assert_eq!(buf[back + 26..], f[26..]);
    }

    #[test]
    fn vlan_tagged_frames() {
        let f = v4_frame(Some(100), &[], IpProtocol::TCP, b"payload");
        let s = roundtrip(&f);
        assert_eq!(s[12..14], [0x81, 0x00]);
        assert_eq!(s[38..40], [0x9e, 28]);
        assert!(l4_checksum_ok(&s));
    }

    #[test]
    fn ipv6_roundtrip() {
        assert!(l4_checksum_ok(&TCP6_SYN));
        let s = roundtrip(&TCP6_SYN);
        assert_eq!(s[20], 60, "next header: destination options");
        assert_eq!(u16::from_be_bytes([s[18], s[19]]), 40 + 32);
        assert_eq!(s[54..58], [6, 3, 0x1e, 26]);
        assert_eq!(s[84..86], [1, 0]);
        assert!(l4_checksum_ok(&s));
        // Existing extension headers: ours goes first, theirs follow.
        let mut f = TCP6_SYN.to_vec();
        f[20] = 60;
        f[18..20].copy_from_slice(&(40u16 + 8).to_be_bytes());
        f.splice(54..54, [6, 0, 1, 4, 0, 0, 0, 0]);
        let s = roundtrip(&f);
        assert_eq!(s[54], 60, "our header names theirs");
        assert!(l4_checksum_ok(&s));
    }

    #[test]
    fn refusals_leave_the_buffer_alone() {
        let check = |frame: &[u8], start: usize, want: StampError| {
            let mut buf = with_headroom(frame);
            let before = buf.clone();
            let start = HEADROOM - start;
            assert_eq!(insert(&mut buf, start, &repr()), Err(want), "insert");
            assert_eq!(buf, before);
        };
        let mut buf = TCP_SYN.to_vec();
        assert_eq!(insert(&mut buf, 0, &repr()), Err(StampError::NoHeadroom));
        assert_eq!(buf, TCP_SYN);
        for (frame, room) in [(&TCP_SYN[..], 27), (&TCP6_SYN[..], 31)] {
            let mut buf = vec![0; room];
            buf.extend_from_slice(frame);
            assert_eq!(insert(&mut buf, room, &repr()), Err(StampError::NoHeadroom));
            assert_eq!(&buf[room..], frame);
            assert!(insert(&mut buf[1..], room - 1, &repr()).is_err());
        }

        // 16 bytes of options leave 24: not enough.
        let full = v4_frame(None, &[1; 16], IpProtocol::UDP, b"x");
        check(&full, 0, StampError::OptionsFull);
        let mut buf = with_headroom(&full);
        assert_eq!(strip(&mut buf, HEADROOM), Err(StampError::NotStamped));
        // 12 bytes of options: exactly fits (IHL 15).
        let s = roundtrip(&v4_frame(None, &[1; 12], IpProtocol::UDP, b"x"));
        assert_eq!(s[14], 0x4f);

        let arp = {
            let mut f = TCP_SYN;
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f
        };
        check(&arp, 0, StampError::NotIp);
        assert_eq!(find(&arp), Err(StampError::NotIp));
        check(&TCP_SYN[..30], 0, StampError::Truncated);
        check(&TCP_SYN[..10], 0, StampError::Truncated);
        let mut bad = TCP_SYN;
        bad[14] = 0x44;
        check(&bad, 0, StampError::BadIpHeader);
        // An option with length 1 cannot be walked.
        check(
            &v4_frame(None, &[0x94, 1, 0, 0], IpProtocol::UDP, b""),
            0,
            StampError::BadOptions,
        );
        let mut hbh = TCP6_SYN;
        hbh[20] = 0;
        check(&hbh, 0, StampError::Unsupported);

        // Total length would pass 65535.
        let big = v4_frame(
            None,
            &[],
            IpProtocol::UDP,
            &vec![0; 65535 - 28 - 20 - 8 + 1],
        );
        check(&big, 0, StampError::TooLong);
        let ok = v4_frame(None, &[], IpProtocol::UDP, &vec![0; 65535 - 28 - 20 - 8]);
        roundtrip(&ok);
    }

    #[test]
    fn malformed_identity_options() {
        // Our type with a length of 8: found, but malformed; strip refuses.
        let mut opt = vec![0x9e, 8, 0x10, 0, 0, 0, 0, 0];
        let f = v4_frame(None, &opt, IpProtocol::UDP, b"x");
        assert_eq!(find(&f), Err(StampError::Malformed));
        let mut buf = with_headroom(&f);
        assert_eq!(strip(&mut buf, HEADROOM), Err(StampError::Malformed));
        assert_eq!(
            insert(&mut buf, HEADROOM, &repr()),
            Err(StampError::AlreadyStamped)
        );
        // Two identity options.
        opt = repr().to_bytes(Framing::Ipv4).to_vec();
        opt.extend_from_slice(&[0x9e, 4, 0, 0]);
        let f = v4_frame(None, &opt, IpProtocol::UDP, b"x");
        assert_eq!(find(&f), Err(StampError::Malformed));
        // Version 2.
        let mut opt = repr().to_bytes(Framing::Ipv4);
        opt[2] = 0x20;
        let f = v4_frame(None, &opt, IpProtocol::UDP, b"x");
        assert_eq!(find(&f), Err(StampError::Malformed));
        // IPv6: our option first in a destination options header of
        // another layout.
        let s = roundtrip(&TCP6_SYN);
        let mut bad = s.clone();
        bad[84] = 0;
        assert_eq!(find(&bad), Err(StampError::Malformed));
        let mut buf = with_headroom(&bad);
        assert_eq!(strip(&mut buf, HEADROOM), Err(StampError::Malformed));
        // Payload length too short to hold the extension header.
        let mut bad = s.clone();
        bad[18..20].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(find(&bad), Err(StampError::Malformed));
        // Destination options that are not ours: no identity.
        let mut theirs = TCP6_SYN.to_vec();
        theirs[20] = 60;
        theirs[18..20].copy_from_slice(&(40u16 + 8).to_be_bytes());
        theirs.splice(54..54, [6, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(find(&theirs), Ok(None));
    }

    #[test]
    fn announce_only_packets() {
        let mut r = repr();
        let mut out = [0u8; 256];
        assert_eq!(
            announce_ipv4(&TCP_SYN, &r, &mut out),
            Err(StampError::NotAnnounce)
        );
        r.flags = FLAG_ANNOUNCE;
        let n = announce_ipv4(&TCP_SYN, &r, &mut out).unwrap();
        assert_eq!(n, 14 + 20 + 28 + 8);
        let a = &out[..n];
        assert!(ip4_header_ok(a));
        assert_eq!(a[..14], TCP_SYN[..14]);
        assert_eq!(u16::from_be_bytes([a[16], a[17]]), 20 + 28 + 8);
        assert_eq!(a[14 + 48..], TCP_SYN[34..42], "ports and sequence number");
        assert_eq!(find(a), Ok(Some((34, r))));
        assert_eq!(
            FlowKey::from_inner_ethernet(a),
            FlowKey::from_inner_ethernet(&TCP_SYN)
        );
        assert_eq!(
            announce_ipv4(&TCP_SYN, &r, &mut out[..n - 1]),
            Err(StampError::BufferTooSmall)
        );
        assert_eq!(
            announce_ipv4(&TCP6_SYN, &r, &mut out),
            Err(StampError::NotIp)
        );
        // With options and an EOL, as for insert.
        let n = announce_ipv4(&UDP_OPTIONS, &r, &mut out).unwrap();
        assert_eq!(out[40..42], [0x9e, 28]);
        assert!(ip4_header_ok(&out[..n]));

        let n = announce_ipv6(&TCP6_SYN, &r, &mut out).unwrap();
        let a = &out[..n];
        assert_eq!(n, 14 + 40 + 32 + 8);
        assert_eq!(u16::from_be_bytes([a[18], a[19]]), 32 + 8);
        assert_eq!(find(a).unwrap().unwrap().1, r);
        assert_eq!(
            FlowKey::from_inner_ethernet(a),
            FlowKey::from_inner_ethernet(&TCP6_SYN)
        );
        // Announce of a stamped frame is refused.
        let mut buf = with_headroom(&TCP_SYN);
        let s = insert_ipv4(&mut buf, HEADROOM, &repr()).unwrap();
        assert_eq!(
            announce_ipv4(&buf[s..], &r, &mut out),
            Err(StampError::AlreadyStamped)
        );
    }

    fn tag_key(sender: u32) -> TagKey {
        let s = Secret::new(vec![9; 32]).unwrap();
        derive_key(&s, WardenId(sender), WardenId(2), 100)
    }

    /// The receive path end to end: find, flow key, verify, strip.
    #[test]
    fn stamped_syn_verifies_and_tampering_fails() {
        let k = tag_key(1);
        let vni = 4242;
        let input = TagInput::new(FlowKey::from_inner_ethernet(&TCP_SYN).unwrap(), vni);
        let mut r = repr();
        r.tag = mint(&k, &r, &input);
        let mut buf = with_headroom(&TCP_SYN);
        let start = insert(&mut buf, HEADROOM, &r).unwrap();
        let stamped = buf[start..].to_vec();

        let check = |frame: &[u8], key: &TagKey, vni: u32| -> bool {
            let Ok(Some((_, r))) = find(frame) else {
                return false;
            };
            let Ok(flow) = FlowKey::from_inner_ethernet(frame) else {
                return false;
            };
            verify(key, &r, &TagInput::new(flow, vni))
        };
        assert!(check(&stamped, &k, vni));
        assert!(!check(&stamped, &k, vni + 1), "other VNI");
        assert!(!check(&stamped, &tag_key(3), vni), "key of another pair");
        // Every byte of the addresses, protocol, ports and every covered
        // header byte matters.
        let covered = (14 + 9..14 + 10) // protocol
            .chain(14 + 12..14 + 20) // addresses
            .chain(14 + 20 + 2..14 + 20 + 28) // header fields and tag
            .chain(14 + 48..14 + 52); // ports
        for i in covered {
            let mut bad = stamped.clone();
            bad[i] ^= 0x01;
            assert!(!check(&bad, &k, vni), "flipped byte {i}");
        }
        assert_eq!(strip(&mut buf, start), Ok(HEADROOM));
        assert_eq!(&buf[HEADROOM..], &TCP_SYN[..]);
    }

    /// An Ethernet frame with optional VLAN tag, IPv4 with `options`
    /// (padded with EOL to 4 bytes), and a TCP or UDP segment around
    /// `payload`, all checksums right.
    fn v4_frame(vid: Option<u16>, options: &[u8], proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 0x12, 2, 0, 0, 0, 0, 0x11];
        if let Some(vid) = vid {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let l3 = f.len();
        let mut opts = options.to_vec();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let ihl = 20 + opts.len();
        let l4_hdr = if proto == IpProtocol::TCP { 20 } else { 8 };
        let total = ihl + l4_hdr + payload.len();
        f.extend_from_slice(&[0x40 | (ihl / 4) as u8, 0]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto.0, 0, 0]);
        f.extend_from_slice(&[10, 1, 0, 2, 10, 1, 0, 3]);
        f.extend_from_slice(&opts);
        let l4 = f.len();
        f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        if proto == IpProtocol::TCP {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        f.extend_from_slice(payload);
        ipv4::Packet::new_unchecked(&mut f[l3..]).fill_checksum();
        let ph = PseudoHeader::V4 {
            src: [10, 1, 0, 2].into(),
            dst: [10, 1, 0, 3].into(),
        };
        if proto == IpProtocol::TCP {
            tcp::Packet::new_unchecked(&mut f[l4..]).fill_checksum(&ph);
        } else {
            udp::Packet::new_unchecked(&mut f[l4..]).fill_checksum(&ph);
        }
        f
    }

    /// IPv4 options that walk: NOPs, Router Alert, a generic option, then
    /// maybe End of Option List and padding.
    fn arb_options() -> impl Strategy<Value = Vec<u8>> {
        let one = prop_oneof![
            Just(vec![1u8]),
            Just(vec![0x94, 4, 0, 0]),
            (0u8..6).prop_map(|n| {
                let mut v = vec![0x88, n + 2];
                v.extend(std::iter::repeat_n(0xab, usize::from(n)));
                v
            }),
        ];
        (proptest::collection::vec(one, 0..4), any::<bool>()).prop_filter_map(
            "at most 12 bytes",
            |(parts, eol)| {
                let mut v: Vec<u8> = parts.concat();
                if eol {
                    v.push(0);
                }
                (v.len() <= 12).then_some(v)
            },
        )
    }

    proptest! {
        #[test]
        fn insert_strip_roundtrip_v4(
            vid in proptest::option::of(1u16..4095),
            opts in arb_options(),
            tcp in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let proto = if tcp { IpProtocol::TCP } else { IpProtocol::UDP };
            let f = v4_frame(vid, &opts, proto, &payload);
            prop_assert!(ip4_header_ok(&f));
            let s = roundtrip(&f);
            prop_assert!(ip4_header_ok(&s));
            prop_assert!(l4_checksum_ok(&s));
        }

        #[test]
        fn insert_strip_roundtrip_v6(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            hop_limit in any::<u8>(),
        ) {
            let mut f = TCP6_SYN.to_vec();
            f[21] = hop_limit;
            // Grow the TCP payload and fix lengths and checksum.
            f.extend_from_slice(&payload);
            let pl = (f.len() - 54) as u16;
            f[18..20].copy_from_slice(&pl.to_be_bytes());
            let ph = PseudoHeader::V6 {
                src: "fd00::2".parse().unwrap(),
                dst: "fd00::3".parse().unwrap(),
            };
            tcp::Packet::new_unchecked(&mut f[54..]).fill_checksum(&ph);
            let s = roundtrip(&f);
            prop_assert!(l4_checksum_ok(&s));
        }

        /// Arbitrary bytes never panic find, strip, insert or announce,
        /// and a failed strip or insert leaves the buffer alone.
        #[test]
        fn arbitrary_frames_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..120),
            start in 0usize..40,
        ) {
            let _ = find(&data);
            let _ = find_ipv4(&data);
            let _ = find_ipv6(&data);
            let mut out = [0u8; 160];
            let r = Repr { flags: FLAG_ANNOUNCE, ..repr() };
            let _ = announce_ipv4(&data, &r, &mut out);
            let _ = announce_ipv6(&data, &r, &mut out);
            let mut buf = data.clone();
            if strip(&mut buf, start).is_err() {
                prop_assert_eq!(&buf, &data);
            }
            let mut buf = data.clone();
            if insert(&mut buf, start, &repr()).is_err() {
                prop_assert_eq!(&buf, &data);
            }
        }

        /// Stamped frames with a byte changed anywhere never panic either,
        /// and strip either fails cleanly or shortens the frame by 28.
        #[test]
        fn mutated_stamped_frames(i in 0usize..88, v in any::<u8>(), v6 in any::<bool>()) {
            let frame: &[u8] = if v6 { &TCP6_SYN } else { &TCP_SYN };
            let mut buf = with_headroom(frame);
            let start = insert(&mut buf, HEADROOM, &repr()).unwrap();
            let len = buf.len() - start;
            buf[start + i % len] = v;
            let _ = find(&buf[start..]);
            if let Ok(s) = strip(&mut buf, start) {
                prop_assert!(s == start + IPV4_GROWTH || s == start + IPV6_GROWTH);
            }
        }
    }
}
