"""Requests per second of small keep-alive GETs on ONE connection, for
benches/lab/l7-throughput.sh: `python3 l7-rps.py HOST PORT SECONDS`.
Prints the rate; fails if the connection was not kept alive throughout or
an answer was not 200 "ok"."""
import http.client, sys, time

host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = http.client.HTTPConnection(host, port, timeout=5)
c.connect()
sock = c.sock
n = 0
end = time.monotonic() + secs
start = time.monotonic()
while True:
    c.request("GET", "/api/small", headers={"Host": "web.svc"})
    r = c.getresponse()
    body = r.read()
    if r.status != 200 or body != b"ok\n":
        sys.exit("bad answer %d %r" % (r.status, body))
    n += 1
    if n % 64 == 0 and time.monotonic() >= end:
        break
elapsed = time.monotonic() - start
if c.sock is not sock:
    sys.exit("connection not kept alive")
print("%.0f" % (n / elapsed))
