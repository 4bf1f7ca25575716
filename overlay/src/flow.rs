//! The inner flow key: what the flow table, the identity tag and the
//! VXLAN source-port entropy are computed from.

use crate::ethernet::EtherType;
use crate::ip::IpProtocol;
use crate::{be16, ipv4, ipv6, vlan, Error};
use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The inner 5-tuple. For ICMP/ICMPv6 echo, `src_port` holds the echo
/// identifier and `dst_port` is 0; other ICMP messages, protocols without
/// ports and non-first fragments have both ports 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Why no flow key could be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowError {
    /// A header ends before the buffer says it should.
    Truncated,
    /// Not IPv4 or IPv6 (ARP, LLDP...), or more than two VLAN tags.
    NotIp,
    /// Wrong version, bad lengths, too many or misplaced IPv6 extensions.
    BadIpHeader,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlowError::Truncated => "truncated inner packet",
            FlowError::NotIp => "inner frame is not IP",
            FlowError::BadIpHeader => "bad inner IP header",
        })
    }
}

impl std::error::Error for FlowError {}

fn ip_err(e: Error) -> FlowError {
    match e {
        Error::Truncated => FlowError::Truncated,
        Error::Malformed | Error::Unsupported => FlowError::BadIpHeader,
    }
}

/// Ports (or echo id) from the first bytes of an upper-layer header.
fn l4_ports(protocol: IpProtocol, l4: &[u8]) -> Result<(u16, u16), FlowError> {
    match protocol {
        // SCTP (132) and UDP-Lite (136) put ports where TCP/UDP do.
        IpProtocol::TCP | IpProtocol::UDP | IpProtocol(132) | IpProtocol(136) => {
            if l4.len() < 4 {
                return Err(FlowError::Truncated);
            }
            Ok((be16(l4, 0), be16(l4, 2)))
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            let echo = matches!(
                (protocol, l4.first()),
                (IpProtocol::ICMP, Some(0 | 8)) | (IpProtocol::ICMPV6, Some(128 | 129))
            );
            if !echo {
                return Ok((0, 0));
            }
            if l4.len() < 8 {
                return Err(FlowError::Truncated);
            }
            Ok((be16(l4, 4), 0))
        }
        _ => Ok((0, 0)),
    }
}

impl FlowKey {
    /// Extract from an inner Ethernet frame, through up to two VLAN tags.
    pub fn from_inner_ethernet(frame: &[u8]) -> Result<FlowKey, FlowError> {
        // Untagged IPv4 is the common case: skip the tag walk.
        if let Some((eth, l3)) = frame.split_first_chunk::<14>() {
            if eth[12..14] == [0x08, 0x00] {
                return FlowKey::from_ipv4(l3);
            }
        }
        let loc = vlan::locate_l3(frame).map_err(|e| match e {
            Error::Truncated => FlowError::Truncated,
            Error::Malformed | Error::Unsupported => FlowError::NotIp,
        })?;
        let l3 = frame.get(loc.offset..).ok_or(FlowError::Truncated)?;
        match loc.ethertype {
            EtherType::IPV4 => FlowKey::from_ipv4(l3),
            EtherType::IPV6 => FlowKey::from_ipv6(l3),
            _ => Err(FlowError::NotIp),
        }
    }

