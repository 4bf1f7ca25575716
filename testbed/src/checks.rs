//! Traffic checks: ping, a byte-exact TCP transfer, a byte-exact UDP echo
//! exchange, a shell command, and expressions over a warden's counters.
//!
//! Every process a check starts runs inside a lab namespace, in its own
//! process group, with its PID recorded in the run's state until it is
//! reaped; a check that overruns its timeout has its whole group killed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::netns::{exec_in, render};
use crate::process::wait_until;
use crate::state::Tracker;
use crate::sys::{self, Signal};

/// One check, with namespaces already resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckSpec {
    /// `ping -c COUNT ADDR` from host `from`.
    Ping {
        from: String,
        to: String,
        count: u32,
    },
    /// A byte-exact TCP transfer from host `from` to a sink on host `to`.
    Tcp {
        from: String,
        to: String,
        address: IpAddr,
        port: u16,
        bytes: u64,
    },
    /// `count` datagrams of `size` bytes from host `from` to an echo server
    /// on host `to`, each echoed back intact.
    Udp {
        from: String,
        to: String,
        address: IpAddr,
        port: u16,
        count: u32,
        size: u16,
    },
    /// `sh -c RUN` inside `host`.
    Command {
        host: String,
        run: String,
        expect_status: i32,
        timeout: Duration,
    },
    /// Expressions over `warden stats --json` of one warden.
    Stats {
        warden: String,
        expect: Vec<config::StatExpect>,
    },
}

/// A check as the lab file names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: Option<String>,
    pub spec: CheckSpec,
}

impl Check {
    /// One-line description for progress output.
    pub fn describe(&self) -> String {
        let what = match &self.spec {
            CheckSpec::Ping { from, to, count } => format!("ping {from} -> {to} x{count}"),
            CheckSpec::Tcp {
                from,
                to,
                address,
                port,
                bytes,
            } => format!(
                "tcp {from} -> {to} {} {bytes} bytes",
                SocketAddr::new(*address, *port)
            ),
            CheckSpec::Udp {
                from,
                to,
                address,
                port,
                count,
                size,
            } => format!(
                "udp {from} -> {to} {} {count} x {size} bytes",
                SocketAddr::new(*address, *port)
            ),
            CheckSpec::Command { host, run, .. } => format!("command {host}: {run}"),
            CheckSpec::Stats { warden, expect } => {
                let list: Vec<String> = expect.iter().map(ToString::to_string).collect();
                format!("stats {warden}: {}", list.join(", "))
            }
        };
        match &self.name {
            Some(name) => format!("{name}: {what}"),
            None => what,
        }
    }
}

/// What a check's environment provides.
#[derive(Debug, Clone)]
pub struct CheckEnv {
    /// Records and releases the PIDs of check processes.
    pub tracker: Tracker,
    /// The warden-lab binary (for `tcp-sink` / `tcp-source`).
    pub self_exe: PathBuf,
    /// The warden binary (for `warden stats`).
    pub warden_bin: PathBuf,
    /// Lab host name -> namespace name.
    pub namespaces: BTreeMap<String, String>,
    /// Warden name -> control socket path.
    pub sockets: BTreeMap<String, PathBuf>,
    /// Seed base for TCP streams (the check index is added).
    pub seed: u64,
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub passed: bool,
    pub elapsed: Duration,
    /// Short facts for the progress line ("45 Mbit/s", "3/3 replies").
    pub summary: String,
    /// Why it failed (command, stderr, values seen), empty on success.
    pub detail: String,
}

/// A finished child: status and captured output.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A check process: own process group, PID tracked, output captured.
struct Tracked {
    child: Child,
    tracker: Tracker,
    command: String,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    lines: Option<mpsc::Receiver<String>>,
}

fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Tracked {
    /// Spawns `cmd`; with `line_events`, stdout is delivered line by line
    /// through [`Tracked::next_line`] instead of collected.
    fn spawn(
        tracker: &Tracker,
        mut cmd: Command,
        what: &str,
        line_events: bool,
    ) -> Result<Self, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let command = render(&cmd);
        let mut child = tracker.spawn(&mut cmd, what).map_err(|e| e.to_string())?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let (stdout, lines) = match (out, line_events) {
            (Some(out), true) => {
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                (None, Some(rx))
            }
            (Some(out), false) => (Some(collect(out)), None),
            (None, _) => (None, None),
        };
        Ok(Self {
            child,
            tracker: tracker.clone(),
            command,
            stdout,
            stderr: err.map(collect),
            lines,
        })
    }

    fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.as_ref()?.recv_timeout(timeout).ok()
    }

    /// Waits until `deadline`; on timeout kills the group and says so.
    fn finish(mut self, deadline: Instant) -> Result<Finished, String> {
        let waited = wait_until(&mut self.child, deadline);
        let status = match waited {
            Ok(Some(status)) => status,
            Ok(None) | Err(_) => {
                self.kill();
                let stderr = self
                    .stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                return Err(format!(
                    "`{}` did not finish in time and was killed{}",
                    self.command,
                    tail_of("stderr", &stderr)
                ));
            }
        };
        let _ = sys::kill_group(self.child.id(), Signal::Kill);
        let _ = self.tracker.release(self.child.id());
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }

    fn kill(&mut self) {
        let _ = sys::kill_group(self.child.id(), Signal::Kill);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.tracker.release(self.child.id());
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

fn tail_of(label: &str, text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(10)..].join("\n    ");
    format!("\n  {label}:\n    {tail}")
}

fn ns_of<'a>(env: &'a CheckEnv, host: &str) -> Result<&'a str, String> {
    env.namespaces
        .get(host)
        .map(String::as_str)
        .ok_or_else(|| format!("no host {host:?} in this lab"))
}

/// Runs check number `index` (0-based).
pub fn run_check(env: &CheckEnv, index: usize, check: &Check) -> Outcome {
    let start = Instant::now();
    let result = match &check.spec {
        CheckSpec::Ping { from, to, count } => ping(env, from, to, *count),
        CheckSpec::Tcp {
            from,
            to,
            address,
            port,
            bytes,
        } => tcp(
            env,
            index,
            from,
            to,
            SocketAddr::new(*address, *port),
            *bytes,
        ),
        CheckSpec::Udp {
            from,
            to,
            address,
            port,
            count,
            size,
        } => udp(
            env,
            index,
            from,
            to,
            SocketAddr::new(*address, *port),
            *count,
            *size,
        ),
        CheckSpec::Command {
            host,
            run,
            expect_status,
            timeout,
        } => command(env, host, run, *expect_status, *timeout),
        CheckSpec::Stats { warden, expect } => stats(env, warden, expect),
    };
    let elapsed = start.elapsed();
    match result {
        Ok(summary) => Outcome {
            passed: true,
            elapsed,
            summary,
            detail: String::new(),
        },
        Err(detail) => Outcome {
            passed: false,
            elapsed,
            summary: String::new(),
            detail,
        },
    }
}

fn ping(env: &CheckEnv, from: &str, to: &str, count: u32) -> Result<String, String> {
    let ns = ns_of(env, from)?;
    let mut cmd = exec_in(ns, "ping");
    cmd.args(["-c", &count.to_string(), "-W", "2", "-i", "0.2", to]);
    let timeout = Duration::from_secs(5) + Duration::from_millis(2200) * count;
    let done = Tracked::spawn(&env.tracker, cmd, &format!("ping {from}"), false)?
        .finish(Instant::now() + timeout)?;
    let replies = ping_replies(&done.stdout);
    if done.status.success() && replies.is_some_and(|(_, r)| r > 0) {
        let (sent, received) = replies.unwrap_or((count, count));
        Ok(format!("{received}/{sent} replies"))
    } else {
        Err(format!(
            "ping {to} from {from} failed ({}){}{}",
            done.status,
            tail_of("stdout", &done.stdout),
            tail_of("stderr", &done.stderr)
        ))
    }
}

