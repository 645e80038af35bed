"""The asyncio layer: it only adapts the sans-I/O core to an event loop.

One :class:`~aiotcp.aio.udp.UDPEndpoint` per UDP socket (in ``udp.py``, compiled
with the core) moves datagrams, events and the timer between the socket, the
loop and the core endpoint.  A :class:`TCPTransport` per connection
implements the ``asyncio.Transport`` contract on top of a core connection;
the server and the streams API are built on those, as asyncio's are.
"""
from __future__ import annotations

import asyncio
import atexit
import builtins
import errno
import functools
import os
import socket
import ssl as ssl_module
from asyncio import sslproto, staggered
from collections.abc import Iterable

from ..core.config import DEFAULT, Config
from ..core.connection import ConnectionStateError, State
from ..core.events import Closed, Connected, DataReadable, FinAcked, PeerClosed, Writable
from .._fast import monotonic
from .log import debug_enabled, get_logger
from .tcpsocket import TCPSocket
from .udp import TransportPath, UDPEndpoint, _identity, open_endpoints

logger = get_logger()

class TCPTransport(asyncio.Transport):
    """One aiotcp connection as an ``asyncio.Transport``.

    What it does per segment, ``write()`` and the delivery of received data,
    is its :class:`~aiotcp.aio.udp.TransportPath` (``_path``), compiled; the
    state both halves read lives there.

    Closing is kernel TCP's: ``close()`` returns at once and the connection
    finishes on its own, but ``connection_lost()`` (and so the streams'
    ``wait_closed()``) waits until everything written and the FIN are
    acknowledged, the connection fails, or ``Config.linger`` runs out.
    After both FINs the transport stays open until the application closes
    it, as asyncio's does."""

    _start_tls_compatible = True
    # fields, not an instance dict: a server holds one transport per
    # connection.  ``write`` is one of them: each transport's is its path's
    # compiled TransportPath.write (queue the data, send what the windows
    # allow), so that StreamWriter.write() runs no Python frame of ours.
    __slots__ = ("_endpoint", "_loop", "_conn", "_server", "_path", "write", "_protocol_paused",
                 "_lost_scheduled", "_socket", "_sockname", "_high_water", "_low_water", "linger",
                 "__weakref__")

    def __init__(self, endpoint: UDPEndpoint, conn, protocol: asyncio.BaseProtocol, server=None):
        super().__init__()
        self._endpoint = endpoint
        self._loop = endpoint.loop
        self._conn = conn
        self._server = server
        self._path = path = TransportPath(self, endpoint, conn, protocol)
        self.write = path.write
        self._protocol_paused = False
        self._lost_scheduled = False
        self._socket = None
        self._sockname = endpoint.sockname  # the UDP socket may close first
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        #: SO_LINGER as set through get_extra_info("socket"): (l_onoff,
        #: l_linger); on with 0 s, close() and abort() reset the connection,
        #: as they do a kernel socket's
        self.linger = (0, 0)
        path.pause_above = conn.send_buffer + self._high_water
        endpoint.transports[conn] = self
        endpoint.paths[conn] = path
        if server is not None:
            server._attach(self)

    @property
    def _log(self):
        """A logger bound to this connection's identity (made when used: a
        transport that logs nothing pays nothing)."""
        return logger.bind(**_identity(self._conn))

    def __repr__(self):
        return f"<aiotcp.TCPTransport {self._conn.state} {self._conn.remote_addr}>"

    # -- BaseTransport
    @property
    def endpoint(self) -> UDPEndpoint:
        """The UDP endpoint this connection runs on (its ``core`` is the
        sans-I/O endpoint)."""
        return self._endpoint

    def get_extra_info(self, name, default=None):
        conn = self._conn
        if name == "peername":
            return conn.remote_addr
        if name == "sockname":
            return self._sockname
        if name == "socket":
            if self._socket is None:
                self._socket = TCPSocket(self)
            return self._socket
        if name == "udp_socket":
            return self._endpoint.sock
        if name == "tcp_info":
            return conn.info()
        if name == "tcp_state":
            return str(conn.state)
        if name == "tcp_ports":
            return (conn.local_port, conn.remote_port)
        if name == "connection":
            return conn
        return default

    def is_closing(self) -> bool:
        return self._path.closing

    def close(self) -> None:
        """Graceful close: buffered data, then FIN; the core finishes the
        teardown on its own, as the kernel does after close().
        ``connection_lost()`` follows once the FIN is acknowledged (see the
        class docstring).  Unread received data makes it a reset instead,
        as with kernel TCP, and so does SO_LINGER 0."""
        path = self._path
        if path.closing:
            return
        if self.linger == _LINGER_ZERO:
            self.reset()
            return
        path.closing = True
        conn = self._conn
        if not path.finished:
            conn.release(monotonic())
            self._endpoint.flush()
        if path.finished or conn.state in _FIN_ACKED_STATES:
            self._lost_soon(None)

    def set_protocol(self, protocol):
        self._path.set_protocol(protocol)

    def get_protocol(self):
        return self._path.protocol

    # -- ReadTransport
    def is_reading(self) -> bool:
        return not self._path.reading_paused and not self._path.closing

    def pause_reading(self) -> None:
        """Stop delivering data: it stays in the connection's receive buffer,
        whose advertised window then closes, slowing the sender end to end."""
        self._path.reading_paused = True

    def resume_reading(self) -> None:
        path = self._path
        if not path.reading_paused:
            return
        path.reading_paused = False
        self._loop.call_soon(path.deliver)

    # -- WriteTransport
    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._path.pause_above = self._conn.send_buffer + high
        self.maybe_pause_protocol()

    def get_write_buffer_limits(self):
        return (self._low_water, self._high_water)

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet acknowledged by the peer beyond the
        connection's send buffer (the part a kernel would keep in user space)."""
        return max(0, self._conn.send_buffered - self._conn.send_buffer)

    def writelines(self, list_of_data) -> None:
        self._path.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Half-close: send a FIN after buffered data; reading goes on."""
        path = self._path
        if path.eof_written or path.closing:
            return
        path.eof_written = True
        try:
            self._conn.close(monotonic())
        except ConnectionStateError:
            pass
        self._endpoint.flush()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """As asyncio's over kernel TCP, where abort() closes the socket at
        once: connection_lost(None) follows without waiting for anything,
        and the connection closes on its own, as a kernel's does after
        close(): what was written still goes, then a FIN; received data
        never read makes it a RST (Linux's rule).  With SO_LINGER 0 set on
        ``get_extra_info("socket")`` it is a RST at once, as in the kernel;
        :meth:`reset` is that without the option."""
        self._force_close(None)

    def reset(self) -> None:
        """Send a RST and drop everything, buffered data included (a kernel
        socket's close() with SO_LINGER 0); connection_lost(None) follows."""
        path = self._path
        if path.lost or self._lost_scheduled:
            return
        path.closing = True
        self._lost_soon(None)
        self._conn.abort(monotonic())
        self._endpoint.flush()

    def _force_close(self, exc) -> None:
        path = self._path
        if path.lost or self._lost_scheduled:
            return
        if self.linger == _LINGER_ZERO:
            self.reset()
            return
        closing, path.closing = path.closing, True
        self._lost_soon(exc)
        if not closing and not path.finished:  # else close() released it already
            self._conn.release(monotonic())
            self._endpoint.flush()

    def fatal_error(self, exc, message="Fatal error on transport") -> None:
        """As asyncio's transports do with an error they cannot go on from
        (a protocol callback that raised, among them): report it to the
        loop's exception handler, then abort with connection_lost(exc)."""
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                self._log.debug("aiotcp.transport.fatal_error", message=message, error=repr(exc))
        else:
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self, "protocol": self._path.protocol})
        self._force_close(exc)

    # -- flow control towards the protocol
    def maybe_pause_protocol(self) -> None:
        # the send buffer may have grown (autotuning) since the path's
        # threshold was set: the path checks against the size now
        self._path.pause_above = self._conn.send_buffer + self._high_water
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        self._conn.low_water = self._conn.send_buffer + self._low_water
        self._tell_protocol("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            self._tell_protocol("resume_writing")

    def _tell_protocol(self, method: str) -> None:
        """pause_writing/resume_writing: a failure goes to the loop's handler, as asyncio's."""
        try:
            getattr(self._path.protocol, method)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{method}() failed", "exception": exc,
                "transport": self, "protocol": self._path.protocol})

    # -- events from the core
    def handle_event(self, event) -> None:
        cls = event.__class__
        path = self._path
        if path.lost and cls is not Closed:
            return  # aborted: the connection finishes with no protocol to tell
        if cls is DataReadable:
            path.deliver()
        elif cls is Writable:
            self._maybe_resume_protocol()
        elif cls is PeerClosed:
            path.eof_pending = True
            path.deliver()
        elif cls is FinAcked:
            if path.closing:
                self._lost_soon(None)  # all of it got there
        elif cls is Closed:
            error = event.error
            if error is not None:
                self._log.info("aiotcp.conn.reset" if isinstance(error, ConnectionResetError)
                               else "aiotcp.conn.error", error=repr(error))
            self._endpoint.transports.pop(self._conn, None)
            self._endpoint.paths.pop(self._conn, None)
            if self._endpoint.peer is not None:
                self._endpoint.close_when_idle = True
            path.deliver()  # what arrived before the end
            if error is not None or path.closing:
                path.closing = True
                self._lost_soon(error)
            else:
                # both FINs are through: the transport stays open until the
                # application closes it, as asyncio's does
                path.finished = True
        elif cls is Connected:
            if debug_enabled():
                self._log.debug("aiotcp.conn.established")

    def _lost_soon(self, exc) -> None:
        if self._lost_scheduled or self._path.lost:
            return
        self._lost_scheduled = True
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc) -> None:
        path = self._path
        if path.lost:
            return
        path.lost = True
        try:
            path.protocol.connection_lost(exc)
        finally:
            path.protocol = None
            # the path no longer calls back (lost), and without this link
            # the transport and its path are freed as the last reference
            # goes, not by the garbage collector (a cycle)
            path.transport = None
            if self._server is not None:
                self._server._detach(self)
                self._server = None


