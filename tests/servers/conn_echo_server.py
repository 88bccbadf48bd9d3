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
import os
import socketserver
import stat
import sys
import threading

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


def stdin_is_a_channel():
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def exit_when_stdin_closes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    server = Server(("127.0.0.1", 0), Handler)
    if stdin_is_a_channel():
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
