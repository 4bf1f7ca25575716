//! Stage: the L3 gateway between VNIs. warden owns one address and MAC in each VNI
//! that has a `gateway`, answers ARP and echo for it, and routes IPv4
//! between VNIs (route lookup, next-hop MAC from its inner ARP table, MAC
//! rewrite, TTL decrement), sending ICMP errors where a router does.
//!
//! The inner neighbor table is learned from ARP seen in each VNI (gleaned
//! from requests and replies) and from the packets routed; a miss sends an
//! ARP request into the egress VNI (at most one per target per second) and
//! parks the packet for a few seconds. Static neighbors come from config.
//!
//! The stage never calls back into switching: a routed packet leaves with
//! "next: switch in VNI x" (`ROUTED`, from the router), and what the
//! gateway makes (ARP, echo replies, ICMP errors) is appended to the
//! vector the same way; the driver runs the switch stage again.

use std::cell::Cell;
use std::net::Ipv4Addr;

use overlay::{arp, checksum, ethernet, icmpv4, ipv4, EtherType, IpProtocol, Ipv4Cidr, MacAddr};
use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::meta::{From, Meta, Next, Vector, PLAIN, ROUTED};
use super::{fwd_cache, Ctx, Tables};
use crate::buffer::Buf;
use crate::counters::{DropReason, RunTally, WorkerCounters};
use crate::fdb::Location;
use crate::flows::FwdAction;

/// Inner neighbors per worker; full means new ones are not learned.
const NEIGHBOR_CAPACITY: usize = 16384;
/// Learned inner neighbors expire after this many seconds.
const NEIGHBOR_AGING: u32 = 300;
/// ICMP errors per second, as a router rate-limits them.
const ICMP_ERRORS_PER_SEC: u32 = 200;
/// ARP requests remembered per second (one per target): a flood of routed
/// packets to many unresolved addresses sends at most this many a second.
const ARP_SENT_MAX: usize = 1024;
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
    meta: Meta,
    buf: Buf,
}

#[derive(Debug, Clone, Copy)]
struct Neighbor {
    mac: MacAddr,
    last_seen: u32,
    is_static: bool,
}

/// The gateway's learned state (routes are config: [`Tables::routes`]).
#[derive(Debug)]
pub struct Router {
    neighbors: HashMap<(u16, Ipv4Addr), Neighbor, RandomState>,
    /// Last ARP request time (s) per (VNI, target).
    arp_sent: HashMap<(u16, Ipv4Addr), u32, RandomState>,
    icmp_tokens: u32,
    parked: Vec<Parked>,
    /// Last-hit caches (as the FDB's): a stream of routed packets learns
    /// the same sender and resolves the same next hop in a row.
    /// Learn: (VNI, address, MAC, second) already recorded.
    last_learned: Option<(u16, Ipv4Addr, MacAddr, u32)>,
    /// Neighbor lookup: (VNI, address, MAC, generation).
    last_neighbor: Cell<Option<(u16, Ipv4Addr, MacAddr, u64)>>,
    /// Bumped whenever a neighbor appears, changes MAC or may have gone:
    /// validates `last_neighbor`.
    generation: u64,
}

impl Router {
    pub fn new(t: &Tables) -> Router {
        let mut neighbors =
            HashMap::with_capacity_and_hasher(NEIGHBOR_CAPACITY, Default::default());
        for &(v, ip, mac) in &t.neighbors {
            neighbors.insert(
                (v, ip),
                Neighbor {
                    mac,
                    last_seen: 0,
                    is_static: true,
                },
            );
        }
        Router {
            neighbors,
            arp_sent: HashMap::with_capacity_and_hasher(ARP_SENT_MAX, Default::default()),
            icmp_tokens: ICMP_ERRORS_PER_SEC,
            parked: Vec::with_capacity(PARK_SLOTS),
            last_learned: None,
            last_neighbor: Cell::new(None),
            generation: 0,
        }
    }

