"""All the TCP of one UDP socket, sans I/O.

An :class:`Endpoint` demultiplexes datagrams to connections by (remote UDP
address, local TCP port, remote TCP port), hands SYNs to listeners, answers
segments for nothing with a RST (docs/wire-format.md "Ports"; RFC 9293 section
3.10.7.1), swaps connections entering TIME_WAIT for compact records, and owns
the timer wheel that holds one entry per connection.  Like the connection, it
is driven by calls carrying ``now`` and never does I/O.

Its output is two lists, the one way to drain it: datagrams to send
accumulate in ``outbox`` as ``(bytes, addr)`` pairs and events in ``events``
as ``(connection_or_listener, event)`` pairs.  The connections append to
these very lists, so the caller reads them and empties them in place
(``list.clear()``; aiotcp.tools.testing.drain does both), never replaces
them.  An event handler that calls back into the core appends to the list
being read, which the caller's pass then reaches.
"""
from __future__ import annotations

from collections import Counter, deque

from .. import _fast
from .._fast import ACK, FIN, RST, SYN, BadChecksum, DatagramSink, MalformedSegment, Timer, TimerWheel, decode, empty_list
from .config import DEFAULT, Config
from .connection import CLOSED, TIME_WAIT, Connection, TimeWait, seq_add, seq_gt, ts_offset
from .events import Incoming
from .isn import SequenceSource


class Listener:
    """A passive open on one TCP port: a bounded queue of half-open
    connections (SYN_RCVD) and one of established connections waiting for
    :meth:`accept`."""

    def __init__(self, endpoint: "Endpoint", port: int, backlog: int):
        self.endpoint = endpoint
        self.port = port
        self.backlog = max(1, backlog)
        self.half_open = 0
        self.accept_queue: deque[Connection] = deque()
        self.closed = False
        self.holding = False

    def __repr__(self):
        return f"<Listener port={self.port} half_open={self.half_open} queued={len(self.accept_queue)}>"

    def has_room(self) -> bool:
        return len(self.accept_queue) < self.backlog

    def accept(self) -> Connection | None:
        """The next established connection, or None (always while held)."""
        return self.accept_queue.popleft() if self.accept_queue and not self.holding else None

    def hold(self) -> None:
        """Hand out no connection until :meth:`release`, as an application
        that has not called accept() yet: the queue fills up to the backlog
        (what the demo's backlog scenarios show)."""
        self.holding = True

    def release(self) -> None:
        """Hand out connections again; the queued ones are announced."""
        self.holding = False
        if self.accept_queue:
            self.endpoint.events.append((self, Incoming()))

    def close(self, now: float) -> None:
        """Stop listening; connections not yet accepted are reset."""
        self.closed = True
        self.endpoint.listeners.pop(self.port, None)
        while self.accept_queue:
            self.accept_queue.popleft().abort(now)


