//! The control socket: a Unix stream socket that answers one-line
//! commands (`stats`, `flows`, ...: [`COMMANDS`]) with one line of JSON,
//! then closes. Each client is served on its own thread (at most
//! [`MAX_CLIENTS`]), which reads the shared counters and the rows the
//! workers publish once a second: a client never waits for another, and
//! never blocks a worker.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::counters::Counters;
use crate::port::tsc_hz;
use crate::reload::{Outcome, Reloader};
use crate::stats::{Names, Snapshot};

/// Errors of the control socket.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum ControlError {
    /// cannot create control socket {path}: {source}
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    /// cannot reach warden at {path}: {source} (is it running? see `warden run`)
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// control socket {path}: {source}
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// warden at {path} answered: {message}
    Remote { path: PathBuf, message: String },
    /// unreadable answer from {path}: {source}
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Clients served at once; one more is answered "busy" and closed.
pub const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its command line.
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest command line accepted.
const MAX_LINE: usize = 4096;

/// What a command may read: the names from the config, every worker's
/// counters, the start time, and the control plane's own state (the
/// counters baseline of `reset`). Only control threads use it; the workers
/// never wait for any of it.
#[derive(Debug)]
pub struct ControlCtx<'a> {
    /// The names of the running config (a reload replaces them).
    pub names: &'a RwLock<Names>,
    pub counters: &'a Arc<Counters>,
    pub started: Instant,
    /// The totals at the last `reset` and when it was taken.
    pub baseline: Mutex<Option<(Snapshot, Instant)>>,
    /// Reloads, and the channels to the workers (capture, trace).
    pub reloader: Option<&'a Reloader>,
}

impl<'a> ControlCtx<'a> {
    pub fn new(names: &'a RwLock<Names>, counters: &'a Arc<Counters>) -> ControlCtx<'a> {
        ControlCtx {
            names,
            counters,
            started: Instant::now(),
            baseline: Mutex::new(None),
            reloader: None,
        }
    }

    /// The names now (a copy: a reload may replace them meanwhile).
    pub fn names(&self) -> Names {
        self.names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every counter now, since start.
    pub fn totals(&self) -> Snapshot {
        Snapshot::take(
            &self.names(),
            self.counters,
            self.started.elapsed().as_secs(),
            tsc_hz(),
        )
    }
}

/// Answer one command line (`cmd` is its first word, `args` the rest) with
/// the JSON text to send, or an error message. Add a command here and to
/// [`COMMANDS`].
pub fn handle_command(cmd: &str, args: &str, ctx: &ControlCtx<'_>) -> Result<String, String> {
    let json = |v: &dyn erased::Json| v.to_json();
    match cmd {
        // `stats`: since the last `reset` (or start); `stats total`: since start.
        "stats" => {
            let totals = ctx.totals();
            let snap = match args {
                "" => match &*lock(&ctx.baseline) {
                    Some((base, at)) => totals.since(base, at.elapsed().as_secs()),
                    None => totals,
                },
                "total" => totals,
                other => return Err(format!("stats takes no argument or `total`, not {other:?}")),
            };
            json(&snap)
        }
        "reset" => {
            *lock(&ctx.baseline) = Some((ctx.totals(), Instant::now()));
            json(&serde_json::json!({ "reset": true }))
        }
        "flows" => json(&flow_rows(ctx)),
        "fdb" => json(&crate::tables_dump::fdb_rows(&ctx.names(), ctx.counters)),
        "neighbors" => json(&crate::tables_dump::neighbor_rows(
            &ctx.names(),
            ctx.counters,
        )),
        "learned" => {
            let mut report = crate::learn::LearnedReport::default();
            for w in &ctx.counters.workers {
                report.dropped += w.policy.learn_dropped.get();
                report.records.extend(
                    lock(&w.policy.learn_rows)
                        .iter()
                        .map(crate::learn::LearnedRow::from),
                );
            }
            json(&report)
        }
        other => Err(format!(
            "unknown command {other:?}; try {}, {}",
            COMMANDS.join(", "),
            WORKER_COMMANDS.join(", ")
        )),
    }
}

/// The commands [`handle_command`] knows.
pub const COMMANDS: &[&str] = &["stats", "reset", "flows", "fdb", "neighbors", "learned"];

/// The commands that go to the workers ([`serve_client`] answers them: they
/// take long, stream, or wait for a worker).
pub const WORKER_COMMANDS: &[&str] = &["reload", "capture", "trace", "trace-live"];

/// JSON text of any serializable answer.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<String, String> {
            serde_json::to_string(self).map_err(|e| e.to_string())
        }
    }
}

