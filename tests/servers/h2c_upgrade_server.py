#!/usr/bin/python3
"""Loopback server that takes HTTP/1.1 'Upgrade: h2c' (RFC 7540 section 3.2) and then speaks a
minimal HTTP/2, for httptrace's h2c-upgrade tests. None of Debian's servers does the upgrade
(nghttpd answers an HTTP/1.1 request with h2 frames, nginx has no h2c upgrade), hence this one.

Stdlib only. Same contract as http_server.py: one stdout line "PORT <n>" once listening; exits
when its stdin reaches EOF.

What it speaks, and no more:
  * a request with "Upgrade: h2c": "101 Switching Protocols", its SETTINGS, then the upgraded
    request's response on stream 1; then the client preface and frames.
  * a request without it: an ordinary HTTP/1.1 200 response (keep-alive).
  * every client stream whose HEADERS end the stream: 200 with a body of body_size(stream id)
    bytes. Header blocks are not decoded (HPACK needs the Huffman table), so the body's size is
    the stream's signature: a test knows which URL went on which stream from curl's order.
  * SETTINGS are acknowledged, PING answered, GOAWAY closes; anything else is ignored.
Response header blocks are HPACK literals without Huffman coding.
"""

import argparse
import socket
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import loopback  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY = 0, 1, 4, 6, 7
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_HEAD = 64 * 1024


def body_size(stream):
    return 100 * stream + 7


def frame(kind, flags, stream, payload=b""):
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 0xFF, n & 0xFF, kind, flags]) + stream.to_bytes(4, "big") + payload


def response(stream):
    body = b"x" * body_size(stream)
    length = str(len(body)).encode()
    # 0x88: ':status: 200' from the static table. 0x0f 0x0d: a literal without indexing whose name
    # is static entry 28 (content-length), then the value, not Huffman-coded.
    block = b"\x88" + b"\x0f\x0d" + bytes([len(length)]) + length
    return frame(HEADERS, END_HEADERS, stream, block) + frame(DATA, END_STREAM, stream, body)


def read_exact(conn, buf, n):
    while len(buf) < n:
        more = conn.recv(65536)
        if not more:
            return None
        buf.extend(more)
    return buf


def serve_h2(conn, buf):
    if read_exact(conn, buf, len(PREFACE)) is None or bytes(buf[: len(PREFACE)]) != PREFACE:
        return
    del buf[: len(PREFACE)]
    while True:
        if read_exact(conn, buf, 9) is None:
            return
        n = (buf[0] << 16) | (buf[1] << 8) | buf[2]
        kind, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        if read_exact(conn, buf, 9 + n) is None:
            return
        payload = bytes(buf[9 : 9 + n])
        del buf[: 9 + n]
        if kind == SETTINGS and not flags & ACK:
            conn.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            conn.sendall(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            return
        elif kind == HEADERS and flags & END_STREAM and stream % 2 == 1:
            conn.sendall(response(stream))


def serve(conn):
    with conn:
        buf = bytearray()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD:
                return
            more = conn.recv(65536)
            if not more:
                return
            buf.extend(more)
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "h2c":
            body = b"not upgraded\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return
        # The 101 and the server's SETTINGS (its connection preface) go out in one write, the
        # upgraded request's response right after, before the client's preface has arrived: as
        # a server that answers at once does.
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                     + frame(SETTINGS, 0, 0))
        conn.sendall(response(1))
        serve_h2(conn, buf)


def main():
    parser = argparse.ArgumentParser(description="loopback h2c-upgrade test server")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(64)
    loopback.announce(sock.getsockname()[1])
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
