//! Engine tests over in-memory ports: an underlay wire with four peer VTEPs
//! behind it and three access ports, driven from the far ends of the
//! [`MemoryPort`] pairs. Frames are built with overlay's Reprs; what comes
//! out is checked byte for byte where it matters, and so are the counters.
//!
//! The peers' next hops are resolved the way a real underlay does it: the
//! test answers the ARP requests of warden's host stack, giving each peer
//! its own next-hop MAC so that a wrong template shows.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use overlay::{
    arp, ethernet, icmpv4, ipv4, udp, vxlan, EtherType, IpProtocol, MacAddr, PseudoHeader, Vni,
};
use proptest::prelude::*;

use super::{Engine, POOL_SIZE};
use crate::counters::{Counters, DropReason};
use crate::fdb::Location;
use crate::port::{MemoryPort, Port};

/// Port 0 is the underlay; a1 and a2 are access ports of VNI 100, b1 of
/// VNI 200. Peers 0 and 1 carry VNI 100, peer 2 VNI 200, peer 3 VNI 300.
const CONFIG: &str = r#"
[instance]
name = "engine-test"
control_socket = "/nonexistent/warden-engine-test.sock"

[underlay]
port = "uplink"
address = "10.0.0.1/24"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"

[[port]]
name = "a1"
backend = "tap"
interface = "a1"
vni = 100

[[port]]
name = "a2"
backend = "tap"
interface = "a2"
vni = 100

[[port]]
name = "b1"
backend = "tap"
interface = "b1"
vni = 200

[[peer]]
address = "10.0.0.2"
vnis = [100]

[[peer]]
address = "10.0.0.3"
vnis = [100]

[[peer]]
address = "10.0.0.4"
vnis = [200]

[[peer]]
address = "10.0.0.5"
vnis = [300]

[[vni]]
id = 100
gateway = "10.1.0.1/24"
mac_aging_secs = 30

[[vni]]
id = 200
gateway = "10.2.0.1/24"

[[vni]]
id = 300

[[fdb]]
vni = 100
mac = "02:00:00:00:01:03"
peer = "10.0.0.3"

[[fdb]]
vni = 200
mac = "02:00:00:00:02:04"
peer = "10.0.0.4"

[[neighbor]]
vni = 200
ip = "10.2.0.4"
mac = "02:00:00:00:02:04"

[[route]]
destination = "10.9.0.0/16"
vni = 200
via = "10.2.0.254"
"#;

const VTEP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const WARDEN_MAC: MacAddr = MacAddr([2, 0x77, 0, 0, 0, 1]);
const PEERS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(10, 0, 0, 4),
    Ipv4Addr::new(10, 0, 0, 5),
];
/// Access ports (engine port index) and their position in `Rig::access`.
const A1: u16 = 1;
const A2: u16 = 2;
const B1: u16 = 3;
/// VNI indexes.
const V100: u16 = 0;
const V200: u16 = 1;
const V300: u16 = 2;

/// Workloads: H1 behind a1, H2 behind peer 0 (learned), HB behind peer 1
/// (static FDB), H4 behind peer 2 in VNI 200 (static FDB and neighbor).
const H1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x11]);
const H1_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const H2_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x22]);
const H2_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 22);
const HB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 3]);
const H4_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 4]);
const H4_IP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 4);
/// The next hop of route 10.9.0.0/16, behind b1.
const NH_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 0xfe]);
const NH_IP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 254);
const GW100: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const GW200: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

/// The next-hop MAC the test's underlay answers for peer `ip`.
fn peer_mac(ip: Ipv4Addr) -> MacAddr {
    MacAddr([2, 0xaa, 0, 0, 0, ip.octets()[3]])
}

/// An engine and the far ends of its ports.
struct Rig {
    eng: Engine,
    /// Far end of the underlay port.
    wire: MemoryPort,
    /// Far ends of a1, a2, b1 (engine ports 1, 2, 3).
    access: Vec<MemoryPort>,
}

/// The default gateway MAC of a VNI: 02:77:64 and the three VNI bytes.
fn gw_mac(vni: u32) -> MacAddr {
    let b = vni.to_be_bytes();
    MacAddr([2, 0x77, 0x64, b[1], b[2], b[3]])
}

fn rig() -> Rig {
    let mut rig = unresolved_rig();
    rig.resolve_peers();
    rig
}

/// The rig before the host stack resolved any peer.
fn unresolved_rig() -> Rig {
    let cfg = config::parse_warden(CONFIG, "engine-test.toml").expect("test config is valid");
    let (mut ours, wire) = MemoryPort::pair("mem0", "wire", 256);
    ours.set_mac(WARDEN_MAC);
    let mut ports: Vec<Box<dyn Port>> = vec![Box::new(ours)];
    let mut access = Vec::new();
    for name in ["a1", "a2", "b1"] {
        let (ours, far) = MemoryPort::pair(name, "far", 256);
        ports.push(Box::new(ours));
        access.push(far);
    }
    let counters = Arc::new(Counters::new(
        cfg.ports.len(),
        cfg.vnis.len(),
        cfg.peers.len(),
        1,
    ));
    Rig {
        eng: Engine::new(&cfg, ports, counters).expect("engine builds"),
        wire,
        access,
    }
}

impl Engine {
    /// Move the engine clock `secs` forward and run the per-second work
    /// (FDB aging, parked-packet expiry).
    pub(super) fn advance_clock(&mut self, secs: u64) {
        self.start = self
            .start
            .checked_sub(Duration::from_secs(secs))
            .expect("monotonic clock older than the shift");
        self.force_housekeeping();
    }
}

