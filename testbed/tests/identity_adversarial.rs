//! Forged and invalid identity headers against a running pair of wardens
//! (issue 3's adversarial list). A rogue host x1 on the underlay, holding no
//! key, spoofs n1's VTEP address toward n2 (which accepts VXLAN from a peer
//! by source address alone) and injects flow-opening packets from api (w1,
//! behind n1) to db (w3, behind n2), each with one defect in its identity
//! header (`testbed::inject_identity::Forgery`), each case on its own
//! destination port. n2 must count every frame of a case under that case's
//! drop reason, exactly, and no other identity reason may move; a tcpdump
//! in w3, started before any injection, must show no packet for the port of
//! any denied case. Correctly stamped frames injected the same way do
//! arrive there (the capture sees what gets through).
//!
//! Two cases use real traffic: a SYN that n1 stamped for a real connection,
//! taken off n2's wire and replayed once its timestamp left the window (3 s
//! in the fixture), must count as stale and a fresh connection must still
//! work; and a SYN from the kernel VTEP k1, which n1 forwards to n2 without
//! a header (k1's identity is an address-map one, n1 vouches for it to no
//! one), must count as missing at n2. And a source nothing vouches for (an
//! address of k1's outside n1's address map) is "unauthenticated", which
//! the default policy denies: its pings to api count as policy denials at
//! n1 and never reach w1.
//!
//! Needs root and the release binaries:
//! `cargo build --release -p dataplane -p testbed --bins && cargo test --release -p testbed --test identity_adversarial`.

mod common;
use common::{delta, drops, is_root, warden_bin, Cleanup};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::counters::DropReason;
use testbed::checks::warden_stats;
use testbed::inject::Injector;
use testbed::inject_identity::{
    self as ii, Forger, Forgery, IdentityTargets, InnerPacket, IDENTITY_REASONS,
};
use testbed::lab::{self, LabSource, Options};
use testbed::netns::{self, exec_in, NETNS_DIR};
use testbed::state::ns_name;

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

/// Frames of each injected case.
const PER_CASE: u32 = 20;
const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
const DB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);
/// Case `i` of `Forgery::ALL` goes to port `CASE_PORT_BASE + i`.
const CASE_PORT_BASE: u16 = 6100;
/// The real connection whose SYN is replayed, and the fresh one after it.
const REPLAY_PORT: u16 = 6200;
/// The kernel VTEP's connection attempt.
const K1_PORT: u16 = 6201;
/// A second address of the kernel VTEP's workload that n1's address map
/// does not cover: nothing vouches for it.
const UNMAPPED: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 12);
/// Echo requests it sends to api.
const UNMAPPED_PINGS: u64 = 3;
/// How long counters get to reach their expected values.
const COUNT_WAIT: Duration = Duration::from_secs(5);
/// Pause after counters reached their expected values, to catch any
/// late extra count.
const SETTLE: Duration = Duration::from_millis(1200);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity-adversarial.toml")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tcpdump on an interface of a namespace, writing every packet to a file
/// as it comes (`-U`), read back while it runs.
struct Capture {
    _proc: Proc,
    path: PathBuf,
    what: String,
}

impl Capture {
    /// Starts it and waits until it listens.
    fn start(ns: &str, iface: &str, path: PathBuf) -> Capture {
        let mut child = exec_in(ns, "tcpdump")
            .args(["-U", "-n", "-p", "-s", "256", "-i", iface, "-w"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("tcpdump: {e}"));
        let stderr = child.stderr.take().unwrap();
        let proc = Proc(child);
        let mut lines = BufReader::new(stderr);
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump said {line:?}");
        // Keep its stderr drained (it writes a summary on exit).
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut lines, &mut sink);
        });
        Capture {
            _proc: proc,
            path,
            what: format!("{iface} in {ns}"),
        }
    }

    /// Every IPv4 packet captured so far.
    fn packets(&self) -> Vec<InnerPacket> {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        ii::pcap_frames(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
            .into_iter()
            .filter_map(ii::inspect_inner)
            .collect()
    }

    /// Packets captured so far that `pick` selects.
    fn count(&self, pick: impl Fn(&InnerPacket) -> bool) -> usize {
        self.packets().iter().filter(|p| pick(p)).count()
    }
}

