"""BBR (core/bbr.py), delivery-rate estimation (core/rate.py) and pacing.

The state machine is driven with synthetic rate samples in virtual time;
the rate unit with RACK's own records; pacing and whole transfers run
between two sans-I/O endpoints in virtual time, and through the relay on
real sockets on both loops."""
from __future__ import annotations

import hashlib
import math
import random
from types import SimpleNamespace

import pytest

from aiotcp.core.bbr import (CWND_GAIN, DRAIN, DRAIN_GAIN, HIGH_GAIN, MIN_CWND_SEGMENTS, PACING_GAINS, PACING_MARGIN,
                             PROBE_BW, PROBE_RTT, STARTUP, Bbr, MaxFilter)
from aiotcp.core.config import Config
from aiotcp.core.rack import Rack
from aiotcp.core.rate import DeliveryRate
from aiotcp.tools.relay import Impairment

from relayed import digest_through_relay

MSS = 1000
MiB = 1 << 20


class Path:
    """Feeds a Bbr the rate samples of a path of bandwidth ``bw`` (bytes/s)
    and round trip ``rtt``, one ACK per segment, in virtual time."""

    def __init__(self, bbr: Bbr, bw: float, rtt: float):
        self.bbr, self.bw, self.rtt = bbr, bw, rtt
        self.now = 0.0
        self.delivered = 0
        self.round_delivered = 0  # C.delivered when this round's segments were sent

    def round(self, inflight: int | None = None, lost: int = 0, app_limited: bool = False, rtt: float = None):
        """One round trip: a window's worth of ACKs (at most the bandwidth
        allows in one rtt), each a sample of the path's bandwidth."""
        bbr = self.bbr
        sent_at = self.round_delivered
        self.round_delivered = self.delivered
        acks = max(1, min(bbr.cwnd, int(self.bw * self.rtt)) // MSS)
        for i in range(acks):
            self.now += self.rtt / acks
            self.delivered += MSS
            # the segment acknowledged was sent when the ACK i of the round
            # before came back (ACK clocking)
            rs = SimpleNamespace(last_acked=MSS, last_prior_delivered=sent_at + (i + 1) * MSS,
                                 delivered=self.delivered,
                                 rate=self.bw if not app_limited else self.bw / 4, is_app_limited=app_limited,
                                 rtt=self.rtt if rtt is None else rtt, last_lost=lost if i == 0 else 0)
            bbr.on_rate_sample(rs, bbr.cwnd if inflight is None else inflight, self.now)


def test_the_bandwidth_filter_is_a_windowed_maximum():
    f = MaxFilter(10)
    for r, v in enumerate([5, 9, 3, 4, 4, 2]):
        f.update(r, v)
    assert f.best == 9
    for r in range(6, 12):
        f.update(r, 1)
    assert f.best == 9  # round 1's sample is still in the window (10 rounds)
    f.update(12, 1)
    assert f.best < 9  # ... and has left it
    f.update(13, 20)
    assert f.best == 20


def test_startup_fills_the_pipe_drains_then_cycles_probe_bw():
    bbr = Bbr(MSS, 0.0)
    bbr.rng = random.Random(1)
    assert bbr.state == STARTUP and bbr.pacing_gain == HIGH_GAIN and bbr.cwnd_gain == HIGH_GAIN
    path = Path(bbr, bw=1_000_000, rtt=0.05)  # a BDP of 50 segments
    rounds = 0
    while bbr.state == STARTUP:
        path.round(inflight=0)
        rounds += 1
        assert rounds < 30
    # three rounds without 25 % growth, then Drain, which ends at once here
    # (nothing in flight), in ProbeBW
    assert bbr.filled_pipe and bbr.state == PROBE_BW
    assert bbr.btl_bw == 1_000_000 and bbr.min_rtt == 0.05
    assert bbr.cwnd_gain == CWND_GAIN
    assert bbr.pacing_rate() == pytest.approx(bbr.pacing_gain * 1_000_000 * (1 - PACING_MARGIN))
    gains = []
    for _ in range(16):
        path.round(inflight=bbr.bdp(bbr.pacing_gain))  # what is paced fills the path
        gains.append(bbr.pacing_gain)
    assert set(gains) == set(PACING_GAINS)
    i = gains.index(1.25)
    assert gains[i + 1] == 0.75  # probing is followed by draining what it queued
    # the window: twice the BDP plus the quantization budget
    assert bbr.cwnd == 2 * 50_000 + 3 * MSS


def test_drain_waits_until_in_flight_is_one_bdp():
    bbr = Bbr(MSS, 0.0)
    path = Path(bbr, bw=1_000_000, rtt=0.05)
    while not bbr.filled_pipe:
        path.round(inflight=10 * 50_000)  # Startup left a queue of nine BDPs
    assert bbr.state == DRAIN and bbr.pacing_gain == DRAIN_GAIN
    path.round(inflight=2 * 50_000)
    assert bbr.state == DRAIN
    path.round(inflight=50_000)
    assert bbr.state == PROBE_BW


def test_probe_rtt_after_ten_seconds_without_a_lower_rtt():
    bbr = Bbr(MSS, 0.0)
    path = Path(bbr, bw=1_000_000, rtt=0.05)
    while bbr.state != PROBE_BW:
        path.round(inflight=0)
    before = bbr.cwnd
    seen = path.now
    while bbr.state != PROBE_RTT:
        path.round(inflight=bbr.bdp(bbr.pacing_gain), rtt=0.06)  # a queue: never below 50 ms again
        assert path.now < 12
    assert path.now - seen >= 9.0  # ten seconds after the last 50 ms sample
    assert bbr.state == PROBE_RTT and bbr.pacing_gain == 1.0
    assert bbr.cwnd <= MIN_CWND_SEGMENTS * MSS and bbr.prior_cwnd >= before
    saved = bbr.prior_cwnd
    start = path.now
    while bbr.state == PROBE_RTT:
        path.round(inflight=MIN_CWND_SEGMENTS * MSS, rtt=0.05)
        assert path.now - start < 1.0
    assert path.now - start >= 0.2  # 200 ms and a round trip at four segments
    assert bbr.state == PROBE_BW and bbr.cwnd >= saved  # the window from before ProbeRTT
    assert bbr.min_rtt == 0.05


def test_app_limited_samples_never_lower_the_bandwidth():
    bbr = Bbr(MSS, 0.0)
    path = Path(bbr, bw=1_000_000, rtt=0.05)
    while bbr.state != PROBE_BW:
        path.round(inflight=0)
    for _ in range(30):
        path.round(inflight=0, app_limited=True)  # a quarter of the rate, app-limited
    assert bbr.btl_bw == 1_000_000


def test_the_loss_response_conserves_then_restores():
    bbr = Bbr(MSS, 0.0)
    path = Path(bbr, bw=1_000_000, rtt=0.05)
    while bbr.state != PROBE_BW:
        path.round(inflight=0)
    full = bbr.cwnd
    bbr.on_recovery_start(full, path.now, True)
    bbr.on_prr(20_000, 1_000)  # pipe after the loss, and what PRR lets go
    assert bbr.conservation_round == bbr.round_count + 1
    path.round(inflight=21_000, lost=5 * MSS)
    assert bbr.cwnd >= 21_000  # at least in flight plus delivered: conservation
    path.round(inflight=21_000)
    path.round(inflight=21_000)
    assert bbr.conservation_round == -1  # one round only
    bbr.on_recovery_end(21_000, True)
    assert bbr.cwnd >= full and bbr.btl_bw == 1_000_000  # the model never halved
    bbr.on_rto(full, path.now)
    assert bbr.cwnd == MSS
    for _ in range(3):
        path.round(inflight=0)
    assert bbr.cwnd > 10 * MSS  # grows back by what is delivered, doubling a round


def test_the_delivery_rate_of_a_flight_is_bytes_over_the_longer_interval():
    """Ten 1000-byte segments sent 1 ms apart, the path 50 ms long, each ACK
    releasing a new segment: the first flight's samples are the window over
    the round trip, the ACK-clocked ones 1000 bytes a millisecond."""
    rack, rate = Rack(), DeliveryRate()
    rack.rate = rate
    for i in range(10):
        rack.on_transmit(i * 1000, (i + 1) * 1000, i * 1000, i * 0.001)
    samples = []
    for i in range(30):
        now = 0.05 + i * 0.001
        rack.on_ack((i + 1) * 1000, [], (i + 10) * 1000, 0, 0, -1.0, now)
        assert rate.sample(-1.0, now) and rate.last_acked == 1000
        samples.append(rate.rate)
        rack.on_transmit((i + 10) * 1000, (i + 11) * 1000, (i + 10) * 1000, now)
    assert samples[0] == pytest.approx(1000 / 0.05)  # one segment over one round trip
    assert samples[9] == pytest.approx(10_000 / 0.059)  # the first flight: the window over ~the round trip
    assert samples[-1] == pytest.approx(1000 / 0.001, rel=0.01)  # ACK-clocked: the path's 1 MB/s
    assert rate.delivered == 30_000
    assert rate.rtt == pytest.approx(0.010)  # each ACK-clocked segment is acknowledged 10 ACKs later


def test_a_sample_shorter_than_min_rtt_is_refused_and_app_limited_is_flagged():
    rack, rate = Rack(), DeliveryRate()
    rack.rate = rate
    rack.on_transmit(0, 1000, 0, 0.04)
    rack.on_ack(1000, [], 1000, 0, 0, -1.0, 0.05)
    assert rate.sample(-1.0, 0.05) and rate.rate == pytest.approx(1000 / 0.01)
    rack.on_transmit(1000, 2000, 1000, 0.05)
    rack.on_transmit(2000, 3000, 2000, 0.05)
    rack.on_ack(3000, [], 3000, 0, 0, -1.0, 0.0505)  # compressed ACKs: 2000 bytes in 0.5 ms
    assert not rate.sample(0.05, 0.0505) and rate.rate == 0  # a 10 ms interval, below the 50 ms floor
    assert rate.last_acked == 2000  # ... though the controller still hears what was delivered
    rate.mark_app_limited(0)  # nothing to send
    rack.on_transmit(3000, 4000, 3000, 0.06)
    rack.on_ack(4000, [], 4000, 0, 0, -1.0, 0.12)
    assert rate.sample(0.05, 0.12) and rate.is_app_limited
    rack.on_transmit(4000, 5000, 4000, 0.13)  # sent after the app-limited stretch was delivered
    rack.on_ack(5000, [], 5000, 0, 0, -1.0, 0.19)
    assert rate.sample(0.05, 0.19) and not rate.is_app_limited


def test_the_reported_rate_is_the_last_valid_sample_as_linux_keeps_it():
    """tcp_info's delivery_rate (Linux's rate_delivered / rate_interval_us):
    an ACK without a sample keeps it, a lower application-limited sample
    does not replace it, a lower sample the network limited does."""
    rack, rate = Rack(), DeliveryRate()
    rack.rate = rate
    rack.on_transmit(0, 1000, 0, 0.0)
    rack.on_transmit(1000, 2000, 1000, 0.0)
    rack.on_ack(2000, [], 2000, 0, 0, -1.0, 0.01)
    assert rate.sample(-1.0, 0.01) and rate.reported == pytest.approx(2000 / 0.01)
    assert not rate.reported_app_limited
    rack.on_ack(2000, [], 2000, 0, 0, -1.0, 0.02)  # a duplicate: nothing delivered
    assert not rate.sample(-1.0, 0.02) and rate.rate == 0
    assert rate.reported == pytest.approx(2000 / 0.01)
    rate.mark_app_limited(0)
    rack.on_transmit(2000, 3000, 2000, 0.03)
    rack.on_ack(3000, [], 3000, 0, 0, -1.0, 0.05)  # 1000 bytes in 20 ms, the application's doing
    assert rate.sample(-1.0, 0.05) and rate.is_app_limited
    assert rate.reported == pytest.approx(2000 / 0.01) and not rate.reported_app_limited
    rack.on_transmit(3000, 4000, 3000, 0.06)
    rack.on_ack(4000, [], 4000, 0, 0, -1.0, 0.08)  # as slow, and the network's doing
    assert rate.sample(-1.0, 0.08) and not rate.is_app_limited
    assert rate.reported == pytest.approx(1000 / 0.02)


def bulk(config: Config, seed: int, impairment, size: int = 2 * MiB, timer_late: float = 0.0):
    from aiotcp.core.endpoint import Endpoint
    from aiotcp.tools.testing import BulkTransfer, Network

    rng = random.Random(seed)
    net = Network(rng, impairment, timer_late=timer_late)
    net.add(("10.9.0.1", 40000), Endpoint(config))
    net.add(("10.9.0.2", 80), Endpoint(config))
    data = rng.randbytes(size)
    sends = []
    # the application keeps a mebibyte queued: never the limit here
    bt = BulkTransfer(net, ("10.9.0.1", 40000), ("10.9.0.2", 80), 80, data, b"", chunk=1 << 20)
    original = net.flush

    def flush(src):  # when each data segment leaves the client (virtual time)
        if src == ("10.9.0.1", 40000):
            sends.extend(net.now for data, _ in net.endpoints[src].outbox if len(data) > 100)
        original(src)

    net.flush = flush
    net.run(until=bt.done, max_time=500_000)
    assert bt.received["server"].hexdigest() == hashlib.sha256(data).hexdigest(), f"seed {seed}"
    return bt.client_conn, sends


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("loss", [0.0, 0.02])
def test_bbr_transfers_byte_exact_in_virtual_time_and_reaches_probe_bw(seed, loss):
    from aiotcp.tools.testing import Impairment as NetImpairment

    seed = 25_000 + seed + int(loss * 1000)
    print(f"seed {seed}")
    # a 2 MB/s bottleneck with a 64 KiB queue: startup finds it full
    conn, _ = bulk(Config(congestion="bbr"), seed, NetImpairment(drop=loss, latency=0.02, rate=2e6), 4 * MiB)
    info = conn.info()
    assert info["congestion_control"] == "bbr"
    assert info["bbr_state"] in (PROBE_BW, PROBE_RTT) and info["bbr_bw"] > 0
    assert info["bbr_min_rtt"] == pytest.approx(0.04, rel=0.2)
    assert info["bbr_bw"] == pytest.approx(2e6, rel=0.25)  # the bottleneck, as measured
    assert info["delivery_rate"] > 0 and info["pacing_rate"] > 0


def test_pacing_spreads_a_window_over_the_round_trip():
    """In virtual time: with pacing, the data segments of the second half of
    a transfer leave at most a quantum at a time; without it, a window
    leaves back to back on each ACK burst."""
    from aiotcp.tools.testing import Impairment as NetImpairment

    def largest_burst(pacing: bool) -> int:
        conn, sends = bulk(Config(pacing=pacing), 26_000, NetImpairment(latency=0.05), 2 * MiB)
        counts = {}
        for t in sends[len(sends) // 2:]:
            counts[t] = counts.get(t, 0) + 1
        return max(counts.values())

    paced, unpaced = largest_burst(True), largest_burst(False)
    print(f"largest burst at one instant: paced {paced}, unpaced {unpaced} segments")
    assert paced * 4 < unpaced


def test_max_pacing_rate_caps_the_rate():
    from aiotcp.tools.testing import Impairment as NetImpairment

    conn, sends = bulk(Config(max_pacing_rate=200_000), 26_001, NetImpairment(latency=0.01), 1 * MiB)
    span = sends[-1] - sends[0]
    assert conn.info()["pacing_rate"] == 200_000
    assert len(sends) * 1000 / span <= 200_000 * 1.5  # bytes of payload per virtual second


@pytest.mark.parametrize("late", [0.0, 0.0015])
def test_pacing_keeps_its_rate_when_the_timer_fires_late(late):
    """A real loop's timer fires up to a millisecond or two after its
    deadline (the wheel's tick, the loop's millisecond timeouts).  The
    credit a late timer earned still counts, so a paced sender keeps its
    rate.  Before, a bucket one quantum deep lost it: here the sender kept
    0.86 of its rate with timers on time (the wheel rounds deadlines to its
    tick) and 0.40 with them 1.5 ms late, and BBR took the shortfall for a
    falling bandwidth."""
    from aiotcp.tools.testing import Impairment as NetImpairment

    rate = 2_500_000
    conn, sends = bulk(Config(max_pacing_rate=rate), 26_003, NetImpairment(latency=0.01), 4 * MiB, timer_late=late)
    half = sends[len(sends) // 2:]
    achieved = (len(half) - 1) * conn.mss / (half[-1] - half[0])
    print(f"timer {late * 1000:g} ms late: {achieved / rate:.2f} of the pacing rate")
    assert conn.info()["pacing_rate"] == rate
    assert 0.9 * rate <= achieved <= 1.1 * rate


def test_bbr_without_sack_falls_back_to_cubic():
    from aiotcp.tools.testing import Impairment as NetImpairment

    conn, _ = bulk(Config(congestion="bbr", sack=False), 26_002, NetImpairment(latency=0.01), 256 * 1024)
    assert conn.info()["congestion_control"] == "cubic"
    assert conn.stats["bbr_without_sack"] == 1


def test_config_names_the_controller_either_way():
    assert Config(congestion="bbr").congestion_control == "bbr"
    assert Config(congestion_control="newreno").congestion_control == "newreno"
    assert Config(congestion="bbr").replace(congestion_control="cubic").congestion_control == "cubic"
    with pytest.raises(ValueError, match="unknown congestion control"):
        Config(congestion="vegas")
    with pytest.raises(ValueError, match="max_pacing_rate"):
        Config(max_pacing_rate=0)


@pytest.mark.asyncio
@pytest.mark.parametrize("congestion", ["bbr", "cubic"])
async def test_through_a_lossy_relay_on_real_sockets(congestion):
    seed = 27_000
    print(f"seed {seed}")
    data = random.Random(seed).randbytes(2 * MiB)
    imp = Impairment(loss=0.01, delay=0.005)
    info, relay, _ = await digest_through_relay(data, imp, imp, config=Config(congestion=congestion), seed=seed,
                                                timeout=120)
    assert info["congestion_control"] == congestion
    assert info["pacing_rate"] > 0 and relay.stats["up_lost"] > 0
    if congestion == "bbr":
        assert info["bbr_bw"] > 0 and info["bbr_state"] in (STARTUP, DRAIN, PROBE_BW, PROBE_RTT)
        assert info["delivery_rate"] > 0
        assert not math.isinf(info["bbr_min_rtt"])
