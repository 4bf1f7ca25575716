//! The config tables: everything the stages read that comes from the
//! config, built once into one immutable value behind an `Arc`. Learned
//! state (FDB entries, neighbors, flows, keys of the current epoch) is the
//! worker's own and lives elsewhere; a reload builds new `Tables` and swaps
//! the `Arc` between bursts.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use config::{FdbTarget, PeerKind, WardenConfig};
use identity::keys::{EpochClock, Secret};
use identity::{IdentityId, WardenId};
use overlay::{Ipv4Cidr, MacAddr, Vni};
use rustc_hash::FxHashMap;

use crate::fdb::Location;

/// One VNI as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct VniRt {
    pub id: Vni,
    pub name: Option<String>,
    /// warden's L3 interface in this VNI: address/subnet and MAC.
    pub gateway: Option<(Ipv4Cidr, MacAddr)>,
    /// Local access ports in this VNI.
    pub access_ports: Vec<u16>,
    /// Peers that receive this VNI's broadcast, multicast and unknown unicast.
    pub flood_peers: Vec<u16>,
    pub mac_aging_secs: u32,
}

/// What identity means for one peer.
#[derive(Debug, Clone)]
pub enum PeerIdent {
    /// A plain VTEP: no keys; GBP groups it is trusted for.
    Vtep { gbp: Vec<(u16, IdentityId)> },
    /// Another warden: its id and the identities it may assert (sorted).
    Warden {
        id: WardenId,
        may_assert: Vec<IdentityId>,
    },
}

/// One peer VTEP.
#[derive(Debug, Clone)]
pub struct PeerRt {
    pub address: Ipv4Addr,
    pub name: Option<String>,
    /// Which VNI indexes this peer carries.
    pub vnis: Vec<bool>,
    pub ident: PeerIdent,
}

impl PeerRt {
    #[inline]
    pub fn carries(&self, vni: usize) -> bool {
        self.vnis.get(vni).copied().unwrap_or(false)
    }

    #[inline]
    pub fn is_warden(&self) -> bool {
        matches!(self.ident, PeerIdent::Warden { .. })
    }
}

/// An inner route of the L3 gateway.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub destination: Ipv4Cidr,
    pub vni: u16,
    pub via: Option<Ipv4Addr>,
}

/// A workload bound to a local port.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub port: u16,
    pub vni: u16,
    pub mac: MacAddr,
    pub ip: IpAddr,
    pub identity: IdentityId,
}

/// Identity tables (present when `[identity]` is configured).
#[derive(Debug)]
pub struct IdentityTables {
    pub me: WardenId,
    pub clock: EpochClock,
    /// (warden id, shared secret) of every warden peer.
    pub secrets: Vec<(WardenId, Arc<Secret>)>,
    pub window_secs: u32,
    pub restamp_secs: u32,
    /// The compiled policy (an empty one, default deny, when the config
    /// has no `[policy]`).
    pub policy: PolicyTables,
    /// (VNI index, IPv4 address) of each local workload, packed in one
    /// word (`ipv4_key`) -> binding index. Workloads are bound to IPv4
    /// addresses only.
    by_ip: FxHashMap<u64, u16>,
    /// (VNI index, MAC) of each local workload, packed in one word
    /// (`mac_key`) -> binding index.
    by_mac: FxHashMap<u64, u16>,
    pub bindings: Vec<Binding>,
    /// The identity of the (first) workload bound on each port; None: the
    /// port is not bound.
    pub port_identity: Vec<Option<IdentityId>>,
    /// (peer index, inner CIDR, identity), in config order.
    pub maps: Vec<(u16, Ipv4Cidr, IdentityId)>,
}

/// The policy as the classify stage asks it.
#[derive(Debug)]
pub struct PolicyTables {
    pub compiled: policy::CompiledPolicy,
    /// Identity id -> index of its document (the policy's subjects).
    doc_of: FxHashMap<IdentityId, u32>,
}

