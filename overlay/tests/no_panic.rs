//! The no-panic contract of lib.rs, checked with arbitrary bytes: every
//! `new_checked`, every getter of a view it accepted, every `Repr::parse`,
//! `decap` and the flow key extraction return instead of panicking.

use overlay::checksum::PseudoHeader;
use overlay::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ph4() -> PseudoHeader {
    PseudoHeader::V4 {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
    }
}

fn exercise(b: &[u8]) {
    if let Ok(f) = ethernet::Frame::new_checked(b) {
        let _ = (f.src_addr(), f.dst_addr(), f.ethertype(), f.payload().len());
        let _ = ethernet::Repr::parse(&f);
    }
    if let Ok(t) = vlan::VlanTag::new_checked(b) {
        let _ = (t.pcp(), t.dei(), t.vid(), t.ethertype(), t.payload().len());
        let _ = vlan::Repr::parse(&t);
    }
    if let Ok(l) = vlan::locate_l3(b) {
        assert!(l.offset <= b.len());
    }
    if let Ok(p) = arp::Packet::new_checked(b) {
        let _ = (
            p.hardware_type(),
            p.protocol_type(),
            p.operation(),
            p.is_ethernet_ipv4(),
        );
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        let _ = arp::Repr::parse(&p);
    }
    // Also the unchecked-version path: a view that only passed check_len.
    let v4 = ipv4::Packet::new_unchecked(b);
    if v4.check_len().is_ok() {
        let _ = (v4.options().len(), v4.payload().len(), v4.verify_checksum());
        let _ = (v4.frag_offset(), v4.is_fragment(), v4.dscp(), v4.ecn());
        let _ = ipv4::Repr::parse(&v4);
    }
    let _ = ipv4::Packet::new_checked(b);
    if let Ok(p) = ipv6::Packet::new_checked(b) {
        let _ = (p.payload().len(), p.traffic_class(), p.flow_label());
        let _ = p.upper_layer();
        let _ = ipv6::Repr::parse(&p);
    }
    for first in [0u8, 43, 44, 51, 60, 6] {
        let _ = ipv6::find_upper_layer(IpProtocol(first), b);
    }
    if let Ok(p) = udp::Packet::new_checked(b) {
        let _ = (p.payload().len(), p.verify_checksum(&ph4()));
        let _ = udp::Repr::parse(&p);
    }
    if let Ok(p) = tcp::Packet::new_checked(b) {
        let _ = (
            p.flags(),
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(&ph4()),
        );
        assert!(p.options_iter().count() <= 40);
        let _ = tcp::Repr::parse(&p);
    }
    if let Ok(p) = icmpv4::Packet::new_checked(b) {
        let _ = (
            p.echo_ident(),
            p.next_hop_mtu(),
            p.data().len(),
            p.verify_checksum(),
        );
        let _ = icmpv4::Repr::parse(&p);
    }
    if let Ok(p) = icmpv6::Packet::new_checked(b) {
        let _ = (p.target_addr(), p.nd_options().len(), p.mtu(), p.na_flags());
        let _ = p.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        let _ = icmpv6::nd_ll_addr(p.nd_options(), icmpv6::ND_OPT_SOURCE_LL_ADDR);
        let _ = icmpv6::Repr::parse(&p);
    }
    let _ = icmpv6::nd_ll_addr(b, 1);
    if let Ok(p) = vxlan::Packet::new_checked(b) {
        let _ = (p.check_flags(), p.vni(), p.gbp(), p.payload().len());
        let _ = vxlan::Repr::parse(&p);
    }
    if let Ok(d) = decap(b, 4789) {
        assert!(d.inner_offset + d.inner_len <= b.len());
        assert_eq!(d.inner(b).len(), d.inner_len);
    }
    if let Ok(k) = FlowKey::from_inner_ethernet(b) {
        let _ = vxlan_src_port(flow_hash(&k));
    }
    let _ = FlowKey::from_ipv4(b);
    let _ = FlowKey::from_ipv6(b);
    let _ = checksum::sum(b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..160)) {
        exercise(&b);
    }

    /// Plausible-looking frames reach deeper code than uniform bytes: fix
    /// the EtherType, IP version/IHL and a VXLAN-ish UDP port, fuzz the rest.
    #[test]
    fn structured_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 14..200),
                                    kind in 0u8..4) {
        let (et, first) = match kind {
            0 => (0x0800u16, 0x45u8),
            1 => (0x86dd, 0x60),
            2 => (0x8100, 0x45),
            _ => (0x0800, 0x46),
        };
        b[12..14].copy_from_slice(&et.to_be_bytes());
        if let Some(x) = b.get_mut(14) { *x = first; }
        if b.len() > 38 && kind == 0 {
            b[23] = 17;
            b[36..38].copy_from_slice(&4789u16.to_be_bytes());
        }
        exercise(&b);
        exercise(&b[14..]);
    }
}
