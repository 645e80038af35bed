"""RACK-TLP (RFC 8985) on its own: transmission records, delivery, the
reordering window, D-SACK, loss detection and the probe timeout, with the
connection nowhere in sight."""
import random

import pytest

from aiotcp.core.rack import RACK_FLAGS, Rack, segments

LOST, SACKED, RETRANS = RACK_FLAGS["lost"], RACK_FLAGS["sacked"], RACK_FLAGS["retransmitted"]
TOP = 1 << 32
NO_TS = 0  # no echoed timestamp
NO_MIN = -1.0  # no RTT sample yet


def sent(rack, start, count, mss=1000, now=0.0, step=0.0):
    """Send ``count`` new segments from ``start``, ``step`` seconds apart;
    returns snd_max."""
    snd_max = start
    for i in range(count):
        end = (snd_max + mss) % TOP
        rack.on_transmit(snd_max, end, snd_max, now + i * step)
        snd_max = end
    return snd_max


def spans(rack):
    return [(r.start, r.end) for r in rack.records]


def test_new_data_gets_records_in_order_and_a_retransmission_restamps_them():
    rack = Rack()
    snd_max = sent(rack, 0, 3)
    assert spans(rack) == [(0, 1000), (1000, 2000), (2000, 3000)]
    assert [r.order for r in rack.records] == [1, 2, 3]
    rack.on_transmit(1000, 2000, snd_max, 0.5)  # resent
    record = rack.records[1]
    assert record.sent == 0.5 and record.flags == RETRANS and record.order == 4
    assert len(rack.records) == 3


def test_a_cumulative_ack_drops_records_and_trims_a_partly_acknowledged_one():
    rack = Rack()
    snd_max = sent(rack, 0, 3)
    assert not rack.on_ack(1500, [], snd_max, NO_TS, 0, NO_MIN, 0.05)
    assert spans(rack) == [(1500, 2000), (2000, 3000)]
    assert rack.xmit_ts == 0.0 and rack.rack_rtt == pytest.approx(0.05) and rack.fack == 1000
    rack.on_ack(3000, [], snd_max, NO_TS, 0, NO_MIN, 0.06)
    assert rack.records == []


def test_a_segment_sent_before_a_delivered_one_is_lost_after_rtt_plus_the_window():
    """Section 6.2: segment 1 is lost once RACK.rtt + reo_wnd have passed
    since it was sent; until then the reordering timer waits."""
    rack = Rack()
    snd_max = sent(rack, 0, 4, step=0.001)
    # segments 2..4 SACKed at 50 ms; RACK.rtt is 50 - 3 = 47 ms
    assert rack.on_ack(0, [(1000, 4000)], snd_max, NO_TS, 0, 0.04, 0.050)
    assert rack.sacked_count == 3 and rack.rack_rtt == pytest.approx(0.047)
    # no reordering seen, DupThresh SACKed: the window is zero
    assert rack.reo_wnd(0.04, 0.05, False, 0.001) == 0.0
    assert rack.detect(0.050, 0.04, 0.05, False, 0.001) == -1.0
    assert rack.records[0].flags == LOST and rack.lost_bytes == 1000 and rack.losses == 1


def test_with_reordering_seen_the_window_delays_the_verdict():
    rack = Rack()
    snd_max = sent(rack, 0, 3, step=0.001)
    rack.on_ack(0, [(1000, 2000)], snd_max, NO_TS, 0, 0.04, 0.041)
    rack.on_ack(2000, [], snd_max, NO_TS, 0, 0.04, 0.042)  # segment 1 was only late
    assert rack.reordering
    rack.on_ack(2000, [(2000, 2000)], snd_max, NO_TS, 0, 0.04, 0.043)  # an empty block is ignored
    assert rack.reo_wnd(0.04, 0.05, False, 0.001) == pytest.approx(0.01)  # min_rtt / 4


