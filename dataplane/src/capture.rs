//! Packet capture from inside the engine (`warden capture`), as
//! `ovs-tcpdump` or VPP's `pcap trace` do: a port's received or sent
//! frames, or the packets dropped for a reason (or for any reason, the
//! reason kept as a packet comment), written as pcapng that tcpdump and
//! Wireshark open.
//!
//! The worker copies each matching frame (up to the snap length) into a
//! slot taken from a ring of [`SLOTS`] slots allocated when the capture
//! starts, and hands it over; the control thread writes the slot to the
//! file and gives it back. No allocation, lock, syscall or clock read per
//! packet (one clock read per burst); when every slot is in flight the packet is
//! not captured but counted (`missed`). Off, it costs one branch per burst
//! and stage.

use std::borrow::Cow;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use serde::{Deserialize, Serialize};

use crate::counters::DropReason;

/// Slots of one capture's ring.
pub const SLOTS: usize = 1024;
/// Largest snap length (a whole jumbo frame).
pub const SNAP_MAX: usize = 9216;

/// What a capture takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Point {
    /// Frames a port receives (`rx`), sends (`tx`), or both.
    Port { port: u16, rx: bool, tx: bool },
    /// Packets dropped for `reason` (None: any reason).
    Drops { reason: Option<String> },
}

/// One captured frame.
#[derive(Debug)]
pub struct Slot {
    pub data: Box<[u8]>,
    pub len: usize,
    pub orig_len: usize,
    pub time: Duration,
    /// The pcapng interface it is written under (0: rx/drops, 1: tx).
    pub interface: u32,
    pub reason: Option<DropReason>,
}

/// The worker's end of a running capture.
#[derive(Debug)]
pub struct Tap {
    pub point: Point,
    /// Resolved once: the reason to match, when the capture names one.
    reason: Option<DropReason>,
    snaplen: usize,
    free: Receiver<Box<Slot>>,
    full: Sender<Box<Slot>>,
    /// Frames that matched but found no free slot.
    pub missed: u64,
    /// The time of the burst being processed (one clock read a burst).
    now: Duration,
}

/// The control thread's end.
#[derive(Debug)]
pub struct Sink {
    pub free: Sender<Box<Slot>>,
    pub full: Receiver<Box<Slot>>,
}

/// A capture of `point` with `snaplen` bytes per frame: the tap for the
/// worker and the sink for the writer. An unknown drop reason is an error.
pub fn new(point: Point, snaplen: usize) -> Result<(Tap, Sink), String> {
    let reason = match &point {
        Point::Drops { reason: Some(r) } => Some(
            DropReason::ALL
                .iter()
                .copied()
                .find(|d| d.name() == r)
                .ok_or_else(|| {
                    format!("unknown drop reason {r:?} (see `warden stats` for the names)")
                })?,
        ),
        _ => None,
    };
    let snaplen = snaplen.clamp(64, SNAP_MAX);
    let (free_tx, free_rx) = crossbeam_channel::bounded(SLOTS);
    let (full_tx, full_rx) = crossbeam_channel::bounded(SLOTS);
    for _ in 0..SLOTS {
        let slot = Box::new(Slot {
            data: vec![0u8; snaplen].into_boxed_slice(),
            len: 0,
            orig_len: 0,
            time: Duration::ZERO,
            interface: 0,
            reason: None,
        });
        free_tx.send(slot).map_err(|_| "capture ring".to_string())?;
    }
    Ok((
        Tap {
            point,
            reason,
            snaplen,
            free: free_rx,
            full: full_tx,
            missed: 0,
            now: Duration::ZERO,
        },
        Sink {
            free: free_tx,
            full: full_rx,
        },
    ))
}

impl Tap {
    /// Whether frames port `p` receives are taken.
    #[inline]
    pub fn wants_rx(&self, p: u16) -> bool {
        matches!(self.point, Point::Port { port, rx: true, .. } if port == p)
    }

    #[inline]
    pub fn wants_tx(&self, p: u16) -> bool {
        matches!(self.point, Point::Port { port, tx: true, .. } if port == p)
    }

    #[inline]
    pub fn wants_drop(&self, r: DropReason) -> bool {
        match self.point {
            Point::Drops { .. } => self.reason.is_none_or(|want| want == r),
            Point::Port { .. } => false,
        }
    }

