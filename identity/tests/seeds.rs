//! The identity_header fuzz seeds (fuzz/seeds/identity_header, written by
//! identity/tests/make_seeds.py, a Python encoder of docs/identity.md that
//! shares no code with this crate) must read as the spec says: an
//! independent cross-check of find, insert, strip and announce.

use identity::header::{self, Framing, Repr, FLAG_ANNOUNCE};
use identity::stamp;
use identity::IdentityId;
use overlay::ip::IpProtocol;
use std::path::PathBuf;

fn seed(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/identity_header")
        .join(format!("{name}.bin"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The header every stamped seed carries (ANNOUNCE aside).
fn expected(flags: u8) -> Repr {
    Repr {
        flags,
        epoch: 0x2a,
        id: IdentityId(0xcafe_f00d),
        timestamp: 1_700_000_000,
        nonce: 0x1122_3344,
        tag: std::array::from_fn(|i| 0xa0 + i as u8),
    }
}

const HEADROOM: usize = 32;

fn with_headroom(f: &[u8]) -> Vec<u8> {
    let mut b = vec![0; HEADROOM];
    b.extend_from_slice(f);
    b
}

#[test]
fn stamped_seeds_strip_and_stamp_back_identically() {
    for name in [
        "01-syn-stamped",
        "02-udp-stamped",
        "03-icmp-stamped",
        "04-options-stamped",
        "05-vlan-udp-stamped",
        "07-syn6-stamped",
    ] {
        let s = seed(name);
        let (_, r) = stamp::find(&s).unwrap().unwrap();
        assert_eq!(r, expected(0), "{name}");
        let mut buf = with_headroom(&s);
        let start = stamp::strip(&mut buf, HEADROOM).unwrap();
        assert_eq!(stamp::find(&buf[start..]), Ok(None), "{name}");
        let again = stamp::insert(&mut buf, start, &r).unwrap();
        assert_eq!(again, HEADROOM);
        assert_eq!(
            &buf[again..],
            &s[..],
            "{name}: insert matches the Python encoder"
        );
    }
}

#[test]
fn unstamped_seeds_stamp_into_their_stamped_seeds() {
    for (plain, stamped) in [("00-syn", "01-syn-stamped"), ("06-syn6", "07-syn6-stamped")] {
        let mut buf = with_headroom(&seed(plain));
        let start = stamp::insert(&mut buf, HEADROOM, &expected(0)).unwrap();
        assert_eq!(buf[start..], seed(stamped)[..], "{plain}");
    }
    let mut out = [0u8; 128];
    let n = stamp::announce_ipv4(&seed("00-syn"), &expected(FLAG_ANNOUNCE), &mut out).unwrap();
    assert_eq!(out[..n], seed("08-syn-announce")[..]);
}

#[test]
fn raw_header_seeds() {
    let h = seed("09-header-ipv4");
    let p = header::Packet::new_checked(&h[..]).unwrap();
    assert_eq!(Repr::parse(&p, Framing::Ipv4), Ok(expected(0)));
    assert_eq!(
        Repr::parse_ipv6_ext(&seed("10-ext-ipv6")),
        Ok((IpProtocol::TCP, expected(0)))
    );
}
