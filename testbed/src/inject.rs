//! Bad frames for adversarial lab tests, and a port to inject them with.
//!
//! Each [`BadFrame`] breaks exactly one rule of warden's underlay input
//! path and names the drop counter that must count it, so that a test can
//! inject them into a running lab and check that warden dropped every one,
//! for the right reason, and forwarded none. Frames are built with the
//! overlay crate's Reprs (a valid frame first), then one field is broken
//! through its view. The innermost payload of every frame carries
//! [`MARKER`], the kind and a sequence number, so that a frame warden
//! forwarded anyway is recognisable wherever it turns up ([`find_mark`]).
//!
//! [`Injector`] sends them through dataplane's AF_PACKET port, opened
//! inside a lab namespace from the test process, and reads what arrives on
//! the same interface (its own transmissions excluded).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use config::{Lab, WardenConfig};
use dataplane::buffer::{Burst, Pool};
use dataplane::counters::DropReason;
use dataplane::port::sys::RingConfig;
use dataplane::port::{AfPacketConfig, AfPacketPort, Port, PortError, PortStats};
use overlay::{ethernet, ipv4, udp, vxlan, EtherType, IpProtocol, MacAddr, PseudoHeader, Vni};

use crate::tcp::PatternStream;

/// Starts the payload of every bad frame's innermost packet.
pub const MARKER: [u8; 16] = *b"warden-bad-frame";

/// Bytes after [`MARKER`]: kind (1) and sequence number (4).
const MARK_TAIL: usize = 5;
/// Innermost UDP payload length: marker, kind, sequence, then filler.
const MARK_PAYLOAD: usize = 32;
/// Ports of the inner UDP datagram (discard): nothing answers it.
const INNER_SRC_PORT: u16 = 40_000;
const INNER_DST_PORT: u16 = 9;
/// Outer UDP source port of injected VXLAN (any ephemeral port does).
const OUTER_SRC_PORT: u16 = 49_152;
/// The VNI asked for as "unknown" unless the lab configures it.
const UNKNOWN_VNI: u32 = 999;
/// Seed of the garbage frames' bytes.
const GARBAGE_SEED: u64 = 0xbad0_f00d;

/// One kind of bad frame, each with a single defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BadFrame {
    /// Valid VXLAN from the rogue host, which is not a configured peer.
    NotAPeer,
    /// IP and UDP lengths end inside the VXLAN header (4 of its 8 bytes).
    Truncated,
    /// Random bytes behind a non-IP, non-ARP ethertype, to warden's MAC.
    Garbage,
    /// VXLAN whose outer IPv4 header checksum is wrong.
    BadIpChecksum,
    /// VXLAN with the I flag clear.
    BadVxlanFlags,
    /// VXLAN from the peer's address for a VNI warden does not know.
    UnknownVni,
    /// VXLAN from the peer's address for a configured VNI it does not carry.
    PeerVniNotAllowed,
    /// Valid VXLAN from the peer, routed through the gateway, whose inner
    /// IPv4 header checksum is wrong.
    BadInnerChecksum,
    /// VXLAN in the first fragment of an outer IPv4 packet (MF set).
    OuterFragment,
    /// VXLAN whose nonzero outer UDP checksum is wrong.
    BadUdpChecksum,
    /// VXLAN whose outer IPv4 total length is below its header length.
    BadIpHeader,
    /// VXLAN whose outer UDP length runs past the IP payload.
    BadUdpLength,
    /// VXLAN carrying 10 bytes: less than an inner Ethernet header.
    InnerTooShort,
    /// Valid VXLAN from the peer whose inner source MAC is multicast.
    BadSourceMac,
}

/// Which station sends a kind of bad frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// The rogue host, from its own MAC and address.
    Rogue,
    /// The peer's host, from its MAC and VTEP address: frames that pass the
    /// outer checks and the peer check, so must be caught after them.
    Peer,
}

impl BadFrame {
    /// Every kind, in a fixed order.
    pub const ALL: [BadFrame; 14] = [
        BadFrame::NotAPeer,
        BadFrame::Truncated,
        BadFrame::Garbage,
        BadFrame::BadIpChecksum,
        BadFrame::BadVxlanFlags,
        BadFrame::UnknownVni,
        BadFrame::PeerVniNotAllowed,
        BadFrame::BadInnerChecksum,
        BadFrame::OuterFragment,
        BadFrame::BadUdpChecksum,
        BadFrame::BadIpHeader,
        BadFrame::BadUdpLength,
        BadFrame::InnerTooShort,
        BadFrame::BadSourceMac,
    ];

