//! The VTEP pipeline of one worker: underlay in, VXLAN off, a forwarding
//! decision (L2 per VNI, or the L3 gateway between VNIs), VXLAN on, out.
//!
//! The worker owns every table here (no locks). Packets are handled run to
//! completion within each received burst; transmit bursts are staged per
//! port and flushed once per received burst. Drops are counted by reason.

mod build;
mod csum;
pub mod ident;
#[cfg(test)]
mod ident_tests;
mod router;
mod tables;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use config::WardenConfig;
use overlay::{ethernet, MacAddr, OuterTemplate, OUTER_LEN};

use crate::buffer::{Buf, BufFlags, Burst, Pool};
use crate::counters::{Counters, DropReason};
use crate::fdb::{Fdb, Learned, Location};
use crate::port::Port;
use crate::underlay::HostStack;

pub use tables::{PeerRt, VniRt};

/// Packet buffers per worker: enough for every port's burst in flight, the
/// staged transmit bursts and flood copies.
pub const POOL_SIZE: usize = 4096;
/// Most copies one flooded frame is replicated to.
pub const MAX_FLOOD: usize = 256;
/// FDB entries per worker.
pub const FDB_CAPACITY: usize = 65536;

/// Where a frame entered the VNI it is being switched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Port(u16),
    Peer(u16),
    /// Produced or routed by warden's L3 gateway.
    Router,
}

impl From {
    /// Where a frame from here is learned in the FDB; None for the router.
    fn location(self) -> Option<Location> {
        match self {
            From::Port(p) => Some(Location::Port(p)),
            From::Peer(r) => Some(Location::Peer(r)),
            From::Router => None,
        }
    }
}

