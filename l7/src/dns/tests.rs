use super::*;
use proptest::prelude::*;

pub(crate) fn name_wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(name_wire(name));
    m.extend(qtype.to_be_bytes());
    m.extend([0, 1]);
    m
}

fn rr(m: &mut Vec<u8>, owner: &[u8], ty: u16, ttl: u32, rdata: &[u8]) {
    m.extend_from_slice(owner);
    m.extend(ty.to_be_bytes());
    m.extend([0, 1]);
    m.extend(ttl.to_be_bytes());
    m.extend((rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

/// www.Example.com -> CNAME edge.example.net (compressed) -> A x2, AAAA,
/// plus an A for another name that must not be collected.
fn response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0];
    m.extend(name_wire("www.Example.com"));
    m.extend([0, 1, 0, 1]);
    let cname_target_at = m.len() + 12; // after owner ptr(2)+fixed(10)
    let mut target = vec![4];
    target.extend(b"edge");
    target.extend(name_wire("example.net"));
    rr(&mut m, &[0xc0, 12], TYPE_CNAME, 300, &target);
    let t = [0xc0, cname_target_at as u8];
    rr(&mut m, &t, TYPE_A, 60, &[192, 0, 2, 1]);
    rr(&mut m, &t, TYPE_A, 0x8000_0001, &[192, 0, 2, 2]);
    rr(
        &mut m,
        &t,
        TYPE_AAAA,
        30,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let mut other = name_wire("evil.example.org");
    other.truncate(other.len());
    rr(&mut m, &other, TYPE_A, 60, &[6, 6, 6, 6]);
    m
}

#[test]
fn query_with_mixed_case_name() {
    let q = query(7, "wWw.ExAmPlE.cOm", 1);
    let mut n = NameBuf::new();
    let p = parse_query(&q, &mut n).unwrap();
    assert_eq!(p.question.name, b"www.example.com");
    assert_eq!((p.question.qtype, p.question.qclass), (1, 1));
    assert_eq!(p.header.id, 7);
    assert_eq!(p.question_end, q.len());
    assert!(crate::pattern::name_matches(
        b"*.EXAMPLE.com",
        p.question.name
    ));
}

#[test]
fn query_with_edns_opt_record() {
    let mut q = query(7, "a.b", 28);
    q[11] = 1; // ARCOUNT 1
    q.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let mut n = NameBuf::new();
    assert_eq!(parse_query(&q, &mut n).unwrap().question.name, b"a.b");
    q.push(0);
    assert_eq!(parse_query(&q, &mut n), Err(Reason::CountMismatch));
}

#[test]
fn counts_that_lie() {
    let mut n = NameBuf::new();
    let mut q = query(1, "a.b", 1);
    q[7] = 1; // ANCOUNT 1, no answer there
    assert_eq!(parse_query(&q, &mut n), Err(Reason::CountMismatch));
    let mut q = query(1, "a.b", 1);
    q[5] = 2;
    assert_eq!(parse_query(&q, &mut n), Err(Reason::QuestionCount));
    let mut q = query(1, "a.b", 1);
    q[5] = 0;
    assert_eq!(parse_query(&q, &mut n), Err(Reason::QuestionCount));
    let mut q = query(1, "a.b", 1);
    q.push(0);
    assert_eq!(parse_query(&q, &mut n), Err(Reason::CountMismatch));
    let q = query(1, "a.b", 1);
    assert_eq!(
        parse_query(&q[..q.len() - 1], &mut n),
        Err(Reason::Truncated)
    );
    assert_eq!(parse_query(&q[..5], &mut n), Err(Reason::Truncated));
    let mut r = response();
    r[7] = 6;
    let mut out = [Addr::UNSPECIFIED; 4];
    assert_eq!(
        parse_response(&r, &mut n, &mut out),
        Err(Reason::CountMismatch)
    );
}

#[test]
fn pointer_loops_and_bad_pointers() {
    let mut n = NameBuf::new();
    let head = [0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let with = |name: &[u8]| {
        let mut m = head.to_vec();
        m.extend_from_slice(name);
        m.extend([0, 1, 0, 1]);
        m
    };
    // a label then a pointer back to its own start
    assert_eq!(
        parse_query(&with(&[1, b'a', 0xc0, 12]), &mut n),
        Err(Reason::PointerLoop)
    );
    // a pointer to itself
    assert_eq!(
        parse_query(&with(&[0xc0, 12]), &mut n),
        Err(Reason::PointerForward)
    );
    assert_eq!(
        parse_query(&with(&[0xc0, 40]), &mut n),
        Err(Reason::PointerOutOfBounds)
    );
    assert_eq!(
        parse_query(&with(&[0xc0, 3]), &mut n),
        Err(Reason::PointerOutOfBounds)
    );
    assert_eq!(
        parse_query(&with(&[1, b'a', 0xc0, 18]), &mut n),
        Err(Reason::PointerForward)
    );
    // Two names pointing at each other, in a response's answer.
    let mut r = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    r.extend([1, b'a', 0xc0, 20, 0, 1, 0, 1]); // a pointer to the end
    let mut out = [Addr::UNSPECIFIED; 1];
    assert_eq!(
        parse_response(&r, &mut n, &mut out),
        Err(Reason::PointerOutOfBounds)
    );
    // Chains of backward pointers that revisit bytes already read.
    let mut m = head.to_vec();
    m.extend([1, b'x', 0]); // 12: "x"
    m.extend([0, 1, 0, 1]);
    m[7] = 1; // one answer
    let ans = m.len(); // 19
    m.extend([1, b'y', 0xc0, ans as u8]); // owner y + ptr back to itself -> loop
    m.extend([0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(parse_query(&m, &mut n), Err(Reason::PointerLoop));
}

#[test]
fn label_and_name_limits() {
    let mut n = NameBuf::new();
    let mut q = query(1, "a", 1);
    q[12] = 64;
    assert_eq!(parse_query(&q, &mut n), Err(Reason::LabelTooLong));
    let mut q = query(1, "a", 1);
    q[12] = 0x80;
    assert_eq!(parse_query(&q, &mut n), Err(Reason::LabelTooLong));
    let l63 = "a".repeat(63);
    let ok =
        [l63.as_str(); 3].join(".") + ".abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv";
    assert!(parse_query(&query(1, &ok, 1), &mut n).is_ok());
    let at_limit = [l63.as_str(); 3].join(".") + "." + &"b".repeat(61);
    assert_eq!(name_wire(&at_limit).len(), 255);
    assert_eq!(
        parse_query(&query(1, &at_limit, 1), &mut n)
            .unwrap()
            .question
            .name
            .len(),
        253
    );
    let too_long = [l63.as_str(); 4].join(".");
    assert_eq!(
        parse_query(&query(1, &too_long, 1), &mut n),
        Err(Reason::NameTooLong)
    );
    assert_eq!(
        parse_query(&query(1, "a b.c", 1), &mut n),
        Err(Reason::InvalidLabel)
    );
    assert_eq!(
        parse_query(&query(1, "_sip._tcp.x-y", 33), &mut n)
            .unwrap()
            .question
            .name,
        b"_sip._tcp.x-y"
    );
    assert_eq!(
        parse_query(&query(1, "", 2), &mut n).unwrap().question.name,
        b""
    );
}

#[test]
fn direction_and_opcode() {
    let mut n = NameBuf::new();
    let mut q = query(1, "a", 1);
    q[2] |= 0x80;
    assert_eq!(parse_query(&q, &mut n), Err(Reason::WrongDirection));
    let mut q = query(1, "a", 1);
    q[2] |= 5 << 3; // UPDATE
    assert_eq!(parse_query(&q, &mut n), Err(Reason::Opcode));
    let mut out = [Addr::UNSPECIFIED; 1];
    assert_eq!(
        parse_response(&query(1, "a", 1), &mut n, &mut out),
        Err(Reason::WrongDirection)
    );
}

#[test]
fn answers_follow_the_cname_chain() {
    let r = response();
    let mut n = NameBuf::new();
    let mut out = [Addr::UNSPECIFIED; 8];
    let a = parse_response(&r, &mut n, &mut out).unwrap();
    assert_eq!(a.question.name, b"www.example.com");
    assert_eq!(a.cname_hops, 1);
    assert_eq!(a.count, 3);
    assert_eq!(a.dropped, 0);
    assert_eq!(
        out[0],
        Addr {
            ip: "192.0.2.1".parse().unwrap(),
            ttl: 60
        }
    );
    assert_eq!(
        out[1],
        Addr {
            ip: "192.0.2.2".parse().unwrap(),
            ttl: 0
        }
    );
    assert_eq!(
        out[2],
        Addr {
            ip: "2001:db8::1".parse().unwrap(),
            ttl: 30
        }
    );
    // Bounded output.
    let mut small = [Addr::UNSPECIFIED; 2];
    let a = parse_response(&r, &mut n, &mut small).unwrap();
    assert_eq!((a.count, a.dropped), (2, 1));
    // An error RCODE: nothing collected.
    let mut r2 = r.clone();
    r2[3] = 0x83;
    assert_eq!(parse_response(&r2, &mut n, &mut out).unwrap().count, 0);
}

#[test]
fn cname_loop_is_bounded() {
    // a -> b -> a -> ...
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend(name_wire("a"));
    m.extend([0, 1, 0, 1]);
    rr(&mut m, &name_wire("a"), TYPE_CNAME, 1, &name_wire("b"));
    rr(&mut m, &name_wire("b"), TYPE_CNAME, 1, &name_wire("a"));
    let mut n = NameBuf::new();
    let mut out = [Addr::UNSPECIFIED; 1];
    assert_eq!(
        parse_response(&m, &mut n, &mut out),
        Err(Reason::CnameChain)
    );
    // Bad rdata lengths.
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    m.extend(name_wire("a"));
    m.extend([0, 1, 0, 1]);
    rr(&mut m, &name_wire("a"), TYPE_A, 1, &[1, 2, 3]);
    assert_eq!(parse_response(&m, &mut n, &mut out), Err(Reason::BadRdata));
}

#[test]
fn refused_in_place() {
    let mut q = query(0xbeef, "Denied.Example.com", 1);
    q[11] = 1; // an OPT record, dropped from the answer
    q.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let qlen = 12 + name_wire("Denied.Example.com").len() + 4;
    let n = refuse_in_place(&mut q).unwrap();
    assert_eq!(n, qlen);
    let r = &q[..n];
    assert_eq!(&r[..4], &[0xbe, 0xef, 0x81, 0x05]);
    assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    let mut name = NameBuf::new();
    let mut out = [Addr::UNSPECIFIED; 1];
    let a = parse_response(r, &mut name, &mut out).unwrap();
    assert_eq!(a.header.rcode(), 5);
    assert_eq!(a.question.name, b"denied.example.com");
    assert_eq!(a.count, 0);
    let mut bad = vec![0u8; 5];
    assert_eq!(refuse_in_place(&mut bad), Err(Reason::Truncated));
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Tcp {
    Msg(Vec<u8>),
    Deny(Reason),
}

fn tcp_run(data: &[u8], cuts: &[usize], cap: usize) -> Vec<Tcp> {
    let mut f = TcpFramer::new();
    let mut buf = vec![0u8; cap];
    let mut out = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= data.len()).collect();
    bounds.sort_unstable();
    bounds.push(data.len());
    let mut prev = 0;
    for c in bounds {
        let mut rest = &data[prev..c];
        prev = c;
        while !rest.is_empty() {
            let (used, ev) = f.feed(&mut buf, rest);
            rest = &rest[used..];
            match ev {
                Event::NeedMore { .. } => assert!(rest.is_empty()),
                Event::Message(m) => out.push(Tcp::Msg(m.to_vec())),
                Event::Deny(r) => {
                    out.push(Tcp::Deny(r));
                    return out;
                }
            }
        }
    }
    out
}

fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut d = Vec::new();
    for m in msgs {
        d.extend((m.len() as u16).to_be_bytes());
        d.extend(m);
    }
    d
}

#[test]
fn tcp_framing_across_segments() {
    let msgs = vec![query(1, "a.example", 1), query(2, "b.example", 28)];
    let d = framed(&msgs);
    let want: Vec<Tcp> = msgs.iter().cloned().map(Tcp::Msg).collect();
    assert_eq!(tcp_run(&d, &[], 512), want);
    assert_eq!(tcp_run(&d, &(1..d.len()).collect::<Vec<_>>(), 512), want);
    assert_eq!(tcp_run(&d, &[], 10), vec![Tcp::Deny(Reason::BadTcpLength)]);
    assert_eq!(
        tcp_run(&[0, 0, 1], &[], 10),
        vec![Tcp::Deny(Reason::BadTcpLength)]
    );
}

proptest! {
    #[test]
    fn tcp_split_invariant(names in proptest::collection::vec("[a-zA-Z0-9]{1,10}(\\.[a-z]{1,5}){0,3}", 1..4),
                           cuts in proptest::collection::vec(0usize..200, 0..10)) {
        let msgs: Vec<Vec<u8>> = names.iter().enumerate().map(|(i, n)| query(i as u16, n, 1)).collect();
        let d = framed(&msgs);
        prop_assert_eq!(tcp_run(&d, &cuts, 512), tcp_run(&d, &[], 512));
        for m in &msgs {
            let mut n = NameBuf::new();
            let q = parse_query(m, &mut n).unwrap();
            prop_assert!(q.question.name.iter().all(|b| !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn arbitrary_messages_never_panic(d in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut n = NameBuf::new();
        let _ = parse_query(&d, &mut n);
        let mut out = [Addr::UNSPECIFIED; 4];
        let _ = parse_response(&d, &mut n, &mut out);
        let mut m = d.clone();
        if let Ok(len) = refuse_in_place(&mut m) {
            prop_assert!(len <= d.len());
            prop_assert!(parse_response(&m[..len], &mut n, &mut out).is_ok());
        }
    }
}