/// A lock that a panicked holder did not poison for good (the data are
/// plain copies).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The flow rows every worker published, with names filled in.
fn flow_rows(ctx: &ControlCtx<'_>) -> Vec<crate::flows::FlowRow> {
    let names = &ctx.names();
    let mut rows = Vec::new();
    for w in &ctx.counters.workers {
        let raw = lock(&w.flow_rows).clone();
        rows.extend(raw.iter().map(|r| {
            let mut row = names.flow_row(r);
            row.src_identity = names.identity_name(&row.src_identity);
            row.dst_identity = names.identity_name(&row.dst_identity);
            row
        }));
    }
    rows
}

/// A bound control socket; the file is removed on drop.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Bind at `path`, replacing a stale socket file left by a killed warden.
    pub fn bind(path: &Path) -> Result<ControlServer, ControlError> {
        let err = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another warden is serving this socket",
                )));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serve until `quit` is set: each client on its own thread (at most
    /// [`MAX_CLIENTS`] at once), so an idle or slow client delays nobody;
    /// the workers are never involved.
    pub fn serve(&self, names: &RwLock<Names>, counters: &Arc<Counters>, quit: &AtomicBool) {
        self.serve_ctx(&ControlCtx::new(names, counters), quit, None);
    }

    /// [`ControlServer::serve`] with a context made by the caller; reload
    /// when `hup` is set (SIGHUP).
    pub fn serve_ctx(&self, ctx: &ControlCtx<'_>, quit: &AtomicBool, hup: Option<&AtomicBool>) {
        let active = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            while !quit.load(Ordering::Relaxed) {
                if hup.is_some_and(|h| h.swap(false, Ordering::Relaxed)) {
                    if let Some(r) = ctx.reloader {
                        log_reload("SIGHUP", &r.reload());
                    }
                }
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        if active.load(Ordering::Relaxed) >= MAX_CLIENTS {
                            let _ = refuse_busy(stream);
                            continue;
                        }
                        active.fetch_add(1, Ordering::Relaxed);
                        let active = &active;
                        let spawned = std::thread::Builder::new()
                            .name("warden-control".into())
                            .spawn_scoped(scope, move || {
                                let _ = serve_client(stream, ctx, quit);
                                active.fetch_sub(1, Ordering::Relaxed);
                            });
                        if let Err(e) = spawned {
                            active.fetch_sub(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "control socket: cannot start a client thread");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        tracing::warn!(socket = %self.path.display(), error = %e, "control socket accept failed");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn refuse_busy(mut stream: UnixStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    let message = format!("busy: {MAX_CLIENTS} clients are connected, try again");
    writeln!(stream, "{}", serde_json::json!({ "error": message }))
}

/// Read one command line (within [`CLIENT_READ_TIMEOUT`], giving up early
/// when `quit` is set), answer it, close.
fn serve_client(
    stream: UnixStream,
    ctx: &ControlCtx<'_>,
    quit: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    stream.set_write_timeout(Some(CLIENT_READ_TIMEOUT))?;
    let deadline = Instant::now() + CLIENT_READ_TIMEOUT;
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    let mut reader = &stream;
    loop {
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            break;
        }
        if quit.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Ok(());
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if line.len() > MAX_LINE {
                    return answer(
                        &stream,
                        Err(format!("command longer than {MAX_LINE} bytes")),
                    );
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&line);
    let text = text.trim();
    let (cmd, args) = text.split_once(' ').unwrap_or((text, ""));
    match cmd {
        "reload" | "capture" | "trace" | "trace-live" => {
            worker_command(cmd, args.trim(), ctx, &stream)
        }
        _ => answer(&stream, handle_command(cmd, args.trim(), ctx)),
    }
}

/// One log line per reload, whoever asked.
fn log_reload(by: &str, r: &Result<Outcome, String>) {
    match r {
        Ok(o) => {
            let sum =
                |f: fn(&crate::engine::ReloadReport) -> u64| o.workers.iter().map(f).sum::<u64>();
            tracing::info!(
                by,
                file = %o.file,
                changed = %o.changed.join(", "),
                flows_checked = sum(|w| w.flows_checked),
                revoked = sum(|w| w.revoked),
                rule_changed = sum(|w| w.changed),
                worker_micros = sum(|w| w.micros),
                "config reloaded"
            );
        }
        Err(e) => tracing::warn!(by, error = %e, "reload refused, running config kept"),
    }
}

/// The commands that go to the workers: they may take seconds (a capture,
/// a live trace) and a live trace answers a line per packet as it comes.
fn worker_command(
    cmd: &str,
    args: &str,
    ctx: &ControlCtx<'_>,
    stream: &UnixStream,
) -> std::io::Result<()> {
    let json = |v: &dyn erased::Json| v.to_json();
    let Some(r) = ctx.reloader else {
        return answer(
            stream,
            Err("this instance has no workers to ask (no config file)".into()),
        );
    };
    let names = ctx.names();
    match cmd {
        "reload" => {
            let result = r.reload();
            log_reload("control socket", &result);
            answer(stream, result.and_then(|o| json(&o)))
        }
        "capture" => {
            // Writing the file takes as long as the capture runs.
            stream.set_write_timeout(None)?;
            let result = serde_json::from_str::<crate::capture::Request>(args)
                .map_err(|e| format!("capture: bad request: {e}"))
                .and_then(|req| crate::capture::run(&req, &names.ports, r.workers()));
            answer(stream, result.and_then(|o| json(&o)))
        }
        "trace" => {
            let result = serde_json::from_str::<crate::explain::TraceRequest>(args)
                .map_err(|e| format!("trace: bad request: {e}"))
                .and_then(|req| crate::explain::run(&req, &names, r.workers()));
            answer(stream, result.and_then(|t| json(&t)))
        }
        _ => {
            let req: crate::explain::LiveRequest = match serde_json::from_str(args) {
                Ok(r) => r,
                Err(e) => return answer(stream, Err(format!("trace: bad request: {e}"))),
            };
            let mut out = stream;
            // One JSON line per traced packet as it comes, then the end.
            let result = crate::explain::run_live(&req, &names, r.workers(), |line| {
                serde_json::to_string(line)
                    .ok()
                    .is_some_and(|j| writeln!(out, "{j}").and_then(|()| out.flush()).is_ok())
            });
            answer(
                stream,
                result.map(|n| serde_json::json!({ "done": n }).to_string()),
            )
        }
    }
}

fn answer(mut stream: &UnixStream, result: Result<String, String>) -> std::io::Result<()> {
    match result {
        Ok(json) => writeln!(stream, "{json}"),
        Err(message) => writeln!(stream, "{}", serde_json::json!({ "error": message })),
    }
}

/// Ask a running warden for its counters.
pub fn query_stats(path: &Path) -> Result<Snapshot, ControlError> {
    query(path, "stats")
}

/// Ask a running warden for its counters since start, whatever `reset` did.
pub fn query_stats_total(path: &Path) -> Result<Snapshot, ControlError> {
    query(path, "stats total")
}

/// Make `stats` count from now on, for every client (the counters
/// themselves keep counting: see [`ControlCtx::baseline`]).
pub fn query_reset(path: &Path) -> Result<(), ControlError> {
    query::<serde_json::Value>(path, "reset").map(|_| ())
}

/// Ask a running warden for its FDB.
pub fn query_fdb(
    path: &Path,
) -> Result<crate::tables_dump::Dump<crate::tables_dump::FdbRow>, ControlError> {
    query(path, "fdb")
}

/// Ask a running warden for its gateway's neighbors.
pub fn query_neighbors(
    path: &Path,
) -> Result<crate::tables_dump::Dump<crate::tables_dump::NeighborRow>, ControlError> {
    query(path, "neighbors")
}

/// Ask a running warden for its flows.
pub fn query_flows(path: &Path) -> Result<Vec<crate::flows::FlowRow>, ControlError> {
    query(path, "flows")
}

/// Ask a running warden for a capture (it answers when the capture ends).
pub fn request_capture(
    path: &Path,
    req: &crate::capture::Request,
) -> Result<crate::capture::Outcome, ControlError> {
    let line = command_line(path, "capture", req)?;
    query_with_timeout(path, &line, Duration::from_secs(req.seconds + 10))
}

/// Ask a running warden what it would do with a packet.
pub fn request_trace(
    path: &Path,
    req: &crate::explain::TraceRequest,
) -> Result<crate::engine::TraceReport, ControlError> {
    let line = command_line(path, "trace", req)?;
    query(path, &line)
}

/// `cmd` followed by `req` as JSON: one command line.
fn command_line(
    path: &Path,
    cmd: &str,
    req: &impl serde::Serialize,
) -> Result<String, ControlError> {
    let json = serde_json::to_string(req).map_err(|source| ControlError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!("{cmd} {json}"))
}

/// Follow a live trace: `each` gets every traced packet; returns how many.
pub fn follow_live_trace(
    path: &Path,
    req: &crate::explain::LiveRequest,
    mut each: impl FnMut(&crate::explain::LiveLine),
) -> Result<u64, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(req.seconds + 10)))
        .map_err(io)?;
    let line = command_line(path, "trace-live", req)?;
    s.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
    for line in BufReader::new(s).lines() {
        let line = line.map_err(io)?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|source| ControlError::Decode {
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(ControlError::Remote {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
        if let Some(n) = v.get("done").and_then(serde_json::Value::as_u64) {
            return Ok(n);
        }
        let l: crate::explain::LiveLine =
            serde_json::from_value(v).map_err(|source| ControlError::Decode {
                path: path.to_path_buf(),
                source,
            })?;
        each(&l);
    }
    Ok(0)
}

/// Ask a running warden to reload its config file.
pub fn request_reload(path: &Path) -> Result<Outcome, ControlError> {
    query_with_timeout(path, "reload", Duration::from_secs(30))
}

/// Ask a running warden what its learn mode recorded.
pub fn query_learned(path: &Path) -> Result<crate::learn::LearnedReport, ControlError> {
    query(path, "learned")
}

/// Send one command line, read the one-line JSON answer.
pub fn query<T: serde::de::DeserializeOwned>(
    path: &Path,
    command: &str,
) -> Result<T, ControlError> {
    query_with_timeout(path, command, Duration::from_secs(5))
}

fn query_with_timeout<T: serde::de::DeserializeOwned>(
    path: &Path,
    command: &str,
    timeout: Duration,
) -> Result<T, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.write_all(format!("{command}\n").as_bytes()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(io)?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(ControlError::Remote {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    }
    serde_json::from_str(&line).map_err(|source| ControlError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            instance: "t".into(),
            ports: vec!["uplink".into()],
            vnis: vec![100],
            peers: vec![("10.0.0.2".into(), Some("b".into()))],
            identities: Vec::new(),
            rules: Vec::new(),
            identity: false,
            labels: Default::default(),
        }
    }

    #[test]
    fn commands_answer_and_unknown_ones_name_the_known() {
        let names = RwLock::new(names());
        let counters = Arc::new(Counters::new(1, 1, 1, 1));
        let ctx = ControlCtx::new(&names, &counters);
        for cmd in COMMANDS {
            let a = handle_command(cmd, "", &ctx).unwrap_or_else(|e| panic!("{cmd}: {e}"));
            assert!(
                serde_json::from_str::<serde_json::Value>(&a).is_ok(),
                "{cmd}: {a}"
            );
        }
        let e = handle_command("bogus", "", &ctx).unwrap_err();
        assert!(e.contains("stats") && e.contains("learned"), "{e}");
        assert!(handle_command("stats", "nonsense", &ctx).is_err());
    }

    #[test]
    fn reset_keeps_a_baseline_and_total_ignores_it() {
        let names = RwLock::new(names());
        let counters = Arc::new(Counters::new(1, 1, 1, 1));
        let ctx = ControlCtx::new(&names, &counters);
        counters.workers[0].ports[0].rx_packets.add(10);
        counters.workers[0].fdb_entries.set(7);
        handle_command("reset", "", &ctx).unwrap();
        counters.workers[0].ports[0].rx_packets.add(3);
        let s: Snapshot =
            serde_json::from_str(&handle_command("stats", "", &ctx).unwrap()).unwrap();
        assert_eq!(s.ports["uplink"].rx_packets, 3);
        assert_eq!(s.fdb_entries, 7, "gauges are not reset");
        let t: Snapshot =
            serde_json::from_str(&handle_command("stats", "total", &ctx).unwrap()).unwrap();
        assert_eq!(t.ports["uplink"].rx_packets, 13);
    }

    /// Idle clients that connect and send nothing do not hold up `stats`
    /// (the old server answered one client at a time: one idle client cost
    /// 2 s, three made `warden stats` time out).
    #[test]
    fn idle_clients_do_not_delay_others() {
        let dir = std::env::temp_dir().join(format!("warden-ctl-{}", std::process::id()));
        let path = dir.join("t.sock");
        let server = ControlServer::bind(&path).unwrap();
        let names = RwLock::new(names());
        let counters = Arc::new(Counters::new(1, 1, 1, 1));
        let quit = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| server.serve(&names, &counters, &quit));
            let idle: Vec<UnixStream> = (0..3)
                .map(|_| UnixStream::connect(&path).unwrap())
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            for _ in 0..5 {
                query_stats(&path).unwrap();
            }
            let took = t.elapsed();
            quit.store(true, Ordering::Relaxed);
            drop(idle);
            assert!(took < Duration::from_millis(500), "5 stats took {took:?}");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn clients_beyond_the_cap_are_told_busy() {
        let dir = std::env::temp_dir().join(format!("warden-ctl-cap-{}", std::process::id()));
        let path = dir.join("t.sock");
        let server = ControlServer::bind(&path).unwrap();
        let names = RwLock::new(names());
        let counters = Arc::new(Counters::new(1, 1, 1, 1));
        let quit = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| server.serve(&names, &counters, &quit));
            let idle: Vec<UnixStream> = (0..MAX_CLIENTS)
                .map(|_| UnixStream::connect(&path).unwrap())
                .collect();
            std::thread::sleep(Duration::from_millis(100));
            let e = query_stats(&path).unwrap_err().to_string();
            quit.store(true, Ordering::Relaxed);
            drop(idle);
            assert!(e.contains("busy"), "{e}");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
