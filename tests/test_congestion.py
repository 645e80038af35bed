"""Congestion controllers driven directly, against their RFCs' formulas."""
import random

import pytest

from aiotcp.core.congestion import Cubic, NewReno, create

MSS = 1000


def test_initial_window_is_ten_segments():
    assert NewReno(MSS, 0.0).cwnd == 10 * MSS == Cubic(MSS, 0.0).cwnd


def test_newreno_slow_start_counts_every_byte_and_congestion_avoidance():
    cc = NewReno(MSS, 0.0)
    cc.on_ack(5 * MSS, 10 * MSS, 0.0)  # a stretch ACK covering 5 segments: all 5 count (Linux)
    assert cc.cwnd == 15 * MSS
    cc.ssthresh = cc.cwnd
    for _ in range(15):
        cc.on_ack(MSS, 15 * MSS, 0.0)
    assert cc.cwnd == 16 * MSS  # one MSS per window acknowledged


@pytest.mark.parametrize("make", [NewReno, Cubic])
def test_slow_start_grows_only_a_window_the_sender_fills(make):
    """Linux's tcp_is_cwnd_limited in slow start: with the window at twice
    what is in flight or more, the application, not the window, limits
    the sender, and ACKs do not grow it."""
    cc = make(MSS, 0.0)
    for _ in range(100):  # a request and its answer, one segment in flight each time
        cc.on_ack(MSS, MSS, 0.0)
    assert cc.cwnd == 10 * MSS
    cc.on_ack(10 * MSS, 6 * MSS, 0.0)  # a window below twice the flight: it grows
    assert cc.cwnd == 20 * MSS


@pytest.mark.parametrize("make", [NewReno, Cubic])
def test_slow_start_stops_at_ssthresh_and_the_rest_goes_to_congestion_avoidance(make):
    cc = make(MSS, 0.0)
    cc.srtt = 0.1
    cc.ssthresh = 14 * MSS
    cc.on_ack(10 * MSS, 10 * MSS, 1.0)  # 4 segments reach ssthresh, 6 are left over
    assert 14 * MSS <= cc.cwnd < 15 * MSS  # congestion avoidance: less than a segment more
    assert cc.cwnd >= cc.ssthresh


def test_loss_responses():
    for cc in (NewReno(MSS, 0.0), Cubic(MSS, 0.0)):
        cc.cwnd = 100 * MSS
        cc.on_rto(100 * MSS, 0.0)
        assert cc.cwnd == MSS
    newreno = NewReno(MSS, 0.0)
    newreno.on_fast_retransmit(40 * MSS, 0.0)
    assert newreno.ssthresh == 20 * MSS  # flight / 2 (RFC 5681 equation 4)
    cubic = Cubic(MSS, 0.0)
    cubic.cwnd = 100 * MSS
    cubic.on_fast_retransmit(100 * MSS, 0.0)
    assert cubic.ssthresh == 70 * MSS and cubic.w_max == 100  # beta = 0.7


def test_cubic_window_follows_rfc_9438_curve():
    # a long round trip (one ACK per 10 ms, about 100 per window, srtt 1 s):
    # there the curve, not the Reno-friendly estimate, is in charge
    cc = Cubic(MSS, 0.0)
    cc.srtt = 1.0
    cc.cwnd = 100 * MSS
    cc.on_fast_retransmit(cc.cwnd, 0.0)
    cc.cwnd = cc.ssthresh  # recovery over: cwnd = beta * W_max
    k = (100 * (1 - 0.7) / 0.4) ** (1 / 3)  # RFC 9438 equation 2: about 4.22 s
    now = 0.0
    checkpoints = {}
    while now < 2 * k:
        now += 0.01
        cc.on_ack(MSS, cc.cwnd, now)
        for label, t in (("k/2", k / 2), ("k", k), ("3k/2", 1.5 * k), ("2k", 2 * k - 0.02)):
            if label not in checkpoints and now >= t:
                checkpoints[label] = (cc.cwnd / MSS, 0.4 * (now - k) ** 3 + 100)
    assert cc.k == pytest.approx(k)
    for label, (actual, formula) in checkpoints.items():
        assert actual == pytest.approx(formula, rel=0.05), label
    assert checkpoints["k"][0] == pytest.approx(100, rel=0.03)  # the plateau at W_max


