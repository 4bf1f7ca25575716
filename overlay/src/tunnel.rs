//! VXLAN over IPv4 encapsulation and decapsulation for the fast path.
//!
//! Encap copies a precomputed 50-byte outer header (Ethernet, IPv4 without
//! options, UDP, VXLAN) into the headroom in front of the inner frame and
//! patches four fields: IP total length, IP checksum (incrementally, from
//! the template's), UDP length and UDP source port (the flow entropy). The
//! UDP checksum stays 0, as RFC 7348 allows over IPv4.
//!
//! Decap checks every outer header and returns one distinct, `Copy` error
//! per failure so that the engine can count drop reasons. [`DecapShape`]
//! gives decap's answer for the common shape (untagged, IPv4 without
//! options, UDP checksum 0, VXLAN flags I) from a masked compare of the
//! fixed bytes, the IP checksum and the two lengths.
//!
//! ```
//! use overlay::{decap, flow_hash, vxlan_src_port, FlowKey, MacAddr, OuterParams, OuterTemplate, Vni, OUTER_LEN};
//! use std::net::Ipv4Addr;
//!
//! // Setup path: one template per (peer VTEP, VNI).
//! let t = OuterTemplate::new(&OuterParams {
//!     src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
//!     dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
//!     src_ip: Ipv4Addr::new(10, 0, 0, 1),
//!     dst_ip: Ipv4Addr::new(10, 0, 0, 11),
//!     vni: Vni::new(100).unwrap(),
//!     dst_port: 4789,
//!     ttl: 64,
//!     gbp: None,
//! });
//! // Fast path: the inner frame sits after OUTER_LEN bytes of headroom.
//! let mut buf = [0u8; OUTER_LEN + 60];
//! buf[OUTER_LEN + 12..OUTER_LEN + 14].copy_from_slice(&[0x08, 0x06]); // an ARP frame
//! let sport = match FlowKey::from_inner_ethernet(&buf[OUTER_LEN..]) {
//!     Ok(k) => vxlan_src_port(flow_hash(&k)),
//!     Err(_) => vxlan_src_port(0), // not IP: no 5-tuple, fixed entropy
//! };
//! t.write_into(&mut buf, 60, sport).unwrap();
//!
//! let d = decap(&buf, 4789).unwrap();
//! assert_eq!((d.vni.get(), d.inner_offset, d.inner_len), (100, OUTER_LEN, 60));
//! ```

use crate::checksum;
use crate::put16;
use crate::types::{MacAddr, Vni};
use crate::vxlan::{self, Gbp};
use core::fmt;
use std::net::Ipv4Addr;

/// Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8).
pub const OUTER_LEN: usize = 50;

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const IP_AT: usize = ETH_LEN;
const IP_TOTAL_LEN_AT: usize = IP_AT + 2;
const IP_CHECKSUM_AT: usize = IP_AT + 10;
const UDP_AT: usize = IP_AT + IP_LEN;
const UDP_SRC_PORT_AT: usize = UDP_AT;
const UDP_LEN_AT: usize = UDP_AT + 4;
const VXLAN_AT: usize = UDP_AT + UDP_LEN;
/// Bytes after the IP header start that are not inner frame: IP + UDP + VXLAN.
const IP_OVERHEAD: usize = IP_LEN + UDP_LEN + vxlan::HEADER_LEN;

/// Longest inner frame that fits an IPv4 total length.
pub const MAX_INNER_LEN: usize = u16::MAX as usize - IP_OVERHEAD;

/// What the outer headers of one tunnel are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OuterParams {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub vni: Vni,
    /// UDP destination port, usually [`vxlan::DEFAULT_PORT`].
    pub dst_port: u16,
    pub ttl: u8,
    /// Sets the G flag and the group policy ID when present.
    pub gbp: Option<Gbp>,
}

/// Why encapsulation refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapError {
    /// The headroom slice is shorter than [`OUTER_LEN`].
    BufferTooShort,
    /// The inner frame would not fit in an IPv4 total length.
    TooLong,
}

impl fmt::Display for EncapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncapError::BufferTooShort => "headroom shorter than the outer header",
            EncapError::TooLong => "inner frame too long for IPv4",
        })
    }
}

impl std::error::Error for EncapError {}

