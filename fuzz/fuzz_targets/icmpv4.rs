//! ICMPv4: parse, emit, re-parse; the emitted checksum verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::icmpv4::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.verify_checksum(), p.data());
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len bytes");
    let q = Packet::new_checked(&buf[..]).expect("emitted message checks");
    assert!(q.verify_checksum());
    assert_eq!(Repr::parse(&q), Ok(r));
});
