//! Decap; on success re-encapsulate the inner frame with a template built
//! from what decap found, and decap again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::tunnel::{decap, OuterParams, OuterTemplate, OUTER_LEN};

const PORT: u16 = 4789;

fuzz_target!(|data: &[u8]| {
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
