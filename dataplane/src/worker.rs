//! The poll loop of one worker (DPDK l3fwd's main loop in spirit): poll
//! every port, account the cycles as busy or idle, do housekeeping, and
//! back off when idle so a lab machine is not pinned at 100%.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::counters::WorkerCounters;
use crate::engine::Engine;
use crate::port::sys;
use crossbeam_channel::{Receiver, Sender};

/// What the control thread asks of a worker, taken between bursts.
#[derive(Debug)]
pub enum Msg {
    /// New config tables (`reload`).
    Reload(crate::reload::Request),
    /// Start a capture (Some) or stop the running one (None); the answer is
    /// how many frames the stopped one missed.
    Capture(Option<crate::capture::Tap>, Sender<u64>),
    /// Trace a packet without forwarding it (rule names by id).
    Trace(
        Box<crate::explain::Resolved>,
        Vec<String>,
        Sender<Result<crate::engine::TraceReport, String>>,
    ),
    /// Start (Some) or stop (None) a live trace.
    LiveTrace(Option<crate::engine::LiveTap>),
}

/// The end of the channel a worker polls.
pub type Inbox = Receiver<Msg>;

/// Empty polls in a row before the worker starts sleeping in poll().
const SPIN_POLLS: u32 = 2048;
/// Longest wait in one idle poll(), in milliseconds.
const MAX_IDLE_WAIT_MS: i32 = 1;

/// Run `engine` until `quit` is set, taking reloads from `inbox` between
/// bursts (one channel poll per round: no lock, no syscall).
pub fn run(engine: &mut Engine, worker: usize, quit: &AtomicBool, inbox: Option<&Inbox>) {
    let counters = engine.all_counters().clone();
    let wc: &WorkerCounters = &counters.workers[worker];
    let fds = engine.port_fds();
    let mut empty_polls = 0u32;
    let mut t0 = sys::tsc();
    while !quit.load(Ordering::Relaxed) {
        if let Some(msg) = inbox.and_then(|i| i.try_recv().ok()) {
            match msg {
                Msg::Reload(req) => {
                    let _ = req.done.send(engine.apply(req.tables, &req.rule_map));
                }
                Msg::Capture(tap, done) => {
                    let _ = done.send(engine.set_capture(tap));
                }
                Msg::Trace(q, rules, done) => {
                    let _ = done.send(crate::explain::trace_on(engine, &q, &rules));
                }
                Msg::LiveTrace(tap) => engine.set_live_trace(tap),
            }
        }
        let n = engine.poll();
        engine.housekeeping();
        let t1 = sys::tsc();
        let spent = t1.wrapping_sub(t0);
        t0 = t1;
        if n > 0 {
            wc.busy_cycles.add(spent);
            wc.busy_polls.inc();
            wc.packets.add(n as u64);
            empty_polls = 0;
        } else {
            wc.idle_cycles.add(spent);
            wc.idle_polls.inc();
            empty_polls = empty_polls.saturating_add(1);
            if empty_polls > SPIN_POLLS {
                // Sleeping is idle time; it is charged to idle on the next round.
                let _ = sys::poll_fds(&fds, MAX_IDLE_WAIT_MS);
            }
        }
    }
    engine.flush();
}

/// Process at most `max_polls` rounds (a bounded single-step API for tests
/// and benches, like smoltcp's `poll_ingress_single`). Returns packets moved.
pub fn step(engine: &mut Engine, max_polls: usize) -> usize {
    let mut moved = 0;
    for _ in 0..max_polls {
        let n = engine.poll();
        engine.housekeeping();
        if n == 0 {
            break;
        }
        moved += n;
    }
    moved
}