impl Rig {
    /// Answer the host stack's ARP requests until every peer has a next hop.
    fn resolve_peers(&mut self) {
        // Announce every peer first, as gratuitous ARP does, so that the
        // host stack need not wait for its ARP retry timer.
        let mut requests: Vec<Ipv4Addr> = PEERS.to_vec();
        for _ in 0..600 {
            self.wire.recv_all(|f| {
                if let Some(a) = parse_arp(f) {
                    if a.operation == arp::Operation::REQUEST {
                        requests.push(a.target_protocol_addr);
                    }
                }
            });
            for ip in requests.drain(..) {
                let reply = arp_frame(
                    arp::Operation::REPLY,
                    WARDEN_MAC,
                    peer_mac(ip),
                    ip,
                    WARDEN_MAC,
                    VTEP,
                );
                assert!(self.wire.send(&reply));
            }
            self.eng.poll();
            self.eng.force_housekeeping();
            if self.eng.st.templates.iter().all(|t| t.is_some()) {
                self.wire.recv_all(|_| {});
                assert_eq!(self.eng.counters().drops_total(), 0);
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("peers did not resolve: {:?}", self.eng.host());
    }

    /// Deliver `frame` to the engine from the far end of port `port` and
    /// run one poll.
    fn send(&mut self, port: u16, frame: &[u8]) {
        let far = if port == 0 {
            &self.wire
        } else {
            &self.access[usize::from(port) - 1]
        };
        assert!(far.send(frame), "ring has room");
        self.eng.poll();
    }

    /// `inner` from peer `peer` (index) in VXLAN `vni`.
    fn send_from_peer(&mut self, peer: usize, vni: u32, inner: &[u8]) {
        let f = vxlan_frame(PEERS[peer], vni, inner);
        self.send(0, &f);
    }

    /// Every VXLAN frame sent on the underlay since the last call. Frames
    /// of the host stack (ARP, probes) are not VXLAN and are left out.
    fn vxlan_out(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.wire.recv_all(|f| {
            if overlay::decap(f, 4789).is_ok() {
                out.push(f.to_vec());
            } else {
                assert!(is_host_stack_frame(f), "unexpected underlay frame {f:02x?}");
            }
        });
        out
    }

    /// Frames sent out of access port `port` since the last call.
    fn port_out(&self, port: u16) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.access[usize::from(port) - 1].recv_all(|f| out.push(f.to_vec()));
        out
    }

    /// Asserts that nothing left through any port (host stack aside).
    fn assert_silent(&self) {
        assert_eq!(self.vxlan_out(), Vec::<Vec<u8>>::new(), "underlay");
        for p in [A1, A2, B1] {
            assert_eq!(self.port_out(p), Vec::<Vec<u8>>::new(), "port {p}");
        }
    }

    fn drop_count(&self, r: DropReason) -> u64 {
        self.eng.counters().drops[r as usize].get()
    }

    /// Non-zero drop counters by name.
    fn drops(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.drop_count(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Buffers are all back in the pool, or parked in the router.
    fn assert_no_leak(&self) {
        assert_eq!(
            self.eng.pool.available() + self.eng.st.router.parked_len(),
            POOL_SIZE,
            "packet buffers leaked"
        );
    }
}

/// An ARP (probe pings aside, the host stack sends only these) or an ICMP
/// packet from the VTEP address.
fn is_host_stack_frame(f: &[u8]) -> bool {
    let Ok(eth) = ethernet::Frame::new_checked(f) else {
        return false;
    };
    if eth.src_addr() != WARDEN_MAC {
        return false;
    }
    match eth.ethertype() {
        EtherType::ARP => true,
        EtherType::IPV4 => ipv4::Packet::new_checked(eth.payload())
            .is_ok_and(|ip| ip.src_addr() == VTEP && ip.protocol() == IpProtocol::ICMP),
        _ => false,
    }
}

fn eth_frame(dst: MacAddr, src: MacAddr, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let repr = ethernet::Repr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    let mut f = vec![0u8; repr.buffer_len() + payload.len()];
    let mut frame = ethernet::Frame::new_unchecked(&mut f[..]);
    repr.emit(&mut frame).expect("sized");
    frame.payload_mut().copy_from_slice(payload);
    f
}

fn arp_frame(
    op: arp::Operation,
    eth_dst: MacAddr,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let p = super::test_support::arp_body(op.0, sha, spa, tha, tpa);
    eth_frame(eth_dst, sha, EtherType::ARP, &p)
}

fn parse_arp(f: &[u8]) -> Option<arp::Repr> {
    let eth = ethernet::Frame::new_checked(f).ok()?;
    if eth.ethertype() != EtherType::ARP {
        return None;
    }
    arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).ok()?).ok()
}

/// An IPv4 packet around `payload` with a valid header checksum.
fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    ttl: u8,
    dont_frag: bool,
    payload: &[u8],
) -> Vec<u8> {
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len(),
        ttl,
        dscp_ecn: 0,
        ident: 0x1234,
        dont_frag,
    };
    let mut p = vec![0u8; repr.buffer_len() + payload.len()];
    let mut pkt = ipv4::Packet::new_unchecked(&mut p[..]);
    repr.emit(&mut pkt).expect("sized");
    pkt.payload_mut().copy_from_slice(payload);
    p
}

/// A UDP/IPv4 packet with a valid UDP checksum.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, dont_frag: bool, data: &[u8]) -> Vec<u8> {
    udp_packet_from(src, dst, 40000, ttl, dont_frag, data)
}

/// [`udp_packet`] from source port `sport`.
fn udp_packet_from(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    ttl: u8,
    dont_frag: bool,
    data: &[u8],
) -> Vec<u8> {
    let repr = udp::Repr {
        src_port: sport,
        dst_port: 5001,
        payload_len: data.len(),
    };
    let mut u = vec![0u8; repr.buffer_len() + data.len()];
    let mut pkt = udp::Packet::new_unchecked(&mut u[..]);
    repr.emit(&mut pkt).expect("sized");
    pkt.payload_mut().copy_from_slice(data);
    pkt.fill_checksum(&PseudoHeader::V4 { src, dst });
    ipv4_packet(src, dst, IpProtocol::UDP, ttl, dont_frag, &u)
}

fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let repr = icmpv4::Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    let mut m = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut m[..]))
        .expect("sized");
    ipv4_packet(src, dst, IpProtocol::ICMP, 64, false, &m)
}

/// An inner Ethernet/IPv4/UDP frame.
fn inner_udp(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    eth_frame(
        dst_mac,
        src_mac,
        EtherType::IPV4,
        &udp_packet(src, dst, 64, true, b"warden engine test payload"),
    )
}

/// The outer headers around `inner`, as peer `src` sends them to warden,
/// with UDP checksum `udp_checksum` (0: none; `None`: a valid one).
fn vxlan_frame_with(src: Ipv4Addr, vni: u32, inner: &[u8], udp_checksum: Option<u16>) -> Vec<u8> {
    let vx = vxlan::Repr {
        vni: Vni::new(vni).expect("VNI in range"),
        gbp: None,
    };
    let mut v = vec![0u8; vx.buffer_len() + inner.len()];
    vx.emit(&mut vxlan::Packet::new_unchecked(&mut v[..]))
        .expect("sized");
    v[vx.buffer_len()..].copy_from_slice(inner);
    let u = udp::Repr {
        src_port: 50000,
        dst_port: 4789,
        payload_len: v.len(),
    };
    let mut dgram = vec![0u8; u.buffer_len() + v.len()];
    let mut pkt = udp::Packet::new_unchecked(&mut dgram[..]);
    u.emit(&mut pkt).expect("sized");
    pkt.payload_mut().copy_from_slice(&v);
    match udp_checksum {
        Some(c) => pkt.set_checksum(c),
        None => pkt.fill_checksum(&PseudoHeader::V4 { src, dst: VTEP }),
    }
    let ip = ipv4_packet(src, VTEP, IpProtocol::UDP, 64, true, &dgram);
    eth_frame(WARDEN_MAC, peer_mac(src), EtherType::IPV4, &ip)
}

fn vxlan_frame(src: Ipv4Addr, vni: u32, inner: &[u8]) -> Vec<u8> {
    vxlan_frame_with(src, vni, inner, Some(0))
}