/// One worker's pipeline and everything it owns.
pub struct Engine {
    ports: Vec<Box<dyn Port>>,
    /// Access VNI index of each port (None for the underlay port).
    port_vni: Vec<Option<u16>>,
    underlay_port: u16,
    underlay_ip: Ipv4Addr,
    underlay_mac: MacAddr,
    udp_port: u16,
    underlay_mtu: usize,
    vnis: Vec<VniRt>,
    peers: Vec<PeerRt>,
    fdb: Fdb,
    router: router::Router,
    host: HostStack,
    pool: Pool,
    rx: Burst,
    tx: Vec<Burst>,
    counters: Arc<Counters>,
    start: Instant,
    /// Engine clock in seconds, updated by housekeeping.
    now_s: u32,
    last_housekeeping: Instant,
    last_second: u32,
    /// The host stack has frames to process.
    host_due: bool,
    /// Scratch list for parked packets that expired (kept to not allocate).
    expired: Vec<Buf>,
    /// Workload identity, when configured.
    ident: Option<ident::IdentityRt>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("ports", &self.ports.len())
            .field("vnis", &self.vnis.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Build the pipeline for `cfg` over already opened `ports` (in the
    /// config's port order).
    pub fn new(
        cfg: &WardenConfig,
        ports: Vec<Box<dyn Port>>,
        counters: Arc<Counters>,
    ) -> Result<Engine, ident::IdentityError> {
        build::build(cfg, ports, counters)
    }

    /// Forget every flow (an operator's flush, and benches of new flows).
    pub fn clear_flows(&mut self) {
        if let Some(id) = self.ident.as_mut() {
            id.flows.clear();
        }
    }

    /// The flow table, when identity is configured.
    pub fn flows(&self) -> Option<&crate::flows::FlowTable> {
        self.ident.as_ref().map(|i| &i.flows)
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn vnis(&self) -> &[VniRt] {
        &self.vnis
    }

    pub fn peers(&self) -> &[PeerRt] {
        &self.peers
    }

    pub fn host(&self) -> &HostStack {
        &self.host
    }

    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    pub fn now_s(&self) -> u32 {
        self.now_s
    }

    pub fn port_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.ports.iter().filter_map(|p| p.fd()).collect()
    }

    /// Poll every port once; returns how many packets were received.
    pub fn poll(&mut self) -> usize {
        let mut moved = 0;
        for p in 0..self.ports.len() {
            moved += self.poll_port(p as u16);
        }
        moved
    }

    fn poll_port(&mut self, p: u16) -> usize {
        let mut rx = std::mem::take(&mut self.rx);
        let n = match self.ports[p as usize].rx_burst(&mut self.pool, &mut rx) {
            Ok(n) => n,
            Err(_) => {
                // The port stays configured; a later poll may succeed.
                self.counters.ports[p as usize].rx_errors.inc();
                0
            }
        };
        if n == 0 {
            self.rx = rx;
            return 0;
        }
        let pc = &self.counters.ports[p as usize];
        pc.rx_packets.add(n as u64);
        let mut bytes = 0u64;
        for buf in rx.drain() {
            bytes += buf.len() as u64;
            if p == self.underlay_port {
                self.underlay_rx(buf);
            } else {
                self.access_rx(p, buf);
            }
        }
        self.counters.ports[p as usize].rx_bytes.add(bytes);
        self.rx = rx;
        self.flush();
        n
    }

    /// Send every staged transmit burst.
    pub fn flush(&mut self) {
        for p in 0..self.tx.len() {
            if !self.tx[p].is_empty() {
                self.flush_port(p as u16);
            }
        }
    }

    /// Periodic work, cheap when nothing is due: the engine clock, the host
    /// stack (ARP, echo, peer probes), FDB and neighbor aging.
    pub fn housekeeping(&mut self) {
        let now = Instant::now();
        if !self.host_due && now.duration_since(self.last_housekeeping).as_millis() < 5 {
            return;
        }
        self.last_housekeeping = now;
        self.now_s = now.duration_since(self.start).as_secs() as u32;
        if self.host_due || self.host.wants_poll(now) {
            self.host_due = false;
            self.host.poll(now);
            self.refresh_peer_templates();
        }
        let underlay = self.underlay_port as usize;
        let (pool, tx, counters) = (&mut self.pool, &mut self.tx[underlay], &self.counters);
        self.host.drain_tx(|frame| match pool.get() {
            Some(mut b) => {
                if b.copy_from(frame) {
                    if let Err(b) = tx.push(b) {
                        pool.put(b);
                        counters.count_drop(DropReason::TxFull);
                    }
                } else {
                    pool.put(b);
                }
            }
            None => counters.count_drop(DropReason::PoolEmpty),
        });
        if self.now_s != self.last_second {
            self.last_second = self.now_s;
            self.fdb.expire(self.now_s);
            let mut expired = std::mem::take(&mut self.expired);
            self.router.tick(self.now_s, &mut expired);
            for buf in expired.drain(..) {
                self.drop_packet(buf, DropReason::NeighborUnresolved);
            }
            self.expired = expired;
            if let Some(id) = self.ident.as_mut() {
                id.tick(self.now_s);
            }
            self.publish(now);
        }
        self.flush();
    }

    /// Once a second: what only the worker knows, for `warden stats`.
    fn publish(&self, now: Instant) {
        let c = &self.counters;
        for (i, p) in self.host.peers().iter().enumerate() {
            if let Some(pc) = c.peers.get(i) {
                pc.set_next_hop_mac(p.next_hop_mac);
                pc.up.set(u64::from(p.is_up(now)));
                pc.probes_sent.set(p.probes_sent);
                pc.replies.set(p.replies);
            }
        }
        for (p, pc) in self.ports.iter().zip(&c.ports) {
            // One getsockopt per port per second, not per packet.
            pc.rx_kernel_drops.set(p.stats().rx_kernel_drops);
        }
        c.fdb_entries.set(self.fdb.len() as u64);
        c.flows
            .set(self.ident.as_ref().map_or(0, |i| i.flows.len() as u64));
        c.neighbors.set(self.router.neighbor_count() as u64);
        self.publish_flows();
    }

    /// Copy the flow table into the rows `warden flows` reads.
    fn publish_flows(&self) {
        let Some(id) = &self.ident else { return };
        let Ok(mut rows) = self.counters.flow_rows.lock() else {
            return;
        };
        rows.clear();
        for (k, e) in id.flows.iter().take(crate::flows::MAX_ROWS) {
            rows.push(crate::flows::FlowRow {
                vni: self.vnis[k.vni as usize].id.get(),
                src: k.flow.src.to_string(),
                dst: k.flow.dst.to_string(),
                protocol: k.flow.protocol.0,
                src_port: k.flow.src_port,
                dst_port: k.flow.dst_port,
                from: match self.peers.get(e.peer as usize) {
                    Some(p) => p.address.to_string(),
                    None => "local".to_string(),
                },
                src_identity: format!("{:08x}", e.src_identity.0),
                identity_source: e.source.name().to_string(),
                dst_identity: format!("{:08x}", e.dst_identity.0),
                verdict: e.verdict.name().to_string(),
                packets: e.packets,
                bytes: e.bytes,
                age_secs: self.now_s.saturating_sub(e.created),
                idle_secs: self.now_s.saturating_sub(e.last_seen),
            });
        }
    }

    /// Housekeeping now, whatever the time since the last round (tests,
    /// benches, and after the host stack got a frame).
    pub fn force_housekeeping(&mut self) {
        self.last_housekeeping = self.start;
        self.host_due = true;
        self.housekeeping();
    }

    /// Rebuild the outer header template of every peer whose next-hop MAC
    /// the host stack learned or changed.
    fn refresh_peer_templates(&mut self) {
        for (i, peer) in self.peers.iter_mut().enumerate() {
            let mac = self.host.next_hop(i);
            if mac != peer.next_hop_mac {
                peer.next_hop_mac = mac;
                peer.template = mac.map(|dst| {
                    OuterTemplate::new(&overlay::OuterParams {
                        src_mac: self.underlay_mac,
                        dst_mac: dst,
                        src_ip: self.underlay_ip,
                        dst_ip: peer.address,
                        // Rewritten per packet: one template serves every VNI.
                        vni: overlay::Vni::new_masked(0),
                        dst_port: self.udp_port,
                        ttl: 64,
                        gbp: None,
                    })
                });
            }
        }
    }

    fn recycle(&mut self, buf: Buf) {
        self.pool.put(buf);
    }

    fn drop_packet(&mut self, buf: Buf, reason: DropReason) {
        self.counters.count_drop(reason);
        self.pool.put(buf);
    }

    /// A frame from the underlay port: VXLAN for us, the host stack's
    /// traffic, or something to drop.
    fn underlay_rx(&mut self, buf: Buf) {
        let f = buf.frame();
        let Ok(eth) = ethernet::Frame::new_checked(f) else {
            return self.drop_packet(buf, DropReason::Truncated);
        };
        let dst = eth.dst_addr();
        if dst != self.underlay_mac && !dst.is_broadcast() {
            return self.drop_packet(buf, DropReason::UnderlayNotForUs);
        }
        match eth.ethertype() {
            overlay::EtherType::ARP => self.punt_to_host(buf),
            overlay::EtherType::IPV4 => {
                let p = eth.payload();
                // Peek only what decides the path; decap checks everything.
                if p.len() < overlay::ipv4::HEADER_LEN {
                    return self.drop_packet(buf, DropReason::Truncated);
                }
                let ip = overlay::ipv4::Packet::new_unchecked(p);
                if ip.dst_addr() != self.underlay_ip {
                    return self.drop_packet(buf, DropReason::UnderlayNotForUs);
                }
                let ihl = usize::from(ip.header_len());
                // Counted here: the host stack would drop it without a word.
                if ip.version() != 4 || ihl < overlay::ipv4::HEADER_LEN {
                    return self.drop_packet(buf, DropReason::BadIpHeader);
                }
                let dst_port = p
                    .get(ihl + 2..ihl + 4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]));
                let is_vxlan =
                    ip.protocol() == overlay::IpProtocol::UDP && dst_port == Some(self.udp_port);
                if is_vxlan {
                    self.vxlan_rx(buf)
                } else {
                    self.punt_to_host(buf)
                }
            }
            _ => self.drop_packet(buf, DropReason::UnderlayNotIpv4),
        }
    }

