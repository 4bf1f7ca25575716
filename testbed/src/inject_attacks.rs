//! Frames and captures for the engine attack tests
//! (testbed/tests/engine_attacks.rs, issue 6): injection into live flows,
//! spoofed replies, ARP and FDB poisoning, deep VLAN stacks, long IPv6
//! extension-header chains, ICMP games.
//!
//! Frames are written byte by byte here (the overlay Reprs refuse most of
//! what an attacker sends: stacked tags, long extension chains, ICMP errors
//! quoting other packets), every checksum right, so that the only defect of
//! a frame is the attack itself. Payloads that can carry one start with
//! [`MARKER`], a case byte and a sequence number ([`mark`]), so that a
//! packet that got through is recognisable in a capture wherever the mark
//! sits ([`find_mark`]).
//!
//! [`Capture`] runs tcpdump inside a lab namespace and reads its file while
//! it is being written.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, Stdio};

use overlay::{MacAddr, OuterParams, OuterTemplate, Vni, OUTER_LEN};

use crate::inject::Station;
use crate::inject_identity::pcap_frames;
use crate::netns::exec_in;

/// Starts the payload of every marked packet.
pub const MARKER: [u8; 16] = *b"warden-attack!!!";
/// Length of [`mark`]'s payload: marker, case, sequence number, filler.
pub const MARK_LEN: usize = 32;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_ARP: u16 = 0x0806;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_8021Q: u16 = 0x8100;
pub const ETH_8021AD: u16 = 0x88a8;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// IPv6 destination options header.
pub const PROTO_DSTOPTS: u8 = 60;
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// The payload of packet `seq` of case `case`.
pub fn mark(case: u8, seq: u32) -> Vec<u8> {
    let mut p = vec![0x5a; MARK_LEN];
    p[..MARKER.len()].copy_from_slice(&MARKER);
    p[MARKER.len()] = case;
    p[MARKER.len() + 1..MARKER.len() + 5].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The (case, sequence number) of the first mark in `frame`, anywhere.
pub fn find_mark(frame: &[u8]) -> Option<(u8, u32)> {
    let at = frame
        .windows(MARKER.len())
        .position(|w| w == MARKER.as_slice())?;
    let t = frame.get(at + MARKER.len()..at + MARKER.len() + 5)?;
    Some((t[0], u32::from_be_bytes([t[1], t[2], t[3], t[4]])))
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut acc: u64 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(hi) => acc += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        acc += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

/// An Ethernet frame: `tags` VLAN tags (each a TPID, VID 0, priority 0),
/// then `ethertype` and `payload`.
pub fn ethernet(
    dst: MacAddr,
    src: MacAddr,
    tags: &[u16],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    for tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (20-byte header, DF, TTL 64, checksum) around `l4`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h[6] = 0x40;
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// A UDP datagram over IPv4, checksum filled.
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = udp_header(sport, dport, payload);
    let c = inet_checksum(&[&pseudo_v4(src, dst, PROTO_UDP, d.len()), &d]);
    d[6..8].copy_from_slice(&nonzero(c).to_be_bytes());
    d
}

/// A UDP datagram over IPv6, checksum filled.
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = udp_header(sport, dport, payload);
    let c = inet_checksum(&[&pseudo_v6(src, dst, PROTO_UDP, d.len()), &d]);
    d[6..8].copy_from_slice(&nonzero(c).to_be_bytes());
    d
}

fn udp_header(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// 0 means "no checksum" in UDP: a computed 0 is sent as 0xffff.
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// One TCP segment's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// A TCP segment over IPv4 (no options), checksum filled.
pub fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, s: &Segment, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&s.sport.to_be_bytes());
    t[2..4].copy_from_slice(&s.dport.to_be_bytes());
    t[4..8].copy_from_slice(&s.seq.to_be_bytes());
    t[8..12].copy_from_slice(&s.ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = s.flags;
    t[14..16].copy_from_slice(&s.window.to_be_bytes());
    t.extend_from_slice(payload);
    let c = inet_checksum(&[&pseudo_v4(src, dst, PROTO_TCP, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// An ICMPv4 message: type, code, the 4 bytes after the checksum, data.
pub fn icmp4(kind: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ARP packet for IPv4 over Ethernet (`op` 1 request, 2 reply).
pub fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha.0);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha.0);
    a.extend_from_slice(&tpa.octets());
    a
}

/// An IPv6 packet carrying `l4` (of protocol `proto`) behind `dstopts`
/// destination options headers of 8 bytes each (a PadN option apiece).
pub fn ipv6_ext_chain(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dstopts: usize,
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    let payload_len = 8 * dstopts + l4.len();
    let mut p = Vec::with_capacity(40 + payload_len);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload_len as u16).to_be_bytes());
    p.push(if dstopts > 0 { PROTO_DSTOPTS } else { proto });
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    for i in 0..dstopts {
        let next = if i + 1 < dstopts {
            PROTO_DSTOPTS
        } else {
            proto
        };
        // Next header, length 0 (8 bytes), PadN of 4 data bytes.
        p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    p.extend_from_slice(l4);
    p
}

/// VXLAN from `src` (MAC and VTEP address) to `dst` in `vni` around the
/// Ethernet frame `inner`, UDP checksum 0 as Linux sends it.
pub fn vxlan(src: Station, dst: Station, vni: Vni, inner: &[u8]) -> Vec<u8> {
    let outer = OuterTemplate::new(&OuterParams {
        src_mac: src.mac,
        dst_mac: dst.mac,
        src_ip: src.ip,
        dst_ip: dst.ip,
        vni,
        dst_port: 4789,
        ttl: 64,
        gbp: None,
    });
    let sport = 49_152 + (inet_checksum(&[inner]) % 16_384);
    let mut f = vec![0u8; OUTER_LEN + inner.len()];
    f[OUTER_LEN..].copy_from_slice(inner);
    // A test frame always fits an IPv4 total length.
    let _ = outer.write_into(&mut f, inner.len(), sport);
    f
}

/// What a capture shows of an untagged IPv4 packet in an Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip4Info {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// Offset of the IPv4 header and of the L4 header in the frame.
    pub l3: usize,
    pub l4: usize,
    /// End of the IPv4 packet in the frame.
    pub end: usize,
}

/// Reads an untagged Ethernet frame carrying IPv4 (options allowed).
pub fn ip4_info(frame: &[u8]) -> Option<Ip4Info> {
    if frame.len() < 34 || u16::from_be_bytes([frame[12], frame[13]]) != ETH_IPV4 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return None;
    }
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let mac = |at: usize| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&frame[at..at + 6]);
        MacAddr(m)
    };
    Some(Ip4Info {
        dst_mac: mac(0),
        src_mac: mac(6),
        src: addr(12),
        dst: addr(16),
        proto: ip[9],
        l3: 14,
        l4: 14 + ihl,
        end: 14 + total,
    })
}

