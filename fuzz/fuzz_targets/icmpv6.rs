//! ICMPv6: parse, emit, re-parse; the emitted checksum verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::icmpv6::{nd_ll_addr, Packet, Repr, ND_OPT_SOURCE_LL_ADDR};
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.target_addr(),
        nd_ll_addr(p.nd_options(), ND_OPT_SOURCE_LL_ADDR),
    );
    let src: Ipv6Addr = Ipv6Addr::LOCALHOST;
    let dst: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(src, dst, &mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len bytes");
    let q = Packet::new_checked(&buf[..]).expect("emitted message checks");
    assert!(q.verify_checksum(src, dst));
    assert_eq!(Repr::parse(&q), Ok(r));
});