impl PolicyTables {
    /// The policy's subject for a source or destination identity. An id no
    /// document has (a changed binary, another cluster's workload) vouches
    /// for nothing the policy knows: it is unauthenticated.
    #[inline]
    pub fn subject(&self, id: IdentityId) -> policy::Subject {
        match self.doc_of.get(&id) {
            Some(&i) if id != IdentityId::UNAUTHENTICATED => policy::Subject::Identity(i),
            _ => policy::Subject::Unauthenticated,
        }
    }

    /// The question for flow `key` from `src` to `dst` (None: not known).
    #[inline]
    pub fn query(
        &self,
        key: &crate::flows::Key,
        src: IdentityId,
        dst: Option<IdentityId>,
    ) -> policy::FlowQuery {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        };
        let f = &key.flow;
        let ports = matches!(
            f.protocol,
            overlay::IpProtocol::TCP | overlay::IpProtocol::UDP
        );
        policy::FlowQuery {
            src: policy::Endpoint {
                subject: self.subject(src),
                addr: v4(f.src),
            },
            dst: policy::Endpoint {
                subject: dst.map_or(policy::Subject::Unknown, |d| self.subject(d)),
                addr: v4(f.dst),
            },
            proto: f.protocol.0,
            dst_port: if ports { f.dst_port } else { 0 },
            // FQDN learning from DNS answers is not in the engine yet.
            dst_fqdns: 0,
        }
    }
}

impl IdentityTables {
    /// The workload bound at (VNI, IP), if any.
    #[inline]
    pub fn binding_at_ip(&self, vni: u16, ip: IpAddr) -> Option<&Binding> {
        let IpAddr::V4(a) = ip else {
            return None;
        };
        let i = *self.by_ip.get(&ipv4_key(vni, a))?;
        self.bindings.get(usize::from(i))
    }

    /// The workload bound at (VNI, MAC), if any.
    #[inline]
    pub fn binding_at_mac(&self, vni: u16, mac: MacAddr) -> Option<&Binding> {
        let i = *self.by_mac.get(&mac_key(vni, mac))?;
        self.bindings.get(usize::from(i))
    }
}

/// (VNI index, IPv4 address) as one word: one multiply to hash.
#[inline]
fn ipv4_key(vni: u16, a: Ipv4Addr) -> u64 {
    (u64::from(vni) << 32) | u64::from(u32::from(a))
}

/// (VNI index, MAC) as one word.
#[inline]
fn mac_key(vni: u16, mac: MacAddr) -> u64 {
    (u64::from(vni) << 48) | mac.to_u64()
}

/// Everything from the config that the stages read.
#[derive(Debug)]
pub struct Tables {
    pub underlay_port: u16,
    pub underlay_ip: Ipv4Addr,
    /// VTEP address and underlay subnet, and the underlay router.
    pub underlay_cidr: Ipv4Cidr,
    pub underlay_gateway: Option<Ipv4Addr>,
    pub udp_port: u16,
    pub underlay_mtu: usize,
    /// Largest inner frame (Ethernet header included) a tunnel carries.
    pub max_inner_frame: usize,
    /// Access VNI index of each port (None for the underlay port).
    pub port_vni: Vec<Option<u16>>,
    pub vnis: Vec<VniRt>,
    vni_index: FxHashMap<u32, u16>,
    pub peers: Vec<PeerRt>,
    peer_index: FxHashMap<Ipv4Addr, u16>,
    /// Static FDB entries: (VNI index, MAC, location).
    pub fdb_static: Vec<(u16, MacAddr, Location)>,
    /// Longest prefix first.
    pub routes: Vec<Route>,
    /// Static inner neighbors: (VNI index, IP, MAC).
    pub neighbors: Vec<(u16, Ipv4Addr, MacAddr)>,
    pub identity: Option<IdentityTables>,
}

