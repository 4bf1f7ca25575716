//! Runtime tables compiled from the config: VNIs and peers by index.

use std::net::Ipv4Addr;

use overlay::{Ipv4Cidr, MacAddr, OuterTemplate, Vni};

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
}

/// One peer VTEP.
#[derive(Debug, Clone)]
pub struct PeerRt {
    pub address: Ipv4Addr,
    pub name: Option<String>,
    /// Which VNI indexes this peer carries.
    pub vnis: Vec<bool>,
    /// Next-hop MAC, as the underlay host stack resolved it.
    pub next_hop_mac: Option<MacAddr>,
    /// Outer headers toward this peer; None until the next hop is resolved.
    pub template: Option<OuterTemplate>,
}

impl PeerRt {
    #[inline]
    pub fn carries(&self, vni: usize) -> bool {
        self.vnis.get(vni).copied().unwrap_or(false)
    }
}
