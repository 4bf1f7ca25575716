//! The HTTP/1.x request stream (l7 crate): the first two input bytes pick
//! cut points, the rest is the client's byte stream. Fed whole and fed cut
//! into segments, it must give the same events (bodies merged); consumed
//! counts stay within the input (body bytes passed just before a deny
//! are not compared: how many there are depends on the cuts); a request's path is already normal
//! (normalising it again changes nothing); never a panic.
#![no_main]

use l7::http::{normalize_path, Event, HeadBuf, HttpStream};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Ev {
    Req(Vec<u8>, Vec<u8>, Option<(Vec<u8>, Option<u16>)>),
    Body(usize),
    Opaque,
    Deny(l7::http::Reason),
}

fn run(data: &[u8], step: usize) -> Vec<Ev> {
    let mut s = HttpStream::new();
    let mut buf = HeadBuf::new();
    let mut out: Vec<Ev> = Vec::new();
    for seg in data.chunks(step.max(1)) {
        let mut rest = seg;
        while !rest.is_empty() {
            let (used, ev) = s.feed(&mut buf, rest);
            assert!(used <= rest.len());
            rest = &rest[used..];
            let e = match ev {
                Event::NeedMore { buffered } => {
                    assert!(rest.is_empty() && buffered <= l7::http::HEAD_MAX);
                    continue;
                }
                Event::Request(r) => {
                    let mut out = [0u8; l7::http::HEAD_MAX];
                    if r.path.first() == Some(&b'/') {
                        assert_eq!(normalize_path(r.path, &mut out).unwrap(), r.path);
                    }
                    Ev::Req(r.method.to_vec(), r.path.to_vec(), r.host.map(|h| (h.name.to_vec(), h.port)))
                }
                Event::Body { len } => {
                    if let Some(Ev::Body(n)) = out.last_mut() {
                        *n += len;
                        continue;
                    }
                    Ev::Body(len)
                }
                Event::Opaque => Ev::Opaque,
                Event::Deny(r) => {
                    // Body bytes passed before an error later in the same
                    // body depend on the cuts (a whole segment is denied
                    // at once); they were uninspected body either way.
                    if let Some(Ev::Body(_)) = out.last() {
                        out.pop();
                    }
                    out.push(Ev::Deny(r));
                    return out;
                }
            };
            out.push(e);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (a, b) = (data[0] as usize + 1, data[1] as usize % 7 + 1);
    let stream = &data[2..];
    let whole = run(stream, stream.len());
    assert_eq!(run(stream, a), whole);
    assert_eq!(run(stream, b), whole);
});
