//! Helpers shared by the lab integration tests: the root check, the warden
//! binary next to warden-lab, the cleanup guard, drop-counter arithmetic,
//! child processes killed and reaped on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataplane::counters::DropReason;
use testbed::checks::counter;
use testbed::lab::{self, LabSource, Options, RunningLab, Selector};
use testbed::{netns, state};

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The warden binary built next to warden-lab.
pub fn warden_bin() -> PathBuf {
    let warden = Path::new(BIN).with_file_name("warden");
    assert!(
        warden.is_file(),
        "no {}: build it first (`cargo build --release -p dataplane -p testbed --bins`)",
        warden.display()
    );
    warden
}

/// Removes whatever a failed run left, by prefix (the lab's own drop guard
/// does this first; this catches a panic inside `lab::up`).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = lab::down(&Selector::Prefix(self.0.clone()));
        let prefix = format!("{}-", self.0);
        for ns in netns::list_netns().unwrap_or_default() {
            if ns.starts_with(&prefix) {
                let _ = netns::cleanup_netns(&ns, &[]);
            }
        }
        for dir in state::base_dirs() {
            let _ = std::fs::remove_dir_all(dir.join(&self.0));
        }
    }
}

/// Every drop counter of a `warden stats --json` answer, by reason name.
pub fn drops(stats: &serde_json::Value) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .iter()
        .map(|r| {
            let n = counter(stats, &format!("drops.{}", r.name()))
                .unwrap_or_else(|e| panic!("{e} in {stats}"));
            (r.name(), n)
        })
        .collect()
}

/// What each counter moved by between two [`drops`] readings.
pub fn delta(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(k, v)| (*k, v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .collect()
}

/// A child process, killed and reaped on drop unless it was waited for.
pub struct Proc {
    pub child: Option<Child>,
    pub what: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: &str) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Proc {
            child: Some(child),
            what: what.to_string(),
        }
    }

    pub fn finished(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits until `deadline` (then kills it): success, and a description
    /// with the output for messages.
    pub fn wait(&mut self, deadline: Instant) -> (bool, String) {
        while !self.finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let Some(mut child) = self.child.take() else {
            return (false, format!("{}: not running", self.what));
        };
        let _ = child.kill();
        match child.wait_with_output() {
            Ok(out) => (
                out.status.success(),
                format!(
                    "{} ({}): {} {}",
                    self.what,
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ),
            Err(e) => (false, format!("{}: {e}", self.what)),
        }
    }

    /// Reads stdout lines until one starts with `prefix` (within `timeout`).
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) {
        let out = self
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout");
        let (tx, rx) = mpsc::channel();
        let want = prefix.to_string();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(timeout).unwrap_or_default();
        assert!(line.starts_with(&want), "{} said {line:?}", self.what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A byte-exact TCP transfer between two lab hosts, `from` sending `bytes`
/// to `target` (a tcp-sink in `to`), paced when `rate_mbit` is set; both
/// ends give up after `timeout_secs`. Returns (sink, source).
pub fn tcp_transfer(
    prefix: &str,
    from: &str,
    to: &str,
    target: &str,
    bytes: u64,
    rate_mbit: Option<u64>,
    timeout_secs: u64,
) -> (Proc, Proc) {
    let common = |cmd: &mut Command| {
        cmd.args([
            "--bytes",
            &bytes.to_string(),
            "--seed",
            "20261123",
            "--timeout-secs",
            &timeout_secs.to_string(),
        ]);
    };
    let mut sink = netns::exec_in(&state::ns_name(prefix, to), BIN);
    sink.args(["tcp-sink", "--listen", target]);
    common(&mut sink);
    let mut sink = Proc::spawn(sink, &format!("tcp-sink {to} {target}"));
    sink.wait_for_line("listening", Duration::from_secs(10));
    let mut source = netns::exec_in(&state::ns_name(prefix, from), BIN);
    source.args(["tcp-source", "--connect", target]);
    common(&mut source);
    if let Some(r) = rate_mbit {
        source.args(["--rate-mbit", &r.to_string()]);
    }
    let source = Proc::spawn(source, &format!("tcp-source {from} -> {target}"));
    (sink, source)
}

/// Brings up the lab in `file` under `prefix`, with the release warden.
pub fn lab_up(file: &Path, prefix: &str) -> RunningLab {
    let source = LabSource::from_file(file).unwrap_or_else(|e| panic!("{e}"));
    let opts = Options {
        prefix: Some(prefix.to_string()),
        self_exe: PathBuf::from(BIN),
        warden_bin: warden_bin(),
        ready_timeout: Duration::from_secs(20),
    };
    lab::up(&source, &opts, &|_| {}).unwrap_or_else(|e| panic!("lab up: {e}"))
}

/// Runs a lab's checks; panics with the report unless all pass.
pub fn run_lab_checks(running: &RunningLab) {
    let mut out = Vec::new();
    let report = running.run_checks(&mut out);
    let text = String::from_utf8_lossy(&out);
    let failed = report.results.iter().filter(|r| !r.outcome.passed).count();
    assert_eq!(failed, 0, "{text}");
    eprintln!("{text}");
}