    /// A new burst: read the clock once for its frames.
    pub fn stamp(&mut self) {
        self.now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
    }

    /// Copy `frame` into a free slot and hand it over (out of line: the
    /// packet path carries only the `wants_*` branch).
    #[inline(never)]
    pub fn take(&mut self, frame: &[u8], interface: u32, reason: Option<DropReason>) {
        let Ok(mut slot) = self.free.try_recv() else {
            self.missed += 1;
            return;
        };
        let n = frame.len().min(self.snaplen);
        slot.data[..n].copy_from_slice(&frame[..n]);
        slot.len = n;
        slot.orig_len = frame.len();
        slot.time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        slot.interface = interface;
        slot.reason = reason;
        if let Err(e) = self.full.try_send(slot) {
            // Cannot happen (as many slots as room); keep the slot anyway.
            let _ = self.free.try_recv();
            drop(e);
            self.missed += 1;
        }
    }
}

/// Writes captured slots as pcapng.
pub struct PcapWriter<W: Write> {
    w: PcapNgWriter<W>,
    pub written: u64,
}

impl<W: Write> std::fmt::Debug for PcapWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapWriter")
            .field("written", &self.written)
            .finish()
    }
}

/// What `warden capture` asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// A port by name, or drops.
    pub port: Option<String>,
    pub rx: bool,
    pub tx: bool,
    /// Drops (`reason`: one reason's name, None: any).
    pub drops: bool,
    pub reason: Option<String>,
    /// Stop after this many frames or seconds, whichever comes first.
    pub count: u64,
    pub seconds: u64,
    pub snaplen: usize,
    /// Absolute path of the pcapng file to write.
    pub file: String,
}

/// What it did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    pub file: String,
    pub captured: u64,
    /// Matched, but every slot was in flight.
    pub missed: u64,
}