    fn punt_to_host(&mut self, buf: Buf) {
        self.counters.host_stack_rx.inc();
        if !self.host.push_rx(buf.frame()) {
            self.counters.count_drop(DropReason::HostStackBusy);
        }
        self.recycle(buf);
        // Answer ARP and echo promptly rather than on the next tick.
        self.host_due = true;
    }

    fn vxlan_rx(&mut self, mut buf: Buf) {
        let d = match overlay::decap(buf.frame(), self.udp_port) {
            Ok(d) => d,
            Err(e) => return self.drop_packet(buf, decap_drop(e)),
        };
        let Some(peer) = self.peers.iter().position(|p| p.address == d.outer_src) else {
            return self.drop_packet(buf, DropReason::NotAPeer);
        };
        let Some(vni) = self.vnis.iter().position(|v| v.id == d.vni) else {
            return self.drop_packet(buf, DropReason::UnknownVni);
        };
        if !self.peers[peer].carries(vni) {
            return self.drop_packet(buf, DropReason::PeerVniNotAllowed);
        }
        let (peer, vni) = (peer as u16, vni as u16);
        self.counters.peers[peer as usize].rx_packets.inc();
        buf.trim_front(d.inner_offset);
        // Outer Ethernet padding (or trailing bytes) is not part of the inner frame.
        buf.set_len(d.inner_len);
        finish_partial_checksum(&mut buf);
        if self.ident.is_some() {
            match self.ident_from_peer(vni, peer, &mut buf, d.gbp) {
                Ok(ident::Ingress::Forward) => {}
                Ok(ident::Ingress::Consumed) => return self.recycle(buf),
                Err(reason) => return self.drop_packet(buf, reason),
            }
        }
        let vc = &self.counters.vnis[vni as usize];
        vc.rx_decap_packets.inc();
        vc.rx_decap_bytes.add(buf.len() as u64);
        self.switch(vni, buf, From::Peer(peer));
    }