/// A precomputed outer header for one (peer, VNI) tunnel.
#[derive(Clone, PartialEq, Eq)]
pub struct OuterTemplate {
    bytes: [u8; OUTER_LEN],
    /// IP header checksum of the template, computed with total length 0.
    ip_checksum0: u16,
    params: OuterParams,
}

impl fmt::Debug for OuterTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OuterTemplate")
            .field("params", &self.params)
            .finish()
    }
}

impl OuterTemplate {
    /// Build the template. The IP header has DF set and ident 0 (atomic
    /// datagrams, RFC 6864): the underlay must carry the full frame.
    pub fn new(p: &OuterParams) -> OuterTemplate {
        let mut b = [0u8; OUTER_LEN];
        b[0..6].copy_from_slice(&p.dst_mac.0);
        b[6..12].copy_from_slice(&p.src_mac.0);
        put16(&mut b, 12, 0x0800);
        let ip = &mut b[IP_AT..UDP_AT];
        ip[0] = 0x45;
        // tos 0, total length 0 for now, ident 0
        put16(ip, 6, 0x4000); // DF
        ip[8] = p.ttl;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&p.src_ip.octets());
        ip[16..20].copy_from_slice(&p.dst_ip.octets());
        let ip_checksum0 = checksum::checksum(ip);
        // UDP: source port and length per packet; checksum 0.
        put16(&mut b, UDP_AT + 2, p.dst_port);
        vxlan::Packet::new_unchecked(&mut b[VXLAN_AT..]).set_header(p.vni, p.gbp);
        OuterTemplate {
            bytes: b,
            ip_checksum0,
            params: *p,
        }
    }

    pub fn params(&self) -> &OuterParams {
        &self.params
    }

    /// The template as stored (lengths, checksum and source port zero).
    pub fn bytes(&self) -> &[u8; OUTER_LEN] {
        &self.bytes
    }

    /// Write the outer header for an inner frame of `inner_len` bytes.
    #[inline]
    pub fn write(
        &self,
        hdr: &mut [u8; OUTER_LEN],
        inner_len: usize,
        src_port: u16,
    ) -> Result<(), EncapError> {
        if inner_len > MAX_INNER_LEN {
            return Err(EncapError::TooLong);
        }
        // Fits in u16: checked against MAX_INNER_LEN above.
        let total = (inner_len + IP_OVERHEAD) as u16;
        *hdr = self.bytes;
        put16(hdr, IP_TOTAL_LEN_AT, total);
        put16(
            hdr,
            IP_CHECKSUM_AT,
            checksum::update_u16(self.ip_checksum0, 0, total),
        );
        put16(hdr, UDP_SRC_PORT_AT, src_port);
        put16(hdr, UDP_LEN_AT, total - IP_LEN as u16);
        Ok(())
    }

    /// As [`OuterTemplate::write`], into the first [`OUTER_LEN`] bytes of
    /// `buf` (the headroom right before the inner frame).
    #[inline]
    pub fn write_into(
        &self,
        buf: &mut [u8],
        inner_len: usize,
        src_port: u16,
    ) -> Result<(), EncapError> {
        let hdr: &mut [u8; OUTER_LEN] = buf
            .get_mut(..OUTER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(EncapError::BufferTooShort)?;
        self.write(hdr, inner_len, src_port)
    }
}

/// Rewrite the VXLAN flags and group policy of a written outer header, for
/// a per-flow group id. No checksum covers these bytes (UDP checksum 0).
/// Writes what [`vxlan::Packet::set_header`] writes, straight into the
/// fixed-size header (no slice bounds to check: encap calls it per packet).
#[inline]
pub fn set_gbp(hdr: &mut [u8; OUTER_LEN], vni: Vni, gbp: Option<Gbp>) {
    let (flags, ext) = match gbp {
        Some(g) => (
            vxlan::FLAG_G | vxlan::FLAG_I,
            (u32::from(
                if g.dont_learn { vxlan::GBP_FLAG_D } else { 0 }
                    | if g.policy_applied {
                        vxlan::GBP_FLAG_A
                    } else {
                        0
                    },
            ) << 16)
                | u32::from(g.group),
        ),
        None => (vxlan::FLAG_I, 0),
    };
    let first = (u32::from(flags) << 24) | ext;
    // VNI in the top 24 bits, the reserved byte 0.
    let second = vni.get() << 8;
    hdr[VXLAN_AT..VXLAN_AT + 4].copy_from_slice(&first.to_be_bytes());
    hdr[VXLAN_AT + 4..VXLAN_AT + 8].copy_from_slice(&second.to_be_bytes());
}