def test_the_window_is_capped_at_the_srtt_and_floored_at_a_tick():
    rack = Rack()
    rack.reordering = True
    rack.reo_mult = 100
    assert rack.reo_wnd(0.04, 0.05, False, 0.001) == pytest.approx(0.05)
    rack.reo_mult = 1
    assert rack.reo_wnd(0.001, 0.05, False, 0.004) == pytest.approx(0.004)
    assert rack.reo_wnd(NO_MIN, 0.08, False, 0.001) == pytest.approx(0.02)  # no min yet: the SRTT


def test_a_retransmission_whose_ack_may_be_the_originals_does_not_advance_rack():
    """Section 6.2 step 2: an ACK sooner than min_rtt after a
    retransmission, or echoing a timestamp older than it, says nothing
    about when it was sent."""
    rack = Rack()
    snd_max = sent(rack, 0, 2)
    rack.on_transmit(0, 1000, snd_max, 0.100)
    rack.on_ack(1000, [], snd_max, NO_TS, 0, 0.04, 0.110)  # 10 ms < min_rtt
    assert rack.xmit_ts == -1.0
    rack.on_transmit(1000, 2000, snd_max, 0.200)
    rack.on_ack(2000, [], snd_max, 150, 0, 0.04, 0.300)  # echoes 150 ms < 200 ms sent
    assert rack.xmit_ts == -1.0
    snd_max = sent(rack, 2000, 1, now=0.3)
    rack.on_transmit(2000, 3000, snd_max, 0.400)
    rack.on_ack(3000, [], snd_max, 400, 0, 0.04, 0.45)  # echoes the retransmission
    assert rack.xmit_ts == 0.4 and rack.rack_rtt == pytest.approx(0.05)


def test_a_timestamp_of_the_same_millisecond_does_not_vouch_for_a_retransmission():
    """Timestamps tick in milliseconds: a segment and its retransmission
    sent within one share a TSval, so the echo cannot tell which arrived.
    The RTT must still be at least min_rtt, as Linux's tcp_rack_advance
    requires.  Taken as the retransmission's, the original's SACK moved
    RACK.xmit_ts past the 30 segments sent in between, still in flight,
    and all of them went again: through the relay on one loaded loop, 590
    to 1,080 segments of an 8 MiB transfer D-SACKed, and a timeout in 4
    runs of 10."""
    rack = Rack()
    snd_max = sent(rack, 0, 2, now=0.1000)  # 0 and 1 at 100.0 ms
    snd_max = sent(rack, snd_max, 30, now=0.1002, step=0.00001)  # then 30 more
    rack.on_transmit(1000, 2000, snd_max, 0.1004)  # 1 again, the same millisecond
    # the original 1 is SACKed, its echo 100 ms: 0.1 ms after the resend,
    # below min_rtt (0.5 ms), so this may be the original's delivery
    rack.on_ack(0, [(1000, 2000)], snd_max, 100, 0, 0.0005, 0.1005)
    assert rack.xmit_ts == -1.0
    assert rack.detect(0.1010, 0.0005, 0.001, False, 0.0001) == -1.0 and rack.lost_bytes == 0


def test_a_dsack_widens_the_window_once_per_round_trip_for_16_recoveries():
    rack = Rack()
    rack.on_dsack(snd_una=0, snd_max=5000)
    assert rack.dsacks == 1 and rack.reo_mult == 2 and rack.reordering
    rack.on_dsack(snd_una=1000, snd_max=6000)  # same round trip (below 5000)
    assert rack.dsacks == 2 and rack.reo_mult == 2
    rack.on_dsack(snd_una=5000, snd_max=7000)
    assert rack.reo_mult == 3
    for _ in range(15):
        rack.on_recovery_end()
    assert rack.reo_mult == 3
    rack.on_recovery_end()
    assert rack.reo_mult == 1