/// A TCP segment seen in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSeen {
    pub ip: Ip4Info,
    pub seg: Segment,
    pub payload_len: usize,
}

impl TcpSeen {
    /// SYN set, ACK clear.
    pub fn is_syn(&self) -> bool {
        self.seg.flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }
}

/// Reads a TCP segment over untagged IPv4.
pub fn tcp_seen(frame: &[u8]) -> Option<TcpSeen> {
    let ip = ip4_info(frame)?;
    if ip.proto != PROTO_TCP || ip.end < ip.l4 + 20 {
        return None;
    }
    let t = &frame[ip.l4..ip.end];
    let be16 = |at: usize| u16::from_be_bytes([t[at], t[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([t[at], t[at + 1], t[at + 2], t[at + 3]]);
    let doff = usize::from(t[12] >> 4) * 4;
    Some(TcpSeen {
        seg: Segment {
            sport: be16(0),
            dport: be16(2),
            seq: be32(4),
            ack: be32(8),
            flags: t[13],
            window: be16(14),
        },
        payload_len: t.len().saturating_sub(doff),
        ip,
    })
}

/// An ICMPv4 message seen in a capture: source, destination, type, code,
/// identifier (bytes 4..6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpSeen {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub kind: u8,
    pub code: u8,
    pub id: u16,
}

/// Reads an ICMPv4 message over untagged IPv4.
pub fn icmp_seen(frame: &[u8]) -> Option<IcmpSeen> {
    let ip = ip4_info(frame)?;
    if ip.proto != PROTO_ICMP || ip.end < ip.l4 + 8 {
        return None;
    }
    let m = &frame[ip.l4..];
    Some(IcmpSeen {
        src: ip.src,
        dst: ip.dst,
        kind: m[0],
        code: m[1],
        id: u16::from_be_bytes([m[4], m[5]]),
    })
}

/// An ARP packet seen in a capture (untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpSeen {
    pub eth_src: MacAddr,
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tpa: Ipv4Addr,
}

/// Reads an ARP packet (IPv4 over Ethernet).
pub fn arp_seen(frame: &[u8]) -> Option<ArpSeen> {
    if frame.len() < 42 || u16::from_be_bytes([frame[12], frame[13]]) != ETH_ARP {
        return None;
    }
    let a = &frame[14..];
    let mac = |b: &[u8]| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[..6]);
        MacAddr(m)
    };
    Some(ArpSeen {
        eth_src: mac(&frame[6..]),
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: mac(&a[8..]),
        spa: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
        tpa: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
    })
}

