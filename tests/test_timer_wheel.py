"""The timer wheel: order, cancel, reschedule, far deadlines, bounded lateness,
and agreement with a sorted-list model on random operation sequences."""
import bisect

import pytest
from hypothesis import given, settings, strategies as st

from aiotcp._fast import Timer, TimerWheel

TICK = 0.001


def drain(wheel, until=float("inf")):
    """Wake as a loop would, at next_deadline(), and collect what fires."""
    fired = []
    while len(wheel):
        when = wheel.next_deadline()
        assert wheel.next_deadline_at() == when  # the C double twin
        if when > until:
            break
        for timer in wheel.expire(when):
            assert timer.deadline <= when, "fired early"
            assert when - timer.deadline <= TICK + 1e-9, "more than one tick late"
            fired.append(timer)
    return fired


def test_expiry_in_deadline_order():
    wheel = TimerWheel(TICK)
    deadlines = [5.0, 0.5, 0.0101, 0.0105, 3600.0, 0.2, 0.0102]
    for i, d in enumerate(deadlines):
        wheel.schedule(Timer(i), d)
    assert [t.deadline for t in drain(wheel)] == sorted(deadlines)
    assert len(wheel) == 0 and wheel.next_deadline() is None
    assert wheel.next_deadline_at() == float("inf")


def test_same_tick_keeps_deadline_then_insertion_order():
    wheel = TimerWheel(TICK)
    a, b, c = Timer("a"), Timer("b"), Timer("c")
    wheel.schedule(a, 0.0105)
    wheel.schedule(b, 0.0102)
    wheel.schedule(c, 0.0105)
    assert [t.owner for t in wheel.expire(0.011)] == ["b", "a", "c"]


def test_never_early_and_at_most_one_tick_late():
    wheel = TimerWheel(TICK)
    t = Timer()
    wheel.schedule(t, 1.0005)
    assert wheel.expire(1.0004) == []
    assert wheel.expire(1.0005 - 1e-9) == []
    when = wheel.next_deadline()
    assert 1.0005 <= when <= 1.0005 + TICK
    assert wheel.expire(when) == [t]
    assert not t.scheduled


def test_cancel_and_reschedule():
    wheel = TimerWheel(TICK)
    a, b = Timer("a"), Timer("b")
    wheel.schedule(a, 1.0)
    wheel.schedule(b, 2.0)
    wheel.cancel(a)
    wheel.cancel(a)  # idempotent
    assert not a.scheduled and b.scheduled and len(wheel) == 1
    wheel.schedule(b, 0.5)  # earlier
    wheel.schedule(a, 0.7)
    wheel.schedule(a, 300.0)  # later, from a different level
    assert len(wheel) == 2
    assert [t.owner for t in drain(wheel)] == ["b", "a"]


def test_deadline_in_the_past_fires_at_next_expire():
    wheel = TimerWheel(TICK, now=100.0)
    t = Timer()
    wheel.schedule(t, 50.0)
    assert wheel.next_deadline() <= 100.001
    assert wheel.expire(100.0005) == [t] or wheel.expire(100.001) == [t]


def test_far_future_deadlines():
    wheel = TimerWheel(TICK)
    far = [86400.0 * 365 * 10, 7200.0, 86400.0 * 2, 1e9]
    for d in far:
        wheel.schedule(Timer(d), d)
    assert [t.deadline for t in drain(wheel)] == sorted(far)


def test_wakeups_for_a_far_timer_are_few():
    # a 60 s TIME_WAIT timer should cost a handful of loop wakeups, not 60,000
    wheel = TimerWheel(TICK)
    wheel.schedule(Timer(), 60.0)
    wakeups = 0
    while len(wheel):
        wheel.expire(wheel.next_deadline())
        wakeups += 1
    assert wakeups <= 4


def test_large_gap_between_expire_calls():
    wheel = TimerWheel(TICK)
    ts = [Timer(i) for i in range(100)]
    for i, t in enumerate(ts):
        wheel.schedule(t, i * 37.3)
    fired = wheel.expire(10_000.0)
    assert [t.owner for t in fired] == list(range(100))


def test_timer_cannot_be_moved_between_wheels():
    a, b = TimerWheel(TICK), TimerWheel(TICK)
    t = Timer()
    a.schedule(t, 1.0)
    with pytest.raises(ValueError):
        b.schedule(t, 1.0)
    with pytest.raises(ValueError):
        TimerWheel(0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, 19),
                  st.one_of(st.floats(0, 0.2), st.floats(0, 70), st.floats(0, 10_000))),
        st.tuples(st.just("cancel"), st.integers(0, 19), st.just(0.0)),
        st.tuples(st.just("advance"), st.integers(0, 0), st.one_of(st.floats(0, 0.1), st.floats(0, 100))),
    ),
    max_size=200,
)


@given(ops)
@settings(max_examples=300, deadline=None)
def test_agrees_with_sorted_list_model(operations):
    wheel = TimerWheel(TICK)
    timers = [Timer(i) for i in range(20)]
    model = {}  # index -> deadline
    now = 0.0
    for op, index, value in operations:
        if op == "schedule":
            deadline = now + value
            wheel.schedule(timers[index], deadline)
            model[index] = deadline
        elif op == "cancel":
            wheel.cancel(timers[index])
            model.pop(index, None)
        else:
            now += value
            fired = wheel.expire(now)
            deadlines = [t.deadline for t in fired]
            assert deadlines == sorted(deadlines)
            for t in fired:
                assert model.pop(t.owner) == t.deadline <= now
            # anything still pending is either not due or due within the last tick
            for i, d in model.items():
                assert d > now - TICK - 1e-9, "a due timer was held back more than a tick"
        assert len(wheel) == len(model)
        assert all(timers[i].scheduled for i in model)
    remaining = sorted(model.values())
    assert [t.deadline for t in drain(wheel)] == remaining
    assert bisect.bisect(remaining, float("inf")) == len(remaining)



def test_changes_counts_what_may_move_the_next_deadline():
    """The UDP endpoint asks for the next deadline only when this count
    moved: scheduling, moving, cancelling and expiring all move it."""
    wheel = TimerWheel(0.001, 0.0)  # deadlines within 64 ticks: exact
    a, b = Timer("a"), Timer("b")
    seen = wheel.changes
    wheel.schedule(a, 0.05)
    assert wheel.changes > seen and wheel.next_deadline() == pytest.approx(0.05)
    seen = wheel.changes
    wheel.schedule(b, 0.02)
    assert wheel.changes > seen and wheel.next_deadline() == pytest.approx(0.02)
    seen = wheel.changes
    wheel.cancel(b)
    assert wheel.changes > seen and wheel.next_deadline() == pytest.approx(0.05)
    seen = wheel.changes
    wheel.cancel(b)  # not scheduled: nothing moved
    assert wheel.changes == seen
    assert wheel.expire(0.06) == [a] and wheel.changes > seen and wheel.next_deadline() is None
