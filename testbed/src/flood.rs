//! A flood of new flows from a plain VTEP peer, for the flow-table flood
//! test (testbed/tests/flow_flood.rs).
//!
//! Every frame is valid VXLAN from the peer's underlay address to warden, in
//! a VNI the peer carries, around a UDP datagram to one local workload; each
//! opens an inner flow of its own (a distinct 5-tuple). Frames come in two
//! [`Half`]s: from a source address that warden's address map for that peer
//! names (an identity the policy may allow), and from addresses outside
//! every map ("unauthenticated"). The datagram's payload carries
//! [`MARKER`], the half and the frame's index, so a watcher at the
//! destination counts what warden delivered ([`find_mark`]).
//!
//! Frames are built with the same helpers as [`crate::inject`]'s bad
//! frames (overlay Reprs, checksums filled).

use std::net::Ipv4Addr;

use config::{Lab, WardenConfig};
use overlay::{vxlan, IpProtocol, MacAddr, Vni};

use crate::inject::{ipv4_frame, udp_datagram, InjectError, Station};

/// Starts the payload of every flood datagram.
pub const MARKER: [u8; 16] = *b"warden-floodflow";
/// Payload length: marker, half (1), index (4), filler.
const PAYLOAD_LEN: usize = 32;
/// Inner source ports: index `i` of a half uses `SRC_PORT_BASE + i %
/// PORTS_PER_STEP`; `i / PORTS_PER_STEP` picks the destination port (mapped
/// half) or the source address (unmapped half).
pub const SRC_PORT_BASE: u16 = 10_000;
/// Source ports per destination port or source address.
pub const PORTS_PER_STEP: u32 = 50_000;
/// Inner MAC of each half's sender (locally administered, unicast): one per
/// half, so the flood teaches warden's FDB two entries, not thousands.
pub const MAPPED_MAC: MacAddr = MacAddr([0x02, 0xf1, 0x00, 0x00, 0x00, 0x01]);
pub const UNMAPPED_MAC: MacAddr = MacAddr([0x02, 0xf1, 0x00, 0x00, 0x00, 0x02]);
/// Outer UDP source ports vary like a kernel VTEP's flow hash would.
const OUTER_PORT_BASE: u16 = 49_152;
const OUTER_PORT_MASK: u32 = 0x3fff;

/// Which side of the address map a flood frame's source is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Half {
    /// Inside the peer's address map: an identity the policy may allow.
    Mapped = 1,
    /// Outside every map: unauthenticated.
    Unmapped = 2,
}

impl Half {
    pub const ALL: [Half; 2] = [Half::Mapped, Half::Unmapped];

    fn from_u8(v: u8) -> Option<Half> {
        Half::ALL.iter().copied().find(|h| *h as u8 == v)
    }
}

/// Everything the flood frames are addressed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodTargets {
    /// warden's underlay port and VTEP address.
    pub warden: Station,
    /// warden's VXLAN UDP port.
    pub udp_port: u16,
    /// The plain VTEP peer whose address the frames come from.
    pub peer: Station,
    pub vni: Vni,
    /// The local workload every flow goes to.
    pub dst: Station,
    /// Destination ports: the mapped half cycles through them.
    pub dst_ports: Vec<u16>,
    /// Source of the mapped half: inside warden's address map for the peer.
    pub mapped_src: Ipv4Addr,
    /// Sources of the unmapped half: in no address map.
    pub unmapped_srcs: Vec<Ipv4Addr>,
}