    fn access_rx(&mut self, p: u16, mut buf: Buf) {
        let Some(vni) = self.port_vni[p as usize] else {
            return self.recycle(buf);
        };
        if buf.len() < ethernet::HEADER_LEN {
            return self.drop_packet(buf, DropReason::Truncated);
        }
        finish_partial_checksum(&mut buf);
        if self.ident.is_some() {
            if let Err(reason) = self.ident_from_port(vni, p, &buf) {
                return self.drop_packet(buf, reason);
            }
        }
        self.counters.vnis[vni as usize].rx_local_packets.inc();
        self.switch(vni, buf, From::Port(p));
    }

    /// L2 switching inside one VNI.
    fn switch(&mut self, vni: u16, buf: Buf, from: From) {
        let f = buf.frame();
        let (Some(dst), Some(src)) = (
            MacAddr::from_bytes(f),
            f.get(6..).and_then(MacAddr::from_bytes),
        ) else {
            return self.drop_packet(buf, DropReason::Truncated);
        };
        // Frames the gateway produced are neither learned nor routed again.
        if let Some(loc) = from.location() {
            if !src.is_unicast() {
                return self.drop_packet(buf, DropReason::BadSourceMac);
            }
            if self.fdb.learn(vni, src, loc, self.now_s) == Learned::New {
                self.counters.vnis[vni as usize].macs_learned.inc();
            }
            let gw_mac = self.vnis[vni as usize].gateway.map(|g| g.1);
            if Some(dst) == gw_mac {
                return self.route(vni, buf, from);
            }
            if dst.is_broadcast() && self.router_takes_broadcast(vni, &buf) {
                return self.route(vni, buf, from);
            }
            if let Some(ip) = self
                .router
                .glean_arp(vni, buf.frame(), &self.vnis, self.now_s)
            {
                self.release_parked(vni, ip);
            }
        }
        if dst.is_multicast() {
            return self.flood(vni, buf, from);
        }
        match self.fdb.lookup(vni, dst, self.now_s) {
            Some(Location::Port(p)) if from == From::Port(p) => {
                self.drop_packet(buf, DropReason::SameSegment)
            }
            Some(Location::Peer(r)) if from == From::Peer(r) => {
                self.drop_packet(buf, DropReason::SameSegment)
            }
            Some(Location::Port(p)) => self.deliver_local(vni, p, buf, from),
            Some(Location::Peer(r)) => self.encap(vni, r, buf, from),
            None => self.flood(vni, buf, from),
        }
    }

