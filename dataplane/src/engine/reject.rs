//! The answer a `reject` verdict sends the opener of a refused flow, as a
//! host would: a TCP RST for TCP (RFC 9293 3.10.7.1: the reset takes its
//! sequence number from the segment's ACK field, or acknowledges the
//! segment when it carried none), an ICMP port unreachable for UDP. Other
//! protocols, RSTs and IPv6 get nothing: the flow is dropped silently.
//!
//! The answer is built in a fresh buffer from the refused frame: MACs,
//! addresses and ports swapped, VLAN tags kept, checksums complete. It
//! claims to come from the destination, which is what the client's stack
//! needs to fail the connect at once ("connection refused").

use overlay::checksum::PseudoHeader;
use overlay::{checksum, ethernet, icmpv4, ipv4, tcp, IpProtocol};

/// What [`answer`] built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A TCP RST with this sequence number (the identity header's nonce).
    TcpReset { seq: u32 },
    /// An ICMP destination unreachable (port unreachable).
    PortUnreachable,
}

/// Build into `out` the answer to the IPv4 frame `frame` (its L3 header at
/// `l3`): returns its length and kind, or `None` when the frame gets none.
pub fn answer(frame: &[u8], l3: usize, out: &mut [u8]) -> Option<(usize, Answer)> {
    let l2 = frame.get(..l3)?;
    if l2.len() < ethernet::HEADER_LEN {
        return None;
    }
    let ip = ipv4::Packet::new_checked(frame.get(l3..)?).ok()?;
    if ip.frag_offset() != 0 || !ip.verify_checksum() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if !src.is_unicast_like() {
        return None;
    }
    let (payload, kind) = match ip.protocol() {
        IpProtocol::TCP => {
            let seg = tcp::Packet::new_checked(ip.payload()).ok()?;
            let flags = seg.flags();
            if flags.contains(tcp::Flags::RST) {
                return None;
            }
            let (seq, ack, rflags) = if flags.contains(tcp::Flags::ACK) {
                (seg.ack_number(), 0, tcp::Flags::RST)
            } else {
                let mut len = seg.payload().len() as u32;
                len += u32::from(flags.contains(tcp::Flags::SYN));
                len += u32::from(flags.contains(tcp::Flags::FIN));
                (
                    0,
                    seg.seq_number().wrapping_add(len),
                    tcp::Flags(tcp::Flags::RST.0 | tcp::Flags::ACK.0),
                )
            };
            let mut h = [0u8; tcp::HEADER_LEN];
            {
                let mut r = tcp::Packet::new_unchecked(&mut h[..]);
                r.set_src_port(seg.dst_port());
                r.set_dst_port(seg.src_port());
                r.set_seq_number(seq);
                r.set_ack_number(ack);
                r.set_header_len_and_flags(tcp::HEADER_LEN as u8, rflags);
                r.set_window_len(0);
                r.set_urgent_at(0);
                r.set_checksum(0);
            }
            (Payload::Tcp(h), Answer::TcpReset { seq })
        }
        IpProtocol::UDP => (
            Payload::Icmp(icmpv4::error_quote(frame.get(l3..)?)),
            Answer::PortUnreachable,
        ),
        _ => return None,
    };
    let body_len = match &payload {
        Payload::Tcp(h) => h.len(),
        Payload::Icmp(q) => 8 + q.len(),
    };
    let total = l3 + ipv4::HEADER_LEN + body_len;
    let out = out.get_mut(..total)?;
    // L2: the frame's own header with the MACs swapped (tags kept).
    out[..l3].copy_from_slice(l2);
    out[..6].copy_from_slice(&l2[6..12]);
    out[6..12].copy_from_slice(&l2[..6]);
    let (_, l3_out) = out.split_at_mut(l3);
    let protocol = match kind {
        Answer::TcpReset { .. } => IpProtocol::TCP,
        Answer::PortUnreachable => IpProtocol::ICMP,
    };
    let from = dst;
    let repr = ipv4::Repr {
        src_addr: from,
        dst_addr: src,
        protocol,
        payload_len: body_len,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let mut out_ip = ipv4::Packet::new_unchecked(&mut *l3_out);
    repr.emit(&mut out_ip).ok()?;
    let body = out_ip.payload_mut().get_mut(..body_len)?;
    match payload {
        Payload::Tcp(h) => {
            body.copy_from_slice(&h);
            tcp::Packet::new_unchecked(&mut *body).fill_checksum(&PseudoHeader::V4 {
                src: from,
                dst: src,
            });
        }
        Payload::Icmp(quoted) => {
            body[..8].copy_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
            body[8..].copy_from_slice(quoted);
            let c = checksum::checksum(body);
            body[2..4].copy_from_slice(&c.to_be_bytes());
        }
    }
    Some((total, kind))
}

/// Which end of a TCP connection a reset built from one of its client's
/// segments goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// The server, as if from the client, at sequence number `seq` (the
    /// first byte the server has not received: in its window).
    Server { seq: u32 },
    /// The client, as if from the server, at `seq` (the server's next
    /// sequence number as its segments showed it), else at the segment's
    /// ACK number (the oldest the client may still accept).
    Client { seq: Option<u32> },
}

