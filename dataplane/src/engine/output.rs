//! Stage: output. Local delivery gets its last check (a provisional flow,
//! whose destination was not a workload known here when it was classified,
//! reaches a local port only if the policy admits its source to that
//! port's workload; the flow's own verdict is not touched). Packets go to
//! their port's transmit burst in vector order, an announce-only identity
//! packet right before the packet it announces; drops are counted by
//! reason; every buffer not sent returns to the pool.

use identity::IdentityId;

use super::meta::{Kind, Next, Vector, NO_ANNOUNCE, RECHECK};
use super::Ctx;
use crate::buffer::{Buf, Burst, Pool};
use crate::counters::{DropReason, WorkerCounters};
use crate::port::Port;

/// `CAPTURE`: a capture is running (it may want copies of what is sent
/// or dropped); the driver picks the instance once per burst.
pub(super) fn run<const CAPTURE: bool>(
    cx: &mut Ctx,
    v: &mut Vector,
    ports: &mut [Box<dyn Port>],
    tx: &mut [Burst],
) {
    for i in 0..v.len() {
        let a = v.meta[i].announce;
        if a != NO_ANNOUNCE {
            let a = usize::from(a);
            if let (Next::Tx(p), Some(buf)) = (v.meta[a].next, v.bufs[a].take()) {
                stage_slot::<CAPTURE>(cx, ports, tx, p, &mut Some(buf));
            }
        }
        if v.bufs[i].is_none() {
            continue;
        }
        let next = match v.meta[i].next {
            Next::Deliver(p) => match deliver_check(cx, v, i, p) {
                Ok(()) => {
                    cx.c.vnis[usize::from(v.meta[i].vni)].tx_local_packets.inc();
                    Next::Tx(p)
                }
                Err(reason) => Next::Drop(reason),
            },
            other => other,
        };
        // Moved from its slot straight into the transmit burst.
        let slot = &mut v.bufs[i];
        match next {
            Next::Tx(p) => stage_slot::<CAPTURE>(cx, ports, tx, p, slot),
            Next::Drop(reason) => {
                cx.c.count_drop(reason);
                if let Some(buf) = slot.take() {
                    if CAPTURE {
                        capture(cx, &buf, Capture::Drop(reason));
                    }
                    cx.pool.put(buf);
                }
            }
            // Consumed, or left by a stage that had nothing to do with it.
            _ => {
                if let Some(buf) = slot.take() {
                    cx.pool.put(buf);
                }
            }
        }
    }
}

/// Whether packet `i` may be delivered on local port `p`: a flow allowed
/// before its destination was known (not a workload of this warden when it
/// was classified) reaches a local port only if the policy admits its
/// source to that port's workload. The flow's own entry is not touched.
#[inline(always)]
fn deliver_check(cx: &Ctx, v: &Vector, i: usize, p: u16) -> Result<(), DropReason> {
    let Some(id) = &cx.t.identity else {
        return Ok(());
    };
    let m = &v.meta[i];
    if m.pkt.kind != Kind::Ip || m.flow.is_none() || m.flags & RECHECK == 0 {
        // ARP, related ICMP errors, what the gateway made, flows decided
        // for a known destination: checked already.
        return Ok(());
    }
    let dst = id
        .port_identity
        .get(usize::from(p))
        .copied()
        .flatten()
        .unwrap_or(IdentityId::UNAUTHENTICATED);
    let q = id.policy.query(&m.pkt.key, m.src_identity, Some(dst));
    if id.policy.compiled.lookup(&q).forwards() {
        Ok(())
    } else {
        Err(DropReason::PolicyDenied)
    }
}

/// Stage the buffer in `slot` on port `p`'s transmit burst. A full
/// staging burst is sent first; a buffer that still finds no room is
/// dropped, counted.
#[inline(always)]
fn stage_slot<const CAPTURE: bool>(
    cx: &mut Ctx,
    ports: &mut [Box<dyn Port>],
    tx: &mut [Burst],
    p: u16,
    slot: &mut Option<Buf>,
) {
    let pi = usize::from(p);
    if tx[pi].is_full() {
        flush_full(ports, tx, cx.pool, cx.c, pi);
    }
    if let Some(buf) = slot.take() {
        if CAPTURE {
            capture(cx, &buf, Capture::Tx(p));
        }
        if let Err(buf) = tx[pi].push(buf) {
            cx.c.count_drop(DropReason::TxFull);
            cx.pool.put(buf);
        }
    }
}

/// What a capture may want of a packet leaving the engine.
#[derive(Clone, Copy)]
enum Capture {
    Tx(u16),
    Drop(DropReason),
}

/// Copy `buf` into the running capture if it wants it (out of line: only
/// a capture's bursts come here).
#[inline(never)]
fn capture(cx: &mut Ctx, buf: &Buf, what: Capture) {
    let Some(t) = cx.st.capture.as_mut() else {
        return;
    };
    match what {
        Capture::Tx(p) if t.wants_tx(p) => t.take(buf.frame(), 1, None),
        Capture::Drop(reason) if t.wants_drop(reason) => t.take(buf.frame(), 0, Some(reason)),
        _ => {}
    }
}

/// [`flush_port`] in the middle of a vector (a burst filled up): rare.
#[cold]
#[inline(never)]
fn flush_full(
    ports: &mut [Box<dyn Port>],
    tx: &mut [Burst],
    pool: &mut Pool,
    c: &WorkerCounters,
    p: usize,
) {
    flush_port(ports, tx, pool, c, p);
}

/// Send port `p`'s staged burst; a full ring drops and counts.
pub(super) fn flush_port(
    ports: &mut [Box<dyn Port>],
    tx: &mut [Burst],
    pool: &mut Pool,
    c: &WorkerCounters,
    p: usize,
) {
    let burst = &mut tx[p];
    let bytes: u64 = burst.iter().map(|b| b.len() as u64).sum();
    let out = ports[p].tx_burst(burst, pool);
    let pc = &c.ports[p];
    pc.tx_packets.add(out.sent as u64);
    pc.tx_bytes.add(bytes);
    if out.dropped > 0 {
        pc.tx_dropped.add(out.dropped as u64);
        c.drops[DropReason::TxFull as usize].add(out.dropped as u64);
    }
}
