"""Congestion control behind a small pluggable interface.

The connection detects loss (duplicate ACKs, RTO) and decides what to
retransmit; a controller only decides how large the congestion window is.
Write your own by subclassing :class:`CongestionControl` and registering it in
:data:`ALGORITHMS`.
"""
from __future__ import annotations


class CongestionControl:
    """Base class.  ``cwnd`` and ``ssthresh`` are in bytes."""

    name = "base"

    def __init__(self, mss: int, now: float):
        self.mss = mss
        #: RFC 6928 initial window of 10 segments.
        self.cwnd = 10 * mss
        self.ssthresh = 1 << 62

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        """New data acknowledged outside recovery."""

    def on_fast_retransmit(self, flight: int, now: float) -> None:
        """Entering fast recovery: set ssthresh (the connection inflates cwnd)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)

    def on_rto(self, flight: int, now: float) -> None:
        """A retransmission timeout (RFC 5681 section 3.1, equation 4)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss


class NewReno(CongestionControl):
    """RFC 5681 slow start and congestion avoidance with appropriate byte
    counting (RFC 3465, L = 2 segments)."""

    name = "newreno"

    def __init__(self, mss: int, now: float):
        super().__init__(mss, now)
        self._bytes_acked = 0

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * self.mss)
        else:
            self._bytes_acked += acked
            if self._bytes_acked >= self.cwnd:
                self._bytes_acked -= self.cwnd
                self.cwnd += self.mss


ALGORITHMS = {"newreno": NewReno}


def create(name: str, mss: int, now: float) -> CongestionControl:
    try:
        return ALGORITHMS[name](mss, now)
    except KeyError:
        raise ValueError(f"unknown congestion control {name!r}; have {sorted(ALGORITHMS)}") from None
