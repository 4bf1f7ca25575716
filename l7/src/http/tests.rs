use super::*;
use proptest::prelude::*;

/// An owned view of an event, for comparing runs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Req {
        method: Vec<u8>,
        path: Vec<u8>,
        query: Option<Vec<u8>>,
        host: Option<(Vec<u8>, Option<u16>)>,
        body: Body,
    },
    Body(usize),
    Deny(Reason),
    Opaque,
}

/// Feeds `data` cut at `cuts` (sorted offsets); merges consecutive body
/// events, drops NeedMore: the result must not depend on the cuts.
fn run(data: &[u8], cuts: &[usize]) -> Vec<Ev> {
    let mut s = HttpStream::new();
    let mut buf = HeadBuf::new();
    let mut out: Vec<Ev> = Vec::new();
    let mut prev = 0;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= data.len()).collect();
    bounds.sort_unstable();
    bounds.push(data.len());
    for &c in &bounds {
        let mut rest = &data[prev..c];
        prev = c;
        while !rest.is_empty() {
            let (used, ev) = s.feed(&mut buf, rest);
            assert!(used <= rest.len());
            rest = &rest[used..];
            let e = match ev {
                Event::NeedMore { .. } => {
                    assert!(rest.is_empty());
                    continue;
                }
                Event::Request(r) => Ev::Req {
                    method: r.method.to_vec(),
                    path: r.path.to_vec(),
                    query: r.query.map(<[u8]>::to_vec),
                    host: r.host.map(|h| (h.name.to_vec(), h.port)),
                    body: r.body,
                },
                Event::Body { len } => {
                    assert!(len > 0);
                    if let Some(Ev::Body(n)) = out.last_mut() {
                        *n += len;
                        continue;
                    }
                    Ev::Body(len)
                }
                Event::Opaque => Ev::Opaque,
                Event::Deny(r) => Ev::Deny(r),
            };
            let stop = matches!(e, Ev::Deny(_));
            // Body passed before an error in the same body depends on the
            // cuts (uninspected body either way): not compared.
            if stop && matches!(out.last(), Some(Ev::Body(_))) {
                out.pop();
            }
            if !(stop && out.last() == Some(&e)) {
                out.push(e);
            }
            if stop {
                return out;
            }
        }
    }
    out
}

fn one(data: &[u8]) -> Vec<Ev> {
    run(data, &[])
}

fn bytewise(data: &[u8]) -> Vec<Ev> {
    let cuts: Vec<usize> = (1..data.len()).collect();
    run(data, &cuts)
}

fn req(method: &str, path: &str, host: &str) -> Ev {
    Ev::Req {
        method: method.into(),
        path: path.into(),
        query: None,
        host: Some((host.into(), None)),
        body: Body::None,
    }
}

fn deny_of(data: &[u8]) -> Option<Reason> {
    match one(data).last() {
        Some(Ev::Deny(r)) => Some(*r),
        _ => None,
    }
}

#[test]
fn simple_get() {
    let d = b"GET /orders?id=7 HTTP/1.1\r\nHost: Api.Example.com\r\nAccept: */*\r\n\r\n";
    let evs = one(d);
    assert_eq!(
        evs,
        vec![Ev::Req {
            method: b"GET".to_vec(),
            path: b"/orders".to_vec(),
            query: Some(b"id=7".to_vec()),
            host: Some((b"api.example.com".to_vec(), None)),
            body: Body::None,
        }]
    );
}

#[test]
fn request_fields_and_header_lookup() {
    let mut s = HttpStream::new();
    let mut buf = HeadBuf::new();
    let d = b"POST /a HTTP/1.0\r\nX-Thing:  v  \r\nContent-Length: 3\r\n\r\nabc";
    let (used, ev) = s.feed(&mut buf, d);
    let Event::Request(r) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(used, d.len() - 3);
    assert_eq!(r.version, Version::Http10);
    assert_eq!(r.known_method(), Some(Method::Post));
    assert_eq!(r.header(b"x-thing"), Some(&b"v"[..]));
    assert_eq!(r.header(b"missing"), None);
    assert_eq!(r.host, None);
    assert_eq!(r.form, TargetForm::Origin);
    assert_eq!(s.body_remaining(), Some(3));
}