#: SO_LINGER on with 0 s: a close is a reset
_LINGER_ZERO = (1, 0)

#: states in which everything we sent, the FIN included, is acknowledged
_FIN_ACKED_STATES = (State.FIN_WAIT_2, State.TIME_WAIT, State.CLOSED)


# --------------------------------------------------------------------- server

class Server(asyncio.AbstractServer):
    """An aiotcp listener, behaving like ``asyncio.Server`` (3.12 and later:
    ``wait_closed()`` returns once the server is closed and every
    connection it accepted is gone; ``close_clients()``, ``abort_clients()``)."""

    def __init__(self, loop, endpoints: list, port: int | None, backlog: int, protocol_factory,
                 ssl_context, ssl_handshake_timeout, ssl_shutdown_timeout=None, start_serving=True,
                 owns_endpoint=True):
        """``endpoints``: the UDP endpoints to listen on (several: asyncio's
        server on every address a host resolves to), each on TCP port
        ``port`` or, when None, on its own UDP port."""
        self._loop = loop
        self._endpoints = endpoints
        #: the server's own UDP sockets, which close with it (False: an
        #: aiotcp.Endpoint's, shared with other servers and connections)
        self._owns_endpoint = owns_endpoint
        self._port = port
        self._backlog = backlog
        self._listeners: list = []
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._closed = False
        self._transports: set = set()
        self._waiters: list[asyncio.Future] = []
        self._serving_forever_fut = None
        if start_serving:
            self._start_serving()

    def __repr__(self):
        return f"<aiotcp.Server sockets={self.sockets!r}>"

    def _start_serving(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        for endpoint in self._endpoints:
            listener = endpoint.core.listen(endpoint.local_port if self._port is None else self._port, self._backlog)
            endpoint.servers[listener] = self
            self._listeners.append(listener)

    def accept_connection(self, endpoint: UDPEndpoint, conn) -> None:
        if not self._serving:
            conn.abort(monotonic())
            return
        transport = None
        try:
            protocol = self._protocol_factory()
            if self._ssl_context is not None:
                waiter = self._loop.create_future()
                ssl_protocol = sslproto.SSLProtocol(self._loop, protocol, self._ssl_context, waiter,
                                                    server_side=True,
                                                    ssl_handshake_timeout=self._ssl_handshake_timeout,
                                                    ssl_shutdown_timeout=self._ssl_shutdown_timeout)
                transport = TCPTransport(endpoint, conn, ssl_protocol, server=self)
                ssl_protocol.connection_made(transport)
                waiter.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
            else:
                transport = TCPTransport(endpoint, conn, protocol, server=self)
                call_connection_made(self._loop, protocol, transport)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # as asyncio's _accept_connection2
            self._loop.call_exception_handler({
                "message": "Error on transport creation for incoming connection", "exception": exc})
            if transport is not None:
                transport.abort()
            else:
                conn.abort(monotonic())
            return
        self._loop.call_soon(transport._path.catch_up)  # after the task connection_made() started

    def _attach(self, transport) -> None:
        self._transports.add(transport)

    def _detach(self, transport) -> None:
        self._transports.discard(transport)
        self._wakeup_if_done()

    def _wakeup_if_done(self) -> None:
        if self._closed and not self._transports:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._owns_endpoint:
                for endpoint in self._endpoints:
                    endpoint.close_when_idle = True
                    endpoint.flush()

    @property
    def sockets(self):
        """The sockets listened on; none once closed, as asyncio's (a socket
        may stay open a while after, for the TIME_WAITs it holds)."""
        if self._closed:
            return ()
        return tuple(endpoint.sock for endpoint in self._endpoints if not endpoint.closed)

    @property
    def endpoint(self) -> UDPEndpoint:
        """The UDP endpoint the server listens on (the first, when a host
        resolved to several addresses: ``endpoints`` has them all)."""
        return self._endpoints[0]

    @property
    def endpoints(self) -> tuple:
        return tuple(self._endpoints)

    def get_loop(self):
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop listening (connections not yet accepted are reset); the
        accepted ones go on until they end or close_clients()."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        now = monotonic()
        for listener in self._listeners:
            listener.close(now)
        for endpoint in self._endpoints:
            endpoint.flush()
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        self._wakeup_if_done()

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection it accepted
        is gone (asyncio 3.12's meaning)."""
        if self._closed and not self._transports:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def close_clients(self) -> None:
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._transports):
            transport.abort()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


# ------------------------------------------------------------------ public API

def ssl_context_for(ssl, server_side: bool):
    if ssl is True:
        context = ssl_module.create_default_context(
            ssl_module.Purpose.CLIENT_AUTH if server_side else ssl_module.Purpose.SERVER_AUTH)
        return context
    if ssl is None or ssl is False:
        return None
    if not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(f"ssl argument must be an SSLContext or None, got {ssl!r}")
    return ssl


def check_ssl_arguments(context, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout):
    """asyncio's own checks and messages."""
    if server_hostname is not None and context is None:
        raise ValueError("server_hostname is only meaningful with ssl")
    if context is None and ssl_handshake_timeout is not None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if context is None and ssl_shutdown_timeout is not None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def _numeric(host, port, family, proto):
    """The getaddrinfo answer for a numeric address, without a lookup (as
    asyncio's _ipaddr_info): None when ``host`` is a name."""
    if not isinstance(host, str) or not isinstance(port, int) or "%" in host:
        return None
    for af in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(af, host)
            break
        except OSError:
            continue
    else:
        return None
    if family not in (0, af):
        return None
    if af == socket.AF_INET:
        sockaddr = (host, port)  # inet_pton takes IPv4 in its one form only ("127.0.0.01" is refused)
    else:  # IPv6 in the resolver's own form ("0::1" is "::1"), as getpeername() gives it
        sockaddr = (socket.inet_ntop(af, packed), port, 0, 0)
    return [(af, socket.SOCK_DGRAM, proto, "", sockaddr)]


async def resolve(loop, host, port, family=0, proto=0, flags=0):
    """getaddrinfo for the UDP sockets of a TCP port: the lookup is TCP's,
    so that a service name is the TCP service's port (``"http"``: 80), as
    asyncio's resolves it, and the answers are for UDP sockets.  A numeric
    address answers at once (no executor round trip, so two opens started
    together send their SYNs together)."""
    numeric = _numeric(host, port, family, proto)
    if numeric is not None:
        return numeric
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM, flags=flags)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    proto = proto if proto == socket.IPPROTO_UDP else 0
    return [(af, socket.SOCK_DGRAM, proto, canonname, address) for af, _, _, canonname, address in infos]