def test_a_lost_retransmission_is_found_like_any_other():
    rack = Rack()
    snd_max = sent(rack, 0, 3, step=0.001)
    rack.on_ack(0, [(1000, 3000)], snd_max, NO_TS, 0, 0.04, 0.05)
    rack.detect(0.05, 0.04, 0.05, True, 0.001)
    rack.on_transmit(0, 1000, snd_max, 0.05)  # resent: the mark goes
    assert rack.lost_bytes == 0 and rack.records[0].flags == RETRANS
    snd_max = sent(rack, snd_max, 1, now=0.06)
    rack.on_ack(0, [(3000, 4000)], snd_max, NO_TS, 0, 0.04, 0.11)
    rack.detect(0.2, 0.04, 0.05, True, 0.001)
    assert rack.lost_retransmits == 1 and rack.records[0].flags == RETRANS | LOST


def test_mark_first_lost_and_on_rto():
    rack = Rack()
    snd_max = sent(rack, 0, 3)
    rack.mark_first_lost()
    assert rack.records[0].flags == LOST and rack.lost_bytes == 1000
    rack.mark_first_lost()  # something is marked already
    assert rack.lost_bytes == 1000
    rack.on_ack(0, [(1000, 2000)], snd_max, NO_TS, 0, NO_MIN, 0.05)
    rack.on_transmit(0, 1000, snd_max, 0.06)
    rack.on_rto()
    assert [r.flags for r in rack.records] == [RETRANS, 0, 0]
    assert rack.lost_bytes == rack.sacked_count == 0


def test_the_probe_timeout():
    rack = Rack()
    assert rack.probe_timeout(0.05, flight=3000, mss=1000) == pytest.approx(0.1)
    assert rack.probe_timeout(0.05, flight=1000, mss=1000) == pytest.approx(0.3)  # WCDelAckT
    assert rack.probe_timeout(0.001, flight=3000, mss=1000) == pytest.approx(0.01)
    rack.on_probe()
    assert rack.probes == 1 and rack.probe_outstanding


def test_random_acks_keep_the_tallies_and_work_across_the_wrap():
    """Random SACKs and ACKs on records that cross 2**32: the lost and
    SACKed tallies always match the records' flags."""
    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    rack = Rack()
    base = TOP - 20_000
    snd_max = sent(rack, base, 40, step=0.001)
    una = base
    now = 0.05
    for _ in range(200):
        now += 0.002
        off = rng.randrange(0, 40) * 1000
        left = (base + off) % TOP
        right = (left + rng.randrange(1, 4) * 1000) % TOP
        if rng.random() < 0.2:
            una = (una + 1000) % TOP if (snd_max - una) % TOP > 1000 else una
        if rack.on_ack(una, [(left, right)], snd_max, NO_TS, 0, 0.04, now):
            rack.detect(now, 0.04, 0.05, False, 0.001)
        if rack.records and rng.random() < 0.3:
            r = rng.choice(rack.records)
            rack.on_transmit(r.start, r.end, snd_max, now)
        lost = sum((r.end - r.start) % TOP for r in rack.records if r.flags & LOST)
        assert lost == rack.lost_bytes, f"seed {seed}"
        assert sum(segments(r) for r in rack.records if r.flags & SACKED) == rack.sacked_count, f"seed {seed}"
        assert all((r.start - una) % TOP < (1 << 31) for r in rack.records), f"seed {seed}"


# ------------------------------------------------------------------ runs

def run(rack, start, count, mss=1000, now=0.0):
    """``count`` new segments from ``start`` sent at once as one run (one
    record, as Connection._send_run gives it); returns snd_max."""
    end = (start + count * mss) % TOP
    rack.on_transmit(start, end, start, now, mss)
    return end


