//! Adversarial traffic against a running warden: while a byte-exact TCP
//! transfer crosses the gateway, bad frames of every kind in
//! `testbed::inject` are injected on the underlay, interleaved: from a rogue
//! host that is not a peer, and, for the kinds that must get past the peer
//! check, from a peer's host with its own MAC and VTEP address (what a
//! compromised peer node could send). The transfer must complete intact;
//! warden must count every bad frame under its own drop reason, exactly, no
//! other reason may move, and no marked frame may come out of warden
//! anywhere in the lab. A control frame (a bad frame's valid twin) then
//! shows that the watch does see what warden forwards.
//!
//! Needs root and the release binaries:
//! `cargo build --release -p dataplane -p testbed --bins && cargo test --release -p testbed --test adversarial`.

mod common;
use common::{delta, drops, is_root, warden_bin, Cleanup};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::counters::DropReason;
use testbed::checks::{counter, warden_stats};
use testbed::inject::{self, BadFrame, Injector, Mark, Sender, Targets};
use testbed::lab::{self, LabSource, Options};
use testbed::netns::{self, exec_in, NETNS_DIR};
use testbed::state::ns_name;

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

/// Frames of each kind.
const PER_KIND: u32 = 50;
/// The transfer that must survive the injection.
const TRANSFER_BYTES: u64 = 20 * 1024 * 1024;
const TRANSFER_PORT: u16 = 5001;
const TRANSFER_SEED: u64 = 0xad5e_0001;
/// Control frames (which warden must forward) sent after the bad ones.
const CONTROLS: u32 = 5;
/// b1's inner address: the TCP sink, and where routed bad frames head.
const B1_INNER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 12);
/// Pause between rounds of one frame of each kind, so the injection
/// spreads over the transfer instead of arriving as one burst.
const ROUND_GAP: Duration = Duration::from_micros(500);

/// Drop reasons that the lab's legitimate traffic may produce under load
/// (everything else must stay at zero apart from the injected kinds).
const LOAD_REASONS: [DropReason; 4] = [
    DropReason::TxFull,
    DropReason::PoolEmpty,
    DropReason::HostStackBusy,
    DropReason::NeighborUnresolved,
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adversarial.toml")
}

/// A child process, killed and reaped on drop unless it was waited for.
struct Proc(Option<Child>);

