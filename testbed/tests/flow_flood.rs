//! A flood of spoofed new flows from a plain VTEP peer must not crowd an
//! allowed pair out of the flow table (issue 6, "flood resistance").
//!
//! On testbed/examples/identity.toml: from the kernel VTEP k1's underlay
//! position (its namespace, its MAC and VTEP address, a configured plain
//! VTEP peer of n1), the test injects [`FLOOD`] VXLAN frames in VNI 100 as
//! fast as n1 takes them (paced to [`RATE`]), each a new UDP flow (distinct
//! 5-tuple) to api (w1, behind n1). Half come from legacy's address
//! 10.1.0.11, which n1's address map names and the policy allows to reach
//! api: allowed flows that are never answered, so never established. The
//! other half come from addresses no map covers: unauthenticated, denied.
//! api's UDP sockets on those ports take whatever arrives, so api sends
//! nothing back; a packet socket in w1 counts the marked datagrams that
//! reach it, per half.
//!
//! During the flood and after it, the allowed pair api (w1, n1) -> db (w3,
//! n2) keeps opening new TCP connections in sequence, each a small echo
//! checked byte for byte, and keeps pinging (each ping run a new ICMP id,
//! so a new flow). Every connection must succeed: at least
//! [`MIN_DURING`] while the flood runs and [`AFTER`] after it. n1's stats
//! (flows, flow-table occupancy when the engine reports it, drops by
//! reason) and its warden's RSS are read before and after and printed; no
//! `flow_table_full` drop may be counted, no denied datagram may reach api,
//! and RSS may grow by at most [`RSS_GROWTH_MAX`].
//!
//! Needs root and the release binaries:
//! `cargo build --release -p dataplane -p testbed --bins && cargo test --release -p testbed --test flow_flood -- --nocapture`.

mod common;
use common::{delta, drops, is_root, warden_bin, Cleanup};

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::port::in_netns;
use overlay::{MacAddr, Vni};
use testbed::checks::{counter, warden_stats};
use testbed::flood::{self, FloodTargets, Half};
use testbed::inject::{Injector, Station};
use testbed::lab::{self, LabSource, Options};
use testbed::netns::{self, exec_in, NETNS_DIR};
use testbed::state::ns_name;
use testbed::tcp::PatternStream;

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
const DB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);
/// legacy: k1's workload, named by n1's address map for k1.
const LEGACY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
/// k1's VTEP address (a plain VTEP peer of n1).
const K1_VTEP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const VNI: u32 = 100;
/// Sources of the unauthenticated half: in VNI 100's subnet, in no map.
const UNMAPPED: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 1, 0, 101),
    Ipv4Addr::new(10, 1, 0, 102),
    Ipv4Addr::new(10, 1, 0, 103),
];
/// api's ports the flood goes to (UDP sockets bound there take it).
const FLOOD_PORTS: [u16; 3] = [7000, 7001, 7002];
/// New flows per half, and in all.
const PER_HALF: u32 = 150_000;
const FLOOD: u64 = 2 * PER_HALF as u64;
/// Frames per second the flood is paced to (300,000 in about 4 s).
const RATE: u64 = 75_000;
/// db's port for the allowed pair's connections.
const PROBE_PORT: u16 = 5100;
/// Bytes each connection sends and gets echoed back.
const EXCHANGE: usize = 2048;
/// Connect (and each read or write) within this, else the connection failed.
const CONN_TIMEOUT: Duration = Duration::from_secs(4);
/// Pause between two connections while the flood runs.
const DURING_GAP: Duration = Duration::from_millis(10);
/// Connections that must complete while the flood runs, and after it.
const MIN_DURING: usize = 50;
const AFTER: usize = 50;
/// The after phase gives up after this many failures in a row (so a broken
/// engine fails in seconds, not 50 timeouts).
const GIVE_UP_AFTER: usize = 3;
/// Ping runs after the flood (each `ping -c 3`: a new ICMP id).
const AFTER_PINGS: usize = 3;
/// RSS growth allowed to n1's warden across the flood. The flow table is
/// allocated up front (262,144 entries before the rebuild); the flood may
/// at most touch all of it: before the rebuild a hash map of 524,288
/// buckets of 96 bytes plus a control byte, 48.5 MiB (49.7 MiB measured
/// from a flood that filled it). 64 MiB leaves room for a somewhat larger
/// entry (an origin) and for pages of buffers first touched under load;
/// per-flow allocation beyond the table, or a table that grows with the
/// flood, goes past it.
const RSS_GROWTH_MAX: u64 = 64 << 20;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/identity.toml")
}