/// Why decapsulation dropped a frame. One variant per check so that each
/// maps to its own drop counter; `as u8` indexes a counter array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DecapError {
    /// The frame ends inside an outer header (or before IP total length).
    Truncated = 0,
    /// Outer EtherType is not IPv4 (VLAN-tagged underlay included).
    NotIpv4,
    /// Version not 4, IHL below 5, or total length below the header.
    BadIpHeader,
    BadIpChecksum,
    /// MF set or a fragment offset: fragments are not reassembled.
    Fragment,
    NotUdp,
    /// UDP destination port is not the VXLAN port.
    NotVxlanPort,
    /// UDP length below 8 or beyond the IP payload.
    BadUdpLength,
    /// A nonzero UDP checksum that does not verify.
    BadUdpChecksum,
    /// I flag clear or a must-be-zero bit set.
    BadVxlanFlags,
    /// Less than an Ethernet header after VXLAN.
    InnerTooShort,
}

impl DecapError {
    /// Number of variants, to size counter arrays.
    pub const COUNT: usize = 11;

    pub const ALL: [DecapError; DecapError::COUNT] = [
        DecapError::Truncated,
        DecapError::NotIpv4,
        DecapError::BadIpHeader,
        DecapError::BadIpChecksum,
        DecapError::Fragment,
        DecapError::NotUdp,
        DecapError::NotVxlanPort,
        DecapError::BadUdpLength,
        DecapError::BadUdpChecksum,
        DecapError::BadVxlanFlags,
        DecapError::InnerTooShort,
    ];

    /// A stable snake_case name for counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            DecapError::Truncated => "truncated",
            DecapError::NotIpv4 => "not_ipv4",
            DecapError::BadIpHeader => "bad_ip_header",
            DecapError::BadIpChecksum => "bad_ip_checksum",
            DecapError::Fragment => "fragment",
            DecapError::NotUdp => "not_udp",
            DecapError::NotVxlanPort => "not_vxlan_port",
            DecapError::BadUdpLength => "bad_udp_length",
            DecapError::BadUdpChecksum => "bad_udp_checksum",
            DecapError::BadVxlanFlags => "bad_vxlan_flags",
            DecapError::InnerTooShort => "inner_too_short",
        }
    }
}

impl fmt::Display for DecapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for DecapError {}

/// What decap learned from the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decapped {
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    pub outer_src_mac: MacAddr,
    pub outer_dst_mac: MacAddr,
    pub udp_src_port: u16,
    pub vni: Vni,
    /// Group policy fields when the G flag was set.
    pub gbp: Option<Gbp>,
    /// Offset of the inner Ethernet frame in the outer frame.
    pub inner_offset: usize,
    /// Length of the inner frame (bounded by the UDP length, so outer
    /// Ethernet padding is excluded).
    pub inner_len: usize,
}

impl Decapped {
    /// The inner frame within the `frame` that was decapsulated.
    pub fn inner<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.inner_offset..self.inner_offset.saturating_add(self.inner_len))
            .unwrap_or(&[])
    }
}

