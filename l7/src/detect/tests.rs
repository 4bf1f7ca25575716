use super::*;
use proptest::prelude::*;

fn tcp(port: u16, client: &[u8], server: &[u8]) -> Detection {
    detect(Transport::Tcp, port, client, server)
}

#[test]
fn http_by_known_method() {
    assert_eq!(
        tcp(80, b"GET / HTTP/1.1\r\n", b""),
        Detection::Known(Proto::Http)
    );
    assert_eq!(
        tcp(8080, b"OPTIONS * HTTP/1.1", b""),
        Detection::Known(Proto::Http)
    );
    assert_eq!(tcp(80, b"GE", b""), Detection::NeedMore);
    assert_eq!(tcp(80, b"GET", b""), Detection::NeedMore);
    assert_eq!(
        tcp(80, b"get / HTTP/1.1\r\n", b""),
        Detection::Known(Proto::Unknown)
    );
    assert_eq!(tcp(80, b"GETX", b""), Detection::Known(Proto::Unknown));
}

#[test]
fn tls_client_hello() {
    assert_eq!(
        tcp(443, &[0x16, 3, 1, 2, 0, 1, 0, 1, 0xfc], b""),
        Detection::Known(Proto::Tls)
    );
    assert_eq!(tcp(443, &[0x16, 3, 1], b""), Detection::NeedMore);
    assert_eq!(
        tcp(443, &[0x16, 3, 1, 0, 5, 2], b""),
        Detection::Known(Proto::Unknown)
    );
    assert_eq!(
        tcp(443, &[0x16, 3, 9], b""),
        Detection::Known(Proto::Unknown)
    );
}

#[test]
fn ssh_from_either_side() {
    assert_eq!(
        tcp(443, b"", b"SSH-2.0-OpenSSH_9.2\r\n"),
        Detection::Known(Proto::Ssh)
    );
    assert_eq!(
        tcp(80, b"SSH-2.0-OpenSSH_9.2\r\n", b""),
        Detection::Known(Proto::Ssh)
    );
    assert_eq!(tcp(80, b"", b"SSH"), Detection::NeedMore);
    assert_eq!(
        tcp(80, b"", b"220 smtp ready\r\n"),
        Detection::Known(Proto::Unknown)
    );
    // The server's banner decides even when the client bytes look like HTTP.
    let mut d = Detector::new(Transport::Tcp, 80);
    assert_eq!(d.feed_server(b"SSH-2.0-x"), Detection::Known(Proto::Ssh));
    assert_eq!(
        d.feed_client(b"GET / HTTP/1.1\r\n"),
        Detection::Known(Proto::Ssh)
    );
}

#[test]
fn dns_on_port_53() {
    let q = crate::dns::tests::query(1, "example.com", 1);
    assert_eq!(
        detect(Transport::Udp, 53, &q, b""),
        Detection::Known(Proto::Dns)
    );
    assert_eq!(
        detect(Transport::Udp, 5353, &q, b""),
        Detection::Known(Proto::Unknown)
    );
    assert_eq!(
        detect(Transport::Udp, 53, b"garbage", b""),
        Detection::Known(Proto::Unknown)
    );
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(&q);
    assert_eq!(tcp(53, &framed, b""), Detection::Known(Proto::Dns));
    assert_eq!(tcp(53, &framed[..5], b""), Detection::NeedMore);
    assert_eq!(tcp(80, &framed, b""), Detection::Known(Proto::Unknown));
}

#[test]
fn bounded_and_sticky() {
    let mut d = Detector::new(Transport::Tcp, 80);
    assert_eq!(d.feed_client(b"\x16"), Detection::NeedMore);
    assert_eq!(d.feed_client(b"\x03"), Detection::NeedMore);
    assert_eq!(d.feed_client(b"\x03"), Detection::NeedMore);
    assert_eq!(d.feed_client(b"\x00\x10\x01"), Detection::Known(Proto::Tls));
    assert_eq!(d.feed_client(b"GET "), Detection::Known(Proto::Tls));
    assert_eq!(d.result(), Detection::Known(Proto::Tls));
    let mut d = Detector::new(Transport::Tcp, 80);
    assert_eq!(d.feed_client(&[0xff; 40]), Detection::Known(Proto::Unknown));
}

proptest! {
    #[test]
    fn split_invariant(client in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..40),
                       cuts in proptest::collection::vec(0usize..40, 0..6), port in prop_oneof![Just(53u16), Just(80)]) {
        let whole = detect(Transport::Tcp, port, &client, b"");
        let mut d = Detector::new(Transport::Tcp, port);
        let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c <= client.len()).collect();
        bounds.sort_unstable();
        bounds.push(client.len());
        let mut prev = 0;
        let mut last = d.result();
        for c in bounds {
            last = d.feed_client(&client[prev..c]);
            prev = c;
        }
        prop_assert_eq!(last, whole);
        if client.len() >= DETECT_MAX {
            prop_assert_ne!(whole, Detection::NeedMore);
        }
    }
}