/// Why the tables could not be built.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum TablesError {
    /// peer {peer}: {source}
    Secret {
        peer: Ipv4Addr,
        source: identity::keys::KeyError,
    },
    /// peer {peer} is a warden but no secret file is configured for it
    NoSecret { peer: Ipv4Addr },
    /// identity keys: {0}
    Keys(identity::keys::KeyError),
    /// policy: {0}
    Policy(String),
}

impl Tables {
    /// The VNI index of `id`, if configured (a hash lookup, not a scan).
    #[inline]
    pub fn vni_index(&self, id: Vni) -> Option<u16> {
        self.vni_index.get(&id.get()).copied()
    }

    /// The peer index of underlay address `a`, if configured.
    #[inline]
    pub fn peer_index(&self, a: Ipv4Addr) -> Option<u16> {
        self.peer_index.get(&a).copied()
    }

    /// The gateway MAC of VNI index `vni`, if it has a gateway.
    #[inline]
    pub fn gateway_mac(&self, vni: u16) -> Option<MacAddr> {
        self.vnis.get(usize::from(vni))?.gateway.map(|g| g.1)
    }

    /// Whether `ip` is one of the gateway's own addresses.
    pub fn is_gateway_address(&self, ip: Ipv4Addr) -> bool {
        self.vnis
            .iter()
            .any(|v| v.gateway.is_some_and(|(c, _)| c.address() == ip))
    }

    /// The route for `dst`: egress VNI index and next hop.
    pub fn lookup_route(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        self.routes
            .iter()
            .find(|r| r.destination.contains(dst))
            .map(|r| (r.vni, r.via.unwrap_or(dst)))
    }