/// Checks every outer header field of a VXLAN frame warden sent to `peer`
/// in `vni` and returns the inner frame.
fn check_outer(f: &[u8], peer: Ipv4Addr, vni: u32) -> Vec<u8> {
    let eth = ethernet::Frame::new_checked(f).expect("outer Ethernet");
    assert_eq!(
        eth.dst_addr(),
        peer_mac(peer),
        "dst MAC = the peer's next hop"
    );
    assert_eq!(eth.src_addr(), WARDEN_MAC);
    assert_eq!(eth.ethertype(), EtherType::IPV4);
    let ip = ipv4::Packet::new_checked(eth.payload()).expect("outer IPv4");
    assert_eq!(ip.header_len(), 20);
    assert!(ip.verify_checksum(), "outer IP checksum");
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VTEP, peer));
    assert_eq!(ip.protocol(), IpProtocol::UDP);
    assert_eq!(ip.ttl(), 64);
    assert!(ip.dont_frag() && !ip.is_fragment());
    assert_eq!(usize::from(ip.total_len()), f.len() - 14, "no padding");
    let u = udp::Packet::new_checked(ip.payload()).expect("outer UDP");
    assert_eq!(u.dst_port(), 4789);
    assert!(
        (49152..=65535).contains(&u.src_port()),
        "src port {}",
        u.src_port()
    );
    assert_eq!(usize::from(u.len()), ip.payload().len());
    assert_eq!(u.checksum(), 0, "no UDP checksum over IPv4");
    let vx = vxlan::Packet::new_checked(u.payload()).expect("VXLAN");
    assert_eq!(u.payload()[..4], [0x08, 0, 0, 0], "I flag only");
    assert_eq!(vx.vni().get(), vni);
    assert_eq!(u.payload()[7], 0, "reserved byte");
    vx.payload().to_vec()
}

/// The IPv4 packet of an inner Ethernet frame.
fn l3(f: &[u8]) -> &[u8] {
    &f[ethernet::HEADER_LEN..]
}

#[test]
fn vxlan_from_peer_to_static_fdb_peer_is_reencapsulated() {
    let mut r = rig();
    let inner = inner_udp(H2_MAC, HB_MAC, H2_IP, Ipv4Addr::new(10, 1, 0, 3));
    r.send_from_peer(0, 100, &inner);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1, "one copy, to the static location only");
    assert_eq!(
        check_outer(&out[0], PEERS[1], 100),
        inner,
        "inner unchanged"
    );
    assert_eq!(out[0].len(), 50 + inner.len());
    for p in [A1, A2, B1] {
        assert!(r.port_out(p).is_empty());
    }
    let c = r.eng.counters();
    let v = &c.vnis[V100 as usize];
    assert_eq!(v.rx_decap_packets.get(), 1);
    assert_eq!(v.rx_decap_bytes.get(), inner.len() as u64);
    assert_eq!(v.tx_encap_packets.get(), 1);
    assert_eq!(v.tx_encap_bytes.get(), inner.len() as u64);
    assert_eq!(v.flood_copies.get(), 0);
    assert_eq!(c.peers[0].rx_packets.get(), 1);
    assert_eq!(c.peers[1].tx_packets.get(), 1);
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

/// Frames whose fixed bytes have VXLAN's common shape (rx_underlay marks
/// them for decap's short check) but whose checksum or lengths are wrong
/// are dropped under decap's own reason; padding after a good one is not
/// part of the inner frame.
#[test]
fn common_shape_frames_get_decaps_checks() {
    let mut r = rig();
    let inner = inner_udp(H2_MAC, HB_MAC, H2_IP, Ipv4Addr::new(10, 1, 0, 3));
    let good = vxlan_frame(PEERS[0], 100, &inner);
    let set16 =
        |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    let fix_ip_checksum = |f: &mut Vec<u8>| {
        set16(f, 24, 0);
        let sum = !overlay::checksum::sum(&f[14..34]);
        set16(f, 24, sum);
    };
    let be16 = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (
            {
                let mut f = good.clone();
                f[24] ^= 1;
                f
            },
            DropReason::BadIpChecksum,
        ),
        // IP total length beyond the frame.
        (
            {
                let mut f = good.clone();
                set16(&mut f, 16, be16(&good, 16) + 1);
                fix_ip_checksum(&mut f);
                f
            },
            DropReason::Truncated,
        ),
        // UDP length beyond the IP packet.
        (
            {
                let mut f = good.clone();
                set16(&mut f, 38, be16(&good, 38) + 1);
                f
            },
            DropReason::BadUdpLength,
        ),
        // UDP length leaving less than an inner Ethernet header.
        (
            {
                let mut f = good.clone();
                set16(&mut f, 38, 8 + 8 + 13);
                f
            },
            DropReason::InnerTooShort,
        ),
    ];
    for (f, reason) in cases {
        let before = r.drop_count(reason);
        r.send(0, &f);
        assert_eq!(r.drop_count(reason), before + 1, "{reason:?}");
        r.assert_silent();
    }
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xee; 9]);
    r.send(0, &padded);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(
        check_outer(&out[0], PEERS[1], 100),
        inner,
        "padding dropped"
    );
    r.assert_no_leak();
}

#[test]
fn outer_source_port_is_flow_entropy() {
    let mut r = rig();
    let mut ports = std::collections::HashSet::new();
    for i in 0..16u8 {
        let inner = inner_udp(H2_MAC, HB_MAC, Ipv4Addr::new(10, 1, 0, 100 + i), GW100);
        r.send_from_peer(0, 100, &inner);
        r.send_from_peer(0, 100, &inner);
        let out = r.vxlan_out();
        assert_eq!(out.len(), 2);
        let sport = |f: &[u8]| u16::from_be_bytes([f[34], f[35]]);
        assert_eq!(sport(&out[0]), sport(&out[1]), "one flow, one source port");
        ports.insert(sport(&out[0]));
    }
    assert!(ports.len() > 4, "flows spread over source ports: {ports:?}");
}