class Endpoint(DatagramSink):
    def __init__(self, config: Config = DEFAULT, *, now: float = 0.0, ipv6: bool = False,
                 secret: bytes | None = None, tracer=None):
        self.config = config
        self.ipv6 = ipv6
        self.connections: dict[tuple, Connection | TimeWait] = {}
        self.listeners: dict[int, Listener] = {}
        self.wheel = TimerWheel(config.timer_tick, now)
        #: what to send, in order: (datagram, address) pairs, and while
        #: run_bytes is set (the socket below sends runs, UDP GSO) also runs,
        #: (datagrams, address, size): datagrams of ``size`` bytes back to
        #: back in one buffer (the last may be shorter), one system call's worth
        self.outbox: list[tuple] = []
        self.events: list[tuple[object, object]] = []
        self.stats: Counter = Counter.__new__(Counter)  # Counter() less its __init__'s Python
        self.sequences = SequenceSource(secret)
        self.tracer = tracer
        self.coalesce = config.receive_coalescing
        self.time_wait_count = 0
        #: keep TIME_WAIT records (False: a connection entering TIME_WAIT is
        #: forgotten, as Linux does past tcp_max_tw_buckets; the asyncio
        #: layer's client sockets do that so that TIME_WAIT holds no socket)
        self.keep_time_wait = True
        #: connections owing an ACK at the end of the current receive batch
        #: (Config.ack_coalescing); None outside a batch
        self._batch: list | None = None
        self._batch_list: list = []  # what _batch is during a batch
        self._challenge_second = -1
        self._challenge_count = 0
        # the connection the last datagram went to, by the very address
        # object and ports it came with (the datagram socket hands out the
        # same address object while the source stays the same): a stream of
        # segments skips the key tuple and the dict.  Any change to
        # ``connections`` clears it (_put and _remove).
        self._last_conn = None
        self._last_addr = None
        self._last_ports = -1
        #: the keys of ``connections`` by their ports (local << 16 | remote): a
        #: key, or a dict of keys when several connections have those ports,
        #: for a segment from an address no connection has (a NAT rebinding)
        self._by_ports: dict = {}

    # ----------------------------------------------------------- user API

    def listen(self, port: int, backlog: int = 128) -> Listener:
        if port in self.listeners:
            raise OSError(98, f"TCP port {port} is already listening")
        listener = Listener(self, port, backlog)
        self.listeners[port] = listener
        return listener

    def connect(self, remote_addr, remote_port: int, local_port: int, now: float,
                punching: bool = False) -> Connection:
        """Active open towards ``remote_addr`` (a UDP address); ``punching``:
        a hole-punching attempt (see Connection.punching)."""
        key = (remote_addr, local_port, remote_port)
        existing = self.connections.get(key)
        if existing is not None:
            if isinstance(existing, TimeWait):
                self._drop(key, existing)
            else:
                raise OSError(98, f"a connection from TCP port {local_port} to {remote_addr} TCP port "
                                  f"{remote_port} exists already")
        conn = self._new_connection(remote_addr, local_port, remote_port, now)
        conn.punching = punching
        conn.connect(now)
        return conn

    def free_port(self, remote_addr, remote_port: int, preferred: int) -> int:
        """A local TCP port for a new connection to (``remote_addr``,
        ``remote_port``): ``preferred`` (the UDP port, which a hole-punching
        peer knows) unless a connection to that peer already uses it, else
        the first free one of the ephemeral range (Linux's 32768-60999)
        from a point the peer's address picks."""
        connections = self.connections
        if (remote_addr, preferred, remote_port) not in connections:
            return preferred
        start = 32768 + hash((remote_addr, remote_port)) % 28232
        for i in range(28232):
            port = 32768 + (start - 32768 + i) % 28232
            if (remote_addr, port, remote_port) not in connections:
                return port
        raise OSError(99, f"no free TCP port towards {remote_addr} port {remote_port}")

    def drop_time_wait(self) -> int:
        """Forget every TIME_WAIT record (the socket is closing: nothing
        would answer for them anyway); returns how many."""
        records = [(key, record) for key, record in self.connections.items() if type(record) is TimeWait]
        for key, record in records:
            self._drop(key, record)
        return len(records)

    def next_deadline(self) -> float | None:
        return self.wheel.next_deadline()

    # --------------------------------------------------------- input

    def begin_batch(self) -> None:
        """Datagrams that follow, up to :meth:`end_batch`, arrived together."""
        self._batch = self._batch_list

    def acks_deferred(self) -> bool:
        """Connections of the batch open now owe ACKs, or a woken writer's
        part of a run, that end_batch sends."""
        return len(self._batch_list) > 0

    def end_batch(self, now: float = -1.0) -> None:
        """The batch ended at ``now`` (negative: unknown): send the ACKs
        that in-order data in it made due, and what the writers its ACKs
        woke left in part of a run (Connection._whole_runs)."""
        batch = self._batch_list
        self._batch = None
        try:
            for conn in batch:
                conn.send_deferred_ack(now)
        finally:
            empty_list(batch)

    def receive_datagram(self, data, addr, now: float) -> None:
        """Process one datagram that arrived from UDP address ``addr``."""
        if self.tracer is not None:
            self.tracer.segment(self, "in", data, addr)
        try:
            seg = decode(data)
        except BadChecksum:
            self.stats["bad_checksum"] += 1
            return
        except MalformedSegment:
            self.stats["malformed"] += 1
            return
        self.receive_segment(seg, addr, now)

    def receive_segment(self, seg, addr, now: float) -> None:
        """Process one decoded segment that arrived from ``addr`` (the UDP
        socket's reader decodes in place and calls this directly)."""
        ports = seg.dst_port << 16 | seg.src_port
        if addr is self._last_addr and ports == self._last_ports:
            connection = self._last_conn
            connection.receive(seg, now)
            return
        key = (addr, seg.dst_port, seg.src_port)
        conn = self.connections.get(key)
        if conn is not None:
            if type(conn) is TimeWait:
                if conn.receive(seg, now):
                    self.wheel.schedule(conn.timer, conn.deadline)
                    return
                self._drop(key, conn)
                if not seg.flags & SYN:
                    return
                # a new SYN reuses the 4-tuple: fall through to the listener
            else:
                connection = conn  # compiled: a typed reference, so a C call
                self._last_conn, self._last_addr, self._last_ports = connection, addr, ports
                connection.receive(seg, now)
                return
        if not seg.flags & SYN and ports in self._by_ports:
            if self._new_path(seg, addr, ports, now):
                return
            # these ports are in use: whatever else it is, never a RST
            listener = self.listeners.get(seg.dst_port)
            if listener is not None:
                self._listen_receive(listener, seg, addr, now, quiet=True)
            else:
                self.stats["new_path_dropped"] += 1
            return
        listener = self.listeners.get(seg.dst_port)
        if listener is not None:
            self._listen_receive(listener, seg, addr, now)
        else:
            self.stats["no_connection"] += 1
            self._reset(seg, addr)

    def icmp_too_big(self, addr, quote: bytes, segment: int, now: float) -> bool:
        """An ICMP "fragmentation needed" / "packet too big" about a
        datagram we sent to ``addr``, ``quote`` being what it quoted of it
        (the segment from its header on), ``segment`` the largest UDP
        payload it says passes.  The connection the quote's ports name
        judges it (Connection.icmp_too_big); one that names none of ours
        is ignored and counted (icmp_ptb_not_ours).  True if a connection's size fell."""
        conn = self._quoted(addr, quote)
        if conn is not None:
            return conn.icmp_too_big(quote, segment, now)
        self.stats["icmp_ptb_not_ours"] += 1
        return False

    def icmp_port_unreachable(self, addr, quote: bytes, now: float) -> bool:
        """An ICMP port unreachable about a datagram we sent to ``addr``
        (``quote``: the segment, from its header on): the connection the
        quote's ports name judges it (Connection.port_unreachable).  True
        if it ended a connection."""
        conn = self._quoted(addr, quote)
        return conn is not None and conn.port_unreachable(quote, now)

    def _quoted(self, addr, quote: bytes):
        """The connection (not a TIME_WAIT record) an ICMP error's quoted
        segment names by its ports, to ``addr``; None if none."""
        if len(quote) < 4:
            return None
        local, remote = (quote[0] << 8) | quote[1], (quote[2] << 8) | quote[3]
        conn = self.connections.get((addr, local, remote))
        if conn is None:  # the address as the error queue spells it, not as recvfrom did
            for key in self._keys_of(local << 16 | remote):
                if key[0][:2] == addr[:2]:
                    conn = self.connections[key]
                    break
        return conn if conn is not None and type(conn) is not TimeWait else None

    def _new_path(self, seg, addr, ports: int, now: float) -> bool:
        """A segment from an address none of our connections has, with the
        ports of one of them: perhaps a NAT rebinding.  It is never
        answered with a RST (that would reset the connection the peer still
        has).  When these ports name exactly one synchronized connection,
        that connection judges it (Connection.receive_from_new_path) and
        may move here: True.  False: not for a connection (ambiguous, or
        only a half-open one or a TIME_WAIT record has these ports); a
        listener may still take it (a SYN-cookie ACK), quietly."""
        key = self._by_ports[ports]
        if type(key) is dict:
            self.stats["new_path_ambiguous"] += 1
            return False
        conn = self.connections[key]
        if type(conn) is TimeWait or not conn.synchronized:
            return False
        if conn.receive_from_new_path(seg, addr, now):
            self._remove(key, conn)
            self._put((addr, seg.dst_port, seg.src_port), conn)
            conn.migrate(addr, now)
            conn.receive(seg, now)
        return True

    def handle_timer(self, now: float) -> None:
        for timer in self.wheel.expire(now):
            conn = timer.owner
            if type(conn) is TimeWait:
                if not conn.handle_timer(now):
                    self._drop((conn.remote_addr, conn.local_port, conn.remote_port), conn)
                    if self.tracer is not None:
                        self.tracer.state(conn, TIME_WAIT, CLOSED, now)
                else:
                    self.wheel.schedule(timer, conn.deadline)
            else:
                conn.handle_timer(now)

    # ----------------------------------------------------- LISTEN state

    def _listen_receive(self, listener: Listener, seg, addr, now: float, quiet: bool = False) -> None:
        """RFC 9293 section 3.10.7.2, with SYN cookies (RFC 4987).  ``quiet``:
        an ACK that is not a valid cookie is dropped, not reset (its ports
        belong to a connection, see _new_path)."""
        flags = seg.flags
        stats = self.stats
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self.config.syn_cookies:
                mss = self.sequences.check_cookie(addr, seg.dst_port, seg.src_port,
                                                  seq_add(seg.seq, -1), seq_add(seg.ack, -1), now)
                if mss is not None:
                    if not listener.has_room():
                        stats["listen_overflows"] += 1
                        return
                    stats["syn_cookies_accepted"] += 1
                    conn = self._new_connection(addr, seg.dst_port, seg.src_port, now,
                                                iss=seq_add(seg.ack, -1))
                    self._count_half_open(conn, listener)
                    conn.accept_cookie(seg, mss, now, _cookie_options(seg.ts_ecr) if seg.has_ts else None)
                    return
                stats["syn_cookies_rejected"] += 1
            if quiet:
                stats["new_path_dropped"] += 1
                return
            self._reset(seg, addr)
            return
        if not flags & SYN:
            return
        if not listener.has_room():
            stats["listen_overflows"] += 1
            return  # Linux drops a SYN while the accept queue is full
        if listener.half_open >= min(self.config.syn_backlog, max(listener.backlog, 1) * 2):
            if not self.config.syn_cookies:
                stats["syn_dropped"] += 1
                return
            cookie, mss = self.sequences.make_cookie(addr, seg.dst_port, seg.src_port, seg.seq,
                                                     seg.mss if seg.mss > 0 else 536, now)
            stats["syn_cookies_sent"] += 1
            window = min(self.config.receive_buffer, 0xFFFF)
            wscale, sack_permitted, ts = -1, False, None
            config = self.config
            if seg.has_ts and config.timestamps:
                # Linux's trick: the options the SYN offered ride in the low
                # six bits of our timestamp, which the final ACK echoes
                bits = (seg.wscale if seg.wscale >= 0 and config.window_scaling else 15) & 0xF
                if seg.sack_permitted and config.sack:
                    bits |= 0x10
                clock = (int(now * 1000) + ts_offset(cookie)) & 0xFFFFFFFF
                ts_val = (clock & ~0x3F) | bits
                if seq_gt(ts_val, clock):
                    ts_val = (ts_val - 64) & 0xFFFFFFFF  # never ahead of the connection's clock
                ts = (ts_val, seg.ts_val)
                wscale = config.receive_wscale if bits & 0xF != 15 else -1
                sack_permitted = bool(bits & 0x10)
            self._output(_fast.encode(seg.dst_port, seg.src_port, cookie, seq_add(seg.seq, 1),
                                      SYN | ACK, window, b"", mss, wscale, sack_permitted, None, ts), addr)
            return
        iss = self.sequences.isn(addr, seg.dst_port, seg.src_port, now)
        conn = self._new_connection(addr, seg.dst_port, seg.src_port, now, iss=iss)
        self._count_half_open(conn, listener)
        stats["syn_received"] += 1
        conn.accept_syn(seg, now)

    def _reset(self, seg, addr) -> None:
        """The RST of RFC 9293 section 3.10.7.1 for a segment to nothing."""
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            datagram = _fast.encode(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            datagram = _fast.encode(seg.dst_port, seg.src_port, 0, seq_add(seg.seq, seg_len), RST | ACK, 0)
        self.stats["rst_sent"] += 1
        self._output(datagram, addr)

    def _output(self, datagram: bytes, addr) -> None:
        """A segment the endpoint itself answers with (no connection)."""
        self.outbox.append((datagram, addr))
        if self.tracer is not None:
            self.tracer.segment(self, "out", datagram, addr)

    # ------------------------------------------------- connection hooks

    def _new_connection(self, addr, local_port, remote_port, now, iss=None) -> Connection:
        if iss is None:
            iss = self.sequences.isn(addr, local_port, remote_port, now)
        conn = Connection(self.config, local_port=local_port, remote_port=remote_port,
                          remote_addr=addr, iss=iss, now=now, out=self.outbox, events=self.events,
                          stats=self.stats, ipv6=self.ipv6, endpoint=self, tracer=self.tracer)
        conn.timer = Timer(conn)
        self._put((addr, local_port, remote_port), conn)
        return conn

    # ``connections`` changes only through these two, which also forget the
    # last datagram's connection (the cache receive_segment keeps)

    def _put(self, key, record) -> None:
        self._last_conn = None
        self._last_addr = None
        self._last_ports = -1
        self.connections[key] = record
        ports = key[1] << 16 | key[2]
        held = self._by_ports.get(ports)
        if held is None or held == key:
            self._by_ports[ports] = key  # one connection: its key
        elif type(held) is dict:
            held[key] = None
        else:  # several: a dict of their keys
            self._by_ports[ports] = {held: None, key: None}

    def _keys_of(self, ports: int):
        """The keys of the connections with these ports (local << 16 | remote)."""
        held = self._by_ports.get(ports)
        if held is None:
            return ()
        return held if type(held) is dict else (held,)

    def _remove(self, key, record) -> None:
        """Remove ``key`` if it still holds ``record``."""
        self._last_conn = None
        self._last_addr = None
        self._last_ports = -1
        if self.connections.get(key) is record:
            del self.connections[key]
            ports = key[1] << 16 | key[2]
            held = self._by_ports[ports]
            if type(held) is not dict:
                del self._by_ports[ports]
            else:
                del held[key]
                if len(held) == 1:
                    self._by_ports[ports] = next(iter(held))

    @staticmethod
    def _count_half_open(conn: Connection, listener: Listener) -> None:
        conn.listener = listener
        conn.half_open = True
        listener.half_open += 1

    @staticmethod
    def _uncount_half_open(conn: Connection) -> None:
        if conn.half_open:
            conn.half_open = False
            conn.listener.half_open -= 1

    def on_established(self, conn: Connection) -> None:
        listener = conn.listener
        if listener is not None:
            self._uncount_half_open(conn)
            if listener.closed:
                return
            listener.accept_queue.append(conn)
            self.events.append((listener, Incoming()))

    def on_time_wait(self, conn: Connection) -> None:
        key = (conn.remote_addr, conn.local_port, conn.remote_port)
        record = conn.time_wait
        if not self.keep_time_wait or self.time_wait_count >= self.config.max_time_wait:
            # like Linux past tcp_max_tw_buckets: skip TIME_WAIT altogether
            self.stats["time_wait_overflow" if self.keep_time_wait else "time_wait_skipped"] += 1
            self._forget(key, conn)
            return
        self.wheel.cancel(conn.timer)
        record.timer = Timer(record)
        self._put(key, record)
        self.time_wait_count += 1
        self.wheel.schedule(record.timer, record.deadline)
        conn.timer = None  # the connection object is no longer driven

    def on_closed(self, conn: Connection) -> None:
        # a connection closed while in the accept queue stays there: the user
        # accepts it and sees it closed, as with kernel TCP
        key = (conn.remote_addr, conn.local_port, conn.remote_port)
        self._forget(key, conn)

    # A record's timer names the record (Timer.owner): a timer left on a
    # record the endpoint forgets would make a reference cycle, which only
    # the garbage collector frees.  Without one a closed connection is
    # freed as its last reference goes, and the collector has nothing to do.

    def _forget(self, key, conn) -> None:
        self._remove(key, conn)
        if conn.timer is not None:
            self.wheel.cancel(conn.timer)
            conn.timer = None
        self._uncount_half_open(conn)

    def _drop(self, key, record) -> None:
        self._remove(key, record)
        if type(record) is TimeWait:
            self.time_wait_count -= 1
        if record.timer is not None:
            self.wheel.cancel(record.timer)
            record.timer = None

    def challenge_ack_allowed(self, now: float) -> bool:
        second = int(now)
        if second != self._challenge_second:
            self._challenge_second = second
            self._challenge_count = 0
        self._challenge_count += 1
        return self._challenge_count <= self.config.challenge_ack_limit


def _cookie_options(ts_ecr: int) -> tuple[int, bool]:
    """(window scale or -1, SACK permitted) from the six low bits of the
    timestamp a SYN-cookie SYN-ACK sent and the final ACK echoes."""
    wscale = ts_ecr & 0xF
    return (-1 if wscale == 15 else wscale), bool(ts_ecr & 0x10)