/// Rewrites the TCP sequence number of the inner IPv4 segment of the VXLAN
/// frame `frame` (IP options, such as an identity header, allowed) and
/// fixes the TCP checksum; the outer UDP checksum is set to 0 (none).
/// False when the frame holds no such segment.
pub fn set_inner_tcp_seq(frame: &mut [u8], seq: u32) -> bool {
    if frame.len() < OUTER_LEN + 34 {
        return false;
    }
    // Outer Ethernet (14), IPv4 (20, as warden writes it), UDP (8), VXLAN (8).
    frame[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let inner = &mut frame[OUTER_LEN..];
    let Some(ip) = ip4_info(inner) else {
        return false;
    };
    if ip.proto != PROTO_TCP || ip.end < ip.l4 + 20 {
        return false;
    }
    let l4 = ip.l4;
    inner[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    inner[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
    let pseudo = pseudo_v4(ip.src, ip.dst, PROTO_TCP, ip.end - l4);
    let c = inet_checksum(&[&pseudo, &inner[l4..ip.end]]);
    inner[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    true
}

/// tcpdump on an interface of a namespace, writing every packet to a file
/// as it comes (`-U`), read back while it runs; killed on drop.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    path: PathBuf,
    /// Interface and namespace, for messages.
    pub what: String,
}

impl Capture {
    /// Starts it and waits until it listens.
    pub fn start(ns: &str, iface: &str, path: PathBuf) -> Result<Capture, String> {
        let mut child = exec_in(ns, "tcpdump")
            .args(["-U", "-n", "-p", "-s", "2048", "-i", iface, "-w"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("tcpdump in {ns}: {e}"))?;
        let stderr = child.stderr.take().ok_or("tcpdump: no stderr")?;
        let mut cap = Capture {
            child,
            path,
            what: format!("{iface} in {ns}"),
        };
        let mut lines = BufReader::new(stderr);
        let mut line = String::new();
        let _ = lines.read_line(&mut line);
        if !line.contains("listening on") {
            let _ = cap.child.kill();
            return Err(format!("tcpdump in {ns} said {line:?}"));
        }
        // Keep its stderr drained (it writes a summary on exit).
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut lines, &mut sink);
        });
        Ok(cap)
    }

    /// Every frame captured so far.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        pcap_frames(&bytes)
            .unwrap_or_default()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Frames captured so far that carry a mark of `case`.
    pub fn marked(&self, case: u8) -> usize {
        self.frames()
            .iter()
            .filter(|f| find_mark(f).is_some_and(|(c, _)| c == case))
            .count()
    }

    /// Frames captured so far that carry a mark of `case` and were not sent
    /// from `own` (the captured workload's MAC: its ICMP errors quote what
    /// it received).
    pub fn marked_from_outside(&self, case: u8, own: MacAddr) -> usize {
        self.frames()
            .iter()
            .filter(|f| f.get(6..12) != Some(&own.0[..]))
            .filter(|f| find_mark(f).is_some_and(|(c, _)| c == case))
            .count()
    }

    /// Frames captured so far that `pick` selects.
    pub fn count(&self, pick: impl Fn(&[u8]) -> bool) -> usize {
        self.frames().iter().filter(|f| pick(f)).count()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
    const B: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn checksums_verify_to_zero() {
        let d = udp4(A, B, 1000, 2000, &mark(3, 7));
        let p = pseudo_v4(A, B, PROTO_UDP, d.len());
        assert_eq!(inet_checksum(&[&p, &d]), 0);
        let ip = ipv4(A, B, PROTO_UDP, &d);
        assert_eq!(inet_checksum(&[&ip[..20]]), 0);
        // Odd lengths split across parts.
        assert_eq!(
            inet_checksum(&[&[1, 2, 3], &[4, 5]]),
            inet_checksum(&[&[1, 2, 3, 4, 5]])
        );
        let v6s: Ipv6Addr = "fd00::1".parse().unwrap();
        let v6d: Ipv6Addr = "fd00::2".parse().unwrap();
        let d = udp6(v6s, v6d, 1, 2, b"abc");
        let p = pseudo_v6(v6s, v6d, PROTO_UDP, d.len());
        assert_eq!(inet_checksum(&[&p, &d]), 0);
    }

    #[test]
    fn marks_are_found_and_segments_read_back() {
        let s = Segment {
            sport: 40_000,
            dport: 7001,
            seq: 0xdead_beef,
            ack: 17,
            flags: TCP_PSH | TCP_ACK,
            window: 512,
        };
        let t = tcp4(A, B, &s, &mark(9, 42));
        let f = ethernet(
            mac("02:00:00:00:00:01"),
            mac("02:00:00:00:00:02"),
            &[],
            ETH_IPV4,
            &ipv4(A, B, PROTO_TCP, &t),
        );
        assert_eq!(find_mark(&f), Some((9, 42)));
        let seen = tcp_seen(&f).unwrap();
        assert_eq!(seen.seg, s);
        assert_eq!(seen.payload_len, MARK_LEN);
        assert_eq!((seen.ip.src, seen.ip.dst), (A, B));
        assert!(!seen.is_syn());
        // Through VXLAN, the sequence number is rewritten and the checksum
        // stays right.
        let st = |m: &str, ip| Station { mac: mac(m), ip };
        let mut v = vxlan(
            st("02:00:00:00:aa:01", Ipv4Addr::new(10, 0, 0, 1)),
            st("02:00:00:00:aa:02", Ipv4Addr::new(10, 0, 0, 2)),
            Vni::new(100).unwrap(),
            &f,
        );
        assert!(set_inner_tcp_seq(&mut v, 5));
        let inner = &v[OUTER_LEN..];
        let seen = tcp_seen(inner).unwrap();
        assert_eq!(seen.seg.seq, 5);
        let p = pseudo_v4(A, B, PROTO_TCP, seen.ip.end - seen.ip.l4);
        assert_eq!(inet_checksum(&[&p, &inner[seen.ip.l4..seen.ip.end]]), 0);
    }

    #[test]
    fn tags_chains_arp_and_icmp_are_laid_out() {
        let f = ethernet(
            MacAddr::BROADCAST,
            mac("02:00:00:00:00:02"),
            &[ETH_8021AD, ETH_8021Q, ETH_8021Q],
            ETH_IPV4,
            &[],
        );
        assert_eq!(f.len(), 14 + 12);
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[24..26], &[0x08, 0x00]);
        let v6: Ipv6Addr = "fd00::1".parse().unwrap();
        let p = ipv6_ext_chain(v6, v6, 9, PROTO_UDP, &[0; 8]);
        assert_eq!(p.len(), 40 + 72 + 8);
        assert_eq!(p[6], PROTO_DSTOPTS);
        assert_eq!(p[40 + 64], PROTO_UDP);
        let a = arp(2, mac("02:00:00:00:66:66"), A, MacAddr::BROADCAST, A);
        let f = ethernet(
            MacAddr::BROADCAST,
            mac("02:00:00:00:66:66"),
            &[],
            ETH_ARP,
            &a,
        );
        let seen = arp_seen(&f).unwrap();
        assert_eq!((seen.op, seen.spa, seen.tpa), (2, A, A));
        assert_eq!(seen.sha, mac("02:00:00:00:66:66"));
        let m = icmp4(13, 0, [0, 0, 0, 1], &[0; 12]);
        assert_eq!(inet_checksum(&[&m]), 0);
        let f = ethernet(
            MacAddr::BROADCAST,
            MacAddr::BROADCAST,
            &[],
            ETH_IPV4,
            &ipv4(A, B, PROTO_ICMP, &m),
        );
        let seen = icmp_seen(&f).unwrap();
        assert_eq!((seen.kind, seen.code, seen.id), (13, 0, 0));
    }
}
