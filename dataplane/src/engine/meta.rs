//! The packet vector a burst travels in: one buffer and one [`Meta`] per
//! packet. Each stage reads the metadata earlier stages wrote (the frame
//! is parsed once, by classify) and writes the packet's next stage or its
//! drop reason. Copies (flooding) and packets warden makes (ARP, ICMP) are
//! appended, up to a fixed capacity allocated at start.

use overlay::MacAddr;

use crate::buffer::{Buf, Burst, Pool};
use crate::counters::DropReason;
use crate::flows::{FlowClass, FlowRef, Key, Verdict};
use identity::IdentityId;

/// Packets one vector holds: a received burst plus copies and replies.
pub const VECTOR_CAP: usize = 512;

/// Where a frame entered the VNI it is being switched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Port(u16),
    Peer(u16),
    /// Produced by warden's L3 gateway (ARP, echo replies, ICMP errors).
    Router,
}

/// What happens to a packet next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Received on the underlay port: VXLAN, host stack, or drop.
    Underlay,
    /// VXLAN for us: strip the outer headers.
    Decap,
    /// Received on an access port.
    Access,
    /// Parse once, check origin and identity, find or make the flow.
    Classify,
    /// A client segment of an inspected flow (`meta.l7`): L7 decides.
    Inspect,
    /// A TCP segment of a flow a reloaded policy revoked: both ends reset.
    Revoke,
    /// L2 forwarding in `meta.vni`.
    Switch,
    /// To the L3 gateway of `meta.vni`.
    Route,
    /// Encapsulate toward this peer (stamped first when due).
    Encap(u16),
    /// Deliver on this local access port.
    Deliver(u16),
    /// Ready: stage on this port's transmit burst.
    Tx(u16),
    /// Consumed (the host stack took it, an announce was recorded).
    Done,
    Drop(DropReason),
}

/// What classify found in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not parsed (yet, or identity off and unparseable).
    Unknown,
    Arp,
    /// IPv4/IPv6 with a flow key in `Pkt::key`.
    Ip,
    /// An ICMP error: `Pkt::key` is the flow it quotes.
    IcmpError,
}

/// The parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pkt {
    pub kind: Kind,
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    /// Offset of the L3 header.
    pub l3: u16,
    /// Flow key (for an ICMP error: the quoted flow's key; its own
    /// addresses are in its header, see [`Pkt::addrs`]).
    pub key: Key,
    /// TCP flags and sequence number, for TCP.
    pub tcp: Option<(u8, u32)>,
    /// ARP sender (hardware, protocol) for ARP.
    pub arp_sender: (MacAddr, std::net::Ipv4Addr),
}

pub const TCP_SYN: u8 = 0x02;

impl Pkt {
    pub const EMPTY: Pkt = Pkt {
        kind: Kind::Unknown,
        dst_mac: MacAddr::ZERO,
        src_mac: MacAddr::ZERO,
        l3: 0,
        key: Key {
            vni: 0,
            class: FlowClass::Ports,
            flow: overlay::FlowKey {
                src: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                dst: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                protocol: overlay::IpProtocol(0),
                src_port: 0,
                dst_port: 0,
            },
        },
        tcp: None,
        arp_sender: (MacAddr::ZERO, std::net::Ipv4Addr::UNSPECIFIED),
    };

    /// A TCP SYN (with or without ACK).
    #[inline]
    pub fn is_syn(&self) -> bool {
        self.tcp.is_some_and(|(f, _)| f & TCP_SYN != 0)
    }

    /// Whether the frame has a flow key (IP, not an ICMP error).
    #[inline]
    pub fn has_flow(&self) -> bool {
        self.kind == Kind::Ip
    }

    /// The packet's own source and destination addresses, of its frame
    /// `f`: the flow key's for an IP flow; for an ICMP error (whose key is
    /// the quoted flow's) read from its IP header; unspecified otherwise.
    pub fn addrs(&self, f: &[u8]) -> (std::net::IpAddr, std::net::IpAddr) {
        use overlay::{ipv4, ipv6};
        use std::net::{IpAddr, Ipv4Addr};
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        if self.kind == Kind::Ip {
            return (self.key.flow.src, self.key.flow.dst);
        }
        let l3 = f.get(usize::from(self.l3)..).unwrap_or(&[]);
        if self.kind != Kind::IcmpError {
            (none, none)
        } else if let Ok(h) = ipv4::Packet::new_checked(l3) {
            (h.src_addr().into(), h.dst_addr().into())
        } else if let Ok(h) = ipv6::Packet::new_checked(l3) {
            (h.src_addr().into(), h.dst_addr().into())
        } else {
            (none, none)
        }
    }
}

