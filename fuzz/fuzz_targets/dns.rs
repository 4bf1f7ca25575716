//! DNS (l7 crate): the input is one message. `parse_query`,
//! `parse_response` (into a 4-slot array) never panic; a parsed name is
//! lowercase and at most 253 bytes; a query that `refuse_in_place` turns
//! into a response parses back as a REFUSED response to the same name with
//! no addresses. The same message framed for TCP, cut at a point the first
//! byte picks, comes out of `TcpFramer` whole.
#![no_main]

use l7::dns::{parse_query, parse_response, refuse_in_place, Addr, Event, NameBuf, TcpFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = NameBuf::new();
    let qname = parse_query(data, &mut n).ok().map(|q| q.question.name.to_vec());
    if let Some(name) = &qname {
        assert!(name.len() <= 253 && !name.iter().any(u8::is_ascii_uppercase));
    }
    let mut out = [Addr::UNSPECIFIED; 4];
    if let Ok(a) = parse_response(data, &mut n, &mut out) {
        assert!(a.count <= 4 && a.question.name.len() <= 253);
    }
    let mut m = data.to_vec();
    match refuse_in_place(&mut m) {
        Ok(len) => {
            let a = parse_response(&m[..len], &mut n, &mut out).expect("REFUSED parses");
            assert_eq!(a.header.rcode(), 5);
            assert_eq!(a.count, 0);
            assert_eq!(Some(a.question.name.to_vec()), qname);
        }
        Err(_) => assert!(qname.is_none()),
    }
    if data.is_empty() || data.len() > 1024 {
        return;
    }
    let mut framed = (data.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(data);
    let cut = data[0] as usize % framed.len();
    let mut f = TcpFramer::new();
    let mut buf = [0u8; 1024];
    let mut got = None;
    for seg in [&framed[..cut], &framed[cut..]] {
        let mut rest = seg;
        while !rest.is_empty() {
            let (used, ev) = f.feed(&mut buf, rest);
            rest = &rest[used..];
            match ev {
                Event::Message(msg) => got = Some(msg.to_vec()),
                Event::NeedMore { .. } => {}
                Event::Deny(r) => panic!("{r:?}"),
            }
        }
    }
    assert_eq!(got.as_deref(), Some(data));
});
