"""Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation).

One :class:`DeliveryRate` per connection whose controller asks for rate
samples (BBR).  At each transmission the sender snapshots, into the
segment's record, how much had been delivered and when
(:meth:`on_send`); when that segment is delivered (cumulatively or by
SACK) the snapshot gives the interval over which the data delivered since
was sent and acknowledged (:meth:`on_delivered`); after each ACK,
:meth:`sample` turns the newest such interval into a rate sample: bytes
delivered over max(send interval, ACK interval), flagged application-
limited when the sender had nothing to send for part of it.

The records are RACK's (rack.py keeps one per segment outstanding); the
unit owns the four fields it writes into them (``delivered``,
``delivered_time``, ``first_sent_time``, ``app_limited``).  Names follow
the draft: C.delivered, C.delivered_time, C.first_sent_time,
C.app_limited; rs.prior_delivered, rs.interval, rs.delivery_rate.
"""
from __future__ import annotations

from .rack import RACK_FLAGS

_RETRANS = RACK_FLAGS["retransmitted"]


class DeliveryRate:
    """The connection's delivery counters and the sample of the last ACK."""

    def __init__(self):
        self.delivered = 0  # bytes delivered so far (C.delivered)
        self.delivered_time = 0.0  # when C.delivered last grew
        self.first_sent_time = 0.0  # send time of the newest delivered segment's flight
        self.app_limited = 0  # 0, or C.delivered + inflight when the sender ran dry
        # the rate sample being built from this ACK's deliveries
        self.prior_delivered = -1  # rs.prior_delivered (-1: nothing delivered yet)
        self.prior_time = 0.0
        self.send_elapsed = 0.0
        self.ack_elapsed = 0.0
        self.sample_app_limited = False
        self.newest_sent = -1.0  # send time of the newest segment delivered by this ACK
        self.acked = 0  # bytes this ACK delivered
        # the last sample (see sample())
        self.rate = 0.0  # bytes/s, 0: none
        self.interval = 0.0
        self.sample_delivered = 0
        self.is_app_limited = False
        self.rtt = -1.0  # send-to-ACK time of the newest segment delivered by the last ACK
        self.samples = 0
        # what tcp_info reports (Linux's tp->rate_delivered / rate_interval_us):
        # the last valid sample, an application-limited one only if it is no
        # lower than the one it replaces; an ACK without a sample keeps it
        self.reported = 0.0
        self.reported_app_limited = False
        # what the last ACK did, valid sample or not (for the controller)
        self.last_acked = 0  # bytes it delivered
        self.last_prior_delivered = -1  # C.delivered when its newest segment was sent
        self.last_lost = 0  # bytes it let RACK mark lost (the connection sets it)

    def __repr__(self):
        return (f"DeliveryRate(delivered {self.delivered}, rate {self.rate:.0f} B/s, "
                f"app_limited {self.app_limited})")

    def on_send(self, record, inflight: int, now: float) -> None:
        """``record`` (new or sent again) is going out with ``inflight``
        bytes already outstanding before it: snapshot the counters into it.
        The first segment of a flight after the pipe emptied starts the
        clocks anew (the draft's "C.first_sent_time = C.delivered_time = Now")."""
        if inflight <= 0:
            self.first_sent_time = self.delivered_time = now
        record.delivered = self.delivered
        record.delivered_time = self.delivered_time
        record.first_sent_time = self.first_sent_time
        record.app_limited = self.app_limited != 0

    def on_delivered(self, record, size: int, now: float) -> None:
        """``record`` (``size`` bytes) was newly delivered by this ACK."""
        self.delivered += size
        self.delivered_time = now
        self.acked += size
        # the newest-sent of the delivered segments sets the sample's interval
        if record.delivered >= self.prior_delivered:
            self.prior_delivered = record.delivered
            self.prior_time = record.delivered_time
            self.sample_app_limited = record.app_limited
            self.send_elapsed = record.sent - record.first_sent_time
            self.ack_elapsed = self.delivered_time - record.delivered_time
            self.first_sent_time = record.sent
        if record.sent > self.newest_sent and not record.flags & _RETRANS:
            self.newest_sent = record.sent  # Karn: a retransmission's time says nothing

    def sample(self, min_rtt: float, now: float) -> bool:
        """Close the ACK: the rate sample of what it delivered, if any, into
        ``rate``, ``interval``, ``sample_delivered``, ``is_app_limited`` and
        ``rtt``.  False (and ``rate`` 0) when the ACK delivered nothing or
        the interval is shorter than ``min_rtt`` (the draft: such a sample
        would overstate the rate; -1: no minimum known)."""
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0  # the app-limited stretch has been delivered
        acked, self.acked = self.acked, 0
        newest, self.newest_sent = self.newest_sent, -1.0
        self.last_acked = acked
        self.last_prior_delivered = self.prior_delivered
        if not acked or self.prior_delivered < 0:
            self.rate = 0.0
            self.rtt = -1.0
            return False
        self.rtt = now - newest if newest >= 0 else -1.0
        interval = max(self.send_elapsed, self.ack_elapsed)
        delivered = self.delivered - self.prior_delivered
        self.prior_delivered = -1
        self.is_app_limited = self.sample_app_limited
        if interval <= 0.0 or (min_rtt > 0 and interval < min_rtt):
            self.rate = 0.0
            return False
        self.interval = interval
        self.sample_delivered = delivered
        self.rate = rate = delivered / interval
        self.samples += 1
        if not self.is_app_limited or rate >= self.reported:
            self.reported = rate
            self.reported_app_limited = self.is_app_limited
        return True

    def mark_app_limited(self, inflight: int) -> None:
        """The sender has nothing to send and room in the window: samples
        until what is in flight now is delivered are application-limited."""
        self.app_limited = (self.delivered + inflight) or 1