/// (transmitted, received) from ping's summary line.
fn ping_replies(stdout: &str) -> Option<(u32, u32)> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    Some((nums.next()?, nums.next()?))
}

/// Seconds allowed for a transfer of `bytes`: generous, the point is to
/// end a hung transfer, not to measure.
pub fn tcp_timeout(bytes: u64) -> Duration {
    Duration::from_secs(30 + bytes / 1_000_000)
}

/// A server in one host and a client in another, both warden-lab hidden
/// subcommands sharing `args`: the TCP and UDP checks.
struct Pair<'a> {
    /// (subcommand, role) of each side, such as ("tcp-sink", "sink").
    server: (&'a str, &'a str),
    client: (&'a str, &'a str),
    addr: SocketAddr,
    args: Vec<String>,
    timeout: Duration,
    /// How long to wait for the server once the client is done.
    server_grace: Duration,
}

/// Run a [`Pair`]: start the server, wait until it listens, run the client,
/// collect both. Returns the client's output and the client's run time.
fn run_pair(
    env: &CheckEnv,
    from: &str,
    to: &str,
    p: &Pair,
) -> Result<(Finished, Duration), String> {
    let from_ns = ns_of(env, from)?;
    let to_ns = ns_of(env, to)?;
    let (server_sub, server_role) = p.server;
    let (client_sub, client_role) = p.client;
    let mut cmd = exec_in(to_ns, &env.self_exe);
    cmd.args([server_sub, "--listen", &p.addr.to_string()])
        .args(&p.args);
    let server = Tracked::spawn(&env.tracker, cmd, &format!("{server_sub} {to}"), true)?;
    match server.next_line(Duration::from_secs(10)) {
        Some(line) if line.starts_with("listening") => {}
        other => {
            let server_cmd = server.command.clone();
            let done = server.finish(Instant::now() + Duration::from_secs(2));
            let stderr = done.map(|d| d.stderr).unwrap_or_else(|e| e);
            return Err(format!(
                "{server_role} `{server_cmd}` did not start listening (said {other:?}){}",
                tail_of("stderr", &stderr)
            ));
        }
    }
    let start = Instant::now();
    let mut cmd = exec_in(from_ns, &env.self_exe);
    cmd.args([client_sub, "--connect", &p.addr.to_string()])
        .args(&p.args);
    let client = Tracked::spawn(&env.tracker, cmd, &format!("{client_sub} {from}"), false)?;
    let deadline = Instant::now() + p.timeout + Duration::from_secs(5);
    let client_cmd = client.command.clone();
    let client_done = client.finish(deadline);
    let elapsed = start.elapsed();
    let server_cmd = server.command.clone();
    let server_done = server.finish(Instant::now() + p.server_grace);
    let mut problems = Vec::new();
    for (role, command, done) in [
        (server_role, &server_cmd, &server_done),
        (client_role, &client_cmd, &client_done),
    ] {
        match done {
            Ok(d) if d.status.success() => {}
            Ok(d) => problems.push(format!(
                "{role} `{command}` failed ({}){}",
                d.status,
                tail_of("stderr", &d.stderr)
            )),
            Err(e) => problems.push(format!("{role}: {e}")),
        }
    }
    match client_done {
        Ok(d) if problems.is_empty() => Ok((d, elapsed)),
        _ => Err(problems.join("\n")),
    }
}