/// Check and strip Ethernet (untagged) / IPv4 / UDP to `udp_port` / VXLAN.
/// The IP header checksum is always verified, the UDP one when nonzero.
#[inline]
pub fn decap(frame: &[u8], udp_port: u16) -> Result<Decapped, DecapError> {
    use DecapError::*;
    // Fixed-size views first, so that field reads need no bounds checks.
    let (eth, ip) = frame.split_first_chunk::<ETH_LEN>().ok_or(Truncated)?;
    if eth[12..14] != [0x08, 0x00] {
        return Err(NotIpv4);
    }
    let (iph, _) = ip.split_first_chunk::<IP_LEN>().ok_or(Truncated)?;
    let ver_ihl = iph[0];
    if ver_ihl >> 4 != 4 || ver_ihl & 0x0f < 5 {
        return Err(BadIpHeader);
    }
    let hl = usize::from(ver_ihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([iph[2], iph[3]]));
    if ip.len() < hl {
        return Err(Truncated);
    }
    if total < hl {
        return Err(BadIpHeader);
    }
    let ip = ip.get(..total).ok_or(Truncated)?;
    let ip_sum = if hl == IP_LEN {
        checksum::sum_ipv4_header(iph)
    } else {
        checksum::sum(ip.get(..hl).ok_or(Truncated)?)
    };
    if ip_sum != 0xffff {
        return Err(BadIpChecksum);
    }
    if u16::from_be_bytes([iph[6], iph[7]]) & 0x3fff != 0 {
        return Err(Fragment);
    }
    if iph[9] != 17 {
        return Err(NotUdp);
    }
    let udp_all = ip.get(hl..).ok_or(Truncated)?;
    let (udph, _) = udp_all.split_first_chunk::<UDP_LEN>().ok_or(Truncated)?;
    if u16::from_be_bytes([udph[2], udph[3]]) != udp_port {
        return Err(NotVxlanPort);
    }
    let ulen = usize::from(u16::from_be_bytes([udph[4], udph[5]]));
    if ulen < UDP_LEN {
        return Err(BadUdpLength);
    }
    let udp = udp_all.get(..ulen).ok_or(BadUdpLength)?;
    let outer_src = Ipv4Addr::new(iph[12], iph[13], iph[14], iph[15]);
    let outer_dst = Ipv4Addr::new(iph[16], iph[17], iph[18], iph[19]);
    if udph[6..8] != [0, 0] {
        // `ulen` came from a u16, so the cast is lossless.
        let ph =
            checksum::pseudo_header_v4(outer_src, outer_dst, crate::IpProtocol::UDP, ulen as u32);
        if checksum::add(ph, checksum::sum(udp)) != 0xffff {
            return Err(BadUdpChecksum);
        }
    }
    let vx_and_inner = udp.get(UDP_LEN..).ok_or(Truncated)?;
    let (vxh, inner) = vx_and_inner
        .split_first_chunk::<{ vxlan::HEADER_LEN }>()
        .ok_or(Truncated)?;
    // A view over the fixed-size header: its reads compile without checks.
    let vx = vxlan::Packet::new_unchecked(vxh);
    vx.check_flags().map_err(|_| BadVxlanFlags)?;
    let inner_len = inner.len();
    if inner_len < ETH_LEN {
        return Err(InnerTooShort);
    }
    Ok(Decapped {
        outer_src,
        outer_dst,
        outer_src_mac: MacAddr([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]]),
        outer_dst_mac: MacAddr([eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]),
        udp_src_port: u16::from_be_bytes([udph[0], udph[1]]),
        vni: vx.vni(),
        gbp: vx.gbp(),
        inner_offset: ETH_LEN + hl + UDP_LEN + vxlan::HEADER_LEN,
        inner_len,
    })
}

/// [`decap`] of the common shape in a few word compares: untagged
/// Ethernet to one VTEP's MAC, IPv4 without options and not fragmented,
/// to its address, UDP to its port with checksum 0, VXLAN with only the I
/// flag. The fixed bytes of the first 56 are checked under a mask; then
/// the IP header checksum and the two lengths. Any other frame (another
/// shape, or an invalid one) gets `None`: [`decap`] decides it and says
/// why. For a frame it accepts, the answer is [`decap`]'s.
#[derive(Debug, Clone, Copy)]
pub struct DecapShape {
    mask: [u64; SHAPE_WORDS],
    want: [u64; SHAPE_WORDS],
}

const SHAPE_WORDS: usize = 7;
const SHAPE_LEN: usize = SHAPE_WORDS * 8;

