//! Workload identity between two wardens, end to end, on
//! testbed/examples/identity.toml (and a fixture derived from it):
//!
//! 1. captures: byte-exact TCP and UDP between allowed identities while
//!    tcpdump runs inside the workloads' namespaces; no delivered packet
//!    carries an IPv4 option, while on the underlay the identity option
//!    (type 0x9e) is on the flow-opening packets; `warden flows` shows how
//!    each warden learnt the identity;
//! 2. restart: the receiving warden is killed with SIGKILL during a TCP
//!    transfer and started again; the transfer completes byte-exact
//!    (periodic re-stamp plus TCP retransmission), and the stall is
//!    measured from a capture at the destination;
//! 3. changed binary: n1 re-attested api with a new executable hash while
//!    n2 still knows the old document; api's SYN reaches n2 with the new id
//!    and goes no further (identity_not_authorized).
//!
//! Needs root, tcpdump, and the release binaries:
//! `cargo build --release -p dataplane -p testbed --bins && cargo test --release -p testbed --test identity`.

mod common;
use common::{is_root, tcp_transfer, warden_bin, Cleanup, Proc};

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testbed::checks::{counter, warden_stats};
use testbed::lab::{self, LabSource, Options, RunningLab};
use testbed::netns::{self, exec_in};
use testbed::process::Pid;
use testbed::state::ns_name;
use testbed::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
const DB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);
const CACHE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 24);
const API_NAME: &str = "spiffe://lab/ns/payments/sa/api";
const DB_NAME: &str = "spiffe://lab/ns/payments/sa/db";
/// The identity header's IPv4 option type (docs/identity.md).
const OPT_IDENTITY: u8 = 0x9e;
const VXLAN_PORT: u16 = 4789;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

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

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/identity.toml")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A prefix unique to this process and test.
fn prefix(tag: &str) -> String {
    format!("wt{}{tag}", std::process::id() % 1_000_000)
}

fn up(file: &Path, prefix: &str) -> RunningLab {
    let source = LabSource::from_file(file).unwrap();
    let opts = Options {
        prefix: Some(prefix.to_string()),
        self_exe: PathBuf::from(BIN),
        warden_bin: warden_bin(),
        ready_timeout: Duration::from_secs(20),
    };
    lab::up(&source, &opts, &|_| {}).unwrap_or_else(|e| panic!("lab up: {e}"))
}

/// A byte-exact UDP echo exchange: (echo, probe).
fn udp_exchange(
    prefix: &str,
    from: &str,
    to: &str,
    target: &str,
    count: u32,
    size: u32,
) -> (Proc, Proc) {
    let common = |cmd: &mut Command| {
        cmd.args([
            "--count",
            &count.to_string(),
            "--size",
            &size.to_string(),
            "--seed",
            "7",
            "--timeout-secs",
            "60",
        ]);
    };
    let mut echo = exec_in(&ns_name(prefix, to), BIN);
    echo.args(["udp-echo", "--listen", target]);
    common(&mut echo);
    let mut echo = Proc::spawn(echo, &format!("udp-echo {to}"));
    echo.wait_for_line("listening", Duration::from_secs(10));
    let mut probe = exec_in(&ns_name(prefix, from), BIN);
    probe.args(["udp-probe", "--connect", target]);
    common(&mut probe);
    (echo, Proc::spawn(probe, &format!("udp-probe {from}")))
}

fn must_pass(mut p: Proc, secs: u64) -> String {
    let (ok, out) = p.wait(Instant::now() + Duration::from_secs(secs));
    assert!(ok, "{out}");
    out
}

// ---------------------------------------------------------------------------
// Captures
// ---------------------------------------------------------------------------

/// tcpdump writing a pcap inside a lab namespace; killed on drop.
struct Capture {
    proc: Proc,
    path: PathBuf,
    stderr: mpsc::Receiver<String>,
}

/// What a stopped capture holds.
struct Captured {
    /// (seconds since the epoch, frame bytes up to the snap length).
    frames: Vec<(f64, Vec<u8>)>,
    /// Frames the kernel dropped before tcpdump read them.
    dropped: u64,
    what: String,
}

