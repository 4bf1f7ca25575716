//! Workload identity on the packet path (see docs/identity.md).
//!
//! Three places touch a flow:
//! - ingress, before anything is forwarded: from a warden peer the identity
//!   header is verified (key, tag, window, what the peer may assert) and
//!   stripped; from a plain VTEP the identity comes from a trusted GBP id or
//!   an address map, else "unauthenticated"; from a local port it is the
//!   workload bound to that port, MAC and IP. The flow table records it.
//! - delivery to a local workload: the allow hook decides once per flow
//!   (the reply of a flow a local workload opened is allowed as such).
//! - encapsulation toward a warden peer: flows of bound local workloads are
//!   stamped on SYN / SYN-ACK, on the first packet, and again every
//!   `restamp_secs`; an announce-only packet goes first where the stamped
//!   packet would not fit the inner MTU.
//!
//! Frames that are not IP (ARP) pass: they carry no flow.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use config::{AllowSource, PeerKind, WardenConfig};
use identity::header::{self, Repr, TagInput, FLAG_ANNOUNCE};
use identity::keys::{EpochClock, KeySource, Secret, StaticKeys};
use identity::{stamp, IdentityId, WardenId};
use overlay::{FlowKey, IpProtocol, Ipv4Cidr, MacAddr};
use rustc_hash::FxHashMap;

use super::{Engine, From};
use crate::buffer::Buf;
use crate::counters::DropReason;
use crate::flows::{AllowHook, FlowEntry, FlowTable, IdentitySource, Insert, Key, Verdict};

/// Flows per worker.
pub const FLOW_CAPACITY: usize = 262_144;
/// A flow with no packet for this long is forgotten.
pub const FLOW_IDLE_SECS: u32 = 120;
/// Peer index of flows that start at a local port.
pub const LOCAL: u16 = u16::MAX;

/// What identity means for one peer.
#[derive(Debug)]
enum PeerIdent {
    Vtep {
        gbp: Vec<(u16, IdentityId)>,
    },
    Warden {
        id: WardenId,
        may_assert: Vec<IdentityId>,
    },
}

/// The engine's identity state (present when `[identity]` is configured).
#[derive(Debug)]
pub struct IdentityRt {
    keys: StaticKeys,
    window_secs: u32,
    restamp_secs: u32,
    pub flows: FlowTable,
    allow: AllowHook,
    /// (VNI index, IP) of each local workload -> its identity.
    by_ip: FxHashMap<(u16, IpAddr), IdentityId>,
    /// (port, MAC) of each local workload -> (IP, identity).
    by_port: FxHashMap<(u16, MacAddr), (IpAddr, IdentityId)>,
    peers: Vec<PeerIdent>,
    maps: Vec<(u16, Ipv4Cidr, IdentityId)>,
    /// Unix seconds, set by housekeeping.
    unix_now: u64,
}

/// Why the identity state could not be built.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum IdentityError {
    /// peer {peer}: {source}
    Secret {
        peer: Ipv4Addr,
        source: identity::keys::KeyError,
    },
    /// peer {peer} is a warden but no secret file is configured for it
    NoSecret { peer: Ipv4Addr },
    /// identity keys: {0}
    Keys(identity::keys::KeyError),
}