/// VmRSS and VmHWM of a process, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20))
}

/// The MAC of interface `iface` in namespace `ns`.
fn link_mac(ns: &str, iface: &str) -> MacAddr {
    let out = netns::ip_in(ns, ["-j", "link", "show", iface]).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no MAC for {iface} in {ns}: {out}"))
}

/// What one reading of a warden's stats says that this test reports.
#[derive(Debug, Clone)]
struct Reading {
    json: serde_json::Value,
    drops: BTreeMap<&'static str, u64>,
}

impl Reading {
    fn take(warden: &Path, socket: &Path) -> Reading {
        let json = warden_stats(warden, socket).unwrap_or_else(|e| panic!("stats: {e}"));
        let drops = drops(&json);
        Reading { json, drops }
    }

    fn get(&self, path: &str) -> Option<u64> {
        counter(&self.json, path).ok()
    }

    /// `flow_table` (occupancy by state, evictions), when the engine has it.
    fn flow_table(&self) -> String {
        match self.json.get("flow_table") {
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            Some(other) => other.to_string(),
            None => "(not reported)".to_string(),
        }
    }
}

fn moved(before: &Reading, after: &Reading, path: &str) -> Option<u64> {
    Some(after.get(path)?.saturating_sub(before.get(path)?))
}

fn nonzero(d: &BTreeMap<&'static str, u64>) -> String {
    let t: Vec<String> = d
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if t.is_empty() {
        "(none)".to_string()
    } else {
        t.join(" ")
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// db's side of the connections: accepts in w3, echoes [`EXCHANGE`] bytes
/// of each connection back (one thread per connection), until stopped.
fn echo_server(listener: TcpListener, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(CONN_TIMEOUT));
                        let _ = s.set_write_timeout(Some(CONN_TIMEOUT));
                        let mut buf = vec![0u8; EXCHANGE];
                        if s.read_exact(&mut buf).is_ok() {
                            let _ = s.write_all(&buf);
                        }
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept in w3: {e}"),
            }
        }
    })
}

/// One new connection api -> db from w1: connect, send [`EXCHANGE`]
/// bytes of the stream for `seed`, read them back, compare.
fn connect_once(w1: &Path, target: SocketAddr, seed: u64) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut s = in_netns(w1, || Ok(TcpStream::connect_timeout(&target, CONN_TIMEOUT)))
        .map_err(|e| format!("netns: {e}"))?
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(CONN_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CONN_TIMEOUT)).unwrap();
    let mut want = vec![0u8; EXCHANGE];
    PatternStream::new(seed).fill(&mut want);
    s.write_all(&want).map_err(|e| format!("send: {e}"))?;
    let mut got = vec![0u8; EXCHANGE];
    s.read_exact(&mut got)
        .map_err(|e| format!("echo after {:?}: {e}", t0.elapsed()))?;
    if let Some(at) = (0..EXCHANGE).find(|&i| got[i] != want[i]) {
        return Err(format!("echo differs at byte {at}"));
    }
    Ok(t0.elapsed())
}

/// Outcome of a series of connections.
#[derive(Debug, Default)]
struct Conns {
    ok: usize,
    failed: Vec<String>,
    slowest: Duration,
    /// When the first failed one began, and how many flood frames had been
    /// sent by then.
    first_failure: Option<(Instant, u64)>,
}

impl Conns {
    fn attempted(&self) -> usize {
        self.ok + self.failed.len()
    }

    fn record(&mut self, i: u64, r: Result<Duration, String>, began: (Instant, u64)) {
        match r {
            Ok(d) => {
                self.ok += 1;
                self.slowest = self.slowest.max(d);
            }
            Err(e) => {
                self.first_failure.get_or_insert(began);
                self.failed.push(format!("#{i}: {e}"));
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}/{} succeeded (slowest {:?}){}",
            self.ok,
            self.attempted(),
            self.slowest,
            if self.failed.is_empty() {
                String::new()
            } else {
                format!("; failures: {}", self.failed.join("; "))
            }
        )
    }
}

