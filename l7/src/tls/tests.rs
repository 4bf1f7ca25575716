use super::*;
use proptest::prelude::*;

pub(crate) fn sni_ext(names: &[(u8, &[u8])]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for (ty, n) in names {
        list.push(*ty);
        list.extend_from_slice(&(n.len() as u16).to_be_bytes());
        list.extend_from_slice(n);
    }
    let mut d = (list.len() as u16).to_be_bytes().to_vec();
    d.extend(list);
    (EXT_SERVER_NAME, d)
}

pub(crate) fn alpn_ext(protos: &[&[u8]]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for p in protos {
        list.push(p.len() as u8);
        list.extend_from_slice(p);
    }
    let mut d = (list.len() as u16).to_be_bytes().to_vec();
    d.extend(list);
    (EXT_ALPN, d)
}

/// A ClientHello handshake message (with its 4-byte header).
pub(crate) fn hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0x03, 0x03];
    b.extend([7u8; 32]);
    b.push(32);
    b.extend([9u8; 32]);
    b.extend([0, 4, 0x13, 0x01, 0x13, 0x02]);
    b.extend([1, 0]);
    let mut e = Vec::new();
    for (ty, d) in exts {
        e.extend_from_slice(&ty.to_be_bytes());
        e.extend_from_slice(&(d.len() as u16).to_be_bytes());
        e.extend_from_slice(d);
    }
    b.extend_from_slice(&(e.len() as u16).to_be_bytes());
    b.extend(e);
    let mut m = vec![1];
    m.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
    m.extend(b);
    m
}