impl IdentityRt {
    /// Build from config; reads the peers' secret files.
    pub fn build(
        cfg: &WardenConfig,
        vni_index: impl Fn(overlay::Vni) -> Option<u16>,
    ) -> Result<Option<IdentityRt>, IdentityError> {
        let Some(ic) = &cfg.identity else {
            return Ok(None);
        };
        let ids: Vec<IdentityId> = cfg.documents.iter().map(|d| d.id()).collect();
        let id_of = |i: usize| ids.get(i).copied().unwrap_or(IdentityId::UNAUTHENTICATED);
        let mut secrets = Vec::new();
        let mut peers = Vec::with_capacity(cfg.peers.len());
        for p in &cfg.peers {
            match &p.kind {
                PeerKind::Vtep { gbp } => peers.push(PeerIdent::Vtep {
                    gbp: gbp.iter().map(|(g, i)| (*g, id_of(*i))).collect(),
                }),
                PeerKind::Warden {
                    warden_id,
                    secret_file,
                    identities,
                } => {
                    let id = identity::warden_id_of(warden_id);
                    let file = secret_file
                        .as_ref()
                        .or(ic.secret_file.as_ref())
                        .ok_or(IdentityError::NoSecret { peer: p.address })?;
                    let secret =
                        Secret::from_file(file).map_err(|source| IdentityError::Secret {
                            peer: p.address,
                            source,
                        })?;
                    secrets.push((id, Arc::new(secret)));
                    let mut may_assert: Vec<IdentityId> =
                        identities.iter().map(|i| id_of(*i)).collect();
                    may_assert.sort_unstable();
                    peers.push(PeerIdent::Warden { id, may_assert });
                }
            }
        }
        let clock = EpochClock {
            epoch_secs: ic.epoch_secs,
            grace_secs: ic.grace_secs,
        };
        let me = identity::warden_id_of(&ic.warden_id);
        let mut keys = StaticKeys::new(me, clock, secrets).map_err(IdentityError::Keys)?;
        let unix_now = unix_now();
        keys.rotate(unix_now);
        let mut by_ip = FxHashMap::default();
        let mut by_port = FxHashMap::default();
        for w in &cfg.workloads {
            let Some(vni) = cfg
                .ports
                .get(w.port)
                .and_then(|p| p.access_vni)
                .and_then(&vni_index)
            else {
                continue;
            };
            by_ip.insert((vni, IpAddr::V4(w.ip)), id_of(w.identity));
            by_port.insert(
                (w.port as u16, w.mac),
                (IpAddr::V4(w.ip), id_of(w.identity)),
            );
        }
        let peer_index = |a: Ipv4Addr| {
            cfg.peers
                .iter()
                .position(|p| p.address == a)
                .map(|i| i as u16)
        };
        let maps = cfg
            .identity_maps
            .iter()
            .filter_map(|m| Some((peer_index(m.peer)?, m.cidr, id_of(m.identity))))
            .collect();
        let mut pairs = Vec::new();
        for a in &cfg.allows {
            for s in &a.sources {
                let src = match s {
                    AllowSource::Identity(i) => id_of(*i),
                    AllowSource::Unauthenticated => IdentityId::UNAUTHENTICATED,
                };
                pairs.push((id_of(a.destination), src));
            }
        }
        Ok(Some(IdentityRt {
            keys,
            window_secs: ic.window_secs,
            restamp_secs: ic.restamp_secs,
            flows: FlowTable::new(FLOW_CAPACITY, FLOW_IDLE_SECS),
            allow: AllowHook::new(pairs),
            by_ip,
            by_port,
            peers,
            maps,
            unix_now,
        }))
    }