/// Build into `out` a bare RST for the connection of the IPv4/TCP frame
/// `frame` (L3 at `l3`, a client's segment carrying ACK) toward `to`;
/// returns its length. Used when an inspected connection is cut: both ends
/// are reset so that neither waits on it.
pub fn reset(frame: &[u8], l3: usize, to: Toward, out: &mut [u8]) -> Option<usize> {
    let l2 = frame.get(..l3)?;
    if l2.len() < ethernet::HEADER_LEN {
        return None;
    }
    let ip = ipv4::Packet::new_checked(frame.get(l3..)?).ok()?;
    if ip.protocol() != IpProtocol::TCP {
        return None;
    }
    let seg = tcp::Packet::new_checked(ip.payload()).ok()?;
    let total = l3 + ipv4::HEADER_LEN + tcp::HEADER_LEN;
    let out = out.get_mut(..total)?;
    out[..l3].copy_from_slice(l2);
    let (src, dst, sport, dport, seq) = match to {
        Toward::Server { seq } => (
            ip.src_addr(),
            ip.dst_addr(),
            seg.src_port(),
            seg.dst_port(),
            seq,
        ),
        Toward::Client { seq } => {
            out[..6].copy_from_slice(&l2[6..12]);
            out[6..12].copy_from_slice(&l2[..6]);
            (
                ip.dst_addr(),
                ip.src_addr(),
                seg.dst_port(),
                seg.src_port(),
                seq.unwrap_or(seg.ack_number()),
            )
        }
    };
    let (_, l3_out) = out.split_at_mut(l3);
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::TCP,
        payload_len: tcp::HEADER_LEN,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let mut out_ip = ipv4::Packet::new_unchecked(&mut *l3_out);
    repr.emit(&mut out_ip).ok()?;
    let body = out_ip.payload_mut().get_mut(..tcp::HEADER_LEN)?;
    body.fill(0);
    let mut r = tcp::Packet::new_unchecked(&mut *body);
    r.set_src_port(sport);
    r.set_dst_port(dport);
    r.set_seq_number(seq);
    r.set_header_len_and_flags(tcp::HEADER_LEN as u8, tcp::Flags::RST);
    r.fill_checksum(&PseudoHeader::V4 { src, dst });
    Some(total)
}

/// Build into `out` the REFUSED answer (RCODE 5, the question echoed, no
/// records) to the DNS query over UDP in the IPv4 frame `frame` (L3 at
/// `l3`), from the server it was for; returns its length. None when the
/// datagram is not a well-formed query.
pub fn dns_refused(frame: &[u8], l3: usize, out: &mut [u8]) -> Option<usize> {
    let l2 = frame.get(..l3)?;
    if l2.len() < ethernet::HEADER_LEN {
        return None;
    }
    let ip = ipv4::Packet::new_checked(frame.get(l3..)?).ok()?;
    if ip.protocol() != IpProtocol::UDP || ip.frag_offset() != 0 {
        return None;
    }
    let udp = ip.payload();
    let (sport, dport) = (
        u16::from_be_bytes([*udp.first()?, *udp.get(1)?]),
        u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]),
    );
    let query = udp.get(8..)?;
    let at = l3 + ipv4::HEADER_LEN + 8;
    let room = out.len().checked_sub(at)?;
    let msg = out.get_mut(at..at + query.len().min(room))?;
    if msg.len() < query.len() {
        return None;
    }
    msg.copy_from_slice(query);
    let msg_len = l7::dns::refuse_in_place(msg).ok()?;
    let udp_len = 8 + msg_len;
    let total = at + msg_len;
    out[..l3].copy_from_slice(l2);
    out[..6].copy_from_slice(&l2[6..12]);
    out[6..12].copy_from_slice(&l2[..6]);
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::UDP,
        payload_len: udp_len,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let (_, l3_out) = out.split_at_mut(l3);
    let mut out_ip = ipv4::Packet::new_unchecked(&mut *l3_out);
    repr.emit(&mut out_ip).ok()?;
    let u = out_ip.payload_mut().get_mut(..udp_len)?;
    u[0..2].copy_from_slice(&dport.to_be_bytes());
    u[2..4].copy_from_slice(&sport.to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[6..8].copy_from_slice(&[0, 0]);
    let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::UDP, udp_len as u32);
    let c = !checksum::add(ph, checksum::sum(u));
    u[6..8].copy_from_slice(&if c == 0 { 0xffff } else { c }.to_be_bytes());
    Some(total)
}