impl Proc {
    fn finished(&mut self) -> bool {
        self.0
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits until `deadline` (then kills it): success, and status with
    /// the output for messages.
    fn wait(&mut self, deadline: Instant) -> (bool, String) {
        while !self.finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let Some(mut child) = self.0.take() else {
            return (false, "not running".to_string());
        };
        let _ = child.kill();
        match child.wait_with_output() {
            Ok(out) => (
                out.status.success(),
                format!(
                    "{}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tcp_cmd(ns: &str, args: &[&str]) -> Command {
    let mut cmd = exec_in(ns, BIN);
    cmd.args(args)
        .args([
            "--bytes",
            &TRANSFER_BYTES.to_string(),
            "--seed",
            &TRANSFER_SEED.to_string(),
            "--timeout-secs",
            "120",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The ports that watch for leaked frames. On the underlay, only frames
/// that warden sent (its source MAC) count: the injected originals may be
/// flooded by the bridge before it learns warden's MAC. Behind the TAP,
/// every marked frame came from warden.
struct Watch {
    ports: Vec<(Injector, Option<overlay::MacAddr>)>,
    /// "KIND #SEQ (LEN bytes) at PORT" of every bad frame seen.
    leaks: Vec<String>,
    /// Control frames seen, by port index.
    controls: Vec<usize>,
}

impl Watch {
    fn drain(&mut self) {
        for (i, (port, only_from)) in self.ports.iter_mut().enumerate() {
            let at = port.describe();
            let (leaks, controls) = (&mut self.leaks, &mut self.controls);
            port.drain(|f| {
                let from_warden = only_from.is_none_or(|m| f.get(6..12) == Some(&m.0[..]));
                match inject::find_mark(f) {
                    Some((Mark::Bad(kind), seq)) if from_warden => {
                        leaks.push(format!("{kind:?} #{seq} ({} bytes) at {at}", f.len()));
                    }
                    Some((Mark::Control, _)) if from_warden => controls.push(i),
                    _ => {}
                }
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Makes the switch namespace's bridge a plain L2 switch. With
/// br_netfilter present (a host running Docker or Kubernetes), a new
/// namespace starts with `bridge-nf-call-iptables = 1`, and the bridge then
/// validates IPv4 headers itself: it drops bad header checksums before they
/// reach warden, and trims Ethernet padding. A real switch does neither.
#[test]
fn bad_frames_are_dropped_by_reason_while_tcp_crosses_intact() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    assert!(
        netns::which("ping").is_some() && netns::which("ethtool").is_some(),
        "ping or ethtool missing: run scripts/install-deps.sh"
    );
    let prefix = format!("wt{}x", std::process::id() % 1_000_000);
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
    let targets = Targets::from_lab(running.lab(), "gw", "x1", "a1", B1_INNER).unwrap();
    let socket = running.state().dir.join("gw.sock");
    let ns = |host: &str| ns_name(&prefix, host);
    let ns_path = |host: &str| PathBuf::from(NETNS_DIR).join(ns(host));
    let stats = || warden_stats(&warden, &socket).unwrap_or_else(|e| panic!("stats: {e}"));

    // Senders (which watch their own interface too) and watchers.
    let rogue = Injector::open(&ns_path("x1"), "eth0").unwrap();
    let peer = Injector::open(&ns_path("a1"), "eth0").unwrap();
    assert_eq!(rogue.mac(), targets.rogue.mac);
    assert_eq!(peer.mac(), targets.peer.mac);
    let from_warden = Some(targets.warden.mac);
    let mut watch = Watch {
        ports: vec![
            (rogue, from_warden),
            (peer, from_warden),
            (Injector::open(&ns_path("b1"), "eth0").unwrap(), from_warden),
            (Injector::open(&ns_path("w1"), "wl0").unwrap(), None),
        ],
        leaks: Vec::new(),
        controls: Vec::new(),
    };
    const ROGUE: usize = 0;
    const PEER: usize = 1;
    const B1: usize = 2;

    let before = stats();
    let drops_before = drops(&before);
    let decap_before = counter(&before, "vni.100.rx_decap_packets").unwrap();

    // The transfer: sink in b1, source in a1.
    let target = format!("{B1_INNER}:{TRANSFER_PORT}");
    let mut sink_child = tcp_cmd(&ns("b1"), &["tcp-sink", "--listen", &target])
        .spawn()
        .unwrap();
    let sink_stdout = sink_child.stdout.take();
    let mut sink = Proc(Some(sink_child));
    let mut sink_lines = BufReader::new(sink_stdout.unwrap());
    let mut line = String::new();
    sink_lines.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening"), "tcp-sink said {line:?}");
    let mut src = Proc(Some(
        // Paced (about 1.7 s), so the transfer surely outlasts the injection.
        tcp_cmd(
            &ns("a1"),
            &["tcp-source", "--connect", &target, "--rate-mbit", "100"],
        )
        .spawn()
        .unwrap(),
    ));
    // Inject only once the transfer is under way through warden.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let moved = counter(&stats(), "vni.100.rx_decap_packets")
            .unwrap()
            .saturating_sub(decap_before);
        if moved >= 200 {
            break;
        }
        assert!(
            Instant::now() < deadline && !src.finished(),
            "transfer did not start, or ended before injection could begin \
             ({moved} packets decapsulated)"
        );
        watch.drain();
        std::thread::sleep(Duration::from_millis(2));
    }

    // Interleaved rounds; the order rotates so that every kind follows
    // every other.
    let start = Instant::now();
    let mut sent: BTreeMap<BadFrame, u32> = BTreeMap::new();
    let n = BadFrame::ALL.len();
    for seq in 0..PER_KIND {
        for i in 0..n {
            let kind = BadFrame::ALL[(i + seq as usize) % n];
            let frame = inject::build(&targets, kind, seq).unwrap();
            let port = match kind.sender() {
                Sender::Rogue => ROGUE,
                Sender::Peer => PEER,
            };
            if watch.ports[port].0.send(&frame) {
                *sent.entry(kind).or_default() += 1;
            }
        }
        watch.drain();
        std::thread::sleep(ROUND_GAP);
    }
    let injected_in = start.elapsed();
    let overlapped = !src.finished();

    // Keep watching until the transfer is done, then a little longer.
    let deadline = Instant::now() + Duration::from_secs(150);
    while !(src.finished() && sink.finished()) && Instant::now() < deadline {
        watch.drain();
        std::thread::sleep(Duration::from_millis(2));
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        watch.drain();
        std::thread::sleep(Duration::from_millis(10));
    }
    let (src_ok, src_out) = src.wait(Instant::now());
    let (sink_ok, sink_out) = sink.wait(Instant::now());
    let mut sink_rest = String::new();
    let _ = std::io::Read::read_to_string(&mut sink_lines, &mut sink_rest);

    // Drops are counted as warden reads them; wait until they add up.
    let want: BTreeMap<&str, u64> = BadFrame::ALL
        .iter()
        .map(|k| (k.name(), u64::from(sent.get(k).copied().unwrap_or(0))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = stats();
        let d = delta(&drops_before, &drops(&s));
        let done = want
            .iter()
            .all(|(k, v)| d.get(k).copied().unwrap_or(0) >= *v);
        if done || Instant::now() >= deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let moved = delta(&drops_before, &drops(&after));
    let table: String = moved
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("\n  {k}: {v}"))
        .collect();
    eprintln!(
        "injected {} frames in {:.0} ms (transfer still running: {overlapped}); {}; drops moved:{table}",
        sent.values().sum::<u32>(),
        injected_in.as_secs_f64() * 1e3,
        sink_rest.trim()
    );

    // 1. The transfer survived, byte for byte.
    assert!(src_ok, "tcp-source failed: {src_out}");
    assert!(sink_ok, "tcp-sink failed: {sink_out} {sink_rest}");
    assert!(
        overlapped,
        "the transfer ended before the injection did ({injected_in:?}): nothing was tested under load"
    );
    // 2. Nothing marked came out of warden.
    assert!(
        watch.leaks.is_empty(),
        "warden forwarded {} bad frames, first ones: {:?}",
        watch.leaks.len(),
        &watch.leaks[..watch.leaks.len().min(5)]
    );
    // The watchers saw everything (a full ring could hide a leak).
    for (port, _) in &watch.ports {
        assert_eq!(
            port.stats().rx_kernel_drops,
            0,
            "{} lost frames",
            port.describe()
        );
    }
    // 3. Every frame was sent, and counted under its own reason, exactly:
    //    the lab's own traffic produces none of these reasons.
    for kind in BadFrame::ALL {
        assert_eq!(
            sent.get(&kind).copied(),
            Some(PER_KIND),
            "the injector could not send every {kind:?} frame"
        );
        assert_eq!(
            moved.get(kind.name()).copied(),
            Some(u64::from(PER_KIND)),
            "{kind:?} (sent {PER_KIND} from {:?}) must count as drops.{}; drops moved:{table}",
            kind.sender(),
            kind.name()
        );
    }
    // 4. No other reason absorbed them.
    let expected: Vec<&str> = BadFrame::ALL.iter().map(|k| k.name()).collect();
    for (reason, n) in &moved {
        let load = LOAD_REASONS.iter().any(|r| r.name() == *reason);
        if !expected.contains(reason) && !load {
            assert_eq!(*n, 0, "drops.{reason} moved by {n}; drops moved:{table}");
        }
    }

    // 5. The watch does see what warden forwards: the control frame (a bad
    //    frame's valid twin) comes out at b1, once per frame sent. (b1's
    //    ICMP port unreachable, quoting it, goes back to a1: not counted.)
    for seq in 0..CONTROLS {
        let frame = inject::control(&targets, seq).unwrap();
        assert!(
            watch.ports[PEER].0.send(&frame),
            "cannot send a control frame"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let at_b1 = |w: &Watch| w.controls.iter().filter(|&&i| i == B1).count();
    while at_b1(&watch) < CONTROLS as usize && Instant::now() < deadline {
        watch.drain();
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    watch.drain();
    assert_eq!(
        at_b1(&watch),
        CONTROLS as usize,
        "control frames seen, by watch port: {:?}",
        watch.controls
    );
    assert!(watch.leaks.is_empty(), "late leaks: {:?}", watch.leaks);

    // 6. b1 still answers through warden.
    let ping = exec_in(&ns("a1"), "ping")
        .args(["-c", "3", "-W", "2", "-i", "0.2", &B1_INNER.to_string()])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping a1 -> b1 after the injection failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    drop(watch);
    running.teardown().unwrap();
}
