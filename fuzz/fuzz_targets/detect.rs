//! Protocol detection (l7 crate): byte 0 picks transport and port (53 or
//! 443), byte 1 how many of the rest are server bytes, byte 2 a segment
//! size. Fed whole or in segments the decision is the same; past
//! DETECT_MAX client bytes it is decided; never a panic.
#![no_main]

use l7::detect::{detect, Detection, Detector, Transport, DETECT_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let transport = if data[0] & 1 == 0 { Transport::Tcp } else { Transport::Udp };
    let port = if data[0] & 2 == 0 { 53 } else { 443 };
    let rest = &data[3..];
    let split = (data[1] as usize).min(rest.len()) / 4;
    let (server, client) = rest.split_at(split);
    let whole = detect(transport, port, client, server);
    if transport == Transport::Tcp {
        let mut d = Detector::new(transport, port);
        d.feed_server(server);
        let mut last = d.result();
        for seg in client.chunks(data[2] as usize % 5 + 1) {
            last = d.feed_client(seg);
        }
        assert_eq!(last, whole);
        if client.len() >= DETECT_MAX {
            assert_ne!(whole, Detection::NeedMore);
        }
    } else if !client.is_empty() {
        assert_ne!(whole, Detection::NeedMore);
    }
});