/// `msg` in handshake records of at most `frag` bytes.
pub(crate) fn records(msg: &[u8], frag: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in msg.chunks(frag) {
        out.extend([22, 3, 1]);
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Out {
    Hello {
        sni: Option<Vec<u8>>,
        alpn: Vec<Vec<u8>>,
        ech: bool,
        used_total: usize,
    },
    Deny(Reason),
    Pending,
}

fn run(data: &[u8], cuts: &[usize]) -> Out {
    let mut s = HelloStream::new();
    let mut buf = HelloBuf::new();
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= data.len()).collect();
    bounds.sort_unstable();
    bounds.push(data.len());
    let mut prev = 0;
    for c in bounds {
        let seg = &data[prev..c];
        let (used, ev) = s.feed(&mut buf, seg);
        match ev {
            Event::NeedMore { .. } => assert_eq!(used, seg.len()),
            Event::Hello(h) => {
                return Out::Hello {
                    sni: h.sni.map(<[u8]>::to_vec),
                    alpn: h.alpn.iter().map(<[u8]>::to_vec).collect(),
                    ech: h.ech,
                    used_total: prev + used,
                }
            }
            Event::Deny(r) => return Out::Deny(r),
            Event::Done => unreachable!(),
        }
        prev = c;
    }
    Out::Pending
}

fn sni_of(o: &Out) -> Option<&[u8]> {
    match o {
        Out::Hello { sni, .. } => sni.as_deref(),
        _ => None,
    }
}

#[test]
fn sni_and_alpn_in_one_record() {
    let m = hello(&[
        sni_ext(&[(0, b"Api.Example.COM")]),
        alpn_ext(&[b"h2", b"http/1.1"]),
    ]);
    let d = records(&m, 16384);
    let o = run(&d, &[]);
    assert_eq!(
        o,
        Out::Hello {
            sni: Some(b"api.example.com".to_vec()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            ech: false,
            used_total: d.len()
        }
    );
    let mut buf = [0u8; 256];
    let h = parse_hello(&m, &mut buf).unwrap();
    assert_eq!(h.server_name(), Ok(&b"api.example.com"[..]));
    assert!(h.alpn.contains(b"h2") && !h.alpn.contains(b"h3"));
    assert_eq!(h.legacy_version, 0x0303);
}

#[test]
fn hello_split_across_records_and_segments() {
    let m = hello(&[sni_ext(&[(0, b"a.example.com")]), alpn_ext(&[b"h2"])]);
    for frag in [1, 3, 7, 50, 16384] {
        let d = records(&m, frag);
        let whole = run(&d, &[]);
        assert_eq!(sni_of(&whole), Some(&b"a.example.com"[..]), "frag {frag}");
        let cuts: Vec<usize> = (1..d.len()).collect();
        assert_eq!(run(&d, &cuts), whole, "frag {frag} bytewise");
        assert_eq!(run(&d, &[5, 6, 100]), whole);
    }
}

#[test]
fn what_follows_the_hello_is_not_consumed_then_done() {
    let m = hello(&[sni_ext(&[(0, b"a")])]);
    let mut d = records(&m, 16384);
    let hello_end = d.len();
    d.extend([23, 3, 3, 0, 1, 0]);
    let mut s = HelloStream::new();
    let mut buf = HelloBuf::new();
    let (used, ev) = s.feed(&mut buf, &d);
    assert!(matches!(ev, Event::Hello(_)));
    assert_eq!(used, hello_end);
    assert_eq!(s.feed(&mut buf, &d[used..]), (6, Event::Done));
    // Extra bytes in the hello's own record (split path): not consumed.
    let mut m2 = m.clone();
    m2.extend([0xaa; 3]);
    let d = records(&m2, 20);
    assert!(matches!(run(&d, &[]), Out::Hello { used_total, .. } if used_total == d.len() - 3));
}

#[test]
fn names_and_ech() {
    let m = hello(&[alpn_ext(&[b"h2"])]);
    let mut b = [0u8; 256];
    assert_eq!(
        parse_hello(&m, &mut b).unwrap().server_name(),
        Err(Reason::NoSni)
    );
    let m = hello(&[sni_ext(&[(0, b"public.example")]), (0xfe0d, vec![0; 40])]);
    let h = parse_hello(&m, &mut b).unwrap();
    assert!(h.ech);
    assert_eq!(h.server_name(), Err(Reason::Ech));
    let m = hello(&[sni_ext(&[(0, b"a"), (0, b"b")])]);
    assert_eq!(parse_hello(&m, &mut b), Err(Reason::MultipleSni));
    let m = hello(&[sni_ext(&[(0, b"a")]), sni_ext(&[(0, b"a")])]);
    assert_eq!(parse_hello(&m, &mut b), Err(Reason::MultipleSni));
    let m = hello(&[sni_ext(&[(7, b"x"), (0, b"a")])]);
    assert_eq!(parse_hello(&m, &mut b).unwrap().sni, Some(&b"a"[..]));
    for bad in [&b""[..], b"a..b\x00", b"a b", b"a.", &[b'a'; 256][..]] {
        let m = hello(&[sni_ext(&[(0, bad)])]);
        assert_eq!(parse_hello(&m, &mut b), Err(Reason::InvalidSni));
    }
    let m = hello(&[alpn_ext(&[b"h2"]), alpn_ext(&[b"h2"])]);
    assert_eq!(parse_hello(&m, &mut b), Err(Reason::InvalidAlpn));
    let m = hello(&[alpn_ext(&[b""])]);
    assert_eq!(parse_hello(&m, &mut b), Err(Reason::InvalidAlpn));
}

#[test]
fn malformed_hellos() {
    let mut b = [0u8; 256];
    let good = hello(&[sni_ext(&[(0, b"a")])]);
    // Every truncation is malformed (the length no longer fits).
    for n in 0..good.len() {
        assert!(parse_hello(&good[..n], &mut b).is_err(), "{n}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(parse_hello(&trailing, &mut b), Err(Reason::Malformed));
    // No extensions at all: fine, no SNI.
    let mut bare = vec![0x03, 0x03];
    bare.extend([0u8; 32]);
    bare.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    let mut m = vec![1, 0, 0, bare.len() as u8];
    m.extend(bare);
    assert_eq!(parse_hello(&m, &mut b).unwrap().sni, None);
}

#[test]
fn record_layer_denials() {
    assert_eq!(
        run(b"GET / HTTP/1.1\r\n", &[]),
        Out::Deny(Reason::NotHandshake)
    );
    assert_eq!(run(&[22, 2, 0], &[]), Out::Deny(Reason::BadRecordVersion));
    assert_eq!(run(&[22, 3, 5], &[]), Out::Deny(Reason::BadRecordVersion));
    assert_eq!(
        run(&[22, 3, 1, 0, 0], &[]),
        Out::Deny(Reason::BadRecordLength)
    );
    assert_eq!(
        run(&[22, 3, 1, 0x40, 1], &[]),
        Out::Deny(Reason::BadRecordLength)
    );
    assert_eq!(
        run(&[22, 3, 1, 0, 4, 2, 0, 0, 0], &[]),
        Out::Deny(Reason::NotClientHello)
    );
    // A hello that claims more than HELLO_MAX.
    assert_eq!(
        run(&[22, 3, 1, 0, 4, 1, 0, 0x40, 0], &[]),
        Out::Deny(Reason::TooLarge)
    );
    assert_eq!(run(&[22, 3, 1, 0, 4, 1, 0, 0x3f, 0xfc], &[]), Out::Pending);
    // An alert record before any hello.
    assert_eq!(
        run(&[21, 3, 1, 0, 2, 2, 40], &[]),
        Out::Deny(Reason::NotHandshake)
    );
}

#[test]
fn reason_table_is_in_repr_order() {
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
    }
}

proptest! {
    #[test]
    fn split_invariant(frag in 1usize..400, cuts in proptest::collection::vec(0usize..700, 0..10),
                       name in "[a-z0-9]{1,20}(\\.[a-z0-9-]{1,20}){0,3}", pad in 0usize..300) {
        let m = hello(&[(21, vec![0; pad]), sni_ext(&[(0, name.as_bytes())]), alpn_ext(&[b"h2"])]);
        let d = records(&m, frag);
        let whole = run(&d, &[]);
        prop_assert_eq!(sni_of(&whole), Some(name.as_bytes()));
        prop_assert_eq!(run(&d, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_split_invariant(d in proptest::collection::vec(any::<u8>(), 0..200),
                                       cuts in proptest::collection::vec(0usize..200, 0..6)) {
        let mut x = vec![22, 3, 1, 0, d.len() as u8, 1, 0, 0, d.len().saturating_sub(4) as u8];
        x.extend(&d);
        prop_assert_eq!(run(&x, &cuts), run(&x, &[]));
        prop_assert_eq!(run(&d, &cuts), run(&d, &[]));
    }
}
