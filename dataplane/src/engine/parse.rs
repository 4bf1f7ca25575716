//! The one parse of an inner frame: MACs, up to two VLAN tags, ARP or
//! IPv4/IPv6 (extension headers walked), the flow key with its class, TCP
//! flags and sequence number, and for an ICMP error the key of the flow it
//! quotes. Every refusal names its drop reason; classify decides whether a
//! refusal drops the frame (identity on: fail closed) or lets it pass as a
//! frame without a flow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use overlay::{arp, ipv6, IpProtocol, MacAddr};

use super::meta::{Kind, Pkt};
use crate::counters::DropReason;
use crate::flows::{icmp_class, FlowClass, Key};

const VLAN_TAGS_MAX: usize = 2;

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parse the inner frame `f` that entered VNI index `vni` (tests, trace:
/// kept out of line so that the packet path's inlining is its own).
#[inline(never)]
pub(super) fn parse(f: &[u8], vni: u16) -> Result<Pkt, DropReason> {
    let mut pkt = Pkt::EMPTY;
    parse_into(f, vni, &mut pkt).map(|()| pkt)
}

/// Parse the inner frame `f` that entered VNI index `vni` into `pkt`, in
/// place (the packet's metadata: no large value is built and moved).
/// Inlined into classify and the express lane, the two packet paths.
#[inline(always)]
pub(super) fn parse_into(f: &[u8], vni: u16, pkt: &mut Pkt) -> Result<(), DropReason> {
    let Some((eth, _)) = f.split_first_chunk::<14>() else {
        return Err(DropReason::Truncated);
    };
    pkt.key.class = FlowClass::Ports;
    pkt.tcp = None;
    pkt.dst_mac = MacAddr([eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]);
    pkt.src_mac = MacAddr([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]]);
    let mut ethertype = be16(eth, 12);
    let mut off = 14usize;
    let mut tags = 0;
    // 802.1Q and 802.1ad, exactly the tags overlay's `vlan::locate_l3`
    // walks (the identity header code uses it): two parsers that disagree
    // on where L3 starts are a way around one of them. Other tag types
    // (0x9100) are unknown EtherTypes.
    while matches!(ethertype, 0x8100 | 0x88a8) {
        if tags == VLAN_TAGS_MAX {
            return Err(DropReason::TooManyVlanTags);
        }
        if f.len() < off + 4 {
            return Err(DropReason::Truncated);
        }
        ethertype = be16(f, off + 2);
        off += 4;
        tags += 1;
    }
    pkt.l3 = off as u16;
    let l3 = &f[off..];
    pkt.key.vni = vni;
    match ethertype {
        0x0806 => {
            let a = arp::Packet::new_checked(l3).map_err(|_| DropReason::Truncated)?;
            let r = arp::Repr::parse(&a).map_err(|_| DropReason::Truncated)?;
            if r.operation != arp::Operation::REQUEST && r.operation != arp::Operation::REPLY {
                return Err(DropReason::BadArp);
            }
            pkt.kind = Kind::Arp;
            pkt.arp_sender = (r.source_hardware_addr, r.source_protocol_addr);
            Ok(())
        }
        0x0800 => parse_ipv4(l3, pkt),
        0x86dd => parse_ipv6(l3, pkt),
        _ => Err(DropReason::UnknownEthertype),
    }
}

