"""Initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987).

Both are keyed hashes of the connection's identity with a per-process secret,
so an off-path attacker cannot predict them.
"""
from __future__ import annotations

import hashlib
import os
import struct

from .._fast import isn_hash

_PROCESS_SECRET = os.urandom(32)


def _keyed(secret: bytes):
    return hashlib.blake2b(key=secret, digest_size=4)


_PROCESS_KEYED = _keyed(_PROCESS_SECRET)


def _isn_key(secret: bytes) -> bytes:
    """The 16-byte SipHash key of the ISNs, drawn from the secret."""
    return hashlib.blake2b(b"isn", key=secret, digest_size=16).digest()


_PROCESS_ISN_KEY = _isn_key(_PROCESS_SECRET)

#: MSS values a SYN cookie can encode (3 bits), as Linux's msstab does.
COOKIE_MSS = (536, 1200, 1300, 1380, 1400, 1432, 1452, 1460)


def _identity(remote_addr, local_port: int, remote_port: int) -> bytes:
    return repr(remote_addr).encode() + struct.pack("!HH", local_port, remote_port)


class SequenceSource:
    """ISN = M + F(4-tuple, secret) (RFC 6528): M a 4-microsecond clock taken
    from ``now``, F SipHash-2-4 of the connection's identity (in C, as
    Linux's secure_tcp_seq) under a key drawn from the secret.  SYN cookies
    carry a keyed BLAKE2b MAC."""

    def __init__(self, secret: bytes | None = None):
        self.secret = secret if secret is not None else _PROCESS_SECRET
        # keyed once (per process for the process's secret): each hash
        # copies this state instead of keying a new one, which is a whole
        # compression of its own
        self._keyed = _PROCESS_KEYED if secret is None else _keyed(secret)
        self._isn_key = _PROCESS_ISN_KEY if secret is None else _isn_key(secret)

    def _hash(self, *parts: bytes) -> int:
        h = self._keyed.copy()
        h.update(b"".join(parts))
        return int.from_bytes(h.digest(), "big")

    def isn(self, remote_addr, local_port: int, remote_port: int, now: float) -> int:
        clock = int(now * 250_000)
        return (isn_hash(self._isn_key, remote_addr, local_port, remote_port) + clock) & 0xFFFFFFFF

    # --- SYN cookies --------------------------------------------------------
    # 32-bit cookie = 5-bit counter (64 s units) | 3-bit MSS index | 24-bit MAC
    # over (identity, peer ISN, counter).  Valid for the current and previous
    # counter value, i.e. 64 to 128 seconds.

    def _cookie_mac(self, identity: bytes, peer_isn: int, counter: int) -> int:
        return self._hash(b"cookie", identity, struct.pack("!IB", peer_isn, counter)) & 0xFFFFFF

    def make_cookie(self, remote_addr, local_port, remote_port, peer_isn: int, peer_mss: int, now: float) -> tuple[int, int]:
        """Return (our ISN, the MSS we will use) for a SYN answered statelessly."""
        index = max(i for i, m in enumerate(COOKIE_MSS) if m <= max(peer_mss, COOKIE_MSS[0]))
        counter = int(now // 64) & 31
        mac = self._cookie_mac(_identity(remote_addr, local_port, remote_port), peer_isn, counter)
        return (counter << 27) | (index << 24) | mac, COOKIE_MSS[index]

    def check_cookie(self, remote_addr, local_port, remote_port, peer_isn: int, cookie: int, now: float) -> int | None:
        """The MSS encoded in ``cookie`` if it is ours and fresh, else None."""
        counter = cookie >> 27
        current = int(now // 64) & 31
        if counter not in (current, (current - 1) & 31):
            return None
        mac = self._cookie_mac(_identity(remote_addr, local_port, remote_port), peer_isn, counter)
        if mac != cookie & 0xFFFFFF:
            return None
        return COOKIE_MSS[(cookie >> 24) & 7]
