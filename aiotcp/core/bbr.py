"""BBR congestion control, version 1 (draft-cardwell-iccrg-bbr-congestion-control-00,
as Linux's tcp_bbr.c implements it).

BBR models the path instead of reacting to loss: the bottleneck bandwidth
(``btl_bw``, a windowed maximum of delivery-rate samples over ten round
trips) and the round-trip propagation time (``min_rtt``, a windowed
minimum over ten seconds).  It paces at ``pacing_gain`` times the
bandwidth and bounds what is in flight by ``cwnd_gain`` times the
bandwidth-delay product.  The state machine:

- **Startup**: gain 2/ln 2 (the rate doubles each round trip) until the
  bandwidth stops growing by 25 % for three rounds (the pipe is full);
- **Drain**: the inverse gain, until what is in flight is down to one BDP;
- **ProbeBW**: an eight-phase cycle of pacing gains, one ``min_rtt``
  each: 1.25 (probe for more), 0.75 (drain what that queued), six of 1;
- **ProbeRTT**: when ``min_rtt`` has not been seen again for ten seconds,
  four segments in flight for 200 ms and a round trip, to measure it.

Why version 1: it is the BBR this kernel runs (Linux's ``bbr`` module is
v1), so the comparison in bench/lossy.py is like for like; its draft is
complete and stable; and its response to loss is what lossy paths need.
BBRv3 (draft-ietf-ccwg-bbr) lowers its model when loss exceeds 2 % in a
round, which on a path with 5 % random loss (Wi-Fi, mobile) caps it far
below the bandwidth, exactly where aiotcp's users need it.  v1's loss
response, also Linux's: in the first round of a recovery, packet
conservation (no more in flight than was delivered); after it, the usual
bound; at the end, the window from before; after a timeout, one segment,
growing back by what is delivered.

The controller takes rate samples (core/rate.py) from the connection on
every ACK (:meth:`on_rate_sample`); the loss-recovery hooks of
:class:`~aiotcp.core.congestion.CongestionControl` carry the loss
response.  The build compiles it with the core, as plain Python (no .pxd).
"""
from __future__ import annotations

import math
import random

from .congestion import CongestionControl

STARTUP, DRAIN, PROBE_BW, PROBE_RTT = "startup", "drain", "probe_bw", "probe_rtt"

#: 2/ln 2: the smallest gain that doubles the delivery rate each round
HIGH_GAIN = 2 / math.log(2)
DRAIN_GAIN = 1 / HIGH_GAIN
CWND_GAIN = 2.0
#: ProbeBW's cycle of pacing gains, one phase per min_rtt
PACING_GAINS = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
#: the bandwidth filter's window, in round trips
BW_ROUNDS = 10
#: the min_rtt filter's window, seconds
MIN_RTT_WINDOW = 10.0
PROBE_RTT_TIME = 0.2
MIN_CWND_SEGMENTS = 4
#: Startup ends when three rounds in a row grow the bandwidth by less than this
FULL_BW_GROWTH = 1.25
FULL_BW_ROUNDS = 3
#: pace this much below the estimate (Linux's bbr_pacing_margin_percent), so
#: that the bottleneck's queue drains rather than builds
PACING_MARGIN = 0.01


class MaxFilter:
    """A windowed maximum over round trips (Kathleen Nichols' algorithm, as
    Linux's lib/win_minmax.c): the best, second and third best samples of
    the window, each with the round it came in."""

    def __init__(self, window: int):
        self.window = window
        self.samples = [(0, 0.0)] * 3  # (round, value), best first

    @property
    def best(self) -> float:
        return self.samples[0][1]

    def reset(self, round_: int, value: float) -> None:
        self.samples = [(round_, value)] * 3

    def update(self, round_: int, value: float) -> float:
        s = self.samples
        if value >= s[0][1] or round_ - s[2][0] > self.window:
            self.reset(round_, value)
            return value
        if value >= s[1][1]:
            s[1] = s[2] = (round_, value)
        elif value >= s[2][1]:
            s[2] = (round_, value)
        # the window passed the best: the next ones move up
        if round_ - s[0][0] > self.window:
            s[0], s[1], s[2] = s[1], s[2], (round_, value)
            if round_ - s[0][0] > self.window:
                s[0], s[1] = s[1], s[2]
        elif s[1][0] == s[0][0] and round_ - s[1][0] > self.window / 4:
            s[1] = s[2] = (round_, value)
        elif s[2][0] == s[1][0] and round_ - s[2][0] > self.window / 2:
            s[2] = (round_, value)
        return s[0][1]