    /// Once a second: the clock, key rotation, flow aging.
    pub fn tick(&mut self, now_s: u32) {
        self.unix_now = unix_now();
        self.keys.rotate(self.unix_now);
        self.flows.expire(now_s);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What ingress decided.
pub(super) enum Ingress {
    Forward,
    /// An announce-only packet: verified, recorded, not forwarded.
    Consumed,
}

fn new_entry(src: IdentityId, source: IdentitySource, peer: u16, now: u32) -> FlowEntry {
    FlowEntry {
        direction: crate::flows::Direction::Inbound,
        src_identity: src,
        source,
        peer,
        dst_identity: IdentityId::UNAUTHENTICATED,
        verdict: Verdict::Pending,
        packets: 0,
        bytes: 0,
        created: now,
        last_seen: now,
        last_header: None,
    }
}

/// TCP flags of an IP frame's segment (after the IP header), if TCP.
fn tcp_syn(frame: &[u8], flow: &FlowKey) -> Option<(bool, bool, u32)> {
    if flow.protocol != IpProtocol::TCP {
        return None;
    }
    let ip = frame.get(overlay::ethernet::HEADER_LEN..)?;
    let l4 = match flow.src {
        IpAddr::V4(_) => ip.get(usize::from(ip.first()? & 0x0f) * 4..)?,
        IpAddr::V6(_) => {
            let p = overlay::ipv6::Packet::new_checked(ip).ok()?;
            let u = overlay::ipv6::find_upper_layer(p.next_header(), p.payload()).ok()?;
            ip.get(overlay::ipv6::HEADER_LEN + u.offset..)?
        }
    };
    let flags = *l4.get(13)?;
    let seq = u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?);
    Some((flags & 0x02 != 0, flags & 0x10 != 0, seq))
}

impl Engine {
    /// Establish the source identity of a frame arriving from peer `peer`
    /// in VNI `vni` (already decapsulated); verify and strip its header.
    pub(super) fn ident_from_peer(
        &mut self,
        vni: u16,
        peer: u16,
        buf: &mut Buf,
        gbp: Option<overlay::Gbp>,
    ) -> Result<Ingress, DropReason> {
        let now = self.now_s;
        let vni_id = self.vnis[vni as usize].id.get();
        let Some(id) = self.ident.as_mut() else {
            return Ok(Ingress::Forward);
        };
        let Ok(flow) = FlowKey::from_inner_ethernet(buf.frame()) else {
            return Ok(Ingress::Forward);
        };
        let key = Key { vni, flow };
        let found = match stamp::find(buf.frame()) {
            Ok(h) => h,
            Err(_) => return Err(DropReason::IdentityMalformed),
        };
        let len = buf.len() as u64;
        match (&id.peers[peer as usize], found) {
            (
                PeerIdent::Warden {
                    id: wid,
                    may_assert,
                },
                Some((_, repr)),
            ) => {
                let Some((tag_key, _)) = id.keys.receiving_key(*wid, repr.epoch, id.unix_now)
                else {
                    return Err(DropReason::IdentityEpoch);
                };
                if !header::verify(tag_key, &repr, &TagInput::new(flow, vni_id)) {
                    return Err(DropReason::IdentityBadTag);
                }
                if !header::timestamp_fresh(repr.timestamp, id.unix_now, id.window_secs) {
                    return Err(DropReason::IdentityStale);
                }
                if may_assert.binary_search(&repr.id).is_err() {
                    return Err(DropReason::IdentityNotAuthorized);
                }
                match id.flows.get_mut(&key) {
                    Some(e) if e.src_identity == repr.id => {
                        e.last_header = Some(now);
                        e.last_seen = now;
                    }
                    _ => {
                        let mut e = new_entry(repr.id, IdentitySource::Header, peer, now);
                        e.last_header = Some(now);
                        if id.flows.insert(key, e) == Insert::Full {
                            return Err(DropReason::FlowTableFull);
                        }
                    }
                }
                if repr.flags & FLAG_ANNOUNCE != 0 {
                    return Ok(Ingress::Consumed);
                }
                let start =
                    stamp::strip(buf.frame_mut(), 0).map_err(|_| DropReason::IdentityMalformed)?;
                buf.trim_front(start);
            }
            (PeerIdent::Warden { .. }, None) => match id.flows.get_mut(&key) {
                Some(e) => e.last_seen = now,
                None => return Err(DropReason::IdentityMissing),
            },
            // A plain VTEP cannot hold keys: a header from one is forged.
            (PeerIdent::Vtep { .. }, Some(_)) => return Err(DropReason::IdentityNotAuthorized),
            (PeerIdent::Vtep { gbp: groups }, None) => {
                if let Some(e) = id.flows.get_mut(&key) {
                    e.last_seen = now;
                } else {
                    let src_ip = match flow.src {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    };
                    let by_gbp = gbp
                        .and_then(|g| groups.iter().find(|(grp, _)| *grp == g.group))
                        .map(|(_, i)| (*i, IdentitySource::Gbp));
                    let by_map = || {
                        let ip = src_ip?;
                        id.maps
                            .iter()
                            .find(|(p, cidr, _)| *p == peer && cidr.contains(ip))
                            .map(|(_, _, i)| (*i, IdentitySource::AddressMap))
                    };
                    let (src, source) = by_gbp
                        .or_else(by_map)
                        .unwrap_or((IdentityId::UNAUTHENTICATED, IdentitySource::Unauthenticated));
                    if id.flows.insert(key, new_entry(src, source, peer, now)) == Insert::Full {
                        return Err(DropReason::FlowTableFull);
                    }
                }
            }
        }
        if let Some(e) = id.flows.get_mut(&key) {
            e.packets += 1;
            e.bytes += len;
        }
        Ok(Ingress::Forward)
    }

    /// Record the source identity of a frame from local access port `port`.
    pub(super) fn ident_from_port(
        &mut self,
        vni: u16,
        port: u16,
        buf: &Buf,
    ) -> Result<(), DropReason> {
        let now = self.now_s;
        let Some(id) = self.ident.as_mut() else {
            return Ok(());
        };
        let Ok(flow) = FlowKey::from_inner_ethernet(buf.frame()) else {
            return Ok(());
        };
        let key = Key { vni, flow };
        let src_mac =
            MacAddr::from_bytes(buf.frame().get(6..).unwrap_or(&[])).unwrap_or(MacAddr::ZERO);
        let (src, source) = match id.by_port.get(&(port, src_mac)) {
            Some((ip, ident)) if *ip == flow.src => (*ident, IdentitySource::LocalPort),
            // Not the bound workload (or a spoofed address): nothing vouches.
            _ => (IdentityId::UNAUTHENTICATED, IdentitySource::Unauthenticated),
        };
        let len = buf.len() as u64;
        match id.flows.get_mut(&key) {
            Some(e) if e.src_identity == src && e.source == source => {
                e.last_seen = now;
                e.packets += 1;
                e.bytes += len;
            }
            _ => {
                let mut e = new_entry(src, source, LOCAL, now);
                e.packets = 1;
                e.bytes = len;
                if id.flows.insert(key, e) == Insert::Full {
                    return Err(DropReason::FlowTableFull);
                }
            }
        }
        Ok(())
    }