    /// Broadcast frames that the gateway consumes: ARP requests for its
    /// own address in this VNI.
    fn router_takes_broadcast(&self, vni: u16, buf: &Buf) -> bool {
        match self.vnis[vni as usize].gateway {
            Some((cidr, _)) => router::is_arp_request_for(buf.frame(), cidr.address()),
            None => false,
        }
    }

    /// Replicate a broadcast, multicast or unknown-unicast frame to every
    /// access port and peer of the VNI except where it came from.
    fn flood(&mut self, vni: u16, buf: Buf, from: From) {
        let v = &self.vnis[vni as usize];
        let ports_n = v.access_ports.len();
        let peers_n = v.flood_peers.len();
        // Replication targets on the stack; a VNI with more ports and peers
        // than this floods to the first MAX_FLOOD (config keeps VNIs smaller).
        let mut targets: [(bool, u16); MAX_FLOOD] = [(false, 0); MAX_FLOOD];
        let mut n = 0;
        for i in 0..ports_n {
            let p = v.access_ports[i];
            if from != From::Port(p) && n < targets.len() {
                targets[n] = (false, p);
                n += 1;
            }
        }
        for i in 0..peers_n {
            let r = v.flood_peers[i];
            if from != From::Peer(r) && n < targets.len() {
                targets[n] = (true, r);
                n += 1;
            }
        }
        if n == 0 {
            return self.recycle(buf);
        }
        for &(is_peer, t) in &targets[1..n] {
            let Some(mut copy) = self.pool.get() else {
                self.counters.count_drop(DropReason::PoolEmpty);
                continue;
            };
            if !copy.copy_from(buf.frame()) {
                self.pool.put(copy);
                continue;
            }
            self.counters.vnis[vni as usize].flood_copies.inc();
            if is_peer {
                self.encap(vni, t, copy, from);
            } else {
                self.deliver_local(vni, t, copy, from);
            }
        }
        let (is_peer, t) = targets[0];
        if is_peer {
            self.encap(vni, t, buf, from)
        } else {
            self.deliver_local(vni, t, buf, from)
        }
    }

    fn deliver_local(&mut self, vni: u16, p: u16, buf: Buf, from: From) {
        if self.ident.is_some() {
            if let Err(reason) = self.ident_deliver(vni, &buf, from) {
                return self.drop_packet(buf, reason);
            }
        }
        self.counters.vnis[vni as usize].tx_local_packets.inc();
        self.stage(p, buf);
    }

    fn stage(&mut self, p: u16, buf: Buf) {
        if let Err(buf) = self.tx[p as usize].push(buf) {
            // A full staging burst is sent now, then this packet joins the next.
            self.flush_port(p);
            if let Err(buf) = self.tx[p as usize].push(buf) {
                self.drop_packet(buf, DropReason::TxFull);
            }
        }
    }

    /// Send port `p`'s staged burst; a full ring drops and counts.
    fn flush_port(&mut self, p: u16) {
        let mut burst = std::mem::take(&mut self.tx[p as usize]);
        let bytes: u64 = burst.iter().map(|b| b.len() as u64).sum();
        let out = self.ports[p as usize].tx_burst(&mut burst, &mut self.pool);
        let pc = &self.counters.ports[p as usize];
        pc.tx_packets.add(out.sent as u64);
        pc.tx_bytes.add(bytes);
        if out.dropped > 0 {
            pc.tx_dropped.add(out.dropped as u64);
            self.counters.drops[DropReason::TxFull as usize].add(out.dropped as u64);
        }
        self.tx[p as usize] = burst;
    }