    /// After a reload: static neighbors `old` had and `new` has not go,
    /// `new`'s are installed (learned ones stay).
    pub fn reload_statics(&mut self, old: &Tables, new: &Tables) {
        for &(v, ip, _) in &old.neighbors {
            if self.neighbors.get(&(v, ip)).is_some_and(|n| n.is_static) {
                self.neighbors.remove(&(v, ip));
            }
        }
        for &(v, ip, mac) in &new.neighbors {
            self.neighbors.insert(
                (v, ip),
                Neighbor {
                    mac,
                    last_seen: 0,
                    is_static: true,
                },
            );
        }
        self.generation = self.generation.wrapping_add(1);
        self.last_learned = None;
    }

    /// Once a second: refill the ICMP budget, age neighbors. Returns the
    /// parked packets whose next hop never answered, to drop.
    pub fn tick(&mut self, now: u32, expired: &mut Vec<Buf>) {
        // Never grows past its capacity: at most PARK_SLOTS buffers expire.
        let mut i = 0;
        while i < self.parked.len() {
            if now.saturating_sub(self.parked[i].since) >= PARK_SECS {
                expired.push(self.parked.swap_remove(i).buf);
            } else {
                i += 1;
            }
        }
        self.icmp_tokens = ICMP_ERRORS_PER_SEC;
        self.generation = self.generation.wrapping_add(1);
        self.last_learned = None;
        self.neighbors
            .retain(|_, n| n.is_static || now.saturating_sub(n.last_seen) < NEIGHBOR_AGING);
        // At most one ARP request per target per second.
        self.arp_sent.retain(|_, t| now.saturating_sub(*t) < 1);
    }

    /// Bumped whenever a neighbor appears, changes MAC or may have gone
    /// (every `tick`, and a reload of the static ones).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether routed packets wait for a next hop.
    #[inline]
    pub fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    pub fn neighbor_count(&self) -> usize {
        self.neighbors.len()
    }

    /// Every neighbor as (VNI index, address, MAC, static, age in s), for
    /// `warden neighbors` (no allocation).
    pub fn neighbors(
        &self,
        now: u32,
    ) -> impl Iterator<Item = (u16, Ipv4Addr, MacAddr, bool, u32)> + '_ {
        self.neighbors
            .iter()
            .map(move |(&(v, ip), n)| (v, ip, n.mac, n.is_static, now.saturating_sub(n.last_seen)))
    }

    /// Packets waiting for a next hop (they hold pool buffers).
    pub fn parked_len(&self) -> usize {
        self.parked.len()
    }

    /// Record `ip` at `mac` in `vni`; true when packets are parked for it.
    #[inline]
    fn learn(&mut self, vni: u16, ip: Ipv4Addr, mac: MacAddr, now: u32) -> bool {
        if !mac.is_unicast() {
            return false;
        }
        // The same sender at the same MAC this second: recorded already
        // (only `tick` removes entries, and it clears this cache).
        if self.last_learned != Some((vni, ip, mac, now)) {
            self.record(vni, ip, mac, now);
        }
        !self.parked.is_empty()
            && self
                .parked
                .iter()
                .any(|p| p.out_vni == vni && p.next_hop == ip)
    }

    /// The table side of [`Router::learn`], out of the per-packet path.
    #[inline(never)]
    fn record(&mut self, vni: u16, ip: Ipv4Addr, mac: MacAddr, now: u32) {
        let len = self.neighbors.len();
        let recorded = match self.neighbors.get_mut(&(vni, ip)) {
            Some(n) if n.is_static => true,
            Some(n) => {
                if n.mac != mac {
                    n.mac = mac;
                    self.generation = self.generation.wrapping_add(1);
                }
                n.last_seen = now;
                true
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
                self.generation = self.generation.wrapping_add(1);
                true
            }
            None => false,
        };
        self.last_learned = recorded.then_some((vni, ip, mac, now));
    }

    #[inline]
    fn neighbor(&self, vni: u16, ip: Ipv4Addr) -> Option<MacAddr> {
        if let Some((v, a, mac, g)) = self.last_neighbor.get() {
            if v == vni && a == ip && g == self.generation {
                return Some(mac);
            }
        }
        self.neighbor_lookup(vni, ip)
    }

    /// The table side of [`Router::neighbor`], out of the per-packet path.
    #[inline(never)]
    fn neighbor_lookup(&self, vni: u16, ip: Ipv4Addr) -> Option<MacAddr> {
        let mac = self.neighbors.get(&(vni, ip)).map(|n| n.mac)?;
        self.last_neighbor
            .set(Some((vni, ip, mac, self.generation)));
        Some(mac)
    }

    /// The MAC of inner neighbor `ip` in VNI `vni`, if known (`trace`).
    pub fn neighbor_of(&self, vni: u16, ip: Ipv4Addr) -> Option<MacAddr> {
        self.neighbor(vni, ip)
    }

    /// Learn the sender of an ARP frame switched in `vni` when it sits in
    /// the VNI's gateway subnet. Returns the address when packets wait for it.
    pub fn glean_arp(&mut self, vni: u16, frame: &[u8], t: &Tables, now: u32) -> Option<Ipv4Addr> {
        let (cidr, _) = t.vnis.get(usize::from(vni)).and_then(|v| v.gateway)?;
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

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    // Per burst: routed packets counted once per run of (ingress, egress)
    // VNI; the last destination's gateway/route answer (config tables do
    // not change within a burst).
    let mut b = Burst {
        tally: RunTally::new(),
        last: None,
    };
    let mut i = 0;
    while i < v.len() {
        if v.meta[i].next == Next::Route {
            let next = route(cx, v, i, &mut b);
            v.meta[i].next = next;
        }
        i += 1;
    }
    let c = cx.c;
    b.tally
        .finish(|(from, to), n, _| count_routed(c, from, to, n));
}