def test_cubic_fast_convergence_lowers_w_max():
    cc = Cubic(MSS, 0.0)
    cc.w_max = 100
    cc.cwnd = 80 * MSS
    cc.on_fast_retransmit(cc.cwnd, 0.0)
    assert cc.w_max == pytest.approx(80 * 1.7 / 2)


def test_cubic_reno_friendly_alpha_becomes_one_at_the_prior_window():
    """RFC 9438 section 4.3: W_est grows by alpha_cubic = 3(1 - beta)/(1 +
    beta) segments per window until it reaches the window of the last
    reduction, then by 1 (Reno's rate).  With a large RTT the cubic curve
    stays put (with the clock stopped), so cwnd follows W_est."""
    cc = Cubic(MSS, 0.0)
    cc.srtt = 0.0  # time stands still: the cubic curve stays at cwnd
    cc.cwnd = 10 * MSS
    cc.on_fast_retransmit(cc.cwnd, 0.0)
    cc.cwnd = cc.ssthresh  # 7 segments
    alpha = 3 * 0.3 / 1.7

    def one_window():
        w = cc.cwnd / MSS
        for _ in range(round(w)):
            cc.on_ack(MSS, cc.cwnd, 0.0)  # the same instant: the cubic curve does not move
        return cc.w_est

    grown = [one_window()]
    while grown[-1] < 10:
        grown.append(one_window())
    steps = [b - a for a, b in zip(grown, grown[1:])]
    assert steps[0] == pytest.approx(alpha, rel=0.1)  # below the prior window: 0.53 per window
    before = one_window()
    assert one_window() - before == pytest.approx(1.0, rel=0.1)  # past it: one segment per window
    assert cc.cwnd == int(cc.w_est * MSS)


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown congestion control"):
        create("vegas", MSS, 0.0)


def test_a_controller_written_in_python_drives_a_connection(monkeypatch):
    """The controllers are compiled, but congestion control stays a Python
    class to swap: a subclass registered in ALGORITHMS is what the
    connection calls, overrides included."""
    from aiotcp.core import congestion
    from aiotcp.core.config import Config
    from aiotcp.core.endpoint import Endpoint
    from aiotcp.tools.testing import BulkTransfer, Network

    class Fixed(congestion.CongestionControl):
        name = "fixed"

        def __init__(self, mss, now):
            super().__init__(mss, now)
            self.acks = 0

        def on_ack(self, acked, flight, now):
            self.acks += 1
            self.cwnd = 4 * self.mss  # a fixed window of four segments

    monkeypatch.setitem(congestion.ALGORITHMS, "fixed", Fixed)
    net = Network(random.Random(1))
    config = Config(congestion_control="fixed")
    net.add("client", Endpoint(config))
    net.add("server", Endpoint(config))
    transfer = BulkTransfer(net, "client", "server", 80, b"x" * 100_000)
    net.run(transfer.done)
    assert transfer.received_len["server"] == 100_000
    cc = transfer.client_conn.cc
    assert type(cc) is Fixed and cc.acks > 10 and cc.cwnd == 4 * transfer.client_conn.mss
    assert transfer.client_conn.info()["congestion_control"] == "fixed"


