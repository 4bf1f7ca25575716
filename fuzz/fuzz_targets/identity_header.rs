//! Identity header: parse both framings (and the IPv6 extension header)
//! and emit back; find, strip, insert and announce on arbitrary frames.
//! Properties: what parses emits to the same bytes; insert then strip
//! restores the frame exactly; strip then insert then strip is stable;
//! a valid IPv4 header checksum stays valid; failures leave the buffer
//! unchanged.
#![no_main]

use identity::header::{Framing, Packet, Repr, FLAG_ANNOUNCE, HEADER_LEN, IPV6_EXT_LEN};
use identity::stamp::{self, IPV6_GROWTH};
use identity::IdentityId;
use libfuzzer_sys::fuzz_target;
use overlay::{ipv4, vlan, EtherType};

/// Headroom before the frame in the working buffer: enough for either
/// framing.
const ROOM: usize = IPV6_GROWTH;

fn ipv4_checksum_ok(frame: &[u8]) -> Option<bool> {
    let loc = vlan::locate_l3(frame).ok()?;
    if loc.ethertype != EtherType::IPV4 {
        return None;
    }
    let p = ipv4::Packet::new_checked(frame.get(loc.offset..)?).ok()?;
    Some(p.verify_checksum())
}

/// Offset of an IPv4 header checksum of 0xffff (one's complement -0).
fn non_canonical_checksum(frame: &[u8]) -> Option<usize> {
    let loc = vlan::locate_l3(frame).ok()?;
    let off = loc.offset + 10;
    (loc.ethertype == EtherType::IPV4 && frame.get(off..off + 2)? == [0xff, 0xff]).then_some(off)
}

fn repr() -> Repr {
    Repr {
        flags: 0,
        epoch: 3,
        id: IdentityId(0x0102_0304),
        timestamp: 1_700_000_000,
        nonce: 0xfeed_f00d,
        tag: [0x77; 12],
    }
}

fuzz_target!(|data: &[u8]| {
    // The bare header, both framings.
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.kind(), p.length(), p.flags(), p.tag(), p.covered());
        for f in [Framing::Ipv4, Framing::Ipv6] {
            if let Ok(r) = Repr::parse(&p, f) {
                let mut b = [0u8; HEADER_LEN];
                r.emit(&mut Packet::new_unchecked(&mut b[..]), f)
                    .expect("emit into 28 bytes");
                assert_eq!(&b[..], &data[..HEADER_LEN]);
                let q = Packet::new_checked(&b[..]).expect("28 bytes");
                assert_eq!(Repr::parse(&q, f), Ok(r));
            }
        }
    }
    if let Ok((nh, r)) = Repr::parse_ipv6_ext(data) {
        let mut b = [0u8; IPV6_EXT_LEN];
        r.emit_ipv6_ext(nh, &mut b).expect("emit into 32 bytes");
        assert_eq!(&b[..], &data[..IPV6_EXT_LEN]);
        assert_eq!(Repr::parse_ipv6_ext(&b), Ok((nh, r)));
    }

    // Frames: find reports what is at the offset it names.
    if let Ok(Some((off, r))) = stamp::find(data) {
        let framing = if data.get(off) == Some(&0x9e) {
            Framing::Ipv4
        } else {
            Framing::Ipv6
        };
        assert_eq!(&r.to_bytes(framing)[..], &data[off..off + HEADER_LEN]);
    }
    let csum_ok = ipv4_checksum_ok(data) == Some(true);
    let mut buf = vec![0u8; ROOM];
    buf.extend_from_slice(data);

    // Strip; then stamp back and strip again: the same frame.
    let mut b = buf.clone();
    match stamp::strip(&mut b, ROOM) {
        Ok(s) => {
            let (_, r) = stamp::find(data).expect("strip found it").expect("stamped");
            let stripped = b[s..].to_vec();
            assert_eq!(stripped.len() + (s - ROOM), data.len());
            if csum_ok {
                assert_eq!(ipv4_checksum_ok(&stripped), Some(true));
            }
            if stamp::find(&stripped).ok().flatten().is_some() {
                // IPv6 with a second identity header behind the first.
                return;
            }
            let t = match stamp::insert(&mut b, s, &r) {
                Ok(t) => t,
                // IPv6 whose identity header named a Hop-by-Hop header:
                // with ours gone, Hop-by-Hop comes first and must stay so.
                Err(stamp::StampError::Unsupported) => return,
                Err(e) => panic!("a stripped frame takes a header back: {e:?}"),
            };
            assert_eq!(t, ROOM);
            assert_eq!(stamp::find(&b[t..]).ok().flatten().map(|x| x.1), Some(r));
            let u = stamp::strip(&mut b, t).expect("strip again");
            assert_eq!(&b[u..], &stripped[..]);
        }
        Err(_) => assert_eq!(b, buf, "a failed strip leaves the buffer alone"),
    }

    // Insert; then strip: the original frame, byte for byte.
    let mut b = buf.clone();
    match stamp::insert(&mut b, ROOM, &repr()) {
        Ok(s) => {
            if csum_ok {
                assert_eq!(ipv4_checksum_ok(&b[s..]), Some(true));
            }
            assert_eq!(
                stamp::find(&b[s..]).ok().flatten().map(|x| x.1),
                Some(repr())
            );
            let t = stamp::strip(&mut b, s).expect("strip what was inserted");
            assert_eq!(t, ROOM);
            let mut want = data.to_vec();
            if let Some(off) = non_canonical_checksum(data) {
                // 0xffff verifies like 0x0000 but no sender writes it; the
                // incremental updates give back the canonical 0x0000.
                want[off..off + 2].copy_from_slice(&[0, 0]);
            }
            assert_eq!(&b[t..], &want[..]);
        }
        Err(_) => assert_eq!(b, buf, "a failed insert leaves the buffer alone"),
    }

    // Announce-only packets carry the header where find looks.
    let a = Repr {
        flags: FLAG_ANNOUNCE,
        ..repr()
    };
    let mut out = vec![0u8; data.len() + IPV6_EXT_LEN + 8];
    for n in [
        stamp::announce_ipv4(data, &a, &mut out),
        stamp::announce_ipv6(data, &a, &mut out),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(stamp::find(&out[..n]).ok().flatten().map(|x| x.1), Some(a));
    }
});
