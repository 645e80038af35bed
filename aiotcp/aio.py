"""The asyncio layer: it only adapts the sans-I/O core to an event loop.

One :class:`~aiotcp.udp.UDPEndpoint` per UDP socket (in ``udp.py``, compiled
with the core) moves datagrams, events and the timer between the socket, the
loop and the core endpoint.  A :class:`TCPTransport` per connection
implements the ``asyncio.Transport`` contract on top of a core connection;
the server and the streams API are built on those, as asyncio's are.
"""
from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
from asyncio import sslproto

from .config import DEFAULT, Config
from .connection import ConnectionStateError
from .events import Closed, Connected, DataReadable, PeerClosed, Writable
from ._fast import monotonic
from .log import debug_enabled, get_logger
from .udp import TransportPath, UDPEndpoint, _identity

logger = get_logger()

class TCPTransport(asyncio.Transport):
    """One aiotcp connection as an ``asyncio.Transport``.

    What it does per segment, ``write()`` and the delivery of received data,
    is its :class:`~aiotcp.udp.TransportPath` (``_path``), compiled; the
    state both halves read lives there."""

    _start_tls_compatible = True

    def __init__(self, endpoint: UDPEndpoint, conn, protocol: asyncio.BaseProtocol):
        super().__init__()
        self._endpoint = endpoint
        self._loop = endpoint.loop
        self._conn = conn
        self._path = path = TransportPath(self, endpoint, conn, protocol)
        # the compiled write itself, so that StreamWriter.write() runs no
        # Python frame of ours (the method below says the same for the class)
        self.write = path.write
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        path.pause_above = endpoint.config.send_buffer + self._high_water
        endpoint.transports[conn] = self
        endpoint.paths[conn] = path

    @property
    def _log(self):
        """A logger bound to this connection's identity (made when used: a
        transport that logs nothing pays nothing)."""
        return logger.bind(**_identity(self._conn))

    def __repr__(self):
        return f"<aiotcp.TCPTransport {self._conn.state} {self._conn.remote_addr}>"

    # -- BaseTransport
    def get_extra_info(self, name, default=None):
        conn = self._conn
        sock = self._endpoint.sock
        if name == "peername":
            return conn.remote_addr
        if name == "sockname":
            return sock.getsockname()
        if name == "socket":
            return sock
        if name == "tcp_info":
            return conn.info()
        if name == "tcp_state":
            return str(conn.state)
        if name == "connection":
            return conn
        return default

    def is_closing(self) -> bool:
        return self._path.closing

    def close(self) -> None:
        """Graceful close: buffered data, then FIN (the core finishes the
        teardown on its own, as the kernel does after close())."""
        path = self._path
        if path.closing:
            return
        path.closing = True
        conn = self._conn
        conn.discard_input = True
        try:
            conn.close(monotonic())
        except ConnectionStateError:
            pass
        self._endpoint._after()
        self._loop.call_soon(self._call_connection_lost, None)

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
        self._path.pause_above = self._endpoint.config.send_buffer + high
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self):
        return (self._low_water, self._high_water)

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet acknowledged by the peer beyond the
        connection's send buffer (the part a kernel would keep in user space)."""
        return max(0, self._conn.send_buffered - self._endpoint.config.send_buffer)

    def write(self, data) -> None:
        """Queue ``data`` and send what the windows allow (each instance has
        its path's compiled write in this place)."""
        self._path.write(data)

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
        self._endpoint._after()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Send a RST and drop everything."""
        if self._path.lost:
            return
        self._path.closing = True
        self._conn.abort(monotonic())
        self._endpoint._after()
        self._loop.call_soon(self._call_connection_lost, None)

    # -- flow control towards the protocol
    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        self._conn.low_water = self._endpoint.config.send_buffer + self._low_water
        try:
            self._path.protocol.pause_writing()
        except Exception:
            self._log.exception("aiotcp.transport.pause_writing_error")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            try:
                self._path.protocol.resume_writing()
            except Exception:
                self._log.exception("aiotcp.transport.resume_writing_error")

    # -- events from the core
    def _on_event(self, event) -> None:
        cls = event.__class__
        path = self._path
        if cls is DataReadable:
            path.deliver()
        elif cls is Writable:
            self._maybe_resume_protocol()
        elif cls is PeerClosed:
            path.eof_pending = True
            path.deliver()
        elif cls is Closed:
            error = event.error
            if error is not None:
                self._log.info("aiotcp.conn.reset" if isinstance(error, ConnectionResetError)
                               else "aiotcp.conn.error", error=repr(error))
            self._endpoint.transports.pop(self._conn, None)
            self._endpoint.paths.pop(self._conn, None)
            if self._endpoint.peer is not None:
                self._endpoint.close_when_idle = True
            if not path.closing:
                path.closing = True
                path.deliver()
                self._call_connection_lost(error)
        elif cls is Connected:
            if debug_enabled():
                self._log.debug("aiotcp.conn.established")

    def _call_connection_lost(self, exc) -> None:
        path = self._path
        if path.lost:
            return
        path.lost = True
        try:
            path.protocol.connection_lost(exc)
        finally:
            path.protocol = None


# --------------------------------------------------------------------- server

class Server(asyncio.AbstractServer):
    """An aiotcp listener, behaving like ``asyncio.Server``."""

    def __init__(self, loop, endpoint: UDPEndpoint, listener, protocol_factory, ssl_context,
                 ssl_handshake_timeout):
        self._loop = loop
        self._endpoint = endpoint
        self._listener = listener
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._serving = True
        self._waiters: list[asyncio.Future] = []
        self._serving_forever_fut = None
        endpoint.servers[listener] = self

    def __repr__(self):
        return f"<aiotcp.Server sockets={self.sockets!r}>"

    def _accept(self, endpoint: UDPEndpoint, conn) -> None:
        if not self._serving:
            conn.abort(monotonic())
            return
        protocol = self._protocol_factory()
        if self._ssl_context is not None:
            waiter = self._loop.create_future()
            ssl_protocol = sslproto.SSLProtocol(self._loop, protocol, self._ssl_context, waiter,
                                                server_side=True,
                                                ssl_handshake_timeout=self._ssl_handshake_timeout)
            transport = TCPTransport(endpoint, conn, ssl_protocol)
            ssl_protocol.connection_made(transport)
            waiter.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        else:
            transport = TCPTransport(endpoint, conn, protocol)
            protocol.connection_made(transport)
        if conn.read_buffered:
            transport._path.deliver()
        if conn.fin_received:
            transport._path.eof_pending = True
            transport._path.deliver()

    @property
    def sockets(self):
        return (self._endpoint.sock,) if not self._endpoint._closed else ()

    def get_loop(self):
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        self._listener.close(monotonic())
        self._endpoint.close_when_idle = True
        self._endpoint._after()
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if not self._serving:
            raise RuntimeError(f"server {self!r} is closed")
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
        if not self._serving:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def close_clients(self) -> None:
        for transport in list(self._endpoint.transports.values()):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._endpoint.transports.values()):
            transport.abort()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


# ------------------------------------------------------------------ public API

def _ssl_context(ssl, server_side: bool):
    if ssl is True:
        context = ssl_module.create_default_context(
            ssl_module.Purpose.CLIENT_AUTH if server_side else ssl_module.Purpose.SERVER_AUTH)
        return context
    if ssl is None or ssl is False:
        return None
    if not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(f"ssl argument must be an SSLContext or None, got {ssl!r}")
    return ssl


async def _resolve(loop, host, port, family=0):
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos


async def create_connection(protocol_factory, host=None, port=None, *, local_addr=None, ssl=None,
                            server_hostname=None, ssl_handshake_timeout=None, config: Config | None = None,
                            tracer=None, tcp_port: int | None = None):
    """Open an aiotcp connection to the UDP address (host, port) and return
    ``(transport, protocol)``.  The TCP port is ``port`` as WIRE.md's default
    has it, or ``tcp_port`` when something between (a relay, a NAT) makes
    the UDP port differ from the server's TCP port."""
    loop = asyncio.get_running_loop()
    config = config or DEFAULT
    context = _ssl_context(ssl, server_side=False)
    if server_hostname is not None and context is None:
        raise ValueError("server_hostname is only meaningful with ssl")
    if context is None and ssl_handshake_timeout is not None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if host is None or port is None:
        raise ValueError("host and port was not specified and no sock specified")
    if context is not None and server_hostname is None:
        server_hostname = host
    infos = await _resolve(loop, host, port)
    errors = []
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if local_addr is not None:
                sock.bind(local_addr)
            sock.connect(address)
            peer = sock.getpeername()
            endpoint = UDPEndpoint(loop, sock, config, peer=peer, tracer=tracer)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        break
    else:
        raise errors[0] if len(errors) == 1 else OSError(f"Multiple exceptions: {errors}")
    waiter = loop.create_future()
    conn = endpoint.core.connect(peer, tcp_port if tcp_port is not None else port, endpoint.local_port,
                                 monotonic())
    endpoint.pending_connects[conn] = waiter
    endpoint._after()
    try:
        await waiter
    except BaseException:
        endpoint.pending_connects.pop(conn, None)
        if str(conn.state) != "CLOSED":
            conn.abort(monotonic())
            endpoint.flush()
        endpoint.close()
        raise
    endpoint.pending_connects.pop(conn, None)
    protocol = protocol_factory()
    if context is not None:
        handshake = loop.create_future()
        ssl_protocol = sslproto.SSLProtocol(loop, protocol, context, handshake, server_side=False,
                                            server_hostname=server_hostname,
                                            ssl_handshake_timeout=ssl_handshake_timeout)
        transport = TCPTransport(endpoint, conn, ssl_protocol)
        ssl_protocol.connection_made(transport)
        if conn.read_buffered:
            transport._path.deliver()
        try:
            await handshake
        except BaseException:
            transport.abort()
            raise
        return ssl_protocol._app_transport, protocol
    transport = TCPTransport(endpoint, conn, protocol)
    protocol.connection_made(transport)
    if conn.read_buffered or conn.fin_received:
        transport._path.eof_pending = conn.fin_received
        transport._path.deliver()
    return transport, protocol