/// What the route stage keeps for the rest of a burst.
struct Burst {
    tally: RunTally,
    /// The last destination looked up and the answer.
    last: Option<(Ipv4Addr, DstAnswer)>,
}

/// Whether a destination is a gateway address, and its route (egress VNI
/// index, next hop).
type DstAnswer = (bool, Option<(u16, Ipv4Addr)>);

/// Count `n` packets routed from VNI index `from` to `to`.
pub(super) fn count_routed(c: &WorkerCounters, from: u16, to: u16, n: u64) {
    c.routed_packets.add(n);
    c.vnis[usize::from(from)].routed_out.add(n);
    c.vnis[usize::from(to)].routed_in.add(n);
}

/// Leave packet `i` as gateway output: switched next in `vni`, not learned.
#[inline]
fn as_gateway_output(m: &mut Meta, vni: u16) -> Next {
    m.vni = vni;
    m.from = From::Router;
    m.flags |= ROUTED;
    Next::Switch
}

/// A frame addressed to the gateway in its VNI (its MAC, or a broadcast
/// ARP request for its address).
fn route(cx: &mut Ctx, v: &mut Vector, i: usize, b: &mut Burst) -> Next {
    let vni = v.meta[i].vni;
    let Some((gw_cidr, gw_mac)) = cx.t.vnis[usize::from(vni)].gateway else {
        return Next::Drop(DropReason::NotIpv4Routed);
    };
    // Fixed-size views of the Ethernet and IPv4 headers: the checks of
    // `ipv4::Packet::new_checked` and `verify_checksum`, read in place.
    let f = v.frame(i);
    let Some((eth, l3)) = f.split_first_chunk::<{ ethernet::HEADER_LEN }>() else {
        return Next::Drop(DropReason::Truncated);
    };
    let src_mac = MacAddr([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]]);
    let dst_mac_of_frame = MacAddr([eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]).to_u64();
    match EtherType(u16::from_be_bytes([eth[12], eth[13]])) {
        EtherType::ARP => return gateway_arp(cx, v, i, gw_cidr, gw_mac),
        EtherType::IPV4 => {}
        _ => return Next::Drop(DropReason::NotIpv4Routed),
    }
    let Some((iph, _)) = l3.split_first_chunk::<{ ipv4::HEADER_LEN }>() else {
        return Next::Drop(DropReason::BadInnerIpHeader);
    };
    let hl = usize::from(iph[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([iph[2], iph[3]]));
    if iph[0] >> 4 != 4 || hl < ipv4::HEADER_LEN || total < hl || l3.len() < total {
        return Next::Drop(DropReason::BadInnerIpHeader);
    }
    let sum = if hl == ipv4::HEADER_LEN {
        checksum::sum_ipv4_header(iph)
    } else {
        checksum::sum(&l3[..hl])
    };
    if sum != 0xffff {
        return Next::Drop(DropReason::BadInnerChecksum);
    }
    let src = Ipv4Addr::new(iph[12], iph[13], iph[14], iph[15]);
    let dst = Ipv4Addr::new(iph[16], iph[17], iph[18], iph[19]);
    let ttl = iph[8];
    let dont_frag = u16::from_be_bytes([iph[6], iph[7]]) & 0x4000 != 0;
    let now = cx.st.now_s;
    if gw_cidr.contains(src)
        && src != gw_cidr.address()
        && cx.st.router.learn(vni, src, src_mac, now)
    {
        release_parked(cx, v, vni, src);
    }
    let Some(buf) = v.bufs[i].as_mut() else {
        return Next::Done;
    };
    // Ethernet padding beyond the IP packet is not forwarded.
    buf.set_len(ethernet::HEADER_LEN + total);
    let (to_gateway, found) = match b.last {
        Some((ip, answer)) if ip == dst => answer,
        _ => {
            let g = cx.t.is_gateway_address(dst);
            let r = if g { None } else { cx.t.lookup_route(dst) };
            b.last = Some((dst, (g, r)));
            (g, r)
        }
    };
    if to_gateway {
        return gateway_local(v, i, gw_mac);
    }
    let Some((out_vni, next_hop)) = found else {
        icmp_error(cx, v, i, IcmpError::NetUnreachable);
        return Next::Drop(DropReason::NoRoute);
    };
    if ttl <= 1 {
        icmp_error(cx, v, i, IcmpError::TimeExceeded);
        return Next::Drop(DropReason::TtlExceeded);
    }
    let max_frame = cx.t.max_inner_frame;
    if v.frame(i).len() > max_frame {
        if dont_frag {
            let mtu = (max_frame - ethernet::HEADER_LEN) as u16;
            icmp_error(cx, v, i, IcmpError::FragNeeded(mtu));
        }
        return Next::Drop(DropReason::TooBig);
    }
    match cx.st.router.neighbor(out_vni, next_hop) {
        Some(dst_mac) => {
            // The flow's next frames skip this stage while nothing changes.
            // Where the next hop lives is the egress switch's FDB lookup,
            // made now: nothing between here and there changes the FDB for
            // this frame, and a later change bumps the generation.
            let to = || {
                cx.st
                    .fdb
                    .lookup_bits(out_vni, dst_mac.to_u64(), cx.st.now_s)
            };
            // A hit skips the switch's learn of this frame's source. The
            // switch learned it where the frame came from, but packets of
            // the burst switched after it may have moved that MAC since
            // (this stage runs after the switch has seen them all): cache
            // only while the FDB still has the source where a hit's learn
            // would put it (a later change bumps the generation).
            let learned_at = match v.meta[i].from {
                From::Port(p) => Some(Location::Port(p)),
                From::Peer(r) => Some(Location::Peer(r)),
                From::Router => None,
            };
            let src_in_place = learned_at.is_some()
                && cx.st.fdb.lookup_bits(vni, src_mac.to_u64(), cx.st.now_s) == learned_at;
            let cacheable = src_in_place && fwd_cache::cacheable(&v.meta[i]);
            if let Some(to) = cacheable.then(to).flatten() {
                let (flow, plain) = (v.meta[i].flow, v.meta[i].flags & PLAIN != 0);
                fwd_cache::fill(
                    cx,
                    flow,
                    vni,
                    (dst_mac_of_frame, src_mac.to_u64()),
                    FwdAction::Routed {
                        out_vni,
                        mac: dst_mac.to_u64(),
                        to,
                    },
                    plain,
                );
            }
            let Some(buf) = v.bufs[i].as_mut() else {
                return Next::Done;
            };
            rewrite(cx, buf, out_vni, dst_mac);
            let c = cx.c;
            b.tally.add((vni, out_vni), 0, |(from, to), n, _| {
                count_routed(c, from, to, n)
            });
            as_gateway_output(&mut v.meta[i], out_vni)
        }
        None => {
            arp_request(cx, v, out_vni, next_hop);
            if cx.st.router.parked.len() < PARK_SLOTS {
                let Some(buf) = v.bufs[i].take() else {
                    return Next::Done;
                };
                cx.st.router.parked.push(Parked {
                    in_vni: vni,
                    out_vni,
                    next_hop,
                    since: now,
                    meta: v.meta[i],
                    buf,
                });
                Next::Done
            } else {
                Next::Drop(DropReason::NeighborUnresolved)
            }
        }
    }
}

