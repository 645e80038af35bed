"""RACK-TLP: time-based loss detection and tail loss probes (RFC 8985).

One :class:`Rack` per connection that negotiated SACK.  It keeps a
:class:`Transmission` record per data segment outstanding, in sequence
order, and from the ACKs and SACK blocks that deliver them decides which
are lost: a segment sent before the most recently sent delivered one is
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
    6.1): [start, end), when it was last sent, its flags (retransmitted,
    SACKed, lost) and ``order``, which counts transmissions, so that of two
    sent at the same ``now`` the later one is known.  Compiled, an
    extension type with C fields (rack.pxd), changed in place."""

    def __init__(self, start: int, end: int, sent: float, flags: int, order: int):
        self.start = start
        self.end = end
        self.sent = sent
        self.flags = flags
        self.order = order

    def __repr__(self):
        return f"Transmission({self.start}, {self.end}, {self.sent}, {self.flags}, {self.order})"


def _transmission(start: int, end: int, sent: float, flags: int, order: int) -> Transmission:
    """A new record, without the Python-level call of __init__ (compiled,
    C arguments into C fields)."""
    record = Transmission.__new__(Transmission)
    record.start = start
    record.end = end
    record.sent = sent
    record.flags = flags
    record.order = order
    record.delivered = 0
    record.delivered_time = record.first_sent_time = 0.0
    record.app_limited = False
    return record


class Rack:
    """The RACK state of RFC 8985 section 6.1 and its counters.  Field
    names follow the RFC where it names them: ``xmit_ts`` (RACK.xmit_ts),
    ``rack_rtt`` (RACK.rtt), ``fack`` (RACK.fack), ``reordering``
    (RACK.reord), ``reo_mult`` (RACK.reo_wnd_mult); ``segment_order`` is
    the transmission order of RACK.segment, used instead of its end
    sequence number to break ties between equal send times."""

    def __init__(self):
        #: one record per data segment outstanding, in sequence order
        self.records: list = []
        self.order = 0  # transmissions so far
        self.lost_bytes = 0  # in records marked lost and not yet resent
        self.sacked_count = 0  # records SACKed
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

    def on_transmit(self, seq: int, end: int, snd_max: int, now: float) -> None:
        """[seq, end) went out, ``snd_max`` being the highest sequence sent
        before it: new data gets a record; a retransmission restamps the
        records it covers and clears their lost mark (section 6.1,
        per-segment transmit times)."""
        records = self.records
        if seq_offset(snd_max, seq) > 0:
            lo = self._first_ending_after(seq)
            while lo < len(records):
                record = records[lo]
                if seq_offset(record.start, end) >= 0:
                    break
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
            self.order += 1
            record = _transmission(snd_max if seq_offset(snd_max, seq) > 0 else seq, end, now, 0, self.order)
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
                self.sacked_count -= 1
            else:
                if record.flags & _LOST:
                    self.lost_bytes -= seq_offset(record.end, record.start)
                self._delivered(record, ts_ecr, ts_offset, min_rtt, now)
                if self.rate is not None:
                    self.rate.on_delivered(record, seq_offset(record.end, record.start), now)
            n += 1
        if n == len(records):
            empty_list(records, KEEP_IDLE)  # everything acknowledged
        elif n:
            del records[:n]
        if records:
            record = records[0]
            if seq_offset(ack, record.start) > 0:  # partly acknowledged
                if record.flags & _LOST:
                    self.lost_bytes -= seq_offset(ack, record.start)
                record.start = ack
        for left, right in blocks:
            if seq_offset(right, ack) <= 0 or seq_offset(right, snd_max) > 0 or seq_offset(right, left) <= 0:
                continue  # D-SACK or bogus: the scoreboard counted it
            lo, hi = 0, len(records)
            while lo < hi:  # the first record starting at or after left
                mid = (lo + hi) >> 1
                if seq_offset(records[mid].start, left) < 0:
                    lo = mid + 1
                else:
                    hi = mid
            while lo < len(records):
                record = records[lo]
                if seq_offset(record.end, right) > 0:
                    break
                if not record.flags & _SACKED:
                    if record.flags & _LOST:
                        self.lost_bytes -= seq_offset(record.end, record.start)
                    record.flags = (record.flags | _SACKED) & ~_LOST
                    self.sacked_count += 1
                    self._delivered(record, ts_ecr, ts_offset, min_rtt, now)
                    if self.rate is not None:
                        self.rate.on_delivered(record, seq_offset(record.end, record.start), now)
                lo += 1
        return self.sacked_count > 0 or self.lost_bytes > 0

    def _delivered(self, record: Transmission, ts_ecr: int, ts_offset: int, min_rtt: float,
                   now: float) -> None:
        """Section 6.2 steps 2 and 3 for one newly delivered record, in the
        order they were delivered: cumulatively acknowledged ones first, in
        sequence order, then the newly SACKed."""
        sent = record.sent
        flags = record.flags
        rtt = now - sent
        if flags & _RETRANS:
            # step 2: an ACK that may be for the original, not this
            # retransmission, says nothing about when it was sent: the echoed
            # timestamp predates it, or the RTT is too short.  Both tests:
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
        end = record.end
        order = record.order
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
                self.losses += 1
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
