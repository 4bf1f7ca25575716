//! The L3 gateway between VNIs: warden owns one address and MAC in each VNI
//! that has a `gateway`, answers ARP and echo for it, and routes IPv4
//! between VNIs (route lookup, next-hop MAC from its inner ARP table, MAC
//! rewrite, TTL decrement), sending ICMP errors where a router does.
//!
//! The inner neighbor table is learned from ARP seen in each VNI (gleaned
//! from requests and replies) and from the packets routed; a miss sends an
//! ARP request into the egress VNI (at most one per target per second) and
//! drops the packet, counted. Static neighbors come from config.

use std::net::Ipv4Addr;

use config::WardenConfig;
use overlay::{arp, checksum, ethernet, icmpv4, ipv4, EtherType, IpProtocol, Ipv4Cidr, MacAddr};
use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::{Engine, From, VniRt};
use crate::buffer::Buf;
use crate::counters::DropReason;

/// Inner neighbors per worker; full means new ones are not learned.
const NEIGHBOR_CAPACITY: usize = 16384;
/// Learned inner neighbors expire after this many seconds.
const NEIGHBOR_AGING: u32 = 300;
/// ICMP errors per second, as a router rate-limits them.
const ICMP_ERRORS_PER_SEC: u32 = 200;
/// Packets held while their next hop is being resolved (as Linux queues a
/// few per neighbor).
const PARK_SLOTS: usize = 16;
/// How long a parked packet waits: 2 to 3 s on the engine's second clock,
/// about what Linux keeps its ARP queue.
const PARK_SECS: u32 = 3;

/// A routed packet waiting for its next hop's MAC.
#[derive(Debug)]
struct Parked {
    in_vni: u16,
    out_vni: u16,
    next_hop: Ipv4Addr,
    since: u32,
    buf: Buf,
}

#[derive(Debug, Clone, Copy)]
struct Neighbor {
    mac: MacAddr,
    last_seen: u32,
    is_static: bool,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    destination: Ipv4Cidr,
    vni: u16,
    via: Option<Ipv4Addr>,
}

/// The gateway's tables.
#[derive(Debug)]
pub struct Router {
    neighbors: HashMap<(u16, Ipv4Addr), Neighbor, RandomState>,
    /// Longest prefix first.
    routes: Vec<Route>,
    /// Last ARP request time (s) per (VNI, target).
    arp_sent: HashMap<(u16, Ipv4Addr), u32, RandomState>,
    icmp_tokens: u32,
    parked: Vec<Parked>,
    /// Largest inner frame (Ethernet header included) a VNI can carry.
    max_frame: usize,
}

