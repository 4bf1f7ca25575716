//! Attacks on the engine's flow state and classification (issue 6), each
//! against a running lab: real namespaces, real kernel VTEPs, two wardens
//! and a rogue underlay host (tests/fixtures/engine-attacks.toml), and a
//! warden L3 gateway with identity (tests/fixtures/gateway-identity.toml).
//!
//! Every case injects recognisable frames (testbed::inject_attacks: a
//! marker, a case byte and a sequence number in the payload wherever one
//! fits) and asserts the engine's behaviour after the rebuild:
//! - the frames are dropped before delivery: a tcpdump in the target
//!   workload's namespace, started before the injection, sees none of them;
//! - they are counted under the case's own drop reason in the `drops` map
//!   of `warden stats --json` of the warden that must drop them (a reason
//!   that warden does not report counts as 0);
//! - a real TCP transfer beside the attack completes byte-exact.
//!
//! The cases of the identity lab run one after another on one lab; each is
//! reported on its own (`--- case: ok | FAILED`) and the test fails at the
//! end with the list of failed cases. `ENGINE_ATTACKS=substring` runs only
//! the cases whose name contains it.
//!
//! 1. a plain kernel VTEP peer (k2) injects segments into a live api->db
//!    TCP connection (same VNI and 5-tuple): `flow_origin_mismatch` at n2;
//! 2. web (another workload on n1) injects into the same connection with
//!    api's IP and its own MAC (`port_security_ip` at n1), and with api's
//!    IP and MAC (`port_security_mac` or `bound_mac_elsewhere` at n1), and
//!    opens new connections to db as api (`port_security_ip` at n1);
//!    nothing leaves n1;
//! 3. spoofed replies: api sends UDP to db (behind n2); the plain VTEP k1
//!    sends the reverse tuple first: `reply_wrong_origin` at n1;
//! 4. ARP and FDB poisoning from the underlay (k1) at n1: ARP claiming
//!    api's IP with another MAC, ARP from api's MAC, and plain frames from
//!    api's MAC (`arp_spoofed`, `bound_mac_elsewhere`), while api's pings to
//!    db get every reply;
//! 5. 3 stacked VLAN tags (vid 0) around UDP to db, and IPv6 with 9
//!    destination-options headers before UDP to db (IPv6 enabled in w3),
//!    from the unauthenticated k2: `too_many_vlan_tags`, `ipv6_ext_chain`
//!    at n2;
//! 6. (own test, gateway lab) a source nothing vouches for, routed from VNI
//!    100 to a bound TAP workload in VNI 300: `policy_denied` at the gateway;
//! 7. smaller holes:
//!    - a real stamped SYN taken off n2's wire, re-sent by the rogue host
//!      inside the timestamp window with another sequence number:
//!      `identity_nonce` at n2;
//!    - a port unreachable for api's UDP to a closed port of db reaches api
//!      (its connected socket sees ECONNREFUSED), while an ICMP error
//!      quoting a flow nobody opened is `icmp_unrelated` at n1;
//!    - after api's echo with id 0 to an unauthenticated source is
//!      answered, that source's timestamp requests (id 0) to api are
//!      `policy_denied` at n1;
//!    - a UDP datagram filling api's MTU makes n1 send an announce-only
//!      packet first: n2's top-level `identity_announces` moves by 1 and
//!      the datagram is delivered;
//!    - a copy of api's first datagram to db, flooded (unknown destination
//!      MAC) to web's port, which admits no one, does not mark api's flow
//!      denied: db's replies on that flow reach api.
//!
//! On the pre-rebuild engine (branch `attacks`, base ea86b44) every case
//! fails, because the attack works; none of the new drop reasons nor
//! `identity_announces` exist there:
//! - 1: w3 captured all 20 segments from k2; nothing counted at n2;
//! - 2a, 2b: all 20 left n1 and w3 captured all 20; nothing counted at n1;
//!   2c: all 20 SYNs left n1 (unstamped; n2 counted identity_missing);
//! - 3: w1 captured all 20 spoofed replies; nothing counted at n1;
//! - 4: api lost 75-95% of its ping replies from db (api's MAC moved to
//!   k1 in n1's FDB); the spoofed ARP reached w1 and w2;
//! - 5: w3 captured all 20 deep-tagged and all 20 IPv6 datagrams;
//! - 6: svc answered all 5 routed pings from 10.1.0.12; nothing counted;
//! - 7a: w3 captured all 5 SYNs with the forged ISN;
//! - 7b: api's second write succeeded (the port unreachable was counted as
//!   policy_denied at n1); w1 captured all 20 unrelated ICMP errors;
//! - 7c: w1 captured all 20 timestamp requests;
//! - 7d: the datagram was delivered, `identity_announces` absent;
//! - 7e: without a flooded copy db's 3 replies reached api; after one,
//!   none did (policy_denied at n1).
//!
//! Needs root, tcpdump, ethtool and the release binaries:
//! `cargo build --release -p dataplane -p testbed --bins && cargo test --release -p testbed --test engine_attacks`.

mod common;
use common::{is_root, tcp_transfer, warden_bin, Cleanup, Proc};

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use overlay::{MacAddr, Vni, OUTER_LEN};
use testbed::checks::warden_stats;
use testbed::inject::{Injector, Station};
use testbed::inject_attacks::{
    self as ia, arp, arp_seen, ethernet, icmp4, icmp_seen, ipv4, ipv6_ext_chain, mark, tcp4,
    tcp_seen, udp4, udp6, vxlan, Capture, Segment, ETH_8021AD, ETH_8021Q, ETH_ARP, ETH_IPV4,
    ETH_IPV6, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_PSH,
};
use testbed::inject_identity::resent_from;
use testbed::lab::{self, LabSource, Options, RunningLab};
use testbed::netns::{self, exec_in, NETNS_DIR};
use testbed::state::ns_name;

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