    /// The drop reason warden must count this frame under.
    pub const fn expected_drop(self) -> DropReason {
        match self {
            BadFrame::NotAPeer => DropReason::NotAPeer,
            BadFrame::Truncated => DropReason::Truncated,
            BadFrame::Garbage => DropReason::UnderlayNotIpv4,
            BadFrame::BadIpChecksum => DropReason::BadIpChecksum,
            BadFrame::BadVxlanFlags => DropReason::BadVxlanFlags,
            BadFrame::UnknownVni => DropReason::UnknownVni,
            BadFrame::PeerVniNotAllowed => DropReason::PeerVniNotAllowed,
            BadFrame::BadInnerChecksum => DropReason::BadInnerChecksum,
            BadFrame::OuterFragment => DropReason::OuterFragment,
            BadFrame::BadUdpChecksum => DropReason::BadUdpChecksum,
            BadFrame::BadIpHeader => DropReason::BadIpHeader,
            BadFrame::BadUdpLength => DropReason::BadUdpLength,
            BadFrame::InnerTooShort => DropReason::InnerTooShort,
            BadFrame::BadSourceMac => DropReason::BadSourceMac,
        }
    }

    /// Who sends it. Kinds dropped before the peer check come from the
    /// rogue host; the others need a peer's source address (spoofed from
    /// the peer's own host, so the underlay sees its real MAC).
    pub const fn sender(self) -> Sender {
        match self {
            BadFrame::UnknownVni
            | BadFrame::PeerVniNotAllowed
            | BadFrame::BadInnerChecksum
            | BadFrame::BadSourceMac => Sender::Peer,
            _ => Sender::Rogue,
        }
    }

    /// A short stable name (the drop reason it targets, as in `warden stats`).
    pub const fn name(self) -> &'static str {
        self.expected_drop().name()
    }

    fn from_u8(v: u8) -> Option<BadFrame> {
        BadFrame::ALL.iter().copied().find(|k| *k as u8 == v)
    }
}

/// Errors of building targets from a lab or of the injection port.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The lab lacks something the bad frames are addressed with.
    #[error("lab {lab}: {what}")]
    Lab { lab: String, what: String },
    /// The AF_PACKET port could not be opened or read.
    #[error("port {iface} in {netns}: {source}")]
    Port {
        iface: String,
        netns: PathBuf,
        source: PortError,
    },
}

/// One station on the underlay: MAC and IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Station {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// Everything the bad frames are addressed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// warden's underlay port and VTEP address.
    pub warden: Station,
    /// warden's VXLAN UDP port.
    pub udp_port: u16,
    /// A host on the underlay that is not a configured peer.
    pub rogue: Station,
    /// A configured peer's host.
    pub peer: Station,
    /// A VNI the peer carries that has a gateway.
    pub peer_vni: Vni,
    /// The gateway MAC of `peer_vni`.
    pub gateway_mac: MacAddr,
    /// A configured VNI the peer does not carry.
    pub foreign_vni: Vni,
    /// A VNI warden does not know.
    pub unknown_vni: Vni,
    /// Inner source of the routed packets: an unused address in
    /// `peer_vni`'s subnet, with a made-up MAC.
    pub inner_src: Station,
    /// Inner destination of the routed packets (in another VNI).
    pub inner_dst: Ipv4Addr,
}

impl Targets {
    /// Reads the addresses from a lab: warden `warden`'s underlay port (its
    /// interface must have a fixed `mac`), the rogue host's and the peer
    /// host's underlay interfaces (fixed MACs, addresses in the underlay
    /// subnet; the peer host's address a configured peer, the rogue's not),
    /// and `inner_dst`, an address that warden routes out of the peer's VNI.
    pub fn from_lab(
        lab: &Lab,
        warden: &str,
        rogue_host: &str,
        peer_host: &str,
        inner_dst: Ipv4Addr,
    ) -> Result<Targets, InjectError> {
        let err = |what: String| InjectError::Lab {
            lab: lab.name.clone(),
            what,
        };
        let w = lab
            .warden(warden)
            .ok_or_else(|| err(format!("no warden {warden}")))?;
        let cfg = &w.config;
        let subnet = cfg.underlay.address;
        let port = cfg
            .underlay_port()
            .ok_or_else(|| err(format!("warden {warden} has no underlay port")))?;
        let warden_mac = lab
            .host(&w.host)
            .and_then(|h| h.interfaces.iter().find(|i| i.name == port.interface))
            .and_then(|i| i.mac)
            .ok_or_else(|| {
                err(format!(
                    "interface {} of host {} needs a fixed `mac` (warden's underlay MAC)",
                    port.interface, w.host
                ))
            })?;
        let station = |host: &str| -> Result<Station, InjectError> {
            let h = lab
                .host(host)
                .ok_or_else(|| err(format!("no host {host}")))?;
            h.interfaces
                .iter()
                .find_map(|i| {
                    let a = i.address?;
                    (subnet.contains(a.address())).then_some((i.mac, a.address()))
                })
                .and_then(|(mac, ip)| Some(Station { mac: mac?, ip }))
                .ok_or_else(|| {
                    err(format!(
                        "host {host} needs an interface with a fixed `mac` and an address in {subnet}"
                    ))
                })
        };
        let rogue = station(rogue_host)?;
        let peer = station(peer_host)?;
        if cfg.peers.iter().any(|p| p.address == rogue.ip) {
            return Err(err(format!(
                "rogue host {rogue_host} ({}) is a peer",
                rogue.ip
            )));
        }
        let peer_cfg = cfg
            .peers
            .iter()
            .find(|p| p.address == peer.ip)
            .ok_or_else(|| err(format!("{peer_host} ({}) is not a peer", peer.ip)))?;
        let (peer_vni, gateway_mac, gateway) = peer_cfg
            .vnis
            .iter()
            .find_map(|id| {
                let v = cfg.vni(*id)?;
                Some((v.id, v.gateway_mac, v.gateway?))
            })
            .ok_or_else(|| err(format!("{peer_host} carries no VNI with a gateway")))?;
        let foreign_vni = cfg
            .vnis
            .iter()
            .map(|v| v.id)
            .find(|id| !peer_cfg.vnis.contains(id))
            .ok_or_else(|| err(format!("every VNI is carried by {peer_host}")))?;
        let unknown_vni = (UNKNOWN_VNI..=Vni::MAX)
            .filter_map(Vni::new)
            .find(|id| cfg.vni(*id).is_none())
            .ok_or_else(|| err("no unconfigured VNI".to_string()))?;
        let inner_src_ip = unused_host(cfg, gateway).ok_or_else(|| {
            err(format!(
                "no unused address in {gateway} for the inner source"
            ))
        })?;
        Ok(Targets {
            warden: Station {
                mac: warden_mac,
                ip: subnet.address(),
            },
            udp_port: cfg.underlay.udp_port,
            rogue,
            peer,
            peer_vni,
            gateway_mac,
            foreign_vni,
            unknown_vni,
            inner_src: Station {
                mac: MacAddr([0x02, 0xba, 0xd0, 0x00, 0x00, 0x01]),
                ip: inner_src_ip,
            },
            inner_dst,
        })
    }
}

