"""A TCP connection (RFC 9293) as a deterministic state machine with no I/O.

Theory of operation
-------------------
A :class:`Connection` is driven only by calls that carry ``now`` (seconds,
in the caller's clock): :meth:`connect`, :meth:`send`, :meth:`read`,
:meth:`close`, :meth:`abort`, :meth:`receive` (a decoded segment arrived) and
:meth:`handle_timer`.  Each call may append datagrams to ``out`` as
``(bytes, remote_addr)`` pairs and events to ``events`` as ``(connection,
event)`` pairs, and leaves the next deadline in :meth:`next_deadline`.  It
never reads a clock, touches a socket, logs, or raises for anything a peer
sent: bad input is dropped and counted in ``stats``.

Every state change goes through :meth:`_set_state`.  Segment processing
follows RFC 9293 section 3.10.7 step by step, with RFC 5961's rules for RST,
SYN and ACK acceptance.  Sequence numbers are compared modulo 2**32 with the
helpers below.  Timers (retransmission, zero-window persist, delayed ACK,
TIME_WAIT) are deadlines on the connection; the endpoint keeps one timer-wheel
entry per connection at the earliest of them.

TIME_WAIT is held in a compact :class:`TimeWait` record: a connection that
enters TIME_WAIT delegates to one, and an endpoint swaps the connection for
the record so that thousands of them cost little memory.

Read these first
----------------
- RFC 9293: TCP itself; section 3.10 is the event processing this file follows.
- RFC 5961: which RSTs, SYNs and ACKs to believe (challenge ACKs).
- RFC 6298: the retransmission timer (rtt.py).
- RFC 5681, RFC 6582: congestion control and NewReno fast recovery
  (the window arithmetic is congestion.py's).
- RFC 7323: window scaling, timestamps, PAWS.
- RFC 2018, RFC 2883, RFC 6675, RFC 6937: SACK, D-SACK, SACK-based recovery, PRR.
- RFC 8985: RACK-TLP, time-based loss detection and tail loss probes.
- RFC 1122 section 4.2: the host requirements (delayed ACK, SWS avoidance,
  keepalive, RST on close with unread data).
- docs/wire-format.md: how a segment travels in a UDP datagram.
"""
from __future__ import annotations

import enum
import errno
from collections import Counter

from .. import _fast
from .._fast import ACK, FIN, PSH, RST, SYN, SendBuffer, encode_run, encode_segment
from .config import DEFAULT, Config
from .congestion import create as create_congestion_control
from .events import Closed, Connected, DataReadable, FinAcked, PeerClosed, Retransmission, StateChanged, Writable
from .pmtu import PathSearch
from .rate import DeliveryRate
from .rack import RACK_FLAGS, Rack, segments
from .ranges import RangeSet
from .recovery import ACTIONS, Recovery
from .receive import ReceiveBuffer
from .rtt import RttEstimator

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31
#: a timer that is not running (deadlines are floats, so that the compiled
#: connection keeps them as C doubles)
NEVER = float("inf")
#: seconds: a stream from the peer silent this long (or 2 RTO) is probed, and
#: again at doubling intervals while it stays silent, by a connection that
#: sends NAT keepalives (_on_nat_keepalive)
NAT_STALL = 1.0


# the events without fields carry nothing but their class: one instance each
_CONNECTED = Connected()
_WRITABLE = Writable()
_DATA_READABLE = DataReadable()
_PEER_CLOSED = PeerClosed()
_FIN_ACKED = FinAcked()
#: and one StateChanged per (old, new) pair, made on first use and shared
#: (an event is never changed once made): a connection changes state about
#: five times, each a Python object to make before this
_STATE_EVENTS: dict = {}

def seq_lt(a: int, b: int) -> bool:
    """a < b in sequence space (RFC 9293 section 3.4)."""
    return 0 < ((b - a) & MASK) < HALF


def seq_le(a: int, b: int) -> bool:
    return ((b - a) & MASK) < HALF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & MASK) < HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & MASK) < HALF


def seq_add(a: int, n: int) -> int:
    """a + n in sequence space."""
    return (a + n) & MASK


def ts_offset(iss: int) -> int:
    """Where a connection's timestamp clock (milliseconds) starts, derived
    from its ISS: unrelated between connections (RFC 7323 section 7.1), and
    known to a SYN-cookie SYN-ACK before the connection exists."""
    x = iss & MASK  # compiled: unsigned 64 bits, so the product wraps as & MASK expects
    return (x * 2654435761) & MASK


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


class State(enum.Enum):
    """The eleven states of RFC 9293 section 3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RCVD = "SYN_RCVD"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    def __str__(self):
        return self.value

    # identity hashing: Enum's own __hash__ is Python code, and the state sets
    # below are consulted on every segment
    __hash__ = object.__hash__


CLOSED = State.CLOSED
LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RCVD = State.SYN_RCVD
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT

#: States in which our SYN has been acknowledged and data may flow.
SYNCHRONIZED = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT})
#: States in which received data is accepted into the buffer.
RECEIVING = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
#: States in which the user may still queue data.
SENDING = frozenset({SYN_SENT, SYN_RCVD, ESTABLISHED, CLOSE_WAIT})

#: a RACK record's lost mark (a C constant when compiled)
_LOST, _SACKED = RACK_FLAGS["lost"], RACK_FLAGS["sacked"]
#: the recovery unit's actions (C constants when compiled)
END, ENTER, INFLATE = ACTIONS["end"], ACTIONS["enter"], ACTIONS["inflate"]
PARTIAL, REPAIR, RESEND = ACTIONS["partial"], ACTIONS["repair"], ACTIONS["resend"]


#: Pacing's burst: at most this many seconds' worth of the rate leaves at
#: once (the timer wheel's tick, which the pacing timer cannot beat).
PACING_QUANTUM = 0.001
#: How late the pacing timer may fire and the credit still count: the
#: wheel's tick and the event loop's millisecond timeouts each add up to a
#: millisecond.  Without it a bucket as deep as a quantum loses what a late
#: timer earned, and the sender falls behind its rate (measured: 0.75 of it
#: at 20 Mbit/s, which BBR took for a falling bandwidth).
PACING_SLACK = 0.002
#: MSS assumed when the peer sends no MSS option (RFC 9293 section 3.7.1).
DEFAULT_PEER_MSS = 536
#: The path MTU search's floor (RFC 8899 BASE_PLPMTU): a segment of this
#: many bytes (TCP header included: the UDP payload) crosses any path UDP
#: crosses in practice, as QUIC assumes.
BASE_SEGMENT = 1200
#: Quick ACK mode (as Linux's, TCP_MAX_QUICKACKS): after out-of-order data
#: (something went missing) or a duplicate (our ACK went missing), this many
#: in-order segments are each acknowledged at once, neither delayed nor left
#: to the end of the receive batch, so that a sender in recovery, or one
#: whose ACKs are being lost, gets every ACK it can (RFC 5681 section 4.2).
_QUICKACKS = 16


class ConnectionStateError(RuntimeError):
    """An operation the connection's state does not allow (a caller bug)."""


class TimeWait:
    """The compact TIME_WAIT record (RFC 9293 section 3.10.7.4, TIME_WAIT).

    Holds only what TIME_WAIT needs: the identity, the sequence numbers to
    re-ACK a retransmitted FIN, and the deadline.  ``receive`` returns True
    while the record should live on.

    What it answers is Linux's (tcp_timewait_state_process): a retransmitted
    FIN, or data, is acknowledged; an in-window bare ACK is not (only a lost
    FIN needs our ACK again, and two TIME_WAITs that each answered the
    other's ACK, after a simultaneous close, would ACK each other until
    both expire); any other segment draws at most one ACK per
    ``Config.invalid_ratelimit`` (RFC 5961 section 7); a RST ends the
    record only at rcv_nxt exactly, so a blind one cannot (RFC 1337's
    assassination, in Linux's tcp_rfc1337 = 0 form)."""

    __slots__ = ("local_port", "remote_port", "remote_addr", "snd_nxt", "rcv_nxt",
                 "window", "deadline", "duration", "out", "stats", "timer", "tracer",
                 "ts_offset", "ts_recent", "ratelimit", "last_invalid_ack")

    state = TIME_WAIT

    def __init__(self, local_port, remote_port, remote_addr, snd_nxt, rcv_nxt, window,
                 now, duration, out, stats, tracer=None, ts_offset=None, ts_recent=0, ratelimit=0.5):
        #: ``ts_offset`` is the connection's timestamp clock offset when
        #: timestamps were negotiated (None otherwise): RFC 7323 section 3.2
        #: puts them on every segment but a RST, these ACKs included
        self.ts_offset = ts_offset
        self.ts_recent = ts_recent
        self.local_port = local_port
        self.remote_port = remote_port
        self.remote_addr = remote_addr
        self.snd_nxt = snd_nxt
        self.rcv_nxt = rcv_nxt
        self.window = window
        self.duration = duration
        self.deadline = now + duration
        self.out = out
        self.stats = stats
        self.timer = None
        self.tracer = tracer
        self.ratelimit = ratelimit
        self.last_invalid_ack = -ratelimit

    def next_deadline(self):
        return self.deadline

    def _ack(self, now):
        ts = None
        if self.ts_offset is not None:
            ts = ((int(now * 1000) + self.ts_offset) & MASK, self.ts_recent)
        datagram = _fast.encode(self.local_port, self.remote_port, self.snd_nxt, self.rcv_nxt, ACK, self.window,
                                ts=ts)
        self.out.append((datagram, self.remote_addr))
        if self.tracer is not None:
            self.tracer.segment(self, "out", datagram, self.remote_addr)

    def receive(self, seg, now) -> bool:
        """Process a segment; False means the record is finished."""
        flags = seg.flags
        at_rcv_nxt = seg.seq == self.rcv_nxt
        if flags & RST:
            if not at_rcv_nxt:
                self.stats["time_wait_rst_ignored"] += 1
                return True
            # Linux (tcp_rfc1337 = 0): a RST at rcv_nxt ends TIME_WAIT at once
            self.stats["time_wait_killed_by_rst"] += 1
            return False
        if flags & SYN and not flags & ACK and seq_gt(seg.seq, self.rcv_nxt):
            # RFC 9293 / RFC 6191: a new incarnation may reuse the 4-tuple
            self.stats["time_wait_reused"] += 1
            return False
        if self.ts_offset is not None and seg.has_ts and seq_ge(seg.ts_val, self.ts_recent):
            self.ts_recent = seg.ts_val
        payload = len(seg.payload)
        if at_rcv_nxt and not payload and not flags & (FIN | SYN):
            self.stats["time_wait_bare_acks"] += 1  # nothing lost that our ACK would recover
            return True
        if flags & FIN:
            # a retransmitted FIN: acknowledge it and restart the 2MSL timer
            self.deadline = now + self.duration
        elif not payload or flags & SYN:
            # not data (which is never part of an ACK loop): rate-limited
            if now - self.last_invalid_ack < self.ratelimit:
                self.stats["time_wait_acks_suppressed"] += 1
                return True
            self.last_invalid_ack = now
        self.stats["time_wait_acks"] += 1
        self._ack(now)
        return True

    def handle_timer(self, now) -> bool:
        return now < self.deadline


def _optional(field: str, absent: float, doc: str, settable: bool = False) -> property:
    """A property showing the float ``field`` as None when it holds ``absent``."""
    def get(self):
        value = getattr(self, field)
        return None if value == absent else value

    def set(self, value):
        setattr(self, field, absent if value is None else value)

    return property(get, set if settable else None, doc=doc)