#[test]
fn request_line_in_one_byte_segments() {
    let d = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(bytewise(d), vec![req("GET", "/admin", "a")]);
    // The buffer held the partial head.
    let mut s = HttpStream::new();
    let mut buf = HeadBuf::new();
    assert_eq!(
        s.feed(&mut buf, b"GET /adm"),
        (8, Event::NeedMore { buffered: 8 })
    );
    assert_eq!(buf.buffered(), 8);
}

#[test]
fn pipelined_and_keep_alive_requests_each_reported() {
    let d = b"GET /orders HTTP/1.1\r\nHost: a\r\n\r\nPOST /admin HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    let want = vec![
        req("GET", "/orders", "a"),
        Ev::Req {
            method: b"POST".to_vec(),
            path: b"/admin".to_vec(),
            query: None,
            host: Some((b"a".to_vec(), None)),
            body: Body::Length(5),
        },
        Ev::Body(5),
        req("GET", "/x", "a"),
    ];
    assert_eq!(one(d), want);
    assert_eq!(bytewise(d), want);
}

#[test]
fn evasions_normalise_to_the_real_path() {
    for (target, want) in [
        ("/%61dmin", "/admin"),
        ("/api/../admin", "/admin"),
        ("//admin", "/admin"),
        ("/./admin/.", "/admin/"),
        ("/%2e%2E/admin", "/admin"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/a%2fb", "/a%2Fb"),
        ("/a/b/../../../admin", "/admin"),
    ] {
        let d = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(one(d.as_bytes()), vec![req("GET", want, "a")], "{target}");
    }
}

#[test]
fn lowercase_method_parses_but_is_not_get() {
    let d = b"get /orders HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(one(d), vec![req("get", "/orders", "a")]);
    assert_eq!(Method::from_bytes(b"get"), None);
    assert_eq!(Method::from_bytes(b"GET"), Some(Method::Get));
}

#[test]
fn absolute_form() {
    let d = b"GET http://A.example.com:80/x/../y HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    assert_eq!(one(d), vec![req("GET", "/y", "a.example.com")]);
    let d = b"GET http://evil.example.com/admin HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    assert_eq!(deny_of(d), Some(Reason::HostMismatch));
    let d = b"GET http://a.example.com:8080/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    assert_eq!(deny_of(d), Some(Reason::HostMismatch));
    let d = b"GET http://u@a.example.com/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    assert_eq!(deny_of(d), Some(Reason::Userinfo));
    // No Host in HTTP/1.0: the target's host is the host.
    let d = b"GET https://a.example.com HTTP/1.0\r\n\r\n";
    assert_eq!(
        one(d),
        vec![Ev::Req {
            method: b"GET".to_vec(),
            path: b"/".to_vec(),
            query: None,
            host: Some((b"a.example.com".to_vec(), None)),
            body: Body::None
        }]
    );
    let d = b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(deny_of(d), Some(Reason::InvalidTarget));
}

#[test]
fn asterisk_and_authority_forms() {
    let d = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(one(d), vec![req("OPTIONS", "*", "a")]);
    assert_eq!(
        deny_of(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
        Some(Reason::InvalidTarget)
    );
    let d = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
    let evs = one(d);
    assert!(
        matches!(&evs[0], Ev::Req { host: Some((h, Some(443))), path, .. } if h == b"a" && path.is_empty())
    );
    let d = b"CONNECT b:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
    assert_eq!(deny_of(d), Some(Reason::HostMismatch));
}

#[test]
fn framing_ambiguities_are_denied() {
    let cases: &[(&[u8], Reason)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reason::ContentLengthWithTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            Reason::ContentLengthWithTransferEncoding,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Reason::DuplicateContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Reason::InvalidContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Reason::InvalidContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", Reason::InvalidContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", Reason::InvalidContentLength),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Reason::DuplicateHost),
        (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", Reason::DuplicateHost),
        (b"GET / HTTP/1.1\r\n\r\n", Reason::MissingHost),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", Reason::ObsFold),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfolded\r\n\r\n", Reason::ObsFold),
        (b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", Reason::BareCr),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", Reason::BareLf),
        (b"GET / HTTP/1.1\r\nHost: a\n\n", Reason::BareLf),
        (b"GET /\r\n\r\n", Reason::Http09),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Reason::UnsupportedVersion),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Reason::UnsupportedVersion),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", Reason::InvalidRequestLine),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidRequestLine),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidMethod),
        (b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidMethod),
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidRequestLine),
        (b"GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidTarget),
        (b"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidTarget),
        (b"GET /a\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidTarget),
        (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidTarget),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Reason::InvalidHeaderName),
        (b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", Reason::InvalidHeaderName),
        (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", Reason::InvalidHeaderLine),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", Reason::InvalidHeaderValue),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Reason::InvalidHost),
        (b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", Reason::InvalidHost),
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", Reason::InvalidHost),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reason::UnsupportedTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Reason::UnsupportedTransferEncoding),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reason::DuplicateTransferEncoding,
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Reason::TransferEncodingHttp10),
        (b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Reason::InvalidRequestLine),
    ];
    for (d, want) in cases {
        assert_eq!(deny_of(d), Some(*want), "{}", String::from_utf8_lossy(d));
        assert_eq!(
            bytewise(d).last(),
            Some(&Ev::Deny(*want)),
            "bytewise {}",
            String::from_utf8_lossy(d)
        );
    }
}

