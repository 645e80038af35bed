"""RangeSet: sorted disjoint sequence ranges modulo 2**32, against a model
(a Python set of sequence numbers) and across the wrap."""
import random

import pytest

from aiotcp.core.ranges import RangeSet

TOP = 1 << 32


def test_add_merges_overlapping_and_adjacent_ranges():
    r = RangeSet(100)
    assert r.add(200, 300) == 100
    assert r.add(400, 500) == 100
    assert r.ranges() == [(200, 300), (400, 500)] and len(r) == 2
    assert r.add(300, 400) == 100  # adjacent on both sides: one range
    assert r.ranges() == [(200, 500)] and r.total == 300
    assert r.add(250, 260) == 0  # already covered
    assert r.add(150, 600) == 150
    assert r.ranges() == [(150, 600)]


def test_what_lies_below_the_base_is_left_out_and_advance_drops_it():
    r = RangeSet(1000)
    assert r.add(900, 1100) == 100  # clipped at the base
    assert r.add(500, 900) == 0
    r.add(1200, 1300)
    r.advance(1050)
    assert r.ranges() == [(1050, 1100), (1200, 1300)] and r.total == 150
    r.advance(1250)
    assert r.ranges() == [(1250, 1300)] and r.total == 50
    r.advance(1000)  # backwards: nothing happens
    assert r.base == 1250
    r.advance(2000)
    assert not r and r.total == 0


def test_ranges_across_the_wrap_of_the_sequence_space():
    r = RangeSet(TOP - 100)
    r.add(TOP - 50, 20)  # wraps
    r.add(30, 40)
    assert r.ranges() == [(TOP - 50, 20), (30, 40)] and r.total == 80
    assert r.containing(TOP - 1) == (TOP - 50, 20)
    assert r.containing(5) == (TOP - 50, 20)
    assert r.containing(25) is None and r.containing(40) is None
    assert r.first_end() == 20
    r.advance(10)
    assert r.ranges() == [(10, 20), (30, 40)] and r.total == 20


def test_clear_starts_over():
    r = RangeSet(0)
    r.add(10, 20)
    r.clear(500)
    assert (r.ranges(), r.total, r.base) == ([], 0, 500)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_against_a_model(seed):
    print("seed", seed)
    rng = random.Random(seed)
    base = rng.choice([0, TOP - 300, rng.randrange(TOP)])
    r = RangeSet(base)
    model = set()  # offsets from the original base
    moved = 0
    for _ in range(400):
        if rng.random() < 0.15:
            step = rng.randrange(0, 60)
            moved += step
            r.advance((base + moved) & (TOP - 1))
            model = {x for x in model if x >= moved}
        else:
            lo = moved + rng.randrange(-30, 500)
            hi = lo + rng.randrange(0, 80)
            new = {x for x in range(max(lo, moved), hi)} - model
            assert r.add((base + lo) & (TOP - 1), (base + hi) & (TOP - 1)) == len(new)
            model |= new
        # the same bytes, as maximal ranges
        expected, run = [], None
        for x in sorted(model):
            if run and x == run[1]:
                run[1] = x + 1
            else:
                run = [x, x + 1]
                expected.append(run)
        assert r.ranges() == [((base + a) & (TOP - 1), (base + b) & (TOP - 1)) for a, b in expected]
        assert r.total == len(model)
        probe = moved + rng.randrange(0, 500)
        holder = next(((a, b) for a, b in expected if a <= probe < b), None)
        got = r.containing((base + probe) & (TOP - 1))
        assert got == (None if holder is None else ((base + holder[0]) & (TOP - 1), (base + holder[1]) & (TOP - 1)))


def test_an_empty_set_holds_no_lists_of_its_own():
    """Most of a connection's sets (the SACK scoreboard, the out-of-order
    ranges) are empty most of the time: an empty set shares its storage,
    and a set that empties again gives its own back."""
    import sys
    import tracemalloc

    def allocated(action, count=1000):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = action(count)
            return (tracemalloc.get_traced_memory()[0] - before) / count, kept
        finally:
            tracemalloc.stop()

    fresh, sets = allocated(lambda n: [RangeSet(0) for _ in range(n)])
    grown, _ = allocated(lambda n: [s.add(0, 10) for s in sets])
    # a set's first range makes its two lists: had the empty set held them,
    # only their items would be new
    assert grown > 2 * sys.getsizeof([]), (fresh, grown)
    a, b = sets[0], sets[1]
    assert a.ranges() == [(0, 10)] and b.ranges() == [(0, 10)]
    a.advance(10)  # empty again
    assert not a and a.ranges() == [] and b.ranges() == [(0, 10)]
    a.add(30, 40)
    b.clear(0)
    assert a.ranges() == [(30, 40)] and not b and b.ranges() == []
    b.add(5, 6)
    assert b.ranges() == [(5, 6)] and a.ranges() == [(30, 40)] and sets[2].ranges() == [(0, 10)]


def test_top_gives_the_highest_ranges_first_across_the_wrap():
    s = RangeSet((1 << 32) - 50)
    for start in (-40, -10, 20, 60, 100):
        s.add((start + (1 << 32)) & 0xFFFFFFFF, (start + 5 + (1 << 32)) & 0xFFFFFFFF)
    assert s.top(3) == list(reversed(s.ranges()))[:3] == [(100, 105), (60, 65), (20, 25)]
    assert s.top(10) == list(reversed(s.ranges())) and len(s.top(10)) == 5
    assert s.top(0) == [] and RangeSet(0).top(3) == []