fn table(d: &BTreeMap<&'static str, u64>) -> String {
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

/// n2's stats, its control socket and the warden binary.
struct Stats {
    warden: PathBuf,
    socket: PathBuf,
}

impl Stats {
    fn drops(&self) -> BTreeMap<&'static str, u64> {
        let s = warden_stats(&self.warden, &self.socket).unwrap_or_else(|e| panic!("stats: {e}"));
        drops(&s)
    }

    /// Waits until `reason` moved by `want` since `before` (or the wait
    /// ends), then a little longer; returns what moved.
    fn moved(
        &self,
        before: &BTreeMap<&'static str, u64>,
        reason: Option<DropReason>,
        want: u64,
    ) -> BTreeMap<&'static str, u64> {
        let deadline = Instant::now() + COUNT_WAIT;
        if let Some(r) = reason {
            while Instant::now() < deadline {
                let d = delta(before, &self.drops());
                if d.get(r.name()).copied().unwrap_or(0) >= want {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(SETTLE);
        delta(before, &self.drops())
    }
}

/// Asserts that of the identity drop reasons, `reason` alone moved, by
/// exactly `want` (none moved when `reason` is `None`).
fn assert_only(
    case: &str,
    moved: &BTreeMap<&'static str, u64>,
    reason: Option<DropReason>,
    want: u64,
) {
    for r in IDENTITY_REASONS {
        let n = moved.get(r.name()).copied().unwrap_or(0);
        let expect = if Some(r) == reason { want } else { 0 };
        assert_eq!(
            n,
            expect,
            "{case}: drops.{} moved by {n}, expected {expect}; drops moved:{}",
            r.name(),
            table(moved)
        );
    }
}

/// Runs tcp-sink in `sink_ns` and tcp-source in `src_ns` for `bytes`;
/// panics with their output unless both succeed.
fn tcp_exchange(sink_ns: &str, src_ns: &str, target: &str, bytes: u64) {
    let common = |cmd: &mut Command| {
        cmd.args([
            "--bytes",
            &bytes.to_string(),
            "--seed",
            "7",
            "--timeout-secs",
            "15",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    };
    let mut sink_cmd = exec_in(sink_ns, BIN);
    sink_cmd.args(["tcp-sink", "--listen", target]);
    common(&mut sink_cmd);
    let mut sink = sink_cmd.spawn().unwrap();
    let mut out = BufReader::new(sink.stdout.take().unwrap());
    let sink = Proc(sink);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening"), "tcp-sink said {line:?}");
    let mut src_cmd = exec_in(src_ns, BIN);
    src_cmd.args(["tcp-source", "--connect", target]);
    common(&mut src_cmd);
    let src = src_cmd.output().unwrap();
    let mut sink = sink;
    let status = sink.0.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    assert!(
        src.status.success() && status.success(),
        "TCP {src_ns} -> {target}: source {}: {}{}; sink {status}: {rest}",
        src.status,
        String::from_utf8_lossy(&src.stdout).trim(),
        String::from_utf8_lossy(&src.stderr).trim(),
    );
}

/// Frames the watcher on n2's underlay saw, read as VXLAN.
fn drain_vxlan(watch: &mut Injector, udp_port: u16) -> Vec<(Vec<u8>, ii::UnderlayPacket)> {
    let mut out = Vec::new();
    watch
        .drain(|f| {
            if let Some(u) = ii::inspect_vxlan(f, udp_port) {
                out.push((f.to_vec(), u));
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

#[test]
fn forged_identity_headers_are_dropped_by_reason_and_never_delivered() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    assert!(
        netns::which("tcpdump").is_some() && netns::which("ethtool").is_some(),
        "tcpdump or ethtool missing: run scripts/install-deps.sh"
    );
    let prefix = format!("wi{}x", std::process::id() % 1_000_000);
    let _cleanup = Cleanup(prefix.clone());
    let warden = warden_bin();
    let source = LabSource::from_file(&fixture()).unwrap();
    let opts = Options {
        prefix: Some(prefix.clone()),
        self_exe: PathBuf::from(BIN),
        warden_bin: warden.clone(),
        ready_timeout: Duration::from_secs(20),
    };
    let running = lab::up(&source, &opts, &|_| {}).unwrap_or_else(|e| panic!("lab up: {e}"));
    let dir = running.state().dir;
    let targets =
        IdentityTargets::from_lab(running.lab(), &dir, "n1", "n2", "x1", API, DB).unwrap();
    let window = targets.window_secs;
    let udp_port = targets.udp_port;
    let forger = Forger::new(targets.clone()).unwrap();
    let ns = |host: &str| ns_name(&prefix, host);
    let ns_path = |host: &str| PathBuf::from(NETNS_DIR).join(ns(host));
    let n2 = Stats {
        warden: warden.clone(),
        socket: dir.join("n2.sock"),
    };
    let n1 = Stats {
        warden: warden.clone(),
        socket: dir.join("n1.sock"),
    };

    let mut rogue = Injector::open(&ns_path("x1"), "eth0").unwrap();
    assert_eq!(rogue.mac(), targets.rogue.mac);
    // Sees what reaches n2 on the underlay (a socket of its own beside
    // warden's; outgoing frames are not seen).
    let mut n2_wire = Injector::open(&ns_path("n2"), "eth0").unwrap();
    // The lab works, and the switch knows where n2 and n1 are.
    for (from, to) in [("x1", "10.0.0.2"), ("w1", "10.1.0.23")] {
        let ping = exec_in(&ns(from), "ping")
            .args(["-c", "2", "-W", "2", "-i", "0.2", to])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {from} -> {to}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }
    let capture = Capture::start(&ns("w3"), "wl0", dir.join("w3-wl0.pcap"));
    let capture_w1 = Capture::start(&ns("w1"), "wl0", dir.join("w1-wl0.pcap"));
    let to_port = |port: u16| move |p: &InnerPacket| p.is_to(DB, port);

    // 1. Injected cases, the valid ones first.
    let port_of = |i: usize| CASE_PORT_BASE + i as u16;
    for (i, kind) in Forgery::ALL.iter().copied().enumerate() {
        let port = port_of(i);
        let before = n2.drops();
        let now = unix_now();
        for seq in 0..PER_CASE {
            let frame = forger.build(kind, seq, port, now).unwrap();
            assert!(
                rogue.send(&frame),
                "{kind:?}: the injector refused frame {seq}"
            );
        }
        let want = u64::from(PER_CASE);
        let reason = kind.expected_drop();
        if reason.is_none() {
            // Delivered: wait until the capture shows them all.
            let deadline = Instant::now() + COUNT_WAIT;
            while capture.count(to_port(port)) < PER_CASE as usize && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let moved = n2.moved(&before, reason, want);
        eprintln!(
            "{:>15} x{PER_CASE} -> port {port}: drops moved:{}",
            kind.name(),
            table(&moved)
        );
        assert_only(kind.name(), &moved, reason, want);
        let _ = rogue.drain(|_| {});
        let _ = drain_vxlan(&mut n2_wire, udp_port);
    }

    // 2. A real stamped SYN, replayed after its window.
    let _ = drain_vxlan(&mut n2_wire, udp_port);
    let replay_target = format!("{DB}:{REPLAY_PORT}");
    tcp_exchange(&ns("w3"), &ns("w1"), &replay_target, 4096);
    std::thread::sleep(Duration::from_millis(200));
    let (syn, seen) = drain_vxlan(&mut n2_wire, udp_port)
        .into_iter()
        .find(|(_, u)| {
            u.src_mac == targets.sender.mac
                && u.src_ip == targets.sender.ip
                && u.inner.is_syn()
                && u.inner.is_to(DB, REPLAY_PORT)
                && u.inner.header.is_some()
        })
        .expect("no stamped SYN from n1 to db:REPLAY_PORT seen on n2's underlay");
    let stamped = seen.inner.header.unwrap();
    let (sport, isn) = (seen.inner.flow.src_port, seen.inner.tcp.unwrap().1);
    assert_eq!(stamped.nonce, isn, "the header's nonce is the SYN's ISN");
    let same_syn = |p: &InnerPacket| {
        p.is_syn()
            && p.is_to(DB, REPLAY_PORT)
            && p.flow.src_port == sport
            && p.tcp.map(|t| t.1) == Some(isn)
    };
    // n2 reads its clock once a second: wait past the window by three.
    let stale_at = u64::from(stamped.timestamp) + u64::from(window) + 3;
    while unix_now() < stale_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    let arrived_before = capture.count(same_syn);
    assert!(
        arrived_before >= 1,
        "the original SYN was not captured in w3"
    );
    let before = n2.drops();
    let replay = ii::resent_from(&syn, targets.rogue.mac);
    for _ in 0..PER_CASE {
        assert!(rogue.send(&replay), "the injector refused the replay");
    }
    let moved = n2.moved(
        &before,
        Some(DropReason::IdentityStale),
        u64::from(PER_CASE),
    );
    eprintln!(
        "{:>15} x{PER_CASE} -> port {REPLAY_PORT} (sport {sport}, ts {}): drops moved:{}",
        "replayed_syn",
        stamped.timestamp,
        table(&moved)
    );
    assert_only(
        "replayed SYN",
        &moved,
        Some(DropReason::IdentityStale),
        u64::from(PER_CASE),
    );
    assert_eq!(
        capture.count(same_syn),
        arrived_before,
        "the replayed SYN reached w3"
    );
    // A fresh connection on the same port still works.
    tcp_exchange(&ns("w3"), &ns("w1"), &replay_target, 4096);

    // 3. An unauthenticated source under default deny: the kernel VTEP k1
    //    (legacy, by address map on n1) opens a connection to db. n1
    //    forwards it to n2 with no header; n2 counts every such SYN that
    //    reached it as missing.
    let _ = drain_vxlan(&mut n2_wire, udp_port);
    let before = n2.drops();
    let out = exec_in(&ns("k1"), "timeout")
        .args([
            "3",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{DB}/{K1_PORT}"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(124),
        "k1's connection to db must hang (no SYN-ACK, no RST): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    let k1_syns = drain_vxlan(&mut n2_wire, udp_port)
        .iter()
        .filter(|(_, u)| {
            u.src_ip == targets.sender.ip
                && u.src_mac == targets.sender.mac
                && u.inner.is_syn()
                && u.inner.is_to(DB, K1_PORT)
        })
        .inspect(|(_, u)| assert!(u.inner.header.is_none(), "n1 stamped k1's SYN: {u:?}"))
        .count() as u64;
    assert!(k1_syns >= 1, "no SYN from k1 reached n2 through n1");
    let moved = n2.moved(&before, Some(DropReason::IdentityMissing), k1_syns);
    eprintln!(
        "{:>15} x{k1_syns} -> port {K1_PORT}: drops moved:{}",
        "kernel_vtep",
        table(&moved)
    );
    assert_only(
        "k1 (unauthenticated)",
        &moved,
        Some(DropReason::IdentityMissing),
        k1_syns,
    );
    assert_eq!(
        n2_wire.stats().rx_kernel_drops,
        0,
        "the watcher on n2's underlay lost frames: the SYN count may be short"
    );

    // 4. A source nothing vouches for, under default deny: k1 pings api
    //    from an address outside n1's address map; n1 takes it for
    //    "unauthenticated", which no allow admits. (The mapped address,
    //    legacy, is admitted: the control.)
    netns::ip_in(
        &ns("k1"),
        ["addr", "add", &format!("{UNMAPPED}/24"), "dev", "vx100"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ping_api = |from: Ipv4Addr, count: u64| {
        exec_in(&ns("k1"), "ping")
            .args(["-c", &count.to_string(), "-W", "2", "-i", "0.2", "-I"])
            .arg(from.to_string())
            .arg(API.to_string())
            .output()
            .unwrap()
    };
    let legacy = ping_api(Ipv4Addr::new(10, 1, 0, 11), 2);
    assert!(
        legacy.status.success(),
        "ping legacy -> api (admitted by address map and allow): {}",
        String::from_utf8_lossy(&legacy.stdout)
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = n1.drops();
    let denied = ping_api(UNMAPPED, UNMAPPED_PINGS);
    assert!(
        !denied.status.success(),
        "api answered an unauthenticated source: {}",
        String::from_utf8_lossy(&denied.stdout)
    );
    let moved = n1.moved(&before, Some(DropReason::PolicyDenied), UNMAPPED_PINGS);
    eprintln!(
        "{:>15} x{UNMAPPED_PINGS} -> api (at n1): drops moved:{}",
        "unauthenticated",
        table(&moved)
    );
    assert_only(
        "unauthenticated source at n1",
        &moved,
        Some(DropReason::PolicyDenied),
        UNMAPPED_PINGS,
    );
    let from_unmapped = capture_w1.count(|p| p.flow.src == std::net::IpAddr::V4(UNMAPPED));
    assert_eq!(
        from_unmapped, 0,
        "packets from the unauthenticated source captured {}",
        capture_w1.what
    );
    assert!(
        capture_w1.count(|p| p.flow.src == std::net::IpAddr::V4(Ipv4Addr::new(10, 1, 0, 11))) >= 2,
        "the capture {} missed legacy's pings",
        capture_w1.what
    );

    // 5. What w3 saw: nothing of any denied case, every valid frame, and
    //    no identity header on anything delivered.
    std::thread::sleep(Duration::from_millis(300));
    let seen = capture.packets();
    let at = |port: u16| seen.iter().filter(|p| p.is_to(DB, port)).count();
    for (i, kind) in Forgery::ALL.iter().copied().enumerate() {
        let want = if kind.expected_drop().is_some() {
            0
        } else {
            PER_CASE as usize
        };
        assert_eq!(
            at(port_of(i)),
            want,
            "{kind:?}: packets to port {} captured {}",
            port_of(i),
            capture.what
        );
    }
    assert_eq!(at(K1_PORT), 0, "k1's SYN reached w3");
    assert!(
        seen.iter().all(|p| p.header.is_none()),
        "a packet delivered to w3 still carries an identity header"
    );
    eprintln!("w3 captured {} IPv4 packets", seen.len());

    drop((capture, capture_w1));
    drop((rogue, n2_wire));
    running.teardown().unwrap();
}
