"""RACK-TLP: time-based loss detection and tail loss probes (RFC 8985).

One :class:`Rack` per connection that negotiated SACK.  It keeps a
:class:`Transmission` record per data segment outstanding, in sequence
order (a run of full segments sent at once shares one record, as Linux's
TSO buffers do, and is cut where an ACK, a SACK block or a retransmission
divides it), and from the ACKs and SACK blocks that deliver them decides
which are lost: a segment sent before the most recently sent delivered one is
lost once RACK.rtt plus the reordering window have passed since it was
sent.  D-SACKs widen that window.  It also computes the probe timeout of
a tail loss probe (section 7).

The unit decides; the connection acts.  It tells the unit what it sent
(:meth:`on_transmit`), what an ACK delivered (:meth:`on_ack`) and when a
recovery ended or an RTO struck; it asks :meth:`detect` for losses (the
records marked lost, ``lost_bytes`` in all) and the reordering timer's
wait, and resends the lost records itself (their transmission restamps
them).  The deadlines themselves stay in the connection's timer table.
Sequence numbers are modulo 2**32 (ranges.seq_offset orders them).
"""
from __future__ import annotations

from .._fast import KEEP_IDLE, empty_list
from .ranges import seq_offset

MASK = (1 << 32) - 1

# Transmission.flags
_RETRANS = 1  # sent more than once
_SACKED = 2  # selectively acknowledged
_LOST = 4  # RACK marked it lost, not yet resent
#: The same flags by name, for Python (tests, inspection).
RACK_FLAGS = {"retransmitted": _RETRANS, "sacked": _SACKED, "lost": _LOST}


class Transmission:
    """RACK's record of one outstanding data segment (RFC 8985 section
    6.1), or of a run of them sent at once: [start, end), when it was last
    sent, its flags (retransmitted, SACKed, lost), ``order``, which counts
    segments sent, so that of two sent at the same ``now`` the later one is
    known (the record's first segment's), and ``size``, the segments' size
    (the record's length when it is one segment).  Compiled, an extension
    type with C fields (rack.pxd), changed in place."""

    def __init__(self, start: int, end: int, sent: float, flags: int, order: int, size: int = 0):
        self.start = start
        self.end = end
        self.sent = sent
        self.flags = flags
        self.order = order
        self.size = size if size > 0 else seq_offset(end, start)

    def __repr__(self):
        return f"Transmission({self.start}, {self.end}, {self.sent}, {self.flags}, {self.order})"


def _transmission(start: int, end: int, sent: float, flags: int, order: int, size: int) -> Transmission:
    """A new record, without the Python-level call of __init__ (compiled,
    C arguments into C fields)."""
    record = Transmission.__new__(Transmission)
    record.start = start
    record.end = end
    record.sent = sent
    record.flags = flags
    record.order = order
    record.size = size
    record.delivered = 0
    record.delivered_time = record.first_sent_time = 0.0
    record.app_limited = False
    return record


def segments(record: Transmission) -> int:
    """How many segments ``record`` holds (Linux's pcount): a part of one
    counts as one."""
    return (seq_offset(record.end, record.start) + record.size - 1) // record.size


