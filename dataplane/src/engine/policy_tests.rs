//! The policy in the engine, between two engines wired back to back in
//! memory (as ident_tests): egress denial before the underlay, a reject
//! answered across wardens, the mutual check at the first reply, monitor
//! and learn modes, and the learn proposal loaded back as an allow-list.

use std::net::Ipv4Addr;
use std::sync::Arc;

use overlay::{ethernet, ipv4, tcp, IpProtocol, MacAddr};

use super::ident_tests::{collect, tcp_frame};
use super::test_support::SecretFile;
use super::Engine;
use crate::counters::{Counters, DropReason};
use crate::flows::Verdict;
use crate::port::{MemoryPort, Port};

const API: (MacAddr, Ipv4Addr, u16) = (
    MacAddr([2, 0, 0, 0, 1, 0x21]),
    Ipv4Addr::new(10, 1, 0, 21),
    40000,
);
const WEB: (MacAddr, Ipv4Addr, u16) = (
    MacAddr([2, 0, 0, 0, 1, 0x22]),
    Ipv4Addr::new(10, 1, 0, 22),
    40001,
);
const DB: (MacAddr, Ipv4Addr, u16) = (
    MacAddr([2, 0, 0, 0, 1, 0x23]),
    Ipv4Addr::new(10, 1, 0, 23),
    5432,
);
const CACHE: (MacAddr, Ipv4Addr, u16) = (
    MacAddr([2, 0, 0, 0, 1, 0x24]),
    Ipv4Addr::new(10, 1, 0, 24),
    6379,
);

