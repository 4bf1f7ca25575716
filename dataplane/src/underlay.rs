//! warden's presence on the underlay: a smoltcp host stack that owns the VTEP
//! address. It answers ARP and ICMP echo for that address and resolves the
//! next-hop MAC of every peer VTEP, so the outer headers that warden writes
//! carry a MAC that smoltcp's ARP (and its routes) produced, not a guess.
//!
//! How the MACs are learned: warden pings each peer through a smoltcp ICMP
//! socket. smoltcp resolves the next hop (the peer itself, or the underlay
//! gateway) by ARP before it emits the echo request; the destination MAC of
//! that emitted frame is the next-hop MAC for the peer. The replies double as
//! a liveness signal shown in `warden stats`.
//!
//! This is the slow path: frames reach it only when they are for the VTEP
//! address and are not VXLAN. Frame buffers are recycled, not freed.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant as StdInstant};

use overlay::{Ipv4Cidr, MacAddr};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::icmp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, Icmpv4Packet, Icmpv4Repr,
    IpAddress, IpCidr, IpProtocol, Ipv4Packet,
};

/// ICMP identifier of warden's probes to peer `i` ("wd" + index).
fn probe_ident(i: usize) -> u16 {
    0x7764u16.wrapping_add(i as u16)
}
/// Frames held for or from smoltcp at most; more are dropped (and counted).
const QUEUE_DEPTH: usize = 64;
/// Probe period while a peer's next hop is unknown, and once it is known.
const PROBE_UNRESOLVED: Duration = Duration::from_millis(500);
const PROBE_RESOLVED: Duration = Duration::from_secs(1);
/// A peer from which nothing was heard (no probe answered, no VXLAN frame
/// received) for this long is down. With a probe a second and the engine
/// looking once a second, a peer that goes silent is declared down 3 to 5 s
/// later: [`PEER_DETECTION_SECS`].
pub const PEER_DOWN_AFTER: Duration = Duration::from_secs(3);
/// The longest time from a peer's last sign of life to `down` in
/// `warden stats` (and the log line): the window, plus one probe period,
/// plus one engine second.
pub const PEER_DETECTION_SECS: u64 = 5;
const FRAME_CAP: usize = 2048;

/// What the host stack knows about one peer VTEP.
#[derive(Debug, Clone)]
pub struct PeerState {
    pub address: Ipv4Addr,
    /// This peer's probe socket: one each, because smoltcp waits for one
    /// neighbor at a time per socket.
    socket: SocketHandle,
    /// Destination MAC for outer headers toward this peer (next hop).
    pub next_hop_mac: Option<MacAddr>,
    pub probes_sent: u64,
    pub replies: u64,
    last_probe: Option<StdInstant>,
    /// When the first probe went out (liveness counts from there).
    first_probe: Option<StdInstant>,
    last_reply: Option<StdInstant>,
}

/// Whether a peer VTEP is alive, as far as warden can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Liveness {
    /// Not heard from yet, and not probed for long enough to say it is down
    /// (traffic is sent: a fresh start does not drop).
    Unknown = 0,
    /// Heard from within [`PEER_DOWN_AFTER`].
    Up = 1,
    /// Silent for [`PEER_DOWN_AFTER`] (or never answered in that long):
    /// traffic to it is dropped as `peer_down`.
    Down = 2,
}

impl Liveness {
    /// From the number `warden stats` reads (0, 1, 2).
    pub const fn from_u64(v: u64) -> Liveness {
        match v {
            1 => Liveness::Up,
            2 => Liveness::Down,
            _ => Liveness::Unknown,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Liveness::Unknown => "unknown",
            Liveness::Up => "up",
            Liveness::Down => "down",
        }
    }
}

impl PeerState {
    /// The peer answered a probe (or sent VXLAN) recently.
    pub fn is_up(&self, now: StdInstant) -> bool {
        self.liveness(now) == Liveness::Up
    }

    /// Up, down, or not known yet.
    pub fn liveness(&self, now: StdInstant) -> Liveness {
        match self.last_reply {
            Some(t) if now.saturating_duration_since(t) < PEER_DOWN_AFTER => Liveness::Up,
            Some(_) => Liveness::Down,
            None => match self.first_probe {
                Some(t) if now.saturating_duration_since(t) >= PEER_DOWN_AFTER => Liveness::Down,
                _ => Liveness::Unknown,
            },
        }
    }
}