class Rack:
    """The RACK state of RFC 8985 section 6.1 and its counters.  Field
    names follow the RFC where it names them: ``xmit_ts`` (RACK.xmit_ts),
    ``rack_rtt`` (RACK.rtt), ``fack`` (RACK.fack), ``reordering``
    (RACK.reord), ``reo_mult`` (RACK.reo_wnd_mult); ``segment_order`` is
    the transmission order of RACK.segment, used instead of its end
    sequence number to break ties between equal send times."""

    def __init__(self):
        #: the records of the data outstanding, in sequence order
        self.records: list = []
        self.order = 0  # segments sent so far
        self.lost_bytes = 0  # in records marked lost and not yet resent
        self.sacked_count = 0  # segments SACKed
        self.xmit_ts = -1.0  # latest send time of delivered data, -1: none yet
        self.segment_order = 0
        self.rack_rtt = 0.0
        self.fack = 0
        self.reordering = False
        self.reo_mult = 1
        self.reo_persist = 0  # recoveries left before the multiplier resets
        self.dsack_round = -1  # snd_max when the multiplier last rose, -1: none pending
        #: D-SACK blocks received: spurious retransmissions or reordering
        self.dsacks = 0
        self.losses = 0  # records marked lost
        self.lost_retransmits = 0  # retransmissions found lost in turn
        self.probes = 0  # tail loss probes sent
        self.probe_outstanding = False  # one probe per tail until an ACK advances
        self.lost_marked = 0  # bytes ever marked lost
        #: the delivery-rate unit (core/rate.py) fed from these records, or None
        self.rate = None

    def __repr__(self):
        return (f"Rack({len(self.records)} records, lost {self.lost_bytes} B, "
                f"{self.sacked_count} sacked, reo_mult {self.reo_mult})")

    # ------------------------------------------------------------ sending

    def _first_ending_after(self, seq: int) -> int:
        """The index of the first record ending after ``seq`` (the one that
        holds it, if any), len(records) if none."""
        records = self.records
        lo, hi = 0, len(records)
        while lo < hi:
            mid = (lo + hi) >> 1
            if seq_offset(records[mid].end, seq) <= 0:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def record_at(self, seq: int):
        """The record that starts at ``seq``, or None."""
        i = self._first_ending_after(seq)
        if i < len(self.records) and self.records[i].start == seq:
            return self.records[i]
        return None

    def split(self, i: int, at: int) -> None:
        """Cut records[i] at ``at`` (inside it): [start, at) stays at ``i``
        and [at, end) follows it, sent at the same time, with the same
        flags and rate snapshot, its order that of the segment holding
        ``at``."""
        records = self.records
        record = records[i]
        before = segments(record)
        tail = _transmission(at, record.end, record.sent, record.flags,
                             record.order + seq_offset(at, record.start) // record.size, record.size)
        tail.delivered = record.delivered
        tail.delivered_time = record.delivered_time
        tail.first_sent_time = record.first_sent_time
        tail.app_limited = record.app_limited
        record.end = at
        records.insert(i + 1, tail)
        if record.flags & _SACKED:  # a segment cut in two counts twice
            self.sacked_count += segments(record) + segments(tail) - before

    def on_transmit(self, seq: int, end: int, snd_max: int, now: float, size: int = 0) -> None:
        """[seq, end) went out, ``snd_max`` being the highest sequence sent
        before it, as segments of ``size`` bytes (0: one segment): new data
        gets a record; a retransmission restamps the records it covers and
        clears their lost mark (section 6.1, per-segment transmit times),
        cutting a run's record where only part of it went again."""
        records = self.records
        if seq_offset(snd_max, seq) > 0:
            lo = self._first_ending_after(seq)
            if lo < len(records) and seq_offset(seq, records[lo].start) > 0 and segments(records[lo]) > 1:
                self.split(lo, seq)
                lo += 1
            while lo < len(records):
                record = records[lo]
                if seq_offset(record.start, end) >= 0:
                    break
                if seq_offset(record.end, end) > 0 and segments(record) > 1:
                    self.split(lo, end)  # the rest of the run did not go again
                flags = record.flags
                if flags & _LOST:
                    self.lost_bytes -= seq_offset(record.end, record.start)
                self.order += 1
                record.sent = now
                record.flags = (flags | _RETRANS) & ~_LOST
                record.order = self.order
                if self.rate is not None:
                    self.rate.on_send(record, 1, now)
                lo += 1
        if seq_offset(end, snd_max) > 0:
            start = snd_max if seq_offset(snd_max, seq) > 0 else seq
            record = _transmission(start, end, now, 0, self.order + 1, size if size > 0 else seq_offset(end, start))
            self.order += segments(record)
            if self.rate is not None:
                self.rate.on_send(record, len(records), now)  # none outstanding: a new flight
            records.append(record)

    # ---------------------------------------------------------- delivery

    def on_ack(self, ack: int, blocks, snd_max: int, ts_ecr: int, ts_offset: int, min_rtt: float,
               now: float) -> bool:
        """Section 6.2 on an ACK of ``ack`` with SACK ``blocks``: drop the
        cumulatively acknowledged records, mark the newly SACKed ones, and
        advance RACK.xmit_ts, RACK.rtt and RACK.fack from what was newly
        delivered, noting reordering.  ``ts_ecr`` is the echoed timestamp
        (0: none) and ``ts_offset`` our timestamp clock's offset; with
        ``min_rtt`` (-1: none) they tell whether a retransmission's delivery
        may be the original's.  True when there is something to judge:
        call :meth:`detect`."""
        records = self.records
        n = 0
        while n < len(records):
            record = records[n]
            if seq_offset(record.end, ack) > 0:
                break
            if record.flags & _SACKED:
                self.sacked_count -= segments(record)
            else:
                if record.flags & _LOST:
                    self.lost_bytes -= seq_offset(record.end, record.start)
                self._delivered(record, record.end, record.order + segments(record) - 1, ts_ecr, ts_offset,
                                min_rtt, now)
                if self.rate is not None:
                    self.rate.on_delivered(record, seq_offset(record.end, record.start), now)
            n += 1
        if n == len(records):
            empty_list(records, KEEP_IDLE)  # everything acknowledged
        elif n:
            del records[:n]
        if records:
            record = records[0]
            acked = seq_offset(ack, record.start)
            if acked > 0:  # partly acknowledged
                before = segments(record)
                if record.flags & _LOST:
                    self.lost_bytes -= acked
                if before > 1 and not record.flags & _SACKED:
                    # the acknowledged segments of a run are delivered, as
                    # Linux's tcp_tso_acked trims a buffer and counts them
                    self._delivered(record, ack, record.order + (acked - 1) // record.size, ts_ecr, ts_offset,
                                    min_rtt, now)
                    if self.rate is not None:
                        self.rate.on_delivered(record, acked, now)
                record.order += acked // record.size
                record.start = ack
                if record.flags & _SACKED:
                    self.sacked_count -= before - segments(record)
        for left, right in blocks:
            if seq_offset(right, ack) <= 0 or seq_offset(right, snd_max) > 0 or seq_offset(right, left) <= 0:
                continue  # D-SACK or bogus: the scoreboard counted it
            # the first record ending after left; one that starts before it
            # is a run's when the block covers whole segments of it: cut there
            lo = self._first_ending_after(left)
            if lo < len(records):
                record = records[lo]
                if seq_offset(left, record.start) > 0:
                    if segments(record) > 1 and not record.flags & _SACKED:
                        at = seq_offset(left, record.start) + record.size - 1
                        at = (record.start + at - at % record.size) & MASK  # the first whole segment's start
                        if seq_offset(record.end, at) > 0:
                            self.split(lo, at)
                    lo += 1
            while lo < len(records):
                record = records[lo]
                if seq_offset(record.end, right) > 0:
                    if segments(record) > 1 and not record.flags & _SACKED:
                        at = seq_offset(right, record.start)
                        at = at - at % record.size  # the whole segments the block covers
                        if at > 0:
                            self.split(lo, (record.start + at) & MASK)
                            continue  # records[lo] now ends inside the block
                    break
                if not record.flags & _SACKED:
                    if record.flags & _LOST:
                        self.lost_bytes -= seq_offset(record.end, record.start)
                    record.flags = (record.flags | _SACKED) & ~_LOST
                    self.sacked_count += segments(record)
                    # no timestamp test: the ACK echoes TS.Recent, which data
                    # above a hole never updates (RFC 7323 section 4.3), so
                    # it predates any retransmission it SACKs (a tail loss
                    # probe's above all); the RTT test stays, as Linux's
                    self._delivered(record, record.end, record.order + segments(record) - 1, 0, ts_offset,
                                    min_rtt, now)
                    if self.rate is not None:
                        self.rate.on_delivered(record, seq_offset(record.end, record.start), now)
                lo += 1
        return self.sacked_count > 0 or self.lost_bytes > 0

    def _delivered(self, record: Transmission, end: int, order: int, ts_ecr: int, ts_offset: int,
                   min_rtt: float, now: float) -> None:
        """Section 6.2 steps 2 and 3 for one newly delivered record, or its
        part up to ``end`` whose last segment's order is ``order``, in the
        order they were delivered: cumulatively acknowledged ones first, in
        sequence order, then the newly SACKed."""
        sent = record.sent
        flags = record.flags
        rtt = now - sent
        if flags & _RETRANS:
            # step 2: an ACK that may be for the original, not this
            # retransmission, says nothing about when it was sent: the echoed
            # timestamp predates it (``ts_ecr`` 0: not tested, as for a
            # SACK), or the RTT is too short.  Both tests:
            # timestamps tick in milliseconds, so an original and its
            # retransmission within one millisecond (a short path) look
            # alike to the first, and taken as the retransmission's, the
            # original's delivery made every segment sent between the two
            # look lost (Linux's tcp_rack_advance tests the RTT alone)
            if ts_ecr:
                ms = int(sent * 1000)
                if seq_offset((ms + ts_offset) & MASK, ts_ecr) > 0:
                    return
            if min_rtt >= 0 and rtt < min_rtt:
                return
        if not flags & _RETRANS and seq_offset(self.fack, end) > 0:
            self.reordering = True  # step 3: delivered below what was already delivered
        if sent > self.xmit_ts or (sent == self.xmit_ts and order > self.segment_order):
            self.xmit_ts, self.rack_rtt, self.segment_order = sent, rtt, order
        if seq_offset(end, self.fack) > 0:
            self.fack = end

    def on_dsack(self, snd_una: int, snd_max: int) -> None:
        """Section 6.2 step 4: a D-SACK means a retransmission was not
        needed, so the reordering window was too small: widen it by min_rtt
        / 4, at most once per round trip, and keep it wide for the next 16
        recoveries."""
        self.dsacks += 1
        if self.dsack_round >= 0 and seq_offset(self.dsack_round, snd_una) > 0:
            return  # already widened in this round trip
        self.dsack_round = snd_max
        self.reo_mult += 1
        self.reo_persist = 16
        self.reordering = True

    def on_recovery_end(self) -> None:
        """A loss recovery ended: count down towards the normal window."""
        if self.reo_persist > 0:
            self.reo_persist -= 1
            if self.reo_persist == 0:
                self.reo_mult = 1

    # --------------------------------------------------------- detection

    def reo_wnd(self, min_rtt: float, srtt: float, in_recovery: bool, tick: float) -> float:
        """Section 6.2 step 4: a quarter of the minimum RTT (or, before any,
        of the SRTT; -1: none) times the multiplier, capped at the SRTT;
        zero while no reordering has been seen and the sender is in recovery
        or has DupThresh segments SACKed (the RFC 6675 rule); at least one
        timer ``tick``."""
        if not self.reordering and (in_recovery or self.sacked_count >= 3):
            return 0.0
        reo = (min_rtt if min_rtt > 0 else max(srtt, 0.0)) / 4 * self.reo_mult
        if srtt >= 0 and reo > srtt:
            reo = srtt
        return max(reo, tick)

    def detect(self, now: float, min_rtt: float, srtt: float, in_recovery: bool, tick: float) -> float:
        """Section 6.2 step 5: mark lost every record sent before
        RACK.segment whose RACK.rtt + reo_wnd have passed; return how long
        until the next one may be (the reordering timer), -1 for none.
        Retransmissions are records like any other, so a lost
        retransmission is found the same way."""
        xmit_ts = self.xmit_ts
        if xmit_ts < 0:
            return -1.0
        segment_order = self.segment_order
        wait = self.rack_rtt + self.reo_wnd(min_rtt, srtt, in_recovery, tick)
        timeout = -1.0
        records = self.records
        for i in range(len(records)):
            record = records[i]
            flags = record.flags
            if flags & (_SACKED | _LOST):
                continue
            sent = record.sent
            if sent > xmit_ts or (sent == xmit_ts and record.order >= segment_order):
                if not flags & _RETRANS and sent > xmit_ts:
                    # records go out first in sequence order and a resend is
                    # later still: every record past a first transmission
                    # sent after RACK.segment was sent after it too
                    break
                continue  # not sent before RACK.segment
            remaining = sent + wait - now
            if remaining <= 0:
                record.flags = flags | _LOST
                self.lost_bytes += seq_offset(record.end, record.start)
                self.lost_marked += seq_offset(record.end, record.start)
                self.losses += segments(record)
                if flags & _RETRANS:
                    self.lost_retransmits += 1
            elif timeout < 0 or remaining < timeout:
                timeout = remaining
        return timeout

    def mark_first_lost(self) -> None:
        """Recovery entered on DupThresh duplicate ACKs with nothing marked
        (RFC 6675's rule, for a peer that sends no SACK blocks): the first
        record is lost, unless it was SACKed."""
        if not self.lost_bytes and self.records and not self.records[0].flags & _SACKED:
            record = self.records[0]
            if segments(record) > 1:  # its first segment, not the run
                self.split(0, (record.start + record.size) & MASK)
            record.flags |= _LOST
            self.lost_bytes += seq_offset(record.end, record.start)
            self.lost_marked += seq_offset(record.end, record.start)

    def on_rto(self) -> None:
        """After a retransmission timeout everything is sent again from the
        cumulative ACK (RFC 6675 section 5.1): no record is SACKed or lost
        any more; which were retransmitted is kept."""
        for record in self.records:
            record.flags &= _RETRANS
        self.lost_bytes = self.sacked_count = 0

    def on_rto_keep_sacked(self) -> None:
        """A retransmission timeout as Linux's Loss state takes it: what the
        peer SACKed stays SACKed, everything else is lost (and is resent,
        lowest first, as the window allows)."""
        lost = 0
        for record in self.records:
            if not record.flags & _SACKED:
                record.flags = (record.flags & _RETRANS) | _LOST
                lost += seq_offset(record.end, record.start)
        self.lost_bytes = lost

    # ---------------------------------------------------- tail loss probe

    def probe_timeout(self, srtt: float, flight: int, mss: int) -> float:
        """Section 7.2: PTO = 2 SRTT, plus the worst-case delayed ACK when a
        single segment is out (WCDelAckT), at least 10 ms."""
        pto = 2 * srtt
        if flight <= mss:
            pto += 0.2
        return max(pto, 0.01)

    def on_probe(self) -> None:
        """A probe went out: then the RTO, not another probe (section 7.3)."""
        self.probes += 1
        self.probe_outstanding = True