/// The inner frames most traffic is, parsed from fixed offsets into `pkt`
/// for the express lane: untagged IPv4 without options, not a non-first
/// fragment, TCP or UDP with its ports (and for TCP its sequence number)
/// within the packet. False (`pkt` untouched) for any other frame:
/// [`parse_into`] decides it. For a frame it takes, it writes what
/// [`parse_into`] writes (a property test holds it to that).
#[inline(always)]
pub(super) fn parse_common_into(f: &[u8], vni: u16, pkt: &mut Pkt) -> bool {
    const L3: usize = 14;
    const L4: usize = L3 + 20;
    let Some(h) = f.first_chunk::<{ L4 + 8 }>() else {
        return false;
    };
    if h[12] != 0x08 || h[13] != 0x00 || h[L3] != 0x45 {
        return false;
    }
    let total = usize::from(be16(h, L3 + 2));
    let protocol = IpProtocol(h[L3 + 9]);
    // What parse_into needs of the L4 header: TCP's first 8 bytes, UDP's 4.
    let l4_min = match protocol {
        IpProtocol::TCP => 8,
        IpProtocol::UDP => 4,
        _ => return false,
    };
    if be16(h, L3 + 6) & 0x1fff != 0 || total < 20 + l4_min || total > f.len() - L3 {
        return false;
    }
    pkt.tcp = (protocol == IpProtocol::TCP).then(|| {
        // The flags when the segment has them (byte 13 of its header).
        let flags = if total > 20 + 13 {
            f.get(L4 + 13).copied().unwrap_or(0)
        } else {
            0
        };
        (
            flags,
            u32::from_be_bytes([h[L4 + 4], h[L4 + 5], h[L4 + 6], h[L4 + 7]]),
        )
    });
    let a = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
    pkt.kind = Kind::Ip;
    pkt.dst_mac = MacAddr([h[0], h[1], h[2], h[3], h[4], h[5]]);
    pkt.src_mac = MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]]);
    pkt.l3 = L3 as u16;
    pkt.key.vni = vni;
    pkt.key.class = FlowClass::Ports;
    let k = &mut pkt.key.flow;
    k.src = IpAddr::V4(a(L3 + 12));
    k.dst = IpAddr::V4(a(L3 + 16));
    k.protocol = protocol;
    k.src_port = be16(h, L4);
    k.dst_port = be16(h, L4 + 2);
    true
}

#[inline(always)]
fn parse_ipv4(p: &[u8], pkt: &mut Pkt) -> Result<(), DropReason> {
    let Some((h, _)) = p.split_first_chunk::<20>() else {
        return Err(DropReason::Truncated);
    };
    if h[0] >> 4 != 4 {
        return Err(DropReason::BadInnerIpHeader);
    }
    let hl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(be16(h, 2));
    if hl < 20 || total < hl {
        return Err(DropReason::BadInnerIpHeader);
    }
    let l4 = p.get(hl..total).ok_or(DropReason::Truncated)?;
    let frag = be16(h, 6);
    if frag & 0x1fff != 0 {
        return Err(DropReason::InnerFragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    l4_into(IpProtocol(h[9]), src, dst, l4, pkt)
}

fn parse_ipv6(p: &[u8], pkt: &mut Pkt) -> Result<(), DropReason> {
    let ip = ipv6::Packet::new_checked(p).map_err(|e| match e {
        overlay::Error::Truncated => DropReason::Truncated,
        _ => DropReason::BadInnerIpHeader,
    })?;
    if ip.version() != 6 {
        return Err(DropReason::BadInnerIpHeader);
    }
    // A chain the walk gives up on (too long, malformed, cut short) is
    // refused: what follows it cannot be classified.
    let u = ipv6::find_upper_layer(ip.next_header(), ip.payload())
        .map_err(|_| DropReason::Ipv6ExtChain)?;
    if u.fragment.is_some_and(|f| !f.is_first()) {
        return Err(DropReason::InnerFragment);
    }
    let l4 = ip.payload().get(u.offset..).ok_or(DropReason::Truncated)?;
    let src = IpAddr::V6(ip.src_addr());
    let dst = IpAddr::V6(ip.dst_addr());
    l4_into(u.protocol, src, dst, l4, pkt)
}

/// Fill the flow key (or, for an ICMP error, the quoted flow's key).
#[inline(always)]
fn l4_into(
    protocol: IpProtocol,
    src: IpAddr,
    dst: IpAddr,
    l4: &[u8],
    pkt: &mut Pkt,
) -> Result<(), DropReason> {
    let k = &mut pkt.key.flow;
    k.src = src;
    k.dst = dst;
    k.protocol = protocol;
    pkt.kind = Kind::Ip;
    match protocol {
        IpProtocol::TCP => {
            // Ports and sequence number; the flags when present (an
            // announce-only packet carries only the first 8 bytes).
            let h = l4.get(..8).ok_or(DropReason::Truncated)?;
            k.src_port = be16(h, 0);
            k.dst_port = be16(h, 2);
            let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            pkt.tcp = Some((l4.get(13).copied().unwrap_or(0), seq));
        }
        // UDP, SCTP (132) and UDP-Lite (136) put ports where TCP does.
        IpProtocol::UDP | IpProtocol(132) | IpProtocol(136) => {
            let h = l4.get(..4).ok_or(DropReason::Truncated)?;
            k.src_port = be16(h, 0);
            k.dst_port = be16(h, 2);
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            let t = *l4.first().ok_or(DropReason::Truncated)?;
            match icmp_class(protocol, t) {
                Some(FlowClass::IcmpEcho) => {
                    let h = l4.get(..8).ok_or(DropReason::Truncated)?;
                    pkt.key.class = FlowClass::IcmpEcho;
                    k.src_port = be16(h, 4);
                    k.dst_port = 0;
                }
                Some(class) => {
                    // The class keeps it apart from echo state; the 5-tuple
                    // stays what overlay's FlowKey (and the identity tag) use.
                    pkt.key.class = class;
                    k.src_port = 0;
                    k.dst_port = 0;
                }
                None => {
                    let quote = l4.get(8..).ok_or(DropReason::Truncated)?;
                    pkt.key = quoted_key(quote, pkt.key.vni).ok_or(DropReason::IcmpUnrelated)?;
                    pkt.kind = Kind::IcmpError;
                }
            }
        }
        _ => {
            k.src_port = 0;
            k.dst_port = 0;
        }
    }
    Ok(())
}

/// The key of the flow an ICMP error quotes: the quoted IP header and the
/// first bytes of its payload (lengths in the quote are not trusted: it
/// is cut short by design).
fn quoted_key(q: &[u8], vni: u16) -> Option<Key> {
    let mut pkt = Pkt::EMPTY;
    pkt.key.vni = vni;
    let version = q.first()? >> 4;
    let (protocol, src, dst, l4) = match version {
        4 => {
            let h = q.get(..20)?;
            let hl = usize::from(h[0] & 0x0f) * 4;
            if hl < 20 || be16(h, 6) & 0x1fff != 0 {
                return None;
            }
            (
                IpProtocol(h[9]),
                IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
                q.get(hl..)?,
            )
        }
        6 => {
            let h = q.get(..40)?;
            let s: [u8; 16] = h[8..24].try_into().ok()?;
            let d: [u8; 16] = h[24..40].try_into().ok()?;
            let u = ipv6::find_upper_layer(IpProtocol(h[6]), &q[40..]).ok()?;
            if u.fragment.is_some_and(|f| !f.is_first()) {
                return None;
            }
            (
                u.protocol,
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                q.get(40 + u.offset..)?,
            )
        }
        _ => return None,
    };
    // An error about an error is never related to anything.
    if matches!(protocol, IpProtocol::ICMP | IpProtocol::ICMPV6)
        && icmp_class(protocol, *l4.first()?).is_none()
    {
        return None;
    }
    // Only the first 8 bytes of the quoted L4 header are guaranteed.
    let l4 = l4.get(..8)?;
    l4_into(protocol, src, dst, l4, &mut pkt).ok()?;
    Some(pkt.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, tags: usize, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for _ in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x00]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn ipv4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 1, 0, 11, 10, 2, 0, 12,
        ];
        let total = (20 + l4.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn tcp(sport: u16, dport: u16, seq: u32, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t
    }

    #[test]
    fn tcp_syn_with_two_tags_parses_three_are_refused() {
        let l3 = ipv4(6, 0, &tcp(1000, 80, 77, 0x02));
        let p = parse(&eth(0x0800, 2, &l3), 3).unwrap();
        assert_eq!(p.kind, Kind::Ip);
        assert_eq!(p.key.vni, 3);
        assert_eq!(p.key.flow.src_port, 1000);
        assert_eq!(p.key.flow.dst_port, 80);
        assert_eq!(p.tcp, Some((0x02, 77)));
        assert!(p.is_syn());
        assert_eq!(p.l3, 22);
        assert_eq!(
            parse(&eth(0x0800, 3, &l3), 0).unwrap_err(),
            DropReason::TooManyVlanTags
        );
    }

    #[test]
    fn fragments_unknown_ethertypes_and_bad_headers_are_named() {
        let udp = [0x10, 0x00, 0x00, 0x35, 0, 8, 0, 0];
        assert!(parse(&eth(0x0800, 0, &ipv4(17, 0x2000, &udp)), 0).is_ok());
        assert_eq!(
            parse(&eth(0x0800, 0, &ipv4(17, 0x0001, &udp)), 0).unwrap_err(),
            DropReason::InnerFragment
        );
        assert_eq!(
            parse(&eth(0x88cc, 0, &[0; 30]), 0).unwrap_err(),
            DropReason::UnknownEthertype
        );
        let mut bad = ipv4(17, 0, &udp);
        bad[0] = 0x44;
        assert_eq!(
            parse(&eth(0x0800, 0, &bad), 0).unwrap_err(),
            DropReason::BadInnerIpHeader
        );
        assert_eq!(parse(&[0u8; 13], 0).unwrap_err(), DropReason::Truncated);
    }

    #[test]
    fn arp_is_a_request_or_a_reply() {
        let arp = |op: u8| {
            let mut a = vec![0, 1, 8, 0, 6, 4, 0, op];
            a.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 1, 0, 11]);
            a.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 1, 0, 12]);
            a
        };
        let p = parse(&eth(0x0806, 0, &arp(1)), 0).unwrap();
        assert_eq!(p.kind, Kind::Arp);
        assert_eq!(p.arp_sender.1, Ipv4Addr::new(10, 1, 0, 11));
        assert!(parse(&eth(0x0806, 0, &arp(2)), 0).is_ok());
        for op in [0, 3, 9] {
            assert_eq!(
                parse(&eth(0x0806, 0, &arp(op)), 0).unwrap_err(),
                DropReason::BadArp
            );
        }
    }

    #[test]
    fn icmp_echo_and_other_types_are_different_classes() {
        let echo = [8, 0, 0, 0, 0, 0, 0, 1];
        let p = parse(&eth(0x0800, 0, &ipv4(1, 0, &echo)), 0).unwrap();
        assert_eq!(p.key.class, FlowClass::IcmpEcho);
        assert_eq!(p.key.flow.src_port, 0);
        let ts = [13, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let q = parse(&eth(0x0800, 0, &ipv4(1, 0, &ts)), 0).unwrap();
        assert_eq!(q.key.class, FlowClass::IcmpOther);
        assert_ne!(p.key, q.key, "echo id 0 never shares a key with other ICMP");
    }

    #[test]
    fn icmp_error_yields_the_quoted_flow() {
        // Port unreachable quoting UDP 10.2.0.12:53 <- 10.1.0.11:4096.
        let quoted = {
            let mut q = ipv4(17, 0, &[0x10, 0x00, 0x00, 0x35, 0, 8, 0, 0]);
            q[12..16].copy_from_slice(&[10, 2, 0, 12]);
            q[16..20].copy_from_slice(&[10, 1, 0, 11]);
            q
        };
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let p = parse(&eth(0x0800, 0, &ipv4(1, 0, &icmp)), 5).unwrap();
        assert_eq!(p.kind, Kind::IcmpError);
        assert_eq!(p.key.vni, 5);
        assert_eq!(p.key.flow.src, IpAddr::V4(Ipv4Addr::new(10, 2, 0, 12)));
        assert_eq!(p.key.flow.src_port, 4096);
        assert_eq!(p.key.flow.dst_port, 53);
        // An error quoting an error relates to nothing.
        let mut inner_err = vec![3, 3, 0, 0, 0, 0, 0, 0];
        inner_err.extend_from_slice(&ipv4(1, 0, &[3, 1, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            parse(&eth(0x0800, 0, &ipv4(1, 0, &inner_err)), 0).unwrap_err(),
            DropReason::IcmpUnrelated
        );
    }

    #[test]
    fn long_ipv6_extension_chains_are_refused() {
        let mut ext = Vec::new();
        let n = 9;
        for i in 0..n {
            let next = if i + 1 == n { 17 } else { 60 };
            ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        ext.extend_from_slice(&[0x10, 0x00, 0x00, 0x35, 0, 8, 0, 0]);
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 60, 64];
        ip[4..6].copy_from_slice(&(ext.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(&ext);
        assert_eq!(
            parse(&eth(0x86dd, 0, &ip), 0).unwrap_err(),
            DropReason::Ipv6ExtChain
        );
    }

    /// A frame near the common shape: TCP or UDP (or another protocol) over
    /// IPv4 with a payload, then edits: random bytes in the first 50, a
    /// total length moved, the frame cut short or padded.
    fn near_common() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (
            prop_oneof![Just(6u8), Just(17u8), Just(1u8), any::<u8>()],
            0usize..40,
            prop_oneof![3 => Just(0u16), 1 => Just(0x2000u16), 1 => Just(0x4000u16), 1 => any::<u16>()],
            any::<u8>(),
            proptest::collection::vec((0usize..50, any::<u8>()), 0..3),
            -30i32..30,
            prop_oneof![4 => Just(0i32), 1 => -40i32..20],
        )
            .prop_map(|(proto, l4_len, frag, flags, edits, total_shift, cut)| {
                let mut l4 = tcp(40000, 80, 0x0102_0304, flags);
                l4.resize(l4_len, 0x5a);
                let mut f = eth(0x0800, 0, &ipv4(proto, frag, &l4));
                let total = u16::from_be_bytes([f[16], f[17]]) as i32 + total_shift;
                f[16..18].copy_from_slice(&(total.clamp(0, 0xffff) as u16).to_be_bytes());
                for (at, b) in edits {
                    if at < f.len() {
                        f[at] = b;
                    }
                }
                let len = (f.len() as i32 + cut).max(0) as usize;
                f.resize(len, 0);
                f
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(20_000))]
        /// What the express lane's parse accepts, parse_into accepts with
        /// the same answer.
        #[test]
        fn parse_common_is_parse_into_where_it_answers(f in near_common(), vni in 0u16..4) {
            let mut p = Pkt::EMPTY;
            if parse_common_into(&f, vni, &mut p) {
                proptest::prop_assert_eq!(parse(&f, vni), Ok(p));
            } else {
                proptest::prop_assert_eq!(p, Pkt::EMPTY);
            }
        }
    }

    fn parse_common(f: &[u8], vni: u16) -> Option<Pkt> {
        let mut p = Pkt::EMPTY;
        parse_common_into(f, vni, &mut p).then_some(p)
    }

    #[test]
    fn parse_common_takes_the_common_shape_and_leaves_the_rest() {
        let tcp_frame = eth(0x0800, 0, &ipv4(6, 0x4000, &tcp(1000, 80, 77, 0x18)));
        assert_eq!(
            parse_common(&tcp_frame, 2),
            Some(parse(&tcp_frame, 2).unwrap())
        );
        let udp_frame = eth(0x0800, 0, &ipv4(17, 0, &[0, 53, 0, 99, 0, 8, 0, 0]));
        assert_eq!(
            parse_common(&udp_frame, 0),
            Some(parse(&udp_frame, 0).unwrap())
        );
        // Padded beyond the IP packet: still the same answer.
        let mut padded = udp_frame.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse_common(&padded, 0), Some(parse(&padded, 0).unwrap()));
        // A segment too short to carry its flags: flags 0, as parse_into says.
        let short = eth(0x0800, 0, &ipv4(6, 0, &tcp(1, 2, 3, 0x10)[..10]));
        assert_eq!(parse_common(&short, 0).unwrap().tcp, Some((0, 3)));
        assert_eq!(parse_common(&short, 0), Some(parse(&short, 0).unwrap()));
        for other in [
            eth(0x0800, 1, &ipv4(6, 0, &tcp(1, 2, 3, 0))),
            eth(0x0800, 0, &ipv4(1, 0, &[8, 0, 0, 0, 0, 1, 0, 1])),
            eth(0x0800, 0, &ipv4(6, 0x0001, &tcp(1, 2, 3, 0))),
            eth(0x86dd, 0, &[0; 60]),
            eth(0x0800, 0, &ipv4(17, 0, &[0, 53])),
        ] {
            assert_eq!(parse_common(&other, 0), None, "{other:?}");
        }
    }
}
