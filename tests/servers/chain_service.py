#!/usr/bin/python3
"""A loopback service for the distributed-tracing tests: a ThreadingHTTPServer (a thread per
connection, as many Python services run) that, with --backend PORT, answers every request by first
making one to 127.0.0.1:PORT (same path, under /backend) and then replying with what it got.

Same contract as http_server.py: stdout carries exactly one line, "PORT <n>", once it listens;
the process exits when its stdin reaches EOF. Stdlib only, and it sends no tracing headers of its
own: the point is that an unmodified service is traced.
"""

import argparse
import http.client
import http.server
import socket
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    backend = None

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def setup(self):
        super().setup()
        # Headers and body are two writes: without NODELAY, Nagle and the caller's delayed ACK
        # add ~40 ms to every call, which is not what these tests are about.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        body = b"leaf\n"
        if self.backend:
            conn = http.client.HTTPConnection("127.0.0.1", self.backend, timeout=10)
            conn.request("GET", "/backend" + self.path)
            reply = conn.getresponse()
            body = reply.read()
            conn.close()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", type=int, default=None)
    args = ap.parse_args()
    Handler.backend = args.backend
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    sys.stdin.read()  # EOF: the test is done with us
    server.shutdown()


if __name__ == "__main__":
    main()