/// The highest host address of `gateway`'s subnet that is neither the
/// gateway nor a static neighbor.
fn unused_host(cfg: &WardenConfig, gateway: overlay::Ipv4Cidr) -> Option<Ipv4Addr> {
    let size = 1u32.checked_shl(32 - u32::from(gateway.prefix_len()))?;
    let net = u32::from(gateway.network().address());
    (1..size.checked_sub(1)?)
        .rev()
        .map(|h| Ipv4Addr::from(net | h))
        .find(|ip| *ip != gateway.address() && !cfg.neighbors.iter().any(|n| n.ip == *ip))
}

/// What a marked frame was built as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// A bad frame of this kind.
    Bad(BadFrame),
    /// The [`control`] frame, which warden must forward.
    Control,
}

/// Kind byte of the control frame's mark (bad kinds use their index).
const CONTROL_KIND: u8 = 0xc0;

impl Mark {
    const fn to_u8(self) -> u8 {
        match self {
            Mark::Bad(k) => k as u8,
            Mark::Control => CONTROL_KIND,
        }
    }

    fn from_u8(v: u8) -> Option<Mark> {
        if v == CONTROL_KIND {
            return Some(Mark::Control);
        }
        BadFrame::from_u8(v).map(Mark::Bad)
    }
}

/// The innermost payload: marker, kind, sequence number, filler.
fn mark(kind: Mark, seq: u32) -> [u8; MARK_PAYLOAD] {
    let mut p = [0u8; MARK_PAYLOAD];
    let (m, rest) = p.split_at_mut(MARKER.len());
    m.copy_from_slice(&MARKER);
    let (tail, fill) = rest.split_at_mut(MARK_TAIL);
    tail[0] = kind.to_u8();
    tail[1..].copy_from_slice(&seq.to_be_bytes());
    fill.fill(0x5a);
    p
}

/// The (kind, sequence number) of a marked frame, wherever in `frame` the
/// mark sits (inner or outer, encapsulated or not).
pub fn find_mark(frame: &[u8]) -> Option<(Mark, u32)> {
    let at = frame
        .windows(MARKER.len())
        .position(|w| w == MARKER.as_slice())?;
    let tail = frame.get(at + MARKER.len()..at + MARKER.len() + MARK_TAIL)?;
    let kind = Mark::from_u8(tail[0])?;
    let seq = u32::from_be_bytes([tail[1], tail[2], tail[3], tail[4]]);
    Some((kind, seq))
}

/// An Ethernet frame with an IPv4 packet of `payload` (header and checksum
/// written; DF set, ident 0, TTL 64).
pub(crate) fn ipv4_frame(
    src: Station,
    dst: Station,
    protocol: IpProtocol,
    payload: &[u8],
) -> Result<Vec<u8>, overlay::Error> {
    let eth = ethernet::Repr {
        src_addr: src.mac,
        dst_addr: dst.mac,
        ethertype: EtherType::IPV4,
    };
    let ip = ipv4::Repr {
        src_addr: src.ip,
        dst_addr: dst.ip,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let mut f = vec![0u8; eth.buffer_len() + ip.buffer_len() + payload.len()];
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut f[..]))?;
    let l3 = &mut f[ethernet::HEADER_LEN..];
    l3[ipv4::HEADER_LEN..].copy_from_slice(payload);
    ip.emit(&mut ipv4::Packet::new_unchecked(l3))?;
    Ok(f)
}

/// A UDP datagram (header, `payload`, checksum over the IPv4 pseudo-header).
pub(crate) fn udp_datagram(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    checksum: bool,
) -> Result<Vec<u8>, overlay::Error> {
    let repr = udp::Repr {
        src_port,
        dst_port,
        payload_len: payload.len(),
    };
    let mut d = vec![0u8; repr.buffer_len() + payload.len()];
    d[udp::HEADER_LEN..].copy_from_slice(payload);
    let mut p = udp::Packet::new_unchecked(&mut d[..]);
    repr.emit(&mut p)?;
    if checksum {
        p.fill_checksum(&PseudoHeader::V4 { src, dst });
    }
    Ok(d)
}

/// VXLAN to warden from `src` in `vni` around `inner`, every header valid;
/// the outer UDP checksum is filled when asked (else 0, as Linux sends).
fn vxlan_frame(
    t: &Targets,
    src: Station,
    vni: Vni,
    inner: &[u8],
    udp_checksum: bool,
) -> Result<Vec<u8>, overlay::Error> {
    let vx = vxlan::Repr { vni, gbp: None };
    let mut body = vec![0u8; vx.buffer_len() + inner.len()];
    vx.emit(&mut vxlan::Packet::new_unchecked(&mut body[..]))?;
    body[vxlan::HEADER_LEN..].copy_from_slice(inner);
    let dgram = udp_datagram(
        src.ip,
        t.warden.ip,
        OUTER_SRC_PORT,
        t.udp_port,
        &body,
        udp_checksum,
    )?;
    ipv4_frame(src, t.warden, IpProtocol::UDP, &dgram)
}

/// The inner frame: a UDP packet from the inner source to the routed
/// destination, sent to the peer VNI's gateway MAC, carrying the mark.
fn routed_inner(t: &Targets, kind: Mark, seq: u32) -> Result<Vec<u8>, overlay::Error> {
    let payload = mark(kind, seq);
    let dgram = udp_datagram(
        t.inner_src.ip,
        t.inner_dst,
        INNER_SRC_PORT,
        INNER_DST_PORT,
        &payload,
        true,
    )?;
    let gateway = Station {
        mac: t.gateway_mac,
        ip: t.inner_dst,
    };
    ipv4_frame(t.inner_src, gateway, IpProtocol::UDP, &dgram)
}

/// Breaks the IPv4 header checksum at the start of `l3`.
fn break_ip_checksum(l3: &mut [u8]) -> Result<(), overlay::Error> {
    let mut ip = ipv4::Packet::new_checked(l3)?;
    // Flipping bits of both bytes can never give the equivalent one's
    // complement form (0x0000 <-> 0xffff) of the right value.
    let wrong = ip.checksum() ^ 0x0101;
    ip.set_checksum(wrong);
    Ok(())
}

/// Offset of the outer IPv4 header, UDP header and VXLAN header in frames
/// built here (no IP options).
const OUTER_IP_AT: usize = ethernet::HEADER_LEN;
const OUTER_UDP_AT: usize = OUTER_IP_AT + ipv4::HEADER_LEN;
const VXLAN_AT: usize = OUTER_UDP_AT + udp::HEADER_LEN;
#[cfg(test)]
const OUTER_LEN_NO_OPTIONS: usize = VXLAN_AT + vxlan::HEADER_LEN;

