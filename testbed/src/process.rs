//! Child processes identified by PID and start time.
//!
//! A PID alone may be reused after the process dies; teardown signals a PID
//! only when `/proc/PID/stat` still shows the start time recorded when the
//! lab spawned it.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::{self, Signal};

/// A process as the lab recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pid {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat` (clock ticks since boot).
    pub start_time: u64,
}

/// State letter and start time from the text of `/proc/PID/stat`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // starttime is field 22 overall, 19 fields after the state (field 3).
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn read_stat(pid: u32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl Pid {
    /// The running process `pid`, with its start time, if it exists.
    pub fn current(pid: u32) -> Option<Self> {
        let (state, start_time) = read_stat(pid)?;
        (!matches!(state, 'Z' | 'X')).then_some(Self { pid, start_time })
    }

    /// True while this very process runs (not a zombie, not a reused PID).
    pub fn is_alive(&self) -> bool {
        matches!(read_stat(self.pid), Some((state, start)) if start == self.start_time && !matches!(state, 'Z' | 'X'))
    }

    /// Sends `sig` if this process still runs.
    pub fn signal(&self, sig: Signal) {
        if self.is_alive() {
            // ESRCH here only means it exited after the check.
            let _ = sys::kill(self.pid, sig);
        }
    }
}

/// TERM to every process, KILL to those still running after `grace`, then
/// waits up to a second for them to go.
pub fn terminate_all(procs: &[Pid], grace: Duration) {
    for p in procs {
        p.signal(Signal::Term);
    }
    let deadline = Instant::now() + grace;
    while procs.iter().any(Pid::is_alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in procs {
        p.signal(Signal::Kill);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while procs.iter().any(Pid::is_alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` until `deadline`; `None` on timeout (the child runs on).
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills `child` (KILL) and reaps it.
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn parses_stat_with_odd_comm() {
        let stat = "1234 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("1234 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_other_start_time_is_not() {
        let me = Pid::current(std::process::id()).unwrap();
        assert!(me.is_alive());
        let other = Pid {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        // A signal to a PID whose start time differs must not be sent.
        other.signal(Signal::Term);
        assert!(me.is_alive());
    }

    #[test]
    fn terminate_all_ends_children_and_escalates() {
        let mut polite = Command::new("sleep").arg("30").spawn().unwrap();
        // Ignores TERM, so only KILL ends it.
        let mut stubborn = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let procs = [
            Pid::current(polite.id()).unwrap(),
            Pid::current(stubborn.id()).unwrap(),
        ];
        let start = Instant::now();
        // A reaper thread plays init's part for our own children.
        let reaper = std::thread::spawn(move || {
            let a = polite.wait().unwrap();
            let b = stubborn.wait().unwrap();
            (a, b)
        });
        terminate_all(&procs, Duration::from_millis(300));
        let (a, b) = reaper.join().unwrap();
        assert!(!a.success() && !b.success());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(procs.iter().all(|p| !p.is_alive()));
    }

    #[test]
    fn wait_until_times_out_then_completes() {
        let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
        let r = wait_until(&mut child, Instant::now() + Duration::from_millis(50)).unwrap();
        assert!(r.is_none());
        let r = wait_until(&mut child, Instant::now() + Duration::from_secs(5)).unwrap();
        assert!(r.unwrap().success());
    }

    #[test]
    fn tail_returns_last_lines() {
        let dir = std::env::temp_dir().join(format!("wl-tail-{}", std::process::id()));
        std::fs::write(&dir, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&dir, 2), "3\n4");
        assert_eq!(tail(&dir, 10), "1\n2\n3\n4");
        std::fs::remove_file(&dir).unwrap();
        assert!(tail(&dir, 2).contains("cannot read"));
    }
}