/// Rewrite a routed packet for its next hop: MACs and TTL (the checksum
/// patched incrementally). The caller counts it (`count_routed`).
pub(super) fn rewrite(cx: &Ctx, buf: &mut Buf, out_vni: u16, dst_mac: MacAddr) {
    let out_mac = cx.t.gateway_mac(out_vni).unwrap_or(MacAddr::ZERO);
    // Ethernet and the IPv4 fields up to the checksum; the route stage
    // checked the header before it got here.
    let Some(h) = buf
        .frame_mut()
        .first_chunk_mut::<{ ethernet::HEADER_LEN + 12 }>()
    else {
        return;
    };
    h[0..6].copy_from_slice(&dst_mac.0);
    h[6..12].copy_from_slice(&out_mac.0);
    let ip = &mut h[ethernet::HEADER_LEN..];
    let (ttl, proto) = (ip[8], ip[9]);
    if ttl <= 1 {
        return;
    }
    let old = u16::from_be_bytes([ttl, proto]);
    let new = u16::from_be_bytes([ttl - 1, proto]);
    let c = checksum::update_u16(u16::from_be_bytes([ip[10], ip[11]]), old, new);
    ip[8] = ttl - 1;
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Send the packets that waited for `ip` in `vni`, now that it is known:
/// appended to the vector, to be switched in their egress VNI.
pub(super) fn release_parked(cx: &mut Ctx, v: &mut Vector, vni: u16, ip: Ipv4Addr) {
    let Some(mac) = cx.st.router.neighbor(vni, ip) else {
        return;
    };
    let mut i = 0;
    while i < cx.st.router.parked.len() {
        let p = &cx.st.router.parked[i];
        if p.out_vni == vni && p.next_hop == ip {
            let mut p = cx.st.router.parked.swap_remove(i);
            rewrite(cx, &mut p.buf, p.out_vni, mac);
            count_routed(cx.c, p.in_vni, p.out_vni, 1);
            let mut m = p.meta;
            m.next = as_gateway_output(&mut m, p.out_vni);
            if let Err(b) = v.push(p.buf, m) {
                cx.pool.put(b);
                cx.c.count_drop(DropReason::FloodOverflow);
            }
        } else {
            i += 1;
        }
    }
}

/// ARP to the gateway: answer requests for its address, learn replies.
fn gateway_arp(cx: &mut Ctx, v: &mut Vector, i: usize, gw_cidr: Ipv4Cidr, gw_mac: MacAddr) -> Next {
    let vni = v.meta[i].vni;
    let Some(req) = parse_arp(v.frame(i)) else {
        return Next::Drop(DropReason::Truncated);
    };
    let sender = req.source_protocol_addr;
    let now = cx.st.now_s;
    // Packets parked for the sender leave once this frame is handled.
    let waiting = gw_cidr.contains(sender)
        && sender != gw_cidr.address()
        && cx
            .st
            .router
            .learn(vni, sender, req.source_hardware_addr, now);
    if waiting {
        release_parked(cx, v, vni, sender);
    }
    let reply = match req.reply(gw_mac) {
        Some(r) if req.target_protocol_addr == gw_cidr.address() => r,
        // A reply to one of our requests (already learned above).
        _ => {
            cx.c.arp_consumed.inc();
            return Next::Done;
        }
    };
    let Some(buf) = v.bufs[i].as_mut() else {
        return Next::Done;
    };
    {
        let f = buf.frame_mut();
        let mut eth = ethernet::Frame::new_unchecked(&mut *f);
        eth.set_dst_addr(req.source_hardware_addr);
        eth.set_src_addr(gw_mac);
        let _ = reply.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()));
    }
    buf.set_len(ethernet::HEADER_LEN + arp::ETHERNET_IPV4_LEN);
    cx.c.arp_replies_sent.inc();
    as_gateway_output(&mut v.meta[i], vni)
}