    /// Put VXLAN on a frame toward peer `r` and stage it on the underlay.
    fn encap(&mut self, vni: u16, r: u16, mut buf: Buf, from: From) {
        if self.peers[r as usize].template.is_none() {
            return self.drop_packet(buf, DropReason::NoPeerNextHop);
        }
        // One flow key per packet, for the stamp decision and the source
        // port (stamping adds an IP option; the 5-tuple stays the same).
        let flow = overlay::FlowKey::from_inner_ethernet(buf.frame()).ok();
        if self.ident.is_some() && from != From::Router {
            match self.ident_stamp(vni, r, &mut buf, flow) {
                Ok(None) => {}
                // The announce-only packet goes first; the frame follows unstamped.
                Ok(Some(announce)) => self.encap(vni, r, announce, From::Router),
                Err(reason) => return self.drop_packet(buf, reason),
            }
        }
        let inner_len = buf.len();
        if inner_len + OUTER_LEN - ethernet::HEADER_LEN > self.underlay_mtu {
            return self.drop_packet(buf, DropReason::TooBig);
        }
        let hash = match &flow {
            Some(k) => overlay::flow_hash(k),
            None => mac_hash(buf.frame()),
        };
        let src_port = overlay::vxlan_src_port(hash);
        let vni_id = self.vnis[vni as usize].id;
        if buf.prepend(OUTER_LEN).is_none() {
            return self.drop_packet(buf, DropReason::PoolEmpty);
        }
        let hdr: &mut [u8; OUTER_LEN] = match buf
            .frame_mut()
            .get_mut(..OUTER_LEN)
            .and_then(|s| s.try_into().ok())
        {
            Some(h) => h,
            None => return self.drop_packet(buf, DropReason::Truncated),
        };
        let written = match &self.peers[r as usize].template {
            Some(t) => t.write(hdr, inner_len, src_port).is_ok(),
            None => false,
        };
        if !written {
            return self.drop_packet(buf, DropReason::TooBig);
        }
        overlay::tunnel::set_gbp(hdr, vni_id, None);
        self.counters.peers[r as usize].tx_packets.inc();
        let vc = &self.counters.vnis[vni as usize];
        vc.tx_encap_packets.inc();
        vc.tx_encap_bytes.add(inner_len as u64);
        self.stage(self.underlay_port, buf);
    }
}

/// Complete a checksum the sending kernel left to offload (see `csum`).
#[inline]
fn finish_partial_checksum(buf: &mut Buf) {
    if buf.flags.contains(BufFlags::CSUM_NOT_READY) {
        csum::complete_l4_checksum(buf.frame_mut());
        buf.flags.remove(BufFlags::CSUM_NOT_READY);
    }
}

/// A hash for frames without an IP flow (ARP, other ethertypes).
fn mac_hash(f: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in f.iter().take(12) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

fn decap_drop(e: overlay::DecapError) -> DropReason {
    use overlay::DecapError as E;
    match e {
        E::Truncated => DropReason::Truncated,
        E::NotIpv4 => DropReason::UnderlayNotIpv4,
        E::BadIpHeader => DropReason::BadIpHeader,
        E::BadIpChecksum => DropReason::BadIpChecksum,
        E::Fragment => DropReason::OuterFragment,
        E::NotUdp | E::NotVxlanPort => DropReason::UnderlayNotForUs,
        E::BadUdpLength => DropReason::BadUdpLength,
        E::BadUdpChecksum => DropReason::BadUdpChecksum,
        E::BadVxlanFlags => DropReason::BadVxlanFlags,
        E::InnerTooShort => DropReason::InnerTooShort,
    }
}