/// The one place a peer's change of state is logged (stderr now; a
/// `tracing` event later).
pub fn log_peer_state(address: Ipv4Addr, name: Option<&str>, from: Liveness, to: Liveness) {
    let name = name.map(|n| format!(" ({n})")).unwrap_or_default();
    let why = match to {
        Liveness::Down => format!(
            ": nothing heard for {} s, traffic to it is dropped as peer_down",
            PEER_DOWN_AFTER.as_secs()
        ),
        _ => String::new(),
    };
    let text = format!(
        "peer {address}{name} is {} (was {}){why}",
        to.name(),
        from.name()
    );
    match to {
        Liveness::Down => tracing::warn!(peer = %address, state = to.name(), "{text}"),
        _ => tracing::info!(peer = %address, state = to.name(), "{text}"),
    }
}

/// Frame queues between warden's ports and smoltcp. Each direction keeps
/// its own spare list so a token pair can borrow both at once.
#[derive(Debug)]
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    rx_spare: Vec<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    tx_spare: Vec<Vec<u8>>,
    mtu: usize,
}

struct RxTok<'a> {
    frame: Vec<u8>,
    spare: &'a mut Vec<Vec<u8>>,
}

struct TxTok<'a> {
    tx: &'a mut VecDeque<Vec<u8>>,
    spare: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let r = f(&self.frame);
        self.spare.push(self.frame);
        r
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FRAME_CAP));
        buf.clear();
        buf.resize(len, 0);
        let r = f(&mut buf);
        if self.tx.len() < QUEUE_DEPTH {
            self.tx.push_back(buf);
        } else {
            self.spare.push(buf);
        }
        r
    }
}

