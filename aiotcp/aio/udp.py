"""The UDP socket on the event loop: the per-datagram part of the asyncio
layer, compiled with the core (udp.pxd makes its classes extension types).

A :class:`UDPEndpoint` owns one UDP socket and one core
:class:`~aiotcp.core.endpoint.Endpoint`.  On each readiness callback it reads the
socket until it is empty (aiotcp._dgram: recvmmsg, with UDP GRO) and feeds every
datagram to the core as one batch; after every call into the core it
dispatches the core's events to transports, servers and pending connects,
sends what the core queued (with UDP GSO), and keeps one loop timer at or
before the timer wheel's next deadline.  A receive batch stays open, and the
ACKs it owes unsent, until the protocols have seen its data and the loop has
run what that woke (``call_soon``): a reply written in that time carries them.

A :class:`TransportPath` is the per-segment half of each
:class:`~aiotcp.aio.TCPTransport`: ``write()`` and the delivery of received
data to the protocol, with the state they read, as C calls and fields.
"""
from __future__ import annotations

import asyncio
import asyncio.selector_events
import collections
import contextvars
import errno
import select
import socket
import struct

from .._dgram import MAX_RUN_BYTES, MAX_RUN_DATAGRAMS, DatagramSocket, socket_family
from .._fast import Timer, TimerWheel, empty_list, monotonic
from ..core.config import Config
from ..core.connection import ConnectionStateError, State
from ..core.endpoint import Endpoint
from ..core.events import Closed, Connected, DataReadable, Incoming, Retransmission, StateChanged
from .log import debug_enabled, get_logger

logger = get_logger()

#: a connection in these states has nothing left to tell its peer
_QUIET_STATES = (State.FIN_WAIT_2, State.TIME_WAIT, State.CLOSED)

#: reads (datagrams, or GRO runs of up to 64 KiB) a readable socket gets in
#: one turn of the loop before the protocols and tasks run, as the kernel's
#: NAPI budget bounds a poll: the reading and the application's consuming
#: keep in step.  Read until empty, a bulk receiver pulled megabytes in
#: before its reader saw any: the bytes went through memory instead of the
#: cache (13 to 25 % more CPU per byte), and with eight connections the UDP
#: socket's queue overflowed while the reader caught up (RcvbufErrors, then
#: recovery).  Two GRO runs are up to 128 KiB; without GRO, 64 datagrams
#: are about 90 KiB.
_RECV_BATCH_GRO = 2
_RECV_BATCH = 64
#: ICMP reports taken from the error queue at once, at most
_ERRORS_BATCH = 512
_NEVER = float("inf")

#: every UDPEndpoint whose socket is open, by loop
_open: dict = {}
#: the loop timer the endpoints of a loop share, by (loop, tick): dropped
#: with the loop's last endpoint
_hubs: dict = {}


class _TimerHub:
    """One loop timer for every endpoint of a loop.  Each endpoint's next
    deadline is its entry in the hub's wheel, and the loop holds a timer
    for the earliest only.  A deadline behind the one armed moves an entry
    in C; only an earlier one makes a loop timer (a uvloop TimerHandle and
    its libuv timer, made and later cancelled: several thousand
    instructions).  A client's endpoint sets three deadlines in its short
    life (its SYN's, its request's, its FIN's), and each one of a new
    connection lies behind the last connection's."""

    def __init__(self, loop, tick: float):
        self.loop = loop
        self.wheel = TimerWheel(tick, monotonic())
        self.handle = None
        self.when = _NEVER
        self.firing = False
        # one context for every firing (call_at would copy the caller's each time)
        self.context = contextvars.copy_context()

    def schedule(self, entry: Timer, when: float) -> None:
        self.wheel.schedule(entry, when)
        if when < self.when and not self.firing:  # (a firing arms once, at its end)
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.when = when
        self.handle = self.loop.call_at(when, self._fire, context=self.context)

    def cancel(self, entry: Timer) -> None:
        self.wheel.cancel(entry)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.when = _NEVER

    def _fire(self) -> None:
        self.handle = None
        self.when = _NEVER
        self.firing = True
        try:
            for entry in self.wheel.expire(monotonic()):
                endpoint = entry.owner
                if endpoint is not None:
                    try:
                        endpoint._on_timer()
                    except Exception:  # never raise into the event loop
                        logger.exception("aiotcp.endpoint.error")
        finally:
            self.firing = False
        when = self.wheel.next_deadline_at()
        if when < self.when:
            self._arm(when)


