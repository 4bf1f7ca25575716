//! The fuzz seeds (fuzz/seeds, written by fuzz/make-seeds.py with its own
//! Python encoders) must all parse, with checksums that verify: an
//! independent cross-check of the views and of the seeds themselves.

use overlay::checksum::PseudoHeader;
use overlay::*;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files.iter().map(|f| fs::read(f).unwrap()).collect()
}

#[test]
fn ethernet_and_vlan_seeds() {
    for s in seeds("ethernet") {
        ethernet::Repr::parse(&ethernet::Frame::new_checked(&s[..]).unwrap()).unwrap();
    }
    let v = seeds("vlan");
    assert_eq!(vlan::locate_l3(&v[0]).unwrap().tags, 1);
    assert_eq!(vlan::locate_l3(&v[1]).unwrap().tags, 2);
    assert_eq!(
        vlan::Repr::parse(&vlan::VlanTag::new_checked(&v[2][..]).unwrap())
            .unwrap()
            .vid,
        100
    );
}

#[test]
fn arp_seeds() {
    for s in seeds("arp") {
        arp::Repr::parse(&arp::Packet::new_checked(&s[..]).unwrap()).unwrap();
    }
}

#[test]
fn ip_seeds() {
    for s in seeds("ipv4") {
        let p = ipv4::Packet::new_checked(&s[..]).unwrap();
        assert!(p.verify_checksum());
        ipv4::Repr::parse(&p).unwrap();
    }
    for s in seeds("ipv6") {
        let p = ipv6::Packet::new_checked(&s[..]).unwrap();
        p.upper_layer().unwrap();
        ipv6::Repr::parse(&p).unwrap();
    }
}

#[test]
fn l4_seeds() {
    let ph = PseudoHeader::V4 {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
    };
    for s in seeds("udp") {
        let p = udp::Packet::new_checked(&s[..]).unwrap();
        assert!(p.verify_checksum(&ph));
        udp::Repr::parse(&p).unwrap();
    }
    for s in seeds("tcp") {
        let p = tcp::Packet::new_checked(&s[..]).unwrap();
        assert!(p.options_iter().all(|o| o.is_ok()));
        tcp::Repr::parse(&p).unwrap();
    }
    for s in seeds("icmpv4") {
        let p = icmpv4::Packet::new_checked(&s[..]).unwrap();
        assert!(p.verify_checksum());
        icmpv4::Repr::parse(&p).unwrap();
    }
    let addrs = [
        ("2001:db8::1", "2001:db8::2"),
        ("fe80::1", "ff02::1:ff00:2"),
        ("fe80::2", "fe80::1"),
        ("2001:db8::1", "2001:db8::2"),
    ];
    for (s, (src, dst)) in seeds("icmpv6").iter().zip(addrs) {
        let p = icmpv6::Packet::new_checked(&s[..]).unwrap();
        assert!(p.verify_checksum(src.parse().unwrap(), dst.parse().unwrap()));
        icmpv6::Repr::parse(&p).unwrap();
    }
}

#[test]
fn tunnel_and_flow_seeds() {
    for s in seeds("vxlan") {
        vxlan::Repr::parse(&vxlan::Packet::new_checked(&s[..]).unwrap()).unwrap();
    }
    for s in seeds("decap") {
        let d = decap(&s, 4789).unwrap();
        assert!(d.inner_len >= 14);
    }
    let keys: Vec<FlowKey> = seeds("flow")
        .iter()
        .map(|s| FlowKey::from_inner_ethernet(s).unwrap())
        .collect();
    assert_eq!((keys[0].protocol, keys[0].dst_port), (IpProtocol::TCP, 80));
    assert_eq!(
        (keys[2].protocol, keys[2].src_port),
        (IpProtocol::ICMP, 0xabcd)
    );
    assert_eq!((keys[3].src_port, keys[3].dst_port), (12345, 443));
    assert!(matches!(keys[3].src, IpAddr::V6(_)));
    assert_eq!((keys[4].protocol, keys[4].src_port), (IpProtocol::UDP, 0));
}