const LEGACY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
/// A second address of k1's workload (gateway lab: of a1's) that no
/// address map covers: nothing vouches for it.
const UNMAPPED: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 12);
/// k2's workload: unauthenticated at n2.
const K2_WL: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 13);
const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
const WEB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 22);
const DB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);
const CACHE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 24);
/// An address no workload has.
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 99);
const API_MAC: &str = "02:00:00:00:01:21";
const WEB_MAC: &str = "02:00:00:00:01:22";
const DB_MAC: &str = "02:00:00:00:01:23";
/// Inner source MACs of the attackers' frames (not bound anywhere).
const EVIL_MAC: &str = "02:00:00:00:66:66";
const K2_EVIL_MAC: &str = "02:00:00:00:66:12";
const DB_V6: &str = "fd00:100::23";
const K2_V6: &str = "fd00:100::13";

/// Frames per injected case.
const N: u32 = 20;
/// How long counters get to reach their expected values.
const COUNT_WAIT: Duration = Duration::from_secs(3);
/// Pause after they did (or the wait ended), for late frames and counts.
const SETTLE: Duration = Duration::from_millis(400);
/// Pace of the transfers beside the attacks.
const RATE_MBIT: u64 = 8;

/// Case bytes of the marks.
mod case {
    pub const LIVE_K2: u8 = 1;
    pub const LIVE_WEB_IP: u8 = 2;
    pub const LIVE_WEB_IP_MAC: u8 = 3;
    pub const FORWARD: u8 = 4;
    pub const REPLY: u8 = 5;
    pub const VLAN: u8 = 6;
    pub const IPV6_CHAIN: u8 = 7;
    pub const ICMP_UNRELATED: u8 = 8;
    pub const ECHO_ID0: u8 = 9;
    pub const POISON_FRAME: u8 = 10;
    pub const NEW_AS_API: u8 = 11;
    pub const FLOODED: u8 = 12;
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn vni100() -> Vni {
    Vni::new(100).unwrap()
}

/// Root and the tools, or a note why the test does nothing.
fn can_run() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    for tool in ["ethtool", "ping", "tcpdump"] {
        assert!(
            netns::which(tool).is_some(),
            "{tool} is missing: run scripts/install-deps.sh"
        );
    }
    true
}

/// Whether `ENGINE_ATTACKS` (a substring of case names) selects `name`.
fn selected(name: &str) -> bool {
    std::env::var("ENGINE_ATTACKS").map_or(true, |f| name.contains(&f))
}

// ---------------------------------------------------------------------------
// Processes, transfers
// ---------------------------------------------------------------------------

/// A byte-exact, paced TCP transfer between two lab hosts.
struct Transfer {
    sink: Proc,
    source: Proc,
}

impl Transfer {
    fn start(prefix: &str, from: &str, to: &str, target: &str, bytes: u64) -> Transfer {
        let (sink, source) = tcp_transfer(prefix, from, to, target, bytes, Some(RATE_MBIT), 60);
        Transfer { sink, source }
    }

    /// Both ends succeeded (the sink verified every byte), or why not.
    fn result(mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (src_ok, src) = self.source.wait(deadline);
        let (sink_ok, sink) = self.sink.wait(deadline);
        if src_ok && sink_ok {
            Ok(())
        } else {
            Err(format!(
                "the transfer beside the attack failed: {src}; {sink}"
            ))
        }
    }

    /// Both ends succeeded (the sink verified every byte).
    fn finish(self) {
        self.result().unwrap_or_else(|e| panic!("{e}"));
    }
}

// ---------------------------------------------------------------------------
// The lab and its counters
// ---------------------------------------------------------------------------

/// Every drop counter a warden reports, by reason name, and the top-level
/// `identity_announces` under that name.
type Counts = BTreeMap<String, u64>;

struct Lab {
    prefix: String,
    dir: PathBuf,
    warden: PathBuf,
    running: Option<RunningLab>,
}

impl Lab {
    fn up(file: &Path, prefix: &str) -> Lab {
        let source = LabSource::from_file(file).unwrap();
        let warden = warden_bin();
        let opts = Options {
            prefix: Some(prefix.to_string()),
            self_exe: PathBuf::from(BIN),
            warden_bin: warden.clone(),
            ready_timeout: Duration::from_secs(20),
        };
        let running = lab::up(&source, &opts, &|_| {}).unwrap_or_else(|e| panic!("lab up: {e}"));
        Lab {
            prefix: prefix.to_string(),
            dir: running.state().dir,
            warden,
            running: Some(running),
        }
    }

    fn ns(&self, host: &str) -> String {
        ns_name(&self.prefix, host)
    }

    fn injector(&self, host: &str, iface: &str) -> Injector {
        Injector::open(&PathBuf::from(NETNS_DIR).join(self.ns(host)), iface)
            .unwrap_or_else(|e| panic!("injector on {iface} of {host}: {e}"))
    }