/// Run capture `req` on the workers behind `workers` (ports named by
/// `ports`): start a tap on each, write what they take to the file, stop
/// them at the count or the deadline.
pub fn run(
    req: &Request,
    ports: &[String],
    workers: &[Sender<crate::worker::Msg>],
) -> Result<Outcome, String> {
    use crate::worker::Msg;
    let point = match (&req.port, req.drops) {
        (Some(name), false) => {
            let port = ports
                .iter()
                .position(|p| p == name)
                .ok_or_else(|| format!("no port {name:?}; ports: {}", ports.join(", ")))?;
            Point::Port {
                port: port as u16,
                rx: req.rx,
                tx: req.tx,
            }
        }
        (None, true) => Point::Drops {
            reason: req.reason.clone(),
        },
        _ => return Err("capture a port (--port NAME) or drops (--drops), one of them".into()),
    };
    let path = std::path::Path::new(&req.file);
    if !path.is_absolute() {
        return Err(format!("{}: give an absolute path", req.file));
    }
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", req.file))?;
    let name = req.port.clone().unwrap_or_else(|| "drops".into());
    let mut out = PcapWriter::new(std::io::BufWriter::new(file), &name, req.snaplen)?;
    let mut sinks = Vec::new();
    let timeout = Duration::from_secs(5);
    for w in workers {
        let (tap, sink) = new(point.clone(), req.snaplen)?;
        let (done, answer) = crossbeam_channel::bounded(1);
        w.send_timeout(Msg::Capture(Some(tap), done), timeout)
            .map_err(|_| "a worker does not take the capture".to_string())?;
        answer
            .recv_timeout(timeout)
            .map_err(|_| "a worker did not answer".to_string())?;
        sinks.push(sink);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(req.seconds);
    let mut captured = 0u64;
    'outer: while captured < req.count && std::time::Instant::now() < deadline {
        let mut idle = true;
        for s in &sinks {
            while let Ok(slot) = s.full.try_recv() {
                idle = false;
                out.write(&slot)?;
                let _ = s.free.send(slot);
                captured += 1;
                if captured >= req.count {
                    break 'outer;
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mut missed = 0;
    for w in workers {
        let (done, answer) = crossbeam_channel::bounded(1);
        if w.send_timeout(Msg::Capture(None, done), timeout).is_ok() {
            missed += answer.recv_timeout(timeout).unwrap_or(0);
        }
    }
    // What the taps handed over before they stopped, up to the count.
    for s in &sinks {
        while let Ok(slot) = s.full.try_recv() {
            if captured < req.count {
                out.write(&slot)?;
                captured += 1;
            }
        }
    }
    out.finish()
        .flush()
        .map_err(|e| format!("{}: {e}", req.file))?;
    Ok(Outcome {
        file: req.file.clone(),
        captured,
        missed,
    })
}

impl<W: Write> PcapWriter<W> {
    /// A pcapng file with two interfaces: 0 for received frames and drops,
    /// 1 for sent frames, named `name-rx` and `name-tx`.
    pub fn new(out: W, name: &str, snaplen: usize) -> Result<PcapWriter<W>, String> {
        let mut w = PcapNgWriter::new(out).map_err(|e| e.to_string())?;
        for dir in ["in", "out"] {
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: snaplen as u32,
                // pcap-file writes timestamps in nanoseconds: say so
                // (readers assume microseconds otherwise).
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(format!("{name}-{dir}"))),
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            };
            w.write_pcapng_block(idb).map_err(|e| e.to_string())?;
        }
        Ok(PcapWriter { w, written: 0 })
    }

    pub fn write(&mut self, s: &Slot) -> Result<(), String> {
        let options = match s.reason {
            Some(r) => vec![EnhancedPacketOption::Comment(Cow::Owned(format!(
                "drop: {}: {}",
                r.name(),
                r.describe()
            )))],
            None => Vec::new(),
        };
        let epb = EnhancedPacketBlock {
            interface_id: s.interface,
            timestamp: s.time,
            original_len: s.orig_len as u32,
            data: Cow::Borrowed(&s.data[..s.len]),
            options,
        };
        self.w.write_pcapng_block(epb).map_err(|e| e.to_string())?;
        self.written += 1;
        Ok(())
    }

    pub fn finish(self) -> W {
        self.w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_counts_what_it_misses_and_slots_come_back() {
        let (mut tap, sink) = new(Point::Drops { reason: None }, 128).unwrap();
        for _ in 0..SLOTS + 5 {
            tap.take(&[7u8; 200], 0, Some(DropReason::PolicyDenied));
        }
        assert_eq!(tap.missed, 5);
        let s = sink.full.try_recv().unwrap();
        assert_eq!((s.len, s.orig_len), (128, 200), "cut at the snap length");
        sink.free.send(s).unwrap();
        tap.take(&[1u8; 60], 0, None);
        assert_eq!(tap.missed, 5, "the slot given back is used again");
    }

    #[test]
    fn reasons_are_checked_and_matched() {
        assert!(new(
            Point::Drops {
                reason: Some("nope".into())
            },
            100
        )
        .is_err());
        let (tap, _) = new(
            Point::Drops {
                reason: Some("policy_denied".into()),
            },
            100,
        )
        .unwrap();
        assert!(tap.wants_drop(DropReason::PolicyDenied));
        assert!(!tap.wants_drop(DropReason::PolicyRejected));
        let (tap, _) = new(
            Point::Port {
                port: 2,
                rx: true,
                tx: false,
            },
            100,
        )
        .unwrap();
        assert!(tap.wants_rx(2) && !tap.wants_tx(2) && !tap.wants_rx(1));
    }

    #[test]
    fn the_pcapng_reads_back_with_comments() {
        let (mut tap, sink) = new(Point::Drops { reason: None }, 1500).unwrap();
        tap.take(&[0xaa; 60], 0, Some(DropReason::PolicyDenied));
        let mut w = PcapWriter::new(Vec::new(), "drops", 1500).unwrap();
        w.write(&sink.full.try_recv().unwrap()).unwrap();
        let bytes = w.finish();
        let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut seen = 0;
        while let Some(block) = r.next_block() {
            if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.unwrap() {
                assert_eq!(p.data.len(), 60);
                let comment = p.options.iter().any(|o| {
                    matches!(o, EnhancedPacketOption::Comment(c) if c.contains("policy_denied"))
                });
                assert!(comment);
                seen += 1;
            }
        }
        assert_eq!(seen, 1);
    }
}
