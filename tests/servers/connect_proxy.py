#!/usr/bin/python3
"""Loopback HTTP proxy that only tunnels: "CONNECT host:port" opens a TCP connection there and
answers "200 Connection established", then copies bytes both ways until either side closes. A
target whose host begins with "denied" gets "407 Proxy Authentication Required" and a close, as
a proxy that wants credentials does.

Stdlib only. Same contract as http_server.py: one stdout line "PORT <n>" once listening; exits
when its stdin reaches EOF.
"""

import socket
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import loopback  # noqa: E402


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client):
    with client:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data or len(head) > 65536:
                return
            head += data
        parts = head.split(b" ")
        if len(parts) < 3 or parts[0] != b"CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = parts[1].decode().rpartition(":")
        if host.startswith("denied"):
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                           b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            upstream.settimeout(None)
            # A relay passes each piece on as it comes: with Nagle, a piece behind an
            # unacknowledged one waits for the peer's delayed ACK (~40 ms on loopback).
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            back.start()
            pipe(client, upstream)
            back.join()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    loopback.announce(listener.getsockname()[1])
    while True:
        client, _ = listener.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