def _hub_for(loop, tick: float) -> _TimerHub:
    key = (loop, tick)
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = _TimerHub(loop, tick)
    return hub


def open_endpoints(loop) -> list:
    """The open endpoints of ``loop`` (None: of every loop)."""
    if loop is None:
        return [endpoint for endpoints in _open.values() for endpoint in endpoints]
    return list(_open.get(loop, ()))


class UDPEndpoint:
    """A UDP socket carrying any number of aiotcp connections and listeners."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, config: Config,
                 *, peer=None, tracer=None, watch=True):
        self.loop = loop
        self.sock = sock
        #: the socket's address, read once (its transports report it)
        self.sockname = sock.getsockname()
        self.config = config
        self.peer = peer  # set for a connected (client) socket
        self.core = Endpoint(config, now=monotonic(), ipv6=socket_family(sock) == socket.AF_INET6, tracer=tracer)
        # bound once per socket, on first use (binding takes longer than
        # making the core endpoint): the lazy proxy would bind anew per event
        self._log = None
        self.transports: dict = {}
        self.paths: dict = {}  # the transports' TransportPath, by connection
        self.servers: dict = {}
        self.pending_connects: dict = {}
        self._fd = sock.fileno()
        self.io = DatagramSocket(sock, gso=config.udp_gso, gro=config.udp_gro)
        self._recv_batch = _RECV_BATCH_GRO if self.io.gro else _RECV_BATCH
        if self.io.gso:  # bulk data leaves in whole runs (Connection._whole_runs)
            self.core.run_bytes, self.core.run_datagrams = MAX_RUN_BYTES, MAX_RUN_DATAGRAMS
        self._wheel_changes = -1  # the wheel's change count when flush last looked
        self._blocked: collections.deque = collections.deque()
        self.closed = False
        self._dispatching = False
        self._batch_open = False  # the receive batch's ACKs wait for _end_batch
        self._batch_held = False  # _end_batch waits one more turn (TransportPath.catch_up)
        self._woken = 0  # the transports the receive batch delivered data to
        #: the paths written to while the batch was open, sent at its end
        self._corked: list = []
        self._end_batch_soon = self._end_batch  # bound once (call_soon takes it per batch)
        # ... and run in one context, the one _on_readable runs in (add_reader
        # copies it now): call_soon would otherwise copy the context per batch
        self._batch_context = contextvars.copy_context()
        self.close_when_idle = False
        #: called with no argument once the socket has closed
        self.close_callbacks: list = []
        if sock.gettimeout() != 0.0:  # one system call, when it is not non-blocking yet
            sock.setblocking(False)
        self._recverr = config.pmtu_discovery and _dont_fragment(sock)
        self._watch_read = None
        self._watch_write = None  # made when the socket first blocks a send
        #: the loop timer, shared with the loop's other endpoints (got with
        #: the registration below, and given back when the loop's last
        #: endpoint closes), and this endpoint's entry in it
        self._hub = _hub_for(loop, config.timer_tick)
        self._hub_entry = Timer(self)
        _open.setdefault(loop, set()).add(self)
        if watch:
            self.watch()

    def watch(self) -> None:
        """Start reading the socket, and give it a window's room (once; an
        endpoint made with ``watch=False`` waits for this call).  A client
        socket's SYN leaves first (transport.handshake): what the kernel
        receives in between waits in the socket for the first read."""
        if self._watch_read is not None or self.closed:
            return
        _grow_buffers(self.sock, self.config)
        self._watch_read = _Watch(self.loop, self._fd, False)
        self._watch_read.add(self._on_readable)

    def _logger(self):
        if self._log is None:
            self._log = logger.bind()
        return self._log

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    # ------------------------------------------------------------ input

    def _on_readable(self) -> None:
        core = self.core
        if self._batch_open:
            self._batch_held = False
            self._end_batch()  # the loop runs it first; this keeps the order if not
        now = monotonic()
        core.begin_batch()
        self._woken = 0
        try:
            # until the socket is empty, in C (aiotcp._dgram)
            # the core is a DatagramSink: it takes each datagram from C
            if not self.io.receive(core, now, self.peer, self._recv_batch) and self._recverr:
                self._read_errors(now)  # woken for nothing to read: the error queue
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if self._recverr:
                self._read_errors(now)  # the ICMP behind the error, checked
            if exc.errno != errno.EMSGSIZE or not self.config.pmtu_discovery:
                self._socket_error(exc, now)
            elif not self._recverr:
                self._too_big([])  # the ICMP itself, reported on a connected socket
            if not self.closed:
                self._watch_read.rearm(self._on_readable)
        except Exception:  # never raise into the event loop
            logger.exception("aiotcp.endpoint.error")
        # The protocols see the data before the batch's ACKs go: reading it
        # opens the window, so one ACK carries both (not an ACK and then a
        # window update).  Then the ACKs wait for this turn of the loop to
        # run what the data woke (call_soon runs after the callbacks it
        # scheduled): a reply written at once carries them and no bare ACK
        # goes out.  Kernel TCP's ACK from recvmsg costs the peer nothing;
        # here each one is a datagram that wakes the peer's loop.
        #
        # What the protocols and the tasks the batch woke write in that turn
        # waits for the batch's end too (TransportPath.write), as Linux's
        # autocorking holds small writes while earlier ones are queued: the
        # rest of a reply and the close after it leave as one segment with
        # the ACK, not as a segment each that wakes the peer each time.  A
        # write with nothing of its connection unacknowledged goes at once
        # unless the batch woke other connections too (TransportPath.write).
        woke = len(core.events) > 0
        self.flush()
        if woke or core.acks_deferred():
            self._batch_open = True
            self.loop.call_soon(self._end_batch_soon, context=self._batch_context)
            return
        try:
            core.end_batch(now)  # nothing owed: the batch just closes
        except Exception:
            logger.exception("aiotcp.endpoint.error")

    def _end_batch(self) -> None:
        """Send the ACKs the last receive batch still owes (what a reply
        carried is no longer owed)."""
        if not self._batch_open:
            return
        if self._batch_held:  # a transport's first data is only now delivered
            self._batch_held = False
            self.loop.call_soon(self._end_batch_soon, context=self._batch_context)
            return
        self._batch_open = False
        now = monotonic()
        if self._corked:
            corked, self._corked = self._corked, []
            for path in corked:
                path.corked = False
                try:
                    path.conn.push(now)  # first: the data carries the ACK owed
                except Exception:
                    logger.exception("aiotcp.endpoint.error")
        try:
            self.core.end_batch(now)
        except Exception:
            logger.exception("aiotcp.endpoint.error")
        if not self.closed:
            self.flush()

    def _socket_error(self, exc: OSError, now: float) -> None:
        """An ICMP error surfaced on the UDP socket (RFC 1122 section 4.2.3.9):
        on a connected socket it concerns every connection to that peer."""
        core = self.core
        core.stats["icmp_errors"] += 1
        if debug_enabled():
            logger.debug("aiotcp.endpoint.icmp", error=str(exc), peer=self.peer)
        if self.peer is None:
            return
        if isinstance(exc, ConnectionRefusedError):
            error = ConnectionRefusedError(exc.errno, "Connection refused")
        else:
            error = exc
        for conn in list(core.connections.values()):
            if hasattr(conn, "report_error"):
                conn.report_error(error, now)

    def _on_timer(self) -> None:
        """The entry's time came (_TimerHub; it is unscheduled now, and a
        closed endpoint's entry has no owner to call): the core's expired
        timers."""
        self._wheel_changes = -1  # whatever happens below, look at the wheel again
        try:
            self.core.handle_timer(monotonic())
        except Exception:
            logger.exception("aiotcp.endpoint.error")
        self.flush()

    # ------------------------------------------------------------ output

    def flush(self) -> None:
        """Call after any call into the core (the one way to flush it): the
        events it queued go to the transports, its datagrams to the socket,
        and the loop timer moves to its next deadline.

        A protocol callback run from the event dispatch may call into the
        core again (write, close); that nested call returns at once and the
        pass already running picks up what it left, so dispatch never
        nests."""
        if self._dispatching:
            return
        core = self.core
        events = core.events
        if events:
            self._dispatching = True
            try:
                # in place: what dispatching an event adds is dispatched next
                i = 0
                while i < len(events):
                    source, event = events[i]
                    i += 1
                    try:
                        self._dispatch(source, event)
                    except Exception:
                        logger.exception("aiotcp.endpoint.dispatch_error", detail=repr(event))
            finally:
                empty_list(events)
                self._dispatching = False
        if core.outbox:
            self._send_outbox()
        wheel = core.wheel
        if wheel.changes != self._wheel_changes:  # else the next deadline is where it was
            self._wheel_changes = wheel.changes
            when = wheel.next_deadline_at()
            entry = self._hub_entry  # where it is, if scheduled (it leaves the wheel when it fires)
            if when < (entry.deadline if entry.scheduled else _NEVER):
                self._arm(when)
        if self.close_when_idle and not core.connections and not core.listeners:
            self.close()

    def _send_outbox(self) -> None:
        out = self.core.outbox
        if not out:
            return
        if self._blocked:  # behind datagrams already waiting: keep the order
            self._blocked.extend(out)
            out.clear()
            return
        sent = self._send(out)
        empty_list(out)
        if not sent:
            self.loop.call_soon(self.flush)  # dispatch what the error did
        elif self._blocked:
            if self._watch_write is None:
                self._watch_write = _Watch(self.loop, self._fd, True)
            self._watch_write.add(self._on_writable)

    def _on_writable(self) -> None:
        pending = list(self._blocked)
        self._blocked.clear()
        self._send(pending)
        if self._blocked:
            return
        self._watch_write.remove()
        self.flush()

    def _send(self, datagrams: list) -> bool:
        """Send ``datagrams`` in order.  What the socket refuses while its
        send buffer is full (a queue below us holds it) waits in _blocked
        until the loop says it is writable.  False when a socket error ended
        the sending: an ICMP error also surfaces on send for a connected
        socket, and the datagrams that could not go are lost, as TCP sees
        any loss.

        With the error queue on, a send also fails with the error of an ICMP
        that arrived before it (the kernel hands a socket's pending error to
        its next call): the queue tells which.  Only EMSGSIZE with the local
        kernel's report of it is this send's own; any other goes on, from
        the datagram it stopped at, once (a connected socket's refusal
        still reaches its connections)."""
        start, retried = 0, False
        while True:
            try:
                sent = self.io.send(datagrams, start, self.peer is not None)
                break
            except OSError as exc:
                local = self._read_errors(monotonic()) if self._recverr else None
                if exc.errno == errno.EMSGSIZE and self.config.pmtu_discovery and (local or not self._recverr):
                    self._too_big(datagrams, local)
                    return False
                if local is None or retried or (self.peer is not None and exc.errno != errno.EMSGSIZE):
                    if exc.errno != errno.EMSGSIZE:
                        self._socket_error(exc, monotonic())
                    return False
                self.core.stats["send_pending_error"] += 1
                start, retried = self.io.failed_at, True
        if not self.io.gso and self.core.run_bytes:
            self.core.run_bytes = self.core.run_datagrams = 0  # the kernel refused GSO: a datagram a call
        if sent < len(datagrams):
            self.core.stats["send_blocked"] += 1
            self._blocked.extend(datagrams[sent:])
        return True

    def _too_big(self, datagrams: list, local: dict | None = None) -> None:
        """EMSGSIZE on a send: the datagram is larger than the local link
        allows (with IP_RECVERR the error queue says how large may go), or
        than the path MTU the kernel learned (without it, or where
        IP_PMTUDISC_PROBE is unknown), or a connected socket's receive
        reported the ICMP.  The connections that sent to that path shrink
        their segments and send again; nothing reaches the application,
        and what was refused is a loss TCP repairs."""
        now = monotonic()
        self.core.stats["emsgsize"] += 1
        if local is None:
            local = self._read_errors(now) if self._recverr else {}
        size = _path_segment(self.sock) if self.peer is not None else 0
        # a run, (datagrams, addr, size), counts as its datagrams' size
        largest = max((item[2] if len(item) == 3 else len(item[0]) for item in datagrams), default=65536)
        if not 0 < size < largest:
            size = 0  # unknown: the connections fall to the base size
        to = {item[1] for item in datagrams}
        for conn in list(self.core.connections.values()):
            if hasattr(conn, "path_too_big") and (self.peer is not None or conn.remote_addr in to):
                conn.path_too_big(local.get(conn.remote_addr, size), now)
        if debug_enabled():
            logger.debug("aiotcp.endpoint.pmtu", segment=size or "base", local=local, peer=self.peer)

    def _read_errors(self, now: float) -> dict:
        """Empty the socket's error queue (IP_RECVERR / IPV6_RECVERR): ICMP
        "fragmentation needed" / "packet too big" goes to the core, which
        believes it only if the datagram it quotes is plausibly one of ours
        (Endpoint.icmp_too_big); "port unreachable" goes to the connection
        the quote names (Endpoint.icmp_port_unreachable); other ICMP errors
        are counted (a connected socket also reports them on its receive).
        Returns the local kernel's own EMSGSIZE reports, segment size by
        destination."""
        local: dict = {}
        core = self.core
        try:
            for quote, addr, error, origin, icmp_type, code, info in error_queue(self.sock, _QUOTE, _ERRORS_BATCH):
                if origin == ORIGIN_LOCAL and error == errno.EMSGSIZE:
                    local[addr] = info - (48 if _v6(addr) else 28)
                    continue
                try:  # a judgement's error is logged, never raised into the loop
                    if ((origin == ORIGIN_ICMP and icmp_type == 3 and code == 4)
                            or (origin == ORIGIN_ICMP6 and icmp_type == 2)):
                        core.stats["icmp_too_big"] += 1
                        core.icmp_too_big(addr, quote, info - (48 if origin == ORIGIN_ICMP6 else 28), now)
                    elif ((origin == ORIGIN_ICMP and icmp_type == 3 and code == 3)
                          or (origin == ORIGIN_ICMP6 and icmp_type == 1 and code == 4)):
                        core.stats["icmp_port_unreachable"] += 1
                        core.icmp_port_unreachable(addr, quote, now)
                    else:
                        core.stats["icmp_errors_queued"] += 1
                except Exception:
                    logger.exception("aiotcp.endpoint.error")
        except OSError:  # nothing more to tell
            pass
        return local

    def _arm(self, when: float) -> None:
        """Move this endpoint's entry in the loop's timer (_TimerHub)
        earlier, to the wheel's next deadline ``when`` (flush calls this
        only for an earlier one).

        A deadline that moved later (the retransmission timer restarts on
        every ACK) leaves the entry alone: it fires early, finds nothing
        due, and re-arms.  That is one spare wakeup per timeout interval
        instead of a move per segment."""
        if self.closed:
            return
        self._hub.schedule(self._hub_entry, when)

    # ------------------------------------------------------------ events

    def _dispatch(self, source, event) -> None:
        cls = type(event)
        if cls is DataReadable:  # the common case first
            path = self.paths.get(source)
            if path is not None:
                self._woken += 1
                path.deliver()
                return
        if cls is Incoming:
            server = self.servers.get(source)
            while True:
                conn = source.accept()
                if conn is None:
                    break
                if server is None:
                    conn.abort(monotonic())
                else:
                    server.accept_connection(self, conn)
            return
        if cls is StateChanged:
            if debug_enabled():
                self._logger().debug("aiotcp.conn.state", old=event.old._value_, new=event.new._value_, **_identity(source))
            return
        if cls is Retransmission:
            if debug_enabled():
                self._logger().debug("aiotcp.conn.retransmit", kind=event.kind, seq=event.seq, rto=event.rto,
                                **_identity(source))
            return
        transport = self.transports.get(source)
        if transport is not None:
            transport.handle_event(event)
            return
        waiter = self.pending_connects.get(source)
        if waiter is not None:
            if cls is Connected:
                if not waiter.done():
                    waiter.set_result(None)
            elif cls is Closed:
                self.pending_connects.pop(source, None)
                if not waiter.done():
                    waiter.set_exception(event.error or ConnectionResetError("connection closed"))

    def shutdown(self, dispatch: bool) -> None:
        """The loop is ending: every connection that still has something to
        deliver, or has not heard the peer's FIN, is reset (the RST goes
        out now; nothing would ever retransmit after this), and the socket
        closes.  ``dispatch``: the loop still runs, so the transports hear
        of it; at interpreter exit it does not."""
        if self.closed:
            return
        now = monotonic()
        core = self.core
        for conn in list(core.connections.values()):
            if conn.state not in _QUIET_STATES:  # a TimeWait record says TIME_WAIT
                core.stats["resets_at_shutdown"] += 1
                conn.abort(now)
        for listener in list(core.listeners.values()):
            listener.close(now)
        if dispatch:
            self.flush()
        else:
            empty_list(core.events)
        try:
            self.io.send(core.outbox, 0, self.peer is not None)
        except OSError:
            pass
        empty_list(core.outbox)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # the entry names this endpoint: cancelled and emptied, no cycle is left
        self._hub.cancel(self._hub_entry)
        self._hub_entry.owner = None
        endpoints = _open.get(self.loop)
        if endpoints is not None:
            endpoints.discard(self)
            if not endpoints:
                del _open[self.loop]
                for key in list(_hubs):  # the loop's last endpoint (a copy: other threads' loops add theirs)
                    if key[0] is self.loop:
                        _hubs.pop(key).close()
        # the bound method names this endpoint: kept, it would make a cycle
        # (freed only by the garbage collector); a batch still scheduled
        # holds its own reference
        self._end_batch_soon = _nothing
        if self._watch_read is not None:
            self._watch_read.close()
        if self._watch_write is not None:
            self._watch_write.close()
        self.sock.close()
        callbacks, self.close_callbacks = self.close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("aiotcp.endpoint.close_callback_error")


def _nothing() -> None:
    pass


class TransportPath:
    """What a TCPTransport (aio.py) does per segment, compiled: ``write()``
    and delivering received data to the protocol.  The transport keeps the
    rest (closing, limits, events) and reads and sets these fields."""

    def __init__(self, transport, endpoint: UDPEndpoint, conn, protocol):
        self.transport = transport
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.conn = conn
        self.set_protocol(protocol)
        self.closing = False
        self.eof_written = False
        self.lost = False
        self.finished = False  # both FINs are through; closing is the user's
        self.reading_paused = False
        self.eof_pending = False  # the peer's FIN is in, to give the protocol after the data
        self.eof_delivered = False  # eof_received() was called: never twice
        self.pause_above = 0  # pause_writing() once the connection holds more
        self.corked = False  # in the endpoint's corked list: data waits for the batch's end
        self.autocork = conn.config.autocork
        self.started = False  # nothing is delivered before catch_up()

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol
        self.buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def write(self, data) -> None:
        """asyncio.WriteTransport.write: queue ``data`` and send what the
        windows allow now."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self.eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self.lost or self.closing:
            return  # as asyncio: writes after the connection is gone are dropped
        conn = self.conn
        endpoint = self.endpoint
        # a write while a receive batch is open, outside the dispatch (whose
        # flush sends at once what its callbacks write), waits for the
        # batch's end with what else this turn of the loop writes when
        # earlier data is still unacknowledged or queued, as Linux corks
        # behind data on its way out -- a write with nothing ahead of it (a
        # request, the reply to one) goes at once when the batch woke no
        # other connection: the peer waits for it, and the rest of the turn
        # is off its path; a busy batch's replies wait and leave together
        in_batch = endpoint._batch_open and not endpoint._dispatching
        cork = in_batch and self.autocork and (conn.send_buffered or endpoint._woken > 1)
        try:
            conn.send(data, monotonic(), not cork)
        except ConnectionStateError:
            return
        if not cork:
            if in_batch:
                # the data now; the batch's end, this same turn, does the
                # rest of a flush (events, the loop timer) once
                endpoint._send_outbox()
            else:
                endpoint.flush()
        elif not self.corked:
            self.corked = True
            endpoint._corked.append(self)
        if conn.send_buffered > self.pause_above:
            self.transport.maybe_pause_protocol()

    def catch_up(self) -> None:
        """Deliver what arrived before the protocol existed (its events went
        to no transport): the data the connection holds, the peer's FIN,
        and the end, if it already came (a RST right after the handshake).

        A server calls it a turn of the loop after connection_made(), as
        asyncio's transports start reading: the task connection_made()
        started runs first (it may pause reading, and then data that came
        with the handshake's ACK stays unread, as it would in the kernel).
        What this wakes belongs to the receive batch that brought the data:
        the batch's end waits for it, so the reply carries the ACK."""
        self.started = True
        if self.lost:  # closed in connection_made(): nothing is delivered
            return
        conn = self.conn
        endpoint = self.endpoint
        if endpoint._batch_open and (conn.rcv_buffer.buffered or conn.fin_received):
            endpoint._batch_held = True
        if conn.fin_received:
            self.eof_pending = True
        if conn.state is State.CLOSED:
            self.transport.handle_event(Closed(conn.error))  # delivers the data first
        elif conn.rcv_buffer.buffered or self.eof_pending:
            self.deliver()

    def deliver(self) -> None:
        """Hand the protocol what the connection has read, then the peer's
        FIN once all of it is delivered."""
        if self.reading_paused or self.lost or not self.started:
            return
        conn = self.conn
        protocol = self.protocol
        try:
            while conn.rcv_buffer.buffered and not self.reading_paused and not self.lost:
                data = conn.read_chunk()  # a payload at a time, as it came: no join
                if self.buffered:
                    _feed_buffered(protocol, data)
                else:
                    protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.transport.fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return
        self.endpoint.flush()
        if self.eof_pending and not conn.rcv_buffer.buffered and not self.lost:
            self.eof_pending = False
            if self.eof_delivered:
                return
            self.eof_delivered = True
            try:
                keep_open = protocol.eof_received()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.transport.fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
                return
            if not keep_open and not self.closing:
                self.transport.close()


