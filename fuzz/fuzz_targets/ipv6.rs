//! IPv6: parse, emit, re-parse; the extension header walk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::ipv6::{find_upper_layer, Packet, Repr, HEADER_LEN};
use overlay::IpProtocol;

fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(u) = find_upper_layer(IpProtocol(first), rest) {
            assert!(u.offset <= rest.len());
        }
    }
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    if let Ok(u) = p.upper_layer() {
        assert!(u.offset <= HEADER_LEN + p.payload().len());
    }
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = vec![0u8; HEADER_LEN + r.payload_len];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len + payload bytes");
    let again = Repr::parse(&Packet::new_checked(&buf[..]).expect("emitted packet checks"));
    assert_eq!(again, Ok(r));
});