impl Capture {
    /// Starts tcpdump on `iface` in `ns` and waits until it listens.
    fn start(ns: &str, iface: &str, filter: &str, path: PathBuf) -> Capture {
        let mut cmd = exec_in(ns, "tcpdump");
        // Immediate mode: no frame waits in a ring block that is not yet
        // handed over when tcpdump is stopped (such frames would be lost
        // without being counted as drops).
        cmd.args(["-i", iface, "-n", "--immediate-mode", "-s", "256"])
            .args(["-B", "32768", "-Z", "root", "-w"])
            .arg(&path)
            .args(filter.split_whitespace());
        let mut proc = Proc::spawn(cmd, &format!("tcpdump {ns} {iface}"));
        let err = proc
            .child
            .as_mut()
            .and_then(|c| c.stderr.take())
            .expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => panic!("{} did not start listening", proc.what),
            }
        }
        Capture {
            proc,
            path,
            stderr: rx,
        }
    }

    /// Stops tcpdump (SIGTERM, so it flushes) and reads the pcap.
    fn stop(mut self) -> Captured {
        // Let the last frames reach tcpdump.
        std::thread::sleep(Duration::from_millis(300));
        if let Some(pid) = self.proc.child.as_ref().and_then(|c| Pid::current(c.id())) {
            pid.signal(Signal::Term);
        }
        let (_, out) = self.proc.wait(Instant::now() + Duration::from_secs(10));
        let (mut dropped, mut captured, mut received) = (None, None, None);
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            let count = |suffix: &str| line.strip_suffix(suffix)?.trim().parse::<u64>().ok();
            dropped = dropped.or(count(" packets dropped by kernel"));
            captured = captured.or(count(" packets captured"));
            received = received.or(count(" packets received by filter"));
        }
        assert_eq!(
            captured, received,
            "{}: tcpdump captured fewer packets than its filter received ({out})",
            self.proc.what
        );
        let bytes = std::fs::read(&self.path)
            .unwrap_or_else(|e| panic!("{}: {e} ({out})", self.path.display()));
        Captured {
            frames: read_pcap(&bytes).unwrap_or_else(|e| panic!("{}: {e}", self.path.display())),
            dropped: dropped.unwrap_or_else(|| panic!("no drop count from {out}")),
            what: self.proc.what.clone(),
        }
    }
}

/// The frames of a classic pcap file with Ethernet link type.
fn read_pcap(b: &[u8]) -> Result<Vec<(f64, Vec<u8>)>, String> {
    let magic = b.get(..4).ok_or("short pcap")?;
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => return Err(format!("not a pcap file (magic {magic:02x?})")),
    };
    let u32_at = |o: usize| -> Result<u32, String> {
        let w: [u8; 4] = b
            .get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or("truncated pcap")?;
        Ok(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    };
    if u32_at(20)? != 1 {
        return Err(format!("link type {} is not Ethernet", u32_at(20)?));
    }
    let mut frames = Vec::new();
    let mut o = 24;
    while o < b.len() {
        let secs = f64::from(u32_at(o)?);
        let frac = f64::from(u32_at(o + 4)?) / if nanos { 1e9 } else { 1e6 };
        let len = u32_at(o + 8)? as usize;
        let data = b.get(o + 16..o + 16 + len).ok_or("truncated record")?;
        frames.push((secs + frac, data.to_vec()));
        o += 16 + len;
    }
    Ok(frames)
}

/// The IPv4 packet in an Ethernet frame (as far as it was captured).
struct Ip4<'a> {
    ihl: usize,
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    total_len: usize,
    options: &'a [u8],
    /// The L4 header and whatever of the payload was captured.
    l4: &'a [u8],
}

fn ipv4(frame: &[u8]) -> Option<Ip4<'_>> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    let addr = |o: usize| -> Option<Ipv4Addr> {
        let a: [u8; 4] = ip.get(o..o + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(a))
    };
    Some(Ip4 {
        ihl,
        protocol: *ip.get(9)?,
        src: addr(12)?,
        dst: addr(16)?,
        total_len: usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?])),
        options: ip.get(20..ihl)?,
        l4: ip.get(ihl..)?,
    })
}

