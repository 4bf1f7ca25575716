//! ARP: parse, emit, re-parse; every accessor of a checked view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::arp::{Packet, Repr, ETHERNET_IPV4_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.source_hardware_addr(), p.source_protocol_addr());
    let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    let Ok(r) = Repr::parse(&p) else { return };
    let mut buf = [0u8; ETHERNET_IPV4_LEN];
    r.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit into buffer_len bytes");
    let again = Repr::parse(&Packet::new_checked(&buf[..]).expect("emitted packet checks"));
    assert_eq!(again, Ok(r));
    if let Some(reply) = r.reply(overlay::MacAddr([2, 0, 0, 0, 0, 1])) {
        reply
            .emit(&mut Packet::new_unchecked(&mut buf[..]))
            .expect("reply emits");
    }
});
