//! TCP: parse, emit, re-parse; the option iterator ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::checksum::PseudoHeader;
use overlay::tcp::{Packet, Repr};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let n = p.options_iter().count();
    assert!(n <= p.options().len());
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = vec![0u8; r.buffer_len() + r.payload_len];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("options of a parsed header emit");
    let ph = PseudoHeader::V4 {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
    };
    let mut q = Packet::new_unchecked(&mut buf[..]);
    q.payload_mut().copy_from_slice(p.payload());
    q.fill_checksum(&ph);
    let q = Packet::new_checked(&buf[..]).expect("emitted segment checks");
    assert!(q.verify_checksum(&ph));
    assert_eq!(Repr::parse(&q), Ok(r));
});
