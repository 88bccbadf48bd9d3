"""What the loopback test servers in this folder share: their stdout/stdin contract (see
http_server.py): "PORT <n>" once listening, and exit at EOF on stdin when stdin is a pipe or a
socket, so a test that dies leaves no server behind."""

import os
import stat
import sys
import threading


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


def announce(port):
    """Watches stdin (when it is a channel) and prints the port line."""
    if stdin_is_a_channel():
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
