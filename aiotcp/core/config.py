"""Tunable parts of aiotcp, with Linux's defaults where the RFCs leave room."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass


#: The Linux TCP sysctl (``net.ipv4.<name>``) each field mirrors, for
#: ``python -m aiotcp demo --sysctl``; each field's documentation names it.
SYSCTLS = {
    "receive_buffer": "tcp_rmem", "send_buffer": "tcp_wmem", "window_scaling": "tcp_window_scaling",
    "timestamps": "tcp_timestamps", "sack": "tcp_sack", "tail_loss_probe": "tcp_early_retrans",
    "fin_timeout": "tcp_fin_timeout", "max_time_wait": "tcp_max_tw_buckets", "syn_retries": "tcp_syn_retries",
    "synack_retries": "tcp_synack_retries", "retries": "tcp_retries2", "keepalive_idle": "tcp_keepalive_time",
    "keepalive_interval": "tcp_keepalive_intvl", "keepalive_count": "tcp_keepalive_probes",
    "slow_start_after_idle": "tcp_slow_start_after_idle", "syn_cookies": "tcp_syncookies",
    "syn_backlog": "tcp_max_syn_backlog", "abort_on_overflow": "tcp_abort_on_overflow",
    "invalid_ratelimit": "tcp_invalid_ratelimit", "challenge_ack_limit": "tcp_challenge_ack_limit",
    "congestion_control": "tcp_congestion_control", "pmtu_discovery": "tcp_mtu_probing",
    "autocork": "tcp_autocorking",
}


def sysctl_table() -> list[tuple[str, object, str]]:
    """(field, default, sysctl) for every field that mirrors a sysctl."""
    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    return [(name, defaults[name], f"net.ipv4.{sysctl}") for name, sysctl in SYSCTLS.items()]


@dataclass(frozen=True)
class Config:
    """One frozen, documented set of knobs, shared by every connection of an
    endpoint.  Make a variant with :meth:`replace`."""

    #: Path MTU in bytes (the interface's MTU for Linux; no sysctl).  The
    #: advertised MSS is the MTU less the IP header,
    #: the 8-byte UDP header and the 20-byte TCP header (docs/wire-format.md "Sizes").
    mtu: int = 1500
    #: Path MTU discovery (RFC 4821, RFC 8899's rules for datagrams; the
    #: search is core/pmtu.py): every datagram leaves with Don't Fragment
    #: set (IP_PMTUDISC_PROBE), and ``mtu`` above is the upper bound.
    #: Segments start at the 1200-byte base and probes with real data find
    #: the largest size the path carries (a lost probe is repaired, never
    #: a congestion signal); a checked ICMP "packet too big" from the
    #: socket's error queue, or EMSGSIZE, lowers the size at once; three
    #: retransmission timeouts in a row with big segments out (a black
    #: hole) fall back to the base and search again; 600 s later a larger
    #: size is tried again.  False: the kernel's default for UDP (fragment
    #: locally) and a fixed size.  (Linux: tcp_mtu_probing = 2, always.)
    pmtu_discovery: bool = True
    #: Explicit MSS to advertise, overriding the MTU rule (None: derive it).
    mss: int | None = None
    #: Receive buffer per connection: bounds the advertised window and the
    #: memory one connection's unread and out-of-order data may take; the
    #: size a connection starts with (Linux tcp_rmem[1], SO_RCVBUF).
    receive_buffer: int = 1 << 20
    #: Receive-buffer autotuning (Linux tcp_moderate_rcvbuf, dynamic right
    #: sizing): once per round trip, a buffer the application drained by
    #: more than it was sized for grows (about twice what was read in that
    #: round trip, more while the rate is still rising), up to this size
    #: (Linux tcp_rmem[2], 6 MiB).  It never shrinks, and it only grows for
    #: an application that reads.  None: fixed at ``receive_buffer`` (as a
    #: socket whose SO_RCVBUF was set).  Below ``receive_buffer``: no growth.
    receive_buffer_max: int | None = 6 << 20
    #: Send buffer per connection (like SO_SNDBUF): data the transport hands
    #: to TCP at once; beyond it, the transport's write buffer fills and
    #: drain() applies backpressure (Linux tcp_wmem[1]).  The size a
    #: connection starts with.
    send_buffer: int = 1 << 20
    #: Send-buffer autotuning (Linux tcp_sndbuf_expand): the send buffer
    #: grows to twice the congestion window, so that a window larger than
    #: the buffer can be filled, up to this size (Linux tcp_wmem[2], 4 MiB).
    #: None: fixed at ``send_buffer`` (as a socket whose SO_SNDBUF was set).
    send_buffer_max: int | None = 4 << 20
    #: Advertise window scaling (RFC 7323 section 2; Linux tcp_window_scaling).
    window_scaling: bool = True
    #: Timestamps (RFC 7323 sections 3 to 5): RTT measured on every ACK and
    #: PAWS.  They cost 12 bytes of every segment (the MSS shrinks by 12).
    #: (Linux tcp_timestamps.)
    timestamps: bool = True
    #: Selective acknowledgments (RFC 2018) with D-SACK (RFC 2883), and
    #: SACK-based loss recovery (RFC 6675) when the peer agrees, with RACK
    #: (RFC 8985) deciding what is lost from per-segment send times (Linux
    #: tcp_sack, tcp_dsack, tcp_recovery).
    sack: bool = True
    #: Tail loss probes (RFC 8985 section 7), used with SACK: when ACKs
    #: stop for about two RTTs, probe with one segment so that a loss at the
    #: tail of a flight is repaired by RACK and SACK recovery instead of an
    #: RTO.  On, as in Linux (tcp_early_retrans = 3).
    tail_loss_probe: bool = True
    #: 2 x MSL: how long TIME_WAIT lasts (Linux: 60 s, TCP_TIMEWAIT_LEN, fixed
    #: at build time there; no sysctl).
    time_wait: float = 60.0
    #: How long a connection the user fully closed may wait in FIN_WAIT_2
    #: for the peer's FIN before it is dropped (Linux tcp_fin_timeout).
    fin_timeout: float = 60.0
    #: Keep TIME_WAIT on a client connection's own UDP socket (what
    #: open_connection() and create_connection() make): the record re-ACKs
    #: a FIN whose last ACK was lost, at the cost of the socket's descriptor
    #: for ``time_wait`` seconds.  Off by default, so that a client's
    #: TIME_WAIT costs no descriptor, as kernel TCP's does not: the socket
    #: closes as TIME_WAIT begins and the record is not kept (what Linux
    #: does past tcp_max_tw_buckets).  The 4-tuple is not reused early even
    #: so: the next connection gets another UDP socket, and ISNs follow the
    #: clock (RFC 6528).  Listeners always keep TIME_WAIT.
    client_time_wait: bool = False
    #: How long a connection the user closed (the transport's close()) may
    #: take to have everything it sent, and its FIN, acknowledged.  Until
    #: then the transport's connection_lost() (and so wait_closed()) waits;
    #: past it the connection is reset and connection_lost() gets a
    #: TimeoutError.  None: no bound but the retransmission limits (Linux
    #: keeps an orphan's data for its retransmission budget, about as long).
    linger: float | None = 60.0
    #: Most TIME_WAIT records an endpoint keeps (Linux tcp_max_tw_buckets).
    max_time_wait: int = 262_144
    #: RFC 6298 retransmission timeout: initial, floor (Linux 200 ms,
    #: TCP_RTO_MIN, or ``ip route ... rto_min``) and cap (TCP_RTO_MAX).
    rto_initial: float = 1.0
    rto_min: float = 0.2
    rto_max: float = 60.0
    #: Retransmissions of a SYN, of a SYN-ACK, and of data before giving up
    #: (Linux tcp_syn_retries, tcp_synack_retries, tcp_retries2).
    syn_retries: int = 6
    synack_retries: int = 5
    retries: int = 15
    #: Delayed ACK timeout in seconds (0 acknowledges every segment at once;
    #: Linux TCP_DELACK_MIN 40 ms, or ``ip route ... quickack``).
    delayed_ack: float = 0.04
    #: Within one batch of datagrams read from the socket, acknowledge
    #: in-order data once, at the end of the batch, rather than every second
    #: segment: what Linux does for a burst that GRO hands it in one piece.
    #: The asyncio layer ends a batch once the protocols have seen its data
    #: and the loop has run what that woke, so a reply written at once
    #: carries the ACK (and the window a read opened) instead of a bare ACK
    #: going ahead of it.  Out-of-order data, a filled hole, a FIN, and the
    #: segments of quick ACK mode are still acknowledged at once, so loss
    #: recovery sees every duplicate ACK.
    ack_coalescing: bool = True
    #: Writes that the application makes while a receive batch is being
    #: answered (the tasks the batch woke, in the same turn of the loop)
    #: leave together at the batch's end, with its ACK, when earlier data
    #: of the connection is still unacknowledged or queued (Linux
    #: net.ipv4.tcp_autocorking, which holds small writes while earlier ones
    #: wait): the rest of a reply and the close after it are one segment,
    #: not one datagram each that wakes the peer each time.  A write with
    #: nothing ahead of it (a request, a reply the peer waits for) goes at
    #: once, unless the batch woke other connections too: then all their
    #: writes leave together.  Off: each write goes at once, the ladder the
    #: teaching demo draws.
    autocork: bool = True
    #: UDP segmentation offload (Linux 4.18 and later): a run of datagrams
    #: of equal size to one peer leaves in one system call, and the kernel
    #: splits it back into exactly those datagrams (one segment in each, as
    #: docs/wire-format.md says).  Falls back to one call per datagram where the kernel
    #: refuses it.  A capture on the loopback interface shows such a run
    #: unsplit, as it does for kernel TCP's TSO.
    udp_gso: bool = True
    #: UDP receive offload (Linux 5.0 and later): the kernel may hand a run
    #: of datagrams from one peer in one read, and the endpoint cuts it back
    #: into the datagrams it was made of.
    udp_gro: bool = True
    #: Within such a run, consecutive in-order data segments of one
    #: connection (flags ACK or ACK+PSH, the same ACK, window and
    #: timestamps, nothing but timestamps among the options) are processed
    #: as one segment with the data of all, as Linux's TCP GRO does.  Every
    #: datagram's checksum is still verified, and the ACK is the one those
    #: segments owe.
    receive_coalescing: bool = True
    #: Disable Nagle's algorithm.  asyncio sets TCP_NODELAY on every TCP
    #: transport, so aiotcp does the same by default (no sysctl: the
    #: TCP_NODELAY socket option).
    nodelay: bool = True
    #: Keepalive (RFC 1122 section 4.2.3.6), off by default as in Linux:
    #: after ``keepalive_idle`` seconds without hearing from the peer, send
    #: up to ``keepalive_count`` probes ``keepalive_interval`` apart, then
    #: send a RST (as Linux does) and fail the connection with TimeoutError
    #: (Linux: 7200 s, 75 s, 9: tcp_keepalive_time, tcp_keepalive_intvl,
    #: tcp_keepalive_probes).  Data unacknowledged is never probed (it is
    #: retransmitted instead): ``user_timeout`` bounds that case.
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    #: NAT keepalive: NAT bindings for UDP die after 30-120 s of silence
    #: (Linux conntrack: 30 s for a one-way flow, 120 s for one seen both
    #: ways), long before ``keepalive_idle``.  A connection this side opened
    #: (an active open, including a hole punch) that has sent nothing for
    #: this many seconds sends a keepalive-style probe (an ACK one below
    #: snd_una, which the peer answers), so the binding of every NAT on the
    #: path sees traffic both ways.  It never fails a connection (that is
    #: ``keepalive``'s job).  None: off.  Connections accepted by a listener
    #: do not send it (a server behind no NAT has no binding to keep).
    #: When a stream from the peer stops, one probe goes sooner, after
    #: max(1 s, 2 RTO) of silence both ways: if a NAT moved us meanwhile,
    #: the peer's segments are going to our old address and only something
    #: from us tells it the new one (one probe per pause of incoming data).
    nat_keepalive: float | None = 25.0
    #: Path migration (NAT rebinding): a segment from a new UDP address that
    #: is unmistakably an existing connection's (its ports, an acceptable
    #: sequence number and ACK, and with timestamps an echo of a TSval sent
    #: within ``migration_echo_age`` seconds) makes the connection
    #: challenge the new address; when the answer echoes the challenge, the
    #: connection moves there.  False: segments from other addresses are
    #: dropped (and counted), never answered with a RST.
    migration: bool = True
    migration_echo_age: float = 120.0
    #: User timeout (RFC 5482 semantics, like Linux TCP_USER_TIMEOUT): fail
    #: the connection when sent data stays unacknowledged this long.  With
    #: ``keepalive`` on, it also replaces ``keepalive_count``, as in Linux:
    #: keepalive gives up once the peer has been silent this long and a
    #: probe went unanswered.  None: only the retry limits apply.  (A socket
    #: option; no sysctl.)
    user_timeout: float | None = None
    #: Restart after idle (RFC 5681 section 4.1, Linux
    #: tcp_slow_start_after_idle): after more than an RTO without sending,
    #: the congestion window falls back to the initial window.
    slow_start_after_idle: bool = True
    #: Answer a full SYN queue with SYN cookies (RFC 4987) instead of dropping
    #: (Linux tcp_syncookies = 1).
    syn_cookies: bool = True
    #: Half-open (SYN_RCVD) connections a listener holds (Linux
    #: tcp_max_syn_backlog); the accept queue is bounded by the backlog.
    syn_backlog: int = 256
    #: When the final ACK of a handshake finds the accept queue full: False
    #: drops it, so the SYN-ACK is retransmitted and the client's next ACK
    #: may find room (Linux's default); True answers it with a RST (Linux
    #: tcp_abort_on_overflow = 1).
    abort_on_overflow: bool = False
    #: At most one challenge ACK or out-of-window ACK per connection per this
    #: many seconds (RFC 5961 section 7; Linux tcp_invalid_ratelimit 500 ms).
    invalid_ratelimit: float = 0.5
    #: Endpoint-wide challenge ACKs per second (Linux tcp_challenge_ack_limit).
    challenge_ack_limit: int = 1000
    #: Timer wheel granularity in seconds (Linux: HZ, a build-time constant).
    timer_tick: float = 0.001
    #: Congestion control algorithm (see aiotcp.core.congestion): "cubic" (the
    #: default, as Linux's default build), "newreno", or "bbr" (BBRv1,
    #: core/bbr.py; it needs SACK: without it a connection falls back to
    #: CUBIC) (Linux tcp_congestion_control; TCP_CONGESTION per socket).
    congestion_control: str = "cubic"
    #: The same, by its shorter name: ``Config(congestion="bbr")``.  When
    #: given it sets ``congestion_control`` (and reads back as None).
    congestion: str | None = None
    #: Pacing: segments leave at the controller's pacing rate (BBR's model;
    #: for CUBIC and NewReno Linux's cwnd / srtt x 2 in slow start, x 1.2
    #: after), a burst of at most a timer tick's worth, instead of a window
    #: at once.  False: as fast as the windows allow.
    pacing: bool = True
    #: Upper bound of the pacing rate in bytes per second (Linux
    #: SO_MAX_PACING_RATE; None: none).  Set, it paces even with ``pacing``
    #: off, as the socket option does.
    max_pacing_rate: float | None = None

    def __post_init__(self):
        if self.congestion is not None:
            object.__setattr__(self, "congestion_control", self.congestion)
            object.__setattr__(self, "congestion", None)
        from .congestion import _algorithms  # here: congestion imports nothing of config
        algorithms = _algorithms()
        if self.congestion_control not in algorithms:
            raise ValueError(f"unknown congestion control {self.congestion_control!r}; "
                             f"have {sorted(algorithms)}")
        if self.max_pacing_rate is not None and not self.max_pacing_rate > 0:
            raise ValueError("max_pacing_rate must be positive bytes per second (None: no limit)")
        if self.mss is not None and not 64 <= self.mss <= 65535:
            raise ValueError("mss must be between 64 and 65535")
        if not 576 <= self.mtu <= 65535:
            raise ValueError("mtu must be between 576 and 65535")
        if self.receive_buffer < 1024:
            raise ValueError("receive_buffer must be at least 1024")
        if self.send_buffer < 1024:
            raise ValueError("send_buffer must be at least 1024")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise ValueError("need 0 < rto_min <= rto_initial <= rto_max")
        if self.linger is not None and self.linger < 0:
            raise ValueError("linger must not be negative")
        if self.time_wait < 0 or self.delayed_ack < 0:
            raise ValueError("time_wait and delayed_ack must not be negative")
        if self.nat_keepalive is not None and self.nat_keepalive <= 0:
            raise ValueError("nat_keepalive must be positive (None: off)")

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def local_mss(self, ipv6: bool = False) -> int:
        """The MSS to advertise (docs/wire-format.md: MTU - IP - UDP(8) - TCP(20))."""
        if self.mss is not None:
            return self.mss
        return self.mtu - (40 if ipv6 else 20) - 8 - 20

    @functools.cached_property
    def per_connection(self) -> tuple:
        """The flags and times a connection's per-segment path reads, in the
        order Connection.config's setter unpacks them, read here once per
        Config (a compiled reader's attribute lookup is some 200
        instructions)."""
        return (self.nodelay, self.delayed_ack, self.ack_coalescing, self.keepalive, self.tail_loss_probe,
                self.slow_start_after_idle, -1.0 if self.user_timeout is None else self.user_timeout,
                -1.0 if self.nat_keepalive is None else self.nat_keepalive, self.timer_tick,
                self.pacing or self.max_pacing_rate is not None, self.max_pacing_rate or 0.0,
                self.rto_initial, self.rto_min, self.rto_max)

    @functools.cached_property
    def buffer_sizes(self) -> tuple:
        """The receive buffer's size and autotuning's limit for it, then the
        send buffer's (0: no autotuning), in the order
        Connection._size_buffers unpacks them."""
        return (self.receive_buffer, self.receive_buffer_limit if self.receive_buffer_max is not None else 0,
                self.send_buffer, self.send_buffer_limit if self.send_buffer_max is not None else 0)

    @functools.cached_property
    def receive_buffer_limit(self) -> int:
        """The largest the receive buffer may grow to (autotuning's bound)."""
        return max(self.receive_buffer, self.receive_buffer_max or 0)

    @functools.cached_property
    def send_buffer_limit(self) -> int:
        """The largest the send buffer may grow to (autotuning's bound)."""
        return max(self.send_buffer, self.send_buffer_max or 0)

    @functools.cached_property
    def receive_wscale(self) -> int:
        """Smallest shift that lets the window field cover the buffer at the
        largest autotuning may make it (the shift is fixed by the SYN)."""
        return min(14, max(0, self.receive_buffer_limit.bit_length() - 16))


DEFAULT = Config()