/// Node a: api (port w1) and web (w2); node b: db (w3) and cache (w4).
fn config(me: &str, secret: &str, policy: &str) -> String {
    let (vtep, peer, peer_id, ports, remote) = if me == "node-1" {
        (
            "10.0.0.1",
            "10.0.0.2",
            "node-2",
            [("w1", API, "api"), ("w2", WEB, "web")],
            [DB, CACHE],
        )
    } else {
        (
            "10.0.0.2",
            "10.0.0.1",
            "node-1",
            [("w3", DB, "db"), ("w4", CACHE, "cache")],
            [API, WEB],
        )
    };
    let mut s = format!(
        r#"
[instance]
name = "{me}"
control_socket = "/nonexistent/{me}.sock"
[underlay]
port = "uplink"
address = "{vtep}/24"
[identity]
warden_id = "{me}"
secret_file = "{secret}"
[[identity.document]]
name = "api"
labels = {{ tier = "front" }}
[[identity.document]]
name = "web"
labels = {{ tier = "front" }}
[[identity.document]]
name = "db"
[[identity.document]]
name = "cache"
[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"
[[peer]]
address = "{peer}"
vnis = [100]
kind = "warden"
warden_id = "{peer_id}"
identities = ["api", "web", "db", "cache"]
[[vni]]
id = 100
"#
    );
    for (port, (mac, ip, _), ident) in ports {
        s += &format!(
            "[[port]]\nname = \"{port}\"\nbackend = \"tap\"\ninterface = \"{port}\"\nvni = 100\n\
             [[workload]]\nport = \"{port}\"\nmac = \"{mac}\"\nip = \"{ip}\"\nidentity = \"{ident}\"\n"
        );
    }
    for (mac, _, _) in remote {
        s += &format!("[[fdb]]\nvni = 100\nmac = \"{mac}\"\npeer = \"{peer}\"\n");
    }
    s + policy
}

/// Two wardens, each with its own policy, and their four workload ports.
struct Nodes {
    a: Engine,
    b: Engine,
    /// api, web (on a), db, cache (on b).
    wl: [MemoryPort; 4],
    _secret: SecretFile,
}

fn engine(text: &str, uplink: MemoryPort, w: [MemoryPort; 2]) -> Engine {
    let cfg = config::parse_warden(text, "policy-test.toml").unwrap_or_else(|e| panic!("{e}"));
    let counters = Arc::new(Counters::new(3, 1, 1, 1));
    let [w0, w1] = w;
    let ports: Vec<Box<dyn Port>> = vec![Box::new(uplink), Box::new(w0), Box::new(w1)];
    Engine::new(&cfg, ports, counters).expect("engine builds")
}

fn nodes(policy_a: &str, policy_b: &str) -> Nodes {
    let path = std::env::temp_dir().join(format!(
        "warden-policy-test-{}-{:?}.key",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, [0x3c; 32]).expect("write secret");
    let secret = SecretFile(path);
    let s = secret.0.display().to_string();
    let (a_up, b_up) = MemoryPort::pair("mem-a", "mem-b", 256);
    let (w1, api) = MemoryPort::pair("w1", "api", 256);
    let (w2, web) = MemoryPort::pair("w2", "web", 256);
    let (w3, db) = MemoryPort::pair("w3", "db", 256);
    let (w4, cache) = MemoryPort::pair("w4", "cache", 256);
    let a = engine(&config("node-1", &s, policy_a), a_up, [w1, w2]);
    let b = engine(&config("node-2", &s, policy_b), b_up, [w3, w4]);
    let mut n = Nodes {
        a,
        b,
        wl: [api, web, db, cache],
        _secret: secret,
    };
    for _ in 0..400 {
        n.a.force_housekeeping();
        n.b.force_housekeeping();
        n.pump();
        if n.a.st.templates[0].is_some() && n.b.st.templates[0].is_some() {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the two engines did not resolve each other");
}

impl Nodes {
    fn pump(&mut self) {
        for _ in 0..20 {
            if self.a.poll() + self.b.poll() == 0 {
                break;
            }
        }
    }
    fn drops(e: &Engine, r: DropReason) -> u64 {
        e.counters().drops[r as usize].get()
    }
    /// Frames that crossed the underlay from a to b so far.
    fn underlay_a_to_b(&self) -> u64 {
        self.b.counters().peers[0].rx_packets.get()
    }
}

fn syn(from: (MacAddr, Ipv4Addr, u16), to: (MacAddr, Ipv4Addr, u16), port: u16) -> Vec<u8> {
    tcp_frame(from, (to.0, to.1, port), tcp::Flags::SYN, 1000, &[])
}

/// The answer to [`syn`]: it acknowledges the client's ISN 1000.
fn syn_ack(from: (MacAddr, Ipv4Addr, u16), port: u16, to: (MacAddr, Ipv4Addr, u16)) -> Vec<u8> {
    let f = tcp::Flags(tcp::Flags::SYN.0 | tcp::Flags::ACK.0);
    with_ack(tcp_frame((from.0, from.1, port), to, f, 9000, &[]), 1001)
}

/// The TCP segment in an Ethernet/IPv4 frame: (src, dst, flags, seq, ack).
fn segment(f: &[u8]) -> (Ipv4Addr, Ipv4Addr, tcp::Flags, u32, u32) {
    let eth = ethernet::Frame::new_checked(f).expect("ethernet");
    let ip = ipv4::Packet::new_checked(eth.payload()).expect("ipv4");
    assert_eq!(ip.protocol(), IpProtocol::TCP);
    let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
    (
        ip.src_addr(),
        ip.dst_addr(),
        t.flags(),
        t.seq_number(),
        t.ack_number(),
    )
}

const FRONT_OUT: &str = r#"
[policy]
[[policy.set]]
name = "front"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [5432]
action = "allow"
[[policy.set.rule]]
from = ["web"]
to = ["cache"]
proto = "tcp"
ports = [7000]
action = "reject"
[[policy.set.rule]]
from = ["api"]
to = ["cache"]
proto = "tcp"
ports = [7001]
action = "allow"
"#;

#[test]
fn egress_denied_flow_never_reaches_the_underlay() {
    let mut n = nodes(FRONT_OUT, FRONT_OUT);
    let before = n.underlay_a_to_b();
    // web may open nothing on 5432: decided at its own warden.
    n.wl[1].send(&syn(WEB, DB, 5432));
    n.pump();
    assert_eq!(Nodes::drops(&n.a, DropReason::PolicyDenied), 1);
    assert_eq!(n.underlay_a_to_b(), before, "nothing crossed the underlay");
    assert!(collect(&n.wl[2]).is_empty());
    let denial = n.a.st.denials.last().expect("the denial is recorded");
    assert_eq!(denial.verdict, Verdict::Deny);
    assert_eq!(denial.rule, None, "decided by the default");
    // api -> db on 5432 passes: provisional at a, decided for db at b.
    n.wl[0].send(&syn(API, DB, 5432));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
    assert_eq!(n.a.counters().policy.provisional.get(), 1);
    let hits = |e: &Engine, r: usize| e.counters().policy.rule_hits[r].get();
    assert_eq!(
        (hits(&n.a, 0), hits(&n.b, 0)),
        (1, 1),
        "rule front#1 at both ends"
    );
}

#[test]
fn reject_at_the_source_answers_with_a_reset_on_the_local_port() {
    let mut n = nodes(FRONT_OUT, FRONT_OUT);
    n.wl[1].send(&syn(WEB, CACHE, 7000));
    n.pump();
    let got = collect(&n.wl[1]);
    assert_eq!(got.len(), 1, "one answer to web");
    let (src, dst, flags, _, ack) = segment(&got[0]);
    assert_eq!((src, dst), (CACHE.1, WEB.1));
    assert!(flags.contains(tcp::Flags::RST) && flags.contains(tcp::Flags::ACK));
    assert_eq!(ack, 1001);
    assert_eq!(Nodes::drops(&n.a, DropReason::PolicyRejected), 1);
    assert_eq!(n.a.counters().policy.reject_answers.get(), 1);
    assert!(collect(&n.wl[3]).is_empty());
}

#[test]
fn reject_at_the_destination_reaches_the_remote_opener_stamped() {
    // a lets api -> cache:7000 out; b rejects it.
    let a = r#"
[policy]
[[policy.set]]
name = "out"
[[policy.set.rule]]
from = ["api"]
to = ["cache"]
proto = "tcp"
ports = [7000]
action = "allow"
"#;
    let b = r#"
[policy]
default_action = "reject"
"#;
    let mut n = nodes(a, b);
    n.wl[0].send(&syn(API, CACHE, 7000));
    n.pump();
    assert!(collect(&n.wl[3]).is_empty(), "cache never sees the SYN");
    assert_eq!(Nodes::drops(&n.b, DropReason::PolicyRejected), 1);
    let got = collect(&n.wl[0]);
    assert_eq!(
        got.len(),
        1,
        "the RST crossed back to api: {:?}",
        n.a.counters()
    );
    let (src, dst, flags, seq, ack) = segment(&got[0]);
    assert_eq!((src, dst, seq, ack), (CACHE.1, API.1, 0, 1001));
    assert!(flags.contains(tcp::Flags::RST));
    assert_eq!(n.b.counters().identity_stamped.get(), 1, "vouched for by b");
    assert_eq!(n.a.counters().drops_total(), 0);
}

#[test]
fn a_responder_the_opener_may_not_reach_is_cut_at_its_first_reply() {
    // a: api may reach cache on 5432 (so api -> ?:5432 leaves a
    // provisionally) but not db; b lets api reach db on 5432.
    let a = r#"
[policy]
[[policy.set]]
name = "out"
[[policy.set.rule]]
from = ["api"]
to = ["cache"]
proto = "tcp"
ports = [5432]
action = "allow"
"#;
    let mut n = nodes(a, FRONT_OUT);
    n.wl[0].send(&syn(API, DB, 5432));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1, "b admits the SYN");
    let fwd = n.a.flows().iter().find(|(_, e)| e.recheck).map(|(_, e)| *e);
    assert!(fwd.is_some(), "a holds a provisional entry");
    n.wl[2].send(&syn_ack(DB, 5432, API));
    n.pump();
    assert!(collect(&n.wl[0]).is_empty(), "api never sees db's answer");
    assert_eq!(Nodes::drops(&n.a, DropReason::PolicyResponderDenied), 1);
    assert_eq!(n.a.counters().policy.rechecked.get(), 1);
    assert_eq!(n.a.flows().len(), 0, "the forward entry is gone");
    let denial = n.a.st.denials.last().expect("recorded");
    assert_eq!(denial.verdict, Verdict::Deny);
}

#[test]
fn monitor_forwards_what_it_would_deny_and_counts_it() {
    let p = r#"
[policy]
default = "monitor"
"#;
    let mut n = nodes(p, p);
    n.wl[1].send(&syn(WEB, DB, 5432));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1, "forwarded");
    n.wl[2].send(&syn_ack(DB, 5432, WEB));
    n.pump();
    assert_eq!(collect(&n.wl[1]).len(), 1, "the reply too");
    assert_eq!(
        n.a.counters().drops_total() + n.b.counters().drops_total(),
        0
    );
    assert_eq!(n.b.counters().policy.would_deny.get(), 1);
    assert!(n.a.counters().policy.would_deny.get() >= 1);
    let e =
        n.b.flows()
            .iter()
            .find(|(_, e)| e.verdict == Verdict::WouldDeny)
            .map(|(_, e)| *e);
    assert!(e.is_some(), "b's entry says would_deny");
}

#[test]
fn learn_records_flows_and_its_proposal_admits_exactly_them() {
    let p = r#"
[policy]
default = "learn"
"#;
    let mut n = nodes(p, p);
    n.wl[0].send(&syn(API, DB, 5432));
    n.pump();
    n.wl[2].send(&syn_ack(DB, 5432, API));
    n.pump();
    n.wl[1].send(&syn(WEB, CACHE, 7000));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
    assert_eq!(collect(&n.wl[3]).len(), 1);
    // b knew both destinations: two records by identity.
    let cfg = config::parse_warden(&config("node-2", "/x", p), "b.toml").expect("valid");
    let ids: Vec<u32> = cfg.documents.iter().map(|d| d.id().0).collect();
    let doc = |id: identity::IdentityId| ids.iter().position(|&x| x == id.0).map(|i| i as u32);
    let mut flows = Vec::new();
    for r in n.b.st.learn.iter() {
        let end = |e: crate::learn::LearnEnd| match e {
            crate::learn::LearnEnd::Identity(i) => doc(i).map(policy::Peer::Identity),
            crate::learn::LearnEnd::Addr(a) => Some(policy::Peer::Addr(a)),
            crate::learn::LearnEnd::Unknown => None,
        };
        flows.push(policy::LearnedFlow {
            src: end(r.src).expect("src"),
            dst: end(r.dst).expect("dst"),
            proto: r.protocol,
            port: r.port,
            l7: None,
        });
    }
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert!(flows.iter().all(|f| matches!(
        (f.src, f.dst),
        (policy::Peer::Identity(_), policy::Peer::Identity(_))
    )));
    // a recorded api -> db when db's verified SYN-ACK told it who db is.
    assert!(n.a.st.learn.iter().any(|r| matches!(
        (r.src, r.dst),
        (
            crate::learn::LearnEnd::Identity(_),
            crate::learn::LearnEnd::Identity(_)
        )
    )));
    // The proposal, loaded in enforce on b: the same flows pass, a new one
    // does not.
    let proposal = policy::propose(&flows, &cfg.documents, "learned");
    let enforce = format!("\n[policy]\n{proposal}");
    let mut m = nodes(&enforce, &enforce);
    m.wl[0].send(&syn(API, DB, 5432));
    m.wl[1].send(&syn(WEB, CACHE, 7000));
    m.pump();
    assert_eq!(collect(&m.wl[2]).len(), 1, "api -> db passes: {proposal}");
    assert_eq!(collect(&m.wl[3]).len(), 1, "web -> cache passes");
    m.wl[1].send(&syn(WEB, DB, 5432));
    m.pump();
    assert!(
        collect(&m.wl[2]).is_empty(),
        "a flow never learned is denied"
    );
    assert_eq!(Nodes::drops(&m.a, DropReason::PolicyDenied), 1);
}

#[test]
fn reject_answers_are_budgeted_per_second() {
    let mut n = nodes(FRONT_OUT, FRONT_OUT);
    let budget = u64::from(super::REJECT_ANSWERS_PER_SEC);
    // More refused SYNs than two seconds' budget (a second may turn over).
    let total = 2 * budget + 200;
    let mut answered = 0;
    for chunk in 0..total.div_ceil(200) {
        for i in 0..200u16 {
            let sport = 1024 + (chunk as u16) * 200 + i;
            let f = tcp_frame(
                (WEB.0, WEB.1, sport),
                (CACHE.0, CACHE.1, 7000),
                tcp::Flags::SYN,
                1,
                &[],
            );
            n.wl[1].send(&f);
        }
        n.pump();
        answered += collect(&n.wl[1]).len() as u64;
    }
    let c = &n.a.counters().policy;
    assert_eq!(c.reject_answers.get(), answered);
    assert!(answered <= 2 * budget, "{answered} answers");
    assert!(c.reject_answers_limited.get() >= total - 2 * budget);
    assert_eq!(Nodes::drops(&n.a, DropReason::PolicyRejected), total);
}

const HTTP_ORDERS: &str = r#"
[policy]
[[policy.set]]
name = "web"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [8080]
action = "allow"
http = [{ methods = ["GET"], paths = ["/orders", "/orders/*"] }]
"#;

/// api's warden lets api reach db:8080 at L4 only, so these tests see the
/// destination's warden inspect (the opener's own inspection has its own
/// test below).
const L4_8080: &str = r#"
[policy]
[[policy.set]]
name = "out"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [8080]
action = "allow"
"#;

/// A connection api:40000 -> db:8080 through both engines, handshake done;
/// returns the next client sequence number.
fn http_connection(n: &mut Nodes) -> u32 {
    connection_to(n, 8080)
}

/// A connection api:40000 -> db:`port`, as [`http_connection`].
fn connection_to(n: &mut Nodes, port: u16) -> u32 {
    let db = (DB.0, DB.1, port);
    n.wl[0].send(&tcp_frame(API, db, tcp::Flags::SYN, 1000, &[]));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1, "the SYN reaches db");
    n.wl[2].send(&syn_ack(DB, port, API));
    n.pump();
    assert_eq!(collect(&n.wl[0]).len(), 1, "the SYN-ACK reaches api");
    1001
}

/// A client data segment; it acknowledges the server's SYN-ACK (9000).
fn data(seq: u32, bytes: &[u8]) -> Vec<u8> {
    data_to(8080, seq, bytes)
}

/// A client data segment to db:`port`.
fn data_to(port: u16, seq: u32, bytes: &[u8]) -> Vec<u8> {
    let f = tcp::Flags(tcp::Flags::ACK.0 | tcp::Flags::PSH.0);
    with_ack(tcp_frame(API, (DB.0, DB.1, port), f, seq, bytes), 9001)
}

/// `frame` (Ethernet/IPv4/TCP, no options) with ACK number `ack`.
fn with_ack(mut frame: Vec<u8>, ack: u32) -> Vec<u8> {
    let (src, dst) = {
        let ip = ipv4::Packet::new_checked(&frame[14..]).expect("ipv4");
        (ip.src_addr(), ip.dst_addr())
    };
    let mut t = tcp::Packet::new_unchecked(&mut frame[34..]);
    t.set_ack_number(ack);
    t.fill_checksum(&overlay::PseudoHeader::V4 { src, dst });
    frame
}

/// The payload of a captured TCP frame.
fn payload(f: &[u8]) -> Vec<u8> {
    let eth = ethernet::Frame::new_checked(f).expect("ethernet");
    let ip = ipv4::Packet::new_checked(eth.payload()).expect("ipv4");
    tcp::Packet::new_checked(ip.payload())
        .expect("tcp")
        .payload()
        .to_vec()
}

#[test]
fn http_requests_are_decided_one_by_one_and_a_denied_one_resets_both_ends() {
    let mut n = nodes(L4_8080, HTTP_ORDERS);
    let mut seq = http_connection(&mut n);
    let get = b"GET /orders/7 HTTP/1.1\r\nHost: db\r\n\r\n";
    n.wl[0].send(&data(seq, get));
    n.pump();
    let got = collect(&n.wl[2]);
    assert_eq!(got.len(), 1, "the allowed request reaches db");
    assert_eq!(payload(&got[0]), get.to_vec(), "byte for byte");
    seq += get.len() as u32;
    // The same connection, a request the clause does not admit.
    let post = b"POST /admin HTTP/1.1\r\nHost: db\r\nContent-Length: 0\r\n\r\n";
    n.wl[0].send(&data(seq, post));
    n.pump();
    let at_db = collect(&n.wl[2]);
    assert_eq!(at_db.len(), 1, "db gets only a RST: {at_db:?}");
    let (_, _, flags, rst_seq, _) = segment(&at_db[0]);
    assert_eq!(
        (flags, rst_seq),
        (tcp::Flags::RST, seq),
        "at the first byte db has not seen"
    );
    assert!(payload(&at_db[0]).is_empty());
    let at_api = collect(&n.wl[0]);
    assert_eq!(at_api.len(), 1, "api gets a RST");
    assert!(segment(&at_api[0]).2.contains(tcp::Flags::RST));
    assert_eq!(Nodes::drops(&n.b, DropReason::L7Denied), 1);
    // The connection stays cut.
    n.wl[0].send(&data(seq, get));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty());
    assert_eq!(n.b.counters().policy.l7_requests.get(), 2);
}