def _feed_buffered(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    view = memoryview(data)
    while view:
        buf = protocol.get_buffer(len(view))
        n = min(len(buf), len(view))
        if n == 0:
            raise RuntimeError("get_buffer() returned an empty buffer")
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


_HAS_EPOLL = hasattr(select, "epoll")


class _Watch:
    """One readiness callback for the UDP socket on the loop, for reading
    or for writing.  A selector loop (asyncio's own) watches the socket
    itself.  Another (uvloop: libuv) stops watching a socket for good the
    first time its poll reports an error, which an ICMP in the error queue
    does, and says so only to the loop's exception handler: there the
    socket is watched through an epoll instance of its own, whose
    descriptor is readable while the socket is ready and never reports
    the socket's errors (level-triggered; nothing is read from the epoll
    itself)."""

    def __init__(self, loop, fd: int, writing: bool):
        self.loop = loop
        self.fd = fd
        self.writing = writing
        self.epoll = None
        self.active = False
        selector = isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
        #: a loop that may give the socket up after an error, with no epoll to shield it
        self.fragile = not selector and not _HAS_EPOLL
        if not selector and _HAS_EPOLL:
            self.epoll = select.epoll()
            self.epoll.register(fd, select.EPOLLOUT if writing else select.EPOLLIN)
            self.fd = self.epoll.fileno()
            self.writing = False  # the epoll's descriptor is read

    def add(self, callback) -> None:
        if self.writing:
            self.loop.add_writer(self.fd, callback)
        else:
            self.loop.add_reader(self.fd, callback)
        self.active = True

    def remove(self) -> None:
        if not self.active:
            return
        self.active = False
        try:
            if self.writing:
                self.loop.remove_writer(self.fd)
            else:
                self.loop.remove_reader(self.fd)
        except (ValueError, RuntimeError):
            pass

    def rearm(self, callback) -> None:
        """After an error the socket survived: watched again where the
        loop may have given it up."""
        if self.fragile:
            self.remove()
            self.add(callback)

    def close(self) -> None:
        self.remove()
        if self.epoll is not None:
            self.epoll.close()
            self.epoll = None


def _identity(conn) -> dict:
    """The fields that name a connection in every aiotcp.conn.* event."""
    return {"local_port": conn.local_port, "remote": conn.remote_addr, "remote_port": conn.remote_port}


#: <linux/in.h>, <linux/in6.h>: Don't Fragment, the path MTU from the route
IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_PMTUDISC_PROBE, IP_MTU, IP_RECVERR = 10, 2, 3, 14, 11
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, IPV6_PMTUDISC_PROBE, IPV6_MTU, IPV6_RECVERR = 23, 2, 3, 24, 25
#: <linux/errqueue.h>: who reported an error-queue entry
ORIGIN_LOCAL, ORIGIN_ICMP, ORIGIN_ICMP6 = 1, 2, 3
_RECVERR = {(socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)}
#: how much of a quoted datagram is read (ICMPv4 quotes at most 548 bytes of
#: it, ICMPv6 up to 1232): the header is what the check needs
_QUOTE = 1280


def error_queue(sock: socket.socket, size: int, limit: int):
    """The entries of a socket's error queue (IP_RECVERR / IPV6_RECVERR),
    at most ``limit``, each as (what it quotes of the datagram, up to
    ``size`` bytes; the datagram's destination; and struct
    sock_extended_err's ee_errno, ee_origin, ee_type, ee_code, ee_info).
    Ends when the queue is empty; other socket errors are raised."""
    for _ in range(limit):
        try:
            quote, ancdata, _flags, addr = sock.recvmsg(size, 256, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return
        for level, kind, cdata in ancdata:
            if (level, kind) in _RECVERR and len(cdata) >= 16:
                error, origin, icmp_type, code, _pad, info, _data = struct.unpack_from("=IBBBBII", cdata)
                yield quote, addr, error, origin, icmp_type, code, info


def _v6(addr) -> bool:
    return isinstance(addr, tuple) and len(addr) == 4


def _dont_fragment(sock: socket.socket) -> bool:
    """Every datagram with DF set (Config.pmtu_discovery), and the ICMP
    errors it brings read by us: IP_PMTUDISC_PROBE sets DF but leaves the
    size to us (the kernel neither fragments nor caps datagrams at a path
    MTU it learned from an ICMP it cannot check), IP_RECVERR queues each
    ICMP with the datagram it quotes.  Where PROBE is unknown, DO (the
    kernel caps at its path MTU, EMSGSIZE says so).  True if the error
    queue is on (best effort where not Linux)."""
    v6 = socket_family(sock) == socket.AF_INET6
    level, option, recverr = ((socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_RECVERR) if v6
                              else (socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_RECVERR))
    try:
        sock.setsockopt(level, option, IPV6_PMTUDISC_PROBE if v6 else IP_PMTUDISC_PROBE)
    except OSError:
        try:
            sock.setsockopt(level, option, IPV6_PMTUDISC_DO if v6 else IP_PMTUDISC_DO)
        except OSError:
            return False
        return False
    try:
        sock.setsockopt(level, recverr, 1)
        if v6:  # IPv4 through a dual-stack socket reports through IP_RECVERR
            try:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            except OSError:
                pass
    except OSError:
        return False
    return True


def _path_segment(sock: socket.socket) -> int:
    """The largest UDP payload the kernel's path MTU allows a connected
    socket (0 when it cannot tell: then the base size is tried)."""
    try:
        if socket_family(sock) == socket.AF_INET6:
            return sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU) - 48
        return sock.getsockopt(socket.IPPROTO_IP, IP_MTU) - 28
    except OSError:
        return 0


_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33  # <asm-generic/socket.h>
_force_denied = False  # the process lacks CAP_NET_ADMIN: plain requests only


def _grow_buffers(sock: socket.socket, config: Config) -> None:
    """Give the UDP socket room for a window's worth of datagrams, so that a
    burst is not dropped by the kernel before we read it: the largest
    receive window autotuning may open, twice.  The kernel caps a plain
    request at net.core.rmem_max / wmem_max, which the connections of a
    server socket outgrow together (its queue overflows and whole GRO
    reads are dropped): with CAP_NET_ADMIN the forced options get the size
    anyway, as quic-go asks; else the capped request (best effort)."""
    global _force_denied
    for option, forced, size in ((socket.SO_RCVBUF, _SO_RCVBUFFORCE, 2 * config.receive_buffer_limit),
                                 (socket.SO_SNDBUF, _SO_SNDBUFFORCE, 2 * config.send_buffer)):
        if not _force_denied:
            try:
                sock.setsockopt(socket.SOL_SOCKET, forced, size)
                continue
            except PermissionError:
                _force_denied = True  # not asked again: a system call each socket
            except OSError:
                pass
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass


