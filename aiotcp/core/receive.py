"""The receive side's bytes (RFC 9293 section 3.10.7.4, the seventh step).

A :class:`ReceiveBuffer` holds what arrived in order and is not yet read,
and what arrived out of order above ``rcv_nxt``, waiting for the hole
before it.  The connection decides what is acceptable (the window, the
sequence numbers); the buffer only keeps bytes, in order, without loss or
duplication.

In-order data is kept as the payloads arrived, whole (at most ``HELD`` of
them), so that a reader that keeps up gets the very ``bytes`` object a
segment brought, with no copy; past ``HELD`` they are joined into one
``bytearray``, so that a peer sending tiny segments cannot make their
per-object overhead grow.  Out-of-order data is a sorted list of disjoint
``[seq, bytes]`` blocks, with their ranges in a :class:`RangeSet` (the SACK
blocks a receiver sends, RFC 2018 section 4).
"""
from __future__ import annotations

from .._fast import empty_list
from .ranges import NONE_HELD, RangeSet, seq_offset

MASK = (1 << 32) - 1
#: payloads kept whole before they are joined
HELD = 16


class ReceiveBuffer:
    def __init__(self):
        #: bytes in order, not yet read
        self.buffered = 0
        self._joined = bytearray()  # the oldest in-order bytes
        self._held: list = []  # then these payloads, whole, in order
        self._ooo: list = NONE_HELD  # out of order: sorted, disjoint [seq, bytes]
        #: the ranges the out-of-order blocks cover (the SACK blocks sent)
        self.held_ranges = RangeSet()

    # ------------------------------------------------------ in order

    def append(self, data) -> None:
        """Add in-order data after what is already buffered."""
        if type(data) is not bytes:
            data = bytes(data)  # a view of a buffer the caller may reuse
        if len(self._held) >= HELD:
            self._join()
        self._held.append(data)
        self.buffered += len(data)

    def read(self, limit: int = -1) -> bytes:
        """Take up to ``limit`` bytes (all if negative), oldest first: a lone
        payload is returned as the object it arrived as."""
        held = self._held
        joined = self._joined
        if not len(joined) and (limit < 0 or limit >= self.buffered):
            data = held[0] if len(held) == 1 else b"".join(held)
            empty_list(held)
        else:
            self._join()
            if limit < 0 or limit >= len(joined):
                data = bytes(joined)
                joined.clear()
            else:
                data = bytes(joined[:limit])
                del joined[:limit]
        self.buffered -= len(data)
        return data

    def discard(self) -> None:
        """Drop the in-order bytes nobody will read."""
        self._held.clear()
        self._joined.clear()
        self.buffered = 0

    def _join(self) -> None:
        for chunk in self._held:
            self._joined += chunk
        self._held.clear()

    @property
    def held_payloads(self) -> int:
        """How many payloads are kept whole."""
        return len(self._held)

    @property
    def joined_bytes(self) -> int:
        """How many buffered bytes were joined into one buffer."""
        return len(self._joined)

    # -------------------------------------------------- out of order

    def has_holes(self) -> bool:
        """Data is held above a hole."""
        return len(self._ooo) > 0

    @property
    def out_of_order_bytes(self) -> int:
        return self.held_ranges.total

    def store(self, seq: int, data, rcv_nxt: int) -> None:
        """Keep out-of-order ``data`` starting at ``seq`` (above ``rcv_nxt``);
        what is held already is kept, not stored twice."""
        data = bytes(data)
        ooo = self._ooo
        if ooo is NONE_HELD:
            ooo = self._ooo = []
        end = (seq + len(data)) & MASK
        # the first block starting at or above seq: most often past the
        # last (data arrives in order above a hole), else a binary search
        n = len(ooo)
        if not n or seq_offset(ooo[n - 1][0], seq) < 0:
            i = n
        else:
            i, hi = 0, n - 1
            while i < hi:
                mid = (i + hi) >> 1
                if seq_offset(ooo[mid][0], seq) < 0:
                    i = mid + 1
                else:
                    hi = mid
        if i > 0:  # trim against the block before
            prev_start, prev_data = ooo[i - 1]
            overlap = seq_offset((prev_start + len(prev_data)) & MASK, seq)
            if overlap >= len(data):
                return
            if overlap > 0:
                data = data[overlap:]
                seq = (seq + overlap) & MASK
        while i < len(ooo) and seq_offset(ooo[i][0], end) <= 0:  # blocks the new one reaches
            next_start, next_data = ooo[i]
            if seq_offset((next_start + len(next_data)) & MASK, end) <= 0:
                del ooo[i]  # covered: the new block holds it all
                continue
            data = data[:seq_offset(next_start, seq)]
            break
        if data:
            ooo.insert(i, [seq, data])
            self.held_ranges.advance(rcv_nxt)
            self.held_ranges.add(seq, (seq + len(data)) & MASK)

    def take_next(self, rcv_nxt: int):
        """The out-of-order bytes that now follow ``rcv_nxt`` (the first
        block, less what lies below ``rcv_nxt``), taken out; b"" for a block
        that held nothing new; None while a hole remains before the next."""
        ooo = self._ooo
        if not ooo:
            self.held_ranges.advance(rcv_nxt)
            return None
        start, data = ooo[0]
        offset = seq_offset(rcv_nxt, start)
        if offset < 0:
            self.held_ranges.advance(rcv_nxt)
            return None
        del ooo[0]
        if not ooo:
            self._ooo = NONE_HELD  # the hole is filled: the list goes
        return data[offset:] if offset < len(data) else b""
