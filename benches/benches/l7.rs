//! The l7 crate's parsers, per message, against the crates they were
//! measured with:
//!
//! - `http/*`: one request head through `HttpStream::feed` (scan for the
//!   end, parse, framing checks, path and host normalisation) plus the
//!   rule match (method set, path prefix, host); `httparse/*` is
//!   `httparse::Request::parse` alone on the same bytes (no framing rules,
//!   no normalisation, no match).
//! - `tls/*`: SNI and ALPN from a 517-byte ClientHello (curl-like: padding,
//!   X25519 key share) through `HelloStream::feed`, in one record and split
//!   over four records and segments; `tls-parser` is rusticata's
//!   `parse_tls_plaintext` + `parse_tls_client_hello_extensions` on the
//!   one-record form (allocates its Vecs).
//! - `dns/*`: `parse_query` on a 44-byte query with an EDNS OPT record,
//!   `parse_response` on a CNAME + 2 A + AAAA answer, `refuse_in_place`.
//!
//! `cargo bench -p warden-benches --bench l7 -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use l7::dns::{self, Addr, NameBuf};
use l7::http::{Event, HeadBuf, HttpStream, Method};
use l7::pattern::{HostPattern, MethodSet, NamePattern, PathPattern};
use l7::tls::{self, HelloBuf, HelloStream};

const CURL: &[u8] = b"GET /api/v1/orders/12345?expand=items HTTP/1.1\r\nHost: orders.prod.svc.cluster.local:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

const BROWSER: &[u8] = b"POST /api/v1/orders/../orders/%61dd HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Content-Type: application/json\r\n\
Content-Length: 2\r\n\
Origin: https://shop.example.com\r\n\
Connection: keep-alive\r\n\
Referer: https://shop.example.com/cart\r\n\
Cookie: session=7f3a9c2b1e8d4f6a0b5c3d2e1f0a9b8c; theme=dark; lang=en\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-origin\r\n\r\n";

fn http(c: &mut Criterion) {
    let methods = MethodSet::EMPTY.with(Method::Get).with(Method::Post);
    let path = PathPattern::new(PathPattern::Prefix(b"/api/v1/orders")).unwrap();
    let host = HostPattern {
        name: NamePattern::new(b"*.example.com").unwrap(),
        port: None,
    };
    let host2 = HostPattern {
        name: NamePattern::new(b"orders.prod.svc.cluster.local").unwrap(),
        port: Some(8080),
    };
    let mut g = c.benchmark_group("http");
    for (name, head) in [("curl", CURL), ("browser", BROWSER)] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        let mut buf = HeadBuf::new();
        g.bench_function(format!("parse_normalise_match/{name}"), |b| {
            b.iter(|| {
                let mut s = HttpStream::new();
                let (_, ev) = s.feed(&mut buf, black_box(head));
                let Event::Request(r) = ev else {
                    panic!("{ev:?}")
                };
                let h = r.host.unwrap();
                methods.contains(r.method)
                    && path.matches(r.path)
                    && (host.matches(&h, 80) || host2.matches(&h, 80))
            })
        });
        g.bench_function(format!("one_byte_segments/{name}"), |b| {
            b.iter(|| {
                let mut s = HttpStream::new();
                let mut n = 0;
                for seg in black_box(head).chunks(1) {
                    if let (_, Event::Request(r)) = s.feed(&mut buf, seg) {
                        n += r.path.len();
                    }
                }
                n
            })
        });
        g.bench_function(format!("httparse/{name}"), |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                let st = req.parse(black_box(head)).unwrap();
                (st.is_complete(), req.path.map(str::len))
            })
        });
    }
    g.finish();
}

fn ext(t: u16, body: &[u8]) -> Vec<u8> {
    let mut e = t.to_be_bytes().to_vec();
    e.extend((body.len() as u16).to_be_bytes());
    e.extend_from_slice(body);
    e
}

