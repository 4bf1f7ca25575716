//! Identity between two engines whose underlay ports are wired to each
//! other in memory: stamping, verification, stripping, the policy at both
//! ends, announce-only packets and re-stamping, byte for byte.

use std::net::Ipv4Addr;
use std::sync::Arc;

use overlay::{ethernet, ipv4, tcp, EtherType, IpProtocol, MacAddr, PseudoHeader};

use super::test_support::SecretFile;
use super::Engine;
use crate::counters::{Counters, DropReason};
use crate::port::{MemoryPort, Port};

const API_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x21]);
const DB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x23]);
const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
const DB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);

/// One warden of the pair.
struct Side {
    me: &'static str,
    vtep: &'static str,
    peer: &'static str,
    peer_id: &'static str,
    port: &'static str,
    mac: MacAddr,
    ip: Ipv4Addr,
    ident: &'static str,
    fdb_mac: MacAddr,
    /// This warden's `[[policy.set.rule]]` tables.
    rules: &'static str,
}

/// api may open flows to db. Both ends decide: node-1 as api's flows
/// leave (db not yet known there: provisional, then again at db's reply),
/// node-2 as they arrive.
const API_TO_DB: &str = r#"[[policy.set.rule]]
from = ["api"]
to = ["db"]
action = "allow"
"#;

/// node-2's rules: api -> db, and db's own flows toward api let out
/// (provisionally) so that node-1, api's warden, is the one that decides
/// them: it has no rule for db -> api and denies.
const NODE2_RULES: &str = r#"[[policy.set.rule]]
from = ["api"]
to = ["db"]
action = "allow"
[[policy.set.rule]]
from = ["db"]
to = ["api"]
action = "allow"
"#;