    fn capture(&self, host: &str, tag: &str) -> Capture {
        let path = self.dir.join(format!("{host}-{tag}.pcap"));
        Capture::start(&self.ns(host), "wl0", path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn counts(&self, warden: &str) -> Counts {
        let socket = self.dir.join(format!("{warden}.sock"));
        let s = warden_stats(&self.warden, &socket).unwrap_or_else(|e| panic!("stats: {e}"));
        let mut out: Counts = s
            .get("drops")
            .and_then(|d| d.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(n) = s.get("identity_announces").and_then(|v| v.as_u64()) {
            out.insert("identity_announces".to_string(), n);
        }
        out
    }

    /// Waits until the counters `names` of `warden` moved by `want` in all
    /// since `before` (or the wait ends), then a little longer; returns
    /// what moved.
    fn moved(&self, warden: &str, before: &Counts, names: &[&str], want: u64) -> Counts {
        let deadline = Instant::now() + COUNT_WAIT;
        loop {
            let d = delta(before, &self.counts(warden));
            if sum(&d, names) >= want || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(SETTLE);
        delta(before, &self.counts(warden))
    }

    fn ping(&self, from: &str, args: &[&str]) -> std::process::Output {
        exec_in(&self.ns(from), "ping").args(args).output().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.teardown();
        }
    }
}

fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .collect()
}

/// What `names` moved by in all (a name the warden does not report is 0).
fn sum(d: &Counts, names: &[&str]) -> u64 {
    names.iter().map(|n| d.get(*n).copied().unwrap_or(0)).sum()
}

fn table(d: &Counts) -> String {
    let t: String = d
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!(" {k}={v}"))
        .collect();
    if t.is_empty() {
        " (none)".to_string()
    } else {
        t
    }
}

/// Asserts that `names` of `warden` moved by at least `want` in all; says
/// which are missing from the warden's stats altogether.
fn expect_counted(
    what: &str,
    warden: &str,
    moved: &Counts,
    after: &Counts,
    names: &[&str],
    want: u64,
) {
    let got = sum(moved, names);
    let absent: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !after.contains_key(*n))
        .collect();
    assert!(
        got >= want,
        "{what}: {names:?} at {warden} moved by {got}, expected at least {want} \
         (absent from its stats: {absent:?}); everything that moved:{}",
        table(moved)
    );
}

/// Runs one case, catching its panic; records and prints the outcome.
fn run_case(name: &str, results: &mut Vec<(String, Option<String>)>, f: impl FnOnce()) {
    if !selected(name) {
        return;
    }
    eprintln!("--- {name}");
    let t = Instant::now();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(f))
        .err()
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string())
        });
    match &outcome {
        None => eprintln!("--- {name}: ok ({:.1} s)", t.elapsed().as_secs_f64()),
        Some(m) => eprintln!("--- {name}: FAILED: {m}"),
    }
    results.push((name.to_string(), outcome));
}

fn report(results: &[(String, Option<String>)]) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, o)| o.as_ref().map(|m| format!("\n  {n}: {m}")))
        .collect();
    eprintln!("{} cases, {} failed", results.len(), failed.len());
    assert!(failed.is_empty(), "failed cases:{}", failed.concat());
}

/// Waits until `cond` holds (or `timeout` passes); whether it held.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Underlay stations of the engine-attacks fixture.
struct Underlay {
    n1: Station,
    n2: Station,
    k1: Station,
    k2: Station,
    x1: Station,
}

fn station(m: &str, ip: [u8; 4]) -> Station {
    Station {
        mac: mac(m),
        ip: Ipv4Addr::from(ip),
    }
}

fn underlay() -> Underlay {
    Underlay {
        n1: station("02:00:00:00:aa:01", [10, 0, 0, 1]),
        n2: station("02:00:00:00:aa:02", [10, 0, 0, 2]),
        k1: station("02:00:00:00:aa:11", [10, 0, 0, 11]),
        k2: station("02:00:00:00:aa:12", [10, 0, 0, 12]),
        x1: station("02:00:00:00:aa:66", [10, 0, 0, 66]),
    }
}

/// An untagged inner Ethernet frame carrying an IPv4 packet.
fn eth_ip4(dst: MacAddr, src: MacAddr, ip: &[u8]) -> Vec<u8> {
    ethernet(dst, src, &[], ETH_IPV4, ip)
}

/// The MAC address of an interface in a namespace.
fn link_mac(ns: &str, dev: &str) -> MacAddr {
    let out =
        netns::ip_in(ns, ["-br", "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{e}"));
    out.split_whitespace()
        .nth(2)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no MAC for {dev} in {ns}: {out:?}"))
}

// ---------------------------------------------------------------------------
// The identity lab's cases
// ---------------------------------------------------------------------------