fn tcp(
    env: &CheckEnv,
    index: usize,
    from: &str,
    to: &str,
    addr: SocketAddr,
    bytes: u64,
) -> Result<String, String> {
    let seed = env.seed.wrapping_add(index as u64);
    let timeout = tcp_timeout(bytes);
    let pair = Pair {
        server: ("tcp-sink", "sink"),
        client: ("tcp-source", "source"),
        addr,
        args: [
            "--bytes",
            &bytes.to_string(),
            "--seed",
            &seed.to_string(),
            "--timeout-secs",
            &timeout.as_secs().to_string(),
        ]
        .map(String::from)
        .to_vec(),
        timeout,
        server_grace: timeout + Duration::from_secs(5),
    };
    let (_, elapsed) = run_pair(env, from, to, &pair)?;
    let t = crate::tcp::Transfer { bytes, elapsed };
    Ok(format!("{:.0} Mbit/s", t.mbit_per_sec()))
}

/// Seconds allowed for a UDP exchange: generous, as for TCP, plus room
/// for every datagram's retries.
pub fn udp_timeout(count: u32, size: u16) -> Duration {
    Duration::from_secs(30 + u64::from(count) * u64::from(size) / 1_000_000)
}

fn udp(
    env: &CheckEnv,
    index: usize,
    from: &str,
    to: &str,
    addr: SocketAddr,
    count: u32,
    size: u16,
) -> Result<String, String> {
    let seed = env.seed.wrapping_add(index as u64);
    let timeout = udp_timeout(count, size);
    let pair = Pair {
        server: ("udp-echo", "echo"),
        client: ("udp-probe", "probe"),
        addr,
        args: [
            "--count",
            &count.to_string(),
            "--size",
            &size.to_string(),
            "--seed",
            &seed.to_string(),
            "--timeout-secs",
            &timeout.as_secs().to_string(),
        ]
        .map(String::from)
        .to_vec(),
        timeout,
        // The probe's end datagram stops the echo; if it was lost, the echo
        // runs into its own timeout, so do not wait that long.
        server_grace: Duration::from_secs(5),
    };
    let (done, _) = run_pair(env, from, to, &pair)?;
    Ok(done.stdout.trim().to_string())
}

fn command(
    env: &CheckEnv,
    host: &str,
    run: &str,
    expect: i32,
    timeout: Duration,
) -> Result<String, String> {
    let ns = ns_of(env, host)?;
    let mut cmd = exec_in(ns, "sh");
    cmd.args(["-c", run]);
    let done = Tracked::spawn(&env.tracker, cmd, &format!("command {host}"), false)?
        .finish(Instant::now() + timeout)?;
    match done.status.code() {
        Some(code) if code == expect => Ok(format!("exit {code}")),
        _ => Err(format!(
            "`{run}` in {host}: {} (expected exit {expect}){}{}",
            done.status,
            tail_of("stdout", &done.stdout),
            tail_of("stderr", &done.stderr)
        )),
    }
}

fn stats(env: &CheckEnv, warden: &str, expect: &[config::StatExpect]) -> Result<String, String> {
    let socket = env
        .sockets
        .get(warden)
        .ok_or_else(|| format!("no warden {warden:?} in this lab"))?;
    let json = warden_stats(&env.warden_bin, socket)?;
    let mut seen = Vec::new();
    let mut failed = Vec::new();
    for e in expect {
        match counter(&json, &e.path) {
            Ok(value) if e.holds(value) => seen.push(format!("{} = {value}", e.path)),
            Ok(value) => failed.push(format!("{e}: value is {value}")),
            Err(why) => failed.push(format!("{e}: {why}")),
        }
    }
    if failed.is_empty() {
        Ok(seen.join(", "))
    } else {
        let mut msg = failed.join("\n");
        if !seen.is_empty() {
            msg.push_str(&format!("\n(passed: {})", seen.join(", ")));
        }
        Err(msg)
    }
}

/// The counter at dotted `path` (object keys, or array indices).
pub fn counter(json: &serde_json::Value, path: &str) -> Result<u64, String> {
    let mut node = json;
    for seg in path.split('.') {
        node = match node {
            serde_json::Value::Object(map) => map.get(seg),
            serde_json::Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("no counter {path} (missing {seg:?})"))?;
    }
    node.as_u64()
        .ok_or_else(|| format!("{path} is not a counter: {node}"))
}