impl Router {
    pub fn new(cfg: &WardenConfig, vnis: &[VniRt], max_frame: usize) -> Router {
        let index = |id| vnis.iter().position(|v| v.id == id).map(|i| i as u16);
        let mut routes: Vec<Route> = vnis
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.gateway.map(|(cidr, _)| Route {
                    destination: cidr.network(),
                    vni: i as u16,
                    via: None,
                })
            })
            .collect();
        routes.extend(cfg.routes.iter().filter_map(|r| {
            Some(Route {
                destination: r.destination,
                vni: index(r.vni)?,
                via: r.via,
            })
        }));
        routes.sort_by_key(|r| std::cmp::Reverse(r.destination.prefix_len()));
        let mut neighbors =
            HashMap::with_capacity_and_hasher(NEIGHBOR_CAPACITY, Default::default());
        for n in &cfg.neighbors {
            if let Some(v) = index(n.vni) {
                neighbors.insert(
                    (v, n.ip),
                    Neighbor {
                        mac: n.mac,
                        last_seen: 0,
                        is_static: true,
                    },
                );
            }
        }
        Router {
            neighbors,
            routes,
            arp_sent: HashMap::with_capacity_and_hasher(1024, Default::default()),
            icmp_tokens: ICMP_ERRORS_PER_SEC,
            parked: Vec::with_capacity(PARK_SLOTS),
            max_frame,
        }
    }

    /// Once a second: refill the ICMP budget, age neighbors. Returns the
    /// parked packets whose next hop never answered, to drop.
    pub fn tick(&mut self, now: u32, expired: &mut Vec<Buf>) {
        let mut i = 0;
        while i < self.parked.len() {
            if now.saturating_sub(self.parked[i].since) >= PARK_SECS {
                expired.push(self.parked.swap_remove(i).buf);
            } else {
                i += 1;
            }
        }
        self.icmp_tokens = ICMP_ERRORS_PER_SEC;
        self.neighbors
            .retain(|_, n| n.is_static || now.saturating_sub(n.last_seen) < NEIGHBOR_AGING);
        // At most one ARP request per target per second.
        self.arp_sent.retain(|_, t| now.saturating_sub(*t) < 1);
    }

    pub fn neighbor_count(&self) -> usize {
        self.neighbors.len()
    }

    /// Packets waiting for a next hop (they hold pool buffers).
    #[cfg(test)]
    pub(super) fn parked_len(&self) -> usize {
        self.parked.len()
    }

    /// Record `ip` at `mac` in `vni`; true when packets are parked for it.
    fn learn(&mut self, vni: u16, ip: Ipv4Addr, mac: MacAddr, now: u32) -> bool {
        if !mac.is_unicast() {
            return false;
        }
        let len = self.neighbors.len();
        match self.neighbors.get_mut(&(vni, ip)) {
            Some(n) if n.is_static => {}
            Some(n) => {
                n.mac = mac;
                n.last_seen = now;
            }
            None if len < NEIGHBOR_CAPACITY => {
                self.neighbors.insert(
                    (vni, ip),
                    Neighbor {
                        mac,
                        last_seen: now,
                        is_static: false,
                    },
                );
            }
            None => {}
        }
        self.parked
            .iter()
            .any(|p| p.out_vni == vni && p.next_hop == ip)
    }

    fn lookup_route(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        self.routes
            .iter()
            .find(|r| r.destination.contains(dst))
            .map(|r| (r.vni, r.via.unwrap_or(dst)))
    }

    fn neighbor(&self, vni: u16, ip: Ipv4Addr) -> Option<MacAddr> {
        self.neighbors.get(&(vni, ip)).map(|n| n.mac)
    }

    /// Learn the sender of an ARP frame switched in `vni` when it sits in
    /// the VNI's gateway subnet. Returns the address when packets wait for it.
    pub fn glean_arp(
        &mut self,
        vni: u16,
        frame: &[u8],
        vnis: &[VniRt],
        now: u32,
    ) -> Option<Ipv4Addr> {
        let (cidr, _) = vnis.get(vni as usize).and_then(|v| v.gateway)?;
        let a = parse_arp(frame)?;
        let ip = a.source_protocol_addr;
        (cidr.contains(ip)
            && ip != cidr.address()
            && self.learn(vni, ip, a.source_hardware_addr, now))
        .then_some(ip)
    }

    fn take_icmp_token(&mut self) -> bool {
        if self.icmp_tokens == 0 {
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }
}

fn parse_arp(frame: &[u8]) -> Option<arp::Repr> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::ARP {
        return None;
    }
    arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).ok()?).ok()
}

/// Whether `frame` is an ARP request for `ip`.
pub fn is_arp_request_for(frame: &[u8], ip: Ipv4Addr) -> bool {
    parse_arp(frame)
        .is_some_and(|a| a.operation == arp::Operation::REQUEST && a.target_protocol_addr == ip)
}

/// ICMP error kinds the gateway sends.
#[derive(Debug, Clone, Copy)]
enum IcmpError {
    NetUnreachable,
    FragNeeded(u16),
    TimeExceeded,
}