    /// Build from a validated config; reads the peers' secret files.
    pub fn build(cfg: &WardenConfig) -> Result<Tables, TablesError> {
        let mut vni_index = FxHashMap::default();
        for (i, v) in cfg.vnis.iter().enumerate() {
            vni_index.insert(v.id.get(), i as u16);
        }
        let vidx = |id: Vni| vni_index.get(&id.get()).copied();
        let mut vnis: Vec<VniRt> = cfg
            .vnis
            .iter()
            .map(|v| VniRt {
                id: v.id,
                name: v.name.clone(),
                gateway: v.gateway.map(|g| (g, v.gateway_mac)),
                access_ports: Vec::new(),
                flood_peers: Vec::new(),
                mac_aging_secs: v.mac_aging_secs,
            })
            .collect();
        let port_vni: Vec<Option<u16>> = cfg
            .ports
            .iter()
            .map(|p| p.access_vni.and_then(vidx))
            .collect();
        for (p, v) in port_vni.iter().enumerate() {
            if let Some(v) = v {
                vnis[usize::from(*v)].access_ports.push(p as u16);
            }
        }
        let ids: Vec<IdentityId> = cfg.documents.iter().map(|d| d.id()).collect();
        let id_of = |i: usize| ids.get(i).copied().unwrap_or(IdentityId::UNAUTHENTICATED);
        let mut secrets = Vec::new();
        let mut peers = Vec::with_capacity(cfg.peers.len());
        let mut peer_index = FxHashMap::default();
        for (r, p) in cfg.peers.iter().enumerate() {
            let mut carried = vec![false; vnis.len()];
            for id in &p.vnis {
                if let Some(v) = vidx(*id) {
                    carried[usize::from(v)] = true;
                    vnis[usize::from(v)].flood_peers.push(r as u16);
                }
            }
            let ident = match &p.kind {
                PeerKind::Vtep { gbp } => PeerIdent::Vtep {
                    gbp: gbp.iter().map(|(g, i)| (*g, id_of(*i))).collect(),
                },
                PeerKind::Warden {
                    warden_id,
                    secret_file,
                    identities,
                } => {
                    let id = identity::warden_id_of(warden_id);
                    if let Some(ic) = &cfg.identity {
                        let file = secret_file
                            .as_ref()
                            .or(ic.secret_file.as_ref())
                            .ok_or(TablesError::NoSecret { peer: p.address })?;
                        let secret =
                            Secret::from_file(file).map_err(|source| TablesError::Secret {
                                peer: p.address,
                                source,
                            })?;
                        secrets.push((id, Arc::new(secret)));
                    }
                    let mut may_assert: Vec<IdentityId> =
                        identities.iter().map(|i| id_of(*i)).collect();
                    may_assert.sort_unstable();
                    PeerIdent::Warden { id, may_assert }
                }
            };
            peer_index.insert(p.address, r as u16);
            peers.push(PeerRt {
                address: p.address,
                name: p.name.clone(),
                vnis: carried,
                ident,
            });
        }
        let fdb_static = cfg
            .fdb
            .iter()
            .filter_map(|e| {
                let v = vidx(e.vni)?;
                let loc = match e.target {
                    FdbTarget::Peer(addr) => Location::Peer(*peer_index.get(&addr)?),
                    FdbTarget::Port(p) => Location::Port(p as u16),
                };
                Some((v, e.mac, loc))
            })
            .collect();
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
                vni: vidx(r.vni)?,
                via: r.via,
            })
        }));
        routes.sort_by_key(|r| std::cmp::Reverse(r.destination.prefix_len()));
        let neighbors = cfg
            .neighbors
            .iter()
            .filter_map(|n| Some((vidx(n.vni)?, n.ip, n.mac)))
            .collect();
        let identity = match &cfg.identity {
            None => None,
            Some(ic) => {
                let mut bindings = Vec::new();
                let mut by_ip = FxHashMap::default();
                let mut by_mac = FxHashMap::default();
                let mut port_identity = vec![None; cfg.ports.len()];
                for w in &cfg.workloads {
                    let Some(vni) = port_vni.get(w.port).copied().flatten() else {
                        continue;
                    };
                    let i = bindings.len() as u16;
                    bindings.push(Binding {
                        port: w.port as u16,
                        vni,
                        mac: w.mac,
                        ip: IpAddr::V4(w.ip),
                        identity: id_of(w.identity),
                    });
                    by_ip.insert(ipv4_key(vni, w.ip), i);
                    by_mac.insert(mac_key(vni, w.mac), i);
                    port_identity[w.port].get_or_insert(id_of(w.identity));
                }
                let maps = cfg
                    .identity_maps
                    .iter()
                    .filter_map(|m| Some((*peer_index.get(&m.peer)?, m.cidr, id_of(m.identity))))
                    .collect();
                let spec = cfg.policy.clone().unwrap_or_default();
                let compiled = policy::compile(&spec, &cfg.documents)
                    .map_err(|e| TablesError::Policy(e.to_string()))?;
                let doc_of = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (*id, i as u32))
                    .collect();
                Some(IdentityTables {
                    me: identity::warden_id_of(&ic.warden_id),
                    clock: EpochClock {
                        epoch_secs: ic.epoch_secs,
                        grace_secs: ic.grace_secs,
                    },
                    secrets,
                    window_secs: ic.window_secs,
                    restamp_secs: ic.restamp_secs,
                    policy: PolicyTables { compiled, doc_of },
                    by_ip,
                    by_mac,
                    bindings,
                    port_identity,
                    maps,
                })
            }
        };
        let underlay_mtu = usize::from(cfg.underlay.mtu);
        Ok(Tables {
            underlay_port: cfg.underlay.port as u16,
            underlay_ip: cfg.underlay.address.address(),
            underlay_cidr: cfg.underlay.address,
            underlay_gateway: cfg.underlay.gateway,
            udp_port: cfg.underlay.udp_port,
            underlay_mtu,
            max_inner_frame: underlay_mtu + overlay::ethernet::HEADER_LEN - overlay::OUTER_LEN,
            port_vni,
            vnis,
            vni_index,
            peers,
            peer_index,
            fdb_static,
            routes,
            neighbors,
            identity,
        })
    }
}