def _interleave(infos, first_family_count=1):
    """Alternate address families, the first one first (RFC 8305 section 4,
    as asyncio's interleave)."""
    by_family: dict = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    lists = list(by_family.values())
    ordered = [*lists[0][:first_family_count - 1]]
    lists[0] = lists[0][first_family_count - 1:]
    while any(lists):
        for group in lists:
            if group:
                ordered.append(group.pop(0))
    return ordered


async def bound_udp_socket(loop, host, port, family=0, flags=socket.AI_PASSIVE, reuse_port=None,
                           reuse_address=None) -> socket.socket:
    """A UDP socket bound to the first address (host, port) resolves to."""
    infos = await resolve(loop, host, port, family, socket.IPPROTO_UDP, flags)
    family, _, proto, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    try:
        _bind(sock, address, reuse_port, reuse_address)
    except OSError:
        sock.close()
        raise
    return sock


def _bind(sock, address, reuse_port, reuse_address, v6only: bool = False) -> None:
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if reuse_address:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(address)


def check_udp_socket(sock):
    if sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")
    return sock


#: a socket type flag making the socket non-blocking as it is made (Linux)
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
UDP_GRO = 104  # linux/udp.h
#: per address family, one socket with UDP GRO on for as long as the process
#: runs (gro_anchor)
_gro_anchors: dict = {}