impl Ip4<'_> {
    fn ports(&self) -> Option<(u16, u16)> {
        let p = self.l4.get(..4)?;
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    }

    /// TCP flags byte.
    fn tcp_flags(&self) -> Option<u8> {
        (self.protocol == PROTO_TCP)
            .then(|| self.l4.get(13).copied())
            .flatten()
    }

    fn is_syn(&self) -> bool {
        self.tcp_flags().is_some_and(|f| f & 0x12 == 0x02)
    }

    fn is_syn_ack(&self) -> bool {
        self.tcp_flags().is_some_and(|f| f & 0x12 == 0x12)
    }

    /// TCP payload bytes, from the IP total length (not what was captured).
    fn tcp_payload_len(&self) -> usize {
        let off = self.l4.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
        self.total_len.saturating_sub(self.ihl + off)
    }

    /// The data of the first IPv4 option of type `kind`.
    fn option(&self, kind: u8) -> Option<&[u8]> {
        let mut o = self.options;
        while let Some(&t) = o.first() {
            match t {
                0 => return None,
                1 => o = o.get(1..)?,
                _ => {
                    let len = usize::from(*o.get(1)?);
                    let body = o.get(..len.max(2))?;
                    if t == kind {
                        return Some(body);
                    }
                    o = o.get(len.max(2)..)?;
                }
            }
        }
        None
    }
}

/// The inner frame of a VXLAN packet on the underlay.
fn vxlan_inner(frame: &[u8]) -> Option<&[u8]> {
    let outer = ipv4(frame)?;
    if outer.protocol != PROTO_UDP || outer.ports()?.1 != VXLAN_PORT {
        return None;
    }
    outer.l4.get(16..)
}

impl Captured {
    fn packets(&self) -> impl Iterator<Item = (f64, Ip4<'_>)> {
        self.frames
            .iter()
            .filter_map(|(t, f)| ipv4(f).map(|ip| (*t, ip)))
    }

    /// Asserts that the kernel lost nothing and that no IPv4 packet in the
    /// capture carries an option; returns the number of IPv4 packets.
    fn assert_no_options(&self) -> usize {
        assert_eq!(
            self.dropped, 0,
            "{}: the kernel dropped frames, the capture is incomplete",
            self.what
        );
        let with: Vec<String> = self
            .packets()
            .filter(|(_, ip)| ip.ihl != 20)
            .map(|(_, ip)| {
                format!(
                    "{} -> {} ihl {} {:02x?}",
                    ip.src, ip.dst, ip.ihl, ip.options
                )
            })
            .collect();
        assert!(
            with.is_empty(),
            "{}: {} delivered packets carry IPv4 options, first ones: {:?}",
            self.what,
            with.len(),
            &with[..with.len().min(5)]
        );
        self.packets().count()
    }