fn config(side: &Side, secret: &str) -> String {
    let Side {
        me,
        vtep,
        peer,
        peer_id,
        port,
        mac,
        ip,
        ident,
        fdb_mac,
        rules,
    } = side;
    format!(
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
restamp_secs = 5
[[identity.document]]
name = "api"
[[identity.document]]
name = "db"
[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"
[[port]]
name = "{port}"
backend = "tap"
interface = "{port}"
vni = 100
[[peer]]
address = "{peer}"
vnis = [100]
kind = "warden"
warden_id = "{peer_id}"
identities = ["api", "db"]
[[vni]]
id = 100
[[fdb]]
vni = 100
mac = "{fdb_mac}"
peer = "{peer}"
[[workload]]
port = "{port}"
mac = "{mac}"
ip = "{ip}"
identity = "{ident}"
[[policy.set]]
name = "pair"
{rules}"#
    )
}

struct Pair {
    a: Engine,
    b: Engine,
    api: MemoryPort,
    db: MemoryPort,
    _secret: SecretFile,
}

fn engine(text: &str, uplink: MemoryPort, access: MemoryPort) -> Engine {
    let cfg = config::parse_warden(text, "ident-test.toml").expect("valid test config");
    engine_from(&cfg, uplink, access)
}

fn pair() -> Pair {
    let path = std::env::temp_dir().join(format!(
        "warden-ident-test-{}-{:?}.key",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, [0x5a; 32]).expect("write secret");
    let secret = SecretFile(path);
    let s = secret.0.display().to_string();
    let (a_up, b_up) = MemoryPort::pair("mem-a", "mem-b", 256);
    let (a_w, api) = MemoryPort::pair("w1", "api", 256);
    let (b_w, db) = MemoryPort::pair("w3", "db", 256);
    let a = engine(
        &config(
            &Side {
                me: "node-1",
                vtep: "10.0.0.1",
                peer: "10.0.0.2",
                peer_id: "node-2",
                port: "w1",
                mac: API_MAC,
                ip: API,
                ident: "api",
                fdb_mac: DB_MAC,
                rules: API_TO_DB,
            },
            &s,
        ),
        a_up,
        a_w,
    );
    let b = engine(
        &config(
            &Side {
                me: "node-2",
                vtep: "10.0.0.2",
                peer: "10.0.0.1",
                peer_id: "node-1",
                port: "w3",
                mac: DB_MAC,
                ip: DB,
                ident: "db",
                fdb_mac: API_MAC,
                rules: NODE2_RULES,
            },
            &s,
        ),
        b_up,
        b_w,
    );
    let mut p = Pair {
        a,
        b,
        api,
        db,
        _secret: secret,
    };
    for _ in 0..400 {
        p.a.force_housekeeping();
        p.b.force_housekeeping();
        p.pump();
        if p.a.st.templates[0].is_some() && p.b.st.templates[0].is_some() {
            return p;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the two engines did not resolve each other");
}

impl Pair {
    /// Let both engines run until nothing moves.
    fn pump(&mut self) {
        for _ in 0..20 {
            let n = self.a.poll() + self.b.poll();
            if n == 0 {
                break;
            }
        }
    }

    fn drop_count(e: &Engine, r: DropReason) -> u64 {
        e.counters().drops[r as usize].get()
    }
}

/// Ethernet/IPv4/TCP with `payload`, checksums right.
pub(super) fn tcp_frame(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    flags: tcp::Flags,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let tcp_len = 20 + payload.len();
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    {
        let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(dst.0);
        eth.set_src_addr(src.0);
        eth.set_ethertype(EtherType::IPV4);
    }
    let repr = ipv4::Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        protocol: IpProtocol::TCP,
        payload_len: tcp_len,
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    };
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut f[14..]))
        .expect("sized");
    let seg = &mut f[34..];
    seg[0..2].copy_from_slice(&src.2.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.2.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = (flags.0 & 0xff) as u8;
    seg[14..16].copy_from_slice(&65535u16.to_be_bytes());
    seg[20..].copy_from_slice(payload);
    let mut t = tcp::Packet::new_unchecked(&mut *seg);
    t.fill_checksum(&PseudoHeader::V4 {
        src: src.1,
        dst: dst.1,
    });
    f
}

pub(super) fn collect(p: &MemoryPort) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    p.recv_all(|f| out.push(f.to_vec()));
    out
}

const API_EP: (MacAddr, Ipv4Addr, u16) = (API_MAC, API, 40000);
const DB_EP: (MacAddr, Ipv4Addr, u16) = (DB_MAC, DB, 5432);

#[test]
fn syn_is_stamped_verified_stripped_and_delivered_byte_exact() {
    let mut p = pair();
    let syn = tcp_frame(API_EP, DB_EP, tcp::Flags::SYN, 1000, &[]);
    p.api.send(&syn);
    p.pump();
    assert_eq!(
        collect(&p.db),
        vec![syn.clone()],
        "db gets the SYN exactly as sent"
    );
    assert_eq!(p.a.counters().identity_stamped.get(), 1);
    assert_eq!(p.b.counters().drops_total(), 0);
    // api's warden let it out before knowing who 10.1.0.23 is.
    assert_eq!(p.a.counters().policy.provisional.get(), 1);
    // The SYN-ACK goes back stamped with db's identity and reaches api.
    let syn_ack = tcp_frame(
        DB_EP,
        API_EP,
        tcp::Flags(tcp::Flags::SYN.0 | tcp::Flags::ACK.0),
        7000,
        &[],
    );
    p.db.send(&syn_ack);
    p.pump();
    assert_eq!(collect(&p.api), vec![syn_ack]);
    assert_eq!(p.b.counters().identity_stamped.get(), 1);
    // ... and decided again when db's warden vouched for the responder.
    assert_eq!(p.a.counters().policy.rechecked.get(), 1);
    assert_eq!(p.a.counters().drops_total(), 0);
    // Mid-flow data passes unstamped.
    let data = tcp_frame(API_EP, DB_EP, tcp::Flags::ACK, 1001, b"hello");
    p.api.send(&data);
    p.pump();
    assert_eq!(collect(&p.db), vec![data]);
    assert_eq!(
        p.a.counters().identity_stamped.get(),
        1,
        "no stamp mid-flow within restamp_secs"
    );
    let flows = p.b.flows();
    assert!(flows
        .iter()
        .any(|(_, e)| e.key.flow.src == std::net::IpAddr::V4(API)
            && e.source == crate::flows::IdentitySource::Header
            && e.verdict == crate::flows::Verdict::Allow));
}

#[test]
fn denied_direction_and_unknown_flow_without_header_are_dropped() {
    let mut p = pair();
    // db -> api is not allowed by api's warden (only api -> db), and it is
    // no reply. db's warden lets it out provisionally; api's denies it.
    let syn = tcp_frame(DB_EP, API_EP, tcp::Flags::SYN, 1, &[]);
    p.db.send(&syn);
    p.pump();
    assert!(collect(&p.api).is_empty());
    assert_eq!(Pair::drop_count(&p.a, DropReason::PolicyDenied), 1);
    assert_eq!(Pair::drop_count(&p.b, DropReason::PolicyDenied), 0);
    assert_eq!(p.b.counters().policy.provisional.get(), 1);
    // api's port is bound: a frame from another MAC on it (here with api's
    // address) never leaves a, so it never reaches b unstamped.
    let stray = tcp_frame(
        (MacAddr([2, 0, 0, 0, 9, 9]), API, 40001),
        DB_EP,
        tcp::Flags::ACK,
        5,
        b"x",
    );
    p.api.send(&stray);
    p.pump();
    assert!(collect(&p.db).is_empty());
    assert_eq!(Pair::drop_count(&p.a, DropReason::PortSecurityMac), 1);
    assert_eq!(Pair::drop_count(&p.b, DropReason::IdentityMissing), 0);
}

#[test]
fn over_mtu_restamp_sends_an_announce_first_and_the_frame_unstamped() {
    let mut p = pair();
    p.api
        .send(&tcp_frame(API_EP, DB_EP, tcp::Flags::SYN, 1000, &[]));
    p.pump();
    collect(&p.db);
    // After restamp_secs, a full-size segment is due for a stamp that does
    // not fit the inner MTU (1450 IP bytes): an announce-only packet goes first.
    p.a.advance_clock(6);
    p.b.advance_clock(6);
    let big = tcp_frame(API_EP, DB_EP, tcp::Flags::ACK, 1001, &[0xab; 1410]);
    assert_eq!(big.len(), 14 + 1450);
    p.api.send(&big);
    p.pump();
    assert_eq!(
        collect(&p.db),
        vec![big],
        "the segment arrives whole; the announce is consumed"
    );
    assert_eq!(
        p.a.counters().identity_stamped.get(),
        1,
        "the SYN; the announce is not an in-frame stamp"
    );
    assert_eq!(p.b.counters().drops_total(), 0);
    let now = p.b.now_s();
    assert!(now >= 6);
    let refreshed =
        p.b.flows().iter().any(|(_, e)| {
            e.key.flow.src == std::net::IpAddr::V4(API) && e.last_header == Some(now)
        });
    assert!(refreshed, "b verified the announce at second {now}");
}

/// A warden whose only peer is a plain kernel VTEP (10.0.0.11): GBP group
/// 100 from it is "batch"; inner sources in 10.1.0.64/26 are "legacy" by
/// address map; anything else is unauthenticated. db admits batch and
/// legacy, nothing admits unauthenticated.
const VTEP_PEER_CONFIG: &str = r#"
[instance]
name = "vtep-peer"
control_socket = "/nonexistent/vtep-peer.sock"
[underlay]
port = "uplink"
address = "10.0.0.1/24"
[identity]
warden_id = "node-1"
[[identity.document]]
name = "db"
[[identity.document]]
name = "batch"
[[identity.document]]
name = "legacy"
[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"
[[port]]
name = "w3"
backend = "tap"
interface = "w3"
vni = 100
[[peer]]
address = "10.0.0.11"
vnis = [100]
gbp = [{ group = 100, identity = "batch" }]
[[vni]]
id = 100
[[fdb]]
vni = 100
mac = "02:00:00:00:01:23"
port = "w3"
[[workload]]
port = "w3"
mac = "02:00:00:00:01:23"
ip = "10.1.0.23"
identity = "db"
[[identity_map]]
peer = "10.0.0.11"
cidr = "10.1.0.64/26"
identity = "legacy"
[[policy.set]]
name = "db"
[[policy.set.rule]]
from = ["batch", "legacy"]
to = ["db"]
action = "allow"
"#;

fn vxlan_from_vtep(inner: &[u8], gbp: Option<u16>) -> Vec<u8> {
    let t = overlay::OuterTemplate::new(&overlay::OuterParams {
        src_mac: MacAddr([2, 0xaa, 0, 0, 0, 0x11]),
        dst_mac: MacAddr([2, 0x77, 0, 0, 0, 1]),
        src_ip: Ipv4Addr::new(10, 0, 0, 11),
        dst_ip: Ipv4Addr::new(10, 0, 0, 1),
        vni: overlay::Vni::new_masked(100),
        dst_port: 4789,
        ttl: 64,
        gbp: gbp.map(|group| overlay::Gbp {
            dont_learn: false,
            policy_applied: false,
            group,
        }),
    });
    let mut f = vec![0u8; overlay::OUTER_LEN + inner.len()];
    t.write_into(&mut f, inner.len(), 50000)
        .expect("header fits");
    f[overlay::OUTER_LEN..].copy_from_slice(inner);
    f
}

#[test]
fn weaker_sources_gbp_and_address_map_are_named_and_unauthenticated_is_denied() {
    let cfg = config::parse_warden(VTEP_PEER_CONFIG, "vtep-peer.toml").expect("valid");
    let (mut up, wire) = MemoryPort::pair("mem0", "wire", 64);
    up.set_mac(MacAddr([2, 0x77, 0, 0, 0, 1]));
    let (w3, db) = MemoryPort::pair("w3", "db", 64);
    let mut eng = engine_from(&cfg, up, w3);
    let from = |ip: [u8; 4], port: u16| (MacAddr([2, 0, 0, 0, 7, ip[3]]), Ipv4Addr::from(ip), port);
    let cases = [
        (from([10, 1, 0, 5], 1001), Some(100), "gbp", true),
        (from([10, 1, 0, 70], 1002), None, "address_map", true),
        (from([10, 1, 0, 5], 1003), None, "unauthenticated", false),
        // A GBP group nobody mapped falls back to the address map.
        (from([10, 1, 0, 71], 1004), Some(7), "address_map", true),
    ];
    for (src, gbp, source, delivered) in cases {
        let syn = tcp_frame(src, DB_EP, tcp::Flags::SYN, 1, &[]);
        wire.send(&vxlan_from_vtep(&syn, gbp));
        eng.poll();
        let got = collect(&db);
        assert_eq!(got.len(), usize::from(delivered), "{source}");
        // Allowed flows are in the table; denied ones only in the denials.
        let e = eng
            .flows()
            .iter()
            .map(|(_, e)| *e)
            .chain(eng.st.denials.iter().copied())
            .find(|e| e.key.flow.src_port == src.2)
            .expect("flow recorded");
        assert_eq!(e.source.name(), source);
        assert_eq!(e.verdict == crate::flows::Verdict::Deny, !delivered);
    }
    assert_eq!(
        eng.counters().drops[DropReason::PolicyDenied as usize].get(),
        1
    );
}

fn engine_from(cfg: &config::WardenConfig, uplink: MemoryPort, access: MemoryPort) -> Engine {
    let counters = Arc::new(Counters::new(2, 1, cfg.peers.len(), 1));
    let ports: Vec<Box<dyn Port>> = vec![Box::new(uplink), Box::new(access)];
    Engine::new(cfg, ports, counters).expect("engine builds")
}
