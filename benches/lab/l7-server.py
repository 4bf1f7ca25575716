"""HTTP/1.1 keep-alive server for benches/lab/l7-throughput.sh: the same
handler on every port given, one process, a thread per connection.

  python3 l7-server.py ADDR FILE PORT...

GET /big sends FILE with sendfile(2) (so the server is not the bottleneck
of the download); any other path gets a 3-byte body ("ok\\n").
"""
import http.server, os, socketserver, sys, threading

addr, big = sys.argv[1], sys.argv[2]
ports = [int(p) for p in sys.argv[3:]]
size = os.path.getsize(big)


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, and each small answer written at once (head and body
    # in one send): no Nagle wait on a delayed ACK between requests.
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            with open(big, "rb") as f:
                self.connection.sendfile(f)
        else:
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self._headers_buffer.append(b"\r\nok\n")
            self.flush_headers()


    def log_message(self, *args):
        pass


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


servers = [S((addr, p), H) for p in ports]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
