//! UDP: parse, emit, re-parse; a filled checksum verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::checksum::PseudoHeader;
use overlay::udp::{Packet, Repr, HEADER_LEN};
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let ph4 = PseudoHeader::V4 {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
    };
    let ph6 = PseudoHeader::V6 {
        src: Ipv6Addr::LOCALHOST,
        dst: Ipv6Addr::UNSPECIFIED,
    };
    let _ = p.verify_checksum(&ph4);
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = vec![0u8; HEADER_LEN + r.payload_len];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len + payload bytes");
    let mut q = Packet::new_unchecked(&mut buf[..]);
    q.payload_mut().copy_from_slice(p.payload());
    q.fill_checksum(&ph6);
    let q = Packet::new_checked(&buf[..]).expect("emitted datagram checks");
    assert!(q.verify_checksum(&ph6));
    assert_eq!(q.payload(), p.payload());
    assert_eq!(Repr::parse(&q), Ok(r));
});