    /// Extract from an IPv4 packet (buffer may carry trailing padding).
    /// Applies the checks of `ipv4::Packet::new_checked`, on a fixed-size
    /// header so that the field reads need no bounds checks.
    pub fn from_ipv4(packet: &[u8]) -> Result<FlowKey, FlowError> {
        let (h, _) = packet
            .split_first_chunk::<{ ipv4::HEADER_LEN }>()
            .ok_or(FlowError::Truncated)?;
        let hl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if hl < ipv4::HEADER_LEN {
            return Err(FlowError::BadIpHeader);
        }
        if packet.len() < hl {
            return Err(FlowError::Truncated);
        }
        if total < hl {
            return Err(FlowError::BadIpHeader);
        }
        let payload = packet.get(hl..total).ok_or(FlowError::Truncated)?;
        if h[0] >> 4 != 4 {
            return Err(FlowError::BadIpHeader);
        }
        let protocol = IpProtocol(h[9]);
        let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
        let (src_port, dst_port) = if frag_offset != 0 {
            (0, 0)
        } else {
            l4_ports(protocol, payload)?
        };
        Ok(FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
            dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
            protocol,
            src_port,
            dst_port,
        })
    }

    /// Extract from an IPv6 packet, walking its extension headers.
    pub fn from_ipv6(packet: &[u8]) -> Result<FlowKey, FlowError> {
        let p = ipv6::Packet::new_checked(packet).map_err(ip_err)?;
        let u = ipv6::find_upper_layer(p.next_header(), p.payload()).map_err(ip_err)?;
        let first = u.fragment.is_none_or(|f| f.is_first());
        let (src_port, dst_port) = if first {
            let l4 = p.payload().get(u.offset..).ok_or(FlowError::Truncated)?;
            l4_ports(u.protocol, l4)?
        } else {
            (0, 0)
        };
        Ok(FlowKey {
            src: IpAddr::V6(p.src_addr()),
            dst: IpAddr::V6(p.dst_addr()),
            protocol: u.protocol,
            src_port,
            dst_port,
        })
    }

    /// The key of the reply direction. ICMP echo request and reply carry
    /// the same identifier in `src_port`, so only the addresses swap there.
    pub fn reversed(&self) -> FlowKey {
        let icmp = self.protocol == IpProtocol::ICMP || self.protocol == IpProtocol::ICMPV6;
        let (src_port, dst_port) = if icmp {
            (self.src_port, self.dst_port)
        } else {
            (self.dst_port, self.src_port)
        };
        FlowKey {
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            src_port,
            dst_port,
        }
    }
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const K3: u64 = 0x5899_65cc_7537_4cc3;

/// 64x64 -> 128 multiply folded to 64 bits (the wyhash mixer): one `mul`
/// on x86-64, and every input bit reaches many output bits.
#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A fast, non-cryptographic hash of the key, for spreading flows over
/// workers and for VXLAN source ports. Not symmetric: each direction
/// hashes differently. Not keyed: do not use it where an attacker choosing
/// flows could hurt (size hash tables with a keyed hasher).
#[inline]
pub fn flow_hash(k: &FlowKey) -> u32 {
    let tail =
        (u64::from(k.src_port) << 48) | (u64::from(k.dst_port) << 32) | u64::from(k.protocol.0);
    let h = match (k.src, k.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let a = (u64::from(u32::from(s)) << 32) | u64::from(u32::from(d));
            mum(a ^ K0, tail ^ K1)
        }
        (s, d) => {
            let (s, d) = (v6_bits(s), v6_bits(d));
            let h = mum((s >> 64) as u64 ^ K0, s as u64 ^ K1)
                ^ mum((d >> 64) as u64 ^ K2, d as u64 ^ K3);
            mum(h ^ K1, tail ^ 0x100 ^ K2)
        }
    };
    (h ^ (h >> 32)) as u32
}

