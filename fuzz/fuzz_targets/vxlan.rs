//! VXLAN header: parse, emit, re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::vxlan::{Packet, Repr, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.vni(), p.gbp(), p.payload());
    let Ok(r) = Repr::parse(&p) else {
        assert!(p.check_flags().is_err());
        return;
    };
    let mut buf = [0u8; HEADER_LEN];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len bytes");
    let again = Repr::parse(&Packet::new_checked(&buf[..]).expect("emitted header checks"));
    assert_eq!(again, Ok(r));
    // A header that parsed is written back byte for byte.
    assert_eq!(&buf[..], &data[..HEADER_LEN]);
});