#[test]
fn learns_from_port_and_peer_then_unicasts_and_ages() {
    let mut r = rig();
    let v100 = &r.eng.counters().vnis[V100 as usize];
    assert_eq!(v100.macs_learned.get(), 0);
    // H1 on a1 talks to the unknown H2: flooded, H1 learned at a1.
    let to_h2 = inner_udp(H1_MAC, H2_MAC, H1_IP, H2_IP);
    r.send(A1, &to_h2);
    assert_eq!(
        r.port_out(A2),
        vec![to_h2.clone()],
        "unknown unicast floods"
    );
    let out = r.vxlan_out();
    assert_eq!(out.len(), 2);
    assert_eq!(check_outer(&out[0], PEERS[0], 100), to_h2);
    assert_eq!(check_outer(&out[1], PEERS[1], 100), to_h2);
    assert!(r.port_out(A1).is_empty() && r.port_out(B1).is_empty());
    let now = r.eng.now_s();
    assert_eq!(
        r.eng.fdb().lookup(V100, H1_MAC, now),
        Some(Location::Port(A1))
    );
    // H2 answers from peer 0: learned there, delivered to a1 only.
    let to_h1 = inner_udp(H2_MAC, H1_MAC, H2_IP, H1_IP);
    r.send_from_peer(0, 100, &to_h1);
    assert_eq!(r.port_out(A1), vec![to_h1.clone()]);
    assert!(r.vxlan_out().is_empty());
    assert!(r.port_out(A2).is_empty());
    assert_eq!(
        r.eng.fdb().lookup(V100, H2_MAC, now),
        Some(Location::Peer(0))
    );
    // Now H1 -> H2 is unicast to peer 0.
    r.send(A1, &to_h2);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(check_outer(&out[0], PEERS[0], 100), to_h2);
    assert!(r.port_out(A2).is_empty());
    let c = r.eng.counters();
    assert_eq!(c.vnis[V100 as usize].macs_learned.get(), 2);
    assert_eq!(c.vnis[V100 as usize].flood_copies.get(), 2);
    assert_eq!(c.vnis[V100 as usize].rx_local_packets.get(), 2);
    assert_eq!(c.vnis[V100 as usize].tx_local_packets.get(), 2);
    // The same MAC in another VNI is another entry.
    assert_eq!(r.eng.fdb().lookup(V200, H1_MAC, now), None);

    // Aging (30 s in VNI 100): still known 28 s on, gone after 30 (a
    // second of margin for the real time the test takes).
    r.eng.advance_clock(28);
    let now = r.eng.now_s();
    assert_eq!(
        r.eng.fdb().lookup(V100, H1_MAC, now),
        Some(Location::Port(A1))
    );
    let learned = r.eng.fdb().len();
    r.eng.advance_clock(3);
    let now = r.eng.now_s();
    assert_eq!(r.eng.fdb().lookup(V100, H1_MAC, now), None);
    assert_eq!(r.eng.fdb().lookup(V100, H2_MAC, now), None);
    assert_eq!(r.eng.fdb().len(), learned - 2, "expired entries removed");
    assert_eq!(
        r.eng.fdb().lookup(V100, HB_MAC, now),
        Some(Location::Peer(1)),
        "static entries never age"
    );
    assert_eq!(r.eng.counters().fdb_entries.get(), r.eng.fdb().len() as u64);
    // H2 unknown again: flooded again.
    r.send(A1, &to_h2);
    assert_eq!(r.port_out(A2).len(), 1);
    assert_eq!(r.vxlan_out().len(), 2);
    // A MAC that moves is relearned at its new place.
    r.send(A2, &to_h1);
    let now = r.eng.now_s();
    assert_eq!(
        r.eng.fdb().lookup(V100, H2_MAC, now),
        Some(Location::Port(A2))
    );
    assert_eq!(r.port_out(A1), vec![to_h1]);
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

#[test]
fn broadcast_from_port_reaches_every_flood_peer_and_port_but_the_source() {
    let mut r = rig();
    let bcast = eth_frame(MacAddr::BROADCAST, H1_MAC, EtherType(0x88b5), &[0x5a; 46]);
    r.send(A1, &bcast);
    assert!(r.port_out(A1).is_empty(), "not back to the source");
    assert_eq!(r.port_out(A2), vec![bcast.clone()]);
    assert!(r.port_out(B1).is_empty(), "other VNI");
    let out = r.vxlan_out();
    assert_eq!(out.len(), 2, "peers 0 and 1 carry VNI 100; 2 and 3 do not");
    assert_eq!(check_outer(&out[0], PEERS[0], 100), bcast);
    assert_eq!(check_outer(&out[1], PEERS[1], 100), bcast);
    assert_eq!(r.eng.counters().vnis[V100 as usize].flood_copies.get(), 2);

    // From peer 1: both ports and peer 0, not peer 1 itself.
    let bcast2 = eth_frame(MacAddr::BROADCAST, H2_MAC, EtherType(0x88b5), &[7; 46]);
    r.send_from_peer(1, 100, &bcast2);
    assert_eq!(r.port_out(A1), vec![bcast2.clone()]);
    assert_eq!(r.port_out(A2), vec![bcast2.clone()]);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(check_outer(&out[0], PEERS[0], 100), bcast2);

    // Multicast floods the same way; VNI 300 has a peer but no port.
    let mcast = eth_frame(
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
        H2_MAC,
        EtherType(0x88b5),
        &[1; 46],
    );
    r.send(B1, &mcast);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(check_outer(&out[0], PEERS[2], 200), mcast);
    r.send_from_peer(3, 300, &mcast);
    r.assert_silent();
    assert_eq!(
        r.eng.counters().vnis[V300 as usize].rx_decap_packets.get(),
        1
    );
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

#[test]
fn same_segment_frames_are_dropped() {
    let mut r = rig();
    let hello = |src| eth_frame(MacAddr::BROADCAST, src, EtherType(0x88b5), &[0; 46]);
    r.send(A1, &hello(H1_MAC));
    r.send_from_peer(0, 100, &hello(H2_MAC));
    r.vxlan_out();
    for p in [A1, A2] {
        r.port_out(p);
    }
    let h3 = MacAddr([2, 0, 0, 0, 1, 0x33]);
    // Each from its own address: one flow per origin (a known flow from
    // another origin would be dropped as such before switching).
    let src = |n: u8| Ipv4Addr::new(10, 1, 0, 100 + n);
    r.send(A1, &inner_udp(h3, H1_MAC, src(1), H2_IP));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("same_segment", 1)]);
    r.send_from_peer(0, 100, &inner_udp(h3, H2_MAC, src(2), H2_IP));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("same_segment", 2)]);
    // A static entry at peer 1: a frame from peer 1 for it goes nowhere.
    r.send_from_peer(1, 100, &inner_udp(h3, HB_MAC, src(3), H2_IP));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("same_segment", 3)]);
    r.assert_no_leak();
}

#[test]
fn bad_source_macs_are_dropped_and_not_learned() {
    let mut r = rig();
    let bad = [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0, 0x5e, 0, 0, 9]),
        MacAddr::ZERO,
    ];
    for (i, src) in bad.iter().enumerate() {
        r.send(A1, &inner_udp(*src, H2_MAC, H1_IP, H2_IP));
        r.send_from_peer(0, 100, &inner_udp(*src, H1_MAC, H2_IP, H1_IP));
        r.assert_silent();
        assert_eq!(r.drops(), vec![("bad_source_mac", 2 * (i as u64 + 1))]);
    }
    assert_eq!(r.eng.counters().vnis[V100 as usize].macs_learned.get(), 0);
    r.assert_no_leak();
}

