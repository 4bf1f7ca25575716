#!/usr/bin/env python3
"""Write fuzz/seeds/identity_header/*.bin: frames with and without the
identity header, stamped here by an encoder independent of the identity
crate (docs/identity.md), so identity/tests/seeds.rs cross-checks both.
Run from anywhere."""
import ipaddress
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "fuzz", "seeds", "identity_header")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


A = bytes([2, 0, 0, 0, 0, 0x11])
B = bytes([2, 0, 0, 0, 0, 0x12])
S4, D4 = "10.1.0.2", "10.1.0.3"
S6, D6 = "fd00::2", "fd00::3"


def a4(x):
    return ipaddress.IPv4Address(x).packed


def a6(x):
    return ipaddress.IPv6Address(x).packed


def ip4(proto, payload, options=b""):
    hl = 20 + len(options)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), 0x1C46,
                    0x4000, 64, proto, 0, a4(S4), a4(D4)) + options
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ip6(nh, payload):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, 64) + a6(S6) + a6(D6) + payload


def l4sum(v6, proto, seg):
    if v6:
        ph = a6(S6) + a6(D6) + struct.pack("!IxxxB", len(seg), proto)
    else:
        ph = a4(S4) + a4(D4) + struct.pack("!BBH", 0, proto, len(seg))
    return csum(ph + seg)


def tcp_syn(v6=False):
    opts = bytes([2, 4, 5, 0xB4, 4, 2, 8, 10, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0, 1, 3, 3, 7])
    seg = struct.pack("!HHIIBBHHH", 40000, 80, 0x11223344, 0, 0xA0, 0x02, 64240, 0, 0) + opts
    return seg[:16] + struct.pack("!H", l4sum(v6, 6, seg)) + seg[18:]


def udp(payload):
    seg = struct.pack("!HHHH", 5353, 53, 8 + len(payload), 0) + payload
    return seg[:6] + struct.pack("!H", l4sum(False, 17, seg)) + seg[8:]


def icmp_echo():
    m = struct.pack("!BBHHH", 8, 0, 0, 1234, 1) + b"abcdefgh"
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def eth(et, p, vid=None):
    tag = struct.pack("!HH", 0x8100, vid) if vid is not None else b""
    return B + A + tag + struct.pack("!H", et) + p


def header(kind, length, flags=0):
    return (bytes([kind, length, 0x10 | flags, 0x2A]) +
            struct.pack("!III", 0xCAFEF00D, 1700000000, 0x11223344) + bytes(range(0xA0, 0xAC)))


def stamp4(frame, l3, flags=0, l4_keep=None):
    """Insert the option before End of Option List (or after the options);
    with l4_keep, cut the L4 part to that many bytes (announce-only)."""
    ihl = (frame[l3] & 15) * 4
    total = struct.unpack("!H", frame[l3 + 2:l3 + 4])[0]
    opts = frame[l3 + 20:l3 + ihl]
    i = 0
    while i < len(opts) and opts[i] != 0:
        i += 1 if opts[i] == 1 else opts[i + 1]
    new_opts = opts[:i] + header(0x9E, 28, flags) + opts[i:]
    payload = frame[l3 + ihl:l3 + total]
    if l4_keep is not None:
        payload = payload[:l4_keep]
    h = bytearray(frame[l3:l3 + 20] + new_opts)
    h[0] = 0x40 | len(h) // 4
    h[2:4] = struct.pack("!H", len(h) + len(payload))
    h[10:12] = b"\0\0"
    h[10:12] = struct.pack("!H", csum(bytes(h)))
    tail = b"" if l4_keep is not None else frame[l3 + total:]
    return frame[:l3] + bytes(h) + payload + tail


def stamp6(frame, l3):
    nh = frame[l3 + 6]
    ext = bytes([nh, 3]) + header(0x1E, 26) + bytes([1, 0])
    h = bytearray(frame[l3:l3 + 40])
    h[6] = 60
    h[4:6] = struct.pack("!H", struct.unpack("!H", frame[l3 + 4:l3 + 6])[0] + 32)
    return frame[:l3] + bytes(h) + ext + frame[l3 + 40:]


def main():
    syn = eth(0x0800, ip4(6, tcp_syn()))
    udp_f = eth(0x0800, ip4(17, udp(b"hello warden")))
    icmp = eth(0x0800, ip4(1, icmp_echo()))
    icmp += bytes(max(0, 60 - len(icmp)))
    opts = eth(0x0800, ip4(17, udp(b"opt"), options=bytes([1, 0x94, 4, 0, 0, 1, 0, 0])))
    vlan = eth(0x0800, ip4(17, udp(b"tagged")), vid=100)
    syn6 = eth(0x86DD, ip6(6, tcp_syn(True)))
    seeds = {
        "00-syn": syn,
        "01-syn-stamped": stamp4(syn, 14),
        "02-udp-stamped": stamp4(udp_f, 14),
        "03-icmp-stamped": stamp4(icmp, 14),
        "04-options-stamped": stamp4(opts, 14),
        "05-vlan-udp-stamped": stamp4(vlan, 18),
        "06-syn6": syn6,
        "07-syn6-stamped": stamp6(syn6, 14),
        "08-syn-announce": stamp4(syn, 14, flags=1, l4_keep=8),
        "09-header-ipv4": header(0x9E, 28),
        "10-ext-ipv6": bytes([6, 3]) + header(0x1E, 26) + bytes([1, 0]),
    }
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