enum Payload<'a> {
    Tcp([u8; tcp::HEADER_LEN]),
    Icmp(&'a [u8]),
}

/// Unicast-looking source: never answer a broadcast, multicast or
/// unspecified source (a reflector for spoofed floods).
trait UnicastLike {
    fn is_unicast_like(&self) -> bool;
}

impl UnicastLike for std::net::Ipv4Addr {
    fn is_unicast_like(&self) -> bool {
        !(self.is_broadcast() || self.is_multicast() || self.is_unspecified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frame(proto: IpProtocol, l4: &[u8], tags: &[[u8; 4]]) -> (Vec<u8>, usize) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for t in tags {
            f.extend_from_slice(t);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let l3 = f.len();
        let src = Ipv4Addr::new(10, 1, 0, 1);
        let dst = Ipv4Addr::new(10, 1, 0, 2);
        let repr = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: proto,
            payload_len: l4.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 7,
            dont_frag: true,
        };
        f.resize(l3 + 20 + l4.len(), 0);
        let mut p = ipv4::Packet::new_unchecked(&mut f[l3..]);
        repr.emit(&mut p).unwrap();
        p.payload_mut()[..l4.len()].copy_from_slice(l4);
        (f, l3)
    }

    fn tcp_seg(flags: tcp::Flags, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 20 + data.len()];
        let mut t = tcp::Packet::new_unchecked(&mut h[..]);
        t.set_src_port(40000);
        t.set_dst_port(80);
        t.set_seq_number(seq);
        t.set_ack_number(ack);
        t.set_header_len_and_flags(20, flags);
        h[20..].copy_from_slice(data);
        h
    }

