"""Congestion control behind a small pluggable interface.

The connection detects loss (duplicate ACKs, RTO) and decides what to
retransmit; a controller only decides how large the congestion window is.
Write your own by subclassing :class:`CongestionControl` and registering it in
:data:`ALGORITHMS`.
"""
from __future__ import annotations


class CongestionControl:
    """Base class.  ``cwnd`` and ``ssthresh`` are in bytes, and only the
    controller writes them: the connection reads ``cwnd`` and tells the
    controller what happened through the methods below.

    A new algorithm overrides the three hooks, ``on_ack``,
    ``on_fast_retransmit`` and ``on_rto``.  The other methods are the
    window arithmetic the loss-recovery RFCs fix whatever the algorithm
    (initial window, NewReno inflation and deflation, PRR, the end of
    recovery); a subclass may override them too.
    """

    name = "base"

    def __init__(self, mss: int, now: float):
        self.mss = mss
        #: RFC 6928 initial window of 10 segments.
        self.cwnd = 10 * mss
        self.ssthresh = 1 << 62
        #: smoothed RTT in seconds, kept up to date by the connection
        self.srtt: float | None = None
        #: True: the connection measures delivery rates (core/rate.py) and
        #: calls on_rate_sample on every ACK (BBR; it needs SACK)
        self.rate_samples = False
        # HyStart++ (RFC 9406): the RTT of this slow-start round and the last
        self._hs_acked = 0  # bytes acknowledged in slow start
        self._hs_round_end = 0  # _hs_acked at which this round ends
        self._hs_min = self._hs_last_min = 1e9
        self._hs_samples = 0
        self.hystart_exits = 0

    # ------------------------------------------------- slow start's exit

    def on_rtt(self, rtt: float) -> None:
        """An RTT sample.  HyStart++ (RFC 9406 section 4.2; Linux's CUBIC
        has HyStart on by default): in slow start, once a round has eight
        samples, a minimum RTT that rose by a clamped eighth of the last
        round's (4 to 16 ms) means a queue is building: slow start ends
        here (ssthresh = cwnd, as Linux's HyStart) instead of at the loss
        that overflowing the queue would cost."""
        if self.cwnd >= self.ssthresh or self.cwnd < 16 * self.mss:
            return
        if rtt < self._hs_min:
            self._hs_min = rtt
        self._hs_samples += 1
        last = self._hs_last_min
        if self._hs_samples >= 8 and last < 1e9:
            eta = min(max(last / 8, 0.004), 0.016)
            if self._hs_min >= last + eta:
                self.ssthresh = self.cwnd
                self.hystart_exits += 1

    def _slow_start_round(self, acked: int, flight: int) -> None:
        """Count slow-start rounds in bytes: one ends when what was in flight
        at its start has been acknowledged."""
        self._hs_acked += acked
        if self._hs_acked >= self._hs_round_end:
            self._hs_round_end = self._hs_acked + flight
            self._hs_last_min = self._hs_min
            self._hs_min = 1e9
            self._hs_samples = 0

    def _slow_start(self, acked: int, flight: int) -> int:
        """Slow start as Linux's ``tcp_slow_start``: the window grows by
        every byte an ACK acknowledges, up to ssthresh, and what is left
        over is returned for congestion avoidance.  RFC 5681 allows a
        segment an ACK and RFC 3465 two; Linux counts them all, because
        its receivers acknowledge what one GRO read brought at once (a
        stretch ACK), as aiotcp's acknowledge a receive batch: two segments
        an ACK would leave the window growing by a few segments a round
        trip instead of doubling.  Pacing (twice the window a round trip in
        slow start) spreads what a large ACK releases.  Only while the
        window is what limits the sender (Linux's ``tcp_is_cwnd_limited``
        in slow start: the window below twice what was in flight), so that
        an application that sends little does not grow a window it never
        fills."""
        self._slow_start_round(acked, flight)
        if self.cwnd >= 2 * flight:
            return 0
        grow = min(acked, self.ssthresh - self.cwnd)
        self.cwnd += grow
        return acked - grow

    # -------------------------------------------------------------- pacing

    def pacing_rate(self) -> float:
        """Bytes per second the sender releases segments at (0: unpaced, no
        RTT yet): Linux's rule for window-based controllers, cwnd / srtt
        times 2 in slow start (below half of ssthresh) and 1.2 after, so
        that a window leaves spread over the round trip, not as a burst."""
        srtt = self.srtt
        if srtt is None or srtt <= 0:
            return 0.0
        return (2.0 if self.cwnd < self.ssthresh // 2 else 1.2) * self.cwnd / srtt

    def on_rate_sample(self, rs, inflight: int, now: float) -> None:
        """An ACK's delivery-rate sample (``rs``, a core.rate.DeliveryRate
        after its sample()) with ``inflight`` bytes left in flight; only
        for controllers that set ``rate_samples``."""

    def info(self) -> dict:
        """What the controller adds to the TCP-info snapshot."""
        return {}

    # -------------------------------------------- the algorithm's hooks

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        """New data acknowledged outside recovery."""

    def on_fast_retransmit(self, flight: int, now: float) -> None:
        """Entering fast recovery: set ssthresh (on_recovery_start sets cwnd)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)

    # ------------------------------- what the recovery RFCs fix for all

    def set_mss(self, mss: int) -> None:
        """The MSS changed (the handshake settled it, the path's size moved):
        the window keeps its number of segments, so the initial window is
        10 of the new size (RFC 6928) and a window grown since is neither
        lost nor inflated in bytes."""
        if mss == self.mss:
            return
        self.cwnd = max(self.cwnd * mss // self.mss, mss)
        self.mss = mss

    def on_idle_restart(self) -> None:
        """RFC 5681 section 4.1: after an idle RTO the window restarts from
        at most the initial window."""
        self.cwnd = min(self.cwnd, 10 * self.mss)

    def on_recovery_start(self, flight: int, now: float, sack: bool) -> None:
        """Fast retransmit: the algorithm sets ssthresh, then cwnd is
        ssthresh (RFC 6675: no inflation with SACK) or ssthresh + 3 MSS
        (RFC 6582 step 2, NewReno's inflation by the three duplicates)."""
        self.on_fast_retransmit(flight, now)
        self.cwnd = self.ssthresh if sack else self.ssthresh + 3 * self.mss

    def on_dupack_in_recovery(self) -> None:
        """RFC 6582 step 4: each further duplicate ACK means a segment left
        the network; inflate by one MSS."""
        self.cwnd += self.mss

    def on_partial_ack(self, acked: int) -> None:
        """RFC 6582 step 5: deflate by what was acknowledged, add back one MSS."""
        self.cwnd = max(self.cwnd - acked + self.mss, self.mss)

    def on_prr(self, pipe: int, sndcnt: int) -> None:
        """RFC 6937: the proportional rate reduction allows sndcnt bytes on
        this ACK, applied as Linux does, as cwnd = pipe + sndcnt."""
        self.cwnd = max(pipe + max(sndcnt, 0), self.mss)

    def on_recovery_end(self, flight: int, sack: bool) -> None:
        """Recovery is over.  With SACK (RFC 6675 section 5, RFC 6937) cwnd
        is ssthresh; NewReno's full acknowledgment (RFC 6582 step 3 option 1)
        takes min(ssthresh, flight + MSS), flight being what is still out."""
        if sack:
            self.cwnd = max(self.ssthresh, self.mss)
        else:
            self.cwnd = max(min(self.ssthresh, flight + self.mss), self.mss)

    def on_rto(self, flight: int, now: float) -> None:
        """A retransmission timeout (RFC 5681 section 3.1, equation 4)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss


class NewReno(CongestionControl):
    """RFC 5681 congestion avoidance, and slow start as Linux's
    (:meth:`CongestionControl._slow_start`)."""

    name = "newreno"

    def __init__(self, mss: int, now: float):
        super().__init__(mss, now)
        self._bytes_acked = 0

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            acked = self._slow_start(acked, flight)
            if not acked:
                return
        self._bytes_acked += acked
        if self._bytes_acked >= self.cwnd:
            self._bytes_acked -= self.cwnd
            self.cwnd += self.mss


class Cubic(CongestionControl):
    """CUBIC (RFC 9438), Linux's default: after a loss the window follows
    W_cubic(t) = C (t - K)^3 + W_max, with a Reno-friendly floor (section
    4.3) and fast convergence (section 4.7).  Windows in segments internally;
    ``srtt`` is kept up to date by the connection."""

    name = "cubic"
    C = 0.4
    BETA = 0.7

    def __init__(self, mss: int, now: float):
        super().__init__(mss, now)
        self.w_max = 0.0
        self.k = 0.0
        self.epoch_start: float | None = None
        self.w_est = 0.0
        self.cwnd_prior = 0.0  # cwnd when ssthresh was last set, in segments

    def w_cubic(self, t: float) -> float:
        """RFC 9438 equation 1, in segments."""
        return self.C * (t - self.k) ** 3 + self.w_max

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            acked = self._slow_start(acked, flight)
            if not acked:
                return
        c, beta = self.C, self.BETA
        cwnd = self.cwnd / mss
        if self.epoch_start is None:
            self.epoch_start = now
            if cwnd < self.w_max:
                self.k = ((self.w_max - cwnd) / c) ** (1 / 3)  # equation 2
            else:
                self.k = 0.0
                self.w_max = cwnd
            self.w_est = cwnd
        t = now - self.epoch_start
        target = self.w_cubic(t + (self.srtt or 0.0))
        target = min(max(target, cwnd), 1.5 * cwnd)  # section 4.2
        segments = acked / mss
        # equation 4; alpha becomes Reno's 1 once W_est is back at the
        # window of the last reduction (section 4.3)
        alpha = 1.0 if self.w_est >= self.cwnd_prior else 3 * (1 - beta) / (1 + beta)
        self.w_est += alpha * segments / cwnd
        if self.w_est > target:
            cwnd = self.w_est  # Reno-friendly region
        else:
            cwnd += (target - cwnd) / cwnd * segments
        self.cwnd = max(int(cwnd * mss), mss)

    def _reduce(self) -> None:
        cwnd = self.cwnd_prior = self.cwnd / self.mss
        # fast convergence: release bandwidth when the plateau moved down
        self.w_max = cwnd * (1 + self.BETA) / 2 if cwnd < self.w_max else cwnd
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.mss)
        self.epoch_start = None

    def on_fast_retransmit(self, flight: int, now: float) -> None:
        self._reduce()

    def on_rto(self, flight: int, now: float) -> None:
        self._reduce()
        self.cwnd = self.mss


ALGORITHMS = {"newreno": NewReno, "cubic": Cubic}


def _algorithms() -> dict:
    """ALGORITHMS with BBR (core/bbr.py, which subclasses the base here)."""
    if "bbr" not in ALGORITHMS:
        from .bbr import Bbr
        ALGORITHMS["bbr"] = Bbr
    return ALGORITHMS


def create(name: str, mss: int, now: float) -> CongestionControl:
    try:
        return _algorithms()[name](mss, now)
    except KeyError:
        raise ValueError(f"unknown congestion control {name!r}; have {sorted(ALGORITHMS)}") from None