@pytest.mark.parametrize("algorithm", [NewReno, Cubic])
def test_the_recovery_window_arithmetic_is_the_controllers(algorithm):
    """What RFC 6582, RFC 6675 and RFC 6937 fix about cwnd whatever the
    algorithm, as calls on the controller (the connection writes no window)."""
    cc = algorithm(MSS, 0.0)
    cc.set_mss(1200)
    assert (cc.mss, cc.cwnd) == (1200, 12_000)  # RFC 6928 IW of the settled MSS
    cc.set_mss(MSS)
    cc.cwnd = 50 * MSS
    cc.on_idle_restart()
    assert cc.cwnd == 10 * MSS  # RFC 5681 section 4.1
    cc.on_idle_restart()
    assert cc.cwnd == 10 * MSS  # never grows
    # NewReno: ssthresh + 3 MSS, one MSS per further duplicate, deflation
    cc.cwnd = 40 * MSS
    cc.on_recovery_start(40 * MSS, 0.0, False)
    ssthresh = cc.ssthresh
    assert ssthresh < 40 * MSS and cc.cwnd == ssthresh + 3 * MSS
    cc.on_dupack_in_recovery()
    assert cc.cwnd == ssthresh + 4 * MSS
    cc.on_partial_ack(3 * MSS)
    assert cc.cwnd == ssthresh + 2 * MSS  # less what was acknowledged, plus one MSS
    cc.on_recovery_end(5 * MSS, False)
    assert cc.cwnd == min(ssthresh, 6 * MSS)  # RFC 6582 step 3: min(ssthresh, flight + MSS)
    # SACK: no inflation, PRR sets pipe + sndcnt, the end is ssthresh
    cc.cwnd = 40 * MSS
    cc.on_recovery_start(40 * MSS, 0.0, True)
    assert cc.cwnd == cc.ssthresh
    cc.on_prr(10 * MSS, 2 * MSS)
    assert cc.cwnd == 12 * MSS
    cc.on_prr(0, -5)
    assert cc.cwnd == MSS  # never below one segment
    cc.on_recovery_end(0, True)
    assert cc.cwnd == cc.ssthresh


def test_the_connection_writes_no_congestion_window():
    """congestion.py's contract, checked in the source: only the controller
    assigns cwnd and ssthresh."""
    import pathlib
    import re

    import aiotcp

    root = pathlib.Path(aiotcp.__file__).parent
    for source in root.rglob("*.py"):
        if source.name == "congestion.py":
            continue
        writes = re.findall(r"\bcc\.(?:cwnd|ssthresh)\s*(?:[-+*/]?=)(?!=)", source.read_text())
        assert not writes, f"{source.name} writes the congestion window: {writes}"


def _slow_start_rounds(cc, rtts_per_round):
    """Drive slow start one round per list of RTT samples, an ACK of one
    segment per sample, a round being the window in flight at its start."""
    for rtts in rtts_per_round:
        flight = cc.cwnd
        acked = 0
        for rtt in rtts:
            cc.on_ack(1000, flight, 0.0)
            cc.on_rtt(rtt)
            acked += 1000
        while acked < flight:  # the rest of the round's ACKs, no samples
            cc.on_ack(1000, flight, 0.0)
            acked += 1000


@pytest.mark.parametrize("name", ["cubic", "newreno"])
def test_hystart_leaves_slow_start_when_the_round_trip_rises(name):
    cc = create(name, 1000, 0.0)
    cc.cwnd = 16_000
    _slow_start_rounds(cc, [[0.050] * 8, [0.051] * 8])
    assert cc.ssthresh > 1 << 40 and cc.hystart_exits == 0  # 1 ms more is noise (eta is 6.25 ms here)
    _slow_start_rounds(cc, [[0.050] * 8, [0.057] * 8])
    # a queue builds: out of slow start there and then (ssthresh = cwnd), no loss
    assert cc.hystart_exits == 1 and cc.ssthresh <= cc.cwnd < cc.ssthresh * 1.05
    grown = cc.cwnd
    _slow_start_rounds(cc, [[0.060] * 8])
    assert cc.cwnd < grown * 1.2  # congestion avoidance from here


def test_bbr_ignores_hystart():
    cc = create("bbr", 1000, 0.0)
    for rtt in [0.05] * 8 + [0.09] * 8:
        cc.on_rtt(rtt)
    assert cc.hystart_exits == 0
