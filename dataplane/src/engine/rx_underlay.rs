//! Stage: frames received on the underlay port. VXLAN to warden's VTEP
//! address goes to decap; ARP and other traffic for the VTEP address go to
//! the underlay host stack (smoltcp); anything else is dropped, counted.
//! VXLAN in its common shape (`overlay::DecapShape`: untagged, IPv4
//! without options, UDP checksum 0, VXLAN flags I) is recognized by a
//! masked compare of its fixed bytes and marked `OUTER_SHAPE`, so that
//! decap checks only what varies.

use overlay::{ethernet, ipv4, EtherType, IpProtocol};

use super::meta::{Next, Vector, OUTER_SHAPE};
use super::Ctx;
use crate::counters::DropReason;
use crate::underlay::HostStack;

/// Returns true when the host stack got frames to process.
pub(super) fn run(cx: &mut Ctx, v: &mut Vector, host: &mut HostStack) -> bool {
    let mut punted = false;
    for (buf, m) in v.bufs.iter().zip(v.meta.iter_mut()) {
        if m.next != Next::Underlay {
            continue;
        }
        let frame = buf.as_ref().map_or(&[][..], |b| b.frame());
        // VXLAN to this VTEP in its common shape: decap checks the rest.
        if cx.st.decap_shape.matches(frame) {
            m.flags |= OUTER_SHAPE;
            m.next = Next::Decap;
            continue;
        }
        let next = classify(cx, frame);
        if next == Next::Done {
            // The host stack takes a copy; the buffer is recycled by output.
            cx.c.host_stack_rx.inc();
            if !host.push_rx(frame) {
                cx.c.count_drop(DropReason::HostStackBusy);
            }
            punted = true;
        }
        m.next = next;
    }
    punted
}

/// Where an underlay frame goes: Decap, Done (to the host stack) or Drop.
/// Reads the few bytes that decide it straight from the frame; decap
/// checks everything else.
#[inline]
fn classify(cx: &Ctx, f: &[u8]) -> Next {
    let Some((eth, rest)) = f.split_first_chunk::<{ ethernet::HEADER_LEN }>() else {
        return Next::Drop(DropReason::Truncated);
    };
    let dst = u64::from_be_bytes([0, 0, eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]);
    if dst != cx.st.underlay_mac.to_u64() && dst != overlay::MacAddr::BROADCAST.to_u64() {
        return Next::Drop(DropReason::UnderlayNotForUs);
    }
    match EtherType(u16::from_be_bytes([eth[12], eth[13]])) {
        EtherType::ARP => Next::Done,
        EtherType::IPV4 => {
            let Some((ip, _)) = rest.split_first_chunk::<{ ipv4::HEADER_LEN }>() else {
                return Next::Drop(DropReason::Truncated);
            };
            if ip[16..20] != cx.t.underlay_ip.octets() {
                return Next::Drop(DropReason::UnderlayNotForUs);
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            // Counted here: the host stack would drop it without a word.
            if ip[0] >> 4 != 4 || ihl < ipv4::HEADER_LEN {
                return Next::Drop(DropReason::BadIpHeader);
            }
            let dst_port = rest
                .get(ihl + 2..ihl + 4)
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
            if IpProtocol(ip[9]) == IpProtocol::UDP && dst_port == Some(cx.t.udp_port) {
                Next::Decap
            } else {
                Next::Done
            }
        }
        _ => Next::Drop(DropReason::UnderlayNotIpv4),
    }
}