/// Routed by the gateway: neither learned nor routed again.
pub const ROUTED: u8 = 1;
/// A copy made by flooding.
pub const FLOOD_COPY: u8 = 2;
/// An announce-only identity packet made by the stamp stage.
pub const ANNOUNCE: u8 = 4;
/// Its flow was allowed before the destination's identity was known
/// (delivery to a local port decides again for that port's workload).
pub const RECHECK: u8 = 8;
/// A `reject` answer (TCP RST, ICMP unreachable) made from the refused
/// packet: `pkt.key` and `src_identity` are those of the answer.
pub const ANSWER: u8 = 16;
/// Received on the underlay with the fixed bytes of VXLAN to this VTEP in
/// its common shape (`overlay::DecapShape::matches`): decap checks only
/// the checksum and the lengths.
pub const OUTER_SHAPE: u8 = 32;
/// Classify found a known flow with nothing to do but forward (identity
/// off, no header, no L7, no recheck, no DNS answer to learn from): the
/// forwarding cache may let its next frames take the express lane.
pub const PLAIN: u8 = 64;

/// Per-packet metadata.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub next: Next,
    pub from: From,
    /// VNI index: where the frame is being switched (after routing: the
    /// egress VNI; the flow key keeps the ingress VNI).
    pub vni: u16,
    /// VXLAN-GBP group of a decapsulated frame.
    pub gbp: Option<u16>,
    pub flags: u8,
    /// Index of an announce-only packet to send right before this one.
    pub announce: u16,
    pub pkt: Pkt,
    /// `overlay::flow_hash` of the flow key (set by classify for IP flows).
    pub hash: u32,
    pub flow: FlowRef,
    /// For an ICMP error: the origin of the flow it quotes, the only place
    /// it may go.
    pub reply_to: Option<crate::flows::Origin>,
    /// The flow's verdict and source identity as classify found them.
    pub verdict: Verdict,
    pub src_identity: IdentityId,
    /// The flow's egress as classify saw it (switch writes only a change).
    pub egress: crate::flows::Egress,
    /// The flow's inspection slot (`l7flows`), for `Next::Inspect`.
    pub l7: u32,
}

pub const NO_ANNOUNCE: u16 = u16::MAX;

impl Meta {
    pub const fn new(next: Next, from: From, vni: u16) -> Meta {
        Meta {
            next,
            from,
            vni,
            gbp: None,
            flags: 0,
            announce: NO_ANNOUNCE,
            pkt: Pkt::EMPTY,
            hash: 0,
            flow: FlowRef::NONE,
            reply_to: None,
            verdict: Verdict::NoPolicy,
            src_identity: IdentityId::UNAUTHENTICATED,
            egress: crate::flows::Egress::Unknown,
            l7: crate::l7flows::NO_L7,
        }
    }
}

/// The packets of one burst and what they have appended.
#[derive(Debug)]
pub struct Vector {
    pub bufs: Vec<Option<Buf>>,
    pub meta: Vec<Meta>,
}

impl Default for Vector {
    fn default() -> Self {
        Vector::new()
    }
}

impl Vector {
    pub fn new() -> Vector {
        Vector {
            bufs: Vec::with_capacity(VECTOR_CAP),
            meta: Vec::with_capacity(VECTOR_CAP),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Append a packet; hands it back when the vector is full (never grows).
    #[inline]
    pub fn push(&mut self, buf: Buf, meta: Meta) -> Result<usize, Buf> {
        if self.meta.len() >= VECTOR_CAP {
            return Err(buf);
        }
        self.bufs.push(Some(buf));
        self.meta.push(meta);
        Ok(self.meta.len() - 1)
    }

    /// Appends every buffer of a received burst, each with `meta`, and
    /// returns their bytes; what does not fit goes back to `pool` (a
    /// received burst never exceeds the vector).
    #[inline]
    pub fn push_burst(&mut self, rx: &mut Burst, meta: Meta, pool: &mut Pool) -> u64 {
        let n = rx.len().min(VECTOR_CAP.saturating_sub(self.meta.len()));
        self.meta.resize(self.meta.len() + n, meta);
        let mut bytes = 0u64;
        let mut drained = rx.drain();
        self.bufs.extend(drained.by_ref().take(n).map(|b| {
            bytes += b.len() as u64;
            Some(b)
        }));
        for b in drained {
            pool.put(b);
        }
        bytes
    }

    /// The frame of packet `i` (empty once consumed).
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        match &self.bufs[i] {
            Some(b) => b.frame(),
            None => &[],
        }
    }

    pub fn clear(&mut self) {
        self.bufs.clear();
        self.meta.clear();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn meta_stays_small() {
        // Written for every packet of every burst: keep it within a few lines.
        let n = std::mem::size_of::<super::Meta>();
        eprintln!(
            "Meta is {n} bytes, Pkt {}",
            std::mem::size_of::<super::Pkt>()
        );
        assert!(n <= 192, "Meta grew to {n} bytes");
    }
}
