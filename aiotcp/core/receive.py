"""The receive side's bytes (RFC 9293 section 3.10.7.4, the seventh step).

A :class:`ReceiveBuffer` holds what arrived in order and is not yet read,
and what arrived out of order above ``rcv_nxt``, waiting for the hole
before it.  The connection decides what is acceptable (the window, the
sequence numbers); the buffer only keeps bytes, in order, without loss or
duplication.

In-order data is kept as the payloads arrived, whole, so that a reader
gets the very ``bytes`` object a segment (or a coalesced run of them)
brought, with no copy: :meth:`~ReceiveBuffer.read_chunk` hands them out
one by one, as a protocol's ``data_received()`` takes them, and
:meth:`~ReceiveBuffer.read` joins only what one call asks for.  So that a
peer sending tiny segments cannot make their per-object overhead grow, a
payload under ``WHOLE`` bytes that arrives while ``HELD`` chunks are
already kept goes into a ``bytearray`` at the tail instead: at most
``HELD + 2 * buffered / WHOLE + 1`` objects are held.  Out-of-order data is
a sorted list of disjoint ``[seq, bytes]`` blocks, with their ranges in a
:class:`RangeSet` (the SACK blocks a receiver sends, RFC 2018 section 4).
"""
from __future__ import annotations

from .._fast import KEEP_IDLE, empty_list
from .ranges import NONE_HELD, RangeSet, seq_offset

MASK = (1 << 32) - 1
#: chunks kept before small payloads are merged
HELD = 16
#: a payload of at least this many bytes is always kept whole
WHOLE = 1024


class ReceiveBuffer:
    def __init__(self):
        #: bytes in order, not yet read
        self.buffered = 0
        # in order: the chunks from _held[_head] on, the first of them
        # from its byte _off on
        self._held: list = []
        self._head = 0
        self._off = 0
        self._ooo: list = NONE_HELD  # out of order: sorted, disjoint [seq, bytes]
        #: the ranges the out-of-order blocks cover (the SACK blocks sent)
        self.held_ranges = RangeSet()

    # ------------------------------------------------------ in order

    def append(self, data) -> None:
        """Add in-order data after what is already buffered."""
        held = self._held
        if len(held) - self._head >= HELD and len(data) < WHOLE:
            last = held[len(held) - 1]
            if type(last) is bytearray:
                last += data
            else:
                held.append(bytearray(data))
        else:
            if type(data) is not bytes:
                data = bytes(data)  # a view of a buffer the caller may reuse
            held.append(data)
        self.buffered += len(data)

    def read(self, limit: int = -1) -> bytes:
        """Take up to ``limit`` bytes (all if negative), oldest first: a
        lone payload is returned as the object it arrived as."""
        held = self._held
        head = self._head
        off = self._off
        if limit < 0 or limit >= self.buffered:
            if head == len(held):
                return b""
            if off:
                held[head] = held[head][off:]
            data = held[head] if len(held) - head == 1 else b"".join(held[head:] if head else held)
            if type(data) is not bytes:
                data = bytes(data)
            empty_list(held, KEEP_IDLE)
            self._head = self._off = 0
            self.buffered = 0
            return data
        if limit == 0:
            return b""
        parts = []
        need = limit
        while need > 0:
            chunk = held[head]
            avail = len(chunk) - off
            if avail <= need:
                parts.append(chunk[off:] if off else chunk)
                head += 1
                off = 0
                need -= avail
            else:
                parts.append(chunk[off:off + need])
                off += need
                need = 0
        self._head = head
        self._off = off
        self._compact()
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if type(data) is not bytes:
            data = bytes(data)
        self.buffered -= limit
        return data

    def read_chunk(self) -> bytes:
        """Take the oldest chunk as it is kept (one payload, whole, unless
        merged or partly read): b"" when nothing is buffered."""
        held = self._held
        head = self._head
        if head == len(held):
            return b""
        data = held[head]
        if self._off:
            data = data[self._off:]
            self._off = 0
        if type(data) is not bytes:
            data = bytes(data)
        self._head = head + 1
        self._compact()
        self.buffered -= len(data)
        return data

    def _compact(self) -> None:
        """Drop the chunks already read from the list."""
        held = self._held
        head = self._head
        if head == len(held):
            empty_list(held, KEEP_IDLE)
            self._head = 0
        elif head >= HELD and 2 * head >= len(held):
            del held[:head]
            self._head = 0

    def discard(self) -> None:
        """Drop the in-order bytes nobody will read."""
        self._held.clear()
        self._head = self._off = 0
        self.buffered = 0

    @property
    def chunks(self) -> int:
        """How many objects hold the buffered bytes."""
        return len(self._held) - self._head

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