#[test]
fn transfer_encoding_chunked_is_case_insensitive_and_trimmed() {
    let d = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n";
    assert!(matches!(
        one(d)[0],
        Ev::Req {
            body: Body::Chunked,
            ..
        }
    ));
}

#[test]
fn chunked_body_with_request_line_inside_is_body() {
    let body =
        b"1b\r\nGET /admin HTTP/1.1\r\nHost: \r\n5;ext=1;x\r\nhello\r\n0\r\nTrailer: x\r\n\r\n";
    let mut d = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    d.extend_from_slice(body);
    d.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let want = vec![
        Ev::Req {
            method: b"POST".to_vec(),
            path: b"/upload".to_vec(),
            query: None,
            host: Some((b"a".to_vec(), None)),
            body: Body::Chunked,
        },
        Ev::Body(body.len()),
        req("GET", "/next", "a"),
    ];
    assert_eq!(one(&d), want);
    assert_eq!(bytewise(&d), want);
}

#[test]
fn bad_chunked_framing_is_denied() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: &[(&[u8], Reason)] = &[
        (b"x\r\n", Reason::InvalidChunk),
        (b"\r\n", Reason::InvalidChunk),
        (b"5 \r\nhello\r\n", Reason::InvalidChunk),
        (b"5\nhello\r\n", Reason::BareLf),
        (b"5\rhello\r\n", Reason::BareCr),
        (b"5\r\nhelloX\r\n", Reason::InvalidChunk),
        (b"5\r\nhello\rX", Reason::BareCr),
        (b"5\r\nhello\n", Reason::BareLf),
        (b"10000000000000000\r\n", Reason::ChunkSizeOverflow),
        (b"0\r\n folded\r\n\r\n", Reason::ObsFold),
        (b"0\r\nT: \x01\r\n\r\n", Reason::InvalidTrailer),
        (b"0\r\n\r\r", Reason::BareCr),
    ];
    for (body, want) in cases {
        let mut d = head.to_vec();
        d.extend_from_slice(body);
        assert_eq!(
            deny_of(&d),
            Some(*want),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(bytewise(&d).last(), Some(&Ev::Deny(*want)));
    }
    let mut d = head.to_vec();
    d.extend_from_slice(b"1;");
    d.extend(std::iter::repeat_n(b'a', CHUNK_LINE_MAX as usize));
    assert_eq!(deny_of(&d), Some(Reason::ChunkLineTooLong));
    let mut d = head.to_vec();
    d.extend_from_slice(b"0\r\n");
    for _ in 0..TRAILER_MAX / 8 + 1 {
        d.extend_from_slice(b"T: 1234\r\n");
    }
    assert_eq!(deny_of(&d), Some(Reason::TrailerTooLarge));
}

