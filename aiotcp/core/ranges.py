"""Sets of sequence-number ranges, modulo 2**32 (RFC 9293 section 3.4).

A :class:`RangeSet` holds sorted, disjoint, non-adjacent half-open ranges
``[start, end)`` of sequence numbers, all within 2**31 above a ``base``
that only moves forward.  It serves the two places TCP keeps such ranges:

- the SACK scoreboard (RFC 6675 section 3): what the peer's SACK blocks
  said it holds above the cumulative ACK (the base);
- the out-of-order data a receiver holds above ``rcv_nxt`` (the base),
  from which the SACK blocks it sends are taken (RFC 2018 section 4).

Everything is in sequence numbers; offsets from the base order them, so a
set works across the wrap of the sequence space.
"""
from __future__ import annotations

MASK = (1 << 32) - 1
HALF = 1 << 31


def seq_offset(seq: int, base: int) -> int:
    """seq - base in [-2**31, 2**31): how far ``seq`` lies above ``base``."""
    d = (seq - base) & MASK
    return d - MASK - 1 if d >= HALF else d  # MASK + 1 = 2**32, kept in C


#: one empty list that is never changed, shared by every container of the
#: core that holds nothing (a RangeSet's bounds, a receive buffer's
#: out-of-order blocks): most of a connection's are empty most of the time,
#: and then hold no list of their own; the first item makes one
NONE_HELD: list = []


class RangeSet:
    def __init__(self, base: int = 0):
        self.base = base & MASK
        #: the ranges as offsets from base, [lo, hi) with lo < hi, sorted and
        #: apart by at least one byte (NONE_HELD while empty)
        self._lo: list = NONE_HELD
        self._hi: list = NONE_HELD
        #: bytes covered
        self.total = 0

    def __len__(self) -> int:
        return len(self._lo)

    def __bool__(self) -> bool:
        return len(self._lo) > 0

    def __repr__(self):
        return f"RangeSet(base={self.base}, {self.ranges()})"

    def ranges(self) -> list:
        """The ranges as (start, end) sequence numbers, lowest first."""
        base = self.base
        return [((base + lo) & MASK, (base + hi) & MASK) for lo, hi in zip(self._lo, self._hi)]

    def top(self, count: int) -> list:
        """The ``count`` highest ranges at most, as (start, end), highest
        first: the SACK blocks an ACK repeats, without building the list of
        every range (a window with many holes holds hundreds)."""
        base = self.base
        los, his = self._lo, self._hi
        i = len(los) - 1
        stop = max(i - count, -1)
        blocks = []
        while i > stop:
            blocks.append(((base + los[i]) & MASK, (base + his[i]) & MASK))
            i -= 1
        return blocks

    def clear(self, base: int) -> None:
        """Empty, from ``base`` on."""
        self.base = base & MASK
        self._lo = self._hi = NONE_HELD
        self.total = 0

    def _index(self, offset: int) -> int:
        """The first range whose end is at or above ``offset`` (binary search)."""
        his = self._hi
        lo, hi = 0, len(his)
        while lo < hi:
            mid = (lo + hi) // 2
            if his[mid] < offset:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def add(self, start: int, end: int) -> int:
        """Add [start, end); the part below the base is left out.  Returns
        how many bytes were not covered before."""
        lo = max(seq_offset(start, self.base), 0)
        hi = seq_offset(end, self.base)
        if hi <= lo:
            return 0
        los, his = self._lo, self._hi
        if los is NONE_HELD:
            los = self._lo = []
            his = self._hi = []
        i = self._index(lo)  # ranges before i end below lo: untouched
        j = i
        covered = 0
        while j < len(los) and los[j] <= hi:  # overlapping or adjacent: merged
            covered += his[j] - los[j]
            lo = min(lo, los[j])
            hi = max(hi, his[j])
            j += 1
        del los[i:j]
        del his[i:j]
        los.insert(i, lo)
        his.insert(i, hi)
        added = hi - lo - covered
        self.total += added
        return added

    def advance(self, base: int) -> None:
        """Move the base forward to ``base``: what lies below it goes.  An
        empty set takes any base."""
        if not self._lo:
            self.base = base & MASK
            return
        shift = seq_offset(base, self.base)
        if shift <= 0:
            return
        self.base = base & MASK
        los, his = self._lo, self._hi
        dropped = 0
        n = 0
        while n < len(los) and his[n] <= shift:
            dropped += his[n] - los[n]
            n += 1
        del los[:n]
        del his[:n]
        if not los:
            self._lo = self._hi = NONE_HELD
        elif los[0] < shift:
            dropped += shift - los[0]
            los[0] = shift
        for k in range(len(los)):
            los[k] -= shift
            his[k] -= shift
        self.total -= dropped

    def containing(self, seq: int):
        """The (start, end) range holding ``seq``, or None."""
        offset = seq_offset(seq, self.base)
        i = self._index(offset + 1)
        if i < len(self._lo) and self._lo[i] <= offset < self._hi[i]:
            base = self.base
            return ((base + self._lo[i]) & MASK, (base + self._hi[i]) & MASK)
        return None

    def first_end(self) -> int:
        """The end of the lowest range (the set must not be empty)."""
        return (self.base + self._hi[0]) & MASK
