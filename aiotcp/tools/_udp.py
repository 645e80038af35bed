"""Small helpers for plain non-blocking UDP sockets (gateway, relay)."""
from __future__ import annotations

import socket
from collections import Counter


def drain(sock: socket.socket, stats: Counter, error_key: str):
    """Yield ``(data, addr)`` for every datagram waiting on ``sock`` until it
    would block; socket errors (ICMP reports) are counted under
    ``error_key`` and skipped."""
    while True:
        try:
            yield sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            stats[error_key] += 1