def test_a_run_is_one_record_cut_where_a_sack_block_covers_whole_segments():
    rack = Rack()
    snd_max = run(rack, 0, 10)
    assert spans(rack) == [(0, 10_000)] and segments(rack.records[0]) == 10 and rack.order == 10
    # a block from inside segment 2 to inside segment 6: segments 3 to 5 are SACKed
    rack.on_ack(0, [(2500, 6500)], snd_max, NO_TS, 0, NO_MIN, 0.05)
    assert spans(rack) == [(0, 3000), (3000, 6000), (6000, 10_000)]
    assert [r.flags for r in rack.records] == [0, SACKED, 0]
    assert [r.order for r in rack.records] == [1, 4, 7]  # each part's first segment's
    assert rack.sacked_count == 3
    assert rack.xmit_ts == 0.0 and rack.segment_order == 6 and rack.fack == 6000
    # the segments sent before the SACKed ones are lost once the window has passed; the later ones not
    rack.detect(0.2, 0.04, 0.05, False, 0.001)
    assert [r.flags for r in rack.records] == [LOST, SACKED, 0]
    assert rack.lost_bytes == 3000 and rack.losses == 3


def test_a_run_partly_acknowledged_delivers_its_acknowledged_segments():
    rack = Rack()
    snd_max = run(rack, TOP - 2000, 5, now=0.01)  # across the wrap
    rack.on_ack(1000, [], snd_max, NO_TS, 0, NO_MIN, 0.05)
    assert spans(rack) == [(1000, 3000)] and rack.records[0].order == 4
    assert rack.xmit_ts == 0.01 and rack.rack_rtt == pytest.approx(0.04)
    assert rack.segment_order == 3 and rack.fack == 1000


def test_a_retransmission_of_part_of_a_run_restamps_that_part_alone():
    rack = Rack()
    snd_max = run(rack, 0, 6)
    rack.on_ack(0, [(4000, 6000)], snd_max, NO_TS, 0, NO_MIN, 0.05)
    rack.detect(0.2, 0.04, 0.05, False, 0.001)
    assert [r.flags for r in rack.records] == [LOST, SACKED]
    rack.on_transmit(1000, 2000, snd_max, 0.3)  # the second segment alone goes again
    assert spans(rack) == [(0, 1000), (1000, 2000), (2000, 4000), (4000, 6000)]
    assert [r.flags for r in rack.records] == [LOST, RETRANS, LOST, SACKED]
    assert [r.sent for r in rack.records] == [0.0, 0.3, 0.0, 0.0]
    assert rack.lost_bytes == 3000


def test_the_first_segment_of_a_run_alone_is_marked_lost_on_dupacks():
    rack = Rack()
    run(rack, 0, 4)
    rack.mark_first_lost()
    assert spans(rack) == [(0, 1000), (1000, 4000)] and [r.flags for r in rack.records] == [LOST, 0]
    assert rack.lost_bytes == 1000


def _state(rack, una, snd_max, mss=1000):
    """Per segment from ``una``: its flags, send time and order; and the
    unit's own figures."""
    per = []
    for r in rack.records:
        for k in range(segments(r)):
            per.append(((r.start + k * mss) % TOP, r.flags, r.sent, r.order + k))
    return per, (rack.lost_bytes, rack.sacked_count, rack.xmit_ts, rack.rack_rtt, rack.fack, rack.segment_order,
                 rack.reordering, rack.losses, rack.lost_marked)


