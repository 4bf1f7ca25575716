//! IPv4: parse, emit, re-parse; checksum and TTL helpers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::ipv4::{Packet, Repr, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.options(), p.payload(), p.frag_offset(), p.is_fragment());
    let verified = p.verify_checksum();
    if verified {
        // Decrementing the TTL keeps a valid checksum valid.
        let mut copy = data.to_vec();
        let mut q = Packet::new_unchecked(&mut copy[..]);
        if q.decrement_ttl().is_some() {
            assert!(q.verify_checksum());
        }
    }
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = vec![0u8; HEADER_LEN + r.payload_len];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len + payload bytes");
    let q = Packet::new_checked(&buf[..]).expect("emitted packet checks");
    assert!(q.verify_checksum());
    assert_eq!(Repr::parse(&q), Ok(r));
});
