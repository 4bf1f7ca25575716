#!/usr/bin/env python3
"""Write the seed corpus: a few valid packets per fuzz target, built here
independently of the overlay crate so that the seeds also cross-check it.
Run from anywhere; rewrites fuzz/seeds/<target>/*.bin."""
import ipaddress
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(a):
    return ipaddress.IPv4Address(a).packed


def ip6(a):
    return ipaddress.IPv6Address(a).packed


def eth(dst, src, et, payload):
    return bytes(dst) + bytes(src) + struct.pack("!H", et) + payload


MAC_A = [2, 0, 0, 0, 0, 0x11]
MAC_B = [2, 0, 0, 0, 0, 0x12]


def ipv4(src, dst, proto, payload, ttl=64, options=b"", df=True):
    hl = 20 + len(options)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), 0x1234,
                    0x4000 if df else 0, ttl, proto, 0, ip4(src), ip4(dst)) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, nh, payload, hl=64):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, hl) + ip6(src) + ip6(dst) + payload


def pseudo4(src, dst, proto, n):
    return ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, n)


def pseudo6(src, dst, proto, n):
    return ip6(src) + ip6(dst) + struct.pack("!IxxxB", n, proto)


def udp(sp, dp, payload, pseudo=None):
    n = 8 + len(payload)
    u = struct.pack("!HHHH", sp, dp, n, 0) + payload
    if pseudo is not None:
        c = csum(pseudo(n) + u) or 0xFFFF
        u = u[:6] + struct.pack("!H", c) + u[8:]
    return u