#[test]
fn gateway_answers_arp_for_its_address() {
    let mut r = rig();
    let gw = gw_mac(100);
    assert_eq!(r.eng.vnis()[V100 as usize].gateway.map(|g| g.1), Some(gw));
    let req = arp_frame(
        arp::Operation::REQUEST,
        MacAddr::BROADCAST,
        H1_MAC,
        H1_IP,
        MacAddr::ZERO,
        GW100,
    );
    r.send(A1, &req);
    let out = r.port_out(A1);
    assert_eq!(out.len(), 1);
    let reply = &out[0];
    assert_eq!(reply.len(), 42, "Ethernet + ARP, no padding");
    let eth = ethernet::Frame::new_checked(&reply[..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (H1_MAC, gw));
    assert_eq!(
        parse_arp(reply),
        Some(arp::Repr {
            operation: arp::Operation::REPLY,
            source_hardware_addr: gw,
            source_protocol_addr: GW100,
            target_hardware_addr: H1_MAC,
            target_protocol_addr: H1_IP,
        })
    );
    assert!(
        r.port_out(A2).is_empty(),
        "the gateway consumed the request"
    );
    assert!(r.vxlan_out().is_empty());
    assert_eq!(r.eng.counters().arp_replies_sent.get(), 1);

    // The same from a workload behind peer 0: the reply goes back in VXLAN.
    let req = arp_frame(
        arp::Operation::REQUEST,
        MacAddr::BROADCAST,
        H2_MAC,
        H2_IP,
        MacAddr::ZERO,
        GW100,
    );
    r.send_from_peer(0, 100, &req);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    let inner = check_outer(&out[0], PEERS[0], 100);
    assert_eq!(
        parse_arp(&inner).map(|a| a.target_hardware_addr),
        Some(H2_MAC)
    );
    r.assert_silent();

    // A request for another address in the VNI is switched, not answered.
    let other = arp_frame(
        arp::Operation::REQUEST,
        MacAddr::BROADCAST,
        H1_MAC,
        H1_IP,
        MacAddr::ZERO,
        H2_IP,
    );
    r.send(A1, &other);
    assert_eq!(r.port_out(A2), vec![other]);
    assert_eq!(r.vxlan_out().len(), 2);
    assert_eq!(r.eng.counters().arp_replies_sent.get(), 2);
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

#[test]
fn gateway_answers_ping() {
    let mut r = rig();
    let gw = gw_mac(100);
    let ping = echo_request(H1_IP, GW100, 0x4242, 7, b"0123456789abcdef");
    r.send(A1, &eth_frame(gw, H1_MAC, EtherType::IPV4, &ping));
    let out = r.port_out(A1);
    assert_eq!(out.len(), 1);
    let eth = ethernet::Frame::new_checked(&out[0][..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (H1_MAC, gw));
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (GW100, H1_IP));
    assert_eq!(ip.protocol(), IpProtocol::ICMP);
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(
        icmpv4::Repr::parse(&icmp),
        Ok(icmpv4::Repr::EchoReply {
            ident: 0x4242,
            seq_no: 7,
            data: b"0123456789abcdef",
        })
    );
    r.assert_silent();
    // Ping to the gateway of the other VNI, through this one, is answered too.
    let ping = echo_request(H1_IP, GW200, 1, 1, b"x");
    r.send(A1, &eth_frame(gw, H1_MAC, EtherType::IPV4, &ping));
    assert_eq!(r.port_out(A1).len(), 1);
    // Anything else for the gateway address is dropped.
    let udp_to_gw = udp_packet(H1_IP, GW100, 64, false, b"?");
    r.send(A1, &eth_frame(gw, H1_MAC, EtherType::IPV4, &udp_to_gw));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("to_gateway", 1)]);
    r.assert_no_leak();
}

#[test]
fn routes_between_vnis() {
    let mut r = rig();
    let (gw100, gw200) = (gw_mac(100), gw_mac(200));
    // H1 (VNI 100, a1) -> H4 (VNI 200, behind peer 2; static neighbor).
    let pkt = udp_packet(H1_IP, H4_IP, 64, true, b"routed");
    r.send(A1, &eth_frame(gw100, H1_MAC, EtherType::IPV4, &pkt));
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    let inner = check_outer(&out[0], PEERS[2], 200);
    let eth = ethernet::Frame::new_checked(&inner[..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (H4_MAC, gw200));
    let ip = ipv4::Packet::new_checked(l3(&inner)).unwrap();
    assert_eq!(ip.ttl(), 63);
    assert!(ip.verify_checksum());
    // Only TTL and checksum changed.
    let mut want = pkt.clone();
    want[8] = 63;
    ipv4::Packet::new_unchecked(&mut want[..]).fill_checksum();
    assert_eq!(l3(&inner), &want[..]);
    r.assert_silent();
    let c = r.eng.counters();
    assert_eq!(c.routed_packets.get(), 1);
    assert_eq!(c.vnis[V100 as usize].routed_out.get(), 1);
    assert_eq!(c.vnis[V200 as usize].routed_in.get(), 1);
    assert_eq!(c.vnis[V200 as usize].tx_encap_packets.get(), 1);

    // H3 on b1 announces itself (ARP for the gateway): reachable routed.
    let h3_mac = MacAddr([2, 0, 0, 0, 2, 0x33]);
    let h3_ip = Ipv4Addr::new(10, 2, 0, 33);
    let req = arp_frame(
        arp::Operation::REQUEST,
        MacAddr::BROADCAST,
        h3_mac,
        h3_ip,
        MacAddr::ZERO,
        GW200,
    );
    r.send(B1, &req);
    assert_eq!(r.port_out(B1).len(), 1, "ARP reply");
    // From peer 0 (VNI 100) to H3: out of b1, Ethernet padding trimmed.
    let pkt = udp_packet(H2_IP, h3_ip, 9, false, b"x");
    let mut frame = eth_frame(gw100, H2_MAC, EtherType::IPV4, &pkt);
    frame.resize(60, 0);
    r.send_from_peer(0, 100, &frame);
    let out = r.port_out(B1);
    assert_eq!(out.len(), 1);
    let eth = ethernet::Frame::new_checked(&out[0][..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (h3_mac, gw200));
    assert_eq!(out[0].len(), 14 + pkt.len());
    let ip = ipv4::Packet::new_checked(l3(&out[0])).unwrap();
    assert_eq!(ip.ttl(), 8);
    assert!(ip.verify_checksum());
    r.assert_silent();
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

/// The ICMP error warden sent to H1 on a1, checked: Ethernet and IP headers,
/// checksums, type and code, and the quote of `orig` (the IP packet).
fn check_icmp_error(r: &Rig, orig: &[u8], icmp_type: u8, code: u8, rest: u32) {
    let out = r.port_out(A1);
    assert_eq!(out.len(), 1, "one ICMP error back to the sender");
    let eth = ethernet::Frame::new_checked(&out[0][..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (H1_MAC, gw_mac(100)));
    assert_eq!(eth.ethertype(), EtherType::IPV4);
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (GW100, H1_IP));
    assert_eq!(ip.protocol(), IpProtocol::ICMP);
    assert_eq!(usize::from(ip.total_len()), eth.payload().len());
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((icmp.msg_type().0, icmp.msg_code()), (icmp_type, code));
    assert_eq!(
        u32::from_be_bytes(ip.payload()[4..8].try_into().unwrap()),
        rest
    );
    let quote = icmp.data();
    assert!(quote.len() >= 28, "IP header and 8 bytes");
    assert_eq!(quote, icmpv4::error_quote(orig));
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut r = rig();
    let pkt = udp_packet(H1_IP, H4_IP, 1, false, b"expiring");
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &pkt));
    check_icmp_error(&r, &pkt, 11, 0, 0);
    r.assert_silent();
    assert_eq!(r.drops(), vec![("ttl_exceeded", 1)]);
    assert_eq!(r.eng.counters().icmp_errors_sent.get(), 1);
    assert_eq!(r.eng.counters().routed_packets.get(), 0);
    // From a sender behind a peer, the error goes back through the tunnel.
    let pkt = udp_packet(H2_IP, H4_IP, 1, false, b"expiring");
    r.send_from_peer(
        0,
        100,
        &eth_frame(gw_mac(100), H2_MAC, EtherType::IPV4, &pkt),
    );
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    let inner = check_outer(&out[0], PEERS[0], 100);
    let eth = ethernet::Frame::new_checked(&inner[..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (H2_MAC, gw_mac(100)));
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (GW100, H2_IP));
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(
        (icmp.msg_type(), icmp.data()),
        (icmpv4::Message::TIME_EXCEEDED, &pkt[..])
    );
    r.assert_silent();
    assert_eq!(r.drops(), vec![("ttl_exceeded", 2)]);
    r.assert_no_leak();
}

#[test]
fn no_route_gets_net_unreachable() {
    let mut r = rig();
    let pkt = udp_packet(H1_IP, Ipv4Addr::new(192, 168, 5, 5), 64, false, b"nowhere");
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &pkt));
    check_icmp_error(&r, &pkt, 3, 0, 0);
    r.assert_silent();
    assert_eq!(r.drops(), vec![("no_route", 1)]);
    assert_eq!(r.eng.counters().icmp_errors_sent.get(), 1);
    r.assert_no_leak();
}

