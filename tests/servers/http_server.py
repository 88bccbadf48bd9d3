#!/usr/bin/python3
"""Loopback HTTP/1.1 server for httptrace's integration tests, benchmarks and demo.

Stdlib only, so it runs on a bare Debian python3. Contract with the callers:
  * stdout carries exactly one line, "PORT <n>", flushed once the socket listens; callers read
    it to synchronise instead of sleeping. Nothing else is ever written to stdout.
  * the process exits by itself when its stdin reaches EOF, so a test that crashes (and so
    closes its end of the pipe) never leaves a server behind. Only a pipe or socket on stdin is
    watched: /dev/null (a background job in a script) would end the server at once and /dev/zero
    would spin forever, so with those, or with --forever, the caller kills it by pid.

Routes (any method; a request body announced by Content-Length is read and discarded):
  /delay/<ms>     waits <ms> before sending anything, so time-to-first-byte is about <ms>
  /early-hints/<ms>  a "103 Early Hints" head at once, the 200 response <ms> later
  /chunked/<n>    Transfer-Encoding: chunked, n chunks
  /close          "Connection: close", then the server closes the connection
  /idle-close/<ms> "Keep-Alive: timeout=<ms rounded up to seconds>", then the server closes the
                  connection if no next request arrives within <ms> (a server's idle timeout): the
                  client sees the close itself (its socket turns readable: EOF), no sleep needed
  /idle-drop/<ms> the same without announcing it (no Keep-Alive header), as many proxies do
  /status/<code>  that status, small body
  /bytes/<n>      n bytes of body
  anything else   200, small body
"""

import argparse
import http.server
import socket
import ssl
import sys
import threading
import time

# This folder's shared stdin/stdout contract (the script's own directory is on sys.path).
from loopback import exit_when_stdin_closes, stdin_is_a_channel

MAX_BYTES = 64 * 1024 * 1024
MAX_DELAY_MS = 60_000
MAX_CHUNKS = 100_000


def number(text, limit):
    """Parses a path component as a non-negative bounded integer, or None."""
    if not text.isdigit():
        return None
    value = int(text)
    return value if value <= limit else None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a side says otherwise
    server_version = "httptrace-test"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        # The base class logs every request to stderr; tests compare output, keep it quiet.
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in one send below, but chunked replies are several sends;
        # without NODELAY, Nagle plus the client's delayed ACK adds ~40 ms stalls that would
        # blur the timings the tests assert.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def do_GET(self):
        self.route()

    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_HEAD = do_GET

    def discard_request_body(self):
        length = self.headers.get("Content-Length")
        if length is not None and length.isdigit():
            remaining = int(length)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

    def route(self):
        self.discard_request_body()
        self.connection.settimeout(None)  # an earlier /idle-close armed it for the idle gap only
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        head = parts[0]
        arg = parts[1] if len(parts) > 1 else ""

        if head == "delay":
            ms = number(arg, MAX_DELAY_MS)
            if ms is None:
                return self.reply(400, b"bad delay\n")
            time.sleep(ms / 1000.0)
            return self.reply(200, b"delayed %d ms\n" % ms)
        if head == "early-hints":
            # A 103 head, a pause, then the response: the client reads the two heads apart.
            ms = number(arg, MAX_DELAY_MS)
            if ms is None:
                return self.reply(400, b"bad delay\n")
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(ms / 1000.0)
            return self.reply(200, b"after early hints\n")
        if head == "chunked":
            n = number(arg, MAX_CHUNKS)
            if n is None:
                return self.reply(400, b"bad chunk count\n")
            return self.reply_chunked(n)
        if head == "close":
            return self.reply(200, b"closing\n", close=True)
        if head in ("idle-close", "idle-drop"):
            ms = number(arg, MAX_DELAY_MS)
            if ms is None or ms == 0:
                return self.reply(400, b"bad idle timeout\n")
            announce = (ms + 999) // 1000 if head == "idle-close" else None
            self.reply(200, b"idle timeout %d ms\n" % ms, keep_alive_s=announce)
            # The base class's handle_one_request treats a timed-out read of the next request
            # line as the end of the connection, and closes it.
            self.connection.settimeout(ms / 1000.0)
            return None
        if head == "status":
            code = number(arg, 999)
            if code is None or code < 200:
                return self.reply(400, b"bad status\n")
            return self.reply(code, b"status %d\n" % code)
        if head == "bytes":
            n = number(arg, MAX_BYTES)
            if n is None:
                return self.reply(400, b"bad length\n")
            return self.reply(200, b"x" * n)
        return self.reply(200, b"hello from httptrace-test\n")

    def status_and_headers(self, code, headers):
        reason = self.responses.get(code, ("Status",))[0]
        lines = ["HTTP/1.1 %d %s" % (code, reason),
                 "Server: " + self.server_version,
                 "Date: " + self.date_time_string()]
        lines += ["%s: %s" % kv for kv in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def reply(self, code, body, close=False, keep_alive_s=None):
        no_body = self.command == "HEAD" or code in (204, 304)
        headers = [("Content-Type", "text/plain")]
        if code not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        if close:
            headers.append(("Connection", "close"))
            self.close_connection = True
        elif self.close_connection:
            headers.append(("Connection", "close"))
        elif keep_alive_s is not None:
            headers.append(("Keep-Alive", "timeout=%d" % keep_alive_s))
        # One send for headers and body: a deterministic write pattern for the traced client.
        payload = self.status_and_headers(code, headers)
        if not no_body:
            payload += body
        self.wfile.write(payload)

    def reply_chunked(self, n):
        headers = [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
        self.wfile.write(self.status_and_headers(200, headers))
        if self.command == "HEAD":
            return
        for i in range(n):
            data = b"chunk %d\n" % i
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops SYNs when a test opens dozens of connections at once, and
    # each drop costs the client a one-second retransmit: timings would stop meaning anything.
    request_queue_size = 256
    tls_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the per-connection thread, not in accept(): a client
        # that stalls mid-handshake must not stop the server from accepting others.
        if self.tls_context is not None:
            request.settimeout(30)
            request = self.tls_context.wrap_socket(request, server_side=True)
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        # Clients that reset or fail the handshake are part of the tests; stay silent.
        pass


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    parser = argparse.ArgumentParser(description="loopback HTTP/1.1 test server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ipv6", action="store_true", help="bind ::1 instead of 127.0.0.1")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS")
    parser.add_argument("--forever", action="store_true",
                        help="do not exit at EOF on stdin (for background use from scripts)")
    args = parser.parse_args()

    cls = Server6 if args.ipv6 else Server
    server = cls(("::1" if args.ipv6 else "127.0.0.1", args.port), Handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        ctx.set_alpn_protocols(["http/1.1"])
        server.tls_context = ctx

    if not args.forever and stdin_is_a_channel():
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