    /// Sum of TCP payload bytes from `src` to `dst:port`.
    fn tcp_bytes(&self, src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> usize {
        self.packets()
            .filter(|(_, ip)| {
                ip.src == src
                    && ip.dst == dst
                    && ip.protocol == PROTO_TCP
                    && ip.ports().is_some_and(|(_, d)| d == port)
            })
            .map(|(_, ip)| ip.tcp_payload_len())
            .sum()
    }

    /// Distinct sequence numbers of udp-probe datagrams from `src:*` to
    /// `dst:port` (or, with `echo`, from `src:port` back to `dst:*`).
    fn udp_seqs(&self, src: Ipv4Addr, dst: Ipv4Addr, port: u16, echo: bool) -> usize {
        let mut seqs: Vec<u32> = self
            .packets()
            .filter(|(_, ip)| {
                ip.src == src
                    && ip.dst == dst
                    && ip.protocol == PROTO_UDP
                    && ip
                        .ports()
                        .is_some_and(|(s, d)| if echo { s == port } else { d == port })
            })
            .filter_map(|(_, ip)| {
                let d = ip.l4.get(8..16)?;
                (d.get(..4)? == b"wlu1").then(|| u32::from_be_bytes([d[4], d[5], d[6], d[7]]))
            })
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.len()
    }
}

fn flows(warden: &Path, socket: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(warden)
        .args(["flows", "--json", "-s"])
        .arg(socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "warden flows: {} (does the control socket serve `flows`? see dataplane/src/control.rs `handle`)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("warden flows --json: {e}"))
}

/// The flow from `src` to `dst:port` (protocol `proto`), as `warden flows`
/// lists it.
struct FlowSel {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    port: u16,
}

/// Waits (up to 3 s: rows are published once a second) until the flow's
/// row satisfies `want`; fails showing the row (or all rows) last seen.
fn flow_row(warden: &Path, socket: &Path, f: &FlowSel, want: &dyn Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let rows = flows(warden, socket);
        let found = rows.iter().find(|r| {
            r["src"] == f.src.to_string()
                && r["dst"] == f.dst.to_string()
                && r["protocol"] == f.proto
                && r["dst_port"] == f.port
        });
        match found {
            Some(r) if want(r) => return,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Some(r) => panic!(
                "flow {} -> {}:{} at {} is not as expected: {r:#}",
                f.src,
                f.dst,
                f.port,
                socket.display()
            ),
            None => panic!(
                "no flow {} -> {}:{} at {}: {rows:#?}",
                f.src,
                f.dst,
                f.port,
                socket.display()
            ),
        }
    }
}

fn drop_count(warden: &Path, socket: &Path, reason: &str) -> u64 {
    let stats = warden_stats(warden, socket).unwrap_or_else(|e| panic!("stats: {e}"));
    counter(&stats, &format!("drops.{reason}")).unwrap_or_else(|e| panic!("{e}"))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn delivered_packets_carry_no_identity_option_while_the_underlay_does() {
    if !can_run() {
        return;
    }
    const TCP_BYTES: u64 = 10 * 1024 * 1024;
    const TCP_PORT: u16 = 5001;
    const UDP_PORT: u16 = 5005;
    const UDP_COUNT: u32 = 1000;
    let p = prefix("c");
    let _cleanup = Cleanup(p.clone());
    let warden = warden_bin();
    let running = up(&example(), &p);
    let dir = running.state().dir;
    let ns = |h: &str| ns_name(&p, h);
    let caps = [
        Capture::start(&ns("w3"), "wl0", "", dir.join("w3.pcap")),
        Capture::start(&ns("w4"), "wl0", "", dir.join("w4.pcap")),
        Capture::start(&ns("w1"), "wl0", "", dir.join("w1.pcap")),
        // What each warden receives on the underlay (a warden's own
        // AF_PACKET sends bypass the capture taps of its interface).
        Capture::start(
            &ns("n2"),
            "eth0",
            &format!("udp port {VXLAN_PORT}"),
            dir.join("n2.pcap"),
        ),
        Capture::start(
            &ns("n1"),
            "eth0",
            &format!("udp port {VXLAN_PORT}"),
            dir.join("n1.pcap"),
        ),
    ];

    let (sink, source) = tcp_transfer(
        &p,
        "w1",
        "w3",
        &format!("{DB}:{TCP_PORT}"),
        TCP_BYTES,
        None,
        120,
    );
    let src_out = must_pass(source, 150);
    let sink_out = must_pass(sink, 10);
    let (echo, probe) = udp_exchange(
        &p,
        "w1",
        "w4",
        &format!("{CACHE}:{UDP_PORT}"),
        UDP_COUNT,
        1000,
    );
    let probe_out = must_pass(probe, 70);
    let echo_out = must_pass(echo, 10);
    eprintln!("{src_out}\n{sink_out}\n{probe_out}\n{echo_out}");

    let [w3, w4, w1, n2, n1] = caps.map(Capture::stop);

    // Destinations: nothing delivered carries an option, and the captures
    // hold the whole exchange (so they cannot pass by being empty).
    let n = w3.assert_no_options();
    let to_db = w3.tcp_bytes(API, DB, TCP_PORT);
    assert!(
        to_db >= TCP_BYTES as usize,
        "w3 saw {to_db} TCP payload bytes from api in {n} packets, expected at least {TCP_BYTES}"
    );
    let syns: Vec<_> = w3
        .packets()
        .filter(|(_, ip)| ip.src == API && ip.is_syn())
        .collect();
    assert!(!syns.is_empty(), "w3 never saw api's SYN");
    w4.assert_no_options();
    let at_cache = w4.udp_seqs(API, CACHE, UDP_PORT, false);
    assert_eq!(
        at_cache,
        UDP_COUNT as usize,
        "distinct datagrams at w4, of {} UDP packets from api in {} frames ({} dropped)",
        w4.packets()
            .filter(|(_, ip)| ip.src == API && ip.protocol == PROTO_UDP)
            .count(),
        w4.frames.len(),
        w4.dropped
    );
    w1.assert_no_options();
    assert!(
        w1.packets().any(|(_, ip)| ip.src == DB && ip.is_syn_ack()),
        "w1 never saw db's SYN-ACK"
    );
    assert_eq!(
        w1.udp_seqs(CACHE, API, UDP_PORT, true),
        UDP_COUNT as usize,
        "distinct echoes at w1"
    );

    // The underlay: the identity option was on the wire, both ways (n2
    // receives api's packets, n1 the replies).
    let stamped = |at: &Captured, src: Ipv4Addr, dst: Ipv4Addr, pred: &dyn Fn(&Ip4) -> bool| {
        at.frames
            .iter()
            .filter_map(|(_, f)| vxlan_inner(f).and_then(ipv4))
            .filter(|ip| ip.src == src && ip.dst == dst && pred(ip))
            .filter(|ip| {
                ip.ihl > 20
                    && ip
                        .option(OPT_IDENTITY)
                        .is_some_and(|o| o.len() == 28 && o.get(1) == Some(&28))
            })
            .count()
    };
    let inner = |at: &Captured| {
        at.frames
            .iter()
            .filter(|(_, f)| vxlan_inner(f).is_some())
            .count()
    };
    assert_eq!(n2.dropped + n1.dropped, 0, "underlay capture incomplete");
    let syn = stamped(&n2, API, DB, &|ip| {
        ip.is_syn() && ip.ports().is_some_and(|(_, d)| d == TCP_PORT)
    });
    let syn_ack = stamped(&n1, DB, API, &|ip| ip.is_syn_ack());
    let udp_first = stamped(&n2, API, CACHE, &|ip| ip.protocol == PROTO_UDP);
    let udp_back = stamped(&n1, CACHE, API, &|ip| ip.protocol == PROTO_UDP);
    eprintln!(
        "underlay: n2 received {} VXLAN packets, n1 {}; stamped: SYN {syn}, SYN-ACK {syn_ack}, \
         UDP api->cache {udp_first}, cache->api {udp_back}; delivered packets: w3 {n}, w4 {}, w1 {}",
        inner(&n2),
        inner(&n1),
        w4.packets().count(),
        w1.packets().count()
    );
    assert!(syn >= 1, "no stamped SYN api -> db reached n2");
    assert!(syn_ack >= 1, "no stamped SYN-ACK db -> api reached n1");
    assert!(
        udp_first >= 1,
        "no stamped UDP datagram api -> cache reached n2"
    );
    assert!(udp_back >= 1, "no stamped UDP echo cache -> api reached n1");
    // Stamps are for flow openings (and re-stamps), not every packet.
    let any_stamp =
        |at: &Captured| stamped(at, API, DB, &|_| true) + stamped(at, DB, API, &|_| true);
    assert!(
        any_stamp(&n2) + any_stamp(&n1) <= 4,
        "api <-> db: {} stamped packets in a transfer of a fraction of a second",
        any_stamp(&n2) + any_stamp(&n1)
    );

    // How each warden knows api's identity for api -> db (last: it needs
    // `warden flows`).
    let s1 = dir.join("n1.sock");
    let s2 = dir.join("n2.sock");
    let api_db = FlowSel {
        src: API,
        dst: DB,
        proto: PROTO_TCP,
        port: TCP_PORT,
    };
    flow_row(&warden, &s1, &api_db, &|r| {
        r["src_identity"] == API_NAME
            && r["identity_source"] == "local_port"
            && r["from"] == "local"
    });
    flow_row(&warden, &s2, &api_db, &|r| {
        r["src_identity"] == API_NAME
            && r["identity_source"] == "header"
            && r["from"] == "10.0.0.1"
            && r["dst_identity"] == DB_NAME
            && r["verdict"] == "allow"
            // The transfer's data went through this entry.
            && r["packets"].as_u64().unwrap_or(0) >= 7000
    });
    let api_cache = FlowSel {
        src: API,
        dst: CACHE,
        proto: PROTO_UDP,
        port: UDP_PORT,
    };
    flow_row(&warden, &s2, &api_cache, &|r| {
        r["identity_source"] == "header"
            && r["verdict"] == "allow"
            && r["packets"].as_u64().unwrap_or(0) >= u64::from(UDP_COUNT)
    });

    running.teardown().unwrap();
}

#[test]
fn transfer_survives_a_restart_of_the_receiving_warden() {
    if !can_run() {
        return;
    }
    // About 8 s at this rate: long enough for a kill at 1 s, a restart,
    // and recovery by the sender's periodic re-stamp.
    const BYTES: u64 = 24 * 1024 * 1024;
    const RATE_MBIT: u64 = 24;
    const PORT: u16 = 5001;
    let p = prefix("r");
    let _cleanup = Cleanup(p.clone());
    let warden = warden_bin();
    let mut running = up(&example(), &p);
    let dir = running.state().dir;
    let socket = dir.join("n2.sock");
    let cap = Capture::start(
        &ns_name(&p, "w3"),
        "wl0",
        &format!("tcp and host {API}"),
        dir.join("w3.pcap"),
    );
    // What reaches n2 on the underlay: when the re-stamp arrives.
    let underlay = Capture::start(
        &ns_name(&p, "n2"),
        "eth0",
        &format!("udp port {VXLAN_PORT}"),
        dir.join("n2.pcap"),
    );

    let (mut sink, mut source) = tcp_transfer(
        &p,
        "w1",
        "w3",
        &format!("{DB}:{PORT}"),
        BYTES,
        Some(RATE_MBIT),
        120,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !source.finished() && !sink.finished(),
        "the transfer ended before the restart: nothing would be tested"
    );
    let old_pid = running.warden_pid("n2").expect("n2 runs");
    let killed_at = now_secs();
    let restart = running
        .restart_warden("n2", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("restart: {e}"));
    assert_eq!(restart.old_pid, old_pid);
    assert_ne!(restart.new_pid, old_pid);
    assert!(Pid::current(old_pid).is_none(), "old n2 still runs");
    let recorded = running.state();
    assert!(
        recorded
            .processes
            .iter()
            .any(|r| r.pid.pid == restart.new_pid && r.what == "warden n2"),
        "the new n2 is not tracked in the run's state"
    );
    assert!(!recorded.processes.iter().any(|r| r.pid.pid == old_pid));

    let (src_ok, src_out) = source.wait(Instant::now() + Duration::from_secs(150));
    let (sink_ok, sink_out) = sink.wait(Instant::now() + Duration::from_secs(10));
    let missing = drop_count(&warden, &socket, "identity_missing");
    let log = std::fs::read_to_string(dir.join("n2.log")).unwrap_or_default();
    assert!(src_ok, "{src_out}\n--- n2 log\n{log}");
    assert!(sink_ok, "{sink_out}\n--- n2 log\n{log}");
    let captured = cap.stop();
    let underlay = underlay.stop();
    let restarted_at = killed_at + restart.down_for.as_secs_f64();

    // The stall: the longest gap between data segments reaching db.
    let data: Vec<f64> = captured
        .packets()
        .filter(|(_, ip)| ip.src == API && ip.tcp_payload_len() > 0)
        .map(|(t, _)| t)
        .collect();
    let (gap, gap_start) = data
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
    let resumed = data
        .iter()
        .find(|&&t| t > restarted_at)
        .map_or(f64::NAN, |t| t - killed_at);
    // Stamped api -> db packets that reached n2 after the restart: (seconds
    // after the kill, announce-only).
    let restamps: Vec<(f64, bool)> = underlay
        .frames
        .iter()
        .filter(|(t, _)| *t > restarted_at)
        .filter_map(|(t, f)| {
            let ip = ipv4(vxlan_inner(f)?)?;
            let o = ip.option(OPT_IDENTITY)?;
            let announce = o.get(2)? & 1 == 1;
            (ip.src == API && ip.dst == DB).then_some((t - killed_at, announce))
        })
        .collect();
    let shown: Vec<String> = restamps
        .iter()
        .map(|(t, a)| format!("{t:.2} s{}", if *a { " (announce)" } else { "" }))
        .collect();
    eprintln!(
        "n2 killed (pid {old_pid}) and answering again (pid {}) after {:.0} ms; \
         longest stall at db: {gap:.2} s (from {:.2} s after the kill); \
         first data at db {resumed:.2} s after the kill; \
         re-stamps reaching the new n2 at {shown:?} after the kill; \
         identity_missing on the new n2: {missing}; {src_out}",
        restart.new_pid,
        restart.down_for.as_secs_f64() * 1e3,
        gap_start - killed_at,
    );
    captured.assert_no_options();
    assert!(
        gap >= restart.down_for.as_secs_f64() * 0.5,
        "no stall seen at db ({gap:.2} s): was the warden really down?"
    );
    assert!(resumed.is_finite(), "no data reached db after the restart");
    // Recovery came from the sender's periodic re-stamp, and the first
    // re-stamp to reach the new n2 re-opened the flow: the segment it
    // carries (or that follows its announce-only packet) is delivered.
    let first = restamps.first().map(|(t, _)| *t);
    assert!(
        first.is_some_and(|t| t <= resumed + 0.01),
        "no re-stamp reached the new n2 before data resumed at db ({shown:?})"
    );
    assert!(
        first.is_some_and(|t| resumed - t < 0.5),
        "the first re-stamp reached the new n2 at {shown:?} after the kill, but data resumed \
         at db only {resumed:.2} s after the kill: the segment that came with the re-stamp was \
         dropped (is a receive burst handled out of order, the data before its announce?)"
    );
    // Mid-flow segments reached the new n2 before a re-stamp did.
    assert!(missing >= 1, "identity_missing on the new n2: {missing}");
    // The new n2 learnt the flow from a re-stamped header.
    let api_db = FlowSel {
        src: API,
        dst: DB,
        proto: PROTO_TCP,
        port: PORT,
    };
    flow_row(&warden, &socket, &api_db, &|r| {
        r["identity_source"] == "header"
            && r["src_identity"] == API_NAME
            && r["verdict"] == "allow"
            && r["packets"].as_u64().unwrap_or(0) > 0
    });

    running.teardown().unwrap();
}

#[test]
fn changed_binary_hash_is_refused_before_the_syn_reaches_db() {
    if !can_run() {
        return;
    }
    const PORT: u16 = 5001;
    let p = prefix("x");
    let _cleanup = Cleanup(p.clone());
    let warden = warden_bin();
    // The ids of api before and after the change, as `warden identity
    // attest` computes them from the two executables the fixture names.
    let attest = |content: &str| -> (String, String) {
        let exe = std::env::temp_dir().join(format!("wl-{p}-{}", content.trim()));
        std::fs::write(&exe, content).unwrap();
        let out = Command::new(&warden)
            .args(["identity", "attest", "--exe"])
            .arg(&exe)
            .args(["--name", API_NAME, "--label", "app=api", "--host-id", "n1"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&exe);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "attest: {text}");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("# id = "))
            .unwrap_or_else(|| panic!("no id in {text}"))
            .to_string();
        let sha = text
            .lines()
            .find_map(|l| l.strip_prefix("exe_sha256 = "))
            .unwrap_or_else(|| panic!("no exe_sha256 in {text}"))
            .trim_matches('"')
            .to_string();
        (id, sha)
    };
    let (old_id, old_sha) = attest("api-v1\n");
    let (new_id, new_sha) = attest("api-v2\n");
    assert_ne!(old_id, new_id);
    let file = fixture("identity-changed-exe.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&old_sha) && text.contains(&new_sha),
        "the fixture must carry both attested hashes"
    );

    let running = up(&file, &p);
    let dir = running.state().dir;
    let ns = |h: &str| ns_name(&p, h);
    let s2 = dir.join("n2.sock");
    let w3_cap = Capture::start(&ns("w3"), "wl0", "", dir.join("w3.pcap"));
    let n2_cap = Capture::start(
        &ns("n2"),
        "eth0",
        &format!("udp port {VXLAN_PORT}"),
        dir.join("n2.pcap"),
    );
    let not_authorized = drop_count(&warden, &s2, "identity_not_authorized");
    let denied = drop_count(&warden, &s2, "policy_denied");

    // api -> db: a listener waits in db, yet the connection never opens.
    let mut listener = Proc::spawn(
        {
            let mut c = exec_in(&ns("w3"), BIN);
            c.args([
                "tcp-sink",
                "--listen",
                &format!("{DB}:{PORT}"),
                "--bytes",
                "1",
                "--seed",
                "1",
                "--timeout-secs",
                "30",
            ]);
            c
        },
        "tcp-sink w3",
    );
    listener.wait_for_line("listening", Duration::from_secs(10));
    let connect = exec_in(&ns("w1"), "timeout")
        .args(["3", "bash", "-c", &format!("exec 3<>/dev/tcp/{DB}/{PORT}")])
        .output()
        .unwrap();
    assert_eq!(
        connect.status.code(),
        Some(124),
        "api's connection to db must time out: {}",
        String::from_utf8_lossy(&connect.stderr)
    );
    drop(listener);

    // Control: web, unchanged, still reaches cache through both wardens.
    let (sink, source) = tcp_transfer(&p, "w2", "w4", &format!("{CACHE}:5002"), 1 << 20, None, 120);
    must_pass(source, 60);
    must_pass(sink, 10);
    // And w3's capture sees what w3 sends (its ping to api, refused by
    // n1's policy, which n2 lets it out to decide), so its silence below
    // means something.
    let _ = exec_in(&ns("w3"), "ping")
        .args(["-c", "2", "-W", "1", "-i", "0.2", &API.to_string()])
        .output();

    let not_authorized = drop_count(&warden, &s2, "identity_not_authorized") - not_authorized;
    let denied = drop_count(&warden, &s2, "policy_denied") - denied;
    let w3 = w3_cap.stop();
    let n2 = n2_cap.stop();

    // n1 stamped api's SYN with the new id; it reached n2...
    let ids_on_wire: Vec<String> = n2
        .frames
        .iter()
        .filter_map(|(_, f)| vxlan_inner(f).and_then(ipv4))
        .filter(|ip| ip.src == API && ip.dst == DB && ip.is_syn())
        .filter_map(|ip| {
            let o = ip.option(OPT_IDENTITY)?;
            Some(o.get(4..8)?.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect();
    eprintln!(
        "api was {old_id}, now {new_id}; SYNs at n2 carried {ids_on_wire:?}; \
         n2 counted identity_not_authorized +{not_authorized}, policy_denied +{denied}"
    );
    assert!(
        !ids_on_wire.is_empty(),
        "no stamped SYN from api reached n2"
    );
    assert!(
        ids_on_wire.iter().all(|id| *id == new_id),
        "SYNs carried {ids_on_wire:?}, expected the new id {new_id}"
    );
    // ...and n2 refused each (first try and retransmissions) as an
    // identity n1 may not assert, not as a policy denial.
    assert!(
        not_authorized as usize >= ids_on_wire.len(),
        "identity_not_authorized +{not_authorized} for {} SYNs",
        ids_on_wire.len()
    );
    assert_eq!(denied, 0, "policy_denied moved");
    // ...so nothing from api ever reached db.
    w3.assert_no_options();
    let from_api = w3.packets().filter(|(_, ip)| ip.src == API).count();
    assert_eq!(from_api, 0, "{from_api} packets from api reached db");
    assert!(
        w3.packets().any(|(_, ip)| ip.src == DB && ip.dst == API),
        "w3's capture did not even see w3's own ping"
    );
    // n1 knows api's new document by name and binds it to api's port.
    let api_db = FlowSel {
        src: API,
        dst: DB,
        proto: PROTO_TCP,
        port: PORT,
    };
    flow_row(&warden, &dir.join("n1.sock"), &api_db, &|r| {
        r["identity_source"] == "local_port" && r["src_identity"] == API_NAME
    });

    running.teardown().unwrap();
}

#[test]
fn captures_parse_what_tcpdump_writes() {
    // A pcap header plus one record holding an IPv4 packet with the
    // identity option, as the helpers above read them.
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&[2, 0, 4, 0]);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&256u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x4c, 0, 0, 68, 0, 0, 0, 0, 64, PROTO_TCP, 0, 0];
    ip.extend_from_slice(&API.octets());
    ip.extend_from_slice(&DB.octets());
    let mut opt = vec![OPT_IDENTITY, 28, 0x10, 1, 0x96, 0xb4, 0x4f, 0x56];
    opt.resize(28, 0);
    ip.extend_from_slice(&opt);
    let mut tcp = vec![0u8; 20];
    tcp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    ip.extend_from_slice(&tcp);
    f.extend_from_slice(&ip);
    b.extend_from_slice(&7u32.to_le_bytes());
    b.extend_from_slice(&500_000u32.to_le_bytes());
    b.extend_from_slice(&(f.len() as u32).to_le_bytes());
    b.extend_from_slice(&(f.len() as u32).to_le_bytes());
    b.extend_from_slice(&f);
    let frames = read_pcap(&b).unwrap();
    assert_eq!(frames.len(), 1);
    assert!((frames[0].0 - 7.5).abs() < 1e-9);
    let p = ipv4(&frames[0].1).unwrap();
    assert_eq!((p.ihl, p.src, p.dst), (48, API, DB));
    assert!(p.is_syn() && !p.is_syn_ack());
    assert_eq!(p.ports(), Some((0, 5001)));
    assert_eq!(p.tcp_payload_len(), 0);
    assert_eq!(
        p.option(OPT_IDENTITY).and_then(|o| o.get(4..8)),
        Some(&[0x96, 0xb4, 0x4f, 0x56][..])
    );
    assert!(p.option(0x44).is_none());
    assert!(read_pcap(&b[..30]).is_err());
    assert!(read_pcap(b"garbage!").is_err());
}
