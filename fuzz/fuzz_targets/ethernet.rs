//! Ethernet: parse, emit, re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::ethernet::{Frame, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = Frame::new_checked(data) else {
        return;
    };
    let _ = f.payload();
    let Ok(r) = Repr::parse(&f) else { return };
    let mut buf = [0u8; overlay::ethernet::HEADER_LEN];
    r.emit(&mut Frame::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len bytes");
    let again = Repr::parse(&Frame::new_checked(&buf[..]).expect("emitted frame checks"));
    assert_eq!(again, Ok(r));
});
