//! `warden observe`: follow the flow log (`flowlog`) as it is written, as
//! `hubble observe` follows Cilium's flows. Reads the file from its end (or
//! its start), waits for more, and reopens it when the writer rotates it
//! (the file at the path is another one, or shorter than what was read).
//! Records are filtered by identity, verdict, port and event kind and
//! printed one per line (or as written, JSON).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::flowlog::Record;

/// Which records to show.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub identity: Option<String>,
    pub verdict: Option<String>,
    pub port: Option<u16>,
    pub event: Option<String>,
}

impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        let identity = self
            .identity
            .as_ref()
            .is_none_or(|i| &r.src_identity == i || &r.dst_identity == i);
        let verdict = self
            .verdict
            .as_ref()
            .is_none_or(|v| &r.verdict == v || r.l7.as_ref().is_some_and(|l| &l.verdict == v));
        let port = self.port.is_none_or(|p| r.src_port == p || r.dst_port == p);
        let event = self.event.as_ref().is_none_or(|e| {
            serde_json::to_value(r.event)
                .ok()
                .and_then(|v| v.as_str().map(|s| s == e))
                .unwrap_or(false)
        });
        identity && verdict && port && event
    }
}

/// How to follow.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub since_start: bool,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
    pub json: bool,
}

/// One record as a line of text.
pub fn format(r: &Record) -> String {
    let mut out = format!(
        "{} {} {:<7} {:<10} {}:{} ({}) -> {}:{} ({}) {} vni {}",
        r.time,
        r.node,
        serde_json::to_value(r.event)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.verdict,
        r.src,
        r.src_port,
        r.src_identity,
        r.dst,
        r.dst_port,
        r.dst_identity,
        r.protocol,
        r.vni,
    );
    if let Some(rule) = &r.rule {
        out += &format!(" rule {rule}");
    }
    if let Some(l7) = &r.l7 {
        out += &format!(" {} {:?} {}", l7.protocol, l7.request, l7.verdict);
    }
    if let Some(reason) = &r.reason {
        out += &format!(" reason {reason}");
    }
    out
}

/// The flow log file named on the command line or in the config.
fn log_path(file: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, String> {
    match (file, config) {
        (Some(f), _) => Ok(f),
        (None, Some(c)) => {
            let cfg = config::load_warden(&c).map_err(|e| e.to_string())?;
            cfg.flow_log.map(|f| f.path).ok_or_else(|| {
                format!(
                    "{}: no [flow_log] table: this instance keeps no flow log",
                    c.display()
                )
            })
        }
        (None, None) => {
            Err("give the flow log (--file PATH) or the instance config (-c FILE)".into())
        }
    }
}

/// The CLI: follow until `count` matches or `timeout`, or forever.
pub fn run(file: Option<PathBuf>, config: Option<PathBuf>, f: &Filter, o: &Options) -> ExitCode {
    let path = match log_path(file, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warden: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = follow(&path, f, o, |line, rec| {
        let text = if o.json {
            line.to_string()
        } else {
            format(rec)
        };
        // A closed pipe ends the command quietly.
        writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Follow `path`, calling `each` with every matching record (and its line)
/// until it returns false, `count` matched or `timeout` passed.
pub fn follow(
    path: &Path,
    f: &Filter,
    o: &Options,
    mut each: impl FnMut(&str, &Record) -> bool,
) -> std::io::Result<()> {
    let started = Instant::now();
    let mut matched = 0u64;
    let open = |from_start: bool| -> std::io::Result<(BufReader<File>, u64)> {
        let mut file = File::open(path)?;
        let ino = file.metadata()?.ino();
        if !from_start {
            file.seek(SeekFrom::End(0))?;
        }
        Ok((BufReader::new(file), ino))
    };
    let (mut reader, mut ino) = open(o.since_start)?;
    let mut line = String::new();
    loop {
        if o.timeout.is_some_and(|t| started.elapsed() >= t) {
            return Ok(());
        }
        let n = reader.read_line(&mut line)?;
        if n > 0 && line.ends_with('\n') {
            let text = line.trim_end();
            if let Ok(rec) = serde_json::from_str::<Record>(text) {
                if f.matches(&rec) {
                    if !each(text, &rec) {
                        return Ok(());
                    }
                    matched += 1;
                    if o.count.is_some_and(|c| matched >= c) {
                        return Ok(());
                    }
                }
            }
            line.clear();
            continue;
        }
        // At the end (or mid-line): wait, then see whether the writer
        // rotated the file away.
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(meta) = std::fs::metadata(path) {
            let pos = reader.stream_position()?;
            if meta.ino() != ino || meta.len() < pos {
                (reader, ino) = open(true)?;
                line.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::{EventKind, L7Summary};

    fn record(event: EventKind, verdict: &str, port: u16) -> Record {
        Record {
            time: "2026-12-04T00:00:00.000Z".into(),
            node: "n2".into(),
            event,
            vni: 100,
            protocol: "tcp".into(),
            src: "10.1.0.21".into(),
            src_port: 40000,
            dst: "10.1.0.23".into(),
            dst_port: port,
            origin: "peer 10.0.0.1".into(),
            src_identity: "api".into(),
            src_labels: Default::default(),
            identity_source: "header".into(),
            dst_identity: "db".into(),
            dst_labels: Default::default(),
            verdict: verdict.into(),
            set: None,
            rule: None,
            l7: (event == EventKind::L7).then(|| L7Summary {
                protocol: "http".into(),
                request: "GET /admin".into(),
                verdict: "deny".into(),
            }),
            reason: None,
            packets: 1,
            bytes: 60,
        }
    }

    #[test]
    fn filters_combine() {
        let f = Filter {
            identity: Some("db".into()),
            verdict: Some("deny".into()),
            port: Some(5001),
            event: None,
        };
        assert!(f.matches(&record(EventKind::Denied, "deny", 5001)));
        assert!(!f.matches(&record(EventKind::Opened, "allow", 5001)));
        assert!(!f.matches(&record(EventKind::Denied, "deny", 5002)));
        assert!(
            f.matches(&record(EventKind::L7, "allow", 5001)),
            "an L7 deny"
        );
        let by_event = Filter {
            event: Some("l7".into()),
            ..Filter::default()
        };
        assert!(by_event.matches(&record(EventKind::L7, "allow", 1)));
        assert!(!by_event.matches(&record(EventKind::Opened, "allow", 1)));
    }

    #[test]
    fn following_survives_a_rotation() {
        let dir = std::env::temp_dir().join(format!("warden-observe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flows.jsonl");
        let line = |port| serde_json::to_string(&record(EventKind::Opened, "allow", port)).unwrap();
        std::fs::write(&path, format!("{}\n", line(1))).unwrap();
        let writer = {
            let (path, dir) = (path.clone(), dir.clone());
            let (a, b) = (line(2), line(3));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                writeln!(f, "{a}").unwrap();
                drop(f);
                std::thread::sleep(Duration::from_millis(300));
                std::fs::rename(&path, dir.join("flows.jsonl.1")).unwrap();
                std::fs::write(&path, format!("{b}\n")).unwrap();
            })
        };
        let mut ports = Vec::new();
        let o = Options {
            count: Some(2),
            timeout: Some(Duration::from_secs(10)),
            ..Options::default()
        };
        follow(&path, &Filter::default(), &o, |_, r| {
            ports.push(r.dst_port);
            true
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(ports, vec![2, 3], "from the end, then across the rotation");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