impl DecapShape {
    /// The shape of VXLAN to `dst_mac` / `dst_ip`, UDP port `udp_port`.
    pub fn new(dst_mac: MacAddr, dst_ip: Ipv4Addr, udp_port: u16) -> DecapShape {
        let mut mask = [0u8; SHAPE_LEN];
        let mut want = [0u8; SHAPE_LEN];
        let mut fix = |at: usize, m: &[u8], w: &[u8]| {
            mask[at..at + m.len()].copy_from_slice(m);
            want[at..at + w.len()].copy_from_slice(w);
        };
        fix(0, &[0xff; 6], &dst_mac.0);
        fix(12, &[0xff, 0xff], &[0x08, 0x00]);
        // Version 4, 20-byte header.
        fix(IP_AT, &[0xff], &[0x45]);
        // No more-fragments flag, offset 0 (DF is free).
        fix(IP_AT + 6, &[0x3f, 0xff], &[0, 0]);
        fix(IP_AT + 9, &[0xff], &[17]);
        fix(IP_AT + 16, &[0xff; 4], &dst_ip.octets());
        fix(UDP_AT + 2, &[0xff, 0xff], &udp_port.to_be_bytes());
        // UDP checksum 0: a nonzero one is verified by `decap`.
        fix(UDP_AT + 6, &[0xff, 0xff], &[0, 0]);
        let vx = UDP_AT + UDP_LEN;
        // Flags exactly I, reserved bytes zero (GBP takes `decap`).
        fix(vx, &[0xff; 4], &[0x08, 0, 0, 0]);
        fix(vx + 7, &[0xff], &[0]);
        let words = |b: &[u8; SHAPE_LEN]| {
            let mut w = [0u64; SHAPE_WORDS];
            for (i, c) in b.chunks_exact(8).enumerate() {
                w[i] = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            }
            w
        };
        DecapShape {
            mask: words(&mask),
            want: words(&want),
        }
    }

    /// Whether the fixed bytes of `frame` are this shape's (its lengths and
    /// checksum not checked): VXLAN for this VTEP, whether valid or not.
    #[inline]
    pub fn matches(&self, frame: &[u8]) -> bool {
        frame
            .first_chunk::<SHAPE_LEN>()
            .is_some_and(|head| self.fixed_bytes_match(head))
    }

    #[inline(always)]
    fn fixed_bytes_match(&self, head: &[u8; SHAPE_LEN]) -> bool {
        let mut off = 0u64;
        for i in 0..SHAPE_WORDS {
            let b = &head[i * 8..i * 8 + 8];
            let w = u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            off |= (w & self.mask[i]) ^ self.want[i];
        }
        off == 0
    }

    /// `Some(decap(frame, udp_port))` for a frame of this shape; `None`
    /// for any other (ask [`decap`]).
    #[inline]
    pub fn decap(&self, frame: &[u8]) -> Option<Decapped> {
        if !self.matches(frame) {
            return None;
        }
        Self::decap_matched(frame)
    }