class Bbr(CongestionControl):
    """BBRv1.  ``state`` is one of STARTUP, DRAIN, PROBE_BW, PROBE_RTT;
    ``btl_bw`` (bytes/s) and ``min_rtt`` (seconds, inf before a sample) the
    model; ``pacing_gain`` and ``cwnd_gain`` the gains in force."""

    name = "bbr"

    def __init__(self, mss: int, now: float):
        super().__init__(mss, now)
        self.rate_samples = True
        self.state = STARTUP
        self.bw = MaxFilter(BW_ROUNDS)
        self.min_rtt = math.inf
        self.min_rtt_stamp = now
        self.round_count = 0
        self.next_round_delivered = 0
        self.round_start = False
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.filled_pipe = False
        self.pacing_gain = HIGH_GAIN
        self.cwnd_gain = HIGH_GAIN
        self.cycle_index = 0
        self.cycle_stamp = now
        self.probe_rtt_done = -1.0  # when ProbeRTT may end (-1: not yet timed)
        self.probe_rtt_round_done = False
        self.prior_cwnd = 0
        self.in_recovery = False
        self.conservation_round = -1  # the round packet conservation lasts to (-1: none)
        self.conservation_cwnd = 0  # in flight plus delivered, from the PRR hook
        self.rate = 0.0  # pacing rate, bytes/s (0: none yet)
        self.rng = random.Random()  # the ProbeBW phase to start in (tests seed it)
        self.state_changes = 0

    # ------------------------------------------------------------ model

    @property
    def btl_bw(self) -> float:
        return self.bw.best

    def bdp(self, gain: float) -> int:
        """gain x the bandwidth-delay product in bytes (the initial window
        before there is a model)."""
        if self.min_rtt == math.inf or self.btl_bw <= 0:
            return 10 * self.mss
        return int(gain * self.btl_bw * self.min_rtt)

    def on_rate_sample(self, rs, inflight: int, now: float) -> None:
        """Everything BBR does on an ACK (the draft's BBRUpdateOnACK): the
        round count, the model, the state machine, the pacing rate and the
        window.  ``rs`` is the connection's DeliveryRate after sample();
        ``inflight`` the bytes in flight after the ACK."""
        acked = rs.last_acked
        if acked <= 0:
            return
        # the round trip: the delivery of a segment sent after the last round began
        self.round_start = False
        if rs.last_prior_delivered >= self.next_round_delivered:
            self.next_round_delivered = rs.delivered
            self.round_count += 1
            self.round_start = True
        if rs.rate > 0 and (rs.rate >= self.btl_bw or not rs.is_app_limited):
            self.bw.update(self.round_count, rs.rate)
        if self.state == PROBE_BW:
            self._check_cycle_phase(rs, inflight, now)
        self._check_full_pipe(rs)
        self._check_drain(inflight, now)
        self._update_min_rtt(rs, inflight, now)
        self._set_pacing_rate(self.pacing_gain)
        self._set_cwnd(acked, inflight, rs.last_lost)

    def _enter(self, state: str, now: float) -> None:
        self.state = state
        self.state_changes += 1
        if state == STARTUP:
            self.pacing_gain = self.cwnd_gain = HIGH_GAIN
        elif state == DRAIN:
            self.pacing_gain, self.cwnd_gain = DRAIN_GAIN, HIGH_GAIN
        elif state == PROBE_BW:
            self.cwnd_gain = CWND_GAIN
            # any phase but the draining one (which follows probing)
            self.cycle_index = (len(PACING_GAINS) - 1 - self.rng.randrange(len(PACING_GAINS) - 1)) % len(PACING_GAINS)
            self._advance_cycle(now)
        elif state == PROBE_RTT:
            self.pacing_gain = self.cwnd_gain = 1.0

    def _check_cycle_phase(self, rs, inflight: int, now: float) -> None:
        gain = self.pacing_gain
        full_length = now - self.cycle_stamp > self.min_rtt
        if gain == 1.0:
            done = full_length
        elif gain > 1.0:  # probing: until the queue it makes shows, or loss
            done = full_length and (rs.last_lost > 0 or inflight >= self.bdp(gain))
        else:  # draining: early, once in flight is down to one BDP
            done = full_length or inflight <= self.bdp(1.0)
        if done:
            self._advance_cycle(now)

    def _advance_cycle(self, now: float) -> None:
        self.cycle_index = (self.cycle_index + 1) % len(PACING_GAINS)
        self.cycle_stamp = now
        self.pacing_gain = PACING_GAINS[self.cycle_index]

    def _check_full_pipe(self, rs) -> None:
        if self.filled_pipe or not self.round_start or rs.is_app_limited:
            return
        if self.btl_bw >= self.full_bw * FULL_BW_GROWTH:
            self.full_bw = self.btl_bw
            self.full_bw_count = 0
            return
        self.full_bw_count += 1
        if self.full_bw_count >= FULL_BW_ROUNDS:
            self.filled_pipe = True

    def _check_drain(self, inflight: int, now: float) -> None:
        if self.state == STARTUP and self.filled_pipe:
            self._enter(DRAIN, now)
        if self.state == DRAIN and inflight <= self.bdp(1.0):
            self._enter(PROBE_BW, now)

    def _update_min_rtt(self, rs, inflight: int, now: float) -> None:
        expired = now > self.min_rtt_stamp + MIN_RTT_WINDOW
        if rs.rtt >= 0 and (rs.rtt <= self.min_rtt or expired):
            self.min_rtt = rs.rtt
            self.min_rtt_stamp = now
        if expired and self.state != PROBE_RTT:
            self._save_cwnd()
            self._enter(PROBE_RTT, now)
            self.probe_rtt_done = -1.0
        if self.state != PROBE_RTT:
            return
        if self.probe_rtt_done < 0 and inflight <= MIN_CWND_SEGMENTS * self.mss:
            self.probe_rtt_done = now + PROBE_RTT_TIME
            self.probe_rtt_round_done = False
            self.next_round_delivered = rs.delivered
        elif self.probe_rtt_done >= 0:
            if self.round_start:
                self.probe_rtt_round_done = True
            if self.probe_rtt_round_done and now > self.probe_rtt_done:
                self.min_rtt_stamp = now
                self.cwnd = max(self.cwnd, self.prior_cwnd)
                self._enter(PROBE_BW if self.filled_pipe else STARTUP, now)

    # ---------------------------------------------------------- control

    def _set_pacing_rate(self, gain: float) -> None:
        rate = gain * self.btl_bw * (1 - PACING_MARGIN)
        if rate > 0 and (self.filled_pipe or rate > self.rate):
            self.rate = rate

    def pacing_rate(self) -> float:
        """Bytes per second; before the first bandwidth sample, the high
        gain over the initial window and the smoothed RTT (0: no RTT yet,
        the initial window goes unpaced)."""
        if self.rate > 0:
            return self.rate
        if self.srtt:
            return HIGH_GAIN * self.cwnd / self.srtt
        return 0.0

    def _set_cwnd(self, acked: int, inflight: int, lost: int) -> None:
        mss = self.mss
        floor = MIN_CWND_SEGMENTS * mss
        cwnd = self.cwnd
        if lost > 0 and self.in_recovery:
            cwnd = max(cwnd - lost, mss)
        if self.conservation_round >= 0:
            if self.round_count <= self.conservation_round:
                self.cwnd = max(cwnd, self.conservation_cwnd, inflight + acked, floor)
                return
            self.conservation_round = -1
        # the BDP times the gain, plus room for the segments a timer tick
        # and delayed ACKs hold back (Linux's quantization budget)
        target = self.bdp(self.cwnd_gain) + 3 * mss
        if self.filled_pipe:
            cwnd = min(cwnd + acked, target)
        elif cwnd < target or cwnd < 10 * mss:
            cwnd += acked
        cwnd = max(cwnd, floor)
        if self.state == PROBE_RTT:
            cwnd = min(cwnd, floor)
        self.cwnd = cwnd

    def _save_cwnd(self) -> None:
        if not self.in_recovery and self.state != PROBE_RTT:
            self.prior_cwnd = self.cwnd
        else:
            self.prior_cwnd = max(self.prior_cwnd, self.cwnd)

    # ------------------------------------------------- the loss response

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        """Nothing: the window follows the rate samples."""

    def on_rtt(self, rtt: float) -> None:
        """Nothing: Startup has its own exit (the full pipe), not HyStart."""

    def on_fast_retransmit(self, flight: int, now: float) -> None:
        """No ssthresh: BBR's model does not halve on loss."""

    def on_recovery_start(self, flight: int, now: float, sack: bool) -> None:
        """Packet conservation for a round trip: no more in flight than was
        delivered (the PRR hook reports it)."""
        self._save_cwnd()
        self.in_recovery = True
        self.conservation_round = self.round_count + 1
        self.conservation_cwnd = 0

    def on_prr(self, pipe: int, sndcnt: int) -> None:
        # with no ssthresh, PRR's slow-start reduction bound gives what was
        # delivered plus one segment over the pipe: conservation
        self.conservation_cwnd = pipe + max(sndcnt, 0)
        if self.conservation_round >= 0:
            self.cwnd = max(self.cwnd, self.conservation_cwnd, MIN_CWND_SEGMENTS * self.mss)

    def on_dupack_in_recovery(self) -> None:
        """NewReno's inflation: BBR needs SACK and never sees it."""

    def on_partial_ack(self, acked: int) -> None:
        """NewReno's deflation: likewise."""

    def on_recovery_end(self, flight: int, sack: bool) -> None:
        self.in_recovery = False
        self.conservation_round = -1
        self.cwnd = max(self.cwnd, self.prior_cwnd)

    def on_rto(self, flight: int, now: float) -> None:
        """Everything outstanding is lost: one segment, growing back by what
        is delivered (the model stands), and the full-pipe check anew."""
        self._save_cwnd()
        self.in_recovery = False
        self.conservation_round = -1
        self.cwnd = self.mss
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.round_start = True

    def on_idle_restart(self) -> None:
        """After idle BBR keeps its window and paces at the model's rate."""

    def info(self) -> dict:
        """The model, as ``ss -ti`` shows Linux's (bbr:(bw,mrtt,pacing_gain,cwnd_gain))."""
        return {"bbr_state": self.state, "bbr_bw": self.btl_bw,
                "bbr_min_rtt": None if self.min_rtt == math.inf else self.min_rtt,
                "bbr_pacing_gain": self.pacing_gain, "bbr_cwnd_gain": self.cwnd_gain,
                "bbr_round": self.round_count, "bbr_filled_pipe": self.filled_pipe}