/// Builds bad frame number `seq` of `kind`.
pub fn build(t: &Targets, kind: BadFrame, seq: u32) -> Result<Vec<u8>, overlay::Error> {
    let inner = routed_inner(t, Mark::Bad(kind), seq)?;
    match kind {
        BadFrame::NotAPeer => vxlan_frame(t, t.rogue, t.peer_vni, &inner, false),
        BadFrame::Truncated => {
            // Lengths that are all consistent, but the UDP payload holds
            // only the first half of a VXLAN header.
            let vx = vxlan::Repr {
                vni: t.peer_vni,
                gbp: None,
            };
            let mut hdr = [0u8; vxlan::HEADER_LEN];
            vx.emit(&mut vxlan::Packet::new_unchecked(&mut hdr[..]))?;
            let half = hdr.get(..vxlan::HEADER_LEN / 2).unwrap_or(&[]);
            let dgram = udp_datagram(
                t.rogue.ip,
                t.warden.ip,
                OUTER_SRC_PORT,
                t.udp_port,
                half,
                false,
            )?;
            // The mark rides behind the IP packet, as Ethernet padding.
            let mut f = ipv4_frame(t.rogue, t.warden, IpProtocol::UDP, &dgram)?;
            f.extend_from_slice(&mark(Mark::Bad(kind), seq));
            Ok(f)
        }
        BadFrame::Garbage => {
            let mut rng = PatternStream::new(GARBAGE_SEED ^ u64::from(seq));
            let mut word = [0u8; 4];
            rng.fill(&mut word);
            let ethertype = garbage_ethertype(u16::from_be_bytes([word[0], word[1]]));
            let len = 46 + usize::from(word[2]) % 200;
            let eth = ethernet::Repr {
                src_addr: t.rogue.mac,
                dst_addr: t.warden.mac,
                ethertype,
            };
            let mut f = vec![0u8; eth.buffer_len() + len];
            eth.emit(&mut ethernet::Frame::new_unchecked(&mut f[..]))?;
            rng.fill(&mut f[ethernet::HEADER_LEN..]);
            f.extend_from_slice(&mark(Mark::Bad(kind), seq));
            Ok(f)
        }
        BadFrame::BadIpChecksum => {
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, &inner, false)?;
            break_ip_checksum(&mut f[OUTER_IP_AT..])?;
            Ok(f)
        }
        BadFrame::BadVxlanFlags => {
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, &inner, false)?;
            // vxlan::Packet has no flag setter (emit always sets I): clear
            // the I bit of the flags byte, the first of the header.
            let flags = f.get_mut(VXLAN_AT).ok_or(overlay::Error::Truncated)?;
            *flags &= !vxlan::FLAG_I;
            Ok(f)
        }
        BadFrame::UnknownVni => vxlan_frame(t, t.peer, t.unknown_vni, &inner, false),
        BadFrame::PeerVniNotAllowed => vxlan_frame(t, t.peer, t.foreign_vni, &inner, false),
        BadFrame::BadInnerChecksum => {
            let mut inner = inner;
            break_ip_checksum(&mut inner[ethernet::HEADER_LEN..])?;
            vxlan_frame(t, t.peer, t.peer_vni, &inner, false)
        }
        BadFrame::OuterFragment => {
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, &inner, false)?;
            let mut ip = ipv4::Packet::new_checked(&mut f[OUTER_IP_AT..])?;
            ip.set_frag(false, true, 0);
            ip.fill_checksum();
            Ok(f)
        }
        BadFrame::BadUdpChecksum => {
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, &inner, true)?;
            let mut u = udp::Packet::new_checked(&mut f[OUTER_UDP_AT..])?;
            let right = u.checksum();
            // Wrong, and nonzero (zero would mean "no checksum").
            let wrong = match right ^ 0x0101 {
                0 => right ^ 0x0202,
                w => w,
            };
            u.set_checksum(wrong);
            Ok(f)
        }
        BadFrame::BadIpHeader => {
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, &inner, false)?;
            let mut ip = ipv4::Packet::new_checked(&mut f[OUTER_IP_AT..])?;
            let below = u16::from(ip.header_len()) - 1;
            ip.set_total_len(below);
            ip.fill_checksum();
            Ok(f)
        }
        BadFrame::BadUdpLength => {
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, &inner, false)?;
            let mut u = udp::Packet::new_checked(&mut f[OUTER_UDP_AT..])?;
            let past = u.len().saturating_add(8);
            u.set_len(past);
            Ok(f)
        }
        BadFrame::InnerTooShort => {
            // A valid frame around 10 bytes of inner frame; the mark rides
            // behind the IP packet, as Ethernet padding.
            let short = inner.get(..ethernet::HEADER_LEN - 4).unwrap_or(&[]);
            let mut f = vxlan_frame(t, t.rogue, t.peer_vni, short, false)?;
            f.extend_from_slice(&mark(Mark::Bad(kind), seq));
            Ok(f)
        }
        BadFrame::BadSourceMac => {
            let mut inner = inner;
            let mut eth = ethernet::Frame::new_checked(&mut inner[..])?;
            eth.set_src_addr(MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]));
            vxlan_frame(t, t.peer, t.peer_vni, &inner, false)
        }
    }
}

/// The frame that the peer-sent bad frames are variations of, without a
/// defect: a routed packet in VXLAN from the peer, which warden must
/// forward. A test sends it to prove that its leak watch sees marked frames
/// that warden forwarded.
pub fn control(t: &Targets, seq: u32) -> Result<Vec<u8>, overlay::Error> {
    let inner = routed_inner(t, Mark::Control, seq)?;
    vxlan_frame(t, t.peer, t.peer_vni, &inner, false)
}

/// An ethertype from random bits that warden must not take for IPv4, ARP
/// or a VLAN tag, and that is a type rather than an 802.3 length.
fn garbage_ethertype(bits: u16) -> EtherType {
    let t = EtherType(bits | 0x0600);
    if t == EtherType::IPV4 || t == EtherType::ARP || t.is_vlan() || t == EtherType(0x9100) {
        EtherType(0x88b5) // IEEE 802 local experimental
    } else {
        t
    }
}

