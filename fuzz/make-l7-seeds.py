#!/usr/bin/env python3
"""Writes fuzz/seeds/{http,tls,dns,detect}/*.bin for the l7 targets.

Independent Python encoders. The http and tls targets take a split byte
(two for http) before the stream; detect takes three control bytes.
Run from anywhere."""
import os, struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

def write(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".bin"), "wb") as f:
        f.write(data)

# --- http: 2 split bytes, then the client stream
http = {
    "get": b"GET /orders?id=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
    "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /admin HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET /%61dmin/../x HTTP/1.1\r\nHost: a\r\n\r\n",
    "chunked": b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nGET /\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "cl_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "absolute": b"GET http://B.example.com:80//x/./y HTTP/1.1\r\nHost: b.example.com\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\x81\x00",
}
for name, d in http.items():
    write("http", name, bytes([0, 2]) + d)

# --- tls: 1 split byte, then records
def ext(t, body):
    return struct.pack(">HH", t, len(body)) + body

def sni(*names):
    lst = b"".join(b"\x00" + struct.pack(">H", len(n)) + n for n in names)
    return ext(0, struct.pack(">H", len(lst)) + lst)

def alpn(*protos):
    lst = b"".join(bytes([len(p)]) + p for p in protos)
    return ext(16, struct.pack(">H", len(lst)) + lst)

def hello(exts):
    body = b"\x03\x03" + b"\x07" * 32 + b"\x20" + b"\x09" * 32 + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
    e = b"".join(exts)
    body += struct.pack(">H", len(e)) + e
    return b"\x01" + struct.pack(">I", len(body))[1:] + body

def records(msg, frag):
    out = b""
    for i in range(0, len(msg), frag):
        c = msg[i:i + frag]
        out += b"\x16\x03\x01" + struct.pack(">H", len(c)) + c
    return out

write("tls", "sni_alpn", b"\x00" + records(hello([sni(b"api.example.com"), alpn(b"h2", b"http/1.1")]), 16384))
write("tls", "split_records", b"\x03" + records(hello([sni(b"a.example.com"), alpn(b"h2")]), 40))
write("tls", "ech", b"\x00" + records(hello([sni(b"public.example"), ext(0xfe0d, b"\x00" * 32)]), 16384))
write("tls", "two_names", b"\x01" + records(hello([sni(b"a", b"b")]), 16384))

# --- dns: one message
def name(n):
    out = b""
    for l in n.split("."):
        if l:
            out += bytes([len(l)]) + l.encode()
    return out + b"\x00"

def query(i, n, t=1):
    return struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name(n) + struct.pack(">HH", t, 1)

def rr(owner, t, ttl, rdata):
    return owner + struct.pack(">HHIH", t, 1, ttl, len(rdata)) + rdata

write("dns", "query", query(1, "wWw.ExAmPlE.cOm"))
write("dns", "query_edns", struct.pack(">HHHHHH", 2, 0x0100, 1, 0, 0, 1) + name("a.example") + b"\x00\x1c\x00\x01" + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00")
q = struct.pack(">HHHHHH", 3, 0x8180, 1, 3, 0, 0) + name("www.example.com") + b"\x00\x01\x00\x01"
target_at = len(q) + 12
resp = q + rr(b"\xc0\x0c", 5, 300, b"\x04edge" + name("example.net"))
ptr = bytes([0xc0, target_at])
resp += rr(ptr, 1, 60, bytes([192, 0, 2, 1])) + rr(ptr, 28, 60, bytes(15) + b"\x01")
write("dns", "response_cname", resp)
write("dns", "pointer_loop", struct.pack(">HHHHHH", 4, 0x0100, 1, 0, 0, 0) + b"\x01a\xc0\x0c\x00\x01\x00\x01")

# --- detect: transport/port byte, server-split byte, segment byte, then bytes
write("detect", "http", b"\x02\x00\x01GET / HTTP/1.1\r\n")
write("detect", "tls", b"\x02\x00\x02" + records(hello([sni(b"a")]), 16384)[:20])
write("detect", "ssh_server", b"\x02\x40\x00SSH-2.0-OpenSSH_9.2\r\n" + b"x" * 40)
write("detect", "dns_udp", b"\x01\x00\x00" + query(5, "example.com"))
write("detect", "dns_tcp", b"\x00\x00\x03" + struct.pack(">H", 29) + query(5, "example.com"))
