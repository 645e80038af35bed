"""An aiotcp endpoint: many connections and listeners over one UDP socket.

``aiotcp.open_connection`` gives each client connection its own UDP socket,
as kernel TCP gives each its own port.  Across NATs that is what must not
happen: a NAT maps each UDP socket to a public address of its own, and a
peer (a rendezvous server, the other side of a hole punch) only knows the
mapping of the socket it has heard from.  An :class:`Endpoint` is one UDP
socket, one NAT binding, that carries any number of connections, to any
peers, and listeners::

    ep = await aiotcp.create_endpoint(local_addr=("0.0.0.0", 40000))
    server = await ep.start_server(handle)          # TCP port: the UDP port
    reader, writer = await ep.open_connection(host, port)
    ep.close(); await ep.wait_closed()

Connections to one peer get distinct local TCP ports (the first the UDP
port, which a hole-punching peer can be told); to different peers they
share it.  The socket is not connected, so ICMP errors never reach the
connections: a closed port is learnt from the peer endpoint's RST, or not
at all (a SYN to no aiotcp endpoint is retried until it times out).
"""
from __future__ import annotations

import asyncio
import socket

from .._fast import monotonic
from ..core.config import DEFAULT, Config
from .transport import (
    Server, StreamWriter, bound_udp_socket, check_ssl_arguments, check_udp_socket, handshake, resolve,
    ssl_context_for,
    transport_for, watch_loop_shutdown, with_aiotcp_writer,
)
from .udp import UDPEndpoint