async def create_server(protocol_factory, host=None, port=None, *, backlog=100, ssl=None,
                        ssl_handshake_timeout=None, reuse_port=None, reuse_address=None,
                        config: Config | None = None, start_serving=True, tracer=None) -> Server:
    """Listen on the UDP address (host, port); the TCP port is the bound UDP
    port (so ``port=0`` picks one).  Returns an ``asyncio.Server``-like object."""
    loop = asyncio.get_running_loop()
    config = config or DEFAULT
    context = _ssl_context(ssl, server_side=True)
    if context is None and ssl_handshake_timeout is not None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    infos = await _resolve(loop, host if host is not None else "0.0.0.0", port or 0)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    endpoint = UDPEndpoint(loop, sock, config, tracer=tracer)
    listener = endpoint.core.listen(endpoint.local_port, backlog)
    return Server(loop, endpoint, listener, protocol_factory, context, ssl_handshake_timeout)


async def open_connection(host=None, port=None, *, limit=2 ** 16, **kwargs):
    """Like ``asyncio.open_connection``, over aiotcp."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **kwargs)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(client_connected_cb, host=None, port=None, *, limit=2 ** 16, **kwargs) -> Server:
    """Like ``asyncio.start_server``, over aiotcp."""
    loop = asyncio.get_running_loop()

    def factory():
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, **kwargs)
