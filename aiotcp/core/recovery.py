"""Loss recovery: NewReno fast recovery (RFC 6582) and SACK-based recovery
(RFC 6675) with proportional rate reduction (RFC 6937).

One :class:`Recovery` per connection.  It holds the recovery episode
(whether one is running, its recovery point ``recover``, the duplicate-ACK
count, PRR's counters) and decides, on each ACK, what the connection does
next; it never sends.  Its decisions are one of the actions below, which
the connection carries out (``Connection._recover``):

========== ==========================================================
NOTHING    nothing to repair
ENTER      fast retransmit: enter fast recovery (the one way in)
REPAIR     SACK recovery goes on: resend what is lost as PRR allows
RESEND     losses found within an episode already over, before its
           recovery point (after an RTO): resend them, no new reduction
INFLATE    NewReno: another duplicate ACK in recovery (RFC 6582 3.2 4)
PARTIAL    NewReno: a partial ACK; resend the next hole, deflate
END        the episode is over (everything up to ``recover`` acknowledged)
========== ==========================================================

The window arithmetic is the congestion controller's (congestion.py); the
loss marks are RACK's (rack.py).  Sequence numbers are modulo 2**32.
"""
from __future__ import annotations

from .ranges import seq_offset

NOTHING, ENTER, REPAIR, RESEND, INFLATE, PARTIAL, END = range(7)
#: the actions by name, for Python (tests, the connection; compiled, the
#: names themselves are C constants of this module)
ACTIONS = {"nothing": NOTHING, "enter": ENTER, "repair": REPAIR, "resend": RESEND,
           "inflate": INFLATE, "partial": PARTIAL, "end": END}
#: RFC 5681 section 3.2: duplicate ACKs that trigger a fast retransmit
DUP_THRESH = 3


class Recovery:
    """The recovery state.  ``sack`` says which recovery this connection
    does (set when SACK is negotiated)."""

    def __init__(self):
        self.sack = False
        self.active = False  # in fast recovery
        self.recover = -1  # RFC 6582 "recover", -1 when passed (or none yet)
        self.dupacks = 0
        # RFC 6937
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = 0
        #: RFC 6937 DeliveredData of the ACK being processed
        self.delivered = 0
        #: flight - pipe during SACK recovery: what the sender may count
        #: beyond cwnd, since only the pipe is in the network
        self.pipe_credit = 0
        self.fast_retransmits = 0  # episodes entered
        self.sack_retransmits = 0  # lost segments resent in SACK recovery

    def __repr__(self):
        return (f"Recovery(active={self.active}, recover={self.recover}, dupacks={self.dupacks}, "
                f"prr {self.prr_delivered}/{self.prr_out} of {self.recover_fs})")

    def may_enter(self, snd_una: int) -> bool:
        """RFC 6582 section 3.2 step 2 (and RFC 6675's equivalent): a new
        episode only once the last one's recovery point is passed, so that
        one window of losses reduces the window once."""
        return self.recover < 0 or seq_offset(snd_una, self.recover) > 0

    def start(self, snd_max: int, flight: int) -> None:
        """Fast recovery begins with ``flight`` bytes outstanding; it lasts
        until everything up to ``snd_max`` is acknowledged."""
        self.recover = snd_max
        self.active = True
        self.fast_retransmits += 1
        if self.sack:
            self.prr_delivered = 0
            self.prr_out = 0
            self.recover_fs = flight

    def on_dupack(self, snd_una: int, lost_bytes: int, sacked_count: int) -> int:
        """A duplicate ACK (RFC 5681's, or RFC 6675's: one that SACKs new
        data).  With SACK, RACK decides what is lost (as in Linux, it
        replaces counting duplicate ACKs): ``lost_bytes`` marked lost start
        or continue the repair; DupThresh remains for a peer that negotiated
        SACK but sends no blocks (``sacked_count`` records SACKed)."""
        self.dupacks += 1
        if self.active:
            return REPAIR if self.sack else INFLATE
        if self.sack:
            if lost_bytes:
                return self.on_loss(snd_una)
            if self.dupacks >= DUP_THRESH and not sacked_count and self.may_enter(snd_una):
                return ENTER
            return NOTHING
        if self.dupacks == DUP_THRESH and self.may_enter(snd_una):
            return ENTER
        return NOTHING

    def on_loss(self, snd_una: int) -> int:
        """RACK marked losses: repair within the running episode, start
        one, or (before the last one's recovery point, as after an RTO)
        resend without a new window reduction, like Linux in its Loss
        state."""
        if self.active:
            return REPAIR
        if self.may_enter(snd_una):
            return ENTER
        return RESEND

    def on_new_ack(self, ack: int, lost_bytes: int) -> int:
        """An ACK of new data up to ``ack``: the episode ends at its
        recovery point (RFC 6582 3.2 step 3, RFC 6675 section 5), goes on
        below it (a partial ACK), or, outside recovery, RACK's marks may
        start one.  Outside recovery the caller grows the window first."""
        self.dupacks = 0
        if self.active:
            if seq_offset(ack, self.recover) >= 0:
                self.active = False
                self.pipe_credit = 0
                return END
            return REPAIR if self.sack else PARTIAL
        if self.recover >= 0 and seq_offset(ack, self.recover) >= 0:
            self.recover = -1
        if self.sack and lost_bytes:
            return self.on_loss(ack)
        return NOTHING

    def on_rto(self, snd_max: int) -> None:
        """A retransmission timeout ends any episode; losses found before
        ``snd_max`` is acknowledged belong to this one (RFC 6582 section 4)."""
        self.active = False
        self.pipe_credit = 0
        self.dupacks = 0
        self.recover = snd_max

    def on_sent(self, length: int) -> None:
        """``length`` bytes went out (PRR's prr_out counts them in recovery)."""
        if self.active:
            self.prr_out += length

    def window_credit(self, sacked: int) -> int:
        """What the sender may send beyond cwnd, given the bytes SACKed:
        cwnd bounds the pipe, not the flight (as Linux's
        tcp_packets_in_flight, outside recovery too, so that data held above
        a hole by the receiver does not hold back the sender): in recovery
        this ACK's pipe credit (the SACKed and the lost), outside it the
        SACKed."""
        return self.pipe_credit if self.active else sacked

    def prr(self, pipe: int, mss: int, ssthresh: int) -> int:
        """RFC 6937 section 3: how much may be sent on this ACK (sndcnt),
        from this ACK's DeliveredData (``delivered``, which it consumes):
        proportional while the pipe is above ssthresh, the slow start
        reduction bound (PRR-SSRB) below; the fast retransmit always goes."""
        self.prr_delivered += self.delivered
        if pipe > ssthresh:
            sndcnt = -(-self.prr_delivered * ssthresh // max(self.recover_fs, 1)) - self.prr_out
        else:
            limit = max(self.prr_delivered - self.prr_out, self.delivered) + mss
            sndcnt = min(ssthresh - pipe, limit)
        if self.prr_out == 0:
            sndcnt = max(sndcnt, mss)
        self.delivered = 0
        return sndcnt

    def set_pipe(self, flight: int, pipe: int) -> None:
        """The pipe after this ACK's repairs: new data may fill cwnd - pipe."""
        self.pipe_credit = max(flight - pipe, 0)