impl FloodTargets {
    /// Reads warden `warden`'s config in `lab`: its VTEP address and VXLAN
    /// port, the peer at `peer.ip` (which must carry `vni`), the workload
    /// bound to `dst_ip` (its MAC), and an address map of that peer that
    /// covers `mapped_src`; each of `unmapped_srcs` must be outside every
    /// map and no workload's. The underlay MACs are the caller's (read from
    /// the running lab).
    #[allow(clippy::too_many_arguments)]
    pub fn from_lab(
        lab: &Lab,
        warden: &str,
        warden_mac: MacAddr,
        peer: Station,
        vni: Vni,
        dst_ip: Ipv4Addr,
        dst_ports: Vec<u16>,
        mapped_src: Ipv4Addr,
        unmapped_srcs: Vec<Ipv4Addr>,
    ) -> Result<FloodTargets, InjectError> {
        let err = |what: String| InjectError::Lab {
            lab: lab.name.clone(),
            what,
        };
        let cfg: &WardenConfig = &lab
            .warden(warden)
            .ok_or_else(|| err(format!("no warden {warden}")))?
            .config;
        let peer_cfg = cfg
            .peers
            .iter()
            .find(|p| p.address == peer.ip)
            .ok_or_else(|| err(format!("{} is not a peer of {warden}", peer.ip)))?;
        if !peer_cfg.vnis.contains(&vni) {
            return Err(err(format!("peer {} does not carry VNI {vni}", peer.ip)));
        }
        let dst_mac = cfg
            .workloads
            .iter()
            .find(|w| w.ip == dst_ip)
            .map(|w| w.mac)
            .ok_or_else(|| err(format!("no workload {dst_ip} on {warden}")))?;
        let mapped_by = |ip: Ipv4Addr| {
            cfg.identity_maps
                .iter()
                .any(|m| m.peer == peer.ip && m.cidr.contains(ip))
        };
        if !mapped_by(mapped_src) {
            return Err(err(format!(
                "no address map of {warden} for peer {} covers {mapped_src}",
                peer.ip
            )));
        }
        for ip in &unmapped_srcs {
            let in_any_map = cfg.identity_maps.iter().any(|m| m.cidr.contains(*ip));
            let bound = cfg.workloads.iter().any(|w| w.ip == *ip);
            if in_any_map || bound || *ip == mapped_src {
                return Err(err(format!("{ip} is mapped or bound: not unauthenticated")));
            }
        }
        if dst_ports.is_empty() || unmapped_srcs.is_empty() {
            return Err(err("no destination ports or unmapped sources".into()));
        }
        Ok(FloodTargets {
            warden: Station {
                mac: warden_mac,
                ip: cfg.underlay.address.address(),
            },
            udp_port: cfg.underlay.udp_port,
            peer,
            vni,
            dst: Station {
                mac: dst_mac,
                ip: dst_ip,
            },
            dst_ports,
            mapped_src,
            unmapped_srcs,
        })
    }

    /// Distinct flows each half can hold.
    pub fn capacity(&self, half: Half) -> u32 {
        let steps = match half {
            Half::Mapped => self.dst_ports.len(),
            Half::Unmapped => self.unmapped_srcs.len(),
        };
        u32::try_from(steps)
            .unwrap_or(u32::MAX)
            .saturating_mul(PORTS_PER_STEP)
    }

    /// Inner (source address, source port, destination port) of flow `i`
    /// of `half`; distinct for every `i` below [`Self::capacity`].
    pub fn tuple(&self, half: Half, i: u32) -> (Ipv4Addr, u16, u16) {
        let sport = SRC_PORT_BASE + (i % PORTS_PER_STEP) as u16;
        let step = (i / PORTS_PER_STEP) as usize;
        match half {
            Half::Mapped => (
                self.mapped_src,
                sport,
                self.dst_ports[step % self.dst_ports.len()],
            ),
            Half::Unmapped => (
                self.unmapped_srcs[step % self.unmapped_srcs.len()],
                sport,
                self.dst_ports[0],
            ),
        }
    }

    /// Flood frame `i` of `half`: VXLAN from the peer around a marked UDP
    /// datagram of flow [`Self::tuple`] to the workload.
    pub fn frame(&self, half: Half, i: u32) -> Result<Vec<u8>, overlay::Error> {
        let (src_ip, sport, dport) = self.tuple(half, i);
        let src = Station {
            mac: match half {
                Half::Mapped => MAPPED_MAC,
                Half::Unmapped => UNMAPPED_MAC,
            },
            ip: src_ip,
        };
        let dgram = udp_datagram(src_ip, self.dst.ip, sport, dport, &mark(half, i), true)?;
        let inner = ipv4_frame(src, self.dst, IpProtocol::UDP, &dgram)?;
        let vx = vxlan::Repr {
            vni: self.vni,
            gbp: None,
        };
        let mut body = vec![0u8; vx.buffer_len() + inner.len()];
        vx.emit(&mut vxlan::Packet::new_unchecked(&mut body[..]))?;
        body[vxlan::HEADER_LEN..].copy_from_slice(&inner);
        let outer_sport = OUTER_PORT_BASE + (i & OUTER_PORT_MASK) as u16;
        let outer = udp_datagram(
            self.peer.ip,
            self.warden.ip,
            outer_sport,
            self.udp_port,
            &body,
            false,
        )?;
        ipv4_frame(self.peer, self.warden, IpProtocol::UDP, &outer)
    }
}

/// The payload: marker, half, index, filler.
fn mark(half: Half, i: u32) -> [u8; PAYLOAD_LEN] {
    let mut p = [0x66u8; PAYLOAD_LEN];
    p[..MARKER.len()].copy_from_slice(&MARKER);
    p[MARKER.len()] = half as u8;
    p[MARKER.len() + 1..MARKER.len() + 5].copy_from_slice(&i.to_be_bytes());
    p
}