fn v6_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Map a flow hash into the dynamic port range 49152..=65535 (RFC 6335),
/// as Linux does for VXLAN source ports.
#[inline(always)]
pub const fn vxlan_src_port(hash: u32) -> u16 {
    0xc000 | (((hash >> 16) ^ hash) as u16 & 0x3fff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::net::Ipv6Addr;

    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn ipv4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 1, 0, 11, 10, 2, 0, 12,
        ];
        let total = (20 + l4.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(payload);
        p
    }

    const TCP_HDR: [u8; 20] = [
        0xc0, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    #[test]
    fn ipv4_tcp_udp_icmp() {
        let k = FlowKey::from_inner_ethernet(&eth(0x0800, &ipv4(6, 0, &TCP_HDR))).unwrap();
        assert_eq!(k.src, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 11)));
        assert_eq!(k.dst, IpAddr::V4(Ipv4Addr::new(10, 2, 0, 12)));
        assert_eq!(
            (k.protocol, k.src_port, k.dst_port),
            (IpProtocol::TCP, 0xc001, 80)
        );
        assert_eq!(k.reversed().reversed(), k);
        assert_eq!(k.reversed().src_port, 80);

        let k = FlowKey::from_ipv4(&ipv4(17, 0, &[0x12, 0x34, 0x00, 0x35, 0, 8, 0, 0])).unwrap();
        assert_eq!((k.src_port, k.dst_port), (0x1234, 53));

        let echo = [8, 0, 0, 0, 0xab, 0xcd, 0, 1];
        let k = FlowKey::from_ipv4(&ipv4(1, 0, &echo)).unwrap();
        assert_eq!(
            (k.protocol, k.src_port, k.dst_port),
            (IpProtocol::ICMP, 0xabcd, 0)
        );
        let unreach = [3, 3, 0, 0];
        let k = FlowKey::from_ipv4(&ipv4(1, 0, &unreach)).unwrap();
        assert_eq!((k.src_port, k.dst_port), (0, 0));
        // GRE: no ports.
        let k = FlowKey::from_ipv4(&ipv4(47, 0, &[])).unwrap();
        assert_eq!((k.protocol, k.src_port), (IpProtocol(47), 0));
    }

    #[test]
    fn fragments_and_truncation() {
        // Non-first fragment (offset 185*8): ports are not there.
        let k = FlowKey::from_ipv4(&ipv4(6, 185, &[1, 2])).unwrap();
        assert_eq!((k.src_port, k.dst_port), (0, 0));
        // First fragment with MF: ports read.
        let k = FlowKey::from_ipv4(&ipv4(6, 0x2000, &TCP_HDR)).unwrap();
        assert_eq!(k.dst_port, 80);
        assert_eq!(
            FlowKey::from_ipv4(&ipv4(6, 0, &[1, 2, 3])),
            Err(FlowError::Truncated)
        );
        assert_eq!(
            FlowKey::from_ipv4(&ipv4(1, 0, &[8, 0, 0, 0])),
            Err(FlowError::Truncated)
        );
        let mut bad = ipv4(6, 0, &TCP_HDR);
        bad[0] = 0x44;
        assert_eq!(FlowKey::from_ipv4(&bad), Err(FlowError::BadIpHeader));
        assert_eq!(
            FlowKey::from_inner_ethernet(&eth(0x0806, &[0; 28])),
            Err(FlowError::NotIp)
        );
        assert_eq!(
            FlowKey::from_inner_ethernet(&[0; 13]),
            Err(FlowError::Truncated)
        );
        assert_eq!(
            FlowKey::from_inner_ethernet(&eth(0x0800, &[0x45; 10])),
            Err(FlowError::Truncated)
        );
    }

    #[test]
    fn vlan_tagged() {
        let mut l3 = vec![0x00, 0x0a, 0x08, 0x00];
        l3.extend_from_slice(&ipv4(17, 0, &[0, 1, 0, 2, 0, 8, 0, 0]));
        let k = FlowKey::from_inner_ethernet(&eth(0x8100, &l3)).unwrap();
        assert_eq!((k.src_port, k.dst_port), (1, 2));
    }

    #[test]
    fn ipv6_with_extensions() {
        // Hop-by-hop, then a first fragment, then UDP.
        let mut pl = vec![44, 0, 1, 4, 0, 0, 0, 0];
        pl.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]);
        pl.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb, 0, 8, 0, 0]);
        let k = FlowKey::from_inner_ethernet(&eth(0x86dd, &ipv6(0, &pl))).unwrap();
        assert_eq!(k.src, IpAddr::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(
            (k.protocol, k.src_port, k.dst_port),
            (IpProtocol::UDP, 12345, 443)
        );
        // Non-first fragment.
        let pl = [17, 0, 0x05, 0xa8, 0, 0, 0, 9, 1, 2];
        let k = FlowKey::from_ipv6(&ipv6(44, &pl)).unwrap();
        assert_eq!(
            (k.protocol, k.src_port, k.dst_port),
            (IpProtocol::UDP, 0, 0)
        );
        // ICMPv6 echo reply.
        let k = FlowKey::from_ipv6(&ipv6(58, &[129, 0, 0, 0, 0x11, 0x22, 0, 5])).unwrap();
        assert_eq!((k.protocol, k.src_port), (IpProtocol::ICMPV6, 0x1122));
        // Extension header cut short; bad version.
        assert_eq!(
            FlowKey::from_ipv6(&ipv6(0, &[17, 1, 0, 0])),
            Err(FlowError::Truncated)
        );
        let mut v = ipv6(17, &[0, 1, 0, 2, 0, 8, 0, 0]);
        v[0] = 0x40;
        assert_eq!(FlowKey::from_ipv6(&v), Err(FlowError::BadIpHeader));
        // Payload length beyond the buffer.
        let mut v = ipv6(17, &[0, 1, 0, 2, 0, 8, 0, 0]);
        v[5] = 9;
        assert_eq!(FlowKey::from_ipv6(&v), Err(FlowError::Truncated));
    }

    proptest! {
        /// The fixed-header checks of `from_ipv4` agree with the view's.
        #[test]
        fn ipv4_checks_match_the_view(mut b in proptest::collection::vec(any::<u8>(), 0..80),
                                      ver in prop_oneof![Just(4u8), 0u8..16], ihl in 0u8..16,
                                      total in 0u16..100) {
            if b.len() >= 4 {
                b[0] = (ver << 4) | ihl;
                b[2..4].copy_from_slice(&total.to_be_bytes());
            }
            match ipv4::Packet::new_checked(&b[..]) {
                Err(e) => prop_assert_eq!(FlowKey::from_ipv4(&b), Err(ip_err(e))),
                Ok(p) => match FlowKey::from_ipv4(&b) {
                    Ok(k) => {
                        prop_assert_eq!(k.src, IpAddr::V4(p.src_addr()));
                        prop_assert_eq!(k.dst, IpAddr::V4(p.dst_addr()));
                        prop_assert_eq!(k.protocol, p.protocol());
                    }
                    // Only a short L4 header can fail once the view accepted.
                    Err(e) => prop_assert_eq!(e, FlowError::Truncated),
                },
            }
        }
    }

    #[test]
    fn hash_spreads_and_ports_stay_in_range() {
        let base = FlowKey::from_ipv4(&ipv4(6, 0, &TCP_HDR)).unwrap();
        let mut hashes = HashSet::new();
        let mut ports = HashSet::new();
        for sp in 0..4096u16 {
            let k = FlowKey {
                src_port: sp,
                ..base
            };
            let h = flow_hash(&k);
            assert_eq!(h, flow_hash(&k), "deterministic");
            hashes.insert(h);
            let p = vxlan_src_port(h);
            assert!(p >= 49152);
            ports.insert(p);
        }
        assert_eq!(hashes.len(), 4096, "no collisions over a port sweep");
        // 4096 balls into 16384 bins: expect about 3600 distinct.
        assert!(ports.len() > 3300, "{} distinct ports", ports.len());
        assert_ne!(flow_hash(&base), flow_hash(&base.reversed()));
        let v6 = FlowKey::from_ipv6(&ipv6(17, &[0, 1, 0, 2, 0, 8, 0, 0])).unwrap();
        assert_ne!(flow_hash(&v6), flow_hash(&v6.reversed()));
        assert_eq!(vxlan_src_port(0), 49152);
        assert_eq!(vxlan_src_port(0x3fff), 65535);
    }
}
