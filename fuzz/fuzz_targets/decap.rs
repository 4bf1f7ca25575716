//! Decap; on success re-encapsulate the inner frame with a template built
//! from what decap found, and decap again. The common-shape check
//! (`DecapShape`, built for the frame's own destination so that the
//! fuzzer can reach it) accepts only what decap accepts, with its answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::tunnel::{decap, DecapShape, OuterParams, OuterTemplate, OUTER_LEN};
use overlay::MacAddr;
use std::net::Ipv4Addr;

const PORT: u16 = 4789;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 34 {
        let mac = MacAddr([data[0], data[1], data[2], data[3], data[4], data[5]]);
        let ip = Ipv4Addr::new(data[30], data[31], data[32], data[33]);
        let shape = DecapShape::new(mac, ip, PORT);
        if shape.matches(data) {
            assert_eq!(shape.decap(data), DecapShape::decap_matched(data));
        }
        if let Some(s) = shape.decap(data) {
            assert_eq!(Ok(s), decap(data, PORT));
        }
    }
    let Ok(d) = decap(data, PORT) else { return };
    let inner = d.inner(data);
    assert_eq!(inner.len(), d.inner_len);
    let t = OuterTemplate::new(&OuterParams {
        src_mac: d.outer_src_mac,
        dst_mac: d.outer_dst_mac,
        src_ip: d.outer_src,
        dst_ip: d.outer_dst,
        vni: d.vni,
        dst_port: PORT,
        ttl: 64,
        gbp: d.gbp,
    });
    let mut buf = vec![0u8; OUTER_LEN + inner.len()];
    buf[OUTER_LEN..].copy_from_slice(inner);
    t.write_into(&mut buf, inner.len(), d.udp_src_port)
        .expect("a decapped inner frame fits again");
    let again = decap(&buf, PORT).expect("our own encap decaps");
    assert_eq!(again.inner(&buf), inner);
    assert_eq!(
        (again.outer_src, again.outer_dst, again.vni, again.gbp),
        (d.outer_src, d.outer_dst, d.vni, d.gbp)
    );
    assert_eq!(
        (again.outer_src_mac, again.outer_dst_mac, again.udp_src_port),
        (d.outer_src_mac, d.outer_dst_mac, d.udp_src_port)
    );
});
