//! Stage: frames received on a local access port enter the port's VNI.

use overlay::ethernet;

use super::decap::finish_partial_checksum;
use super::meta::{Next, Vector};
use super::Ctx;
use crate::counters::DropReason;

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    for i in 0..v.len() {
        if v.meta[i].next != Next::Access {
            continue;
        }
        let Some(buf) = v.bufs[i].as_mut() else {
            continue;
        };
        if buf.len() < ethernet::HEADER_LEN {
            v.meta[i].next = Next::Drop(DropReason::Truncated);
            continue;
        }
        finish_partial_checksum(buf);
        cx.c.vnis[usize::from(v.meta[i].vni)].rx_local_packets.inc();
        v.meta[i].next = Next::Classify;
    }
}