class Endpoint:
    """One UDP socket carrying aiotcp connections and listeners (see the
    module docstring).  Made by :func:`create_endpoint`."""

    def __init__(self, udp: UDPEndpoint):
        self._udp = udp
        self._loop = udp.loop
        self._local_address = udp.sock.getsockname()
        self._servers: set = set()
        self._closing = False
        self._closed = udp.loop.create_future()
        udp.close_callbacks.append(self._on_socket_closed)

    def __repr__(self):
        state = "closed" if self._udp.closed else "closing" if self._closing else "open"
        return f"<aiotcp.Endpoint {self._local_address!r} {state}, {len(self._udp.core.connections)} connections>"

    @property
    def local_address(self):
        """The UDP socket's address (``getsockname()``)."""
        return self._local_address

    @property
    def udp(self) -> UDPEndpoint:
        """The UDP socket's endpoint (its core endpoint is ``udp.core``)."""
        return self._udp

    def _check_open(self) -> None:
        if self._closing or self._udp.closed:
            raise RuntimeError(f"{self!r} is closed: make another with aiotcp.create_endpoint()")

    # ------------------------------------------------------------ listening

    async def create_server(self, protocol_factory, *, tcp_port: int | None = None, backlog: int = 100,
                            ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                            start_serving: bool = True) -> Server:
        """Listen on TCP port ``tcp_port`` (default: the UDP port) of this
        endpoint; ``loop.create_server``'s meaning otherwise.  Closing the
        server leaves the endpoint open."""
        self._check_open()
        context = ssl_context_for(ssl, server_side=True)
        check_ssl_arguments(context, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        port = self._local_address[1] if tcp_port is None else tcp_port
        if port in self._udp.core.listeners:
            raise OSError(98, f"TCP port {port} of {self._local_address!r} is already listening")
        server = Server(self._loop, [self._udp], port, backlog, protocol_factory, context, ssl_handshake_timeout,
                        ssl_shutdown_timeout, start_serving, owns_endpoint=False)
        self._servers.add(server)
        return server

    async def start_server(self, client_connected_cb, *, tcp_port: int | None = None, limit: int = 2 ** 16,
                           **kwargs) -> Server:
        """:func:`asyncio.start_server` on this endpoint."""
        connected = with_aiotcp_writer(client_connected_cb)

        def factory():
            reader = asyncio.StreamReader(limit=limit, loop=self._loop)
            return asyncio.StreamReaderProtocol(reader, connected, loop=self._loop)

        return await self.create_server(factory, tcp_port=tcp_port, **kwargs)

    # ------------------------------------------------------------ connecting

    async def create_connection(self, protocol_factory, host, port, *, tcp_port: int | None = None,
                                local_tcp_port: int | None = None, punch: bool = False,
                                timeout: float | None = None, ssl=None, server_hostname=None,
                                ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Connect over this endpoint's socket to the UDP address (host,
        port), TCP port ``tcp_port`` (default: ``port``), from
        ``local_tcp_port`` (default: the UDP port, or a free one when a
        connection to that peer has it).  ``punch=True`` makes it a hole
        punch: both peers call this towards each other at about the same
        time (TCP's simultaneous open), and the RSTs and ICMP errors the
        first SYNs may meet do not end the attempt.  ``timeout``: seconds
        for the whole attempt, after which TimeoutError says whether
        anything from the peer ever arrived.  Returns (transport, protocol)."""
        self._check_open()
        context = ssl_context_for(ssl, server_side=False)
        check_ssl_arguments(context, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        if context is not None and server_hostname is None:
            server_hostname = host
        udp = self._udp
        infos = await resolve(self._loop, host, port, udp.sock.family, socket.IPPROTO_UDP)
        addr = infos[0][4]
        self._check_open()  # closed while the name resolved
        remote_port = addr[1] if tcp_port is None else tcp_port  # a service name's number
        if local_tcp_port is None:
            local_tcp_port = udp.core.free_port(addr, remote_port, self._local_address[1])
        conn = await handshake(udp, addr, remote_port, local_tcp_port, punch=punch, timeout=timeout)
        return await transport_for(udp, conn, protocol_factory, context, server_hostname,
                                   ssl_handshake_timeout, ssl_shutdown_timeout)

    async def open_connection(self, host, port, *, limit: int = 2 ** 16, **kwargs):
        """:func:`asyncio.open_connection` over this endpoint; the keywords
        of :meth:`create_connection`."""
        reader = asyncio.StreamReader(limit=limit, loop=self._loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self._loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port, **kwargs)
        return reader, StreamWriter(transport, protocol, reader, self._loop)

    # ------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        return self._closing or self._udp.closed

    def close(self) -> None:
        """Stop every server and close every connection as ``close()``
        does (graceful: what was written is still delivered, within
        Config.linger); the socket closes when they are done.  Connection
        attempts still running fail.  TIME_WAIT is not kept: the socket is
        going."""
        if self._closing:
            return
        udp = self._stop_listening_and_attempts()
        for transport in list(udp.transports.values()):
            transport.close()
        udp.core.keep_time_wait = False
        udp.core.drop_time_wait()
        udp.close_when_idle = True
        udp.flush()

    def abort(self) -> None:
        """Reset every connection and close the socket now."""
        udp = self._stop_listening_and_attempts()
        for transport in list(udp.transports.values()):
            transport.reset()
        # then as at the loop's end: the rest with something left to tell
        # the peer is reset, the RSTs go out, the socket closes
        udp.shutdown(True)

    def _stop_listening_and_attempts(self) -> UDPEndpoint:
        """Closing begins: the servers stop, connection attempts fail."""
        self._closing = True
        udp = self._udp
        for server in list(self._servers):
            server.close()
        for conn in list(udp.pending_connects):
            conn.abort(monotonic())
        return udp

    async def wait_closed(self) -> None:
        """Wait until the socket has closed (after :meth:`close`, when the
        last connection is done)."""
        await asyncio.shield(self._closed)

    def _on_socket_closed(self) -> None:
        self._closing = True
        if not self._closed.done():
            self._closed.set_result(None)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


async def create_endpoint(local_addr=None, *, sock=None, family: int = 0, reuse_port: bool | None = None,
                          config: Config | None = None, tracer=None) -> Endpoint:
    """An :class:`Endpoint` on a new UDP socket bound to ``local_addr``
    (default: every IPv4 address, a port the system picks), or on ``sock``,
    a bound, unconnected UDP socket."""
    loop = asyncio.get_running_loop()
    config = config or DEFAULT
    if sock is not None:
        if local_addr is not None:
            raise ValueError("local_addr and sock can not be specified at the same time")
        check_udp_socket(sock)
        try:
            sock.getpeername()
        except OSError:
            pass
        else:
            raise ValueError(f"an endpoint talks to many peers: {sock!r} is connected")
        if sock.getsockname()[1] == 0:
            sock.bind(("::", 0) if sock.family == socket.AF_INET6 else ("0.0.0.0", 0))
    else:
        host, port = local_addr if local_addr is not None else ("0.0.0.0", 0)
        sock = await bound_udp_socket(loop, host, port, family, reuse_port=reuse_port)
    udp = UDPEndpoint(loop, sock, config, tracer=tracer)
    watch_loop_shutdown(loop)
    return Endpoint(udp)