#[test]
fn a_split_head_is_held_until_complete_and_out_of_order_bytes_never_pass() {
    let mut n = nodes(L4_8080, HTTP_ORDERS);
    let seq = http_connection(&mut n);
    let head = b"GET /orders/../orders/9 HTTP/1.1\r\nHost: db\r\n\r\n";
    let (a, b) = head.split_at(9);
    // The second half first: a gap, dropped.
    n.wl[0].send(&data(seq + a.len() as u32, b));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty());
    assert_eq!(Nodes::drops(&n.b, DropReason::L7OutOfOrder), 1);
    // The first half: held, nothing reaches db yet.
    n.wl[0].send(&data(seq, a));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty(), "an incomplete head is held");
    assert_eq!(n.b.counters().policy.l7_held.get(), 1);
    // The second half again: the head is complete and allowed (normalised
    // to /orders/9); both segments go, in order.
    n.wl[0].send(&data(seq + a.len() as u32, b));
    n.pump();
    let got = collect(&n.wl[2]);
    assert_eq!(got.len(), 2);
    assert_eq!([payload(&got[0]), payload(&got[1])].concat(), head.to_vec());
    // A retransmission of what db already has passes (its TCP drops it).
    n.wl[0].send(&data(seq, a));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
}

#[test]
fn smuggling_and_an_unnormalisable_path_are_refused() {
    for bad in [
        &b"POST /orders HTTP/1.1\r\nHost: db\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        &b"GET /%61dmin HTTP/1.1\r\nHost: db\r\n\r\n"[..],
        &b"get /orders HTTP/1.1\r\nHost: db\r\n\r\n"[..],
    ] {
        let mut n = nodes(L4_8080, HTTP_ORDERS);
        let seq = http_connection(&mut n);
        n.wl[0].send(&data(seq, bad));
        n.pump();
        let at_db = collect(&n.wl[2]);
        assert!(
            at_db.iter().all(|f| payload(f).is_empty()),
            "no byte of {:?} reaches db",
            String::from_utf8_lossy(bad)
        );
        let cut = Nodes::drops(&n.b, DropReason::L7Denied) + Nodes::drops(&n.b, DropReason::L7Refused);
        assert_eq!(cut, 1, "{:?}", String::from_utf8_lossy(bad));
    }
}