/// One `ping -c 3` from w1 to db: (sent, answered).
fn ping_run(w1_ns: &str) -> (u64, u64) {
    let out = exec_in(w1_ns, "ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", &DB.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let num = |word: &str| -> u64 {
        line.split(',')
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (num("transmitted"), num("received"))
}

/// Ping runs: (runs, runs with no answer, echoes sent, echoes answered).
#[derive(Debug, Default, Clone, Copy)]
struct Pings {
    runs: u64,
    silent_runs: u64,
    sent: u64,
    answered: u64,
}

impl Pings {
    fn record(&mut self, (sent, answered): (u64, u64)) {
        self.runs += 1;
        self.silent_runs += u64::from(answered == 0);
        self.sent += sent;
        self.answered += answered;
    }
}

#[test]
fn allowed_pair_keeps_connecting_through_a_flood_of_spoofed_flows() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    assert!(
        netns::which("ping").is_some(),
        "ping missing: run scripts/install-deps.sh"
    );
    let prefix = format!("wf{}", std::process::id() % 1_000_000);
    let _cleanup = Cleanup(prefix.clone());
    let warden = warden_bin();
    let source = LabSource::from_file(&example()).unwrap();
    let opts = Options {
        prefix: Some(prefix.clone()),
        self_exe: PathBuf::from(BIN),
        warden_bin: warden.clone(),
        ready_timeout: Duration::from_secs(20),
    };
    let t_start = Instant::now();
    let running = lab::up(&source, &opts, &|_| {}).unwrap_or_else(|e| panic!("lab up: {e}"));
    let dir = running.state().dir;
    let ns = |host: &str| ns_name(&prefix, host);
    let ns_path = |host: &str| PathBuf::from(NETNS_DIR).join(ns(host));
    let n1_sock = dir.join("n1.sock");
    let n2_sock = dir.join("n2.sock");
    let n1_pid = running.warden_pid("n1").expect("n1's warden pid");
    let comm = std::fs::read_to_string(format!("/proc/{n1_pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "warden", "pid {n1_pid} is not n1's warden");

    // The lab works: the allowed pair, and legacy -> api (which also
    // teaches n1 where k1 is).
    for (from, to) in [("w1", DB), ("k1", API)] {
        let ping = exec_in(&ns(from), "ping")
            .args(["-c", "2", "-W", "2", "-i", "0.2", &to.to_string()])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {from} -> {to}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }

    // The flood: from k1's namespace, with k1's MAC and VTEP address.
    let mut injector = Injector::open(&ns_path("k1"), "eth0").unwrap();
    let targets = FloodTargets::from_lab(
        running.lab(),
        "n1",
        link_mac(&ns("n1"), "eth0"),
        Station {
            mac: injector.mac(),
            ip: K1_VTEP,
        },
        Vni::new(VNI).unwrap(),
        API,
        FLOOD_PORTS.to_vec(),
        LEGACY,
        UNMAPPED.to_vec(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for half in Half::ALL {
        assert!(targets.capacity(half) >= PER_HALF);
    }
    // Interleaved halves, built before the clock starts.
    let frames: Vec<Vec<u8>> = (0..PER_HALF)
        .flat_map(|i| Half::ALL.map(|h| (h, i)))
        .map(|(h, i)| targets.frame(h, i).unwrap())
        .collect();

    // api takes the flood on bound sockets (so it answers nothing); a
    // packet socket in w1 counts what arrives, per half.
    let w1_path = ns_path("w1");
    let _sinks: Vec<UdpSocket> = FLOOD_PORTS
        .iter()
        .map(|p| {
            in_netns(&w1_path, || Ok(UdpSocket::bind((API, *p))))
                .unwrap()
                .unwrap_or_else(|e| panic!("bind {API}:{p} in w1: {e}"))
        })
        .collect();
    let mut watcher = Injector::open(&w1_path, "wl0").unwrap();
    let stop_watch = Arc::new(AtomicBool::new(false));
    let delivered_mapped = Arc::new(AtomicU64::new(0));
    let delivered_unmapped = Arc::new(AtomicU64::new(0));
    let watch = {
        let (stop, mapped, unmapped) = (
            stop_watch.clone(),
            delivered_mapped.clone(),
            delivered_unmapped.clone(),
        );
        std::thread::spawn(move || {
            let mut last = false;
            loop {
                watcher
                    .drain(|f| match flood::find_mark(f) {
                        Some((Half::Mapped, _)) => {
                            mapped.fetch_add(1, Ordering::Relaxed);
                        }
                        Some((Half::Unmapped, _)) => {
                            unmapped.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {}
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
                if last {
                    return watcher.stats().rx_kernel_drops;
                }
                last = stop.load(Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    // db echoes in w3; one connection before anything, as a control.
    let stop_server = Arc::new(AtomicBool::new(false));
    let listener = in_netns(&ns_path("w3"), || Ok(TcpListener::bind((DB, PROBE_PORT))))
        .unwrap()
        .unwrap_or_else(|e| panic!("listen in w3: {e}"));
    let server = echo_server(listener, stop_server.clone());
    let target = SocketAddr::from((DB, PROBE_PORT));
    connect_once(&w1_path, target, 0).unwrap_or_else(|e| panic!("control connection: {e}"));

    let before = Reading::take(&warden, &n1_sock);
    let n2_before = Reading::take(&warden, &n2_sock);
    let (rss_before, hwm_before) = rss(n1_pid);

    // During: connections in sequence and ping runs, until the flood ends.
    let flood_done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let during_conns = {
        let (done, w1, sent) = (flood_done.clone(), w1_path.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut c = Conns::default();
            let mut i = 1_000;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                // Frames sent when the attempt began.
                let began = (Instant::now(), sent.load(Ordering::Relaxed));
                c.record(i, connect_once(&w1, target, i), began);
                std::thread::sleep(DURING_GAP);
            }
            c
        })
    };
    let during_pings = {
        let (done, w1) = (flood_done.clone(), ns("w1"));
        std::thread::spawn(move || {
            let mut p = Pings::default();
            while !done.load(Ordering::Relaxed) {
                p.record(ping_run(&w1));
            }
            p
        })
    };
    let t_flood = Instant::now();
    let (mut refused, mut first_refusal) = (0u64, None);
    for (k, f) in frames.iter().enumerate() {
        let mut tries = 0u32;
        while !injector.send(f) {
            tries += 1;
            if tries > 100_000 {
                panic!("the injector refused frame {k} 100,000 times");
            }
            refused += 1;
            first_refusal.get_or_insert(k);
            std::thread::yield_now();
        }
        if k % 512 == 0 {
            sent.store(k as u64, Ordering::Relaxed);
            let due = t_flood + Duration::from_secs_f64(k as f64 / RATE as f64);
            if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(ahead);
            }
        }
    }
    let flood_secs = t_flood.elapsed().as_secs_f64();
    drop(frames);
    flood_done.store(true, Ordering::Relaxed);
    let during = during_conns.join().unwrap();
    let during_ping = during_pings.join().unwrap();
    let mid = Reading::take(&warden, &n1_sock);
    let (rss_mid, _) = rss(n1_pid);

    // After: new connections and ping runs.
    let mut after = Conns::default();
    let mut streak = 0;
    for i in 0..AFTER as u64 {
        let began = (Instant::now(), FLOOD);
        let r = connect_once(&w1_path, target, i + 2_000);
        streak = if r.is_ok() { 0 } else { streak + 1 };
        after.record(i + 2_000, r, began);
        if streak >= GIVE_UP_AFTER {
            break;
        }
    }
    let mut after_ping = Pings::default();
    for _ in 0..AFTER_PINGS {
        after_ping.record(ping_run(&ns("w1")));
    }
    // The worker publishes its table's size once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let end = Reading::take(&warden, &n1_sock);
    let n2_end = Reading::take(&warden, &n2_sock);
    let (rss_after, hwm_after) = rss(n1_pid);
    stop_watch.store(true, Ordering::Relaxed);
    let watcher_drops = watch.join().unwrap();
    stop_server.store(true, Ordering::Relaxed);
    server.join().unwrap();

    // What happened, for the note.
    // What n1's underlay port took in, less what n2 sent it: the flood
    // (and a few ARP and probe frames).
    let uplink_rx = moved(&before, &end, "ports.uplink.rx_packets");
    let decap = moved(&before, &end, "vni.100.rx_decap_packets");
    let from_n2 = moved(&n2_before, &n2_end, "vni.100.tx_encap_packets");
    let flood_at_n1 = uplink_rx.zip(from_n2).map(|(d, n)| d.saturating_sub(n));
    let ring_drops = moved(&before, &end, "ports.uplink.rx_kernel_drops");
    let drops_during = delta(&before.drops, &mid.drops);
    let drops_all = delta(&before.drops, &end.drops);
    let mapped = delivered_mapped.load(Ordering::Relaxed);
    let unmapped = delivered_unmapped.load(Ordering::Relaxed);
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "flood: {FLOOD} frames ({PER_HALF} mapped + {PER_HALF} unmapped) from k1 in {flood_secs:.2} s \
         ({:.0}/s); injector ring full {refused} times{}",
        FLOOD as f64 / flood_secs,
        first_refusal.map_or(String::new(), |k| format!(" (first at frame {k})"))
    );
    eprintln!(
        "n1: uplink received {} (n2 sent {} => flood frames at n1 {}), ring drops {}; decapsulated {}",
        opt(uplink_rx),
        opt(from_n2),
        opt(flood_at_n1),
        opt(ring_drops),
        opt(decap)
    );
    eprintln!(
        "n1 flows (published once a second): before {} / right after the flood {} / end {}",
        opt(before.get("flows")),
        opt(mid.get("flows")),
        opt(end.get("flows"))
    );
    eprintln!("n1 flow_table before: {}", before.flow_table());
    eprintln!("n1 flow_table after flood: {}", mid.flow_table());
    eprintln!("n1 flow_table end: {}", end.flow_table());
    eprintln!(
        "n1 drops moved during the flood: {}",
        nonzero(&drops_during)
    );
    eprintln!("n1 drops moved in all: {}", nonzero(&drops_all));
    eprintln!(
        "delivered to api (w1): mapped (allowed) {mapped} of {PER_HALF}, unmapped (denied) {unmapped} of {PER_HALF}; watcher ring drops {watcher_drops}"
    );
    eprintln!(
        "n1 warden RSS: before {} / after flood {} / end {} (growth {}, bound {}); VmHWM {} -> {}",
        mib(rss_before),
        mib(rss_mid),
        mib(rss_after),
        mib(growth),
        mib(RSS_GROWTH_MAX),
        mib(hwm_before),
        mib(hwm_after)
    );
    eprintln!(
        "connections api -> db during the flood: {}",
        during.describe()
    );
    if let Some((at, sent)) = during.first_failure {
        eprintln!(
            "  first failure: attempt began about {sent} frames ({:.2} s) into the flood",
            at.saturating_duration_since(t_flood).as_secs_f64()
        );
    }
    eprintln!(
        "connections api -> db after the flood: {}",
        after.describe()
    );
    eprintln!(
        "pings api -> db during: {} runs ({} unanswered), {}/{} echoes answered; after: {} runs ({} unanswered), {}/{}",
        during_ping.runs,
        during_ping.silent_runs,
        during_ping.answered,
        during_ping.sent,
        after_ping.runs,
        after_ping.silent_runs,
        after_ping.answered,
        after_ping.sent
    );
    eprintln!("total {:.1} s", t_start.elapsed().as_secs_f64());

    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    if let Some(n) = flood_at_n1 {
        check(
            n >= FLOOD,
            format!("only {n} of the {FLOOD} flood frames reached n1 (lab too slow?)"),
        );
    }
    if let Some(n) = ring_drops {
        check(
            n == 0,
            format!("n1's uplink ring dropped {n} frames: the flood did not all reach the engine"),
        );
    }
    check(
        during.attempted() >= MIN_DURING && during.failed.is_empty(),
        format!(
            "during the flood: {} (want 100% of at least {MIN_DURING})",
            during.describe()
        ),
    );
    check(
        after.attempted() >= AFTER && after.failed.is_empty(),
        format!(
            "after the flood: {} (want 100% of {AFTER})",
            after.describe()
        ),
    );
    check(
        during_ping.runs >= 1 && during_ping.silent_runs == 0,
        format!("ping runs during the flood: {during_ping:?} (every run answered)"),
    );
    check(
        after_ping.answered == after_ping.sent && after_ping.sent > 0,
        format!("pings after the flood: {after_ping:?} (every echo answered)"),
    );
    check(
        unmapped == 0,
        format!("{unmapped} datagrams from unauthenticated sources reached api"),
    );
    let full = drops_all.get("flow_table_full").copied().unwrap_or(0);
    check(full == 0, format!("flow_table_full moved by {full}"));
    check(
        growth <= RSS_GROWTH_MAX,
        format!(
            "n1's RSS grew by {} (bound {})",
            mib(growth),
            mib(RSS_GROWTH_MAX)
        ),
    );

    drop((injector, _sinks));
    running.teardown().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