/// A packet for one of the gateway addresses: answer echo, drop the rest.
fn gateway_local(v: &mut Vector, i: usize, gw_mac: MacAddr) -> Next {
    let vni = v.meta[i].vni;
    let Some(buf) = v.bufs[i].as_mut() else {
        return Next::Done;
    };
    let f = buf.frame_mut();
    let (eth_hdr, l3) = f.split_at_mut(ethernet::HEADER_LEN);
    let Ok(mut ip) = ipv4::Packet::new_checked(&mut *l3) else {
        return Next::Drop(DropReason::BadInnerIpHeader);
    };
    if ip.protocol() != IpProtocol::ICMP {
        return Next::Drop(DropReason::ToGateway);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(mut icmp) = icmpv4::Packet::new_checked(ip.payload_mut()) else {
        return Next::Drop(DropReason::BadInnerIpHeader);
    };
    if !icmp.verify_checksum() {
        return Next::Drop(DropReason::BadInnerChecksum);
    }
    if icmp.msg_type() != icmpv4::Message::ECHO_REQUEST {
        return Next::Drop(DropReason::ToGateway);
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
    let m = &mut v.meta[i];
    // The reply belongs to no flow of the sender's.
    m.flow = crate::flows::FlowRef::NONE;
    as_gateway_output(m, vni)
}

/// Send an ARP request for `ip` into `vni` unless one went out recently.
fn arp_request(cx: &mut Ctx, v: &mut Vector, vni: u16, ip: Ipv4Addr) {
    let Some((cidr, mac)) = cx.t.vnis[usize::from(vni)].gateway else {
        return;
    };
    // Targets come from routed packets (sender-chosen): the memory of
    // recent requests is bounded like its capacity, never grown per packet.
    let sent = &cx.st.router.arp_sent;
    if sent.contains_key(&(vni, ip)) || sent.len() >= ARP_SENT_MAX {
        return;
    }
    let Some(mut buf) = cx.pool.get() else {
        return cx.c.count_drop(DropReason::PoolEmpty);
    };
    cx.st.router.arp_sent.insert((vni, ip), cx.st.now_s);
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
    cx.c.arp_requests_sent.inc();
    push_made(cx, v, buf, vni);
}

/// Append a frame the gateway made, to be switched in `vni`.
fn push_made(cx: &mut Ctx, v: &mut Vector, buf: Buf, vni: u16) {
    let mut m = Meta::new(Next::Switch, From::Router, vni);
    m.flags |= ROUTED;
    if let Err(b) = v.push(buf, m) {
        cx.pool.put(b);
        cx.c.count_drop(DropReason::FloodOverflow);
    }
}

/// Send an ICMP error about packet `i` (an inner frame that arrived in its
/// VNI) back to its sender, from the gateway address of that VNI.
fn icmp_error(cx: &mut Ctx, v: &mut Vector, i: usize, kind: IcmpError) {
    let vni = v.meta[i].vni;
    let Some((cidr, gw_mac)) = cx.t.vnis[usize::from(vni)].gateway else {
        return;
    };
    let f = v.frame(i);
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
    if ip.frag_offset() != 0 || !cx.st.router.take_icmp_token() {
        return;
    }
    let Some(mut buf) = cx.pool.get() else {
        return cx.c.count_drop(DropReason::PoolEmpty);
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
    cx.c.icmp_errors_sent.inc();
    push_made(cx, v, buf, vni);
}