/// The (half, index) of a flood frame, wherever in `frame` its mark sits.
pub fn find_mark(frame: &[u8]) -> Option<(Half, u32)> {
    let at = frame
        .windows(MARKER.len())
        .position(|w| w == MARKER.as_slice())?;
    let tail = frame.get(at + MARKER.len()..at + MARKER.len() + 5)?;
    let half = Half::from_u8(tail[0])?;
    Some((
        half,
        u32::from_be_bytes([tail[1], tail[2], tail[3], tail[4]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlay::{ethernet, ipv4, udp, FlowKey, PseudoHeader};
    use std::collections::HashSet;

    const EXAMPLE: &str = include_str!("../examples/identity.toml");
    const K1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
    const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
    const LEGACY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn targets() -> FloodTargets {
        let lab = config::parse_lab(EXAMPLE, "identity.toml").unwrap();
        FloodTargets::from_lab(
            &lab,
            "n1",
            mac("02:00:00:00:aa:01"),
            Station {
                mac: mac("02:00:00:00:aa:11"),
                ip: K1,
            },
            Vni::new(100).unwrap(),
            API,
            vec![7000, 7001, 7002],
            LEGACY,
            vec![Ipv4Addr::new(10, 1, 0, 101), Ipv4Addr::new(10, 1, 0, 102)],
        )
        .unwrap()
    }

    #[test]
    fn targets_come_from_the_identity_example() {
        let t = targets();
        assert_eq!(t.warden.ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(t.udp_port, 4789);
        assert_eq!(t.dst.mac, mac("02:00:00:00:01:21"));
        assert_eq!(t.capacity(Half::Mapped), 150_000);
        assert_eq!(t.capacity(Half::Unmapped), 100_000);
    }

    #[test]
    fn labs_and_addresses_that_do_not_fit_are_refused() {
        let lab = config::parse_lab(EXAMPLE, "identity.toml").unwrap();
        let k1 = Station {
            mac: mac("02:00:00:00:aa:11"),
            ip: K1,
        };
        let vni = Vni::new(100).unwrap();
        let try_ = |peer: Station, mapped: Ipv4Addr, unmapped: Ipv4Addr| {
            FloodTargets::from_lab(
                &lab,
                "n1",
                MacAddr::ZERO,
                peer,
                vni,
                API,
                vec![7000],
                mapped,
                vec![unmapped],
            )
            .unwrap_err()
            .to_string()
        };
        let other = Ipv4Addr::new(10, 1, 0, 101);
        assert!(try_(k1, other, other).contains("covers"));
        assert!(try_(k1, LEGACY, LEGACY).contains("not unauthenticated"));
        assert!(try_(k1, LEGACY, API).contains("not unauthenticated"));
        let stranger = Station {
            ip: Ipv4Addr::new(10, 0, 0, 99),
            ..k1
        };
        assert!(try_(stranger, LEGACY, other).contains("is not a peer"));
    }

    #[test]
    fn every_frame_opens_its_own_flow_and_is_valid() {
        let t = targets();
        let mut seen = HashSet::new();
        for half in Half::ALL {
            for i in 0..t.capacity(half) {
                assert!(seen.insert(t.tuple(half, i)), "{half:?} {i}");
            }
        }
        for half in Half::ALL {
            for i in [0, 1, 49_999, 50_000, t.capacity(half) - 1] {
                let f = t.frame(half, i).unwrap();
                assert_eq!(find_mark(&f), Some((half, i)));
                let d = overlay::decap(&f, t.udp_port).unwrap();
                assert_eq!((d.outer_src, d.outer_dst), (K1, t.warden.ip));
                assert_eq!(d.outer_dst_mac, t.warden.mac);
                assert_eq!(d.vni.get(), 100);
                let inner = d.inner(&f);
                let eth = ethernet::Frame::new_checked(inner).unwrap();
                assert_eq!(eth.dst_addr(), t.dst.mac);
                let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum());
                let u = udp::Packet::new_checked(ip.payload()).unwrap();
                let ph = PseudoHeader::V4 {
                    src: ip.src_addr(),
                    dst: ip.dst_addr(),
                };
                assert!(u.verify_checksum(&ph));
                let key = FlowKey::from_inner_ethernet(inner).unwrap();
                let (src, sport, dport) = t.tuple(half, i);
                assert_eq!(key.src, std::net::IpAddr::V4(src));
                assert_eq!(key.dst, std::net::IpAddr::V4(API));
                assert_eq!(key.protocol, IpProtocol::UDP);
                assert_eq!((key.src_port, key.dst_port), (sport, dport));
            }
        }
    }

    #[test]
    fn marks_are_found_only_where_complete() {
        let m = mark(Half::Unmapped, 0x0102_0304);
        assert_eq!(find_mark(&m), Some((Half::Unmapped, 0x0102_0304)));
        assert_eq!(find_mark(&m[..MARKER.len() + 3]), None);
        let mut bad = m;
        bad[MARKER.len()] = 9;
        assert_eq!(find_mark(&bad), None);
    }
}