    /// The allow hook, before a frame is delivered to a local workload.
    pub(super) fn ident_deliver(
        &mut self,
        vni: u16,
        buf: &Buf,
        from: From,
    ) -> Result<(), DropReason> {
        let Some(id) = self.ident.as_mut() else {
            return Ok(());
        };
        // Frames the gateway made or routed carry no authenticated flow
        // here; identity is enforced on the switched paths only.
        if from == From::Router {
            return Ok(());
        }
        let Ok(flow) = FlowKey::from_inner_ethernet(buf.frame()) else {
            return Ok(());
        };
        let key = Key { vni, flow };
        let reverse = Key {
            vni,
            flow: flow.reversed(),
        };
        let is_reply = id.flows.get(&reverse).is_some_and(|r| {
            r.verdict != Verdict::Deny
                && (r.source == IdentitySource::LocalPort || r.verdict == Verdict::Allow)
        });
        let dst = id
            .by_ip
            .get(&(vni, flow.dst))
            .copied()
            .unwrap_or(IdentityId::UNAUTHENTICATED);
        let Some(e) = id.flows.get_mut(&key) else {
            return Err(DropReason::IdentityMissing);
        };
        if e.verdict == Verdict::Pending {
            e.dst_identity = dst;
            e.verdict = if id.allow.allows(e.src_identity, dst) {
                Verdict::Allow
            } else if is_reply {
                Verdict::Reply
            } else {
                Verdict::Deny
            };
        }
        match e.verdict {
            Verdict::Deny => Err(DropReason::PolicyDenied),
            _ => Ok(()),
        }
    }

    /// Stamp a frame of a local workload's flow toward warden peer `peer`
    /// when due. Returns an announce-only frame to send first when the
    /// stamped frame would not fit the inner MTU.
    pub(super) fn ident_stamp(
        &mut self,
        vni: u16,
        peer: u16,
        buf: &mut Buf,
        flow: Option<FlowKey>,
    ) -> Result<Option<Buf>, DropReason> {
        let now = self.now_s;
        let vni_id = self.vnis[vni as usize].id.get();
        let max_frame = self.underlay_mtu + overlay::ethernet::HEADER_LEN - overlay::OUTER_LEN;
        let Some(id) = self.ident.as_mut() else {
            return Ok(None);
        };
        let PeerIdent::Warden { id: wid, .. } = &id.peers[peer as usize] else {
            return Ok(None);
        };
        let Some(flow) = flow else {
            return Ok(None);
        };
        let key = Key { vni, flow };
        let Some(e) = id.flows.get_mut(&key) else {
            return Ok(None);
        };
        if e.source != IdentitySource::LocalPort {
            return Ok(None);
        }
        let syn = tcp_syn(buf.frame(), &flow);
        let opening = syn.is_some_and(|(s, _, _)| s);
        let due = opening
            || e.last_header
                .is_none_or(|t| now.saturating_sub(t) >= id.restamp_secs);
        if !due {
            return Ok(None);
        }
        let epoch = id.keys.clock().epoch_at(id.unix_now);
        let Some(tag_key) = id.keys.sending_key(*wid, epoch) else {
            return Err(DropReason::IdentityEpoch);
        };
        let growth = match flow.src {
            IpAddr::V4(_) => stamp::IPV4_GROWTH,
            IpAddr::V6(_) => stamp::IPV6_GROWTH,
        };
        let announce = buf.len() + growth > max_frame;
        let mut repr = Repr {
            flags: if announce { FLAG_ANNOUNCE } else { 0 },
            epoch: epoch as u8,
            id: e.src_identity,
            timestamp: id.unix_now as u32,
            nonce: syn.map(|(_, _, seq)| seq).unwrap_or(0),
            tag: [0; 12],
        };
        repr.tag = header::mint(tag_key, &repr, &TagInput::new(flow, vni_id));
        e.last_header = Some(now);
        if announce {
            let Some(mut a) = self.pool.get() else {
                return Err(DropReason::PoolEmpty);
            };
            a.set_len(crate::buffer::BUF_SIZE);
            let n = match flow.src {
                IpAddr::V4(_) => stamp::announce_ipv4(buf.frame(), &repr, a.frame_mut()),
                IpAddr::V6(_) => stamp::announce_ipv6(buf.frame(), &repr, a.frame_mut()),
            };
            return match n {
                Ok(n) => {
                    a.set_len(n);
                    Ok(Some(a))
                }
                Err(_) => {
                    self.pool.put(a);
                    Err(DropReason::StampFailed)
                }
            };
        }
        if buf.prepend(growth).is_none() {
            return Err(DropReason::StampFailed);
        }
        match stamp::insert(buf.frame_mut(), growth, &repr) {
            Ok(0) => {
                self.counters.identity_stamped.inc();
                Ok(None)
            }
            _ => Err(DropReason::StampFailed),
        }
    }
}
