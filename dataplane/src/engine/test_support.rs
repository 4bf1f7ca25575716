//! Helpers shared by the engine's test modules.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use overlay::{arp, MacAddr};

/// A secret file removed on drop.
pub(super) struct SecretFile(pub(super) PathBuf);

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An Ethernet/IPv4 ARP body (no Ethernet header).
pub(super) fn arp_body(
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let repr = arp::Repr {
        operation: arp::Operation(op),
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let mut p = vec![0u8; repr.buffer_len()];
    repr.emit(&mut arp::Packet::new_unchecked(&mut p[..]))
        .expect("sized");
    p
}