class Connection:
    """One TCP connection.  See the module docstring for the calling
    convention.  Attribute names follow RFC 9293 (``snd_una``, ``snd_nxt``,
    ``snd_wnd``, ``rcv_nxt``, ``rcv_wnd``, ``iss``, ``irs``)."""

    def __init__(self, config: Config = DEFAULT, *, local_port: int, remote_port: int,
                 remote_addr=None, iss: int = 0, now: float = 0.0, out: list | None = None,
                 events: list | None = None, stats: Counter | None = None,
                 ipv6: bool = False, endpoint=None, tracer=None):
        #: RTT estimation and the RTO (RFC 6298), see rtt.py
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max, config.timer_tick)
        self.config = config
        self._size_buffers(config)
        self.local_port = local_port
        self.remote_port = remote_port
        self.remote_addr = remote_addr
        self.out = out if out is not None else []
        self.events = events if events is not None else []
        self.stats = stats if stats is not None else Counter()
        self.endpoint = endpoint
        self.tracer = tracer
        self.listener = None
        self.half_open = False  # counted in its listener's SYN queue
        self.passive = False  # opened from LISTEN
        self.timer = None  # the endpoint's timer-wheel entry, in its wheel
        self.wheel = endpoint.wheel if endpoint is not None else None
        self.state = CLOSED
        # membership of the state in SYNCHRONIZED, SENDING and RECEIVING,
        # kept by _set_state (compiled: C flags instead of set lookups)
        self._synchronized = self._sending = self._receiving = False
        self.error: BaseException | None = None
        #: the last ICMP error the peer's side sent that did not end the
        #: connection (Linux's sk_err_soft): the error a timeout reports
        #: instead of its own, until an ACK shows the path works again
        self._soft_error: BaseException | None = None
        self.closed_by_user = False
        #: Set by a layer whose user will never read again (a full close):
        #: in-order data is acknowledged and counted, but not buffered.
        self.discard_input = False
        self._closed_reported = False
        self.time_wait: TimeWait | None = None

        # send sequence space
        self.iss = iss & MASK
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.snd_max = self.iss  # highest sequence number sent, plus one
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.snd_wscale = 0
        self.local_mss = config.local_mss(ipv6)
        self.peer_mss = DEFAULT_PEER_MSS
        self.mss = min(self.local_mss, DEFAULT_PEER_MSS)
        #: the path MTU search (pmtu.py): the largest segment (UDP payload)
        #: the path carries, _seg_max, between its base and _seg_limit
        self._seg_limit = self.local_mss + 20
        self.pmtu = PathSearch(self._seg_limit, config.pmtu_discovery, BASE_SEGMENT, 48 if ipv6 else 28)
        self._seg_max = self.pmtu.size
        self._probe_len = 0  # payload of the probe the search wants next (0: none)
        self._probe_seq = self._probe_end = -1  # the probe in flight (-1: none)
        self._probe_size = 0
        self._sndbuf = SendBuffer()
        # _sndbuf[0] holds sequence number _sndbuf_seq, the oldest
        # unacknowledged byte: acknowledged bytes leave it at once (a C
        # SendBuffer drops from the front in O(1) and keeps its storage)
        self._sndbuf_seq = (self.iss + 1) & MASK
        self._fin_queued = False
        self.fin_seq: int | None = None  # sequence number our FIN occupies
        self.low_water: int | None = None
        # an ACK of this receive batch woke the writer (see _whole_runs)
        self._waking = False

        # receive sequence space
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_wscale = config.receive_wscale if config.window_scaling else 0
        self._rcv_adv = 0  # right edge of the window we advertised
        # receive-buffer autotuning (_rcv_space_adjust): what the reader took
        # in the last measured round trip, and where and when this one began;
        # the round trip as the receiver sees it (timestamps' echo)
        self._rcvq_space = 10 * DEFAULT_PEER_MSS
        self._rcvq_seq = -1
        self._rcvq_time = 0.0
        self._rcv_rtt = 0.0
        #: the bytes received and not yet read, in order and out of order (receive.py)
        self.rcv_buffer = ReceiveBuffer()
        self._ooo_fin: int | None = None  # sequence number of an out-of-order FIN
        self.fin_received = False
        self._readable_pending = False
        self._ack_pending = 0
        self._ack_queued = False  # in the endpoint's end-of-batch ACK list
        self._quickack = 0  # in-order segments still to ACK at once (see _QUICKACKS)
        self._wscale_ok = False
        self._last_ack_sent = 0

        # timestamps (RFC 7323): our clock is in milliseconds from a
        # per-connection offset; ts_recent is the peer's value we echo
        self._now = now
        self.ts_ok = False
        self.ts_recent = 0
        self._ts_recent_stamp = now
        self._ts_offset = ts_offset(self.iss)

        # SACK (RFC 2018, 2883, 6675)
        self.sack_ok = False
        #: the SACK scoreboard (RFC 6675 section 3): what the peer holds above snd_una
        self.scoreboard = RangeSet(iss)
        self._last_ooo_seq: int | None = None
        self._dsack: tuple[int, int] | None = None
        self._last_send = now

        # timers
        self.retries = 0
        self._rtt_seq = -1  # the segment end being timed (RFC 6298), -1: none
        self._rtt_time = 0.0
        self._syn_sent_at: float | None = None
        self._rto_at = NEVER
        self._persist_at = NEVER
        self._persist_backoff = 0
        self._delack_at = NEVER
        # a connection the user released (see release()): until everything
        # sent and the FIN are acknowledged, Config.linger; then, in
        # FIN_WAIT_2, Config.fin_timeout
        self._orphan_at = NEVER
        self._keepalive_at = NEVER
        self.keepalive_probes = 0
        self._user_timeout_at = NEVER
        self._pto_at = NEVER  # tail loss probe (RFC 8985)
        self._reo_at = NEVER  # RACK reordering window timer
        self._nat_at = NEVER  # NAT keepalive (Config.nat_keepalive)
        self._last_out = now  # when the last segment went out
        self.nat_keepalives = 0
        # when in-order data last came, when the last NAT probe went out
        self._data_in_at = -1e18
        self._nat_probed_at = -1e18
        self._nat_stall_probes = 0  # probes since in-order data last came
        # path migration (Config.migration): the new address being
        # validated, the TSval of its challenge, when it was sent
        self._path_addr = None
        self._path_ts = 0
        self._path_sent_at = -1e18
        self.migrations = 0
        #: a hole-punching attempt (set before connect()): in SYN_SENT a
        #: RST or an ICMP error does not end it, the SYNs go on
        self.punching = False
        #: RACK-TLP (RFC 8985): the transmission records and loss marks (rack.py)
        self.rack = Rack()
        self._last_invalid_ack = -1e18
        self._challenge_count_window = -1e18
        self._challenge_count = 0

        # congestion control and loss recovery (RFC 5681, RFC 6582)
        self.cc = create_congestion_control(config.congestion_control, self.mss, now)
        #: delivery-rate estimation (rate.py), for a controller that asks for
        #: it (BBR), from the handshake on when SACK was agreed
        self.rate = None
        self._lost_seen = 0  # rack.lost_marked when the last rate sample was taken
        # pacing: the credit (bytes) the token bucket held at _pace_stamp,
        # and the pacing timer (NEVER: none)
        self._pace_credit = 0.0
        self._pace_stamp = 0.0
        self._pace_at = NEVER
        #: NewReno and SACK recovery with PRR (recovery.py)
        self.recovery = Recovery()

        # counters for the TCP-info snapshot
        self.segments_sent = 0
        self.segments_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.bytes_acked = 0
        self.segments_retransmitted = 0
        self.bytes_retransmitted = 0
        self.rto_count = 0

    # ------------------------------------------------------------------ API

    # the timers as None (not running) or a time, and the RTT estimates as
    # None (no sample yet) or seconds, for the layers above and the tests
    rto_deadline = _optional("_rto_at", NEVER, "retransmission timer (RFC 6298)")
    persist_deadline = _optional("_persist_at", NEVER, "zero-window persist timer")
    delack_deadline = _optional("_delack_at", NEVER, "delayed ACK timer")
    orphan_deadline = _optional("_orphan_at", NEVER, "a released connection's linger or FIN_WAIT_2 timer")
    keepalive_deadline = _optional("_keepalive_at", NEVER, "keepalive timer")
    user_timeout_deadline = _optional("_user_timeout_at", NEVER, "user timeout")
    pto_deadline = _optional("_pto_at", NEVER, "tail loss probe timer (RFC 8985)")
    reo_deadline = _optional("_reo_at", NEVER, "RACK reordering timer (RFC 8985)")
    nat_keepalive_deadline = _optional("_nat_at", NEVER, "NAT keepalive timer (Config.nat_keepalive)")
    @property
    def srtt(self) -> float | None:
        """Smoothed RTT in seconds (RFC 6298), None before the first sample."""
        return self.rtt.srtt

    @property
    def min_rtt(self) -> float | None:
        """The lowest RTT sample in seconds, None before the first."""
        return self.rtt.min_rtt

    @property
    def rto(self) -> float:
        """The retransmission timeout in seconds (RFC 6298)."""
        return self.rtt.rto

    @property
    def rttvar(self) -> float:
        return self.rtt.variation

    @property
    def read_buffered(self) -> int:
        """Bytes received in order and not yet read."""
        return self.rcv_buffer.buffered

    @property
    def reo_wnd(self) -> float:
        """RACK's reordering window now, in seconds (RFC 8985 section 6.2)."""
        return self.rack.reo_wnd(self.rtt.lowest, self.rtt.smoothed, self.recovery.active, self._timer_tick)

    @property
    def synchronized(self) -> bool:
        """In a state where our SYN is acknowledged (RFC 9293's synchronized states)."""
        return self._synchronized

    @property
    def sacked_bytes(self) -> int:
        """Bytes the peer's SACK blocks say it holds above snd_una."""
        return self.scoreboard.total

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """The configuration is frozen; the values the per-segment path reads
        are copied into plain (compiled: C) fields when it is set."""
        self._config = config
        (self._nodelay, self._delayed_ack, self._ack_coalescing, self._keepalive, self._tlp, self._ss_after_idle,
         self._user_timeout, self._nat_keepalive, self._timer_tick, self._pacing, self._max_pacing_rate,
         rto_initial, rto_min, rto_max) = config.per_connection
        self._nat_quick = min(self._nat_keepalive, NAT_STALL)
        self.rtt.configure(rto_initial, rto_min, rto_max, self._timer_tick)

    def __repr__(self):
        return (f"<Connection {self.local_port}->{self.remote_addr}:{self.remote_port} "
                f"{self.state}>")

    @property
    def receive_buffer(self) -> int:
        """The receive buffer's size now, as autotuning left it (the send
        buffer's is ``send_buffer``)."""
        return self._rcvbuf_size

    @property
    def rcv_wnd(self) -> int:
        """The receive window we currently advertise."""
        return max(0, seq_diff(self._rcv_adv, self.rcv_nxt))

    @property
    def send_buffered(self) -> int:
        """Bytes queued by the user and not yet acknowledged."""
        return len(self._sndbuf)

    def _data_end(self) -> int:
        """Sequence number just past the last byte the user queued."""
        return (self._sndbuf_seq + len(self._sndbuf)) & MASK

    def connect(self, now: float) -> None:
        """Active open (RFC 9293 section 3.10.1): send a SYN."""
        self._now = now
        if self.state is not CLOSED:
            raise ConnectionStateError(f"connect() in {self.state}")
        self._set_state(SYN_SENT, now)
        self.snd_nxt = self.snd_max = (self.iss + 1) & MASK
        self._send_syn(now, ack=False)
        self._start_rto(now)
        self._rearm()

    def accept_syn(self, seg, now: float) -> None:
        """Passive open from LISTEN (section 3.10.7.2) with the peer's SYN:
        enter SYN_RCVD and answer with a SYN-ACK."""
        self._now = now
        self.passive = True
        self._set_state(SYN_RCVD, now)
        self._take_peer_syn(seg)
        self.snd_nxt = self.snd_max = (self.iss + 1) & MASK
        self._send_syn(now, ack=True)
        self._start_rto(now)
        self._rearm()

    def accept_cookie(self, seg, mss: int, now: float, options=None) -> None:
        """Establish from a valid SYN-cookie ACK (RFC 4987): the SYN-ACK we
        sent statelessly is taken as sent and acknowledged.  ``options`` is
        (peer window scale or -1, SACK permitted) when the SYN-ACK carried
        them in its timestamp, as Linux does; otherwise the connection runs
        without window scaling, SACK and timestamps."""
        self._now = now
        config = self.config
        self.irs = (seg.seq - 1) & MASK
        self.rcv_nxt = seg.seq
        self.snd_wl1 = self.irs
        self.snd_wl2 = self.iss
        self.rcv_wscale = 0
        if options is not None and seg.has_ts and config.timestamps:
            wscale, sack = options
            self.ts_ok = True
            self.ts_recent = seg.ts_val
            self._ts_recent_stamp = now
            self.sack_ok = self.recovery.sack = sack and config.sack
            if wscale >= 0 and config.window_scaling:
                self._wscale_ok = True
                self.snd_wscale = min(wscale, 14)
                self.rcv_wscale = config.receive_wscale
        self._set_peer_mss(mss)
        self.snd_nxt = self.snd_max = (self.iss + 1) & MASK  # our SYN-ACK, not yet acked
        self._rcv_adv = (self.rcv_nxt + min(config.receive_buffer, 0xFFFF)) & MASK
        self.passive = True
        self._set_state(SYN_RCVD, now)
        self.receive(seg, now)

    def send(self, data, now: float, push: bool = True) -> None:
        """Queue data (RFC 9293 section 3.10.2) and send what the windows
        allow; with ``push`` false only queue it, for :meth:`push` (or a
        close) to send later with what else is written meanwhile."""
        self._now = now
        if not self._sending or self._fin_queued:
            raise ConnectionStateError(f"send() in {self.state}" + (" after close" if self._fin_queued else ""))
        if not data:
            return
        self._sndbuf.extend(data)
        self._waking = False  # the writer an ACK woke has written
        if push:
            if self._synchronized:
                self._push(now)
            self._rearm()

    def push(self, now: float) -> None:
        """Send what the windows allow of the data queued (by
        ``send(push=False)``); nothing once the connection has closed."""
        self._now = now
        if self._synchronized and self.state is not CLOSED:
            self._push(now)
            self._rearm()

    def read(self, limit: int = -1) -> bytes:
        """Take up to ``limit`` bytes (all if negative) of in-order data.
        Reading opens the window; a window update is sent when it opened by
        at least min(buffer / 2, MSS) (RFC 1122 section 4.2.3.3)."""
        return self._taken(self.rcv_buffer.read(limit))

    def read_chunk(self) -> bytes:
        """Take the oldest piece of in-order data as it is kept: one
        segment's payload, or one coalesced run's, whole (b"" when nothing
        is buffered).  A reader that hands data on piece by piece (a
        protocol's data_received()) gets the pieces with no join."""
        return self._taken(self.rcv_buffer.read_chunk())

    def _taken(self, data: bytes) -> bytes:
        """What a read took opens the window (see read())."""
        self._readable_pending = False
        if self._rcvbuf_max > self._rcvbuf_size:
            self._rcv_space_adjust()
        if data and self._receiving:
            if self._window_update_due() and self._owe_ack():
                self._rearm()
        return data

    def _owe_ack(self) -> bool:
        """An ACK is due (every second segment, or a window update after a
        read): at the end of the endpoint's receive batch while one is open
        (Config.ack_coalescing), so that what else the batch brings, or a
        reply written before the batch ends, carries it; else at once.
        True when it was sent at once."""
        if not self._ack_queued:
            if not self._ack_coalescing or self.endpoint is None or not self.endpoint.defer_ack(self):
                self._send_ack()
                return True
            self._ack_queued = True
        if not self._ack_pending:
            self._ack_pending = 1  # a window update owes an ACK too
        return False

    def send_deferred_ack(self, now: float = -1.0) -> None:
        """The receive batch ended (the endpoint calls this for each
        connection whose ACK it deferred, ``now`` its end; negative: the
        time of the last segment): send what a writer woken in the batch
        did not add to (see _whole_runs), then the ACK if still owed."""
        self._ack_queued = False
        if self._waking:
            self._waking = False
            self.push(now if now >= 0 else self._now)
        if self._ack_pending and self.state is not CLOSED and self.time_wait is None:
            self._send_ack()
            self._rearm()

    def close(self, now: float) -> None:
        """Close our side (RFC 9293 section 3.10.4): a FIN follows the data
        already queued.  The connection can still receive (half-close)."""
        self._now = now
        state = self.state
        self.closed_by_user = True
        if state in (CLOSED, LISTEN, SYN_SENT):
            self._finish(now, None)
        elif state in (SYN_RCVD, ESTABLISHED, CLOSE_WAIT):
            if not self._fin_queued:
                self._fin_queued = True
                if state is ESTABLISHED:
                    self._set_state(FIN_WAIT_1, now)
                elif state is CLOSE_WAIT:
                    self._set_state(LAST_ACK, now)
                if state is not SYN_RCVD:
                    self._push(now)
        self._rearm()

    def _size_buffers(self, config: Config) -> None:
        """The buffers' sizes and autotuning's limits (0: fixed), from the
        configuration: when the connection is made and when an option
        sets them again (SO_RCVBUF, SO_SNDBUF); other options leave what
        autotuning grew alone."""
        self._rcvbuf_size, self._rcvbuf_max, self.send_buffer, self._sndbuf_max = config.buffer_sizes

    def reconfigure(self, now: float, **changes) -> None:
        """Change this connection's options alone (what a socket option does
        to one kernel socket): ``changes`` are :class:`Config` fields, such
        as ``nodelay``, ``keepalive``, ``keepalive_idle``, ``user_timeout``.
        The timers that depend on them restart from ``now``."""
        self._now = now
        self.config = self._config.replace(**changes)
        if changes.keys() & {"receive_buffer", "receive_buffer_max", "send_buffer", "send_buffer_max"}:
            self._size_buffers(self._config)
        if self._keepalive:
            self._heard_from_peer(now)
        else:
            self._keepalive_at = NEVER
        if self._user_timeout < 0:
            self._stop_user_timeout()
        elif self.snd_max != self.snd_una:
            self._start_user_timeout(now)
        if "nodelay" in changes and self._synchronized:
            self._push(now)  # what Nagle held goes now
        self._rearm()

    def release(self, now: float) -> None:
        """The user is done with the connection both ways, as a socket's
        ``close()`` (the asyncio transport's ``close()``): it will never
        read again, and a FIN follows what it queued.

        As Linux's tcp_close() (RFC 1122 section 4.2.2.13, RFC 9293 section
        3.6.1): in-order data the user never read makes it a reset, not an
        orderly close, so the peer learns its data was not taken (and data
        that arrives afterwards draws a RST too, see
        ``_process_text_and_fin``).  Otherwise the connection finishes on
        its own; if what it sent and its FIN are still unacknowledged after
        ``Config.linger`` seconds, it gives up with a RST."""
        self._now = now
        self.discard_input = True
        if self.rcv_buffer.buffered and self.state in (SYN_RCVD, ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2):
            self.stats["resets_unread_data"] += 1
            self.rcv_buffer.discard()
            self.abort(now)
            return
        self.close(now)
        linger = self._config.linger
        if linger is not None and self.state in (SYN_RCVD, FIN_WAIT_1, CLOSING, LAST_ACK):
            self._orphan_at = now + linger
            self._rearm()

    def abort(self, now: float) -> None:
        """Abort (RFC 9293 section 3.10.5): send a RST if synchronized and
        forget everything."""
        self.closed_by_user = True
        self._reset(now, self.snd_max, None)

    def _reset(self, now: float, seq: int, error) -> None:
        """Send a RST with sequence number ``seq`` if there is a peer to
        tell, and close with ``error`` (None: the user's own doing)."""
        if self.state is SYN_RCVD or (self.state in SYNCHRONIZED and self.state is not TIME_WAIT):
            self._emit(RST | ACK, seq, self.rcv_nxt, window=0)
            self.stats["rst_sent"] += 1
        self._finish(now, error)

    def report_error(self, error: BaseException, now: float) -> None:
        """A hard error from below (an ICMP port unreachable on the UDP
        socket, RFC 1122 section 4.2.3.9): the connection fails with it."""
        if self.state in (CLOSED, TIME_WAIT):
            return
        if self.punching and self.state is SYN_SENT:
            self.stats["icmp_while_punching"] += 1  # no mapping at the peer's NAT yet
            return
        self._fail(now, error)

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timer` has work, or None."""
        best = self._deadline()
        return None if best == NEVER else best

    def _deadline(self) -> float:
        """:meth:`next_deadline` as a float, NEVER for none (a C double)."""
        if self.time_wait is not None:
            return self.time_wait.deadline
        return min(self._rto_at, self._persist_at, self._delack_at, self._orphan_at,
                   self._keepalive_at, self._user_timeout_at, self._pto_at, self._reo_at, self._nat_at,
                   self._pace_at)

    def info(self) -> dict:
        """A TCP-info snapshot (like Linux's struct tcp_info)."""
        return {
            "state": str(self.state),
            "rtt": self.srtt,
            "rttvar": self.rttvar,
            "rto": self.rtt.rto,
            "mss": self.mss,  # today's, within the path's size (Linux tcpi_snd_mss)
            "mss_max": min(self.local_mss, self.peer_mss) - (12 if self.ts_ok else 0),  # the handshake's
            "snd_una": self.snd_una, "snd_nxt": self.snd_nxt, "rcv_nxt": self.rcv_nxt,
            "snd_wnd": self.snd_wnd, "rcv_wnd": self.rcv_wnd,
            "snd_wscale": self.snd_wscale, "rcv_wscale": self.rcv_wscale,
            "cwnd": self.cc.cwnd, "ssthresh": self.cc.ssthresh,
            "congestion_control": self.cc.name, "hystart_exits": self.cc.hystart_exits,
            "pacing_rate": self._pacing_rate() if self._pacing else 0.0,
            "delivery_rate": self.rate.reported if self.rate is not None else self._delivery_rate(),
            "delivery_rate_app_limited": self.rate.reported_app_limited if self.rate is not None else False,
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
            "bytes_acked": self.bytes_acked,
            "segments_sent": self.segments_sent, "segments_received": self.segments_received,
            "segments_retransmitted": self.segments_retransmitted,
            "bytes_retransmitted": self.bytes_retransmitted,
            "rto_count": self.rto_count, "fast_retransmits": self.recovery.fast_retransmits,
            "sack_ok": self.sack_ok, "ts_ok": self.ts_ok, "sack_retransmits": self.recovery.sack_retransmits,
            "sacked_bytes": self.scoreboard.total, "tail_loss_probes": self.rack.probes,
            "rack_losses": self.rack.losses, "lost_retransmits": self.rack.lost_retransmits,
            "dsacks": self.rack.dsacks, "min_rtt": self.min_rtt,
            "prr_delivered": self.recovery.prr_delivered, "prr_out": self.recovery.prr_out,
            "migrations": self.migrations, "nat_keepalives": self.nat_keepalives,
            # the path MTU in IP bytes, and the segment (UDP payload) it leaves
            "pmtu": self._seg_max + self.pmtu.overhead,
            "pmtu_segment": self._seg_max, "pmtu_lowered": self.pmtu.lowered,
            "pmtu_black_holes": self.pmtu.black_holes, "pmtu_probes": self.pmtu.probes,
            "pmtu_probe_losses": self.pmtu.probe_losses, "pmtu_searching": self.pmtu.probe > 0,
            "send_buffered": len(self._sndbuf), "read_buffered": self.rcv_buffer.buffered,
            # the buffers' sizes now, as autotuning left them (Linux's
            # sk_sndbuf, sk_rcvbuf), and the receiver's round trip (rcv_rtt)
            "send_buffer": self.send_buffer, "receive_buffer": self._rcvbuf_size,
            "rcv_rtt": self._rcv_rtt, "rcv_space": self._rcvq_space,
            **self.cc.info(),
        }

    def _delivery_rate(self) -> float:
        """Without a rate unit: the window over the smoothed RTT (bytes/s)."""
        srtt = self.rtt.smoothed
        return min(self.cc.cwnd, self.max_snd_wnd or self.cc.cwnd) / srtt if srtt > 0 else 0.0

    def _pacing_rate(self) -> float:
        """The controller's pacing rate under Config.max_pacing_rate (bytes/s; 0: unpaced)."""
        rate = self.cc.pacing_rate()
        cap = self._max_pacing_rate
        if cap > 0 and (rate <= 0 or rate > cap):
            return cap
        return rate

    # -------------------------------------------------------- state changes

    def _set_state(self, new: State, now: float) -> None:
        """The one place where the state changes."""
        old = self.state
        if old is new:
            return
        self.state = new
        self._synchronized = new in SYNCHRONIZED
        self._sending = new in SENDING
        self._receiving = new in RECEIVING
        event = _STATE_EVENTS.get((old, new))
        if event is None:
            event = _STATE_EVENTS[(old, new)] = StateChanged(old, new)
        self.events.append((self, event))
        if self.tracer is not None:
            self.tracer.state(self, old, new, now)
        if new is ESTABLISHED and old in (SYN_SENT, SYN_RCVD):
            if self.cc.rate_samples and self.rate is None:
                self._start_rate_samples(now)
            self._heard_from_peer(now)
            self._start_nat_keepalive(now)
            self.events.append((self, _CONNECTED))
            if self.endpoint is not None:
                self.endpoint.on_established(self)
        elif new is FIN_WAIT_2:
            self.events.append((self, _FIN_ACKED))
            if self.discard_input:
                # the user will never read again: do not wait for the peer forever
                self._orphan_at = now + self._config.fin_timeout
        elif new is TIME_WAIT:
            self._clear_timers()
            self.time_wait = TimeWait(self.local_port, self.remote_port, self.remote_addr,
                                      self.snd_max, self.rcv_nxt, self._window_field(), now,
                                      self._config.time_wait, self.out, self.stats, self.tracer,
                                      self._ts_offset if self.ts_ok else None, self.ts_recent,
                                      self._config.invalid_ratelimit)
            self._report_closed(None)
            if self.endpoint is not None:
                self.endpoint.on_time_wait(self)
        elif new is CLOSED:
            self._clear_timers()
            self.time_wait = None
            self._report_closed(self.error)
            if self.endpoint is not None:
                self.endpoint.on_closed(self)

    def _clear_timers(self) -> None:
        """Stop every timer (TIME_WAIT and CLOSED: the record's own, or none)."""
        self._rto_at = self._persist_at = self._delack_at = NEVER
        self._orphan_at = self._keepalive_at = self._user_timeout_at = NEVER
        self._pto_at = self._reo_at = self._nat_at = self._pace_at = NEVER

    def _start_rate_samples(self, now: float) -> None:
        """The handshake is done and the controller wants rate samples: they
        come from RACK's per-segment records, which exist with SACK.  A peer
        without SACK gets CUBIC instead (counted, logged by the layer
        above as the stats say)."""
        if self.sack_ok:
            self.rate = DeliveryRate()
            self.rack.rate = self.rate
            return
        self.stats["bbr_without_sack"] += 1
        srtt = self.cc.srtt
        self.cc = create_congestion_control("cubic", self.mss, now)
        self.cc.srtt = srtt

    def _report_closed(self, error) -> None:
        if not self._closed_reported:
            self._closed_reported = True
            self.events.append((self, Closed(error)))

    def _finish(self, now: float, error) -> None:
        if error is not None and self.error is None:
            self.error = error
        self._set_state(CLOSED, now)
        self._rearm()

    def _timed_out(self, now: float, error: BaseException, reset: bool = False) -> None:
        """A timeout ends the connection: with the soft error an ICMP left
        if there is one, as Linux's tcp_write_err (``sk_err_soft ?:
        ETIMEDOUT``), else with ``error``."""
        self._fail(now, error if self._soft_error is None else self._soft_error, reset)

    def _fail(self, now: float, error: BaseException, reset: bool = False) -> None:
        """Close with ``error``; ``reset``: telling the peer with a RST."""
        self.stats["connections_failed"] += 1
        if reset:
            self._reset(now, self.snd_max, error)
        else:
            self._finish(now, error)

    def _rearm(self) -> None:
        """Keep this connection's timer-wheel entry at or before its next
        deadline.  A deadline that moved later (the retransmission timer
        restarts with every ACK), or went away (an ACK of everything stops
        it, and the next write starts it again), leaves the entry where it
        is: it fires early, handle_timer finds nothing due and re-arms.  That
        is one spare wakeup per timeout instead of a reschedule or a cancel
        per segment.  (The endpoint cancels the entry of a connection it
        forgets.)"""
        timer = self.timer
        if timer is None:
            return
        deadline = self._deadline()
        if deadline != NEVER and (not timer.scheduled or deadline < timer.deadline):
            self.wheel.schedule(timer, deadline)

    # ------------------------------------------------------------- sending

    def _window_field(self) -> int:
        """The window to advertise, as the header field, with receiver-side
        silly window avoidance: the right edge never moves left and only moves
        right by at least min(buffer / 2, MSS) (RFC 1122 section 4.2.3.3)."""
        free = self._rcvbuf_size - self.rcv_buffer.buffered
        edge = (self.rcv_nxt + max(free, 0)) & MASK
        advance = seq_diff(edge, self._rcv_adv)
        if advance > 0 and (advance >= min(self._rcvbuf_size // 2, self.mss)
                            or seq_diff(self._rcv_adv, self.rcv_nxt) <= 0 and free >= self.mss):
            self._rcv_adv = edge
        window = max(0, seq_diff(self._rcv_adv, self.rcv_nxt))
        return min(window >> self.rcv_wscale, 0xFFFF)

    def _rcv_space_adjust(self) -> None:
        """Receive-buffer autotuning (Linux tcp_rcv_space_adjust, "dynamic
        right sizing"): once per round trip, compare what the reader took in
        it with the last one; if it took more, the buffer grows to twice
        that plus 16 segments, and by twice the growth again while the rate
        still rises (slow start doubling it each round trip), up to the
        configured limit.  Measured on what was read, so that a reader that
        does not read never makes it grow."""
        now = self._now
        copied_seq = (self.rcv_nxt - self.rcv_buffer.buffered) & MASK
        if self._rcvq_seq < 0:
            self._rcvq_seq, self._rcvq_time = copied_seq, now
            return
        rtt = self._rcv_rtt if self._rcv_rtt > 0 else self.rtt.smoothed
        if rtt <= 0 or now - self._rcvq_time < rtt:
            return
        copied = seq_diff(copied_seq, self._rcvq_seq)
        space = self._rcvq_space
        if copied > space:
            window = 2 * copied + 16 * self.mss
            window += 2 * (window * (copied - space) // space)
            if window > self._rcvbuf_size:
                self._rcvbuf_size = min(window, self._rcvbuf_max)
                self.stats["rcvbuf_grown"] += 1
            self._rcvq_space = copied
        self._rcvq_seq, self._rcvq_time = copied_seq, now

    def _rcv_rtt_sample(self, rtt: float) -> None:
        """The round trip as the receiver sees it (Linux tcp_rcv_rtt_measure_ts):
        from a full segment's echo of our timestamp, smoothed by 1/8, at
        least the timestamp clock's millisecond."""
        rtt = max(rtt, 0.001)
        if self._rcv_rtt <= 0:
            self._rcv_rtt = rtt
        else:
            self._rcv_rtt += (rtt - self._rcv_rtt) / 8

    def _send_buffer_expand(self) -> None:
        """Send-buffer autotuning (Linux tcp_sndbuf_expand): room for twice
        the congestion window, so that the window, and not the buffer,
        bounds what is in flight; up to the configured limit.  A writer
        paused on the old size resumes at the same distance below the new."""
        size = min(2 * self.cc.cwnd, self._sndbuf_max)
        if size > self.send_buffer:
            if self.low_water is not None:
                self.low_water += size - self.send_buffer
            self.send_buffer = size

    def _window_update_due(self) -> bool:
        free = self._rcvbuf_size - self.rcv_buffer.buffered
        edge = (self.rcv_nxt + free) & MASK
        return seq_diff(edge, self._rcv_adv) >= min(self._rcvbuf_size // 2, self.mss)

    def _emit(self, flags: int, seq: int, ack: int, payload=b"", window: int = -1,
              syn_options: bool = False, offset: int = 0, length: int = -1, to=None) -> None:
        """Queue one segment; ``window`` -1 means the current receive window.
        The payload is ``payload[offset:offset + length]`` (-1: to its end).
        It goes to ``remote_addr``, or to ``to`` (a path being validated)."""
        if window < 0:
            window = self._window_field()
        if flags & ACK:
            self._last_ack_sent = ack
        mss = wscale = -1
        sack_permitted = False
        has_ts = False
        blocks = None
        if syn_options:
            # a SYN offers each option; a SYN-ACK only answers an offer
            config = self._config
            mss = self.local_mss
            # RFC 7323 section 2.2: a SYN-ACK carries window scale only if
            # the SYN did
            wscale = self.rcv_wscale if config.window_scaling and (not flags & ACK or self._wscale_ok) else -1
            sack_permitted = config.sack and (not flags & ACK or self.sack_ok)
            has_ts = config.timestamps and (not flags & ACK or self.ts_ok)
        else:
            if self.sack_ok and (self._dsack is not None or self.rcv_buffer.has_holes()) and flags & ACK:
                blocks = self._sack_blocks()
                if length > 0:
                    # a data segment never outgrows the path: the blocks that
                    # do not fit beside the payload stay off (pure ACKs carry them)
                    room = (self._seg_max - 20 - (12 if self.ts_ok else 0) - length - 4) // 8
                    if room < len(blocks):
                        blocks = blocks[:room] if room > 0 else None
            has_ts = self.ts_ok and (blocks is not None or not flags & RST)
        datagram = encode_segment(
            src_port=self.local_port, dst_port=self.remote_port, seq=seq, ack=ack, flags=flags,
            window=window, payload=payload, offset=offset, length=length, mss=mss, wscale=wscale,
            sack_permitted=sack_permitted, sack_blocks=blocks, has_ts=has_ts,
            ts_val=self._ts_val() if has_ts else 0, ts_ecr=self.ts_recent, urgent=0)
        if to is None:
            to = self.remote_addr
        self.out.append((datagram, to))
        self.segments_sent += 1
        self._last_out = self._now
        if self.tracer is not None:
            self.tracer.segment(self, "out", datagram, to)

    def _sack_blocks(self) -> list:
        """SACK blocks for an ACK (RFC 2018 section 4): a D-SACK block first
        if a duplicate just arrived (RFC 2883), then the block holding the
        most recent arrival, then the others; 3 fit beside timestamps, 4
        without."""
        room = 3 if self.ts_ok else 4
        blocks = []
        if self._dsack is not None:
            blocks.append(self._dsack)
            self._dsack = None
        held = self.rcv_buffer.held_ranges
        recent = self._last_ooo_seq
        first = held.containing(recent) if recent is not None else None
        if first is not None and len(blocks) < room:
            blocks.append(first)  # the block holding the most recent arrival
        for block in held.top(room):  # the highest, enough to fill the room left
            if len(blocks) >= room:
                break
            if block != first:
                blocks.append(block)
        return blocks

    def _ts_val(self) -> int:
        ms = int(self._now * 1000)
        return (ms + self._ts_offset) & MASK

    def _send_syn(self, now: float, ack: bool) -> None:
        window = min(self._rcvbuf_size, 0xFFFF)  # never scaled in a SYN
        self._syn_sent_at = now
        if ack:
            self._emit(SYN | ACK, self.iss, self.rcv_nxt, window=window, syn_options=True)
            self._rcv_adv = (self.rcv_nxt + window) & MASK
        else:
            self._emit(SYN, self.iss, 0, window=window, syn_options=True)

    def _send_ack(self) -> None:
        self._ack_pending = 0
        self._stop_delack()
        # snd_max, not snd_nxt: after a go-back-N retransmission snd_nxt is
        # behind what the peer has seen, and a pure ACK carrying an old
        # sequence number would fail its acceptability test (as in Linux,
        # control segments never move backwards in sequence space)
        self._emit(ACK, self.snd_max, self.rcv_nxt)

    def _send_data(self, seq: int, length: int, fin: bool, now: float, window: int = -1) -> None:
        """Send [seq, seq + length) of the send buffer, and the FIN if
        ``fin``; ``window`` is the window field (-1: worked out here)."""
        start = seq_diff(seq, self._sndbuf_seq)
        flags = ACK | (FIN if fin else 0) | (PSH if length and start + length == len(self._sndbuf) else 0)
        end = (seq + length + (1 if fin else 0)) & MASK
        if fin:
            self.fin_seq = (seq + length) & MASK
        new_data = not seq_lt(seq, self.snd_max)
        if not new_data:
            self.segments_retransmitted += 1
            self.bytes_retransmitted += length
        else:
            self.bytes_sent += length
        self._emit(flags, seq, self.rcv_nxt, self._sndbuf, window, False, start, length)
        if self.sack_ok:
            self.rack.on_transmit(seq, end, self.snd_max, now)
        self._sent(seq, end, end, length, now)

    def _sent(self, seq: int, timed: int, end: int, length: int, now: float) -> None:
        """What sending [seq, end) (``length`` bytes of data) leaves, after
        RACK has seen it: the ACK rode on it, the RTT is timed to ``timed``
        if nothing is timed and this is new data, the send sequence and the
        timers move."""
        self._ack_pending = 0
        self._stop_delack()  # the ACK rides on the data
        if self._rtt_seq < 0 and not seq_lt(seq, self.snd_max):
            self._rtt_seq = timed
            self._rtt_time = now
        self.recovery.on_sent(length)
        self._last_send = now
        if seq_gt(end, self.snd_nxt):
            self.snd_nxt = end
        if seq_gt(end, self.snd_max):
            self.snd_max = end
        if self._rto_at == NEVER:
            self._start_rto(now)  # RFC 6298 (5.1)
        if self._user_timeout_at == NEVER:
            self._start_user_timeout(now)

    def _run_datagrams(self) -> int:
        """How many full-sized datagrams the socket below sends in one call
        (UDP GSO: Endpoint.run_bytes in at most run_datagrams), 0 if it
        sends one a call."""
        endpoint = self.endpoint
        if endpoint is None or not endpoint.run_bytes:
            return 0
        return min(endpoint.run_bytes // (self.mss + (32 if self.ts_ok else 20)), endpoint.run_datagrams)

    def _send_run(self, seq: int, count: int, now: float, window: int) -> None:
        """Send ``count`` full segments of new data from ``seq`` (= snd_max)
        with the window field ``window``: the datagrams, records and state
        that ``count`` calls of _send_data leave, the header built once
        (_push's path for bulk data: no FIN, no SACK blocks, no tracer).
        Over a socket that sends runs (Endpoint.run_bytes), a run's
        datagrams go into the outbox as one item (see Endpoint.outbox)."""
        mss = self.mss
        length = count * mss
        start = seq_diff(seq, self._sndbuf_seq)
        ack = self.rcv_nxt
        self._last_ack_sent = ack
        has_ts = self.ts_ok
        # a socket that sends a run in one call (UDP GSO) gets the run's
        # datagrams in one buffer, as many as a call takes
        encode_run(self.out, self.remote_addr, self.local_port, self.remote_port, seq, ack, window,
                   self._sndbuf, start, mss, count, start + length == len(self._sndbuf), has_ts,
                   self._ts_val() if has_ts else 0, self.ts_recent, self._run_datagrams())
        self.segments_sent += count
        self._last_out = self._now
        self.bytes_sent += length
        self.stats["send_runs"] += 1
        end = (seq + length) & MASK
        if self.sack_ok:
            self.rack.on_transmit(seq, end, seq, now, mss)  # one record for the run
        self._sent(seq, (seq + mss) & MASK, end, length, now)  # timed as its first segment alone

    def _push(self, now: float) -> None:
        """Send what the send window, congestion window and sender-side silly
        window avoidance (RFC 1122 section 4.2.3.4) allow, then the FIN."""
        if not self._synchronized:
            return
        data_end = self._data_end()
        snd_max = self.snd_max
        if not self._probe_len and self._probe_seq < 0 and self._seg_max < self._seg_limit \
                and self.pmtu.raise_due(now):
            self._pmtu_follow(now)  # PMTU_RAISE_TIMER: a larger size is tried again
        if (self._ss_after_idle and self.snd_max == self.snd_una
                and now - self._last_send > self.rtt.rto and self.cc.cwnd > 10 * self.mss):
            # RFC 5681 section 4.1: the ACK clock is gone, restart from the IW
            self.cc.on_idle_restart()
            self.stats["restarts_after_idle"] += 1
        # pacing, a token bucket: credit accrues at the rate up to a quantum
        # (a timer tick's worth, two segments at least: Linux's autosizing)
        # and what a late timer earned, each segment spends it, and the
        # pacing timer waits for what is missing
        rate = self._pacing_rate() if self._pacing else 0.0
        credit = 0.0
        if rate > 0:
            quantum = max(2 * self.mss, rate * PACING_QUANTUM) + rate * PACING_SLACK
            credit = min(self._pace_credit + (now - self._pace_stamp) * rate, quantum)
            self._pace_stamp = now
        send_end = data_end
        if (self.low_water is not None or self._waking) and not self._fin_queued and self.endpoint is not None \
                and self.endpoint.run_bytes:
            send_end = self._whole_runs(data_end)
        # the window field, the same for every segment of this burst (nothing
        # below changes the receive side): worked out once, at the first
        advertised = -1
        # full segments of new data go as runs (_send_run) when each would
        # be a plain one: no tracer to see them one by one, no SACK blocks
        # to carry, no PMTU probe due
        runs = (self.tracer is None and not (self._probe_len and self._probe_seq < 0)
                and not (self.sack_ok and (self._dsack is not None or self.rcv_buffer.has_holes())))
        while True:
            snd_nxt = self.snd_nxt
            unsent = seq_diff(send_end, snd_nxt)
            if unsent <= 0:
                break
            flight = seq_diff(snd_nxt, self.snd_una)
            window = min(self.snd_wnd, self.cc.cwnd + self.recovery.window_credit(self.scoreboard.total))
            usable = window - flight
            mss = self.mss
            if runs and usable >= 2 * mss and unsent >= 2 * mss and snd_nxt == self.snd_max:
                # as many full segments as the loop below would send one by
                # one (the FIN, if queued, stays for the last segment's call)
                count = (min(unsent - 1, usable) if self._fin_queued else min(unsent, usable)) // mss
                if rate > 0 and credit < count * mss:
                    count = int(credit // mss)
                if count >= 2:
                    if rate > 0:
                        credit -= count * mss
                    if advertised < 0:
                        advertised = self._window_field()
                    self._send_run(snd_nxt, count, now, advertised)
                    continue
            length = min(unsent, usable, self.mss)
            if length <= 0:
                break
            if rate > 0:
                if credit < length:
                    self._pace_at = now + (length - credit) / rate
                    break
                credit -= length
            if self._probe_len and self._probe_seq < 0 and snd_nxt == self.snd_max \
                    and self._may_probe(unsent, usable):
                self._send_pmtu_probe(snd_nxt, now)
                continue
            if length < self.mss and length < unsent:
                # a small segment that is not the last of the data: only when
                # at least half the largest window the peer offered is usable
                if length < self.max_snd_wnd // 2:
                    break
            elif length < self.mss and flight > 0 and not self._nodelay:
                break  # Nagle: one small segment in flight at a time
            if advertised < 0:
                advertised = self._window_field()
            self._send_data(snd_nxt, length, self._fin_queued and length == unsent, now, advertised)
        if rate > 0:
            self._pace_credit = credit
        if self.rate is not None and seq_diff(data_end, self.snd_nxt) < self.mss:
            pipe = self._pipe()
            if pipe < self.cc.cwnd:
                self.rate.mark_app_limited(pipe)  # the application, not the network, limits
        if self._fin_queued and self.snd_nxt == data_end:
            # all data is out and the FIN is not (or, after an RTO, no longer)
            self._send_data(data_end, 0, True, now)
        if self.snd_max != snd_max and self.sack_ok:
            self._arm_pto(now)  # new data went out: a new tail to watch
        # nothing in flight and the peer's window holds back what waits (zero,
        # or too small for silly window avoidance): the persist timer
        # (RFC 9293 section 3.8.6.1; RFC 1122 section 4.2.3.4's override
        # timeout), as Linux arms its probe timer
        unsent = seq_diff(data_end, self.snd_nxt)
        if (unsent > 0 and self.snd_wnd < min(unsent, self.mss)
                and self.snd_nxt == self.snd_una and self._persist_at == NEVER):
            self._start_persist(now)

    def _whole_runs(self, data_end: int) -> int:
        """Where sending stops, short of ``data_end``, so that what leaves
        fills whole runs of the socket's system calls (UDP GSO: up to 64 KiB
        of datagrams a call), when more data is sure to come soon: the writer
        is paused on a full send buffer (``low_water`` set) with a run in
        flight, whose ACK comes, or an ACK of the receive batch open now woke
        it (``_waking``) and it writes before the batch ends.  The part of a
        run left over waits for that data, as Linux's TSO deferral and
        autocorking keep a partial super-segment for the next write while
        earlier data is still queued: a bulk writer's 64 KiB writes cost one
        call each, not one and the call of a tail of two segments.  Never
        with a FIN queued; end_batch sends what a woken writer did not add
        to, and an ACK or the RTO what a paused one waits with."""
        count = self._run_datagrams()
        run = count * self.mss
        unsent = seq_diff(data_end, self.snd_nxt)
        if count < 2 or unsent <= 0 or (not self._waking and seq_diff(self.snd_nxt, self.snd_una) < run):
            return data_end
        return (data_end - unsent % run) & MASK

    # ------------------------------------------------------------- timers
    #
    # Each timer is one deadline field, NEVER while it is not running; the
    # endpoint's timer wheel holds one entry per connection at the earliest
    # (_deadline, _rearm).  Starting and stopping go through the methods
    # below, which keep the exclusions:
    #
    # | timer | field | started by | stopped by | excludes |
    # |---|---|---|---|---|
    # | retransmission (RFC 6298) | _rto_at | a SYN or data sent with it stopped (5.1), an ACK of new data (5.3), its own expiry (5.6), a tail loss probe | everything acknowledged (5.2), the handshake done, the persist timer | runs beside the PTO, which fires first |
    # | persist (RFC 9293 3.8.6.1) | _persist_at | nothing in flight, data waiting, and a window too small for it (zero, or below silly window avoidance's bar: then it fills the window when it fires) | the window opening | the RTO (stops it) |
    # | tail loss probe (RFC 8985 7) | _pto_at | new data out, an ACK (_arm_pto, never beyond the RTO) | recovery, the probe, nothing outstanding | recovery |
    # | RACK reordering (RFC 8985 6.3) | _reo_at | an ACK leaving a segment not yet lost | its expiry, nothing left to judge | - |
    # | delayed ACK (RFC 1122 4.2.3.2) | _delack_at | in-order data owed an ACK | any segment carrying the ACK | - |
    # | keepalive (RFC 1122 4.2.3.6) | _keepalive_at | anything heard from the peer | keepalive off | - |
    # | user timeout (RFC 5482) | _user_timeout_at | data sent with it stopped, progress | everything acknowledged | - |
    # | orphan (linger, FIN_WAIT_2) | _orphan_at | release(), FIN_WAIT_2 after release | - | - |
    # | NAT keepalive | _nat_at | ESTABLISHED after an active open, its own expiry (from the last segment sent), in-order data (sooner: a stall probe) | nat_keepalive off | - |
    #
    # All of them stop in TIME_WAIT and CLOSED (_clear_timers).

    def _start_rto(self, now: float) -> None:
        self._rto_at = now + self.rtt.rto

    def _stop_rto(self) -> None:
        self._rto_at = NEVER

    def _start_persist(self, now: float) -> None:
        """A zero window with data waiting: probe it, in place of the RTO."""
        self._rto_at = NEVER
        self._persist_backoff = 0
        self._persist_at = now + self.rtt.bounded(self.rtt.rto)

    def _stop_persist(self) -> None:
        self._persist_at = NEVER

    def _stop_pto(self) -> None:
        self._pto_at = NEVER

    def _stop_reo(self) -> None:
        self._reo_at = NEVER

    def _start_delack(self, now: float) -> None:
        self._delack_at = now + self._delayed_ack

    def _stop_delack(self) -> None:
        self._delack_at = NEVER

    def _start_user_timeout(self, now: float) -> None:
        if self._user_timeout >= 0:
            self._user_timeout_at = now + self._user_timeout

    def _stop_user_timeout(self) -> None:
        self._user_timeout_at = NEVER

    def _start_nat_keepalive(self, now: float) -> None:
        if self._nat_keepalive > 0 and not self.passive:
            self._nat_at = now + self._nat_keepalive

    def handle_timer(self, now: float) -> None:
        """Run whatever timers are due at ``now``, in this order: delayed
        ACK, persist, RACK reordering, tail loss probe, retransmission, user
        timeout, keepalive, orphan, NAT keepalive."""
        self._now = now
        if self.time_wait is not None:
            if not self.time_wait.handle_timer(now):
                self._set_state(CLOSED, now)
            self._rearm()
            return
        # a timer that is not running is NEVER, which no `now` reaches;
        # a handler that ends the connection stops the timers after it
        if now >= self._delack_at:
            self._send_ack()
        if now >= self._persist_at:
            self._on_persist(now)
        if now >= self._reo_at:
            self._on_reordering_timeout(now)
        if now >= self._pto_at:
            self._on_pto(now)
        if now >= self._rto_at:
            self._on_rto(now)
        if now >= self._user_timeout_at:
            self._on_user_timeout(now)
        if now >= self._keepalive_at:
            self._on_keepalive(now)
        if now >= self._orphan_at:
            self._on_orphan_timeout(now)
        if now >= self._nat_at:
            self._on_nat_keepalive(now)
        if now >= self._pace_at:
            self._pace_at = NEVER
            self._push(now)  # the pacing timer: the credit for the next segment is there
        self._rearm()

    def _on_reordering_timeout(self, now: float) -> None:
        """RFC 8985 section 6.3: the reordering window has passed; judge again."""
        self._stop_reo()
        if self.sack_ok and self.rack.records:
            self._rack_detect(now)
            if self._probe_seq >= 0:
                self._probe_check(now)
            if self.rack.lost_bytes:
                self._recover(self.recovery.on_loss(self.snd_una), now)
            self._push(now)

    def _on_user_timeout(self, now: float) -> None:
        """RFC 5482 / Linux TCP_USER_TIMEOUT: data unacknowledged too long."""
        self.stats["user_timeouts"] += 1
        self._timed_out(now, TimeoutError("user timeout: data unacknowledged too long"))

    def _on_orphan_timeout(self, now: float) -> None:
        """A released connection ran out of time: in FIN_WAIT_2, its peer
        never sent a FIN (Linux tcp_fin_timeout), which costs nothing; else
        what it sent is still unacknowledged after Config.linger, and it
        gives up with a RST so that the peer is not left waiting."""
        if self.state is FIN_WAIT_2:
            self.stats["fin_wait_2_timeouts"] += 1
            self._finish(now, None)
            return
        self.stats["linger_timeouts"] += 1
        self._reset(now, self.snd_max, TimeoutError(110, "unacknowledged data at close: linger time exceeded"))

    def _arm_pto(self, now: float) -> None:
        """RFC 8985 section 7.2: PTO = 2 SRTT (plus the worst-case delayed
        ACK when a single segment is out), never beyond the RTO."""
        if not (self.sack_ok and self._tlp) or self.recovery.active or self.rtt.smoothed < 0 \
                or self.rack.probe_outstanding or not self._synchronized or self.snd_max == self.snd_una:
            self._stop_pto()
            return
        deadline = now + self.rack.probe_timeout(self.rtt.smoothed, seq_diff(self.snd_max, self.snd_una), self.mss)
        if self._rto_at != NEVER and deadline >= self._rto_at:
            self._pto_at = NEVER
            return
        self._pto_at = deadline

    def _on_pto(self, now: float) -> None:
        """RFC 8985 section 7.3: send one new segment if the windows allow,
        else resend the last one; then wait for the RTO."""
        self._stop_pto()
        if self.snd_max == self.snd_una or self.recovery.active:
            return
        self.rack.on_probe()
        data_end = self._data_end()
        unsent = seq_diff(data_end, self.snd_nxt)
        usable = self.snd_wnd - seq_diff(self.snd_nxt, self.snd_una)
        if unsent > 0 and usable > 0:
            self._send_data(self.snd_nxt, min(unsent, usable, self.mss), False, now)
        else:
            end = self.snd_max
            if self.fin_seq is not None and seq_ge(end, (self.fin_seq + 1) & MASK):
                end = self.fin_seq  # the FIN is resent with the last data
            start = (end - min(seq_diff(end, self.snd_una), self.mss)) & MASK
            self._resend(start, seq_diff(end, start), now)
        self._start_rto(now)

    def _on_keepalive(self, now: float) -> None:
        """RFC 1122 section 4.2.3.6, as Linux does it: a probe is an ACK one
        below snd_una with no data, which the peer must answer."""
        config = self.config
        if self.state not in (ESTABLISHED, CLOSE_WAIT) or self.snd_max != self.snd_una:
            self._keepalive_at = now + config.keepalive_interval  # busy: look again later
            return
        probes = self.keepalive_probes
        if self._user_timeout >= 0:
            # Linux: with TCP_USER_TIMEOUT set, keepalive gives up once the
            # peer has been silent that long and a probe went unanswered,
            # whatever keepalive_count says
            spent = probes > 0 and config.keepalive_idle + probes * config.keepalive_interval >= self._user_timeout
        else:
            spent = probes >= config.keepalive_count
        if spent:
            # as Linux's tcp_keepalive_timer: a RST, in case the peer lives
            # and only its answers are lost
            self.stats["keepalive_timeouts"] += 1
            self._timed_out(now, TimeoutError("keepalive: the peer stopped answering"), reset=True)
            return
        self.keepalive_probes += 1
        self.stats["keepalive_probes"] += 1
        self._send_probe()
        self._keepalive_at = now + config.keepalive_interval

    def _send_probe(self) -> None:
        """Keepalive's probe (RFC 1122 section 4.2.3.6, as Linux sends it):
        an ACK one below snd_una with no data, which the peer must answer."""
        self._emit(ACK, (self.snd_una - 1) & MASK, self.rcv_nxt)

    def _on_nat_keepalive(self, now: float) -> None:
        """Config.nat_keepalive: nothing went out for that long, so every
        NAT on the path may be about to forget this flow.  The probe is
        keepalive's (an ACK one below snd_una), which the peer answers, so
        the binding sees traffic both ways; it never fails the connection.
        Its pace is the RTO the estimate gives, not the backed-off one: a
        rebinding is what backs our timeouts off, and the probe ends it.

        A stream from the peer that stops is probed sooner: after
        max(NAT_STALL, 2 RTO) of silence both ways since in-order data last
        came.  If a NAT gave us a new address, the peer's segments are
        going to the old one and we would hear nothing until the next
        probe; this one reaches the peer from the new address, which it
        validates and moves to (receive_from_new_path).  While the pause
        lasts, the probes back off (doubling their interval up to the
        keepalive's), so that one lost probe, or a NAT that forgot the
        next address too, costs seconds and not the keepalive interval;
        each is answered by a pure ACK, which starts no other."""
        if self._data_in_at > self._nat_probed_at:  # the peer was sending since our last probe
            self._nat_stall_probes = 0
        due = self._nat_due(self._last_out)
        if due > now + self._timer_tick:
            self._nat_at = due  # something went out since: wait from there
            return
        if self.state in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2):
            self.nat_keepalives += 1
            self.stats["nat_keepalives"] += 1
            self._nat_probed_at = now
            self._nat_stall_probes += 1
            self._send_probe()
        self._nat_at = self._nat_due(now)

    def _nat_due(self, since: float) -> float:
        """When the next NAT keepalive is due after a segment sent at
        ``since``: the keepalive interval, or sooner while a stream from
        the peer is paused (its probes doubling from max(NAT_STALL, 2 RTO))."""
        due = since + self._nat_keepalive
        if self._data_in_at > -1e17:
            backoff = 1 << min(self._nat_stall_probes, 16)
            due = min(due, since + max(self._nat_quick, 2 * self.rtt.base()) * backoff)
        return due

    def _heard_from_peer(self, now: float) -> None:
        if self._keepalive and self.state in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2):
            self._keepalive_at = now + self._config.keepalive_idle
            self.keepalive_probes = 0

    def _on_persist(self, now: float) -> None:
        data_end = self._data_end()
        unsent = seq_diff(data_end, self.snd_nxt)
        if unsent <= 0 or self.snd_nxt != self.snd_una:
            self._stop_persist()
            self._push(now)
            return
        if self.snd_wnd > 0:
            # a window too small for a full segment: fill it (the override
            # timeout of sender-side silly window avoidance)
            self._stop_persist()
            length = min(unsent, self.snd_wnd, self.mss)
            self._send_data(self.snd_nxt, length, self._fin_queued and length == unsent, now)
            return
        self._persist_backoff += 1
        if self._persist_backoff > self._config.retries:
            self._timed_out(now, TimeoutError("zero-window probes went unanswered"))
            return
        # probe with one octet of new data beyond the zero window
        start = seq_diff(self.snd_nxt, self._sndbuf_seq)
        self._emit(ACK, self.snd_nxt, self.rcv_nxt, self._sndbuf[start:start + 1])
        if seq_gt((self.snd_nxt + 1) & MASK, self.snd_max):
            self.snd_max = (self.snd_nxt + 1) & MASK
        self.stats["persist_probes"] += 1
        self._persist_at = now + min(self.rtt.bounded(self.rtt.rto) * (2 ** self._persist_backoff),
                                          self._config.rto_max)

    def _on_rto(self, now: float) -> None:
        state = self.state
        self.retries += 1
        limit = {SYN_SENT: self._config.syn_retries, SYN_RCVD: self._config.synack_retries}.get(
            state, self._config.retries)
        if self.retries > limit:
            if state is SYN_RCVD and self.passive:
                self.stats["synack_timeouts"] += 1
            heard = "segments from the peer arrived" if self.segments_received else "nothing ever came back"
            self._timed_out(now, TimeoutError(f"{state}: no answer after {limit} retransmissions ({heard})"))
            return
        self.rto_count += 1
        self.rtt.on_rto()  # RFC 6298 (5.5)
        self._rtt_seq = -1  # Karn's rule
        self._start_rto(now)  # RFC 6298 (5.6)
        self.events.append((self, Retransmission("syn" if state in (SYN_SENT, SYN_RCVD) else "rto",
                                                 self.snd_una, self.rtt.rto)))
        if state is SYN_SENT:
            self.segments_retransmitted += 1
            self._send_syn(now, ack=False)
            return
        if state is SYN_RCVD:
            self.segments_retransmitted += 1
            self._send_syn(now, ack=True)
            return
        flight = seq_diff(self.snd_max, self.snd_una)
        if self._probe_seq >= 0:
            self._probe_failed(now, resend=False)  # lost with the rest: sent again below
        self._black_hole_check(now)
        self.cc.on_rto(flight, now)
        self._stop_pto()
        self._stop_reo()
        self.recovery.on_rto(self.snd_max)
        if self.sack_ok and self.retries == 1 and self.scoreboard.total and self.rack.records:
            # the first timeout of a run, with SACK information: as Linux's
            # Loss state, what the peer SACKed is not sent again (RFC 6675
            # section 5.1 only SHOULD-resets the scoreboard); the rest is
            # lost and goes again lowest first as the window grows back.
            # A second timeout in a row (a peer that reneged on its SACKs)
            # resets it below.
            self.rack.on_rto_keep_sacked()
            self._resend_lost(0, now)
            self._start_rto(now)
            return
        # RFC 6675 section 5.1: start over from the cumulative ACK
        self.scoreboard.clear(self.snd_una)
        self.rack.on_rto()
        # go back N: resend from the first unacknowledged byte
        self.snd_nxt = self.snd_una
        self._resend(self.snd_una, self.mss, now)
        self._start_rto(now)  # RFC 6298 (5.6)

    # ------------------------------------------------------------- receiving

    def receive(self, seg, now: float) -> None:
        """Process one decoded segment (RFC 9293 section 3.10.7)."""
        self._now = now
        self.segments_received += seg.segs
        state = self.state
        if state is SYN_SENT:
            self._receive_syn_sent(seg, now)
        elif state is CLOSED:
            return
        elif self.time_wait is not None:
            if not self.time_wait.receive(seg, now):
                self._set_state(CLOSED, now)
        else:
            self._receive_synchronized(seg, now)
            if self._keepalive:
                self._heard_from_peer(now)
        self._rearm()

    # --------------------------------------------- path migration (NAT rebinding)

    def receive_from_new_path(self, seg, addr, now: float) -> bool:
        """A segment with this connection's ports came from ``addr``, not
        ``remote_addr`` (the endpoint asks only when these ports belong to
        no other connection): a NAT may have moved the peer.  It moves the
        connection only when it is unmistakably this connection's, and
        only once the new address has answered a challenge, as QUIC
        validates a path (RFC 9000 section 8.2):

        1. ``_from_peer``: no SYN or RST, an acceptable sequence number (or
           a resend of data already here, what the rebinding made the
           peer retransmit) and ACK, and with timestamps a TSecr echoing
           one of our recent TSvals (what an off-path attacker cannot know);
        2. the challenge, at most once per RTO: an ACK carrying a fresh
           TSval at the sequence number the peer last acknowledged (so the
           peer keeps it as TS.Recent), then a keepalive-style probe, which
           the peer must answer, echoing it;
        3. a segment from ``addr`` that passes (1) and echoes the challenge's
           TSval (without timestamps: any that passes (1) after the
           challenge) is the answer: True, and the endpoint moves the
           connection (:meth:`migrate`) and delivers the segment.

        Until then nothing is sent to ``addr`` but the challenge, and the
        segments from it are dropped (counted): TCP's recovery repairs them."""
        self._now = now
        stats = self.stats
        if not self._synchronized or self.time_wait is not None or not self._config.migration:
            stats["new_path_dropped"] += 1
            return False
        if not self._from_peer(seg, now):
            stats["new_path_rejected"] += 1
            return False
        if addr == self._path_addr and (not self.ts_ok or seq_ge(seg.ts_ecr, self._path_ts)):
            return True
        if addr != self._path_addr or now - self._path_sent_at >= self.rtt.rto:
            if self.endpoint is not None and not self.endpoint.challenge_ack_allowed(now):
                return False
            self._path_addr = addr
            self._path_sent_at = now
            self._path_ts = self._ts_val()
            stats["path_challenges"] += 1
            self._emit(ACK, seg.ack, self.rcv_nxt, to=addr)
            self._emit(ACK, (seg.ack - 1) & MASK, self.rcv_nxt, to=addr)
            self._rearm()
        stats["new_path_dropped"] += 1
        return False

    def _from_peer(self, seg, now: float) -> bool:
        """Step 1 of :meth:`receive_from_new_path`."""
        flags = seg.flags
        if flags & (SYN | RST) or not flags & ACK:
            return False
        seq = seg.seq
        seg_len = len(seg.payload) + (1 if flags & FIN else 0)
        # in the window, or a resend of what came already (up to a receive
        # buffer back: the peer resends what our ACKs to its old address
        # never told it we have, and a keepalive probe sits one below)
        if not self._acceptable(seq, seg_len) and not 0 < seq_diff(self.rcv_nxt, seq) <= self._rcvbuf_size:
            return False
        ack = seg.ack
        if seq_gt(ack, self.snd_max) or seq_lt(ack, (self.snd_una - self.max_snd_wnd) & MASK):
            return False
        if self.ts_ok:
            if not seg.has_ts:
                return False
            age = (self._ts_val() - seg.ts_ecr) & MASK  # milliseconds since we sent it
            if age >= HALF or age > self._config.migration_echo_age * 1000:
                return False
        return True

    def migrate(self, addr, now: float) -> None:
        """Move to the validated path ``addr`` (the endpoint re-keys the
        connection first).  The congestion state stays: a NAT rebinding
        changes the address, not the path.  Retransmission timeouts since
        the rebinding went to the old address, not into a dead peer: the
        peer just answered, so the backoff and the retry count start over
        and the first unacknowledged segment goes out again at once, to
        the new address."""
        self._now = now
        self.remote_addr = addr
        self._path_addr = None
        self._path_sent_at = -1e18
        self.migrations += 1
        if self._probe_seq >= 0:
            self._probe_seq = self._probe_end = -1  # its fate on the old path tells nothing
        self.pmtu.restart(now)  # a new path: its size is found again
        self._pmtu_follow(now)
        self.stats["migrations"] += 1
        if self.time_wait is not None:
            self.time_wait.remote_addr = addr
        else:
            self._end_backoff(now)

    def _end_backoff(self, now: float) -> None:
        """The peer is evidently reachable (it moved to our new address,
        or it probes us) while our retransmission timeouts back off: the
        backoff and the retry count start over and the first unacknowledged
        segment goes out again at once.  Only once our SYN is acknowledged
        (before, snd_una is the SYN, whose resend is the RTO's)."""
        if self._synchronized and self.retries and self._rto_at != NEVER and seq_gt(self.snd_max, self.snd_una):
            self.retries = 0
            self.rtt.unback()
            self._resend(self.snd_una, self.mss, now)
            self._start_rto(now)
            self._rearm()

    def _take_peer_syn(self, seg) -> None:
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        # the window our SYN (or the SYN-ACK to come) offers, unscaled
        self._rcv_adv = (self.rcv_nxt + min(self._rcvbuf_size, 0xFFFF)) & MASK
        self.sack_ok = self.recovery.sack = seg.sack_permitted and self._config.sack
        if seg.has_ts and self._config.timestamps:
            self.ts_ok = True
            self.ts_recent = seg.ts_val
            self._ts_recent_stamp = self._now
        self._set_peer_mss(seg.mss if seg.mss > 0 else DEFAULT_PEER_MSS)
        if seg.wscale >= 0 and self._config.window_scaling:
            self._wscale_ok = True
            self.snd_wscale = min(seg.wscale, 14)  # RFC 7323 section 2.3
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.snd_wnd = seg.window  # a SYN's window is never scaled
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        self.snd_wl1 = seg.seq

    def _set_peer_mss(self, mss: int) -> None:
        self.peer_mss = mss
        self._seg_limit = min(self.local_mss, mss) + 20
        self.pmtu.set_limit(self._seg_limit, self._now)
        self._pmtu_follow(self._now)

    def _size_segments(self) -> None:
        # RFC 6691: the options on every data segment come out of the MSS;
        # the path's size caps it (a segment is the UDP payload)
        self.mss = max(min(self.local_mss, self.peer_mss, self._seg_max - 20) - (12 if self.ts_ok else 0), 64)
        self.cc.set_mss(self.mss)

    # ------------------------------------------------------------ path MTU

    def path_too_big(self, segment: int, now: float) -> bool:
        """The path carries segments (UDP payloads) of at most ``segment``
        bytes (0: unknown): the socket refused a larger datagram (EMSGSIZE)
        or a checked ICMP said so (:meth:`icmp_too_big`).  Segments shrink
        at once, never below the base, and the first unacknowledged one
        goes again; a probe it concerns failed.  True if the size fell."""
        if not self.pmtu.enabled:
            return False
        segment = segment or BASE_SEGMENT
        probe = self._probe_size if self._probe_seq >= 0 else 0
        lowered = self.pmtu.too_big(segment, now)
        if probe and (lowered or segment < probe):
            self._probe_failed(now, counted=False)
        if lowered:
            self._pmtu_follow(now)
            if self.state in SYNCHRONIZED and seq_gt(self.snd_max, self.snd_una):
                self._resend(self.snd_una, self.mss, now)
        return lowered

    def icmp_too_big(self, quote: bytes, segment: int, now: float) -> bool:
        """An ICMP "fragmentation needed" / "packet too big" naming this
        connection's addresses, its ``quote`` being what it quoted of the
        datagram (the segment, from its header on), ``segment`` the largest
        UDP payload it says passes.  Believed only when the quote is
        plausibly ours (RFC 8899 section 4.6.2; RFC 5927): our ports, and a
        sequence number we sent and still have in flight, or a probe's;
        else ignored and counted.  True if the size fell."""
        seq = self._quoted_seq(quote)
        if seq < 0 or not self._synchronized or seq_lt(seq, self.snd_una) or not seq_lt(seq, self.snd_max):
            self.stats["icmp_ptb_ignored"] += 1
            return False
        self.stats["icmp_ptb"] += 1
        return self.path_too_big(segment, now)

    def port_unreachable(self, quote: bytes, now: float) -> bool:
        """An ICMP port unreachable about a segment we sent (read from the
        UDP socket's error queue): the peer's UDP socket is gone.  It ends
        the connection in one case only: LAST_ACK, the quote being our
        segment that carries the FIN, sent again (our ports, a sequence
        number from the oldest unacknowledged byte to the FIN's: RFC 5927's
        check), whether the FIN went alone or with the last data (a reply
        and the close after it leave as one segment).  The peer sent its FIN
        and then its socket went: an aiotcp client keeps no socket for
        TIME_WAIT, which it enters once our FIN, and so everything before
        it, has arrived; if its last ACK was lost, no ACK can ever come,
        and waiting would hold the connection, and the transport's
        connection_lost(), until Config.linger ran out.  It ends without an
        error, as kernel TCP's LAST_ACK ends when TIME_WAIT answers the FIN
        sent again.  Anything else is a soft error, as Linux takes it: kept,
        for a timeout to report (``_timed_out``).  True if it ended."""
        seq = self._quoted_seq(quote)
        if (self.state is LAST_ACK and self.fin_seq is not None and len(quote) > 13 and quote[13] & FIN
                and seq >= 0 and seq_le(self.snd_una, seq) and seq_le(seq, self.fin_seq)):
            self.stats["last_ack_peer_gone"] += 1
            self._finish(now, None)
            return True
        if self._synchronized:
            self._soft_error = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused: the peer's UDP "
                                                      "port was unreachable")
        return False

    def _quoted_seq(self, quote: bytes) -> int:
        """The sequence number of the segment an ICMP error quotes (from its
        header on), if the quote is long enough and has this connection's
        ports; else -1."""
        if len(quote) < 8:
            return -1
        if (quote[0] << 8) | quote[1] != self.local_port or (quote[2] << 8) | quote[3] != self.remote_port:
            return -1
        return (quote[4] << 24) | (quote[5] << 16) | (quote[6] << 8) | quote[7]

    def _pmtu_follow(self, now: float) -> None:
        """The search moved: segments of its size, its next probe."""
        pmtu = self.pmtu
        self._seg_max = pmtu.size
        self._size_segments()
        self._probe_len = pmtu.probe - 20 - (12 if self.ts_ok else 0) if pmtu.probe else 0

    def _may_probe(self, unsent: int, usable: int) -> bool:
        """A probe goes out (RFC 4821 section 7.4, Linux tcp_mtu_probe's
        conditions) with new data only (the peer may hold data sent before
        a timeout: its ACK would not prove the probe arrived), outside loss
        recovery, when both windows have room for it and data waits
        behind it, so that its loss is found by the segments that follow,
        not by a timeout: with SACK one segment, whose SACK lets RACK judge
        it; without, three, for three duplicate ACKs."""
        length = self._probe_len
        return (not self.recovery.active and usable >= length and length > self.mss
                and unsent > (length if self.sack_ok else length + 3 * self.mss))

    def _send_pmtu_probe(self, seq: int, now: float) -> None:
        """One segment of the probe's size, carrying the next new data."""
        length = self._probe_len
        self._probe_seq, self._probe_end = seq, (seq + length) & MASK
        self._probe_size = self.pmtu.probe
        self.pmtu.probe_sent()
        self.stats["pmtu_probes"] += 1
        self._send_data(seq, length, False, now)

    def _probe_acked(self, now: float) -> None:
        size = self._probe_size
        self._probe_seq = self._probe_end = -1
        self.pmtu.probe_acked(size, now)
        self._pmtu_follow(now)

    def _probe_failed(self, now: float, counted: bool = True, resend: bool = True) -> None:
        """The probe was lost (or refused): its data goes again in segments
        of today's size (a retransmission like any, but no congestion
        signal: the size, not the network, lost it; not here when a timeout
        resends everything), and the search moves."""
        start, end, size = self._probe_seq, self._probe_end, self._probe_size
        self._probe_seq = self._probe_end = -1
        if counted:
            self.pmtu.probe_lost(size, now)
        self.stats["pmtu_probe_losses"] += 1
        self._pmtu_follow(now)
        if resend and self._synchronized and seq_gt(end, self.snd_una):
            if seq_lt(start, self.snd_una):
                start = self.snd_una
            self._resend(start, seq_diff(end, start), now)

    def _probe_check(self, now: float) -> None:
        """After RACK judged an ACK: the probe delivered (SACKed) or lost."""
        record = self.rack.record_at(self._probe_seq)
        if record is not None:
            if record.flags & _SACKED:
                self._probe_acked(now)
            elif record.flags & _LOST:
                self._probe_failed(now)

    def _black_hole_check(self, now: float) -> None:
        """Called on an RTO: three in a row (Linux's tcp_retries1, which its
        tcp_mtu_probing=1 waits for) while a segment above the base is out
        mean big segments vanish where small ones would not (RFC 4821
        section 7.7): fall back to the base size and search again.  Fewer
        would mistake a NAT rebinding's silence for a black hole."""
        if self.retries >= 3 and seq_diff(self.snd_max, self.snd_una) > BASE_SEGMENT \
                and self.pmtu.black_hole(now):
            self.stats["pmtu_black_holes"] += 1
            self._pmtu_follow(now)

    def _receive_syn_sent(self, seg, now: float) -> None:
        """RFC 9293 section 3.10.7.3."""
        flags = seg.flags
        if flags & ACK:
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & RST:
                    self._emit(RST, seg.ack, 0, window=0)
                    self.stats["rst_sent"] += 1
                self.stats["bad_ack_in_syn_sent"] += 1
                return
        if flags & RST:
            if flags & ACK:
                if self.punching:
                    # the peer's side is not punching yet (or its NAT lets
                    # SYNs through before it connects): the SYNs go on
                    self.stats["rst_while_punching"] += 1
                    return
                self.stats["connections_refused"] += 1
                self._fail(now, ConnectionRefusedError(111, "Connection refused"))
            return
        if not flags & SYN:
            return
        self._take_peer_syn(seg)
        if flags & ACK:
            self._ack_syn(seg, now)
            self.snd_wl2 = seg.ack
            self._set_state(ESTABLISHED, now)
            if len(seg.payload) or flags & FIN:
                self._process_text_and_fin(seg, (seg.seq + 1) & MASK, now)
            self._push(now)
            if self.snd_nxt == self.snd_una or self._ack_pending:
                # at once, as Linux acknowledges a SYN-ACK when no write is
                # pending (an asyncio application cannot have one): the
                # server accepts before a first write arrives, so a server
                # that closes at once sends its FIN, not a reset for data
                self._send_ack()
        else:
            # simultaneous open: SYN_SENT -> SYN_RCVD, answer with SYN-ACK
            self._set_state(SYN_RCVD, now)
            self._send_syn(now, ack=True)

    def _ack_syn(self, seg, now: float) -> None:
        """Our SYN was acknowledged: take an RTT sample unless it was resent."""
        if self.retries == 0 and self._syn_sent_at is not None:
            self._rtt_sample(now - self._syn_sent_at, now)
        else:
            self.rtt.restart()  # RFC 6298 (5.7)
        self.retries = 0
        self.snd_una = seg.ack
        if seq_gt(self.snd_una, self.snd_nxt):
            self.snd_nxt = self.snd_una
        self._stop_rto()

    def _rtt_sample(self, rtt: float, now: float) -> None:
        self.rtt.sample(rtt)
        self.cc.srtt = self.rtt.smoothed
        self.cc.on_rtt(rtt)

    def _acceptable(self, seq: int, seg_len: int) -> bool:
        """The segment acceptability test of RFC 9293 section 3.10.7.4."""
        wnd = seq_diff(self._rcv_adv, self.rcv_nxt)
        rcv_nxt = self.rcv_nxt
        if seg_len == 0:
            if wnd <= 0:
                return seq == rcv_nxt
            return 0 <= seq_diff(seq, rcv_nxt) < wnd
        if wnd <= 0:
            return False
        return 0 <= seq_diff(seq, rcv_nxt) < wnd or 0 <= seq_diff((seq + seg_len - 1) & MASK, rcv_nxt) < wnd

    def _rate_limited(self, now: float) -> bool:
        """At most one out-of-window or challenge ACK per invalid_ratelimit."""
        if now - self._last_invalid_ack < self._config.invalid_ratelimit:
            self.stats["invalid_acks_suppressed"] += 1
            return True
        self._last_invalid_ack = now
        return False

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 sections 3.2 and 4.2, rate-limited as section 7 asks."""
        if self.endpoint is not None and not self.endpoint.challenge_ack_allowed(now):
            self.stats["challenge_acks_suppressed"] += 1
            return
        if self._rate_limited(now):
            self.stats["challenge_acks_suppressed"] += 1
            return
        self.stats["challenge_acks"] += 1
        self._send_ack()

    def _receive_synchronized(self, seg, now: float) -> None:
        """RFC 9293 section 3.10.7.4 for SYN_RCVD and the synchronized states."""
        flags = seg.flags
        seq = seg.seq
        paylen = len(seg.payload)
        seg_len = paylen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        state = self.state

        if state is SYN_RCVD and flags & SYN and seq == self.irs:
            if not flags & ACK:
                # the peer did not hear our SYN-ACK: send it again
                self._send_syn(now, ack=True)
                return
            # simultaneous open: the peer's SYN-ACK repeats the SYN we know;
            # only its ACK is new (RFC 9293 figure 7, line 5)
            flags &= ~SYN
            seq = (seq + 1) & MASK
            seg_len -= 1

        # PAWS (RFC 7323 section 5.3, R1): an old timestamp marks an old
        # duplicate from a previous wrap of the sequence space
        if self.ts_ok and seg.has_ts and not flags & RST and seq_lt(seg.ts_val, self.ts_recent):
            if now - self._ts_recent_stamp > 24 * 86400:
                self.ts_recent = seg.ts_val  # ts_recent too old to judge by (R1, 24 days)
            else:
                self.stats["paws_rejected"] += 1
                if paylen or not self._rate_limited(now):
                    self._send_ack()
                return

        # first: sequence number
        if not self._acceptable(seq, seg_len):
            if flags & RST:
                self.stats["rst_out_of_window"] += 1
                return
            self.stats["segments_out_of_window"] += 1
            if paylen and seq_le((seq + paylen) & MASK, self.rcv_nxt):
                # data we have: our ACK of it was lost, or is slow
                self._quickack = _QUICKACKS
                if self.sack_ok:
                    self._dsack = (seq, (seq + paylen) & MASK)  # RFC 2883: report the duplicate
            if flags & SYN:
                self._challenge_ack(now)
            elif (paylen or flags & FIN) or not self._rate_limited(now):
                # data is never part of an ACK loop; pure ACKs are rate-limited
                self._send_ack()
                if not (paylen or flags & FIN) and seq == (self.rcv_nxt - 1) & MASK:
                    # a keepalive probe (a migrating peer's path challenge
                    # ends with one): the peer hears us, so the resend
                    # need not wait for the backoff
                    self._end_backoff(now)
            return

        # RFC 7323 section 4.3: remember the timestamp to echo
        if self.ts_ok and seg.has_ts and seq_le(seq, self._last_ack_sent) and seq_ge(seg.ts_val, self.ts_recent):
            self.ts_recent = seg.ts_val
            self._ts_recent_stamp = now

        # second: RST (RFC 5961 section 3.2)
        if flags & RST:
            if seq != self.rcv_nxt:
                self._challenge_ack(now)
                return
            self.stats["rst_received"] += 1
            if state is SYN_RCVD and self.passive:
                self._finish(now, None)  # back to LISTEN: the half-open entry goes
            elif state is SYN_RCVD:
                self._fail(now, ConnectionRefusedError(111, "Connection refused"))
            elif state in (CLOSING, LAST_ACK, TIME_WAIT):
                self._finish(now, None)
            else:
                self._fail(now, ConnectionResetError(104, "Connection reset by peer"))
            return

        # fourth: SYN in a synchronized state (RFC 5961 section 4.2)
        if flags & SYN:
            self._challenge_ack(now)
            return

        # fifth: ACK
        if not flags & ACK:
            return
        ack = seg.ack
        if state is SYN_RCVD:
            if not (seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_max)):
                self._emit(RST, ack, 0, window=0)
                self.stats["rst_sent"] += 1
                return
            if self.listener is not None and not self.listener.has_room():
                self.stats["listen_overflows"] += 1
                if self._config.abort_on_overflow:
                    self._reset(now, ack, None)  # Linux tcp_abort_on_overflow = 1
                return  # Linux: drop the ACK while the accept queue is full
            self._ack_syn(seg, now)
            self._update_window(seg, seq, ack)
            self._set_state(ESTABLISHED, now)
            if self._fin_queued:
                self._set_state(FIN_WAIT_1, now)
            state = self.state
        else:
            if not self._process_ack(seg, seq, ack, paylen, now):
                return
            state = self.state
            if state is CLOSED:
                return

        # sixth/seventh/eighth: text and FIN
        if paylen or flags & FIN:
            self._process_text_and_fin(seg, seq, now)
        if self.state is FIN_WAIT_1 and self._fin_acked():
            self._set_state(FIN_WAIT_2, now)
        self._push(now)

    def _fin_acked(self) -> bool:
        return self.fin_seq is not None and seq_ge(self.snd_una, (self.fin_seq + 1) & MASK)

    def _update_window(self, seg, seq: int, ack: int) -> None:
        """RFC 9293 section 3.10.7.4: update SND.WND from a newer segment."""
        if seq_lt(self.snd_wl1, seq) or (self.snd_wl1 == seq and seq_le(self.snd_wl2, ack)):
            old = self.snd_wnd
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if self.snd_wnd > self.max_snd_wnd:
                self.max_snd_wnd = self.snd_wnd
            if self.snd_wnd > old and self._persist_at != NEVER:
                self._stop_persist()  # the window opened (_push starts it again if still too small)
            return old != self.snd_wnd
        return False

    def _process_ack(self, seg, seq: int, ack: int, paylen: int, now: float) -> bool:
        """The ACK step for the synchronized states; False drops the segment."""
        snd_una = self.snd_una
        if seq_gt(ack, self.snd_max):
            # acknowledges something not yet sent: ACK and drop
            self.stats["ack_of_unsent_data"] += 1
            if not self._rate_limited(now):
                self._send_ack()
            return False
        if seq_lt(ack, (snd_una - self.max_snd_wnd) & MASK):
            # RFC 5961 section 5.2: far too old, blind injection likely
            self.stats["ack_too_old"] += 1
            self._challenge_ack(now)
            return False
        self._soft_error = None  # an acceptable ACK: the path works (Linux's tcp_ack)
        window_changed = self._update_window(seg, seq, ack)
        sacked_before = self.scoreboard.total
        if self.sack_ok and (seg.sack_blocks or self.scoreboard):
            self._update_scoreboard(seg.sack_blocks, ack)
        if self.sack_ok and self.rack.records and seq_ge(ack, snd_una):
            self._rack_on_ack(seg, ack, now)
        # RFC 6937 DeliveredData: newly cumulatively acked plus newly SACKed
        self.recovery.delivered = max(seq_diff(ack, snd_una), 0) + self.scoreboard.total - sacked_before
        if seq_gt(ack, snd_una):
            if self.ts_ok and seg.has_ts and seg.ts_ecr:
                # RFC 7323 section 4: an RTT sample from every new ACK
                self._rtt_sample(((self._ts_val() - seg.ts_ecr) & MASK) / 1000.0, now)
                self._rtt_seq = -1
            self._on_new_ack(ack, now)
        elif ack == snd_una and seq_gt(self.snd_max, snd_una) and (
                self.scoreboard.total > sacked_before  # RFC 6675: SACKs new data
                # RFC 5681; not with the window closed: those are the answers
                # to our zero-window probes (Linux's probe leaves nothing
                # outstanding, so it never counts them either)
                or not paylen and not seg.flags & FIN and not window_changed and self.snd_wnd > 0):
            self._on_dupack(now)
        rate = self.rate
        if rate is not None and rate.acked:
            # the ACK's delivery-rate sample, then the controller's turn (BBR)
            rack = self.rack
            rate.last_lost = rack.lost_marked - self._lost_seen
            self._lost_seen = rack.lost_marked
            rate.sample(self.rtt.lowest, now)
            self.cc.on_rate_sample(rate, self._pipe(), now)
        state = self.state
        if self._fin_acked():
            # our FIN is acknowledged.  FIN_WAIT_1 moves on after the text
            # step, so that a FIN in this same segment leads straight to
            # TIME_WAIT.
            if state is CLOSING:
                self._set_state(TIME_WAIT, now)
                return False
            elif state is LAST_ACK:
                self._finish(now, None)
                return False
        return True

    # ------------------------------------------------- SACK loss recovery

    def _update_scoreboard(self, blocks, ack: int) -> None:
        """Merge SACK blocks into the scoreboard, kept as ranges above the
        cumulative ACK (RFC 6675 section 3).  D-SACK blocks (at or below the
        ACK) are counted and ignored; blocks beyond what was sent are bogus."""
        scoreboard = self.scoreboard
        scoreboard.advance(ack)
        span = seq_diff(self.snd_max, ack)
        for left, right in blocks:
            lo, hi = seq_diff(left, ack), seq_diff(right, ack)
            if hi <= 0:
                self.stats["dsack_received"] += 1
                self.rack.on_dsack(self.snd_una, self.snd_max)
                continue
            if lo >= hi or hi > span:
                self.stats["sack_blocks_invalid"] += 1
                continue
            scoreboard.add(left, right)

    # ------------------------------------------- RACK (RFC 8985), rack.py

    def _rack_on_ack(self, seg, ack: int, now: float) -> None:
        """RFC 8985 section 6.2 on every ACK: the records this ACK delivers,
        then losses, or no reordering timer when there is nothing to judge."""
        ts_ecr = seg.ts_ecr if self.ts_ok and seg.has_ts else 0
        if self.rack.on_ack(ack, seg.sack_blocks, self.snd_max, ts_ecr, self._ts_offset, self.rtt.lowest, now):
            self._rack_detect(now)
            if self._probe_seq >= 0:
                self._probe_check(now)
        else:
            self._stop_reo()

    def _rack_detect(self, now: float) -> None:
        """Let RACK mark losses; the reordering timer waits for the next."""
        timeout = self.rack.detect(now, self.rtt.lowest, self.rtt.smoothed, self.recovery.active, self._timer_tick)
        self._reo_at = now + timeout if timeout >= 0 else NEVER

    # --------------------------- loss recovery (RFC 6582, 6675, 6937), recovery.py

    def _recover(self, action: int, now: float) -> None:
        """Carry out what the recovery unit decided (recovery.py's table);
        END and PARTIAL, which need the ACK, are _on_new_ack's."""
        if action == REPAIR:
            self._sack_recovery_send(now)
        elif action == ENTER:
            self._enter_recovery(now)
        elif action == RESEND:
            self._resend_lost(self._pipe(), now)
        elif action == INFLATE:
            self.cc.on_dupack_in_recovery()

    def _enter_recovery(self, now: float) -> None:
        """Fast retransmit, the one way into fast recovery: NewReno's (RFC
        6582 section 3.2 step 2) without SACK, RFC 6675's with PRR (RFC
        6937) with it.  Recovery lasts until everything now outstanding is
        acknowledged (``recovery.recover``)."""
        if self._probe_seq == self.snd_una:
            # the probe was lost, not the network's share: its data goes
            # again, with no window reduction (Linux's tcp_fastretrans_alert,
            # with SACK or without)
            self._probe_failed(now)
            return
        flight = seq_diff(self.snd_max, self.snd_una)
        self.cc.on_recovery_start(flight, now, self.sack_ok)
        self.recovery.start(self.snd_max, flight)
        self.events.append((self, Retransmission("fast", self.snd_una, self.rtt.rto)))
        self._rtt_seq = -1  # Karn: no sample across a retransmission
        if not self.sack_ok:
            self._resend(self.snd_una, self.mss, now)
            return
        self._stop_pto()  # recovery repairs the tail itself
        self.rack.mark_first_lost()
        self._sack_recovery_send(now)

    def _sack_recovery_send(self, now: float) -> None:
        """RFC 6675 section 5 with RACK's loss marks: PRR sets cwnd for this
        ACK; while cwnd - pipe allows, resend the lowest record marked lost
        (NextSeg rule 1); new data (rule 2) follows through _push, which
        sees the pipe credit."""
        flight = seq_diff(self.snd_max, self.snd_una)
        pipe = self._pipe()
        self.cc.on_prr(pipe, self.recovery.prr(pipe, self.mss, self.cc.ssthresh))
        self.recovery.set_pipe(flight, self._resend_lost(pipe, now))

    def _pipe(self) -> int:
        """RFC 6675's pipe: bytes in flight, less the SACKed and those RACK
        marked lost."""
        return seq_diff(self.snd_max, self.snd_una) - self.scoreboard.total - self.rack.lost_bytes

    def _resend_lost(self, pipe: int, now: float) -> int:
        """Resend records marked lost, lowest first, while cwnd - pipe
        allows a full segment; returns the pipe that leaves.  Outside
        recovery (losses found again before the last episode's recovery
        point, as after an RTO) this runs on cwnd alone, with no second
        window reduction, like Linux in its Loss state."""
        mss = self.mss
        rack = self.rack
        records = rack.records
        i = 0
        while i < len(records):
            if rack.lost_bytes <= 0 or self.cc.cwnd - pipe < mss:
                break
            record = records[i]
            if record.flags & _LOST:
                length = seq_diff(record.end, record.start)
                if segments(record) > 1:
                    # of a run's record, what the window allows (Linux's
                    # tcp_retransmit_skb): the rest stays marked
                    length = min(length, (self.cc.cwnd - pipe) // mss * mss)
                self._resend(record.start, length, now)  # clears the mark of what went
                self.recovery.sack_retransmits += 1
                pipe += length
            i += 1
        return pipe

    def _resend(self, seq: int, length: int, now: float) -> None:
        """Resend up to ``length`` bytes from ``seq``, with the FIN if they
        reach it (or the FIN alone), in segments of today's MSS (a path
        that shrank re-segments what was sent before)."""
        if self._probe_seq >= 0 and seq_lt(seq, self._probe_end) and seq_gt((seq + length) & MASK, self._probe_seq):
            # a path MTU probe's bytes go again in today's segments: the
            # ACK that covers them no longer proves that the probe arrived,
            # so the probe counts as lost (as after a timeout), never as
            # passed
            self._probe_failed(now, resend=False)
        data_end = self._data_end()
        length = min(length, seq_diff(data_end, seq))
        fin = self.fin_seq is not None and seq_diff(data_end, seq) == length
        mss = self.mss
        while length > mss:
            self._send_data(seq & MASK, mss, False, now)
            seq += mss
            length -= mss
        if length > 0 or fin:
            self._send_data(seq & MASK, max(length, 0), fin, now)

    def _on_new_ack(self, ack: int, now: float) -> None:
        acked = seq_diff(ack, self.snd_una)
        flight_before = seq_diff(self.snd_max, self.snd_una)
        # drop acknowledged bytes from the send buffer (the FIN is not in it)
        data_acked = min(seq_diff(ack, self._sndbuf_seq), len(self._sndbuf))
        if data_acked > 0:
            self._sndbuf.drop(data_acked)  # in C, O(1); all of it empties the buffer
            self._sndbuf_seq = (self._sndbuf_seq + data_acked) & MASK
            self.bytes_acked += data_acked
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if self._rtt_seq >= 0 and seq_ge(ack, self._rtt_seq):
            self._rtt_sample(now - self._rtt_time, now)
            self._rtt_seq = -1
        if self._probe_seq >= 0 and seq_ge(ack, self._probe_end):
            self._probe_acked(now)
        self.retries = 0
        self._persist_backoff = 0
        self.rack.probe_outstanding = False
        recovery = self.recovery
        if not recovery.active:
            self.cc.on_ack(acked, flight_before, now)
            if 2 * self.cc.cwnd > self.send_buffer and self._sndbuf_max > self.send_buffer:
                self._send_buffer_expand()
        action = recovery.on_new_ack(ack, self.rack.lost_bytes)
        if action == END:
            if self.sack_ok:
                self.rack.on_recovery_end()
                self.cc.on_recovery_end(seq_diff(self.snd_max, ack), True)
            else:
                self.cc.on_recovery_end(flight_before - acked, False)  # RFC 6582 3.2 step 3
        elif action == PARTIAL:
            # partial acknowledgment: resend the next hole, deflate
            self._resend(self.snd_una, self.mss, now)
            self.cc.on_partial_ack(acked)
        else:
            self._recover(action, now)
        if seq_gt(self.snd_max, self.snd_una):
            self._start_rto(now)  # RFC 6298 (5.3)
            self._start_user_timeout(now)  # progress: the count starts again
        else:
            self._stop_rto()  # RFC 6298 (5.2)
            self._stop_user_timeout()
        self._arm_pto(now)
        if self.low_water is not None and len(self._sndbuf) <= self.low_water:
            self.low_water = None
            self.events.append((self, _WRITABLE))
            # the writer this wakes writes in the receive batch open now: a
            # part of a run waits for its data (end_batch sends it if none came)
            if (self.endpoint is not None and self.endpoint.run_bytes and not self._fin_queued
                    and (self._ack_queued or self.endpoint.defer_ack(self))):
                self._waking = True

    def _on_dupack(self, now: float) -> None:
        """A duplicate ACK: fast retransmit and recovery (RFC 5681, RFC
        6582, RFC 6675), as the recovery unit decides."""
        self.stats["dupacks"] += 1
        self._recover(self.recovery.on_dupack(self.snd_una, self.rack.lost_bytes, self.rack.sacked_count), now)

    def _process_text_and_fin(self, seg, seq: int, now: float) -> None:
        """Steps six to eight: accept data in window, then the FIN."""
        flags = seg.flags
        payload = seg.payload
        fin = bool(flags & FIN)
        state = self.state
        if not self._receiving:
            if fin and state in (CLOSE_WAIT, CLOSING, LAST_ACK):
                self._send_ack()  # a retransmitted FIN
            return
        rcv_nxt = self.rcv_nxt
        # trim what lies before rcv_nxt and beyond the advertised window
        offset = seq_diff(rcv_nxt, seq)
        if offset > 0:
            payload = payload[offset:]
            seq = rcv_nxt
        room = seq_diff(self._rcv_adv, seq)
        if len(payload) > room:
            payload = payload[:max(room, 0)]
            fin = False
        length = len(payload)
        if length and self.discard_input and state in (FIN_WAIT_1, FIN_WAIT_2):
            # new data for a user who closed: Linux answers with a RST
            # (LINUX_MIB_TCPABORTONDATA, RFC 1122 section 4.2.2.13) so the
            # peer stops writing into nothing; its sequence number is the
            # ACK the peer sent, which it is sure to accept
            self.stats["resets_data_after_close"] += 1
            self._reset(now, seg.ack if flags & ACK else self.snd_max, None)
            return
        if seq == rcv_nxt:
            had_holes = self.rcv_buffer.has_holes()
            if length:
                if not self.discard_input:
                    self.rcv_buffer.append(payload)
                self.bytes_received += length
                self.rcv_nxt = (rcv_nxt + length) & MASK
                if self.ts_ok and seg.ts_ecr and length >= self.mss and self._rcvbuf_max:
                    self._rcv_rtt_sample(((self._ts_val() - seg.ts_ecr) & MASK) / 1000.0)
                self._data_in_at = now
                nat_at = self._nat_at
                if nat_at != NEVER and nat_at > now + self._nat_quick:
                    self._nat_at = now + self._nat_quick  # a stall of this stream probes sooner
            if fin:
                self._ooo_fin = (seq + length) & MASK
            if had_holes:
                self._drain_ooo()
            if length and not self._readable_pending and self.rcv_buffer.buffered:
                self._readable_pending = True
                self.events.append((self, _DATA_READABLE))
            if self._ooo_fin is not None and self._ooo_fin == self.rcv_nxt:
                self._on_fin(now)
            elif had_holes:
                self._send_ack()  # a hole filled: ACK at once
            elif self._quickack:
                self._quickack -= 1
                self._send_ack()  # quick ACK mode: every segment, at once
            else:
                self._ack_pending += seg.segs  # a coalesced run counts as its segments
                if self._ack_pending >= 2 or not self._delayed_ack:
                    self._owe_ack()
                elif self._delack_at == NEVER:
                    self._start_delack(now)
        else:
            # out of order: keep it and send a duplicate ACK at once
            if length:
                self.rcv_buffer.store(seq, payload, self.rcv_nxt)
                self._last_ooo_seq = seq
            if fin:
                self._ooo_fin = (seq + length) & MASK
            self.stats["out_of_order_segments"] += 1
            self._quickack = _QUICKACKS  # data went missing: the sender needs every ACK
            self._send_ack()

    def _drain_ooo(self) -> None:
        """The hole before the out-of-order data filled: what now follows
        rcv_nxt joins the in-order data."""
        receive = self.rcv_buffer
        while True:
            chunk = receive.take_next(self.rcv_nxt)
            if chunk is None:
                break
            if chunk:
                if not self.discard_input:
                    receive.append(chunk)
                self.bytes_received += len(chunk)
                self.rcv_nxt = (self.rcv_nxt + len(chunk)) & MASK

    def _on_fin(self, now: float) -> None:
        """Step eight: the FIN is in order."""
        self._ooo_fin = None
        self.fin_received = True
        self.rcv_nxt = (self.rcv_nxt + 1) & MASK
        self.events.append((self, _PEER_CLOSED))
        state = self.state
        if state is ESTABLISHED:
            self._set_state(CLOSE_WAIT, now)
        elif state is FIN_WAIT_1:
            self._set_state(TIME_WAIT if self._fin_acked() else CLOSING, now)
        elif state is FIN_WAIT_2:
            self._set_state(TIME_WAIT, now)
        if self.state is CLOSE_WAIT:
            # at the end of the batch, as Linux delays it: an application
            # that closes on reading EOF sends its FIN with this ACK on it
            self._owe_ack()
        else:
            self._send_ack()