/// A curl-like ClientHello: 31 suites, SNI, ALPN, groups, sig algs,
/// supported_versions, an X25519 key share, padding to 512 bytes.
fn client_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([0x5a; 32]);
    body.push(32);
    body.extend([0xa5; 32]);
    body.extend(62u16.to_be_bytes());
    for i in 0..31u16 {
        body.extend((0x1301 + i).to_be_bytes());
    }
    body.extend([1, 0]);
    let name = b"orders.prod.svc.cluster.local";
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0);
    sni.extend((name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut exts = ext(0, &sni);
    exts.extend(ext(16, b"\x00\x0c\x02h2\x08http/1.1"));
    exts.extend(ext(10, b"\x00\x08\x00\x1d\x00\x17\x00\x18\x00\x19"));
    exts.extend(ext(
        13,
        b"\x00\x0c\x04\x03\x05\x03\x06\x03\x08\x04\x08\x05\x08\x06",
    ));
    exts.extend(ext(43, b"\x04\x03\x04\x03\x03"));
    let mut ks = vec![0, 36, 0, 0x1d, 0, 32];
    ks.extend([0x42; 32]);
    exts.extend(ext(51, &ks));
    exts.extend(ext(23, b""));
    exts.extend(ext(11, b"\x01\x00"));
    let pad = 512usize.saturating_sub(body.len() + exts.len() + 2 + 4 + 4);
    exts.extend(ext(21, &vec![0; pad]));
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut m = vec![1];
    m.extend(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend(body);
    m
}

fn records(msg: &[u8], frag: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in msg.chunks(frag) {
        out.extend([22, 3, 1]);
        out.extend((c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

fn tls_bench(c: &mut Criterion) {
    let m = client_hello();
    let one = records(&m, 16384);
    let split = records(&m, m.len() / 4 + 1);
    let mut g = c.benchmark_group("tls");
    g.throughput(Throughput::Bytes(one.len() as u64));
    let mut buf = HelloBuf::new();
    let pat = NamePattern::new(b"*.svc.cluster.local").unwrap();
    g.bench_function("sni_one_record", |b| {
        b.iter(|| {
            let mut s = HelloStream::new();
            let (_, ev) = s.feed(&mut buf, black_box(&one));
            let tls::Event::Hello(h) = ev else {
                panic!("{ev:?}")
            };
            pat.matches(h.server_name().unwrap()) && h.alpn.contains(b"h2")
        })
    });
    g.bench_function("sni_four_records_four_segments", |b| {
        b.iter(|| {
            let mut s = HelloStream::new();
            let mut ok = false;
            for seg in black_box(&split).chunks(split.len() / 4 + 1) {
                if let (_, tls::Event::Hello(h)) = s.feed(&mut buf, seg) {
                    ok = pat.matches(h.server_name().unwrap());
                }
            }
            ok
        })
    });
    g.bench_function("tls-parser", |b| {
        b.iter(|| {
            let (_, rec) = tls_parser::parse_tls_plaintext(black_box(&one)).unwrap();
            let mut found = 0;
            for msg in &rec.msg {
                if let tls_parser::TlsMessage::Handshake(
                    tls_parser::TlsMessageHandshake::ClientHello(ch),
                ) = msg
                {
                    let (_, exts) =
                        tls_parser::parse_tls_client_hello_extensions(ch.ext.unwrap()).unwrap();
                    for e in exts {
                        if let tls_parser::TlsExtension::SNI(names) = e {
                            found += names.len();
                        }
                    }
                }
            }
            found
        })
    });
    g.finish();
}

fn dns_bench(c: &mut Criterion) {
    fn name(n: &str) -> Vec<u8> {
        let mut w = Vec::new();
        for l in n.split('.') {
            w.push(l.len() as u8);
            w.extend_from_slice(l.as_bytes());
        }
        w.push(0);
        w
    }
    let mut q = vec![0x12, 0x34, 1, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend(name("api.Example.com"));
    q.extend([0, 1, 0, 1]);
    q.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let mut r = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 0];
    r.extend(name("api.example.com"));
    r.extend([0, 1, 0, 1]);
    let rr = |m: &mut Vec<u8>, owner: &[u8], ty: u16, rdata: &[u8]| {
        m.extend_from_slice(owner);
        m.extend(ty.to_be_bytes());
        m.extend([0, 1, 0, 0, 1, 0x2c]);
        m.extend((rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    };
    let target_at = (r.len() + 12) as u8;
    rr(&mut r, &[0xc0, 12], 5, &name("edge.cdn.example.net"));
    rr(&mut r, &[0xc0, target_at], 1, &[192, 0, 2, 1]);
    rr(&mut r, &[0xc0, target_at], 1, &[192, 0, 2, 2]);
    rr(
        &mut r,
        &[0xc0, target_at],
        28,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let pat = NamePattern::new(b"*.example.com").unwrap();
    let mut g = c.benchmark_group("dns");
    let mut n = NameBuf::new();
    g.bench_function("parse_query_match", |b| {
        b.iter(|| {
            pat.matches(
                dns::parse_query(black_box(&q), &mut n)
                    .unwrap()
                    .question
                    .name,
            )
        })
    });
    let mut out = [Addr::UNSPECIFIED; 8];
    g.bench_function("parse_response_cname_3_addrs", |b| {
        b.iter(|| {
            dns::parse_response(black_box(&r), &mut n, &mut out)
                .unwrap()
                .count
        })
    });
    let mut m = q.clone();
    g.bench_function("refuse_in_place", |b| {
        b.iter(|| {
            m.copy_from_slice(&q);
            dns::refuse_in_place(black_box(&mut m)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, http, tls_bench, dns_bench);
criterion_main!(benches);