/// A TLS record carrying a ClientHello with server name `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let mut name = vec![0];
    name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    name.extend_from_slice(sni.as_bytes());
    let mut ext = (name.len() as u16).to_be_bytes().to_vec();
    ext.extend(name);
    let mut b = vec![0x03, 0x03];
    b.extend([7u8; 32]);
    b.push(0);
    b.extend([0, 2, 0x13, 0x01, 1, 0]);
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    exts.extend(ext);
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    let mut msg = vec![1];
    msg.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
    msg.extend(b);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    rec.extend(msg);
    rec
}

#[test]
fn tls_server_names_are_decided_at_the_client_hello() {
    let p = r#"
[policy]
[[policy.set]]
name = "tls"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [8080]
action = "allow"
tls = [{ server_names = ["*.orders.example"] }]
"#;
    for (sni, allowed) in [("eu.orders.example", true), ("admin.example", false)] {
        let mut n = nodes(L4_8080, p);
        let seq = http_connection(&mut n);
        let hello = client_hello(sni);
        // Split over two segments: held, then decided.
        let (a, b) = hello.split_at(20);
        n.wl[0].send(&data(seq, a));
        n.pump();
        assert!(collect(&n.wl[2]).is_empty(), "{sni}: held until complete");
        n.wl[0].send(&data(seq + a.len() as u32, b));
        n.pump();
        let got: Vec<u8> = collect(&n.wl[2]).iter().flat_map(|f| payload(f)).collect();
        if allowed {
            assert_eq!(got, hello, "{sni}: the hello reaches db whole");
            // After the hello the connection is opaque.
            n.wl[0].send(&data(seq + hello.len() as u32, &[23, 3, 3, 0, 1, 0]));
            n.pump();
            assert_eq!(collect(&n.wl[2]).len(), 1);
        } else {
            assert!(got.is_empty(), "{sni}: no byte of the hello reaches db");
            assert_eq!(Nodes::drops(&n.b, DropReason::L7Denied), 1, "{sni}");
        }
    }
}

/// A DNS query datagram api:40000 -> db:53 for `name` (A IN).
fn dns_query(name: &str, id: u16) -> Vec<u8> {
    udp_frame(dns_message(name, id))
}

