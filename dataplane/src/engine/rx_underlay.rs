//! Stage: frames received on the underlay port. VXLAN to warden's VTEP
//! address goes to decap; ARP and other traffic for the VTEP address go to
//! the underlay host stack (smoltcp); anything else is dropped, counted.

use overlay::{ethernet, ipv4, EtherType, IpProtocol};

use super::meta::{Next, Vector};
use super::Ctx;
use crate::counters::DropReason;
use crate::underlay::HostStack;

/// Returns true when the host stack got frames to process.
pub(super) fn run(cx: &mut Ctx, v: &mut Vector, host: &mut HostStack) -> bool {
    let mut punted = false;
    for i in 0..v.len() {
        if v.meta[i].next != Next::Underlay {
            continue;
        }
        let next = classify(cx, v.frame(i));
        if next == Next::Done {
            // The host stack takes a copy; the buffer is recycled by output.
            cx.c.host_stack_rx.inc();
            if !host.push_rx(v.frame(i)) {
                cx.c.count_drop(DropReason::HostStackBusy);
            }
            punted = true;
        }
        v.meta[i].next = next;
    }
    punted
}

/// Where an underlay frame goes: Decap, Done (to the host stack) or Drop.
#[inline]
fn classify(cx: &Ctx, f: &[u8]) -> Next {
    let Ok(eth) = ethernet::Frame::new_checked(f) else {
        return Next::Drop(DropReason::Truncated);
    };
    let dst = eth.dst_addr();
    if dst != cx.st.underlay_mac && !dst.is_broadcast() {
        return Next::Drop(DropReason::UnderlayNotForUs);
    }
    match eth.ethertype() {
        EtherType::ARP => Next::Done,
        EtherType::IPV4 => {
            let p = eth.payload();
            // Peek only what decides the path; decap checks everything.
            if p.len() < ipv4::HEADER_LEN {
                return Next::Drop(DropReason::Truncated);
            }
            let ip = ipv4::Packet::new_unchecked(p);
            if ip.dst_addr() != cx.t.underlay_ip {
                return Next::Drop(DropReason::UnderlayNotForUs);
            }
            let ihl = usize::from(ip.header_len());
            // Counted here: the host stack would drop it without a word.
            if ip.version() != 4 || ihl < ipv4::HEADER_LEN {
                return Next::Drop(DropReason::BadIpHeader);
            }
            let dst_port = p
                .get(ihl + 2..ihl + 4)
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
            if ip.protocol() == IpProtocol::UDP && dst_port == Some(cx.t.udp_port) {
                Next::Decap
            } else {
                Next::Done
            }
        }
        _ => Next::Drop(DropReason::UnderlayNotIpv4),
    }
}