impl phy::Device for QueueDevice {
    type RxToken<'a> = RxTok<'a>;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _ts: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            RxTok {
                frame,
                spare: &mut self.rx_spare,
            },
            TxTok {
                tx: &mut self.tx,
                spare: &mut self.tx_spare,
            },
        ))
    }

    fn transmit(&mut self, _ts: Instant) -> Option<Self::TxToken<'_>> {
        (self.tx.len() < QUEUE_DEPTH).then_some(TxTok {
            tx: &mut self.tx,
            spare: &mut self.tx_spare,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// The underlay host stack: smoltcp interface, its device queues and the
/// ICMP socket that probes peers.
pub struct HostStack {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    peers: Vec<PeerState>,
    epoch: StdInstant,
    seq: u16,
    /// Frames refused because a queue was full.
    pub queue_drops: u64,
}

impl std::fmt::Debug for HostStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStack")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl HostStack {
    /// A host stack with `address` on an Ethernet port whose MAC is `mac`,
    /// an optional default router, and the peers to resolve.
    pub fn new(
        mac: MacAddr,
        address: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
        mtu: usize,
        peers: &[Ipv4Addr],
    ) -> HostStack {
        let epoch = StdInstant::now();
        let mut device = QueueDevice {
            rx: VecDeque::with_capacity(QUEUE_DEPTH),
            rx_spare: (0..8).map(|_| Vec::with_capacity(FRAME_CAP)).collect(),
            tx: VecDeque::with_capacity(QUEUE_DEPTH),
            tx_spare: (0..8).map(|_| Vec::with_capacity(FRAME_CAP)).collect(),
            mtu,
        };
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac.0)));
        let mut iface = Interface::new(config, &mut device, Instant::from_millis(0));
        iface.update_ip_addrs(|addrs| {
            // One address always fits in smoltcp's fixed list.
            let _ = addrs.push(IpCidr::new(
                IpAddress::Ipv4(address.address()),
                address.prefix_len(),
            ));
        });
        if let Some(gw) = gateway {
            // A fresh route table always has room for the default route.
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        let mut sockets = SocketSet::new(Vec::new());
        let peers = peers
            .iter()
            .enumerate()
            .map(|(i, &address)| {
                let mut socket = icmp::Socket::new(
                    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 256]),
                    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 256]),
                );
                // Binding a fresh socket to an ident cannot fail.
                let _ = socket.bind(icmp::Endpoint::Ident(probe_ident(i)));
                PeerState {
                    address,
                    socket: sockets.add(socket),
                    next_hop_mac: None,
                    probes_sent: 0,
                    replies: 0,
                    last_probe: None,
                    first_probe: None,
                    last_reply: None,
                }
            })
            .collect();
        HostStack {
            iface,
            device,
            sockets,
            peers,
            epoch,
            seq: 0,
            queue_drops: 0,
        }
    }

    /// Hand a received frame to the host stack. Returns false (and counts)
    /// when its queue is full.
    pub fn push_rx(&mut self, frame: &[u8]) -> bool {
        if self.device.rx.len() >= QUEUE_DEPTH {
            self.queue_drops += 1;
            return false;
        }
        let mut buf = self
            .device
            .rx_spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FRAME_CAP));
        buf.clear();
        buf.extend_from_slice(frame);
        self.device.rx.push_back(buf);
        true
    }

    /// True when frames are waiting for smoltcp or probes are due.
    pub fn wants_poll(&self, now: StdInstant) -> bool {
        !self.device.rx.is_empty() || self.peers.iter().any(|p| self.probe_due(p, now))
    }

    fn probe_due(&self, p: &PeerState, now: StdInstant) -> bool {
        let period = if p.next_hop_mac.is_some() {
            PROBE_RESOLVED
        } else {
            PROBE_UNRESOLVED
        };
        p.last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= period)
    }

    fn smol_now(&self, now: StdInstant) -> Instant {
        Instant::from_millis(now.saturating_duration_since(self.epoch).as_millis() as i64)
    }

    /// Run smoltcp: ingest queued frames, send due probes, collect replies.
    /// Frames it wants to send are then read with [`HostStack::drain_tx`].
    pub fn poll(&mut self, now: StdInstant) {
        let ts = self.smol_now(now);
        self.iface.poll(ts, &mut self.device, &mut self.sockets);
        self.collect_replies(now);
        self.send_probes(now);
        self.iface.poll(ts, &mut self.device, &mut self.sockets);
        self.learn_next_hops();
    }

    fn send_probes(&mut self, now: StdInstant) {
        let caps = ChecksumCapabilities::default();
        for i in 0..self.peers.len() {
            if !self.probe_due(&self.peers[i], now) {
                continue;
            }
            self.peers[i].first_probe.get_or_insert(now);
            let socket = self.sockets.get_mut::<icmp::Socket>(self.peers[i].socket);
            if !socket.can_send() {
                // Still waiting for ARP; smoltcp retries by itself.
                self.peers[i].last_probe = Some(now);
                continue;
            }
            self.seq = self.seq.wrapping_add(1);
            let stamp = now.saturating_duration_since(self.epoch).as_micros() as u64;
            let payload = stamp.to_be_bytes();
            let repr = Icmpv4Repr::EchoRequest {
                ident: probe_ident(i),
                seq_no: self.seq,
                data: &payload,
            };
            let dst = IpAddress::Ipv4(self.peers[i].address);
            if let Ok(buf) = socket.send(repr.buffer_len(), dst) {
                let mut pkt = Icmpv4Packet::new_unchecked(buf);
                repr.emit(&mut pkt, &caps);
                self.peers[i].probes_sent += 1;
            }
            self.peers[i].last_probe = Some(now);
        }
    }

    fn collect_replies(&mut self, now: StdInstant) {
        for (i, p) in self.peers.iter_mut().enumerate() {
            let socket = self.sockets.get_mut::<icmp::Socket>(p.socket);
            // A peer's own probe may carry this socket's ident and land here
            // too; smoltcp answers echo requests itself either way.
            while let Ok((payload, from)) = socket.recv() {
                let IpAddress::Ipv4(from) = from;
                let is_reply = Icmpv4Packet::new_checked(payload)
                    .ok()
                    .and_then(|pkt| Icmpv4Repr::parse(&pkt, &ChecksumCapabilities::ignored()).ok())
                    .is_some_and(|r| matches!(r, Icmpv4Repr::EchoReply { ident, .. } if ident == probe_ident(i)));
                if is_reply && from == p.address {
                    p.replies += 1;
                    p.last_reply = Some(now);
                }
            }
        }
    }

    /// Read the next-hop MAC of each peer off the echo requests smoltcp emitted.
    fn learn_next_hops(&mut self) {
        for frame in &self.device.tx {
            let Some((dst_mac, dst_ip)) = probe_destination(frame) else {
                continue;
            };
            if let Some(p) = self.peers.iter_mut().find(|p| p.address == dst_ip) {
                p.next_hop_mac = Some(dst_mac);
            }
        }
    }

    /// Give every frame smoltcp wants to send to `send`, then recycle it.
    pub fn drain_tx(&mut self, mut send: impl FnMut(&[u8])) {
        while let Some(frame) = self.device.tx.pop_front() {
            send(&frame);
            self.device.tx_spare.push(frame);
        }
    }

    pub fn peers(&self) -> &[PeerState] {
        &self.peers
    }

    /// VXLAN arrived from peer `i`: it is alive whether or not it answers
    /// probes.
    pub fn heard_from(&mut self, i: usize, now: StdInstant) {
        if let Some(p) = self.peers.get_mut(i) {
            p.last_reply = Some(now);
        }
    }

    /// Next-hop MAC for peer `i` (index in the order given to `new`).
    pub fn next_hop(&self, i: usize) -> Option<MacAddr> {
        self.peers.get(i).and_then(|p| p.next_hop_mac)
    }
}