impl Engine {
    /// A frame addressed to the gateway in `vni` (its MAC, or a broadcast
    /// ARP request for its address).
    pub(super) fn route(&mut self, vni: u16, mut buf: Buf, from: From) {
        let Some((gw_cidr, gw_mac)) = self.vnis[vni as usize].gateway else {
            return self.drop_packet(buf, DropReason::NotIpv4Routed);
        };
        let Ok(eth) = ethernet::Frame::new_checked(buf.frame()) else {
            return self.drop_packet(buf, DropReason::Truncated);
        };
        let src_mac = eth.src_addr();
        if eth.ethertype() == EtherType::ARP {
            return self.gateway_arp(vni, buf, gw_cidr, gw_mac);
        }
        if eth.ethertype() != EtherType::IPV4 {
            return self.drop_packet(buf, DropReason::NotIpv4Routed);
        }
        let l3 = &buf.frame()[ethernet::HEADER_LEN..];
        let Ok(ip) = ipv4::Packet::new_checked(l3) else {
            return self.drop_packet(buf, DropReason::BadInnerIpHeader);
        };
        if !ip.verify_checksum() {
            return self.drop_packet(buf, DropReason::BadInnerChecksum);
        }
        let (src, dst, ttl, total) = (
            ip.src_addr(),
            ip.dst_addr(),
            ip.ttl(),
            usize::from(ip.total_len()),
        );
        let dont_frag = ip.dont_frag();
        // Ethernet padding beyond the IP packet is not forwarded.
        buf.set_len(ethernet::HEADER_LEN + total);
        if gw_cidr.contains(src)
            && src != gw_cidr.address()
            && self.router.learn(vni, src, src_mac, self.now_s)
        {
            self.release_parked(vni, src);
        }
        if self
            .vnis
            .iter()
            .any(|v| v.gateway.is_some_and(|(c, _)| c.address() == dst))
        {
            return self.gateway_local(vni, buf, gw_mac);
        }
        let Some((out_vni, next_hop)) = self.router.lookup_route(dst) else {
            self.icmp_error(vni, &buf, IcmpError::NetUnreachable);
            return self.drop_packet(buf, DropReason::NoRoute);
        };
        if ttl <= 1 {
            self.icmp_error(vni, &buf, IcmpError::TimeExceeded);
            return self.drop_packet(buf, DropReason::TtlExceeded);
        }
        if buf.len() > self.router.max_frame {
            if dont_frag {
                let mtu = (self.router.max_frame - ethernet::HEADER_LEN) as u16;
                self.icmp_error(vni, &buf, IcmpError::FragNeeded(mtu));
            }
            return self.drop_packet(buf, DropReason::TooBig);
        }
        let _ = from;
        match self.router.neighbor(out_vni, next_hop) {
            Some(dst_mac) => self.forward_routed(vni, out_vni, dst_mac, buf),
            None => {
                self.arp_request(out_vni, next_hop);
                if self.router.parked.len() < PARK_SLOTS {
                    let since = self.now_s;
                    self.router.parked.push(Parked {
                        in_vni: vni,
                        out_vni,
                        next_hop,
                        since,
                        buf,
                    });
                } else {
                    self.drop_packet(buf, DropReason::NeighborUnresolved);
                }
            }
        }
    }

    /// Rewrite a routed packet for its next hop and switch it in `out_vni`.
    fn forward_routed(&mut self, in_vni: u16, out_vni: u16, dst_mac: MacAddr, mut buf: Buf) {
        let Some((_, out_mac)) = self.vnis[out_vni as usize].gateway else {
            return self.drop_packet(buf, DropReason::NoRoute);
        };
        {
            let f = buf.frame_mut();
            let mut eth = ethernet::Frame::new_unchecked(&mut *f);
            eth.set_dst_addr(dst_mac);
            eth.set_src_addr(out_mac);
            let mut ip = ipv4::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            ip.decrement_ttl();
        }
        self.counters.routed_packets.inc();
        self.counters.vnis[in_vni as usize].routed_out.inc();
        self.counters.vnis[out_vni as usize].routed_in.inc();
        self.switch(out_vni, buf, From::Router);
    }