#[test]
fn attacks_on_flow_state_and_classification_are_dropped_and_counted() {
    if !can_run() {
        return;
    }
    let prefix = format!("wa{}x", std::process::id() % 1_000_000);
    let _cleanup = Cleanup(prefix.clone());
    let lab = Lab::up(&fixture("engine-attacks.toml"), &prefix);
    let u = underlay();
    let mut k1 = lab.injector("k1", "eth0");
    let mut k2 = lab.injector("k2", "eth0");
    let mut x1 = lab.injector("x1", "eth0");
    let mut n2_wire = lab.injector("n2", "eth0");
    let mut w1 = lab.injector("w1", "wl0");
    let mut w2 = lab.injector("w2", "wl0");
    let mut w3 = lab.injector("w3", "wl0");
    assert_eq!(k1.mac(), u.k1.mac);
    assert_eq!(k2.mac(), u.k2.mac);
    assert_eq!(x1.mac(), u.x1.mac);

    // The lab works; n1 learns where api, db and legacy are.
    for (from, args) in [
        ("w1", vec!["-c", "2", "-W", "2", "-i", "0.2", "10.1.0.23"]),
        ("w1", vec!["-c", "2", "-W", "2", "-i", "0.2", "10.1.0.24"]),
        ("x1", vec!["-c", "1", "-W", "2", "10.0.0.2"]),
        ("k1", vec!["-c", "2", "-W", "2", "-i", "0.2", "10.1.0.21"]),
    ] {
        let out = lab.ping(from, &args);
        assert!(
            out.status.success(),
            "ping {from} {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let mut results = Vec::new();

    // 1 and 2: injection into a live api -> db connection.
    {
        let cap3 = lab.capture("w3", "live");
        let port = 7001;
        let transfer = Transfer::start(&prefix, "w1", "w3", &format!("{DB}:{port}"), 10_000_000);
        // The connection as db sees it: api's source port, and where its
        // sequence and acknowledgment numbers are.
        let mut last = None;
        let found = eventually(Duration::from_secs(5), || {
            last = cap3.frames().iter().filter_map(|f| tcp_seen(f)).rfind(|t| {
                t.ip.src == API && t.ip.dst == DB && t.seg.dport == port && t.payload_len > 0
            });
            last.is_some()
        });
        assert!(found, "no data of the api -> db transfer captured in w3");
        let live = last.unwrap().seg;
        eprintln!("live connection api:{} -> db:{port}", live.sport);
        let segment = |case: u8, i: u32| {
            let s = Segment {
                sport: live.sport,
                dport: port,
                // Far outside the receive window: the attack must not need
                // to corrupt the stream to be seen.
                seq: live.seq.wrapping_add(0x4000_0000 + i * 64),
                ack: live.ack,
                flags: TCP_PSH | TCP_ACK,
                window: 502,
            };
            ipv4(API, DB, PROTO_TCP, &tcp4(API, DB, &s, &mark(case, i)))
        };
        let marked_on_n2 = |wire: &mut Injector, case: u8| {
            let mut n = 0;
            wire.drain(|f| {
                if ia::find_mark(f).is_some_and(|(c, _)| c == case) {
                    n += 1;
                }
            })
            .unwrap_or_else(|e| panic!("{e}"));
            n
        };

        run_case(
            "1 plain VTEP (k2) injects into a live api->db connection: flow_origin_mismatch at n2",
            &mut results,
            || {
                let before = lab.counts("n2");
                for i in 0..N {
                    let inner = eth_ip4(mac(DB_MAC), mac(K2_EVIL_MAC), &segment(case::LIVE_K2, i));
                    assert!(k2.send(&vxlan(u.k2, u.n2, vni100(), &inner)));
                }
                let moved = lab.moved("n2", &before, &["flow_origin_mismatch"], u64::from(N));
                let seen = cap3.marked_from_outside(case::LIVE_K2, mac(DB_MAC));
                eprintln!(
                    "  n2 drops moved:{}; w3 captured {seen} injected segments",
                    table(&moved)
                );
                assert_eq!(seen, 0, "injected segments captured {}", cap3.what);
                expect_counted(
                    "k2's injection",
                    "n2",
                    &moved,
                    &lab.counts("n2"),
                    &["flow_origin_mismatch"],
                    u64::from(N),
                );
            },
        );

        run_case(
            "2a web injects into the live connection with api's IP, own MAC: port_security_ip at n1",
            &mut results,
            || {
                let _ = marked_on_n2(&mut n2_wire, case::LIVE_WEB_IP);
                let before = lab.counts("n1");
                for i in 0..N {
                    let f = eth_ip4(mac(DB_MAC), mac(WEB_MAC), &segment(case::LIVE_WEB_IP, i));
                    assert!(w2.send(&f));
                }
                let moved = lab.moved("n1", &before, &["port_security_ip"], u64::from(N));
                let seen = cap3.marked_from_outside(case::LIVE_WEB_IP, mac(DB_MAC));
                let left = marked_on_n2(&mut n2_wire, case::LIVE_WEB_IP);
                eprintln!(
                    "  n1 drops moved:{}; {left} reached n2's underlay; w3 captured {seen}",
                    table(&moved)
                );
                assert_eq!(seen, 0, "web's spoofed segments captured {}", cap3.what);
                assert_eq!(left, 0, "web's spoofed segments left n1");
                expect_counted("web spoofing api's IP", "n1", &moved, &lab.counts("n1"), &["port_security_ip"], u64::from(N));
            },
        );

        run_case(
            "2b web injects into the live connection with api's IP and MAC: port_security_mac|bound_mac_elsewhere at n1",
            &mut results,
            || {
                let _ = marked_on_n2(&mut n2_wire, case::LIVE_WEB_IP_MAC);
                let before = lab.counts("n1");
                let reasons = ["port_security_mac", "bound_mac_elsewhere"];
                for i in 0..N {
                    let f = eth_ip4(mac(DB_MAC), mac(API_MAC), &segment(case::LIVE_WEB_IP_MAC, i));
                    assert!(w2.send(&f));
                }
                let moved = lab.moved("n1", &before, &reasons, u64::from(N));
                let seen = cap3.marked_from_outside(case::LIVE_WEB_IP_MAC, mac(DB_MAC));
                let left = marked_on_n2(&mut n2_wire, case::LIVE_WEB_IP_MAC);
                eprintln!(
                    "  n1 drops moved:{}; {left} reached n2's underlay; w3 captured {seen}",
                    table(&moved)
                );
                assert_eq!(seen, 0, "web's spoofed segments captured {}", cap3.what);
                assert_eq!(left, 0, "web's spoofed segments left n1");
                expect_counted("web spoofing api's IP and MAC", "n1", &moved, &lab.counts("n1"), &reasons, u64::from(N));
            },
        );

        run_case(
            "2c web opens new connections to db as api (api's IP, own MAC): port_security_ip at n1",
            &mut results,
            || {
                let _ = marked_on_n2(&mut n2_wire, case::NEW_AS_API);
                let before = lab.counts("n1");
                let before_n2 = lab.counts("n2");
                let dport = 7002;
                for i in 0..N {
                    // SYNs carrying the mark as data (as TCP Fast Open
                    // would), so the capture can tell them apart.
                    let s = Segment {
                        sport: 42_000 + i as u16,
                        dport,
                        seq: 0x1000_0000 + i,
                        ack: 0,
                        flags: ia::TCP_SYN,
                        window: 64_240,
                    };
                    let ip = ipv4(
                        API,
                        DB,
                        PROTO_TCP,
                        &tcp4(API, DB, &s, &mark(case::NEW_AS_API, i)),
                    );
                    assert!(w2.send(&eth_ip4(mac(DB_MAC), mac(WEB_MAC), &ip)));
                }
                let moved = lab.moved("n1", &before, &["port_security_ip"], u64::from(N));
                let seen =
                    cap3.count(|f| tcp_seen(f).is_some_and(|t| t.is_syn() && t.seg.dport == dport));
                let left = marked_on_n2(&mut n2_wire, case::NEW_AS_API);
                eprintln!(
                    "  n1 drops moved:{}; {left} reached n2's underlay (n2 drops moved:{}); w3 captured {seen} SYNs",
                    table(&moved),
                    table(&delta(&before_n2, &lab.counts("n2")))
                );
                assert_eq!(seen, 0, "web's SYNs as api captured {}", cap3.what);
                assert_eq!(left, 0, "web's SYNs as api left n1");
                expect_counted(
                    "web opening connections as api",
                    "n1",
                    &moved,
                    &lab.counts("n1"),
                    &["port_security_ip"],
                    u64::from(N),
                );
            },
        );

        run_case(
            "1-2 the live api->db transfer completes byte-exact",
            &mut results,
            || transfer.finish(),
        );
    }

    run_case(
        "3 spoofed replies from k1 to api's UDP flow to db: reply_wrong_origin at n1",
        &mut results,
        || {
            let beside = Transfer::start(&prefix, "w1", "w4", &format!("{CACHE}:7103"), 2_000_000);
            let cap1 = lab.capture("w1", "reply");
            let (sport, dport) = (41_003, 7003);
            let fwd = udp4(API, DB, sport, dport, &mark(case::FORWARD, 0));
            assert!(w1.send(&eth_ip4(
                mac(DB_MAC),
                mac(API_MAC),
                &ipv4(API, DB, PROTO_UDP, &fwd)
            )));
            std::thread::sleep(Duration::from_millis(200));
            let before = lab.counts("n1");
            for i in 0..N {
                let reply = udp4(DB, API, dport, sport, &mark(case::REPLY, i));
                let inner = eth_ip4(
                    mac(API_MAC),
                    mac(EVIL_MAC),
                    &ipv4(DB, API, PROTO_UDP, &reply),
                );
                assert!(k1.send(&vxlan(u.k1, u.n1, vni100(), &inner)));
            }
            let moved = lab.moved("n1", &before, &["reply_wrong_origin"], u64::from(N));
            let beside = beside.result();
            eprintln!("  transfer beside: {beside:?}");
            let seen = cap1.marked_from_outside(case::REPLY, mac(API_MAC));
            eprintln!(
                "  n1 drops moved:{}; w1 captured {seen} spoofed replies",
                table(&moved)
            );
            assert_eq!(seen, 0, "spoofed replies captured {}", cap1.what);
            expect_counted(
                "spoofed replies",
                "n1",
                &moved,
                &lab.counts("n1"),
                &["reply_wrong_origin"],
                u64::from(N),
            );
            beside.unwrap_or_else(|e| panic!("{e}"));
        },
    );

    run_case(
        "5a 3 stacked VLAN tags around UDP to db from k2: too_many_vlan_tags at n2",
        &mut results,
        || {
            let beside = Transfer::start(&prefix, "w1", "w3", &format!("{DB}:7105"), 2_000_000);
            let cap3 = lab.capture("w3", "vlan");
            let before = lab.counts("n2");
            for i in 0..N {
                let tags: &[u16] = if i % 2 == 0 {
                    &[ETH_8021Q, ETH_8021Q, ETH_8021Q]
                } else {
                    &[ETH_8021AD, ETH_8021Q, ETH_8021Q]
                };
                let d = udp4(K2_WL, DB, 40_005, 7005, &mark(case::VLAN, i));
                let inner = ethernet(
                    mac(DB_MAC),
                    mac(K2_EVIL_MAC),
                    tags,
                    ETH_IPV4,
                    &ipv4(K2_WL, DB, PROTO_UDP, &d),
                );
                assert!(k2.send(&vxlan(u.k2, u.n2, vni100(), &inner)));
            }
            let moved = lab.moved("n2", &before, &["too_many_vlan_tags"], u64::from(N));
            let beside = beside.result();
            eprintln!("  transfer beside: {beside:?}");
            let seen = cap3.marked_from_outside(case::VLAN, mac(DB_MAC));
            eprintln!(
                "  n2 drops moved:{}; w3 captured {seen} tagged datagrams",
                table(&moved)
            );
            assert_eq!(seen, 0, "deep-tagged datagrams captured {}", cap3.what);
            expect_counted(
                "deep VLAN stacks",
                "n2",
                &moved,
                &lab.counts("n2"),
                &["too_many_vlan_tags"],
                u64::from(N),
            );
            beside.unwrap_or_else(|e| panic!("{e}"));
        },
    );

    run_case(
        "5b IPv6 with 9 destination-options headers before UDP to db from k2: ipv6_ext_chain at n2",
        &mut results,
        || {
            let w3 = lab.ns("w3");
            let sysctl = exec_in(&w3, "sysctl")
                .args([
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=0",
                    "net.ipv6.conf.default.disable_ipv6=0",
                    "net.ipv6.conf.wl0.disable_ipv6=0",
                ])
                .output()
                .unwrap();
            assert!(sysctl.status.success(), "sysctl in w3: {sysctl:?}");
            netns::ip_in(
                &w3,
                [
                    "-6",
                    "addr",
                    "add",
                    &format!("{DB_V6}/64"),
                    "dev",
                    "wl0",
                    "nodad",
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let beside = Transfer::start(&prefix, "w1", "w3", &format!("{DB}:7106"), 2_000_000);
            let cap3 = lab.capture("w3", "ipv6");
            let (src, dst): (Ipv6Addr, Ipv6Addr) = (K2_V6.parse().unwrap(), DB_V6.parse().unwrap());
            let before = lab.counts("n2");
            for i in 0..N {
                let d = udp6(src, dst, 40_006, 7006, &mark(case::IPV6_CHAIN, i));
                let p = ipv6_ext_chain(src, dst, 9, PROTO_UDP, &d);
                let inner = ethernet(mac(DB_MAC), mac(K2_EVIL_MAC), &[], ETH_IPV6, &p);
                assert!(k2.send(&vxlan(u.k2, u.n2, vni100(), &inner)));
            }
            let moved = lab.moved("n2", &before, &["ipv6_ext_chain"], u64::from(N));
            let beside = beside.result();
            eprintln!("  transfer beside: {beside:?}");
            let seen = cap3.marked_from_outside(case::IPV6_CHAIN, mac(DB_MAC));
            eprintln!(
                "  n2 drops moved:{}; w3 captured {seen} IPv6 datagrams",
                table(&moved)
            );
            assert_eq!(
                seen, 0,
                "IPv6 datagrams with 9 extension headers captured {}",
                cap3.what
            );
            expect_counted(
                "long IPv6 extension chains",
                "n2",
                &moved,
                &lab.counts("n2"),
                &["ipv6_ext_chain"],
                u64::from(N),
            );
            beside.unwrap_or_else(|e| panic!("{e}"));
        },
    );

    run_case(
        "7a a real stamped SYN re-sent inside the window with another ISN: identity_nonce at n2",
        &mut results,
        || {
            let port = 7107;
            let cap3 = lab.capture("w3", "nonce");
            let _ = n2_wire.drain(|_| {});
            Transfer::start(&prefix, "w1", "w3", &format!("{DB}:{port}"), 65_536).finish();
            std::thread::sleep(Duration::from_millis(200));
            let mut syn = None;
            n2_wire
                .drain(|f| {
                    let Some(inner) = f.get(OUTER_LEN..) else {
                        return;
                    };
                    let from_n1 = f.get(26..30) == Some(&u.n1.ip.octets()[..]);
                    if let Some(t) = tcp_seen(inner) {
                        if from_n1
                            && t.is_syn()
                            && t.ip.dst == DB
                            && t.seg.dport == port
                            && t.ip.l4 > t.ip.l3 + 20
                        {
                            syn.get_or_insert((f.to_vec(), t.seg.seq));
                        }
                    }
                })
                .unwrap_or_else(|e| panic!("{e}"));
            let (frame, isn) =
                syn.expect("no stamped SYN of api's connection seen on n2's underlay");
            let forged_isn = isn ^ 0x5a5a_5a5a;
            let mut forged = resent_from(&frame, u.x1.mac);
            assert!(ia::set_inner_tcp_seq(&mut forged, forged_isn));
            let before = lab.counts("n2");
            let copies = 5;
            for _ in 0..copies {
                assert!(x1.send(&forged));
            }
            let moved = lab.moved("n2", &before, &["identity_nonce"], copies);
            let seen = cap3.count(|f| {
                tcp_seen(f)
                    .is_some_and(|t| t.is_syn() && t.seg.dport == port && t.seg.seq == forged_isn)
            });
            eprintln!(
                "  n2 drops moved:{}; w3 captured {seen} SYNs with the forged ISN",
                table(&moved)
            );
            assert_eq!(
                seen, 0,
                "the SYN with a forged ISN was captured {}",
                cap3.what
            );
            expect_counted(
                "re-sent SYN with another ISN",
                "n2",
                &moved,
                &lab.counts("n2"),
                &["identity_nonce"],
                copies,
            );
            // The service still works.
            Transfer::start(&prefix, "w1", "w3", &format!("{DB}:{port}"), 65_536).finish();
        },
    );

    run_case(
        "7b port unreachable for api's UDP to db reaches api (ECONNREFUSED)",
        &mut results,
        || {
            let before = lab.counts("n1");
            let out = exec_in(&lab.ns("w1"), "bash")
                .args([
                    "-c",
                    "exec 3<>/dev/udp/10.1.0.23/7108; printf a >&3; sleep 1; printf b >&3",
                ])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let moved = delta(&before, &lab.counts("n1"));
            eprintln!(
                "  api's second write: {} {}; n1 drops moved:{}",
                out.status,
                err.trim(),
                table(&moved)
            );
            assert!(
                !out.status.success() && err.contains("refused"),
                "api's connected UDP socket saw no port unreachable from db: {} {err}",
                out.status
            );
        },
    );

    run_case(
        "7b an ICMP error quoting a flow nobody opened: icmp_unrelated at n1",
        &mut results,
        || {
            let cap1 = lab.capture("w1", "icmp");
            let before = lab.counts("n1");
            for i in 0..N {
                let quoted = ipv4(
                    API,
                    NOBODY,
                    PROTO_UDP,
                    &udp4(API, NOBODY, 45_000, 6666, &mark(case::ICMP_UNRELATED, i)),
                );
                let m = icmp4(3, 3, [0; 4], &quoted);
                let inner = eth_ip4(
                    mac(API_MAC),
                    mac(EVIL_MAC),
                    &ipv4(LEGACY, API, PROTO_ICMP, &m),
                );
                assert!(k1.send(&vxlan(u.k1, u.n1, vni100(), &inner)));
            }
            let moved = lab.moved("n1", &before, &["icmp_unrelated"], u64::from(N));
            let seen = cap1.marked_from_outside(case::ICMP_UNRELATED, mac(API_MAC));
            eprintln!(
                "  n1 drops moved:{}; w1 captured {seen} unrelated ICMP errors",
                table(&moved)
            );
            assert_eq!(seen, 0, "unrelated ICMP errors captured {}", cap1.what);
            expect_counted(
                "unrelated ICMP errors",
                "n1",
                &moved,
                &lab.counts("n1"),
                &["icmp_unrelated"],
                u64::from(N),
            );
        },
    );

    run_case(
        "7c after an id-0 echo, timestamp requests (id 0) from the unauthenticated peer: policy_denied at n1",
        &mut results,
        || {
            let k1ns = lab.ns("k1");
            netns::ip_in(&k1ns, ["addr", "add", &format!("{UNMAPPED}/24"), "dev", "vx100"])
                .unwrap_or_else(|e| panic!("{e}"));
            let vx_mac = link_mac(&k1ns, "vx100");
            let cap1 = lab.capture("w1", "id0");
            // api's echo request, id 0, to the unauthenticated address.
            let echo = icmp4(8, 0, [0, 0, 0, 1], &mark(case::ECHO_ID0, 0));
            assert!(w1.send(&eth_ip4(vx_mac, mac(API_MAC), &ipv4(API, UNMAPPED, PROTO_ICMP, &echo))));
            let answered = eventually(Duration::from_secs(3), || {
                cap1.count(|f| icmp_seen(f).is_some_and(|m| m.kind == 0 && m.id == 0 && m.src == UNMAPPED)) > 0
            });
            assert!(answered, "the echo reply (id 0) from {UNMAPPED} never reached api: precondition");
            let before = lab.counts("n1");
            for i in 0..N {
                let m = icmp4(13, 0, [0, 0, 0, i as u8], &[0; 12]);
                let inner = eth_ip4(mac(API_MAC), vx_mac, &ipv4(UNMAPPED, API, PROTO_ICMP, &m));
                assert!(k1.send(&vxlan(u.k1, u.n1, vni100(), &inner)));
            }
            let moved = lab.moved("n1", &before, &["policy_denied"], u64::from(N));
            let seen = cap1.count(|f| icmp_seen(f).is_some_and(|m| m.kind == 13 && m.src == UNMAPPED));
            eprintln!("  n1 drops moved:{}; w1 captured {seen} timestamp requests", table(&moved));
            assert_eq!(seen, 0, "timestamp requests from {UNMAPPED} captured {}", cap1.what);
            expect_counted("timestamp requests after an id-0 echo", "n1", &moved, &lab.counts("n1"), &["policy_denied"], u64::from(N));
        },
    );

    run_case(
        "7d a datagram filling api's MTU goes announce-first: identity_announces +1 at n2",
        &mut results,
        || {
            let cap4 = lab.capture("w4", "announce");
            let before = lab.counts("n2");
            // 20 + 8 + 1422 = 1450 bytes: the MTU of api's interface, so
            // the 28-byte header does not fit in the packet itself.
            let out = exec_in(&lab.ns("w1"), "bash")
                .args(["-c", "head -c 1422 /dev/zero > /dev/udp/10.1.0.24/7109"])
                .output()
                .unwrap();
            assert!(out.status.success(), "sending the datagram: {out:?}");
            let moved = lab.moved("n2", &before, &["identity_announces"], 1);
            let delivered = eventually(Duration::from_secs(2), || {
                cap4.count(|f| {
                    ia::ip4_info(f).is_some_and(|i| {
                        i.proto == PROTO_UDP && i.src == API && i.end - i.l3 == 1450
                    })
                }) == 1
            });
            eprintln!("  n2 moved:{}; delivered to w4: {delivered}", table(&moved));
            assert!(delivered, "the 1450-byte datagram never reached cache");
            let got = sum(&moved, &["identity_announces"]);
            assert_eq!(
                got,
                1,
                "identity_announces at n2 moved by {got}, expected 1 (present in its stats: {})",
                lab.counts("n2").contains_key("identity_announces")
            );
        },
    );

    run_case(
        "7e a flooded copy of api's datagram to web's port does not deny api's flow: db's replies reach api",
        &mut results,
        || {
            let cap1 = lab.capture("w1", "flooded");
            let dport = 7012;
            let replies = 3u32;
            // api sends two datagrams to db on flow `sport`, the first to
            // db's MAC or, when `flood`, to a MAC no FDB knows (n1 floods
            // it, to the peers and to web's port; web admits no one); db
            // answers on the same flow. How many answers reached api.
            let mut exchange = |sport: u16, flood: bool, tag: u32| {
                let to_db = |dst: MacAddr, seq: u32| {
                    let d = udp4(API, DB, sport, dport, &mark(case::FLOODED, tag + seq));
                    eth_ip4(dst, mac(API_MAC), &ipv4(API, DB, PROTO_UDP, &d))
                };
                let first = if flood { mac("02:00:00:00:01:99") } else { mac(DB_MAC) };
                assert!(w1.send(&to_db(first, 0)));
                std::thread::sleep(Duration::from_millis(200));
                assert!(w1.send(&to_db(mac(DB_MAC), 1)));
                std::thread::sleep(Duration::from_millis(200));
                for seq in 0..replies {
                    let d = udp4(DB, API, dport, sport, &mark(case::FLOODED, tag + 100 + seq));
                    let f = eth_ip4(mac(API_MAC), mac(DB_MAC), &ipv4(DB, API, PROTO_UDP, &d));
                    assert!(w3.send(&f));
                    std::thread::sleep(Duration::from_millis(50));
                }
                let arrived = || {
                    cap1.count(|f| {
                        f.get(6..12) == Some(&mac(DB_MAC).0[..])
                            && ia::find_mark(f).is_some_and(|(c, s)| {
                                c == case::FLOODED && (tag + 100..tag + 200).contains(&s)
                            })
                    })
                };
                eventually(Duration::from_secs(2), || arrived() == replies as usize);
                std::thread::sleep(SETTLE);
                arrived()
            };
            let control = exchange(41_013, false, 0);
            assert_eq!(control, replies as usize, "control: db's replies to api (no flooded copy) captured {}", cap1.what);
            let before = lab.counts("n1");
            let n = exchange(41_012, true, 1000);
            let moved = delta(&before, &lab.counts("n1"));
            eprintln!(
                "  control: {control} of {replies} replies reached w1; after a flooded copy: {n} of {replies}; n1 drops moved:{}",
                table(&moved)
            );
            assert_eq!(n, replies as usize, "db's replies to api after a flooded copy captured {}", cap1.what);
        },
    );

    // Last: on a vulnerable engine this moves api in n1's FDB.
    run_case(
        "4 ARP/FDB poisoning of api from k1 while api pings db: arp_spoofed, bound_mac_elsewhere at n1",
        &mut results,
        || {
            let cap1 = lab.capture("w1", "arp");
            let cap2 = lab.capture("w2", "arp");
            let before = lab.counts("n1");
            let ping = Proc::spawn(
                {
                    let mut c = exec_in(&lab.ns("w1"), "ping");
                    c.args(["-c", "20", "-i", "0.1", "-W", "1", "10.1.0.23"]);
                    c
                },
                "ping api -> db during the poisoning",
            );
            let evil = mac(EVIL_MAC);
            let api_mac = mac(API_MAC);
            // (a) ARP replies claiming api's IP for another MAC;
            // (b) ARP requests from api's MAC and IP;
            // (c) plain frames from api's MAC (to web, so they stay on n1).
            let a = ethernet(MacAddr::BROADCAST, evil, &[], ETH_ARP, &arp(2, evil, API, MacAddr::BROADCAST, API));
            let b = ethernet(MacAddr::BROADCAST, api_mac, &[], ETH_ARP, &arp(1, api_mac, API, MacAddr([0; 6]), NOBODY));
            let mut sent = [0u64; 3];
            let mut ping = ping;
            let t = Instant::now();
            let mut i = 0u32;
            while !ping.finished() && t.elapsed() < Duration::from_secs(5) {
                let c = eth_ip4(mac(WEB_MAC), api_mac, &ipv4(LEGACY, WEB, PROTO_UDP, &udp4(LEGACY, WEB, 40_004, 7004, &mark(case::POISON_FRAME, i))));
                for (k, f) in [&a, &b, &c].into_iter().enumerate() {
                    if k1.send(&vxlan(u.k1, u.n1, vni100(), f)) {
                        sent[k] += 1;
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            let (ping_ok, ping_out) = ping.wait(Instant::now() + Duration::from_secs(5));
            let total: u64 = sent.iter().sum();
            // Frames may be lost on the way under this rate; 90% must be
            // counted.
            let moved = lab.moved("n1", &before, &["arp_spoofed", "bound_mac_elsewhere"], total * 9 / 10);
            let after = lab.counts("n1");
            let evil_arp = |f: &[u8]| arp_seen(f).is_some_and(|a| a.sha == evil || (a.sha == api_mac && a.tpa == NOBODY));
            let in_w1 = cap1.count(|f| arp_seen(f).is_some_and(|a| a.sha == evil));
            let in_w2 = cap2.count(evil_arp) + cap2.marked_from_outside(case::POISON_FRAME, mac(WEB_MAC));
            eprintln!(
                "  sent {sent:?}; n1 drops moved:{}; poison captured: {in_w1} in w1, {in_w2} in w2; {ping_out}",
                table(&moved)
            );
            assert!(
                ping_ok && ping_out.contains(" 0% packet loss"),
                "api lost replies from db during the poisoning: {ping_out}"
            );
            assert_eq!((in_w1, in_w2), (0, 0), "poisoning frames reached workloads (w1, w2)");
            expect_counted("spoofed ARP", "n1", &moved, &after, &["arp_spoofed"], sent[0] * 9 / 10);
            expect_counted("spoofed ARP and frames from api's MAC", "n1", &moved, &after, &["arp_spoofed", "bound_mac_elsewhere"], total * 9 / 10);
        },
    );

    drop((k1, k2, x1, n2_wire, w1, w2, w3));
    report(&results);
    let mut lab = lab;
    if let Some(r) = lab.running.take() {
        r.teardown().unwrap();
    }
}

// ---------------------------------------------------------------------------
// The gateway lab: routed frames
// ---------------------------------------------------------------------------

#[test]
fn routed_frames_from_an_unvouched_source_are_denied_at_the_gateway() {
    if !can_run() {
        return;
    }
    let prefix = format!("wg{}x", std::process::id() % 1_000_000);
    let _cleanup = Cleanup(prefix.clone());
    let lab = Lab::up(&fixture("gateway-identity.toml"), &prefix);
    let svc = Ipv4Addr::new(10, 3, 0, 10);
    let mut results = Vec::new();
    run_case(
        "6 routed VNI 100 -> VNI 300 from a source nothing vouches for: policy_denied at gw",
        &mut results,
        || {
            // The allowed, routed pair works: legacy -> svc.
            let ok = lab.ping(
                "a1",
                &[
                    "-c",
                    "2",
                    "-W",
                    "2",
                    "-i",
                    "0.2",
                    "-I",
                    "10.1.0.11",
                    "10.3.0.10",
                ],
            );
            assert!(
                ok.status.success(),
                "legacy -> svc (routed, allowed): {}",
                String::from_utf8_lossy(&ok.stdout)
            );
            netns::ip_in(
                &lab.ns("a1"),
                ["addr", "add", &format!("{UNMAPPED}/24"), "dev", "vx100"],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let beside = Transfer::start(&prefix, "a1", "w1", &format!("{svc}:7201"), 2_000_000);
            let cap = lab.capture("w1", "routed");
            let before = lab.counts("gw");
            let pings = 5;
            let out = lab.ping(
                "a1",
                &[
                    "-c",
                    &pings.to_string(),
                    "-W",
                    "1",
                    "-i",
                    "0.2",
                    "-I",
                    "10.1.0.12",
                    "10.3.0.10",
                ],
            );
            let moved = lab.moved("gw", &before, &["policy_denied"], pings);
            let beside = beside.result();
            eprintln!("  transfer beside: {beside:?}");
            let seen = cap.count(|f| ia::ip4_info(f).is_some_and(|i| i.src == UNMAPPED));
            eprintln!(
                "  gw drops moved:{}; w1 captured {seen} packets from {UNMAPPED}; ping: {}",
                table(&moved),
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .rev()
                    .nth(1)
                    .unwrap_or("")
            );
            assert!(
                !out.status.success(),
                "svc answered a routed, unauthenticated source"
            );
            assert_eq!(
                seen, 0,
                "routed packets from {UNMAPPED} captured {}",
                cap.what
            );
            expect_counted(
                "routed unauthenticated pings",
                "gw",
                &moved,
                &lab.counts("gw"),
                &["policy_denied"],
                pings,
            );
            beside.unwrap_or_else(|e| panic!("{e}"));
        },
    );
    report(&results);
    let mut lab = lab;
    if let Some(r) = lab.running.take() {
        r.teardown().unwrap();
    }
}