def gro_anchor(family: int):
    """Keep UDP GRO switched on in the kernel while this process runs.

    The kernel turns its UDP GRO receive path on with the first socket that
    asks for GRO and off with the last one's close, and each switch
    rewrites kernel code (a static key): about 150 us, paid twice by every
    client connection of a process that has no other GRO socket open (its
    own socket is the only one).  One idle socket per address family that
    keeps GRO on makes those switches a counter's increment.  Best effort:
    None where the option or the family is missing."""
    if family not in _gro_anchors:
        anchor = None
        try:
            anchor = socket.socket(family, socket.SOCK_DGRAM)
            anchor.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
        except OSError:
            if anchor is not None:
                anchor.close()
                anchor = None
        _gro_anchors[family] = anchor
    return _gro_anchors[family]


async def _open(loop, protocol_factory, peer_info, tcp_port, config, tracer, local_addr=None, sock=None):
    """One attempt: a UDP socket connected to ``peer_info``'s address and a
    handshake over it; (endpoint, connection) once ESTABLISHED."""
    if config.udp_gro:
        gro_anchor(peer_info[0] if sock is None else sock.family)
    if sock is None:
        family, _, proto, _, address = peer_info
        if address[1] == 0:  # nothing listens on port 0: kernel TCP's connect is refused
            raise ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        # non-blocking from the start where the kernel can (no FIONBIO
        # call; elsewhere UDPEndpoint makes it so: a UDP bind or connect
        # does not block)
        sock = socket.socket(family, socket.SOCK_DGRAM | _NONBLOCK, proto)
        try:
            if local_addr is not None:
                sock.bind(local_addr)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        # the resolver's address is the one connected to, in the form
        # getpeername() gives (both are the socket module's rendering of
        # the same sockaddr): no system call to read it back
        peer = address
    else:
        peer = sock.getpeername()
    try:
        # the socket is watched from the SYN on (handshake): its first
        # segment leaves before the loop registration and the buffers'
        # growth, which overlap the peer's work on it
        endpoint = UDPEndpoint(loop, sock, config, peer=peer, tracer=tracer, watch=False)
    except BaseException:
        sock.close()
        raise
    endpoint.core.keep_time_wait = config.client_time_wait  # by default a client's TIME_WAIT holds no socket
    watch_loop_shutdown(loop)
    try:
        conn = await handshake(endpoint, endpoint.peer, tcp_port, endpoint.sockname[1])
    except BaseException:
        endpoint.close()
        raise
    return endpoint, conn