/// Runs `warden stats --socket PATH --json` and parses its output.
pub fn warden_stats(
    warden_bin: &std::path::Path,
    socket: &std::path::Path,
) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new(warden_bin);
    cmd.arg("stats").arg("--socket").arg(socket).arg("--json");
    let out = crate::netns::run(&mut cmd).map_err(|e| e.to_string())?;
    serde_json::from_str(&out)
        .map_err(|e| format!("`{}` printed no JSON object: {e}", render(&cmd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_dotted_paths() {
        let json: serde_json::Value = serde_json::json!({
            "routed_packets": 12,
            "vni": {"100": {"rx_decap_packets": 5}},
            "drops": {"not_a_peer": 0},
            "ports": [{"rx_packets": 3}],
            "name": "gw",
            "ratio": 0.5
        });
        assert_eq!(counter(&json, "routed_packets"), Ok(12));
        assert_eq!(counter(&json, "vni.100.rx_decap_packets"), Ok(5));
        assert_eq!(counter(&json, "drops.not_a_peer"), Ok(0));
        assert_eq!(counter(&json, "ports.0.rx_packets"), Ok(3));
        assert!(counter(&json, "vni.200.rx_decap_packets")
            .unwrap_err()
            .contains("missing \"200\""));
        assert!(counter(&json, "name")
            .unwrap_err()
            .contains("not a counter"));
        assert!(counter(&json, "ratio")
            .unwrap_err()
            .contains("not a counter"));
        assert!(counter(&json, "routed_packets.x").is_err());
        let e: config::StatExpect = "vni.100.rx_decap_packets >= 10".parse().unwrap();
        assert!(!e.holds(counter(&json, &e.path).unwrap()));
    }

    #[test]
    fn reads_ping_summary() {
        let out = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 405ms\n";
        assert_eq!(ping_replies(out), Some((3, 2)));
        assert_eq!(ping_replies("nothing"), None);
    }

    #[test]
    fn describes_checks() {
        let c = Check {
            name: None,
            spec: CheckSpec::Tcp {
                from: "a1".into(),
                to: "b1".into(),
                address: "10.2.0.12".parse().unwrap(),
                port: 5001,
                bytes: 10485760,
            },
        };
        assert_eq!(c.describe(), "tcp a1 -> b1 10.2.0.12:5001 10485760 bytes");
        let c = Check {
            name: Some("reach".into()),
            spec: CheckSpec::Ping {
                from: "a1".into(),
                to: "10.2.0.12".into(),
                count: 3,
            },
        };
        assert_eq!(c.describe(), "reach: ping a1 -> 10.2.0.12 x3");
    }

    #[test]
    fn unknown_hosts_fail_cleanly() {
        let dir = std::env::temp_dir().join(format!("wl-checks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = crate::state::RunState {
            prefix: "wlzz".into(),
            source: "x".into(),
            lab: "x".into(),
            dir: dir.clone(),
            owner: None,
            namespaces: Vec::new(),
            links: Vec::new(),
            processes: Vec::new(),
        };
        let env = CheckEnv {
            tracker: Tracker::new(state),
            self_exe: PathBuf::from("/bin/false"),
            warden_bin: PathBuf::from("/bin/false"),
            namespaces: BTreeMap::new(),
            sockets: BTreeMap::new(),
            seed: 1,
        };
        let check = Check {
            name: None,
            spec: CheckSpec::Ping {
                from: "nohost".into(),
                to: "10.0.0.1".into(),
                count: 1,
            },
        };
        let out = run_check(&env, 0, &check);
        assert!(!out.passed);
        assert!(out.detail.contains("nohost"));
        let check = Check {
            name: None,
            spec: CheckSpec::Stats {
                warden: "gw".into(),
                expect: vec!["a > 1".parse().unwrap()],
            },
        };
        assert!(!run_check(&env, 1, &check).passed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