/// Seconds of light traffic the receive ring of an [`Injector`] holds.
pub const WATCH_RING_SECS: u32 = 2;
/// Receive ring blocks of an [`Injector`] (256 KiB each).
const RX_BLOCKS: u32 = 64;

/// An AF_PACKET port on an interface in a lab namespace: sends bad frames
/// and reads what arrives there (its own transmissions excluded).
#[derive(Debug)]
pub struct Injector {
    port: AfPacketPort,
    pool: Pool,
    burst: Burst,
    iface: String,
    netns: PathBuf,
}

impl Injector {
    /// Opens interface `iface` of the namespace at `netns` (a file such as
    /// /var/run/netns/NAME).
    ///
    /// The receive ring is sized for watching a busy link between drains:
    /// the kernel hands over a block when it is full or `retire_ms` old, so
    /// the ring holds [`WATCH_RING_SECS`] of traffic however light it is,
    /// and 16 MiB of it however heavy.
    pub fn open(netns: &Path, iface: &str) -> Result<Injector, InjectError> {
        let cfg = AfPacketConfig {
            netns: Some(netns.to_path_buf()),
            rings: RingConfig {
                rx_block_size: 1 << 18,
                rx_block_nr: RX_BLOCKS,
                retire_ms: WATCH_RING_SECS * 1000 / RX_BLOCKS,
                tx_frame_nr: 64,
                ..RingConfig::default()
            },
            ..AfPacketConfig::new(iface)
        };
        let port = AfPacketPort::open(&cfg).map_err(|source| InjectError::Port {
            iface: iface.to_string(),
            netns: netns.to_path_buf(),
            source,
        })?;
        Ok(Injector {
            port,
            pool: Pool::new(2 * dataplane::buffer::BURST),
            burst: Burst::new(),
            iface: iface.to_string(),
            netns: netns.to_path_buf(),
        })
    }

    /// Queues one frame for sending; false when the port dropped it
    /// (transmit ring full, too long, no buffer).
    pub fn send(&mut self, frame: &[u8]) -> bool {
        let Some(mut buf) = self.pool.get() else {
            return false;
        };
        if !buf.copy_from(frame) {
            self.pool.put(buf);
            return false;
        }
        if let Err(buf) = self.burst.push(buf) {
            self.pool.put(buf);
            return false;
        }
        self.port.tx_burst(&mut self.burst, &mut self.pool).sent == 1
    }

