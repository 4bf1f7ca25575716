//! The flow log: one JSON line per flow event, as `hubble observe` shows
//! Cilium's: a flow opened (with its verdict), denied, closed (aged out),
//! and each L7 request decided on an inspected flow. Each record has the
//! time, the node, the VNI, addresses, ports and protocol, both identities
//! with their labels and how the source's was obtained, the policy set and
//! rule, the L7 summary and the drop reason.
//!
//! The packet path only copies a fixed-size [`FlowEvent`] into a bounded
//! channel ([`CHANNEL`] events per worker, lock-free for the array flavour),
//! within a per-worker budget of `[flow_log] rate` events per second. Past
//! either bound the event is **counted, not queued** (`flow_log_dropped`):
//! a flood of denied flows cannot stall the worker or grow memory. A writer
//! thread formats the records and appends them to `[flow_log] path`,
//! rotating it (`path.1` .. `path.KEEP`) once it holds `max_bytes`: a flood
//! cannot fill the disk past `(keep + 1) * max_bytes`.
//!
//! `warden observe` follows the file (across rotations) with filters.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use crate::counters::{DropReason, WorkerCounters};
use crate::flows::{FlowEntry, RawFlowRow};
use crate::l7flows::LastL7;
use crate::learn::LearnL7;
use crate::stats::Names;

/// Events one worker may have waiting for the writer.
pub const CHANNEL: usize = 4096;

/// What happened to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new flow entered the table (allowed, or forwarded by monitor or
    /// learn mode): its first packet went on.
    Opened,
    /// Refused at its first packet (deny or reject), or later (its
    /// responder, a changed identity, a reload).
    Denied,
    /// Left the table after its idle time.
    Closed,
    /// A request on an inspected flow was decided.
    L7,
}

/// One event, as the worker hands it over: plain data, no allocation.
#[derive(Debug, Clone, Copy)]
pub struct FlowEvent {
    pub kind: EventKind,
    pub entry: FlowEntry,
    /// L7 events: what the request said, and its verdict.
    pub request: LearnL7,
    pub l7_verdict: LastL7,
    pub reason: Option<DropReason>,
    /// Engine seconds when it happened.
    pub now: u32,
}

/// The worker's end: the channel and the second's budget.
#[derive(Debug)]
pub struct FlowLogTx {
    tx: Sender<FlowEvent>,
    rate: u32,
    tokens: u32,
    /// Events sent, and events counted instead of queued.
    pub sent: u64,
    pub dropped: u64,
}

impl FlowLogTx {
    pub fn new(tx: Sender<FlowEvent>, rate: u32) -> FlowLogTx {
        FlowLogTx {
            tx,
            rate,
            tokens: rate,
            sent: 0,
            dropped: 0,
        }
    }

    /// Hand `ev` to the writer if the budget and the channel allow.
    #[inline]
    pub fn emit(&mut self, ev: FlowEvent) {
        if self.tokens == 0 {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1;
        match self.tx.try_send(ev) {
            Ok(()) => self.sent += 1,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// A new second: a new budget (housekeeping).
    pub fn refill(&mut self) {
        self.tokens = self.rate;
    }

    /// Mirror the totals into the worker's counters (housekeeping).
    pub fn publish(&self, c: &WorkerCounters) {
        c.flow_log_events.set(self.sent);
        c.flow_log_dropped.set(self.dropped);
    }
}

/// A channel for one worker's events.
pub fn channel() -> (Sender<FlowEvent>, Receiver<FlowEvent>) {
    crossbeam_channel::bounded(CHANNEL)
}

/// One line of the flow log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub time: String,
    pub node: String,
    pub event: EventKind,
    pub vni: u32,
    pub protocol: String,
    pub src: String,
    pub src_port: u16,
    pub dst: String,
    pub dst_port: u16,
    /// Where the flow came from: `peer ADDRESS` or `port NAME mac MAC`.
    pub origin: String,
    pub src_identity: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub src_labels: BTreeMap<String, String>,
    /// How the source identity was obtained (header, local_port, ...).
    pub identity_source: String,
    pub dst_identity: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dst_labels: BTreeMap<String, String>,
    pub verdict: String,
    pub set: Option<String>,
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<L7Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// An L7 request's summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct L7Summary {
    pub protocol: String,
    /// `GET /path`, a server name or a DNS name (as learn keeps it).
    pub request: String,
    pub verdict: String,
}

/// A protocol number as people say it.
pub fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmp6".into(),
        n => n.to_string(),
    }
}

impl Record {
    /// The record of `ev` with the names in `names`, at `time`.
    pub fn of(ev: &FlowEvent, names: &Names, time: SystemTime) -> Record {
        let raw = RawFlowRow {
            entry: ev.entry,
            now: ev.now,
            l7: None,
        };
        let row = names.flow_row(&raw);
        let labels = |hex: &str| names.labels.get(hex).cloned().unwrap_or_default();
        let (rule, set) = match row.rule.as_str() {
            "-" => (None, None),
            r => (
                Some(r.to_string()),
                Some(r.rsplit_once('#').map_or(r, |(s, _)| s).to_string()),
            ),
        };
        let l7 = (ev.kind == EventKind::L7).then(|| {
            let (protocol, request) = ev.request.describe();
            L7Summary {
                protocol: protocol.to_string(),
                request,
                verdict: ev.l7_verdict.name().to_string(),
            }
        });
        Record {
            time: humantime::format_rfc3339_millis(time).to_string(),
            node: names.instance.clone(),
            event: ev.kind,
            vni: row.vni,
            protocol: protocol_name(row.protocol),
            src: row.src,
            src_port: row.src_port,
            dst: row.dst,
            dst_port: row.dst_port,
            origin: row.origin,
            src_labels: labels(&row.src_identity),
            src_identity: names.identity_name(&row.src_identity),
            identity_source: row.identity_source,
            dst_labels: labels(&row.dst_identity),
            dst_identity: names.identity_name(&row.dst_identity),
            verdict: row.verdict,
            set,
            rule,
            l7,
            reason: ev.reason.map(|r| r.name().to_string()),
            packets: row.packets,
            bytes: row.bytes,
        }
    }
}

/// The file end: appends records, rotates by size.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: BufWriter<File>,
    size: u64,
}

impl Writer {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> std::io::Result<Writer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file: BufWriter::new(file),
            size,
        })
    }

    fn rotated(&self, k: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{k}"));
        PathBuf::from(p)
    }

    /// Append one line (rotating first when it would not fit).
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let n = line.len() as u64 + 1;
        if self.size > 0 && self.size + n > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.size += n;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for k in (1..self.keep).rev() {
                let from = self.rotated(k);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(k + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The writer thread: drains `rx` into `w` until `quit` is set and the
/// channel is empty.
pub fn run_writer(
    mut w: Writer,
    rx: Receiver<FlowEvent>,
    names: Arc<RwLock<Names>>,
    quit: Arc<AtomicBool>,
) {
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => {
                let names = match names.read() {
                    Ok(n) => n,
                    Err(_) => return,
                };
                let mut write = |ev: &FlowEvent| {
                    let rec = Record::of(ev, &names, SystemTime::now());
                    if let Ok(line) = serde_json::to_string(&rec) {
                        if let Err(e) = w.write_line(&line) {
                            tracing::warn!(error = %e, "flow log write failed");
                        }
                    }
                };
                write(&ev);
                // Whatever else is waiting, then one flush.
                while let Ok(ev) = rx.try_recv() {
                    write(&ev);
                }
                let _ = w.flush();
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if quit.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests;
