//! Completing checksums the kernel left partial.
//!
//! A veth (or any device with tx checksum offload) hands AF_PACKET frames
//! whose TCP/UDP checksum holds only the pseudo-header sum
//! (TP_STATUS_CSUMNOTREADY). Forwarded as is, the receiver drops them. The
//! port flags such frames; the engine completes the checksum once, here,
//! before the frame leaves for another port or a tunnel. Frames without the
//! flag never come here.

use overlay::{checksum, ethernet, ipv4, EtherType, IpProtocol};

/// Recompute the TCP or UDP checksum of the IPv4 packet in an Ethernet
/// frame. Returns false when the frame is not an unfragmented IPv4 TCP/UDP
/// packet (nothing is changed then).
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let Ok(eth) = ethernet::Frame::new_checked(&*frame) else {
        return false;
    };
    if eth.ethertype() != EtherType::IPV4 {
        return false;
    }
    let Some(l3) = frame.get_mut(ethernet::HEADER_LEN..) else {
        return false;
    };
    let Ok(mut ip) = ipv4::Packet::new_checked(l3) else {
        return false;
    };
    if ip.is_fragment() {
        return false;
    }
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let at = match proto {
        IpProtocol::TCP => 16,
        IpProtocol::UDP => 6,
        _ => return false,
    };
    let l4 = ip.payload_mut();
    if l4.len() < at + 2 {
        return false;
    }
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let pseudo = checksum::pseudo_header_v4(src, dst, proto, l4.len() as u32);
    let mut c = !checksum::add(pseudo, checksum::sum(l4));
    if proto == IpProtocol::UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet/IPv4/UDP "hi" with a partial (pseudo-header only) checksum.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 2];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&30u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let c = checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[38..40].copy_from_slice(&10u16.to_be_bytes());
        f[40..42].copy_from_slice(&[0x12, 0x34]); // partial garbage
        f[42..44].copy_from_slice(b"hi");
        f
    }

    #[test]
    fn completes_udp_checksum_so_it_verifies() {
        let mut f = udp_frame();
        assert!(complete_l4_checksum(&mut f));
        // Verifying: pseudo-header + segment (with its checksum) sums to 0xffff.
        let pseudo = checksum::pseudo_header_v4(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            IpProtocol::UDP,
            10,
        );
        assert_eq!(checksum::add(pseudo, checksum::sum(&f[34..])), 0xffff);
    }

    #[test]
    fn leaves_other_frames_alone() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let before = arp.clone();
        assert!(!complete_l4_checksum(&mut arp));
        assert_eq!(arp, before);
        assert!(!complete_l4_checksum(&mut [0u8; 3]));
    }
}
