//! The TLS ClientHello reader (l7 crate): the first byte picks a segment
//! size, the rest is the client's stream. Fed whole and cut into segments
//! it gives the same hello (or the same deny); a parsed server name is
//! lowercase; never a panic. `parse_hello` is also run on the raw bytes.
#![no_main]

use l7::tls::{parse_hello, Event, HelloBuf, HelloStream};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Out {
    Hello(Option<Vec<u8>>, Vec<Vec<u8>>, bool, usize),
    Deny(l7::tls::Reason),
    Pending,
}

fn run(data: &[u8], step: usize) -> Out {
    let mut s = HelloStream::new();
    let mut buf = HelloBuf::new();
    let mut at = 0;
    for seg in data.chunks(step.max(1)) {
        let (used, ev) = s.feed(&mut buf, seg);
        assert!(used <= seg.len());
        match ev {
            Event::NeedMore { .. } => assert_eq!(used, seg.len()),
            Event::Hello(h) => {
                if let Some(n) = h.sni {
                    assert!(!n.iter().any(u8::is_ascii_uppercase));
                }
                return Out::Hello(
                    h.sni.map(<[u8]>::to_vec),
                    h.alpn.iter().map(<[u8]>::to_vec).collect(),
                    h.ech,
                    at + used,
                );
            }
            Event::Deny(r) => return Out::Deny(r),
            Event::Done => unreachable!("Done before a hello"),
        }
        at += seg.len();
    }
    Out::Pending
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, stream)) = data.split_first() else { return };
    let whole = run(stream, stream.len());
    assert_eq!(run(stream, k as usize % 13 + 1), whole);
    assert_eq!(run(stream, k as usize * 7 + 1), whole);
    let mut sni = [0u8; 256];
    let _ = parse_hello(stream, &mut sni);
});
