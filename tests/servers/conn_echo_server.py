#!/usr/bin/python3
"""Loopback HTTP/1.1 keep-alive server that says, in every response, which connection carried the
request as it saw it: "X-Conn: <client port> <request number on that connection, from 1>". A proxy
in front of it can log that header ($upstream_http_x_conn in nginx), which makes the proxy's
upstream connection reuse checkable against the backend's own view, not the proxy's.

Stdlib only. Same contract as http_server.py: one stdout line "PORT <n>" once listening; exits
when its stdin reaches EOF.

Routes: /bytes/<n> answers n bytes of body (at most 16 MiB); anything else a small body.
"""

import http.server
import socketserver
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import loopback  # noqa: E402

MAX_BYTES = 16 * 1024 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "httptrace-conn-echo"

    def setup(self):
        super().setup()
        self.served = 0  # one handler per connection: its requests so far

    def do_GET(self):
        self.served += 1
        body = b"conn echo\n"
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "bytes" and parts[2].isdigit() and int(parts[2]) <= MAX_BYTES:
            body = b"x" * int(parts[2])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Conn", "%d %d" % (self.client_address[1], self.served))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    loopback.announce(server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