    /// [`DecapShape::decap`] of a frame that [`DecapShape::matches`]
    /// already (its fixed bytes are not compared again): the checksum
    /// and the lengths are checked here. Of a frame that does not match,
    /// the answer means nothing.
    #[inline]
    pub fn decap_matched(frame: &[u8]) -> Option<Decapped> {
        let (head, _) = frame.split_first_chunk::<SHAPE_LEN>()?;
        let iph: &[u8; IP_LEN] = head[IP_AT..IP_AT + IP_LEN].try_into().ok()?;
        if checksum::sum_ipv4_header(iph) != 0xffff {
            return None;
        }
        // `decap`'s length rules for this shape: the IP packet within the
        // frame, the UDP datagram within the IP packet, and an inner
        // Ethernet header at least.
        let total = usize::from(u16::from_be_bytes([iph[2], iph[3]]));
        let ulen = usize::from(u16::from_be_bytes([head[UDP_LEN_AT], head[UDP_LEN_AT + 1]]));
        if total > frame.len() - ETH_LEN
            || IP_LEN + ulen > total
            || ulen < UDP_LEN + vxlan::HEADER_LEN + ETH_LEN
        {
            return None;
        }
        let vx = &head[UDP_AT + UDP_LEN..OUTER_LEN];
        Some(Decapped {
            outer_src: Ipv4Addr::new(iph[12], iph[13], iph[14], iph[15]),
            outer_dst: Ipv4Addr::new(iph[16], iph[17], iph[18], iph[19]),
            outer_src_mac: MacAddr([head[6], head[7], head[8], head[9], head[10], head[11]]),
            outer_dst_mac: MacAddr([head[0], head[1], head[2], head[3], head[4], head[5]]),
            udp_src_port: u16::from_be_bytes([head[UDP_AT], head[UDP_AT + 1]]),
            vni: Vni::new_masked(u32::from_be_bytes([0, vx[4], vx[5], vx[6]])),
            gbp: None,
            inner_offset: OUTER_LEN,
            inner_len: ulen - UDP_LEN - vxlan::HEADER_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::be16;
    use crate::ipv4;
    use crate::udp;
    use proptest::prelude::*;

    fn params() -> OuterParams {
        OuterParams {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 11),
            vni: Vni::new(100).unwrap(),
            dst_port: 4789,
            ttl: 64,
            gbp: None,
        }
    }

    fn inner() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x12]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x11]);
        f[12] = 0x08;
        f[13] = 0x06;
        f
    }

    fn encap(p: &OuterParams, inner: &[u8], sport: u16) -> Vec<u8> {
        let mut buf = vec![0u8; OUTER_LEN + inner.len()];
        buf[OUTER_LEN..].copy_from_slice(inner);
        OuterTemplate::new(p)
            .write_into(&mut buf, inner.len(), sport)
            .unwrap();
        buf
    }

    /// Recompute the IP checksum after a test edits the header.
    fn fix_ip(f: &mut [u8]) {
        ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
    }

    #[test]
    fn encap_layout_matches_kernel_style_header() {
        let f = encap(&params(), &inner(), 0xc123);
        // Byte-exact expectation, checksum computed independently.
        let mut expect = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // eth
            0x45, 0, 0, 96, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 11, // ip
            0xc1, 0x23, 0x12, 0xb5, 0, 76, 0, 0, // udp
            0x08, 0, 0, 0, 0, 0, 100, 0, // vxlan
        ];
        let c = checksum::checksum(&expect[14..34]);
        expect[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(&f[..OUTER_LEN], &expect[..]);
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(usize::from(u.len()), 8 + 8 + 60);
    }

    #[test]
    fn decap_roundtrip_with_gbp() {
        let g = Gbp {
            dont_learn: false,
            policy_applied: true,
            group: 0x0102,
        };
        let p = OuterParams {
            gbp: Some(g),
            ..params()
        };
        let mut f = encap(&p, &inner(), 50000);
        f.extend_from_slice(&[0; 4]); // trailing padding is ignored
        let d = decap(&f, 4789).unwrap();
        assert_eq!(d.outer_src, p.src_ip);
        assert_eq!(d.outer_dst, p.dst_ip);
        assert_eq!(d.outer_src_mac, p.src_mac);
        assert_eq!(d.outer_dst_mac, p.dst_mac);
        assert_eq!(d.udp_src_port, 50000);
        assert_eq!(d.vni, p.vni);
        assert_eq!(d.gbp, Some(g));
        assert_eq!(d.inner_offset, OUTER_LEN);
        assert_eq!(d.inner(&f), &inner()[..]);
        // Per-flow GBP rewrite.
        let hdr: &mut [u8; OUTER_LEN] = (&mut f[..OUTER_LEN]).try_into().unwrap();
        set_gbp(hdr, p.vni, None);
        assert_eq!(decap(&f, 4789).unwrap().gbp, None);
    }

    #[test]
    fn set_gbp_writes_what_set_header_writes() {
        let gbps = [
            None,
            Some(Gbp::default()),
            Some(Gbp {
                dont_learn: true,
                policy_applied: false,
                group: 0xbeef,
            }),
            Some(Gbp {
                dont_learn: false,
                policy_applied: true,
                group: 1,
            }),
        ];
        for vni in [0, 1, 100, 0x12_3456, 0xff_ffff] {
            for gbp in gbps {
                let vni = Vni::new(vni).unwrap();
                let mut a = [0xa5u8; OUTER_LEN];
                let mut b = a;
                set_gbp(&mut a, vni, gbp);
                vxlan::Packet::new_unchecked(&mut b[VXLAN_AT..]).set_header(vni, gbp);
                assert_eq!(a, b, "{vni:?} {gbp:?}");
            }
        }
    }

    #[test]
    fn encap_errors() {
        let t = OuterTemplate::new(&params());
        let mut small = [0u8; 49];
        assert_eq!(
            t.write_into(&mut small, 10, 1),
            Err(EncapError::BufferTooShort)
        );
        let mut hdr = [0u8; OUTER_LEN];
        assert_eq!(
            t.write(&mut hdr, MAX_INNER_LEN + 1, 1),
            Err(EncapError::TooLong)
        );
        t.write(&mut hdr, MAX_INNER_LEN, 1).unwrap();
        assert_eq!(be16(&hdr, IP_TOTAL_LEN_AT), u16::MAX);
        assert!(ipv4::Packet::new_unchecked(&hdr[14..34]).verify_checksum());
        assert!(format!("{t:?}").contains("OuterTemplate"));
    }

    #[test]
    fn every_decap_error() {
        use DecapError::*;
        let good = encap(&params(), &inner(), 50000);
        let check = |f: &[u8], e: DecapError| assert_eq!(decap(f, 4789), Err(e), "{e}");
        check(&good[..13], Truncated);
        let mut f = good.clone();
        f[12] = 0x81;
        check(&f, NotIpv4);
        check(&good[..33], Truncated);
        let mut f = good.clone();
        f[14] = 0x65;
        check(&f, BadIpHeader);
        let mut f = good.clone();
        f[14] = 0x44;
        check(&f, BadIpHeader);
        let mut f = good.clone();
        f[16] = 0;
        f[17] = 19;
        fix_ip(&mut f);
        check(&f, BadIpHeader);
        check(&good[..good.len() - 1], Truncated);
        let mut f = good.clone();
        f[22] ^= 1; // ttl
        check(&f, BadIpChecksum);
        let mut f = good.clone();
        f[20] = 0x20; // MF
        fix_ip(&mut f);
        check(&f, Fragment);
        let mut f = good.clone();
        f[21] = 1; // offset 8
        fix_ip(&mut f);
        check(&f, Fragment);
        let mut f = good.clone();
        f[23] = 6;
        fix_ip(&mut f);
        check(&f, NotUdp);
        assert_eq!(decap(&good, 4790), Err(NotVxlanPort));
        let mut f = good.clone();
        f[38] = 0;
        f[39] = 7;
        check(&f, BadUdpLength);
        let mut f = good.clone();
        f[39] = 255;
        check(&f, BadUdpLength);
        // A correct nonzero UDP checksum passes; a wrong one is caught.
        let mut f = good.clone();
        let ph = crate::PseudoHeader::V4 {
            src: params().src_ip,
            dst: params().dst_ip,
        };
        udp::Packet::new_unchecked(&mut f[34..]).fill_checksum(&ph);
        assert!(decap(&f, 4789).is_ok());
        f[60] ^= 0x10;
        check(&f, BadUdpChecksum);
        let mut f = good.clone();
        f[42] = 0; // I flag clear
        check(&f, BadVxlanFlags);
        let mut f = good.clone();
        f[49] = 1; // reserved byte
        check(&f, BadVxlanFlags);
        // IP/UDP lengths that end inside the VXLAN header or inner header.
        let cut = |n: usize| {
            let mut f = good[..n].to_vec();
            let total = (n - 14) as u16;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[38..40].copy_from_slice(&(total - 20).to_be_bytes());
            fix_ip(&mut f);
            f
        };
        check(&cut(45), Truncated);
        check(&cut(63), InnerTooShort);
        assert!(decap(&cut(64), 4789).is_ok());
        // IP payload shorter than a UDP header.
        let mut f = cut(50);
        f[16..18].copy_from_slice(&27u16.to_be_bytes());
        fix_ip(&mut f);
        check(&f, Truncated);
        assert_eq!(DecapError::ALL.len(), DecapError::COUNT);
        for (i, e) in DecapError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }

    #[test]
    fn decap_with_ip_options() {
        // Insert 4 bytes of IP options (NOP x3, EOL) into a valid frame.
        let good = encap(&params(), &inner(), 50000);
        let mut f = good[..34].to_vec();
        f.extend_from_slice(&[1, 1, 1, 0]);
        f.extend_from_slice(&good[34..]);
        f[14] = 0x46;
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip(&mut f);
        let d = decap(&f, 4789).unwrap();
        assert_eq!(d.inner_offset, OUTER_LEN + 4);
        assert_eq!(d.inner(&f), &inner()[..]);
    }

    proptest! {
        #[test]
        fn encap_decap_roundtrip(src in any::<u32>(), dst in any::<u32>(), vni in 0u32..=Vni::MAX,
                                 port in any::<u16>(), ttl in any::<u8>(), sport in any::<u16>(),
                                 gbp in proptest::option::of(any::<u16>()),
                                 inner_len in 14usize..400) {
            let p = OuterParams {
                src_ip: Ipv4Addr::from(src), dst_ip: Ipv4Addr::from(dst),
                vni: Vni::new(vni).unwrap(), dst_port: port, ttl,
                gbp: gbp.map(|group| Gbp { group, ..Gbp::default() }),
                ..params()
            };
            let inner: Vec<u8> = (0..inner_len).map(|i| i as u8).collect();
            let f = encap(&p, &inner, sport);
            let d = decap(&f, port).unwrap();
            prop_assert_eq!(d.vni, p.vni);
            prop_assert_eq!(d.gbp, p.gbp);
            prop_assert_eq!(d.udp_src_port, sport);
            prop_assert_eq!(d.inner(&f), &inner[..]);
            let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
            prop_assert!(ip.verify_checksum());
            prop_assert_eq!(ip.ttl(), ttl);
            // The common shape (no GBP) is taken by the word compares.
            let shape = DecapShape::new(p.dst_mac, p.dst_ip, port);
            prop_assert_eq!(shape.decap(&f), p.gbp.is_none().then_some(d));
        }

        /// What the shape accepts, `decap` accepts with the same answer,
        /// for this VTEP only: valid frames with random bytes of the first
        /// 60 changed, random padding, cut short or given a UDP checksum.
        #[test]
        fn decap_shape_accepts_only_what_decap_accepts(
            inner_len in 14usize..200,
            pad in 0usize..20,
            cut in proptest::option::of(0usize..300),
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            fix_ip_checksum in any::<bool>(),
            len_edit in proptest::option::of((any::<bool>(), -40i32..=40)),
        ) {
            let p = params();
            let shape = DecapShape::new(p.dst_mac, p.dst_ip, p.dst_port);
            let inner: Vec<u8> = (0..inner_len).map(|i| i as u8).collect();
            let mut f = encap(&p, &inner, 1234);
            f.resize(f.len() + pad, 0);
            if edits.is_empty() && cut.is_none() {
                // Unchanged: taken by the shape, so the test is not vacuous.
                prop_assert_eq!(shape.decap(&f), decap(&f, p.dst_port).ok());
                prop_assert!(shape.decap(&f).is_some());
            }
            for (at, b) in edits {
                f[at] = b;
            }
            if let Some((ip_total, delta)) = len_edit {
                // A length near the right one: the bounds are exact.
                let at = if ip_total { 16 } else { 38 };
                let v = i32::from(u16::from_be_bytes([f[at], f[at + 1]])) + delta;
                f[at..at + 2].copy_from_slice(&(v.clamp(0, 0xffff) as u16).to_be_bytes());
            }
            if fix_ip_checksum {
                // Edits behind a right checksum reach the later checks.
                f[24] = 0;
                f[25] = 0;
                let sum = !checksum::sum(&f[14..34]);
                f[24..26].copy_from_slice(&sum.to_be_bytes());
            }
            if let Some(c) = cut {
                f.truncate(c);
            }
            if shape.matches(&f) {
                // What the engine's underlay dispatch would send to decap.
                prop_assert_eq!(&f[..6], &p.dst_mac.0[..]);
                prop_assert_eq!((&f[12..14], f[14], f[23]), (&[8u8, 0][..], 0x45, 17));
                prop_assert_eq!(&f[30..34], &p.dst_ip.octets()[..]);
                prop_assert_eq!(&f[36..38], &p.dst_port.to_be_bytes()[..]);
            }
            if shape.matches(&f) {
                prop_assert_eq!(shape.decap(&f), DecapShape::decap_matched(&f));
            }
            if let Some(d) = shape.decap(&f) {
                prop_assert!(shape.matches(&f));
                prop_assert_eq!(Ok(d), decap(&f, p.dst_port));
                prop_assert_eq!((d.outer_dst, d.outer_dst_mac), (p.dst_ip, p.dst_mac));
            }
        }
    }
}