/// A DNS query message for `name` (type A).
fn dns_message(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A DNS query as it goes over TCP: its length, then the message.
fn dns_tcp_message(name: &str, id: u16) -> Vec<u8> {
    let m = dns_message(name, id);
    let mut out = (m.len() as u16).to_be_bytes().to_vec();
    out.extend(m);
    out
}

const DNS_TCP: &str = r#"
[policy]
[[policy.set]]
name = "dns"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [53]
action = "allow"
dns = [{ names = ["*.svc.example"] }]
"#;

#[test]
fn dns_over_tcp_decides_every_query_of_the_stream_even_split() {
    let mut n = nodes(DNS_TCP, DNS_TCP);
    let mut seq = connection_to(&mut n, 53);
    // Two allowed queries in one segment (pipelined): both reach db.
    let two = [
        dns_tcp_message("orders.svc.example", 1),
        dns_tcp_message("Users.SVC.example", 2),
    ]
    .concat();
    n.wl[0].send(&data_to(53, seq, &two));
    n.pump();
    let got = collect(&n.wl[2]);
    assert_eq!(got.len(), 1, "{:?}", n.b.counters());
    assert_eq!(payload(&got[0]), two);
    seq += two.len() as u32;
    // A query split in three: the length's first byte, then the rest of
    // the length with part of the message (held), then the end.
    let q = dns_tcp_message("pay.svc.example", 3);
    let parts = [&q[..1], &q[1..9], &q[9..]];
    let mut at_db = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        n.wl[0].send(&data_to(53, seq, part));
        n.pump();
        seq += part.len() as u32;
        let now = collect(&n.wl[2]);
        if k == 1 {
            assert!(now.is_empty(), "a partial query is held");
        }
        at_db.extend(now.iter().flat_map(|f| payload(f)));
    }
    assert_eq!(at_db, q, "the whole query, in order, once complete");
    assert!(n.b.counters().policy.l7_held.get() >= 1);
    assert_eq!(n.b.counters().policy.l7_requests.get(), 3);
}

#[test]
fn a_denied_or_malformed_query_over_tcp_cuts_the_connection() {
    // A denied name after an allowed one in the same segment: none of the
    // segment reaches db, both ends get a RST.
    let mut n = nodes(DNS_TCP, DNS_TCP);
    let seq = connection_to(&mut n, 53);
    let both = [
        dns_tcp_message("orders.svc.example", 1),
        dns_tcp_message("evil.example", 2),
    ]
    .concat();
    n.wl[0].send(&data_to(53, seq, &both));
    n.pump();
    let at_db = collect(&n.wl[2]);
    assert!(at_db.iter().all(|f| payload(f).is_empty()), "{at_db:?}");
    assert!(collect(&n.wl[0])
        .iter()
        .any(|f| segment(f).2.contains(tcp::Flags::RST)));
    let denied =
        Nodes::drops(&n.a, DropReason::L7Denied) + Nodes::drops(&n.b, DropReason::L7Denied);
    assert_eq!(denied, 1);
    // A length prefix past what a query needs, and a pointer loop: refused.
    let mut looped = vec![
        0, 0, 0, 3, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
    ];
    let len = (looped.len() - 2) as u16;
    looped[..2].copy_from_slice(&len.to_be_bytes());
    // 2,000 bytes announced: a DNS header follows, but no query needs that
    // many (the buffer takes DNS_QUERY_MAX).
    let mut long = vec![0x07, 0xd0, 0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    long.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
    for bad in [long, looped] {
        let mut n = nodes(DNS_TCP, DNS_TCP);
        let seq = connection_to(&mut n, 53);
        n.wl[0].send(&data_to(53, seq, &bad));
        n.pump();
        assert!(collect(&n.wl[2]).iter().all(|f| payload(f).is_empty()));
        let refused =
            Nodes::drops(&n.a, DropReason::L7Refused) + Nodes::drops(&n.b, DropReason::L7Refused);
        assert_eq!(refused, 1, "{bad:?}");
    }
}

fn udp_frame(payload: Vec<u8>) -> Vec<u8> {
    let mut udp = 40000u16.to_be_bytes().to_vec();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend(payload);
    let mut f = vec![0u8; 14 + 20];
    f[0..6].copy_from_slice(&DB.0 .0);
    f[6..12].copy_from_slice(&API.0 .0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let repr = ipv4::Repr {
        src_addr: API.1,
        dst_addr: DB.1,
        protocol: IpProtocol::UDP,
        payload_len: udp.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    };
    f.resize(14 + 20 + udp.len(), 0);
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut f[14..]))
        .expect("sized");
    f[34..].copy_from_slice(&udp);
    f
}

#[test]
fn dns_names_are_decided_per_query_and_refused_ones_answered_refused() {
    let p = r#"
[policy]
[[policy.set]]
name = "dns"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "udp"
ports = [53]
action = "allow"
dns = [{ names = ["*.svc.example"] }]
"#;
    let mut n = nodes(p, p);
    n.wl[0].send(&dns_query("Orders.SVC.example", 1));
    n.pump();
    assert_eq!(
        collect(&n.wl[2]).len(),
        1,
        "an allowed name (0x20 mixed case) reaches db"
    );
    n.wl[0].send(&dns_query("evil.example", 2));
    n.pump();
    assert!(
        collect(&n.wl[2]).is_empty(),
        "a refused name never reaches db"
    );
    let answers = collect(&n.wl[0]);
    assert_eq!(answers.len(), 1, "api gets an answer: {:?}", n.a.counters());
    let eth = ethernet::Frame::new_checked(&answers[0][..]).unwrap();
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    let msg = &ip.payload()[8..];
    assert_eq!(
        (&msg[..2], msg[3] & 0x0f),
        (&[0, 2][..], 5),
        "REFUSED, same id"
    );
    assert_eq!(Nodes::drops(&n.b, DropReason::L7Denied), 1);
    // A compression pointer that points at itself: dropped, counted.
    let mut bad = vec![0, 3, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    n.wl[0].send(&udp_frame(bad));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty());
    // The REFUSED answer confirmed the flow at api's warden too, which now
    // inspects it as well: the malformed query stops there.
    assert_eq!(Nodes::drops(&n.a, DropReason::L7Refused), 1);
}