    fn check_ip(out: &[u8], l3: usize, proto: IpProtocol) -> ipv4::Packet<&[u8]> {
        assert_eq!(&out[..6], &[2, 0, 0, 0, 0, 1], "to the sender's MAC");
        assert_eq!(
            &out[6..12],
            &[2, 0, 0, 0, 0, 2],
            "from the destination's MAC"
        );
        let ip = ipv4::Packet::new_checked(&out[l3..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), proto);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 0, 1));
        ip
    }

    #[test]
    fn syn_gets_rst_ack_acknowledging_it() {
        let (f, l3) = frame(
            IpProtocol::TCP,
            &tcp_seg(tcp::Flags::SYN, 1000, 0, &[]),
            &[],
        );
        let mut out = [0u8; 256];
        let (n, a) = answer(&f, l3, &mut out).unwrap();
        assert_eq!(a, Answer::TcpReset { seq: 0 });
        let ip = check_ip(&out[..n], l3, IpProtocol::TCP);
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
        assert_eq!(t.flags(), tcp::Flags(tcp::Flags::RST.0 | tcp::Flags::ACK.0));
        assert_eq!(t.ack_number(), 1001);
        assert!(t.verify_checksum(&PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr()
        }));
    }

    #[test]
    fn segment_with_ack_gets_rst_at_its_ack_behind_vlan_tags() {
        let seg = tcp_seg(
            tcp::Flags(tcp::Flags::ACK.0 | tcp::Flags::PSH.0),
            5,
            777,
            b"GET /",
        );
        let (f, l3) = frame(IpProtocol::TCP, &seg, &[[0x81, 0, 0, 10]]);
        let mut out = [0u8; 256];
        let (n, a) = answer(&f, l3, &mut out).unwrap();
        assert_eq!(a, Answer::TcpReset { seq: 777 });
        assert_eq!(&out[12..16], &[0x81, 0, 0, 10], "tag kept");
        let ip = check_ip(&out[..n], l3, IpProtocol::TCP);
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(t.flags(), tcp::Flags::RST);
        assert_eq!(t.seq_number(), 777);
    }

    #[test]
    fn udp_gets_port_unreachable_quoting_it() {
        let udp = [0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
        let (f, l3) = frame(IpProtocol::UDP, &udp, &[]);
        let mut out = [0u8; 256];
        let (n, a) = answer(&f, l3, &mut out).unwrap();
        assert_eq!(a, Answer::PortUnreachable);
        let ip = check_ip(&out[..n], l3, IpProtocol::ICMP);
        let icmp = ip.payload();
        assert_eq!(&icmp[..2], &[3, 3]);
        assert_eq!(
            overlay::checksum::checksum(icmp),
            0,
            "checksum covers the message"
        );
        assert_eq!(&icmp[8..], &f[l3..], "the whole short datagram quoted");
    }

    #[test]
    fn reset_goes_to_either_end_in_its_window() {
        let seg = tcp_seg(
            tcp::Flags(tcp::Flags::ACK.0 | tcp::Flags::PSH.0),
            5000,
            777,
            b"POST /admin",
        );
        let (f, l3) = frame(IpProtocol::TCP, &seg, &[]);
        let mut out = [0u8; 128];
        let n = reset(&f, l3, Toward::Server { seq: 4990 }, &mut out).unwrap();
        let ip = ipv4::Packet::new_checked(&out[l3..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 0, 2), "to the server");
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (t.flags(), t.seq_number(), t.dst_port()),
            (tcp::Flags::RST, 4990, 80)
        );
        assert!(t.payload().is_empty());
        assert!(t.verify_checksum(&PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr()
        }));
        let n = reset(&f, l3, Toward::Client { seq: None }, &mut out).unwrap();
        let ip = check_ip(&out[..n], l3, IpProtocol::TCP);
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (t.flags(), t.seq_number(), t.dst_port()),
            (tcp::Flags::RST, 777, 40000)
        );
    }

    #[test]
    fn dns_query_gets_refused_from_its_server() {
        // ID 0xbeef, RD, one question: admin.example A IN.
        let mut q = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["admin", "example"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut udp = vec![0x9c, 0x40, 0, 53];
        udp.extend_from_slice(&((8 + q.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&q);
        let (f, l3) = frame(IpProtocol::UDP, &udp, &[]);
        let mut out = [0u8; 256];
        let n = dns_refused(&f, l3, &mut out).unwrap();
        let ip = check_ip(&out[..n], l3, IpProtocol::UDP);
        let u = ip.payload();
        assert_eq!(
            (&u[0..2], &u[2..4]),
            (&[0, 53][..], &[0x9c, 0x40][..]),
            "ports swapped"
        );
        let ph = overlay::checksum::pseudo_header_v4(
            ip.src_addr(),
            ip.dst_addr(),
            IpProtocol::UDP,
            u.len() as u32,
        );
        assert_eq!(
            overlay::checksum::add(ph, overlay::checksum::sum(u)),
            0xffff
        );
        let msg = &u[8..];
        assert_eq!(&msg[..2], &[0xbe, 0xef], "same id");
        assert_eq!(msg[2] & 0x80, 0x80, "a response");
        assert_eq!(msg[3] & 0x0f, 5, "REFUSED");
        assert_eq!(&msg[12..], &q[12..], "the question echoed");
        let (f, l3) = frame(IpProtocol::UDP, &[0, 1, 0, 53, 0, 10, 0, 0, 1, 2], &[]);
        assert_eq!(dns_refused(&f, l3, &mut out), None, "not a query");
    }

    #[test]
    fn no_answer_to_rst_icmp_broadcast_or_garbage() {
        let mut out = [0u8; 256];
        let (f, l3) = frame(IpProtocol::TCP, &tcp_seg(tcp::Flags::RST, 1, 0, &[]), &[]);
        assert_eq!(answer(&f, l3, &mut out), None);
        let (f, l3) = frame(IpProtocol::ICMP, &[8, 0, 0, 0, 0, 1, 0, 1], &[]);
        assert_eq!(answer(&f, l3, &mut out), None);
        let (mut f, l3) = frame(IpProtocol::UDP, &[0, 1, 0, 2, 0, 8, 0, 0], &[]);
        f[l3 + 12..l3 + 16].copy_from_slice(&[255, 255, 255, 255]);
        assert_eq!(
            answer(&f, l3, &mut out),
            None,
            "bad checksum or broadcast source"
        );
        for cut in 0..f.len() {
            let _ = answer(&f[..cut], l3.min(cut), &mut out);
        }
        let (f, l3) = frame(IpProtocol::TCP, &tcp_seg(tcp::Flags::SYN, 1, 0, &[]), &[]);
        assert_eq!(answer(&f, l3, &mut [0u8; 20]), None, "output too small");
    }
}