#[test]
fn too_big_with_df_gets_frag_needed() {
    let mut r = rig();
    // Underlay MTU 1500: inner IP packets up to 1450 bytes fit.
    let fits = udp_packet(H1_IP, H4_IP, 64, true, &[0xab; 1450 - 28]);
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &fits));
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1, "1450 bytes fit");
    assert_eq!(out[0].len(), 14 + 1500);
    let big = udp_packet(H1_IP, H4_IP, 64, true, &[0xab; 1451 - 28]);
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &big));
    check_icmp_error(&r, &big, 3, 4, 1450);
    r.assert_silent();
    assert_eq!(r.drops(), vec![("too_big", 1)]);
    // Without DF: dropped (warden does not fragment), no ICMP.
    let big = udp_packet(H1_IP, H4_IP, 64, false, &[0xab; 1451 - 28]);
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &big));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("too_big", 2)]);
    assert_eq!(r.eng.counters().icmp_errors_sent.get(), 1);
    r.assert_no_leak();
}

/// The ARP request the gateway sends into VNI 200 for the route's next hop.
fn check_arp_for_next_hop(f: &[u8]) {
    let eth = ethernet::Frame::new_checked(f).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr()),
        (MacAddr::BROADCAST, gw_mac(200))
    );
    assert_eq!(
        parse_arp(f),
        Some(arp::Repr {
            operation: arp::Operation::REQUEST,
            source_hardware_addr: gw_mac(200),
            source_protocol_addr: GW200,
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: NH_IP,
        })
    );
}

#[test]
fn unresolved_next_hop_is_resolved_then_the_packet_released() {
    let mut r = rig();
    let far = Ipv4Addr::new(10, 9, 1, 1);
    let pkt = udp_packet(H1_IP, far, 64, false, b"parked");
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &pkt));
    // The request floods VNI 200: b1 and peer 2.
    let out = r.port_out(B1);
    assert_eq!(out.len(), 1);
    check_arp_for_next_hop(&out[0]);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    check_arp_for_next_hop(&check_outer(&out[0], PEERS[2], 200));
    r.assert_silent();
    assert_eq!(r.eng.counters().arp_requests_sent.get(), 1);
    assert_eq!(r.eng.st.router.parked_len(), 1);
    // A second packet waits too, without a second request.
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &pkt));
    r.assert_silent();
    assert_eq!(r.eng.counters().arp_requests_sent.get(), 1);

    // The next hop answers from b1: both packets leave through b1.
    let reply = arp_frame(
        arp::Operation::REPLY,
        gw_mac(200),
        NH_MAC,
        NH_IP,
        gw_mac(200),
        GW200,
    );
    r.send(B1, &reply);
    let out = r.port_out(B1);
    assert_eq!(out.len(), 2, "parked packets released");
    for f in &out {
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (NH_MAC, gw_mac(200)));
        let ip = ipv4::Packet::new_checked(l3(f)).unwrap();
        assert_eq!((ip.dst_addr(), ip.ttl()), (far, 63));
        assert!(ip.verify_checksum());
    }
    r.assert_silent();
    assert!(r.eng.st.router.parked_len() == 0);
    assert_eq!(r.eng.counters().routed_packets.get(), 2);
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

#[test]
fn unresolved_next_hop_that_never_answers_expires() {
    let mut r = rig();
    let pkt = udp_packet(H1_IP, Ipv4Addr::new(10, 9, 1, 1), 64, false, b"lost");
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &pkt));
    assert_eq!(r.port_out(B1).len(), 1);
    assert_eq!(r.vxlan_out().len(), 1);
    assert_eq!(r.eng.st.router.parked_len(), 1);
    r.eng.advance_clock(1);
    assert_eq!(r.eng.st.router.parked_len(), 1, "still waiting after 1 s");
    r.eng.advance_clock(2);
    assert!(r.eng.st.router.parked_len() == 0);
    r.assert_silent();
    assert_eq!(r.drops(), vec![("neighbor_unresolved", 1)]);
    r.assert_no_leak();
}

/// A valid VXLAN frame from peer 0 in VNI 100, then `edit` applied.
fn edited(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = vxlan_frame(PEERS[0], 100, &inner_udp(H2_MAC, HB_MAC, H2_IP, H1_IP));
    edit(&mut f);
    f
}

/// Recompute the outer IP header checksum after an edit.
fn fix_ip(f: &mut [u8]) {
    ipv4::Packet::new_unchecked(&mut f[14..34]).fill_checksum();
}

#[test]
fn every_decap_drop_is_counted_once_under_its_own_name() {
    let inner = inner_udp(H2_MAC, HB_MAC, H2_IP, H1_IP);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "not_a_peer",
            vxlan_frame(Ipv4Addr::new(10, 0, 0, 99), 100, &inner),
        ),
        ("unknown_vni", vxlan_frame(PEERS[0], 999, &inner)),
        ("peer_vni_not_allowed", vxlan_frame(PEERS[2], 100, &inner)),
        ("bad_vxlan_flags", edited(|f| f[42] = 0)),
        ("bad_vxlan_flags", edited(|f| f[42] = 0x09)),
        ("bad_vxlan_flags", edited(|f| f[49] = 1)),
        ("truncated", edited(|f| f.truncate(f.len() - 1))),
        ("truncated", edited(|f| f.truncate(40))),
        ("truncated", edited(|f| f.truncate(20))),
        ("truncated", edited(|f| f.truncate(10))),
        ("bad_ip_checksum", edited(|f| f[24] ^= 0x01)),
        (
            "outer_fragment",
            edited(|f| {
                f[20] |= 0x20;
                fix_ip(f);
            }),
        ),
        (
            "outer_fragment",
            edited(|f| {
                f[20] = 0;
                f[21] = 8;
                fix_ip(f);
            }),
        ),
        (
            "bad_udp_checksum",
            vxlan_frame_with(PEERS[0], 100, &inner, Some(0x1234)),
        ),
        (
            "bad_udp_length",
            edited(|f| f[38..40].copy_from_slice(&7u16.to_be_bytes())),
        ),
        (
            "bad_ip_header",
            edited(|f| {
                f[14] = 0x65;
                fix_ip(f);
            }),
        ),
        (
            "bad_ip_header",
            edited(|f| {
                f[14] = 0x44;
                fix_ip(f);
            }),
        ),
        (
            "bad_ip_header",
            edited(|f| {
                f[16..18].copy_from_slice(&19u16.to_be_bytes());
                fix_ip(f);
            }),
        ),
        ("inner_too_short", vxlan_frame(PEERS[0], 100, &inner[..13])),
    ];
    for (name, frame) in cases {
        let mut r = rig();
        r.send(0, &frame);
        r.assert_silent();
        assert_eq!(r.drops(), vec![(name, 1)], "case {name}: {frame:02x?}");
        let c = r.eng.counters();
        for v in &c.vnis {
            assert_eq!(v.rx_decap_packets.get(), 0, "{name}");
        }
        for p in &c.peers {
            assert_eq!(p.rx_packets.get(), 0, "{name}");
        }
        assert_eq!(r.eng.fdb().len(), 2, "{name}: nothing learned");
        r.assert_no_leak();
    }
}