def test_runs_judge_as_their_segments_one_by_one_would():
    """The same sends, ACKs, SACK blocks (whole segments, as receivers
    send them), detections and retransmissions, given to a unit that gets
    a run as one record and to one that gets a record per segment: every
    segment ends up with the same flags, send time and order, and the
    units with the same figures, at every step."""
    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    runs, single = Rack(), Rack()
    base = TOP - 30_000
    una = snd_max = base
    now = 0.0
    for step in range(300):
        now += rng.choice([0.0, 0.001, 0.003])
        outstanding = (snd_max - una) % TOP // 1000
        action = rng.random()
        if action < 0.25 and outstanding < 80:
            count = rng.randrange(1, 12)
            run(runs, snd_max, count, now=now)
            snd_max = sent(single, snd_max, count, now=now)
        elif action < 0.75 and outstanding:
            if rng.random() < 0.3:
                una = (una + rng.randrange(0, outstanding + 1) * 1000) % TOP
            blocks = []
            for _ in range(rng.randrange(0, 3)):
                left = rng.randrange(0, outstanding)
                right = min(outstanding, left + rng.randrange(1, 8))
                blocks.append(((una + left * 1000) % TOP, (una + right * 1000) % TOP))
            a = runs.on_ack(una, blocks, snd_max, NO_TS, 0, 0.004, now)
            b = single.on_ack(una, blocks, snd_max, NO_TS, 0, 0.004, now)
            assert a == b, f"seed {seed} step {step}"
            if a:
                assert runs.detect(now, 0.004, 0.005, False, 0.001) == \
                    single.detect(now, 0.004, 0.005, False, 0.001), f"seed {seed} step {step}"
        elif action < 0.85 and outstanding:
            first = rng.randrange(0, outstanding)
            for k in range(first, min(outstanding, first + rng.randrange(1, 4))):
                seq = (una + k * 1000) % TOP
                runs.on_transmit(seq, (seq + 1000) % TOP, snd_max, now)
                single.on_transmit(seq, (seq + 1000) % TOP, snd_max, now)
        elif action < 0.9 and outstanding:
            runs.mark_first_lost()
            single.mark_first_lost()
        assert _state(runs, una, snd_max) == _state(single, una, snd_max), f"seed {seed} step {step}"


def test_any_acks_and_blocks_keep_the_records_whole_and_the_tallies_true():
    """Whatever a peer sends (ACKs and SACK blocks at any byte, inside
    segments, overlapping, past what was sent) and whatever the sender
    resends (any range, any byte), on records of runs: the records still
    cover [snd_una, snd_max) in order, without gap or overlap, and the lost
    and SACKed tallies match them."""
    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    rack = Rack()
    una = snd_max = TOP - 50_000
    now = 0.0
    for step in range(400):
        now += rng.choice([0.0, 0.001, 0.004])
        out = (snd_max - una) % TOP
        action = rng.random()
        if action < 0.2 and out < 100_000:
            size = rng.choice([1000, 1440, 536])
            count = rng.randrange(1, 9)
            snd_max = run(rack, snd_max, count, mss=size, now=now) if count > 1 else sent(rack, snd_max, 1, size, now)
        elif action < 0.6 and out:
            if rng.random() < 0.3:
                una = (una + rng.randrange(0, out + 1)) % TOP
            blocks = []
            for _ in range(rng.randrange(0, 4)):
                left = (una + rng.randrange(-2000, out + 2000)) % TOP
                blocks.append((left, (left + rng.randrange(-500, 9000)) % TOP))
            if rack.on_ack(una, blocks, snd_max, NO_TS, 0, rng.choice([NO_MIN, 0.002]), now):
                rack.detect(now, 0.002, 0.004, rng.random() < 0.5, 0.001)
        elif action < 0.8 and out:
            seq = (una + rng.randrange(0, out)) % TOP
            end = (seq + rng.randrange(1, 5000)) % TOP
            if (end - una) % TOP > out:
                end = snd_max
            rack.on_transmit(seq, end, snd_max, now)
        elif action < 0.85:
            rack.mark_first_lost()
        elif action < 0.88:
            rack.on_rto_keep_sacked()
        elif action < 0.9:
            rack.on_rto()
        records = rack.records
        assert all(r.start != r.end for r in records), f"seed {seed} step {step}"
        if records:
            assert records[0].start == una and records[-1].end == snd_max, f"seed {seed} step {step}"
            assert all(a.end == b.start for a, b in zip(records, records[1:])), f"seed {seed} step {step}"
        lost = sum((r.end - r.start) % TOP for r in records if r.flags & LOST)
        assert lost == rack.lost_bytes, f"seed {seed} step {step}"
        assert sum(segments(r) for r in records if r.flags & SACKED) == rack.sacked_count, f"seed {seed} step {step}"