async def handshake(endpoint: UDPEndpoint, addr, tcp_port: int, local_port: int, *, punch: bool = False,
                    timeout: float | None = None):
    """An active open over ``endpoint`` towards the UDP address ``addr``,
    TCP port ``tcp_port`` from ``local_port``; the core connection once
    ESTABLISHED.  ``punch``: a hole-punching attempt, which a RST or an ICMP
    error does not end (the SYNs go on until the other side's NAT opens or
    the time runs out).  ``timeout``: seconds for the whole attempt (None:
    the SYN retries of Config.syn_retries, about two minutes)."""
    loop = endpoint.loop
    waiter = loop.create_future()
    conn = endpoint.core.connect(addr, tcp_port, local_port, monotonic(), punching=punch)
    endpoint.pending_connects[conn] = waiter
    endpoint.flush()
    endpoint.watch()
    try:
        if timeout is None:
            await waiter
        else:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(_attempt_failed(conn, addr, tcp_port, timeout, punch)) from None
    except BaseException:
        endpoint.pending_connects.pop(conn, None)
        if conn.state is not State.CLOSED:
            conn.abort(monotonic())
            endpoint.flush()
        if not waiter.done():
            waiter.cancel()
        raise
    endpoint.pending_connects.pop(conn, None)
    return conn