#[test]
fn valid_udp_checksum_and_ethernet_padding_are_accepted() {
    let mut r = rig();
    let inner = inner_udp(H2_MAC, HB_MAC, H2_IP, H1_IP);
    r.send(0, &vxlan_frame_with(PEERS[0], 100, &inner, None));
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(check_outer(&out[0], PEERS[1], 100), inner);
    // Outer padding after the IP packet is not part of the inner frame.
    let mut padded = vxlan_frame(PEERS[0], 100, &inner);
    padded.extend_from_slice(&[0xee; 8]);
    r.send(0, &padded);
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(check_outer(&out[0], PEERS[1], 100), inner);
    assert_eq!(r.drops(), vec![]);
}

#[test]
fn underlay_frames_for_others_are_dropped() {
    let mut r = rig();
    let mut other_mac = vxlan_frame(PEERS[0], 100, &inner_udp(H2_MAC, HB_MAC, H2_IP, H1_IP));
    other_mac[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    r.send(0, &other_mac);
    let ipv6 = eth_frame(WARDEN_MAC, peer_mac(PEERS[0]), EtherType::IPV6, &[0x60; 40]);
    r.send(0, &ipv6);
    r.assert_silent();
    assert_eq!(
        r.drops(),
        vec![("underlay_not_ipv4", 1), ("underlay_not_for_us", 1)]
    );
}

#[test]
fn malformed_frames_to_the_gateway_are_dropped_by_reason() {
    let gw = gw_mac(100);
    let mut bad_csum = udp_packet(H1_IP, H4_IP, 64, false, b"x");
    bad_csum[10] ^= 0xff;
    let mut short = udp_packet(H1_IP, H4_IP, 64, false, b"x");
    short[2..4].copy_from_slice(&200u16.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut short[..]).fill_checksum();
    let mut bad_icmp = echo_request(H1_IP, GW100, 1, 1, b"ping");
    bad_icmp[22] ^= 0xff;
    let timestamp = ipv4_packet(
        H1_IP,
        GW100,
        IpProtocol::ICMP,
        64,
        false,
        &[13, 0, 0xf2, 0xff, 0, 0, 0, 0],
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "not_ipv4_routed",
            eth_frame(gw, H1_MAC, EtherType::IPV6, &[0x60; 40]),
        ),
        (
            "bad_inner_checksum",
            eth_frame(gw, H1_MAC, EtherType::IPV4, &bad_csum),
        ),
        (
            "bad_inner_ip_header",
            eth_frame(gw, H1_MAC, EtherType::IPV4, &short),
        ),
        (
            "bad_inner_ip_header",
            eth_frame(gw, H1_MAC, EtherType::IPV4, &[0x45, 0, 0]),
        ),
        (
            "bad_inner_checksum",
            eth_frame(gw, H1_MAC, EtherType::IPV4, &bad_icmp),
        ),
        (
            "to_gateway",
            eth_frame(gw, H1_MAC, EtherType::IPV4, &timestamp),
        ),
        (
            "truncated",
            eth_frame(gw, H1_MAC, EtherType::ARP, &[0, 1, 8]),
        ),
    ];
    for (name, frame) in cases {
        let mut r = rig();
        r.send(A1, &frame);
        r.assert_silent();
        assert_eq!(r.drops(), vec![(name, 1)], "case {name}: {frame:02x?}");
        assert_eq!(r.eng.counters().icmp_errors_sent.get(), 0, "{name}");
        r.assert_no_leak();
    }
}

#[test]
fn no_icmp_error_about_an_icmp_error() {
    let mut r = rig();
    let quoted = udp_packet(H4_IP, H1_IP, 64, false, b"q");
    let mut msg = vec![0u8; 8 + quoted.len()];
    icmpv4::Repr::TimeExceeded {
        code: icmpv4::TimeExceeded::TTL_EXPIRED,
        data: &quoted,
    }
    .emit(&mut icmpv4::Packet::new_unchecked(&mut msg[..]))
    .unwrap();
    let err = ipv4_packet(H1_IP, H4_IP, IpProtocol::ICMP, 1, false, &msg);
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &err));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("ttl_exceeded", 1)]);
    assert_eq!(r.eng.counters().icmp_errors_sent.get(), 0);
    // An echo request is not an error: it gets one.
    let mut echo = echo_request(H1_IP, H4_IP, 9, 9, b"e");
    echo[8] = 1;
    ipv4::Packet::new_unchecked(&mut echo[..]).fill_checksum();
    r.send(A1, &eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &echo));
    check_icmp_error(&r, &echo, 11, 0, 0);
    r.assert_no_leak();
}

#[test]
fn icmp_errors_are_rate_limited_per_second() {
    let mut r = rig();
    let pkt = udp_packet(H1_IP, Ipv4Addr::new(192, 168, 1, 1), 64, false, b"x");
    let frame = eth_frame(gw_mac(100), H1_MAC, EtherType::IPV4, &pkt);
    let mut errors = 0;
    for _ in 0..250 {
        r.send(A1, &frame);
        errors += r.port_out(A1).len();
    }
    assert_eq!(errors, 200);
    assert_eq!(r.eng.counters().icmp_errors_sent.get(), 200);
    assert_eq!(r.drops(), vec![("no_route", 250)]);
    r.eng.advance_clock(1);
    r.send(A1, &frame);
    assert_eq!(r.port_out(A1).len(), 1, "budget refilled");
    r.assert_no_leak();
}

#[test]
fn frames_too_big_for_the_underlay_are_dropped() {
    let mut r = rig();
    // 1464-byte inner frames make 1500-byte outer IP packets.
    let pad = |n: usize| {
        let mut f = inner_udp(H1_MAC, HB_MAC, H1_IP, H2_IP);
        f.resize(n, 0);
        f
    };
    r.send(A1, &pad(1464));
    let out = r.vxlan_out();
    assert_eq!(out.len(), 1);
    assert_eq!(check_outer(&out[0], PEERS[1], 100), pad(1464));
    r.send(A1, &pad(1465));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("too_big", 1)]);
    r.assert_no_leak();
}

#[test]
fn peers_without_a_next_hop_get_nothing() {
    let mut r = unresolved_rig();
    assert!(r.eng.st.templates.iter().all(|t| t.is_none()));
    r.send(A1, &inner_udp(H1_MAC, HB_MAC, H1_IP, H2_IP));
    r.assert_silent();
    assert_eq!(r.drops(), vec![("no_peer_next_hop", 1)]);
    // Flooding still reaches the local port; each peer copy is dropped.
    let bcast = eth_frame(MacAddr::BROADCAST, H1_MAC, EtherType(0x88b5), &[0; 46]);
    r.send(A1, &bcast);
    assert_eq!(r.port_out(A2), vec![bcast]);
    r.assert_silent();
    assert_eq!(r.drops(), vec![("no_peer_next_hop", 3)]);
    r.assert_no_leak();
}