#[test]
fn oversized_head_is_denied() {
    let mut d = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    d.resize(HEAD_MAX + 10, b'a');
    assert_eq!(deny_of(&d), Some(Reason::HeadTooLarge));
    assert_eq!(bytewise(&d).last(), Some(&Ev::Deny(Reason::HeadTooLarge)));
    // Exactly HEAD_MAX fits.
    let mut d = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    d.resize(HEAD_MAX - 4, b'a');
    d.extend_from_slice(b"\r\n\r\n");
    assert_eq!(d.len(), HEAD_MAX);
    assert_eq!(one(&d), vec![req("GET", "/", "a")]);
    assert_eq!(run(&d, &[100, 4000]), vec![req("GET", "/", "a")]);
}

#[test]
fn deny_is_sticky() {
    let mut s = HttpStream::new();
    let mut buf = HeadBuf::new();
    let (_, ev) = s.feed(&mut buf, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(ev, Event::Deny(Reason::DuplicateHost));
    assert_eq!(
        s.feed(&mut buf, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").1,
        Event::Deny(Reason::DuplicateHost)
    );
    assert_eq!(s.denied(), Some(Reason::DuplicateHost));
}

#[test]
fn upgrade_needs_the_engine() {
    let d = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let mut s = HttpStream::new();
    let mut buf = HeadBuf::new();
    let (_, ev) = s.feed(&mut buf, d);
    assert!(matches!(ev, Event::Request(Request { upgrade: true, .. })));
    let mut s2 = s;
    assert_eq!(
        s.feed(&mut buf, b"\x81\x05hello").1,
        Event::Deny(Reason::AfterUpgrade)
    );
    s2.upgraded();
    assert_eq!(s2.feed(&mut buf, b"\x81\x05hello"), (7, Event::Opaque));
}

#[test]
fn normalize_host_cases() {
    let mut out = [0u8; HOST_MAX];
    let mut h =
        |raw: &[u8], dp| normalize_host(raw, dp, &mut out).map(|h| (h.name.to_vec(), h.port));
    assert_eq!(
        h(b"Example.COM.", 80),
        Some((b"example.com".to_vec(), None))
    );
    assert_eq!(
        h(b"example.com:80", 80),
        Some((b"example.com".to_vec(), None))
    );
    assert_eq!(
        h(b"example.com:", 80),
        Some((b"example.com".to_vec(), None))
    );
    assert_eq!(
        h(b"example.com:8080", 80),
        Some((b"example.com".to_vec(), Some(8080)))
    );
    assert_eq!(
        h(b"example.com:443", 443),
        Some((b"example.com".to_vec(), None))
    );
    assert_eq!(h(b"[::1]:8080", 80), Some((b"[::1]".to_vec(), Some(8080))));
    assert_eq!(h(b"[FE80::1]", 80), Some((b"[fe80::1]".to_vec(), None)));
    assert_eq!(h(b"10.0.0.1", 80), Some((b"10.0.0.1".to_vec(), None)));
    for bad in [
        &b""[..],
        b":80",
        b"a b",
        b"a:b",
        b"a:123456",
        b"[::1",
        b"[]",
        b"a%41",
        b"a@b",
        b"a:65536",
    ] {
        assert_eq!(h(bad, 80), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn normalize_path_cases() {
    let mut out = [0u8; 256];
    let mut n = |p: &[u8]| normalize_path(p, &mut out).map(<[u8]>::to_vec);
    for (raw, want) in [
        ("/", "/"),
        ("/a/b/c/./../../g", "/a/g"),
        ("/mid/content=5/../6", "/mid/6"),
        ("/..", "/"),
        ("/../..", "/"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/a/", "/a/"),
        ("/a//", "/a/"),
        ("///", "/"),
        ("/a/%7e%5F%2D", "/a/~_-"),
        ("/%41%5a", "/AZ"),
        ("/%2f%3a%25", "/%2F%3A%25"),
        ("/...", "/..."),
        ("/.a/..b", "/.a/..b"),
    ] {
        assert_eq!(n(raw.as_bytes()), Ok(want.as_bytes().to_vec()), "{raw}");
    }
    assert_eq!(n(b"a"), Err(PathError::NotAbsolute));
    assert_eq!(n(b""), Err(PathError::NotAbsolute));
    assert_eq!(n(b"/%4"), Err(PathError::BadPercent));
    assert_eq!(n(b"/%g1"), Err(PathError::BadPercent));
    let mut small = [0u8; 2];
    assert_eq!(normalize_path(b"/abc", &mut small), Err(PathError::TooLong));
}

#[test]
fn reason_table_is_in_repr_order() {
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
        assert!(r.as_str().starts_with("http_"));
    }
}

// ---- properties ----

fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
    let seg = prop_oneof![
        Just(b"".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"%2e".to_vec()),
        Just(b"%2E%2e".to_vec()),
        Just(b"%2f".to_vec()),
        Just(b"%61".to_vec()),
        Just(b"%7E".to_vec()),
        Just(b"%25".to_vec()),
        "[a-zA-Z0-9._~!$&'()*+,;=:@-]{1,6}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(seg, 0..10).prop_map(|segs| {
        let mut p = Vec::new();
        for s in segs {
            p.push(b'/');
            p.extend(s);
        }
        if p.is_empty() {
            p.push(b'/');
        }
        p
    })
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

proptest! {
    #[test]
    fn normalised_paths_are_normal(p in path_strategy()) {
        let mut out = [0u8; 512];
        let n = normalize_path(&p, &mut out).unwrap().to_vec();
        prop_assert!(n.starts_with(b"/"));
        prop_assert!(n.len() <= p.len());
        prop_assert!(!contains(&n, b"//"));
        prop_assert!(!contains(&n, b"/./"));
        prop_assert!(!contains(&n, b"/../"));
        prop_assert!(!n.ends_with(b"/.") && !n.ends_with(b"/.."));
        // Idempotent.
        let mut out2 = [0u8; 512];
        prop_assert_eq!(normalize_path(&n, &mut out2).unwrap(), &n[..]);
        // Only unreserved characters were decoded: every escape left is
        // of a reserved byte, in uppercase hex.
        let mut i = 0;
        while i < n.len() {
            if n[i] == b'%' {
                let v = hex_val(n[i + 1]).unwrap() * 16 + hex_val(n[i + 2]).unwrap();
                prop_assert!(!is_unreserved(v));
                prop_assert!(!n[i + 1].is_ascii_lowercase() && !n[i + 2].is_ascii_lowercase());
                i += 3;
            } else {
                i += 1;
            }
        }
        prop_assert!(!contains(&n, b"%2f") && !contains(&n, b"%2e") && !contains(&n, b"%2E"));
    }

    #[test]
    fn prefix_match_is_segment_wise(p in path_strategy(), q in path_strategy()) {
        let mut o1 = [0u8; 512];
        let mut o2 = [0u8; 512];
        let path = normalize_path(&p, &mut o1).unwrap();
        let prefix = normalize_path(&q, &mut o2).unwrap();
        if crate::pattern::path_prefix(prefix, path) {
            // Every whole segment of the prefix is the path's segment at the
            // same place.
            let ps: Vec<&[u8]> = prefix.split(|&b| b == b'/').collect();
            let ts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            let full = if prefix.ends_with(b"/") { ps.len() - 1 } else { ps.len() };
            prop_assert!(ts.len() >= full);
            prop_assert_eq!(&ps[..full], &ts[..full]);
        }
    }

    #[test]
    fn request_streams_are_split_invariant(
        reqs in proptest::collection::vec((0usize..4, path_strategy(), 0usize..3), 1..4),
        cuts in proptest::collection::vec(0usize..600, 0..12),
    ) {
        let mut d = Vec::new();
        for (m, path, body) in &reqs {
            let method = ["GET", "POST", "get", "DELETE"][*m];
            d.extend_from_slice(method.as_bytes());
            d.push(b' ');
            d.extend_from_slice(path);
            d.extend_from_slice(b" HTTP/1.1\r\nHost: Example.com\r\n");
            match body {
                0 => d.extend_from_slice(b"\r\n"),
                1 => d.extend_from_slice(b"Content-Length: 12\r\n\r\nGET / HTTP/1"),
                _ => d.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n3;x\r\nGET\r\n0\r\nT: 1\r\n\r\n"),
            }
        }
        let whole = one(&d);
        prop_assert_eq!(whole.iter().filter(|e| matches!(e, Ev::Req { .. })).count(), reqs.len());
        prop_assert_eq!(run(&d, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_are_split_invariant(
        d in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(0usize..300, 0..8),
    ) {
        prop_assert_eq!(run(&d, &cuts), one(&d));
    }
}
