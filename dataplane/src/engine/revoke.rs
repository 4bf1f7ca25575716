//! Stage: revoke. A TCP segment of a flow that a reloaded policy no longer
//! allows (classify found its entry `Revoked`) is not forwarded; both ends
//! get a RST built from it, so neither waits on a connection that is gone:
//!
//! - onward, to the end the segment was going to, as if from its sender, at
//!   the segment's own sequence number (the first byte the receiver has not
//!   had, for a segment in order);
//! - back, to the sender, as if from the other end, at the segment's ACK
//!   number (the next byte the sender expects).
//!
//! Either direction's next segment does it (an idle connection is reset
//! when it is next used), within the `reject` answer budget of the worker
//! (1,000 a second); past it, segments are dropped as `policy_revoked`.

use super::inspect::push_resets;
use super::meta::{Next, Vector};
use super::reject::Toward;
use super::Ctx;
use crate::counters::DropReason;

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    // Pushed answers land past the end: only the burst's own packets.
    let n = v.len();
    for i in 0..n {
        if v.meta[i].next == Next::Revoke {
            v.meta[i].next = revoke(cx, v, i);
        }
    }
}

fn revoke(cx: &mut Ctx, v: &mut Vector, i: usize) -> Next {
    let Some((_, seq)) = v.meta[i].pkt.tcp else {
        return Next::Drop(DropReason::PolicyRevoked);
    };
    if cx.st.reject_tokens < 2 {
        cx.c.policy.reject_answers_limited.inc();
        return Next::Drop(DropReason::PolicyRevoked);
    }
    let targets = [
        Some(Toward::Server { seq }),
        Some(Toward::Client { seq: None }),
    ];
    let sent = push_resets(cx, v, i, &targets);
    cx.st.reject_tokens -= sent as u32;
    cx.c.policy.reject_answers.add(sent as u64);
    Next::Drop(DropReason::PolicyRevoked)
}
