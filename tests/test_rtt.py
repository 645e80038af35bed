"""The RTT estimator (RFC 6298) on its own, against the RFC's formulas."""
import pytest

from aiotcp.core.rtt import RttEstimator


def estimator(**overrides):
    args = dict(rto_initial=1.0, rto_min=0.2, rto_max=60.0, granularity=0.001) | overrides
    return RttEstimator(**args)


def test_before_any_sample_the_rto_is_the_initial_one():
    rtt = estimator()
    assert (rtt.srtt, rtt.min_rtt, rtt.rttvar, rtt.rto) == (None, None, 0.0, 1.0)  # (2.1)


def test_first_and_later_samples_follow_2_2_and_2_3():
    rtt = estimator(rto_min=0.0)
    rtt.sample(0.1)
    assert rtt.srtt == pytest.approx(0.1) and rtt.rttvar == pytest.approx(0.05)  # (2.2)
    assert rtt.rto == pytest.approx(0.1 + 4 * 0.05)
    rtt.sample(0.3)
    rttvar = 0.75 * 0.05 + 0.25 * abs(0.1 - 0.3)  # (2.3), RTTVAR before SRTT
    srtt = 0.875 * 0.1 + 0.125 * 0.3
    assert rtt.rttvar == pytest.approx(rttvar) and rtt.srtt == pytest.approx(srtt)
    assert rtt.rto == pytest.approx(srtt + 4 * rttvar)
    assert rtt.min_rtt == pytest.approx(0.1)


def test_the_rto_is_bounded_and_the_granularity_counts():
    rtt = estimator(granularity=0.004)
    rtt.sample(0.001)
    assert rtt.rto == 0.2  # Linux's 200 ms floor where (2.4) says 1 s
    fine = estimator(rto_min=0.0, granularity=0.004)
    fine.set(0.010)
    fine.sample(0.010)  # no variation: G is the term, (2.3)
    assert fine.rto == pytest.approx(0.010 + 0.004)
    slow = estimator(rto_max=2.0)
    slow.sample(5.0)
    assert slow.rto == 2.0  # (2.5)


def test_backoff_doubles_up_to_the_cap_and_restart_goes_back():
    rtt = estimator(rto_max=3.0)
    assert [rtt.on_rto() for _ in range(3)] == [2.0, 3.0, 3.0]  # (5.5)
    rtt.restart()
    assert rtt.rto == 1.0  # (5.7)


def test_a_negative_sample_counts_as_zero():
    rtt = estimator()
    rtt.sample(-0.5)  # a clock step or a bogus echo
    assert rtt.srtt == 0.0 and rtt.min_rtt == 0.0


def test_configure_changes_the_bounds_not_the_rto():
    rtt = estimator()
    rtt.configure(1.0, 0.5, 4.0, 0.001)
    assert rtt.rto == 1.0 and rtt.bounded(0.1) == 0.5 and rtt.bounded(10.0) == 4.0


def test_unback_returns_to_what_the_estimate_gives():
    rtt = estimator()
    rtt.on_rto()
    rtt.unback()
    assert rtt.rto == 1.0  # no sample yet: the initial RTO
    rtt.sample(0.1)
    for _ in range(4):
        rtt.on_rto()
    rtt.unback()
    assert rtt.rto == rtt.bounded(0.1 + 4 * 0.05)  # SRTT + 4 RTTVAR (2.2), not the backed-off one