    /// Hands every frame waiting in the receive ring to `each`; returns how
    /// many there were.
    pub fn drain(&mut self, mut each: impl FnMut(&[u8])) -> Result<usize, InjectError> {
        let mut total = 0;
        loop {
            let n = self
                .port
                .rx_burst(&mut self.pool, &mut self.burst)
                .map_err(|source| InjectError::Port {
                    iface: self.iface.clone(),
                    netns: self.netns.clone(),
                    source,
                })?;
            for buf in self.burst.iter() {
                each(buf.frame());
            }
            self.pool.put_burst(&mut self.burst);
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.port.mac()
    }

    /// The port's counters (kernel receive drops included).
    pub fn stats(&self) -> PortStats {
        self.port.stats()
    }

    /// Interface name and namespace, for messages.
    pub fn describe(&self) -> String {
        format!("{} in {}", self.iface, self.netns.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlay::DecapError;

    const FIXTURE: &str = include_str!("../tests/fixtures/adversarial.toml");

    fn targets() -> Targets {
        let lab = config::parse_lab(FIXTURE, "adversarial.toml").unwrap();
        Targets::from_lab(&lab, "gw", "x1", "a1", Ipv4Addr::new(10, 2, 0, 12)).unwrap()
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn targets_come_from_the_fixture() {
        let t = targets();
        assert_eq!(t.warden.mac, mac("02:00:00:00:aa:01"));
        assert_eq!(t.warden.ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(t.udp_port, 4789);
        assert_eq!(t.rogue.ip, Ipv4Addr::new(10, 0, 0, 66));
        assert_eq!(t.rogue.mac, mac("02:00:00:00:aa:66"));
        assert_eq!(t.peer.ip, Ipv4Addr::new(10, 0, 0, 11));
        assert_eq!(t.peer.mac, mac("02:00:00:00:aa:11"));
        assert_eq!(t.peer_vni.get(), 100);
        assert_eq!(t.gateway_mac, mac("02:77:64:00:00:64"));
        assert_eq!(t.foreign_vni.get(), 200);
        assert_eq!(t.unknown_vni.get(), 999);
        assert_eq!(t.inner_src.ip, Ipv4Addr::new(10, 1, 0, 254));
    }

    #[test]
    fn labs_missing_a_piece_are_refused() {
        let lab = config::parse_lab(FIXTURE, "adversarial.toml").unwrap();
        let dst = Ipv4Addr::new(10, 2, 0, 12);
        let msg = |r: Result<Targets, InjectError>| r.unwrap_err().to_string();
        assert!(msg(Targets::from_lab(&lab, "nope", "x1", "a1", dst)).contains("no warden nope"));
        assert!(msg(Targets::from_lab(&lab, "gw", "x1", "x1", dst)).contains("is not a peer"));
        assert!(msg(Targets::from_lab(&lab, "gw", "a1", "a1", dst)).contains("is a peer"));
        // w1 has no underlay interface.
        assert!(msg(Targets::from_lab(&lab, "gw", "w1", "a1", dst)).contains("fixed `mac`"));
        let no_mac = FIXTURE.replace("  mac = \"02:00:00:00:aa:01\"\n", "");
        let lab = config::parse_lab(&no_mac, "x.toml").unwrap();
        assert!(
            msg(Targets::from_lab(&lab, "gw", "x1", "a1", dst)).contains("warden's underlay MAC")
        );
    }

    #[test]
    fn every_frame_has_its_one_defect() {
        let t = targets();
        let port = t.udp_port;
        for seq in [0, 1, 77, u32::MAX] {
            for kind in BadFrame::ALL {
                let f = build(&t, kind, seq).unwrap();
                assert_eq!(find_mark(&f), Some((Mark::Bad(kind), seq)), "{kind:?}");
                let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
                assert_eq!(eth.dst_addr(), t.warden.mac, "{kind:?}");
                let src = match kind.sender() {
                    Sender::Rogue => t.rogue,
                    Sender::Peer => t.peer,
                };
                assert_eq!(eth.src_addr(), src.mac, "{kind:?}");
                let decap_err = |e| assert_eq!(overlay::decap(&f, port), Err(e), "{kind:?}");
                match kind {
                    BadFrame::Garbage => {
                        let et = eth.ethertype();
                        assert!(et != EtherType::IPV4 && et != EtherType::ARP && !et.is_vlan());
                        assert!(et.0 >= 0x0600);
                        decap_err(DecapError::NotIpv4);
                    }
                    BadFrame::Truncated => decap_err(DecapError::Truncated),
                    BadFrame::BadIpChecksum => decap_err(DecapError::BadIpChecksum),
                    BadFrame::BadVxlanFlags => decap_err(DecapError::BadVxlanFlags),
                    BadFrame::OuterFragment => decap_err(DecapError::Fragment),
                    BadFrame::BadUdpChecksum => decap_err(DecapError::BadUdpChecksum),
                    BadFrame::BadIpHeader => decap_err(DecapError::BadIpHeader),
                    BadFrame::BadUdpLength => decap_err(DecapError::BadUdpLength),
                    BadFrame::InnerTooShort => decap_err(DecapError::InnerTooShort),
                    BadFrame::NotAPeer
                    | BadFrame::UnknownVni
                    | BadFrame::PeerVniNotAllowed
                    | BadFrame::BadInnerChecksum
                    | BadFrame::BadSourceMac => {
                        let d = overlay::decap(&f, port).unwrap();
                        assert_eq!(d.outer_src, src.ip);
                        assert_eq!(d.outer_dst, t.warden.ip);
                        let want_vni = match kind {
                            BadFrame::UnknownVni => t.unknown_vni,
                            BadFrame::PeerVniNotAllowed => t.foreign_vni,
                            _ => t.peer_vni,
                        };
                        assert_eq!(d.vni, want_vni);
                        let inner = ethernet::Frame::new_checked(d.inner(&f)).unwrap();
                        assert_eq!(inner.dst_addr(), t.gateway_mac);
                        assert_eq!(
                            inner.src_addr().is_unicast(),
                            kind != BadFrame::BadSourceMac
                        );
                        let ip = ipv4::Packet::new_checked(inner.payload()).unwrap();
                        assert_eq!(ip.dst_addr(), t.inner_dst);
                        assert_eq!(ip.verify_checksum(), kind != BadFrame::BadInnerChecksum);
                        let u = udp::Packet::new_checked(ip.payload()).unwrap();
                        let ph = PseudoHeader::V4 {
                            src: ip.src_addr(),
                            dst: ip.dst_addr(),
                        };
                        assert!(u.verify_checksum(&ph));
                    }
                }
            }
        }
    }

    #[test]
    fn the_broken_field_is_the_only_difference() {
        // Repairing the one defect gives a frame that decaps.
        let t = targets();
        let mut f = build(&t, BadFrame::BadIpChecksum, 3).unwrap();
        ipv4::Packet::new_unchecked(&mut f[OUTER_IP_AT..]).fill_checksum();
        assert!(overlay::decap(&f, t.udp_port).is_ok());
        let mut f = build(&t, BadFrame::BadVxlanFlags, 3).unwrap();
        f[VXLAN_AT] |= vxlan::FLAG_I;
        assert!(overlay::decap(&f, t.udp_port).is_ok());
        let mut f = build(&t, BadFrame::OuterFragment, 3).unwrap();
        let mut ip = ipv4::Packet::new_unchecked(&mut f[OUTER_IP_AT..]);
        ip.set_frag(true, false, 0);
        ip.fill_checksum();
        assert!(overlay::decap(&f, t.udp_port).is_ok());
        let mut f = build(&t, BadFrame::BadUdpChecksum, 3).unwrap();
        let ph = PseudoHeader::V4 {
            src: t.rogue.ip,
            dst: t.warden.ip,
        };
        udp::Packet::new_unchecked(&mut f[OUTER_UDP_AT..]).fill_checksum(&ph);
        assert!(overlay::decap(&f, t.udp_port).is_ok());
        let mut f = build(&t, BadFrame::BadIpHeader, 3).unwrap();
        let total = (f.len() - OUTER_IP_AT) as u16;
        let mut ip = ipv4::Packet::new_unchecked(&mut f[OUTER_IP_AT..]);
        ip.set_total_len(total);
        ip.fill_checksum();
        assert!(overlay::decap(&f, t.udp_port).is_ok());
        let mut f = build(&t, BadFrame::BadUdpLength, 3).unwrap();
        let ulen = (f.len() - OUTER_UDP_AT) as u16;
        udp::Packet::new_unchecked(&mut f[OUTER_UDP_AT..]).set_len(ulen);
        assert!(overlay::decap(&f, t.udp_port).is_ok());
    }

    #[test]
    fn the_control_frame_is_valid_and_marked() {
        let t = targets();
        let f = control(&t, 9).unwrap();
        assert_eq!(find_mark(&f), Some((Mark::Control, 9)));
        let d = overlay::decap(&f, t.udp_port).unwrap();
        assert_eq!((d.outer_src, d.vni), (t.peer.ip, t.peer_vni));
        let inner = ethernet::Frame::new_checked(d.inner(&f)).unwrap();
        assert_eq!(inner.dst_addr(), t.gateway_mac);
        let ip = ipv4::Packet::new_checked(inner.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), t.inner_dst);
        // It differs from the bad inner checksum frame only in that
        // checksum and the mark's kind (with the inner UDP checksum over it).
        let bad = build(&t, BadFrame::BadInnerChecksum, 9).unwrap();
        let diff: Vec<usize> = (0..f.len()).filter(|&i| f[i] != bad[i]).collect();
        let ip_at = OUTER_LEN_NO_OPTIONS + ethernet::HEADER_LEN;
        let ip_csum = ip_at + 10;
        let udp_csum = ip_at + ipv4::HEADER_LEN + 6;
        let kind_at = f.len() - MARK_PAYLOAD + MARKER.len();
        let allowed = [ip_csum, ip_csum + 1, udp_csum, udp_csum + 1, kind_at];
        assert!(diff.iter().all(|i| allowed.contains(i)), "{diff:?}");
        assert!(diff.contains(&ip_csum) || diff.contains(&(ip_csum + 1)));
    }

    #[test]
    fn garbage_is_deterministic_and_varied() {
        let t = targets();
        let a = build(&t, BadFrame::Garbage, 5).unwrap();
        assert_eq!(a, build(&t, BadFrame::Garbage, 5).unwrap());
        let b = build(&t, BadFrame::Garbage, 6).unwrap();
        assert_ne!(a, b);
        let types: std::collections::BTreeSet<u16> = (0..50)
            .map(|s| {
                let f = build(&t, BadFrame::Garbage, s).unwrap();
                ethernet::Frame::new_checked(&f[..]).unwrap().ethertype().0
            })
            .collect();
        assert!(types.len() > 10, "{types:?}");
        for bits in [0x0800, 0x0000, 0x0806, 0x8100, 0x88a8, 0x9100] {
            let e = garbage_ethertype(bits);
            assert!(
                e != EtherType::IPV4 && e != EtherType::ARP && !e.is_vlan(),
                "{bits:#x}"
            );
        }
    }

    #[test]
    fn marks_are_found_only_where_complete() {
        let m = mark(Mark::Bad(BadFrame::UnknownVni), 0x0102_0304);
        let mut f = vec![1u8; 40];
        f.extend_from_slice(&m);
        assert_eq!(
            find_mark(&f),
            Some((Mark::Bad(BadFrame::UnknownVni), 0x0102_0304))
        );
        assert_eq!(find_mark(&f[..40 + MARKER.len() + 2]), None);
        assert_eq!(find_mark(&f[..50]), None);
        let mut bad_kind = m;
        bad_kind[MARKER.len()] = 200;
        assert_eq!(find_mark(&bad_kind), None);
        for k in BadFrame::ALL {
            assert_eq!(BadFrame::from_u8(k as u8), Some(k));
        }
        assert_eq!(BadFrame::BadInnerChecksum.name(), "bad_inner_checksum");
        assert_eq!(BadFrame::Garbage.name(), "underlay_not_ipv4");
    }

    #[test]
    fn opening_a_missing_namespace_fails() {
        let e = Injector::open(Path::new("/nonexistent/netns/x"), "eth0").unwrap_err();
        assert!(e.to_string().contains("eth0"), "{e}");
    }
}