/// (destination MAC, destination IPv4) of an ICMP echo request frame that
/// warden's probe socket produced.
fn probe_destination(frame: &[u8]) -> Option<(MacAddr, Ipv4Addr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Icmp {
        return None;
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
    // smoltcp itself only answers echo; every request it emits is a probe.
    let is_probe = icmp.msg_type() == smoltcp::wire::Icmpv4Message::EchoRequest;
    is_probe.then(|| (MacAddr(eth.dst_addr().0), ip.dst_addr()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr};

    const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn arp_frame(op: ArpOperation, src: (MacAddr, Ipv4Addr), dst: (MacAddr, Ipv4Addr)) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation: op,
            source_hardware_addr: EthernetAddress(src.0 .0),
            source_protocol_addr: src.1,
            target_hardware_addr: EthernetAddress(dst.0 .0),
            target_protocol_addr: dst.1,
        };
        let mut buf = vec![0u8; 14 + repr.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(if op == ArpOperation::Request {
            EthernetAddress::BROADCAST
        } else {
            EthernetAddress(dst.0 .0)
        });
        eth.set_src_addr(EthernetAddress(src.0 .0));
        eth.set_ethertype(EthernetProtocol::Arp);
        repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        buf
    }

    fn drain(stack: &mut HostStack) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        stack.drain_tx(|f| out.push(f.to_vec()));
        out
    }

    fn parse_arp(frame: &[u8]) -> Option<ArpRepr> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Arp {
            return None;
        }
        ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()
    }

    #[test]
    fn answers_arp_for_vtep_address() {
        let ours: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let peer: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let mut s = HostStack::new(OUR_MAC, "10.0.0.1/24".parse().unwrap(), None, 1500, &[]);
        assert!(s.push_rx(&arp_frame(
            ArpOperation::Request,
            (PEER_MAC, peer),
            (MacAddr::ZERO, ours)
        )));
        s.poll(StdInstant::now());
        let replies: Vec<_> = drain(&mut s).iter().filter_map(|f| parse_arp(f)).collect();
        assert!(
            replies.iter().any(|r| matches!(r, ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, source_protocol_addr, source_hardware_addr, .. } if *source_protocol_addr == ours && source_hardware_addr.0 == OUR_MAC.0)),
            "no ARP reply in {replies:?}"
        );
    }

    #[test]
    fn resolves_peer_next_hop_through_arp() {
        let ours: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let peer: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let mut s = HostStack::new(OUR_MAC, "10.0.0.1/24".parse().unwrap(), None, 1500, &[peer]);
        let t0 = StdInstant::now();
        s.poll(t0);
        let out = drain(&mut s);
        assert!(
            out.iter().filter_map(|f| parse_arp(f)).any(|r| matches!(r, ArpRepr::EthernetIpv4 { operation: ArpOperation::Request, target_protocol_addr, .. } if target_protocol_addr == peer)),
            "expected an ARP request for the peer"
        );
        assert_eq!(s.next_hop(0), None);
        s.push_rx(&arp_frame(
            ArpOperation::Reply,
            (PEER_MAC, peer),
            (OUR_MAC, ours),
        ));
        s.poll(t0 + PROBE_UNRESOLVED);
        drain(&mut s);
        assert_eq!(s.next_hop(0), Some(PEER_MAC));
    }

    /// A peer warden's probe can carry the ident of one of our own probe
    /// sockets: smoltcp gives it to that socket and still answers it, once.
    #[test]
    fn answers_a_peer_probe_that_lands_on_a_probe_socket() {
        let ours: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let peer: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let mut s = HostStack::new(OUR_MAC, "10.0.0.1/24".parse().unwrap(), None, 1500, &[peer]);
        let t0 = StdInstant::now();
        // Let the stack learn the peer's MAC first.
        s.push_rx(&arp_frame(
            ArpOperation::Reply,
            (PEER_MAC, peer),
            (OUR_MAC, ours),
        ));
        s.poll(t0);
        drain(&mut s);
        let data = [1, 2, 3, 4, 5, 6, 7, 8];
        let repr = Icmpv4Repr::EchoRequest {
            ident: probe_ident(0),
            seq_no: 9,
            data: &data,
        };
        let ip = smoltcp::wire::Ipv4Repr {
            src_addr: peer,
            dst_addr: ours,
            next_header: IpProtocol::Icmp,
            payload_len: repr.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = vec![0u8; 14 + ip.buffer_len() + repr.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(EthernetAddress(OUR_MAC.0));
        eth.set_src_addr(EthernetAddress(PEER_MAC.0));
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let caps = ChecksumCapabilities::default();
        let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut ipp, &caps);
        repr.emit(&mut Icmpv4Packet::new_unchecked(ipp.payload_mut()), &caps);
        s.push_rx(&frame);
        s.poll(t0);
        let replies = drain(&mut s)
            .iter()
            .filter_map(|f| {
                let eth = EthernetFrame::new_checked(&f[..]).ok()?;
                let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
                let r = Icmpv4Repr::parse(&icmp, &caps).ok()?;
                let is_reply = matches!(r, Icmpv4Repr::EchoReply { seq_no: 9, .. });
                (is_reply && ip.dst_addr() == peer).then_some(())
            })
            .count();
        assert_eq!(replies, 1, "exactly one echo reply to the peer");
    }

    #[test]
    fn probes_off_subnet_peer_through_gateway() {
        let ours: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let gw: Ipv4Addr = "10.0.0.254".parse().unwrap();
        let peer: Ipv4Addr = "192.0.2.9".parse().unwrap();
        let mut s = HostStack::new(
            OUR_MAC,
            "10.0.0.1/24".parse().unwrap(),
            Some(gw),
            1500,
            &[peer],
        );
        let t0 = StdInstant::now();
        s.poll(t0);
        let asked_gw = drain(&mut s).iter().filter_map(|f| parse_arp(f)).any(|r| matches!(r, ArpRepr::EthernetIpv4 { target_protocol_addr, .. } if target_protocol_addr == gw));
        assert!(asked_gw);
        s.push_rx(&arp_frame(
            ArpOperation::Reply,
            (PEER_MAC, gw),
            (OUR_MAC, ours),
        ));
        s.poll(t0 + PROBE_UNRESOLVED);
        assert_eq!(s.next_hop(0), Some(PEER_MAC));
    }

    #[test]
    fn liveness_unknown_until_the_window_then_down_and_back_up() {
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        let mut stack =
            HostStack::new(OUR_MAC, "10.0.0.1/24".parse().unwrap(), None, 1500, &[peer]);
        let t0 = StdInstant::now();
        assert_eq!(stack.peers()[0].liveness(t0), Liveness::Unknown);
        stack.peers[0].first_probe = Some(t0);
        assert_eq!(
            stack.peers()[0].liveness(t0 + Duration::from_secs(2)),
            Liveness::Unknown
        );
        assert_eq!(
            stack.peers()[0].liveness(t0 + PEER_DOWN_AFTER),
            Liveness::Down
        );
        // VXLAN from the peer is a sign of life, as an answered probe is.
        let t1 = t0 + Duration::from_secs(10);
        stack.heard_from(0, t1);
        assert_eq!(
            stack.peers()[0].liveness(t1 + Duration::from_secs(1)),
            Liveness::Up
        );
        assert_eq!(
            stack.peers()[0].liveness(t1 + PEER_DOWN_AFTER),
            Liveness::Down
        );
        // The stated detection time covers the window, a probe period and
        // the engine's once-a-second look.
        assert!(
            PEER_DOWN_AFTER + PROBE_RESOLVED + Duration::from_secs(1)
                <= Duration::from_secs(PEER_DETECTION_SECS)
        );
    }
}