    /// Send the packets that waited for `ip` in `vni`, now that it is known.
    pub(super) fn release_parked(&mut self, vni: u16, ip: Ipv4Addr) {
        let Some(mac) = self.router.neighbor(vni, ip) else {
            return;
        };
        let mut i = 0;
        while i < self.router.parked.len() {
            let p = &self.router.parked[i];
            if p.out_vni == vni && p.next_hop == ip {
                let p = self.router.parked.swap_remove(i);
                self.forward_routed(p.in_vni, p.out_vni, mac, p.buf);
            } else {
                i += 1;
            }
        }
    }

    /// ARP to the gateway: answer requests for its address, learn replies.
    fn gateway_arp(&mut self, vni: u16, mut buf: Buf, gw_cidr: Ipv4Cidr, gw_mac: MacAddr) {
        let Some(req) = parse_arp(buf.frame()) else {
            return self.drop_packet(buf, DropReason::Truncated);
        };
        let sender = req.source_protocol_addr;
        // Packets parked for the sender leave once this frame is handled.
        let waiting = gw_cidr.contains(sender)
            && sender != gw_cidr.address()
            && self
                .router
                .learn(vni, sender, req.source_hardware_addr, self.now_s);
        let reply = match req.reply(gw_mac) {
            Some(r) if req.target_protocol_addr == gw_cidr.address() => r,
            // A reply to one of our requests (already learned above).
            _ => {
                self.recycle(buf);
                if waiting {
                    self.release_parked(vni, sender);
                }
                return;
            }
        };
        {
            let f = buf.frame_mut();
            let mut eth = ethernet::Frame::new_unchecked(&mut *f);
            eth.set_dst_addr(req.source_hardware_addr);
            eth.set_src_addr(gw_mac);
            let _ = reply.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()));
        }
        buf.set_len(ethernet::HEADER_LEN + arp::ETHERNET_IPV4_LEN);
        self.counters.arp_replies_sent.inc();
        self.switch(vni, buf, From::Router);
        if waiting {
            self.release_parked(vni, sender);
        }
    }

    /// A packet for one of the gateway addresses: answer echo, drop the rest.
    fn gateway_local(&mut self, vni: u16, mut buf: Buf, gw_mac: MacAddr) {
        let f = buf.frame_mut();
        let (eth_hdr, l3) = f.split_at_mut(ethernet::HEADER_LEN);
        let Ok(mut ip) = ipv4::Packet::new_checked(&mut *l3) else {
            return self.drop_packet(buf, DropReason::BadInnerIpHeader);
        };
        if ip.protocol() != IpProtocol::ICMP {
            return self.drop_packet(buf, DropReason::ToGateway);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(mut icmp) = icmpv4::Packet::new_checked(ip.payload_mut()) else {
            return self.drop_packet(buf, DropReason::BadInnerIpHeader);
        };
        if !icmp.verify_checksum() {
            return self.drop_packet(buf, DropReason::BadInnerChecksum);
        }
        if icmp.msg_type() != icmpv4::Message::ECHO_REQUEST {
            return self.drop_packet(buf, DropReason::ToGateway);
        }
        icmp.set_msg_type(icmpv4::Message::ECHO_REPLY);
        icmp.fill_checksum();
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(64);
        ip.fill_checksum();
        let mut eth = ethernet::Frame::new_unchecked(&mut *eth_hdr);
        let peer_mac = eth.src_addr();
        eth.set_dst_addr(peer_mac);
        eth.set_src_addr(gw_mac);
        self.switch(vni, buf, From::Router);
    }

    /// Send an ARP request for `ip` into `vni` unless one went out recently.
    fn arp_request(&mut self, vni: u16, ip: Ipv4Addr) {
        let Some((cidr, mac)) = self.vnis[vni as usize].gateway else {
            return;
        };
        if self.router.arp_sent.contains_key(&(vni, ip)) {
            return;
        }
        let Some(mut buf) = self.pool.get() else {
            return self.counters.count_drop(DropReason::PoolEmpty);
        };
        self.router.arp_sent.insert((vni, ip), self.now_s);
        let repr = arp::Repr {
            operation: arp::Operation::REQUEST,
            source_hardware_addr: mac,
            source_protocol_addr: cidr.address(),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: ip,
        };
        let len = ethernet::HEADER_LEN + arp::ETHERNET_IPV4_LEN;
        buf.set_len(len);
        let f = buf.frame_mut();
        let mut eth = ethernet::Frame::new_unchecked(&mut *f);
        eth.set_dst_addr(MacAddr::BROADCAST);
        eth.set_src_addr(mac);
        eth.set_ethertype(EtherType::ARP);
        let _ = repr.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()));
        self.counters.arp_requests_sent.inc();
        self.switch(vni, buf, From::Router);
    }

    /// Send an ICMP error about `orig` (an inner frame that arrived in
    /// `vni`) back to its sender, from the gateway address of `vni`.
    fn icmp_error(&mut self, vni: u16, orig: &Buf, kind: IcmpError) {
        let Some((cidr, gw_mac)) = self.vnis[vni as usize].gateway else {
            return;
        };
        let f = orig.frame();
        let Ok(eth) = ethernet::Frame::new_checked(f) else {
            return;
        };
        let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else {
            return;
        };
        // Never answer an ICMP error with an error, nor a non-first fragment.
        if ip.protocol() == IpProtocol::ICMP {
            let t = ip.payload().first().copied().unwrap_or(0);
            if !matches!(t, 0 | 8) {
                return;
            }
        }
        if ip.frag_offset() != 0 || !self.router.take_icmp_token() {
            return;
        }
        let Some(mut buf) = self.pool.get() else {
            return self.counters.count_drop(DropReason::PoolEmpty);
        };
        let quoted = icmpv4::error_quote(eth.payload());
        let quoted_len = quoted.len();
        let (icmp_type, code, rest) = match kind {
            IcmpError::NetUnreachable => (3u8, 0u8, 0u32),
            IcmpError::FragNeeded(mtu) => (3, 4, u32::from(mtu)),
            IcmpError::TimeExceeded => (11, 0, 0),
        };
        let icmp_len = 8 + quoted_len;
        let ip_len = 20 + icmp_len;
        buf.set_len(ethernet::HEADER_LEN + ip_len);
        let out = buf.frame_mut();
        {
            let mut e = ethernet::Frame::new_unchecked(&mut *out);
            e.set_dst_addr(eth.src_addr());
            e.set_src_addr(gw_mac);
            e.set_ethertype(EtherType::IPV4);
        }
        let (_, l3) = out.split_at_mut(ethernet::HEADER_LEN);
        let repr = ipv4::Repr {
            src_addr: cidr.address(),
            dst_addr: ip.src_addr(),
            protocol: IpProtocol::ICMP,
            payload_len: icmp_len,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        let mut out_ip = ipv4::Packet::new_unchecked(&mut *l3);
        let _ = repr.emit(&mut out_ip);
        let icmp = out_ip.payload_mut();
        icmp[0] = icmp_type;
        icmp[1] = code;
        icmp[2..4].copy_from_slice(&[0, 0]);
        icmp[4..8].copy_from_slice(&rest.to_be_bytes());
        icmp[8..8 + quoted_len].copy_from_slice(quoted);
        let c = checksum::checksum(&icmp[..icmp_len]);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        self.counters.icmp_errors_sent.inc();
        self.switch(vni, buf, From::Router);
    }
}
