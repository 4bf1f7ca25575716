//! The control socket: a Unix stream socket that answers one-line
//! commands (`stats`) with JSON. Served by the control thread; it reads the
//! shared counters and never blocks the workers.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
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

    /// Serve until `quit` is set; reload when `hup` is set (SIGHUP).
    pub fn serve(
        &self,
        names: &RwLock<Names>,
        counters: &Arc<Counters>,
        quit: &AtomicBool,
        reloader: Option<&Reloader>,
        hup: &AtomicBool,
    ) {
        let started = Instant::now();
        while !quit.load(Ordering::Relaxed) {
            if hup.swap(false, Ordering::Relaxed) {
                if let Some(r) = reloader {
                    log_reload("SIGHUP", &r.reload());
                }
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let names = names.read().map(|n| n.clone());
                    if let Ok(names) = names {
                        let _ = handle(stream, &names, counters, started, reloader);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    tracing::warn!(socket = %self.path.display(), error = %e, "control socket accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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

fn handle(
    stream: UnixStream,
    names: &Names,
    counters: &Counters,
    started: Instant,
    reloader: Option<&Reloader>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut out = stream;
    let (command, args) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    if command == "capture" {
        let req: crate::capture::Request = match serde_json::from_str(args) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("capture: bad request: {e}");
                return writeln!(out, "{}", serde_json::json!({ "error": message }));
            }
        };
        let Some(r) = reloader else {
            return writeln!(
                out,
                "{}",
                serde_json::json!({ "error": "no workers to capture on" })
            );
        };
        return match crate::capture::run(&req, &names.ports, r.workers()) {
            Ok(o) => {
                let json = serde_json::to_string(&o).map_err(std::io::Error::other)?;
                writeln!(out, "{json}")
            }
            Err(e) => writeln!(out, "{}", serde_json::json!({ "error": e })),
        };
    }
    if command == "trace" || command == "trace-live" {
        let Some(r) = reloader else {
            return writeln!(
                out,
                "{}",
                serde_json::json!({ "error": "no workers to trace on" })
            );
        };
        if command == "trace" {
            let result = serde_json::from_str::<crate::explain::TraceRequest>(args)
                .map_err(|e| format!("trace: bad request: {e}"))
                .and_then(|req| crate::explain::run(&req, names, r.workers()));
            return match result {
                Ok(report) => {
                    let json = serde_json::to_string(&report).map_err(std::io::Error::other)?;
                    writeln!(out, "{json}")
                }
                Err(e) => writeln!(out, "{}", serde_json::json!({ "error": e })),
            };
        }
        let req: crate::explain::LiveRequest = match serde_json::from_str(args) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("trace: bad request: {e}");
                return writeln!(out, "{}", serde_json::json!({ "error": message }));
            }
        };
        // One JSON line per traced packet as it comes, then the end.
        let result = crate::explain::run_live(&req, names, r.workers(), |line| {
            serde_json::to_string(line)
                .ok()
                .is_some_and(|j| writeln!(out, "{j}").and_then(|()| out.flush()).is_ok())
        });
        return match result {
            Ok(n) => writeln!(out, "{}", serde_json::json!({ "done": n })),
            Err(e) => writeln!(out, "{}", serde_json::json!({ "error": e })),
        };
    }
    match line.trim() {
        "stats" => {
            let snap = Snapshot::take(names, counters, started.elapsed().as_secs(), tsc_hz());
            let json = serde_json::to_string(&snap).map_err(std::io::Error::other)?;
            writeln!(out, "{json}")
        }
        "flows" => {
            let mut rows = Vec::new();
            for w in &counters.workers {
                let raw = w.flow_rows.lock().map(|r| r.clone()).unwrap_or_default();
                rows.extend(raw.iter().map(|r| {
                    let mut row = crate::flows::FlowRow::from_raw(
                        r,
                        |v| names.vnis.get(usize::from(v)).copied().unwrap_or(0),
                        |p| {
                            names
                                .peers
                                .get(usize::from(p))
                                .map_or_else(|| format!("#{p}"), |(a, _)| a.clone())
                        },
                        |p| {
                            names
                                .ports
                                .get(usize::from(p))
                                .cloned()
                                .unwrap_or_else(|| format!("#{p}"))
                        },
                        |r| names.rule_name(r),
                    );
                    row.src_identity = names.identity_name(&row.src_identity);
                    row.dst_identity = names.identity_name(&row.dst_identity);
                    row
                }));
            }
            let json = serde_json::to_string(&rows).map_err(std::io::Error::other)?;
            writeln!(out, "{json}")
        }
        "learned" => {
            let mut report = crate::learn::LearnedReport::default();
            for w in &counters.workers {
                report.dropped += w.policy.learn_dropped.get();
                if let Ok(rows) = w.policy.learn_rows.lock() {
                    report
                        .records
                        .extend(rows.iter().map(crate::learn::LearnedRow::from));
                }
            }
            let json = serde_json::to_string(&report).map_err(std::io::Error::other)?;
            writeln!(out, "{json}")
        }
        "reload" => {
            let Some(r) = reloader else {
                let message = "this instance cannot reload (no config file)";
                return writeln!(out, "{}", serde_json::json!({ "error": message }));
            };
            let result = r.reload();
            log_reload("control socket", &result);
            match result {
                Ok(o) => {
                    let json = serde_json::to_string(&o).map_err(std::io::Error::other)?;
                    writeln!(out, "{json}")
                }
                Err(e) => writeln!(out, "{}", serde_json::json!({ "error": e })),
            }
        }
        other => {
            let message = format!("unknown command {other:?}; try stats, flows, learned or reload");
            writeln!(out, "{}", serde_json::json!({ "error": message }))
        }
    }
}

/// Ask a running warden for its counters.
pub fn query_stats(path: &Path) -> Result<Snapshot, ControlError> {
    query(path, "stats")
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
    let line = format!(
        "capture {}",
        serde_json::to_string(req).map_err(|source| ControlError::Decode {
            path: path.to_path_buf(),
            source,
        })?
    );
    query_with_timeout(path, &line, Duration::from_secs(req.seconds + 10))
}

/// Ask a running warden what it would do with a packet.
pub fn request_trace(
    path: &Path,
    req: &crate::explain::TraceRequest,
) -> Result<crate::engine::TraceReport, ControlError> {
    let line = format!(
        "trace {}",
        serde_json::to_string(req).map_err(|source| ControlError::Decode {
            path: path.to_path_buf(),
            source,
        })?
    );
    query(path, &line)
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
    let line = serde_json::to_string(req).map_err(|source| ControlError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    s.write_all(format!("trace-live {line}\n").as_bytes())
        .map_err(io)?;
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

fn query<T: serde::de::DeserializeOwned>(path: &Path, command: &str) -> Result<T, ControlError> {
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