def tcp(sp, dp, seq, ack, flags, options=b"", payload=b"", pseudo=None):
    hl = 20 + len(options)
    t = struct.pack("!HHIIHHHH", sp, dp, seq, ack, (hl // 4) << 12 | flags, 64240, 0, 0)
    t += options + payload
    if pseudo is not None:
        c = csum(pseudo(len(t)) + t)
        t = t[:16] + struct.pack("!H", c) + t[18:]
    return t


def icmp4(t, code, rest, data):
    m = struct.pack("!BBH", t, code, 0) + rest + data
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def icmp6(src, dst, t, code, rest, data):
    m = struct.pack("!BBH", t, code, 0) + rest + data
    c = csum(pseudo6(src, dst, 58, len(m)) + m)
    return m[:2] + struct.pack("!H", c) + m[4:]


def vxlan(vni, gbp=None):
    if gbp is None:
        return struct.pack("!BxxxI", 0x08, vni << 8)
    d, a, group = gbp
    return struct.pack("!BBHI", 0x88, (0x40 if d else 0) | (0x08 if a else 0), group, vni << 8)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + bytes(sha) + ip4(spa) + bytes(tha) + ip4(tpa)


# Inner frames, reused by several targets.
SYN_OPTS = bytes([2, 4, 5, 0xB4, 1, 3, 3, 7, 4, 2, 0, 0])
TS_OPTS = bytes([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
P4 = lambda n: pseudo4("10.1.0.11", "10.2.0.12", 6, n)
inner_tcp4 = eth(MAC_B, MAC_A, 0x0800,
                 ipv4("10.1.0.11", "10.2.0.12", 6, tcp(49152, 80, 1, 0, 0x002, SYN_OPTS, pseudo=P4)))
inner_udp4 = eth(MAC_B, MAC_A, 0x0800,
                 ipv4("10.1.0.11", "10.2.0.12", 17,
                      udp(5353, 53, b"\x12\x34\x01\x00", lambda n: pseudo4("10.1.0.11", "10.2.0.12", 17, n))))
echo4 = icmp4(8, 0, struct.pack("!HH", 0xABCD, 1), b"ping-payload")
inner_icmp4 = eth(MAC_B, MAC_A, 0x0800, ipv4("10.1.0.11", "10.1.0.1", 1, echo4))
hbh_frag_udp = (bytes([44, 0, 1, 4, 0, 0, 0, 0])            # hop-by-hop, PadN
                + bytes([17, 0, 0, 1, 0, 0, 0, 9])          # first fragment, MF
                + udp(12345, 443, b"quic"))
inner_udp6 = eth(MAC_B, MAC_A, 0x86DD, ipv6("2001:db8::1", "2001:db8::2", 0, hbh_frag_udp))
later_frag6 = eth(MAC_B, MAC_A, 0x86DD,
                  ipv6("2001:db8::1", "2001:db8::2", 44, bytes([17, 0, 0x05, 0xA8, 0, 0, 0, 9]) + b"x" * 16))
echo6 = icmp6("2001:db8::1", "2001:db8::2", 128, 0, struct.pack("!HH", 7, 1), b"hi")
inner_echo6 = eth(MAC_B, MAC_A, 0x86DD, ipv6("2001:db8::1", "2001:db8::2", 58, echo6))
vlan_tcp4 = eth(MAC_B, MAC_A, 0x8100, struct.pack("!HH", 100, 0x0800) + inner_tcp4[14:])
qinq_udp4 = eth(MAC_B, MAC_A, 0x88A8, struct.pack("!HHHH", 7, 0x8100, 0x2009, 0x0800) + inner_udp4[14:])
arp_req = eth([0xFF] * 6, MAC_A, 0x0806, arp(1, MAC_A, "10.1.0.11", [0] * 6, "10.1.0.1"))


def outer(inner, vni=100, gbp=None, udp_csum=False, sport=51234):
    pl = vxlan(vni, gbp) + inner
    ps = (lambda n: pseudo4("10.0.0.11", "10.0.0.1", 17, n)) if udp_csum else None
    return eth([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x0B], 0x0800,
               ipv4("10.0.0.11", "10.0.0.1", 17, udp(sport, 4789, pl, ps)))


SEEDS = {
    "ethernet": [inner_tcp4, arp_req, inner_udp6],
    "vlan": [vlan_tcp4, qinq_udp4, struct.pack("!HH", 0xA064, 0x0800)],
    "arp": [arp_req[14:], arp(2, MAC_B, "10.1.0.1", MAC_A, "10.1.0.11")],
    "ipv4": [inner_udp4[14:], inner_icmp4[14:],
             ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"opt"), options=bytes([1, 1, 1, 0]))],
    "ipv6": [inner_udp6[14:], inner_echo6[14:], later_frag6[14:]],
    "udp": [udp(5353, 53, b"\x12\x34\x01\x00", lambda n: pseudo4("10.0.0.1", "10.0.0.2", 17, n)),
            udp(51234, 4789, vxlan(100) + inner_tcp4)],
    "tcp": [tcp(49152, 80, 1, 0, 0x002, SYN_OPTS),
            tcp(80, 49152, 1000, 2, 0x018, TS_OPTS, b"HTTP/1.1 200 OK\r\n\r\n")],
    "icmpv4": [echo4, icmp4(0, 0, struct.pack("!HH", 0xABCD, 1), b"ping-payload"),
               icmp4(3, 4, struct.pack("!HH", 0, 1450), inner_udp4[14:14 + 28]),
               icmp4(11, 0, b"\0\0\0\0", inner_tcp4[14:14 + 28])],
    "icmpv6": [echo6,
               icmp6("fe80::1", "ff02::1:ff00:2", 135, 0, b"\0\0\0\0",
                     ip6("2001:db8::2") + bytes([1, 1] + MAC_A)),
               icmp6("fe80::2", "fe80::1", 136, 0, bytes([0x60, 0, 0, 0]),
                     ip6("2001:db8::2") + bytes([2, 1] + MAC_B)),
               icmp6("2001:db8::1", "2001:db8::2", 2, 0, struct.pack("!I", 1280), inner_udp6[14:14 + 48])],
    "vxlan": [vxlan(100) + inner_tcp4, vxlan(0xFFFFFF, (True, True, 0x1234)) + inner_udp4],
    "decap": [outer(inner_tcp4), outer(inner_udp6, 200, (False, True, 0x0102)),
              outer(arp_req, 300, udp_csum=True)],
    "flow": [inner_tcp4, inner_udp4, inner_icmp4, inner_udp6, later_frag6, inner_echo6, vlan_tcp4,
             qinq_udp4],
}


# The engine target: a selector byte (fuzz_targets/engine.rs `entry`: 0/1
# VXLAN from the plain VTEP in VNI 100/200, 2/3 from the warden peer, 4 raw
# underlay, 5/6 access ports w1/w2, 7 VTEP with GBP) and the frame.
API_MAC, DB_MAC = [2, 0, 0, 0, 1, 0x21], [2, 0, 0, 0, 1, 0x22]
GW100_MAC, GW200_MAC = [2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 1]
REMOTE_MAC, BATCH_MAC, WPEER_MAC = [2, 0, 0, 0, 1, 0x50], [2, 0, 0, 0, 2, 0x44], [2, 0, 0, 0, 1, 0x33]


def syn4(smac, dmac, src, dst, sp=40000, dp=5432, flags=0x002, options=b"", ethertype=0x0800, tags=b""):
    seg = tcp(sp, dp, 1000, 0 if flags == 0x002 else 1001, flags, SYN_OPTS,
              pseudo=lambda n: pseudo4(src, dst, 6, n))
    return eth(dmac, smac, ethertype, tags + ipv4(src, dst, 6, seg, options=options))


def engine_seed(sel, frame):
    return bytes([sel]) + frame


# A made-up identity option (IPv4 0x9E, 28 bytes): version 1, epoch 0, the
# id, timestamp and nonce, and a tag that will not verify.
ident_opt = bytes([0x9E, 28, 0x10, 0]) + struct.pack("!III", 0x01020304, 1700000000, 1000) + b"\xAA" * 12
ext6 = (bytes([60, 0, 1, 4, 0, 0, 0, 0])                       # hop-by-hop, PadN
        + bytes([17, 0, 1, 4, 0, 0, 0, 0])                     # destination options, PadN
        + udp(5353, 53, b"\x12\x34\x01\x00",
              lambda n: pseudo6("2001:db8:1::50", "2001:db8:1::22", 17, n)))
three_tags = struct.pack("!HHHHHH", 10, 0x8100, 20, 0x8100, 30, 0x0800)
SEEDS["engine"] = [
    engine_seed(5, syn4(API_MAC, DB_MAC, "10.1.0.21", "10.1.0.22")),          # SYN api -> db, local
    engine_seed(6, syn4(DB_MAC, API_MAC, "10.1.0.22", "10.1.0.21", 5432, 40000, 0x012)),  # SYN-ACK back
    engine_seed(5, eth([0xFF] * 6, API_MAC, 0x0806, arp(1, API_MAC, "10.1.0.21", [0] * 6, "10.1.0.1"))),
    engine_seed(5, eth(GW100_MAC, API_MAC, 0x0800, ipv4("10.1.0.21", "10.1.0.1", 1, echo4))),
    engine_seed(5, syn4(API_MAC, GW100_MAC, "10.1.0.21", "10.2.0.44", dp=443)),  # routed to VNI 200
    engine_seed(5, syn4(API_MAC, DB_MAC, "10.1.0.21", "10.1.0.22", ethertype=0x88A8,
                        tags=struct.pack("!HHHH", 7, 0x8100, 9, 0x0800))),     # two tags
    engine_seed(6, syn4(DB_MAC, API_MAC, "10.1.0.22", "10.1.0.21", ethertype=0x8100,
                        tags=three_tags)),                                     # three tags
    engine_seed(0, syn4(REMOTE_MAC, DB_MAC, "10.1.0.50", "10.1.0.22")),       # VTEP -> db
    engine_seed(0, eth([0xFF] * 6, REMOTE_MAC, 0x0806, arp(1, REMOTE_MAC, "10.1.0.50", [0] * 6, "10.1.0.22"))),
    engine_seed(0, eth(DB_MAC, REMOTE_MAC, 0x86DD, ipv6("2001:db8:1::50", "2001:db8:1::22", 0, ext6))),
    engine_seed(1, syn4(BATCH_MAC, GW200_MAC, "10.2.0.44", "10.1.0.22")),    # routed into VNI 100
    engine_seed(7, syn4([2, 0, 0, 0, 1, 0x60], DB_MAC, "10.1.0.60", "10.1.0.22")),  # GBP group 100
    engine_seed(2, syn4(WPEER_MAC, DB_MAC, "10.1.0.33", "10.1.0.22", options=ident_opt)),
    engine_seed(4, eth([0xFF] * 6, [2, 0xAA, 0, 0, 0, 2], 0x0806,
                       arp(1, [2, 0xAA, 0, 0, 0, 2], "10.0.0.2", [0] * 6, "10.0.0.1"))),
    engine_seed(4, eth([2, 0x77, 0, 0, 0, 1], [2, 0xAA, 0, 0, 0, 2], 0x0800,
                       ipv4("10.0.0.2", "10.0.0.1", 1, echo4))),
]

for target, packets in SEEDS.items():
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith(".bin"):
            os.remove(os.path.join(d, f))
    for i, p in enumerate(packets):
        with open(os.path.join(d, f"seed-{i}.bin"), "wb") as fh:
            fh.write(p)
    print(f"{target}: {len(packets)} seeds")
