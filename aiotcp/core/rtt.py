"""Round-trip time estimation and the retransmission timeout (RFC 6298).

One estimator per connection.  The connection feeds it samples (from the
timed segment, RFC 6298 section 3 with Karn's rule, or from every ACK's
timestamp echo, RFC 7323 section 4) and tells it about timeouts; it keeps
SRTT, RTTVAR, the RTO and the lowest sample (what RACK's reordering window
and CUBIC read).  Times in seconds.
"""
from __future__ import annotations

NO_SAMPLE = -1.0


class RttEstimator:
    """RFC 6298 section 2, with the RTO bounded by ``rto_min`` (Linux: 200
    ms, where the RFC's (2.4) says 1 s) and ``rto_max`` ((2.5), 60 s), and
    the clock granularity G of (2.3)."""

    def __init__(self, rto_initial: float, rto_min: float, rto_max: float, granularity: float):
        self.rto_initial = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity
        self.rto = rto_initial  # (2.1)
        self.smoothed = NO_SAMPLE  # SRTT
        self.variation = 0.0  # RTTVAR
        self.lowest = NO_SAMPLE  # the lowest sample seen

    @property
    def srtt(self) -> float | None:
        """SRTT, None before the first sample."""
        return None if self.smoothed == NO_SAMPLE else self.smoothed

    @property
    def min_rtt(self) -> float | None:
        """The lowest sample, None before the first."""
        return None if self.lowest == NO_SAMPLE else self.lowest

    @property
    def rttvar(self) -> float:
        return self.variation

    def configure(self, rto_initial: float, rto_min: float, rto_max: float, granularity: float) -> None:
        """New bounds (the connection's configuration changed); the RTO keeps its value."""
        self.rto_initial = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity

    def bounded(self, value: float) -> float:
        """``value`` within [rto_min, rto_max] (for the RTO and the persist timer)."""
        return min(max(value, self.rto_min), self.rto_max)

    def sample(self, rtt: float) -> None:
        """A measured round trip: (2.2) for the first, (2.3) after."""
        rtt = max(rtt, 0.0)
        if self.lowest < 0 or rtt < self.lowest:
            self.lowest = rtt
        if self.smoothed < 0:
            self.smoothed = rtt
            self.variation = rtt / 2
        else:
            self.variation = 0.75 * self.variation + 0.25 * abs(self.smoothed - rtt)
            self.smoothed = 0.875 * self.smoothed + 0.125 * rtt
        self.rto = self.bounded(self.smoothed + max(self.granularity, 4 * self.variation))

    def set(self, srtt: float, min_rtt: float | None = None) -> None:
        """Take ``srtt`` (and ``min_rtt``, default the same) as if measured
        so far, with no variation: for tests and for a path already known."""
        self.smoothed = srtt
        self.lowest = srtt if min_rtt is None else min_rtt
        self.variation = 0.0

    def on_rto(self) -> float:
        """The retransmission timer expired: back off, (5.5).  Returns the new RTO."""
        self.rto = min(self.rto * 2, self.rto_max)
        return self.rto

    def base(self) -> float:
        """The RTO the estimate gives, without the backoff of (5.5) (the
        initial one without a sample)."""
        if self.smoothed == NO_SAMPLE:
            return self.rto_initial
        return self.bounded(self.smoothed + max(self.granularity, 4 * self.variation))

    def unback(self) -> None:
        """Undo the backoff of (5.5): the peer was not lost after all."""
        self.rto = self.base()

    def restart(self) -> None:
        """(5.7): the SYN or SYN-ACK was retransmitted and the handshake
        gave no sample; data starts from the initial RTO again."""
        self.rto = self.rto_initial