def _attempt_failed(conn, addr, tcp_port, timeout, punch) -> str:
    what = "hole punching to" if punch else "connecting to"
    if conn.segments_received:
        why = "segments from the peer arrived, but the handshake did not complete"
    else:
        why = "no segment from the peer ever arrived"
        if punch:
            why += (" (is the peer punching towards this address at the same time? A NAT that maps"
                    " each destination to a new port, a symmetric NAT, cannot be crossed without a relay)")
    return f"{what} {addr} TCP port {tcp_port}: no connection after {timeout} s: {why}"


async def create_connection(protocol_factory, host=None, port=None, *, ssl=None, family=0, proto=0, flags=0,
                            sock=None, local_addr=None, server_hostname=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, happy_eyeballs_delay=None, interleave=None,
                            all_errors=False, config: Config | None = None, tracer=None,
                            tcp_port: int | None = None):
    """Open an aiotcp connection to the UDP address (host, port) and return
    ``(transport, protocol)``, with ``loop.create_connection``'s arguments.

    Every address ``host`` resolves to is tried in turn (with
    ``happy_eyeballs_delay``, staggered, RFC 8305); when all fail, the error
    is asyncio's (the one error, or an OSError naming them all, or with
    ``all_errors`` an ExceptionGroup).  ``sock`` is a UDP socket to run on
    (connected to the peer, or bound and given ``host`` and ``port``).  The
    TCP port is ``port`` as docs/wire-format.md's default has it, or ``tcp_port`` when
    something between (a relay, a NAT) makes the UDP port differ from the
    server's TCP port."""
    loop = asyncio.get_running_loop()
    config = config or DEFAULT
    context = ssl_context_for(ssl, server_side=False)
    check_ssl_arguments(context, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
    if context is not None and server_hostname is None:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1  # as asyncio: the delay implies interleaving
    if sock is not None:
        check_udp_socket(sock)
        if local_addr is not None:
            raise ValueError("local_addr and sock can not be specified at the same time")
        try:
            connected = sock.getpeername()
        except OSError:
            connected = None
        if connected is not None and (host is not None or port is not None):
            raise ValueError("host/port and sock can not be specified at the same time")
        if connected is None:
            if host is None or port is None:
                raise ValueError("host and port was not specified and no sock specified")
            infos = await resolve(loop, host, port, family or sock.family, proto, flags)
            sock.setblocking(False)
            sock.connect(infos[0][4])
        peer_port = sock.getpeername()[1]
        endpoint, conn = await _open(loop, protocol_factory, None, tcp_port or peer_port, config, tracer,
                                     sock=sock)
    else:
        if host is None and port is None:  # either alone is asyncio's too (host None: this host)
            raise ValueError("host and port was not specified and no sock specified")
        infos = await resolve(loop, host, port, family, proto, flags)
        if local_addr is not None:
            local = await resolve(loop, *local_addr, family, proto, flags)
            infos = [info for info in infos if any(lo[0] == info[0] for lo in local)]
            if not infos:
                raise OSError(f"no matching local address with family={family} found")
        if interleave:
            infos = _interleave(infos, interleave)
        errors: list = []

        async def attempt(info):
            # the TCP port is the UDP port resolved (a service name, "http", is its number)
            tcp = tcp_port if tcp_port is not None else info[4][1]
            try:
                return await _open(loop, protocol_factory, info, tcp, config, tracer, local_addr)
            except OSError as exc:
                if exc.errno is not None:  # named as asyncio's selector loop names it
                    exc = _named(exc, f"Connect call failed {info[4]}")
                errors.append(exc)
                raise exc

        result = None
        if happy_eyeballs_delay is None:
            for info in infos:
                try:
                    result = await attempt(info)
                    break
                except OSError:
                    continue
        else:
            result, _, _ = await staggered.staggered_race(
                [functools.partial(attempt, info) for info in infos], happy_eyeballs_delay)
        if result is None:
            _raise_combined(errors, all_errors)
        endpoint, conn = result
    return await transport_for(endpoint, conn, protocol_factory, context, server_hostname,
                               ssl_handshake_timeout, ssl_shutdown_timeout)


async def transport_for(endpoint: UDPEndpoint, conn, protocol_factory, context=None, server_hostname=None,
                        ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
    """(transport, protocol) for an established client connection, with
    TLS over it when ``context`` is given."""
    loop = endpoint.loop
    protocol = protocol_factory()
    if context is not None:
        done = loop.create_future()
        ssl_protocol = sslproto.SSLProtocol(loop, protocol, context, done, server_side=False,
                                            server_hostname=server_hostname,
                                            ssl_handshake_timeout=ssl_handshake_timeout,
                                            ssl_shutdown_timeout=ssl_shutdown_timeout)
        transport = TCPTransport(endpoint, conn, ssl_protocol)
        ssl_protocol.connection_made(transport)
        transport._path.catch_up()
        try:
            await done
        except BaseException:
            transport.abort()
            raise
        return ssl_protocol._app_transport, protocol
    transport = TCPTransport(endpoint, conn, protocol)
    call_connection_made(loop, protocol, transport)
    transport._path.catch_up()
    return transport, protocol


def call_connection_made(loop, protocol, transport) -> None:
    """``protocol.connection_made(transport)`` as asyncio's transports call
    it, in a callback of the loop's: what it raises goes to the loop's
    exception handler ("Exception in callback ..."), and the connection
    stays, as over kernel TCP (create_connection still returns it)."""
    try:
        protocol.connection_made(transport)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop.call_exception_handler({
            "message": f"Exception in callback {type(protocol).__qualname__}.connection_made({transport!r})",
            "exception": exc, "protocol": protocol, "transport": transport})


def _named(exc: OSError, message: str) -> OSError:
    named = type(exc)(exc.errno, message)
    named.__cause__ = exc.__cause__
    return named


def _raise_combined(errors: list, all_errors: bool):
    """What asyncio's create_connection raises when every address failed."""
    if not errors:
        raise OSError("no address to connect to")
    if all_errors:
        raise builtins.ExceptionGroup("create_connection failed", errors)  # Python 3.11 and later
    if len(errors) == 1:
        raise errors[0]
    model = str(errors[0])
    if all(str(exc) == model for exc in errors):
        raise errors[0]
    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


async def create_server(protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC,
                        flags=socket.AI_PASSIVE, sock=None, backlog=100, ssl=None, reuse_address=None,
                        reuse_port=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                        start_serving=True, config: Config | None = None, tracer=None) -> Server:
    """Listen on the UDP address (host, port), or on the bound UDP socket
    ``sock``; the TCP port is the bound UDP port (so ``port=0`` picks one).
    Returns an ``asyncio.Server``-like object; ``loop.create_server``'s
    arguments otherwise."""
    loop = asyncio.get_running_loop()
    config = config or DEFAULT
    context = ssl_context_for(ssl, server_side=True)
    check_ssl_arguments(context, None, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        check_udp_socket(sock)
        # the caller's socket: as before, not closed if its endpoint fails
        endpoints = [UDPEndpoint(loop, sock, config, tracer=tracer)]
    else:
        socks = await _server_sockets(loop, host, port, family, flags, reuse_port, reuse_address)
        endpoints = []
        try:
            for made in socks:
                endpoints.append(UDPEndpoint(loop, made, config, tracer=tracer))
        except BaseException:
            for endpoint in endpoints:
                endpoint.close()
            for made in socks[len(endpoints):]:
                made.close()
            raise
    watch_loop_shutdown(loop)
    return Server(loop, endpoints, None, backlog, protocol_factory, context, ssl_handshake_timeout,
                  ssl_shutdown_timeout, start_serving)


async def _server_sockets(loop, host, port, family, flags, reuse_port, reuse_address) -> list:
    """asyncio's create_server: a bound socket (UDP here) for each address
    ``host`` resolves to (None: every interface, IPv4 and IPv6; a sequence
    of hosts: all of theirs), an IPv6 one for IPv6 alone; with port 0 each
    gets a port of its own, as asyncio's do."""
    hosts = [host] if host is None or isinstance(host, str) or not isinstance(host, Iterable) else list(host)
    if host == "":
        hosts = [None]
    found, seen = [], set()
    for each in hosts:
        for info in await resolve(loop, each, port or 0, family, socket.IPPROTO_UDP, flags):
            if (info[0], info[4]) not in seen:
                seen.add((info[0], info[4]))
                found.append(info)
    socks = []
    try:
        for af, _, proto, _, address in found:
            try:
                sock = socket.socket(af, socket.SOCK_DGRAM, proto)
            except OSError:
                continue  # a family this host cannot make sockets of (asyncio skips it too)
            socks.append(sock)
            try:
                _bind(sock, address, reuse_port, reuse_address, v6only=af == socket.AF_INET6)
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                                         f"{(exc.strerror or str(exc)).lower()}") from None
        if not socks:
            raise OSError(f"no address to listen on for host {host!r}")
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class StreamWriter(asyncio.StreamWriter):
    """asyncio's StreamWriter, whose ``start_tls`` works on every loop
    (uvloop's ``loop.start_tls`` refuses transports that are not its own)."""

    async def start_tls(self, sslcontext, *, server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        server_side = self._protocol._client_connected_cb is not None
        protocol = self._protocol
        await self.drain()
        new_transport = await start_tls(self._transport, protocol, sslcontext, server_side=server_side,
                                        server_hostname=server_hostname,
                                        ssl_handshake_timeout=ssl_handshake_timeout,
                                        ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._transport = new_transport
        protocol._replace_writer(self)


async def start_tls(transport, protocol, sslcontext, *, server_side=False, server_hostname=None,
                    ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
    """Upgrade an aiotcp connection to TLS (STARTTLS), as ``loop.start_tls``
    does, on any loop; returns the new transport."""
    if not isinstance(sslcontext, ssl_module.SSLContext):
        raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}")
    if not getattr(transport, "_start_tls_compatible", False):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    ssl_protocol = sslproto.SSLProtocol(loop, protocol, sslcontext, waiter, server_side, server_hostname,
                                        ssl_handshake_timeout=ssl_handshake_timeout,
                                        ssl_shutdown_timeout=ssl_shutdown_timeout,
                                        call_connection_made=False)
    transport.pause_reading()
    transport.set_protocol(ssl_protocol)
    made = loop.call_soon(ssl_protocol.connection_made, transport)
    resumed = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    return ssl_protocol._app_transport


async def open_connection(host=None, port=None, *, limit=2 ** 16, **kwargs):
    """Like ``asyncio.open_connection``, over aiotcp."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **kwargs)
    writer = StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(client_connected_cb, host=None, port=None, *, limit=2 ** 16, **kwargs) -> Server:
    """Like ``asyncio.start_server``, over aiotcp."""
    loop = asyncio.get_running_loop()
    callback = with_aiotcp_writer(client_connected_cb)

    def factory():
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, callback, loop=loop)

    return await create_server(factory, host, port, **kwargs)


def with_aiotcp_writer(client_connected_cb):
    """The callback, handed aiotcp's StreamWriter (asyncio's class, whose
    start_tls works on uvloop too) instead of asyncio's."""
    def connected(reader, writer):
        writer.__class__ = StreamWriter
        return client_connected_cb(reader, writer)

    return connected


# ------------------------------------------------------- the loop's end

#: the asynchronous generator per loop whose finalisation (asyncio.run()
#: and uvloop.run() finalise them before closing the loop) resets what is
#: still open on that loop's endpoints
_shutdown_hooks: dict = {}


def watch_loop_shutdown(loop) -> None:
    if loop in _shutdown_hooks:
        return

    async def hook():
        try:
            yield
        finally:
            _shutdown_hooks.pop(loop, None)
            for endpoint in open_endpoints(loop):
                endpoint.shutdown(True)

    agen = hook()
    _shutdown_hooks[loop] = agen
    step = agen.__anext__()  # the loop's firstiter hook registers it now
    try:
        step.send(None)
    except StopIteration:
        pass


@atexit.register
def _shutdown_at_exit() -> None:
    """At interpreter exit, connections still open on any loop get a RST
    (their loop is gone: nothing else would ever tell their peers)."""
    for endpoint in open_endpoints(None):
        endpoint.shutdown(False)
