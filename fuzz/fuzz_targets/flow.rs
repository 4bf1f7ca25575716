//! Flow key: extract; on success build a minimal frame that carries the
//! same key (with the crate's own Reprs) and extract again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::{ethernet, icmpv4, icmpv6, ipv4, ipv6, tcp, udp};
use overlay::{flow_hash, vxlan_src_port, EtherType, FlowKey, IpProtocol, MacAddr};
use std::net::IpAddr;

/// The upper-layer bytes that give back `k`'s ports.
fn l4(k: &FlowKey) -> Vec<u8> {
    match k.protocol {
        IpProtocol::TCP => {
            let r = tcp::Repr {
                src_port: k.src_port,
                dst_port: k.dst_port,
                seq_number: 1,
                ack_number: 0,
                flags: tcp::Flags::SYN,
                window_len: 1024,
                urgent_at: 0,
                options: &[],
                payload_len: 0,
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut tcp::Packet::new_unchecked(&mut b[..]))
                .expect("tcp emits");
            b
        }
        IpProtocol::UDP | IpProtocol(132) | IpProtocol(136) => {
            let r = udp::Repr {
                src_port: k.src_port,
                dst_port: k.dst_port,
                payload_len: 0,
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut udp::Packet::new_unchecked(&mut b[..]))
                .expect("udp emits");
            b
        }
        IpProtocol::ICMP => {
            let r = if k.src_port != 0 {
                icmpv4::Repr::EchoRequest {
                    ident: k.src_port,
                    seq_no: 1,
                    data: &[],
                }
            } else {
                icmpv4::Repr::TimeExceeded {
                    code: icmpv4::TimeExceeded::TTL_EXPIRED,
                    data: &[],
                }
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]))
                .expect("icmp emits");
            b
        }
        IpProtocol::ICMPV6 => {
            let r = if k.src_port != 0 {
                icmpv6::Repr::EchoRequest {
                    ident: k.src_port,
                    seq_no: 1,
                    data: &[],
                }
            } else {
                icmpv6::Repr::TimeExceeded { code: 0, data: &[] }
            };
            let mut b = vec![0u8; r.buffer_len()];
            let (s, d) = (std::net::Ipv6Addr::LOCALHOST, std::net::Ipv6Addr::LOCALHOST);
            r.emit(s, d, &mut icmpv6::Packet::new_unchecked(&mut b[..]))
                .expect("icmpv6 emits");
            b
        }
        _ => Vec::new(),
    }
}

fn rebuild(k: &FlowKey) -> Vec<u8> {
    let (ethertype, l3) = match (k.src, k.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let body = l4(k);
            let r = ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: k.protocol,
                payload_len: body.len(),
                ttl: 64,
                dscp_ecn: 0,
                ident: 0,
                dont_frag: true,
            };
            let mut b = vec![0u8; r.buffer_len() + body.len()];
            r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]))
                .expect("ipv4 emits");
            b[r.buffer_len()..].copy_from_slice(&body);
            (EtherType::IPV4, b)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            // An extension-header protocol in a key comes from a non-first
            // fragment: rebuild one (offset 8) that names it.
            let (next, body) = if k.protocol.is_ipv6_extension() {
                (
                    IpProtocol::IPV6_FRAG,
                    vec![k.protocol.0, 0, 0, 8, 0, 0, 0, 1],
                )
            } else {
                (k.protocol, l4(k))
            };
            let r = ipv6::Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: next,
                payload_len: body.len(),
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            let mut b = vec![0u8; r.buffer_len() + body.len()];
            r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]))
                .expect("ipv6 emits");
            b[r.buffer_len()..].copy_from_slice(&body);
            (EtherType::IPV6, b)
        }
        _ => panic!("a flow key mixes address families: {k:?}"),
    };
    let eth = ethernet::Repr {
        src_addr: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_addr: MacAddr([2, 0, 0, 0, 0, 2]),
        ethertype,
    };
    let mut f = vec![0u8; eth.buffer_len() + l3.len()];
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut f[..]))
        .expect("ethernet emits");
    f[eth.buffer_len()..].copy_from_slice(&l3);
    f
}

fuzz_target!(|data: &[u8]| {
    let Ok(k) = FlowKey::from_inner_ethernet(data) else {
        return;
    };
    let h = flow_hash(&k);
    assert!(vxlan_src_port(h) >= 49152);
    assert_eq!(h, flow_hash(&k));
    let f = rebuild(&k);
    assert_eq!(FlowKey::from_inner_ethernet(&f), Ok(k));
});