#[test]
fn vtep_address_answers_arp_and_ping_on_the_underlay() {
    let mut r = rig();
    let peer = PEERS[0];
    let req = arp_frame(
        arp::Operation::REQUEST,
        MacAddr::BROADCAST,
        peer_mac(peer),
        peer,
        MacAddr::ZERO,
        VTEP,
    );
    r.send(0, &req);
    r.eng.force_housekeeping();
    let mut replies = Vec::new();
    r.wire.recv_all(|f| {
        if let Some(a) = parse_arp(f) {
            replies.push(a);
        }
    });
    assert!(
        replies.contains(&arp::Repr {
            operation: arp::Operation::REPLY,
            source_hardware_addr: WARDEN_MAC,
            source_protocol_addr: VTEP,
            target_hardware_addr: peer_mac(peer),
            target_protocol_addr: peer,
        }),
        "{replies:?}"
    );
    let ping = echo_request(peer, VTEP, 0x99, 3, b"underlay");
    r.send(
        0,
        &eth_frame(WARDEN_MAC, peer_mac(peer), EtherType::IPV4, &ping),
    );
    r.eng.force_housekeeping();
    let mut echo_replies = 0;
    r.wire.recv_all(|f| {
        let Ok(eth) = ethernet::Frame::new_checked(f) else {
            return;
        };
        let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else {
            return;
        };
        let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload()) else {
            return;
        };
        if icmp.msg_type() == icmpv4::Message::ECHO_REPLY && icmp.echo_ident() == 0x99 {
            assert_eq!((ip.src_addr(), ip.dst_addr()), (VTEP, peer));
            assert_eq!(eth.dst_addr(), peer_mac(peer));
            echo_replies += 1;
        }
    });
    assert_eq!(echo_replies, 1);
    assert!(r.eng.counters().host_stack_rx.get() >= 2);
    assert_eq!(r.drops(), vec![]);
    r.assert_no_leak();
}

/// Frames for the fuzz test: random bytes, or random bytes behind headers
/// that lead deeper into the pipeline (VXLAN from a real peer, a frame to
/// a gateway MAC, an IPv4 packet to the gateway).
fn arbitrary_frame() -> impl Strategy<Value = (u16, u8, Vec<u8>)> {
    (
        0u16..4,
        0u8..5,
        proptest::collection::vec(any::<u8>(), 0..1600),
    )
}

fn shape(port: u16, kind: u8, bytes: &[u8]) -> Vec<u8> {
    let vni = if port == B1 { 200 } else { 100 };
    match kind {
        // A VXLAN header from a peer around random bytes.
        1 => vxlan_frame(
            PEERS[usize::from(port)],
            100 + u32::from(port % 2) * 100,
            bytes,
        ),
        // Random bytes after a gateway-MAC Ethernet header.
        2 => eth_frame(gw_mac(vni), H1_MAC, EtherType::IPV4, bytes),
        // An IPv4 header for the gateway or a routed destination.
        3 => {
            let dst = [GW100, H4_IP, Ipv4Addr::new(10, 9, 0, 1)][usize::from(port % 3)];
            let ip = ipv4_packet(
                H1_IP,
                dst,
                IpProtocol(bytes.first().copied().unwrap_or(1)),
                2,
                false,
                bytes,
            );
            eth_frame(gw_mac(vni), H1_MAC, EtherType::IPV4, &ip)
        }
        4 => eth_frame(MacAddr::BROADCAST, H1_MAC, EtherType::ARP, bytes),
        _ => bytes.to_vec(),
    }
}

/// What warden sends on the underlay is its host stack's traffic or VXLAN
/// to a configured peer, through that peer's next hop, in a VNI the peer
/// carries, with a valid outer header.
fn underlay_frame_ok(f: &[u8]) -> Result<(), String> {
    if is_host_stack_frame(f) {
        return Ok(());
    }
    let d = overlay::decap(f, 4789).map_err(|e| format!("not VXLAN ({e}): {f:02x?}"))?;
    let peer = PEERS
        .iter()
        .position(|p| *p == d.outer_dst)
        .ok_or_else(|| format!("VXLAN to a non-peer {}", d.outer_dst))?;
    let carried = [100, 100, 200, 300][peer];
    if d.outer_src != VTEP || d.outer_dst_mac != peer_mac(d.outer_dst) || d.vni.get() != carried {
        return Err(format!("bad outer header {d:?}"));
    }
    if d.inner_offset + d.inner_len != f.len() || !(49152..=65535).contains(&d.udp_src_port) {
        return Err(format!("bad lengths or source port {d:?}"));
    }
    gateway_frame_ok(d.inner(f))
}

/// An IPv4 frame the gateway sent or routed (source MAC a gateway MAC)
/// carries a valid header checksum, whatever came in.
fn gateway_frame_ok(f: &[u8]) -> Result<(), String> {
    let Ok(eth) = ethernet::Frame::new_checked(f) else {
        return Err(format!("runt frame out: {f:02x?}"));
    };
    let from_gateway = eth.src_addr() == gw_mac(100) || eth.src_addr() == gw_mac(200);
    if !from_gateway || eth.ethertype() != EtherType::IPV4 {
        return Ok(());
    }
    match ipv4::Packet::new_checked(eth.payload()) {
        Ok(ip) if ip.verify_checksum() => Ok(()),
        _ => Err(format!("gateway sent a bad IPv4 header: {f:02x?}")),
    }
}

#[test]
fn random_frames_on_every_port_do_not_panic_or_leak() {
    let rig = std::cell::RefCell::new(rig());
    // Frames out: (VXLAN on the underlay, on access ports).
    let seen = std::cell::Cell::new((0usize, 0usize));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    });
    let result = runner.run(&arbitrary_frame(), |(port, kind, bytes)| {
        let r = &mut *rig.borrow_mut();
        let frame = shape(port, kind, &bytes);
        let far = if port == 0 {
            &r.wire
        } else {
            &r.access[usize::from(port) - 1]
        };
        // Frames beyond a buffer are refused by the port; that is fine.
        far.send(&frame);
        r.eng.poll();
        if bytes.first() == Some(&0) {
            r.eng.advance_clock(1);
        }
        let mut bad = Vec::new();
        r.wire.recv_all(|f| {
            if let Err(e) = underlay_frame_ok(f) {
                bad.push(e);
            }
            if !is_host_stack_frame(f) {
                seen.set((seen.get().0 + 1, seen.get().1));
            }
        });
        for a in &r.access {
            a.recv_all(|f| {
                if let Err(e) = gateway_frame_ok(f) {
                    bad.push(e);
                }
                seen.set((seen.get().0, seen.get().1 + 1));
            });
        }
        prop_assert!(bad.is_empty(), "{:?}", bad);
        prop_assert_eq!(
            r.eng.pool.available() + r.eng.st.router.parked_len(),
            POOL_SIZE
        );
        Ok(())
    });
    result.unwrap();
    let (vxlan, local) = seen.get();
    assert!(
        vxlan > 50 && local > 50,
        "the frames reached forwarding: {vxlan} {local}"
    );
    let r = rig.borrow();
    let c = r.eng.counters();
    assert!(
        c.routed_packets.get() + c.icmp_errors_sent.get() > 0,
        "and the gateway"
    );
}

#[path = "fwd_cache_tests.rs"]
mod fwd_cache_tests;