#[test]
fn ssh_on_an_http_only_rule_is_reset() {
    let mut n = nodes(L4_8080, HTTP_ORDERS);
    let seq = http_connection(&mut n);
    n.wl[0].send(&data(seq, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
    n.pump();
    assert!(
        collect(&n.wl[2]).iter().all(|f| payload(f).is_empty()),
        "no byte of the banner reaches db"
    );
    assert!(collect(&n.wl[0])
        .iter()
        .any(|f| segment(f).2.contains(tcp::Flags::RST)));
    assert_eq!(Nodes::drops(&n.b, DropReason::L7Denied), 1);
}

/// A DNS answer db:53 -> api:40000 for `name`: one A record.
fn dns_answer(name: &str, addr: Ipv4Addr, ttl: u32) -> Vec<u8> {
    let mut q = vec![0, 9, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    q.extend_from_slice(&ttl.to_be_bytes());
    q.extend_from_slice(&[0, 4]);
    q.extend_from_slice(&addr.octets());
    let mut f = udp_frame(q);
    // Turn api -> db:53 into db:53 -> api:40000.
    let (macs, rest) = f.split_at_mut(12);
    let (d, s) = macs.split_at_mut(6);
    d.swap_with_slice(s);
    let ip = &mut rest[2..];
    let (a, b) = ip[12..20].split_at_mut(4);
    a.swap_with_slice(b);
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = overlay::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let (sp, dp) = ip[20..24].split_at_mut(2);
    sp.swap_with_slice(dp);
    f
}

#[test]
fn fqdn_egress_admits_the_answered_address_and_no_other() {
    let p = r#"
[policy]
[[policy.set]]
name = "egress"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "udp"
ports = [53]
action = "allow"
[[policy.set.rule]]
from = ["api"]
to = [{ fqdn = "*.example.com" }]
proto = "tcp"
ports = [443]
action = "allow"
"#;
    let mut n = nodes(p, p);
    let out = Ipv4Addr::new(203, 0, 113, 5);
    let other = Ipv4Addr::new(203, 0, 113, 6);
    let to = |ip| syn(API, (DB.0, ip, 0), 443);
    // Before any answer: denied at api's warden.
    n.wl[0].send(&to(out));
    n.pump();
    assert_eq!(Nodes::drops(&n.a, DropReason::PolicyDenied), 1);
    // api asks db (its DNS server) and gets an answer.
    n.wl[0].send(&dns_query("api.example.com", 9));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
    n.wl[2].send(&dns_answer("api.example.com", out, 60));
    n.pump();
    assert_eq!(collect(&n.wl[0]).len(), 1, "the answer reaches api");
    assert_eq!(n.a.counters().policy.fqdn_learned.get(), 1);
    // Now the answered address is reachable on 443; another one is not.
    let before = n.underlay_a_to_b();
    n.wl[0].send(&to(out));
    n.pump();
    assert_eq!(n.underlay_a_to_b(), before + 1, "the SYN left api's node");
    n.wl[0].send(&to(other));
    n.pump();
    assert_eq!(n.underlay_a_to_b(), before + 1);
    assert_eq!(Nodes::drops(&n.a, DropReason::PolicyDenied), 2);
}

#[test]
fn the_openers_warden_inspects_once_the_reply_confirms_an_l7_rule() {
    // a (api's warden) requires the server name; b lets anything to 443.
    let a = r#"
[policy]
[[policy.set]]
name = "out"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [443]
action = "allow"
tls = [{ server_names = ["db.example"] }]
"#;
    let b = r#"
[policy]
[[policy.set]]
name = "in"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [443]
action = "allow"
"#;
    for (sni, allowed) in [("db.example", true), ("exfil.example", false)] {
        let mut n = nodes(a, b);
        let db = (DB.0, DB.1, 443);
        n.wl[0].send(&tcp_frame(API, db, tcp::Flags::SYN, 1000, &[]));
        n.pump();
        assert_eq!(collect(&n.wl[2]).len(), 1);
        n.wl[2].send(&syn_ack(DB, 443, API));
        n.pump();
        assert_eq!(collect(&n.wl[0]).len(), 1);
        let f = tcp::Flags(tcp::Flags::ACK.0 | tcp::Flags::PSH.0);
        n.wl[0].send(&tcp_frame(API, db, f, 1001, &client_hello(sni)));
        n.pump();
        let got = collect(&n.wl[2]);
        if allowed {
            assert_eq!(got.len(), 1, "{sni}");
        } else {
            assert!(got.iter().all(|f| payload(f).is_empty()), "{sni}: cut at a");
            assert_eq!(Nodes::drops(&n.a, DropReason::L7Denied), 1, "{sni}");
            assert_eq!(
                n.b.counters().policy.l7_requests.get(),
                0,
                "b never inspected"
            );
        }
    }
}

#[test]
fn a_head_stalled_behind_the_clients_window_is_cut_not_left_hanging() {
    let mut n = nodes(L4_8080, HTTP_ORDERS);
    let seq = http_connection(&mut n);
    // The first bytes of a head, held; the client, never acknowledged,
    // sends them again and again.
    n.wl[0].send(&data(seq, b"GET /ord"));
    n.pump();
    n.wl[0].send(&data(seq, b"GET /ord"));
    n.pump();
    assert!(collect(&n.wl[0]).is_empty(), "one may be a loss");
    n.wl[0].send(&data(seq, b"GET /ord"));
    n.pump();
    assert!(collect(&n.wl[2]).iter().all(|f| payload(f).is_empty()));
    assert!(collect(&n.wl[0])
        .iter()
        .any(|f| segment(f).2.contains(tcp::Flags::RST)));
    assert_eq!(Nodes::drops(&n.b, DropReason::L7Refused), 1);
}

#[test]
fn the_clients_reset_follows_the_servers_answer() {
    let mut n = nodes(L4_8080, HTTP_ORDERS);
    let seq = http_connection(&mut n);
    let get = b"GET /orders/1 HTTP/1.1\r\nHost: db\r\n\r\n";
    n.wl[0].send(&data(seq, get));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
    // db answers with 100 bytes (9001..9101).
    let f = tcp::Flags(tcp::Flags::ACK.0 | tcp::Flags::PSH.0);
    let answer = tcp_frame((DB.0, DB.1, 8080), API, f, 9001, &[b'x'; 100]);
    n.wl[2].send(&answer);
    n.pump();
    assert_eq!(collect(&n.wl[0]).len(), 1);
    // The client's next request was sent before it saw the answer.
    let post = b"POST /admin HTTP/1.1\r\nHost: db\r\nContent-Length: 0\r\n\r\n";
    n.wl[0].send(&data(seq + get.len() as u32, post));
    n.pump();
    let rsts: Vec<u32> = collect(&n.wl[0]).iter().map(|f| segment(f).3).collect();
    assert!(
        rsts.contains(&9101),
        "one at the server's next byte: {rsts:?}"
    );
    assert!(rsts.contains(&9001), "one at the segment's ACK: {rsts:?}");
}

#[test]
fn a_syn_mid_stream_cannot_move_the_inspected_stream() {
    let mut n = nodes(L4_8080, HTTP_ORDERS);
    let seq = http_connection(&mut n);
    // A SYN claiming the stream starts far ahead: if warden followed it,
    // the bytes db expects (at `seq`) would look old and pass uninspected.
    let db = (DB.0, DB.1, 8080);
    n.wl[0].send(&tcp_frame(
        API,
        db,
        tcp::Flags::SYN,
        seq.wrapping_add(100_000),
        &[],
    ));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty(), "the stray SYN is dropped");
    n.wl[0].send(&data(
        seq,
        b"POST /admin HTTP/1.1\r\nHost: db\r\nContent-Length: 0\r\n\r\n",
    ));
    n.pump();
    assert!(
        collect(&n.wl[2]).iter().all(|f| payload(f).is_empty()),
        "still inspected, still denied"
    );
    assert_eq!(Nodes::drops(&n.b, DropReason::L7Denied), 1);
}

#[test]
fn a_monitor_set_lets_refused_l7_through_and_counts_it() {
    let monitor = HTTP_ORDERS.replace("name = \"web\"", "name = \"web\"\nmode = \"monitor\"");
    let mut n = nodes(L4_8080, &monitor);
    let seq = http_connection(&mut n);
    let smuggle = b"POST /orders HTTP/1.1\r\nHost: db\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    n.wl[0].send(&data(seq, smuggle));
    n.pump();
    let got = collect(&n.wl[2]);
    assert_eq!(got.len(), 1, "forwarded, not cut");
    assert_eq!(payload(&got[0]), smuggle.to_vec());
    let p = &n.b.counters().policy;
    assert_eq!((p.l7_would_refuse.get(), p.l7_cut.get()), (1, 0));
    assert!(p.would_deny.get() >= 1);
    // From then on the flow is not inspected: a denied path passes too.
    let admin = b"GET /admin HTTP/1.1\r\nHost: db\r\n\r\n";
    n.wl[0].send(&data(seq + smuggle.len() as u32, admin));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
    assert_eq!(Nodes::drops(&n.b, DropReason::L7Refused), 0);
}

#[test]
fn learn_records_http_requests_and_its_proposal_admits_exactly_them() {
    let observe = r#"
[policy]
[[policy.set]]
name = "observe"
mode = "learn"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [8080]
action = "allow"
http = [{ paths = ["/**"] }]
"#;
    let mut n = nodes(L4_8080, observe);
    let mut seq = http_connection(&mut n);
    for req in [
        &b"GET /orders/1 HTTP/1.1\r\nHost: db\r\n\r\n"[..],
        &b"POST /orders HTTP/1.1\r\nHost: db\r\nContent-Length: 0\r\n\r\n"[..],
    ] {
        n.wl[0].send(&data(seq, req));
        n.pump();
        assert_eq!(collect(&n.wl[2]).len(), 1, "learn forwards");
        seq += req.len() as u32;
    }
    let cfg = config::parse_warden(&config("node-2", "/x", observe), "b.toml").expect("valid");
    let ids: Vec<u32> = cfg.documents.iter().map(|d| d.id().0).collect();
    let flows: Vec<policy::LearnedFlow> =
        n.b.st
            .learn
            .iter()
            .filter_map(|r| crate::learn::LearnedRow::from(r).to_learned_flow(&ids))
            .collect();
    assert!(
        flows.iter().any(|f| f.l7
            == Some(policy::LearnedL7::Http {
                method: "POST".into(),
                path: "/orders".into()
            })),
        "{flows:?}"
    );
    let proposal = policy::propose(&flows, &cfg.documents, "learned");
    assert!(proposal.contains("http"), "{proposal}");
    // In enforce: the recorded requests pass, another is denied.
    let enforce = format!("\n[policy]\n{proposal}");
    let mut m = nodes(L4_8080, &enforce);
    let seq = http_connection(&mut m);
    let get = b"GET /orders/1 HTTP/1.1\r\nHost: db\r\n\r\n";
    m.wl[0].send(&data(seq, get));
    m.pump();
    assert_eq!(
        collect(&m.wl[2]).len(),
        1,
        "a recorded request passes: {proposal}"
    );
    m.wl[0].send(&data(
        seq + get.len() as u32,
        b"GET /admin HTTP/1.1\r\nHost: db\r\n\r\n",
    ));
    m.pump();
    assert!(collect(&m.wl[2]).iter().all(|f| payload(f).is_empty()));
    assert_eq!(Nodes::drops(&m.b, DropReason::L7Denied), 1);
}

// --- Hot reload: live flows decided again by the new policy.

const BEFORE_RELOAD: &str = r#"
[policy]
[[policy.set]]
name = "shop"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "tcp"
ports = [5432]
action = "allow"
[[policy.set.rule]]
from = ["api"]
to = ["db"]
proto = "udp"
ports = [53]
action = "allow"
[[policy.set.rule]]
from = ["api"]
to = ["cache"]
proto = "tcp"
ports = [7001]
action = "allow"
"#;

/// The same, without db: only the cache rule is left (now shop#1).
const AFTER_RELOAD: &str = r#"
[policy]
[[policy.set]]
name = "shop"
[[policy.set.rule]]
from = ["api"]
to = ["cache"]
proto = "tcp"
ports = [7001]
action = "allow"
"#;

impl Nodes {
    /// Reload node b from `old` to `new` policy, everything else the same.
    fn reload_b(&mut self, old: &str, new: &str) -> Result<super::ReloadReport, String> {
        let s = self._secret.0.display().to_string();
        let parse = |p: &str| {
            config::parse_warden(&config("node-2", &s, p), "reload-test.toml")
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let (old, new) = (parse(old), parse(new));
        let (o, n) = (
            crate::stats::rule_names(old.policy.as_ref()),
            crate::stats::rule_names(new.policy.as_ref()),
        );
        let map: Vec<Option<usize>> = o.iter().map(|r| n.iter().position(|x| x == r)).collect();
        let tables = super::Tables::build(&new).map_err(|e| e.to_string())?;
        self.b.apply(Arc::new(tables), &map)
    }
}

/// A TCP data segment from `from` to `to` carrying `bytes`.
fn segment_from(
    from: (MacAddr, Ipv4Addr, u16),
    to: (MacAddr, Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    bytes: &[u8],
) -> Vec<u8> {
    let f = tcp::Flags(tcp::Flags::ACK.0 | tcp::Flags::PSH.0);
    with_ack(tcp_frame(from, to, f, seq, bytes), ack)
}

#[test]
fn a_reload_resets_revoked_tcp_stops_revoked_udp_and_keeps_the_rest() {
    let mut n = nodes(BEFORE_RELOAD, BEFORE_RELOAD);
    let seq = connection_to(&mut n, 5432);
    n.wl[0].send(&data_to(5432, seq, b"hello"));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1, "allowed before the reload");
    n.wl[0].send(&udp_frame(b"query".to_vec()));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1, "udp allowed before the reload");
    // api -> cache:7001, allowed before and after.
    let cache = (CACHE.0, CACHE.1, 7001);
    n.wl[0].send(&tcp_frame(API, cache, tcp::Flags::SYN, 1000, &[]));
    n.pump();
    assert_eq!(collect(&n.wl[3]).len(), 1);
    n.wl[3].send(&syn_ack(CACHE, 7001, API));
    n.pump();
    assert_eq!(collect(&n.wl[0]).len(), 1);
    let hits_before = n.b.counters().policy.rule_hits[2].get();
    assert_eq!(hits_before, 1, "shop#3 decided the cache flow");

    let report = n.reload_b(BEFORE_RELOAD, AFTER_RELOAD).expect("reload");
    assert_eq!((report.flows_checked, report.revoked), (3, 2), "{report:?}");
    assert_eq!(
        n.b.counters().policy.rule_hits[0].get(),
        hits_before,
        "the cache rule's count follows it to shop#1"
    );

    // The next client segment of the revoked TCP flow: db gets a RST at
    // that segment's sequence number, api a RST at its ACK.
    let seq = seq + 5;
    n.wl[0].send(&data_to(5432, seq, b"more"));
    n.pump();
    let at_db = collect(&n.wl[2]);
    assert_eq!(at_db.len(), 1, "only a RST reaches db: {at_db:?}");
    let (_, _, flags, rst_seq, _) = segment(&at_db[0]);
    assert_eq!((flags, rst_seq), (tcp::Flags::RST, seq));
    assert!(payload(&at_db[0]).is_empty());
    let at_api = collect(&n.wl[0]);
    assert_eq!(at_api.len(), 1, "api gets a RST");
    let (_, _, flags, rst_seq, _) = segment(&at_api[0]);
    assert_eq!(
        (flags, rst_seq),
        (tcp::Flags::RST, 9001),
        "at the segment's ACK"
    );
    // The server's side of it is revoked too.
    n.wl[2].send(&segment_from((DB.0, DB.1, 5432), API, 9001, seq, b"late"));
    n.pump();
    let rst_only = |frames: Vec<Vec<u8>>| {
        !frames.is_empty()
            && frames
                .iter()
                .all(|f| segment(f).2.contains(tcp::Flags::RST) && payload(f).is_empty())
    };
    assert!(rst_only(collect(&n.wl[0])), "api gets a RST, not the data");
    assert!(rst_only(collect(&n.wl[2])), "db gets a RST back");
    // UDP: stops.
    n.wl[0].send(&udp_frame(b"again".to_vec()));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty(), "the revoked UDP flow stops");
    assert_eq!(Nodes::drops(&n.b, DropReason::PolicyRevoked), 3);
    // The cache flow goes on.
    let bytes = b"still allowed";
    n.wl[0].send(&segment_from(API, cache, 1001, 9001, bytes));
    n.pump();
    let got = collect(&n.wl[3]);
    assert_eq!(got.len(), 1);
    assert_eq!(payload(&got[0]), bytes.to_vec());
    // A new flow to db is decided by the new policy: denied.
    n.wl[0].send(&tcp_frame(
        API,
        (DB.0, DB.1, 5432),
        tcp::Flags::SYN,
        5000,
        &[],
    ));
    n.pump();
    assert!(collect(&n.wl[2]).is_empty());
}

#[test]
fn a_reload_that_needs_a_restart_is_refused_and_changes_nothing() {
    let mut n = nodes(BEFORE_RELOAD, BEFORE_RELOAD);
    let seq = connection_to(&mut n, 5432);
    let s = n._secret.0.display().to_string();
    // Another peer address: the set of peers changed.
    let text = config("node-2", &s, AFTER_RELOAD).replace("10.0.0.1", "10.0.0.9");
    let cfg = config::parse_warden(&text, "restart.toml").unwrap_or_else(|e| panic!("{e}"));
    let tables = super::Tables::build(&cfg).expect("tables");
    let err = n.b.apply(Arc::new(tables), &[]).expect_err("refused");
    assert!(err.contains("peers") && err.contains("restart"), "{err}");
    n.wl[0].send(&data_to(5432, seq, b"hello"));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1, "the old policy still runs");
}

