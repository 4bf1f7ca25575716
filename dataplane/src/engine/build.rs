//! Compile a validated config into the engine's runtime tables.

use std::sync::Arc;
use std::time::Instant;

use config::{FdbTarget, WardenConfig};

use super::{router::Router, Engine, PeerRt, VniRt, FDB_CAPACITY, POOL_SIZE};
use crate::buffer::{Burst, Pool};
use crate::counters::Counters;
use crate::fdb::{Fdb, Location};
use crate::port::Port;
use crate::underlay::HostStack;

pub(super) fn build(
    cfg: &WardenConfig,
    ports: Vec<Box<dyn Port>>,
    counters: Arc<Counters>,
) -> Result<Engine, super::ident::IdentityError> {
    let vni_index = |id: overlay::Vni| cfg.vnis.iter().position(|v| v.id == id).map(|i| i as u16);
    let mut vnis: Vec<VniRt> = cfg
        .vnis
        .iter()
        .map(|v| VniRt {
            id: v.id,
            name: v.name.clone(),
            gateway: v.gateway.map(|g| (g, v.gateway_mac)),
            access_ports: Vec::new(),
            flood_peers: Vec::new(),
        })
        .collect();
    let port_vni: Vec<Option<u16>> = cfg
        .ports
        .iter()
        .map(|p| p.access_vni.and_then(vni_index))
        .collect();
    for (p, v) in port_vni.iter().enumerate() {
        if let Some(v) = v {
            vnis[*v as usize].access_ports.push(p as u16);
        }
    }
    let peers: Vec<PeerRt> = cfg
        .peers
        .iter()
        .map(|p| {
            let mut carried = vec![false; vnis.len()];
            for id in &p.vnis {
                if let Some(v) = vni_index(*id) {
                    carried[v as usize] = true;
                }
            }
            PeerRt {
                address: p.address,
                name: p.name.clone(),
                vnis: carried,
                next_hop_mac: None,
                template: None,
            }
        })
        .collect();
    for (r, peer) in peers.iter().enumerate() {
        for (v, carried) in peer.vnis.iter().enumerate() {
            if *carried {
                vnis[v].flood_peers.push(r as u16);
            }
        }
    }
    let mut fdb = Fdb::new(
        FDB_CAPACITY,
        cfg.vnis.iter().map(|v| v.mac_aging_secs).collect(),
    );
    for e in &cfg.fdb {
        let Some(v) = vni_index(e.vni) else { continue };
        let loc = match e.target {
            FdbTarget::Peer(addr) => match peers.iter().position(|p| p.address == addr) {
                Some(r) => Location::Peer(r as u16),
                None => continue,
            },
            FdbTarget::Port(p) => Location::Port(p as u16),
        };
        fdb.insert_static(v, e.mac, loc);
    }
    let underlay_port = cfg.underlay.port as u16;
    let underlay_mac = ports[underlay_port as usize].mac();
    let host = HostStack::new(
        underlay_mac,
        cfg.underlay.address,
        cfg.underlay.gateway,
        usize::from(cfg.underlay.mtu),
        &peers.iter().map(|p| p.address).collect::<Vec<_>>(),
    );
    let router = Router::new(
        cfg,
        &vnis,
        usize::from(cfg.underlay.mtu) - overlay::OUTER_LEN + 14,
    );
    let now = Instant::now();
    let n_ports = ports.len();
    let ident = super::ident::IdentityRt::build(cfg, vni_index)?;
    Ok(Engine {
        ports,
        port_vni,
        underlay_port,
        underlay_ip: cfg.underlay.address.address(),
        underlay_mac,
        udp_port: cfg.underlay.udp_port,
        underlay_mtu: usize::from(cfg.underlay.mtu),
        vnis,
        peers,
        fdb,
        router,
        host,
        pool: Pool::new(POOL_SIZE),
        rx: Burst::new(),
        tx: (0..n_ports).map(|_| Burst::new()).collect(),
        counters,
        start: now,
        now_s: 0,
        last_housekeeping: now,
        last_second: 0,
        host_due: true,
        expired: Vec::with_capacity(16),
        ident,
    })
}