#[test]
fn a_reload_that_rebinds_a_workload_decides_its_flows_for_its_new_identity() {
    let mut n = nodes(BEFORE_RELOAD, BEFORE_RELOAD);
    let seq = connection_to(&mut n, 5432);
    n.wl[0].send(&data_to(5432, seq, b"hello"));
    n.pump();
    assert_eq!(collect(&n.wl[2]).len(), 1);
    // db's port is now bound to the identity "cache": api -> cache:5432 is
    // not in the policy.
    let s = n._secret.0.display().to_string();
    let text = config("node-2", &s, BEFORE_RELOAD).replacen(
        "ip = \"10.1.0.23\"\nidentity = \"db\"",
        "ip = \"10.1.0.23\"\nidentity = \"cache\"",
        1,
    );
    assert!(
        text.contains("ip = \"10.1.0.23\"\nidentity = \"cache\""),
        "{text}"
    );
    let cfg = config::parse_warden(&text, "rebind.toml").unwrap_or_else(|e| panic!("{e}"));
    let tables = super::Tables::build(&cfg).expect("tables");
    let map: Vec<Option<usize>> = (0..3).map(Some).collect();
    let report = n.b.apply(Arc::new(tables), &map).expect("reload");
    assert_eq!(report.revoked, 1, "{report:?}");
    n.wl[0].send(&data_to(5432, seq + 5, b"more"));
    n.pump();
    assert!(
        collect(&n.wl[2]).iter().all(|f| payload(f).is_empty()),
        "only a RST reaches db"
    );
    assert_eq!(Nodes::drops(&n.b, DropReason::PolicyRevoked), 1);
}
