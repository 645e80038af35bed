"""The tunnel: kernel TCP on each side, aiotcp over one UDP flow between.

A port forwarder in the manner of kcptun's client and server::

    python -m aiotcp forward server --listen 0.0.0.0:4000 --target 127.0.0.1:22
    python -m aiotcp forward client --listen 127.0.0.1:2222 --server vpn.example.org:4000
    ssh -p 2222 localhost

The client accepts kernel TCP connections and carries each as its own
aiotcp connection over **one** endpoint (one UDP socket: one NAT binding
for all of them, kept by NAT keepalive and followed through rebindings).
The server accepts aiotcp connections on one UDP port and opens a kernel
TCP connection to the target for each.  Mappings are told apart by the
aiotcp connection's TCP port, so there is no framing of its own: the bytes
in the aiotcp stream are the kernel stream's bytes.

Stream semantics carried both ways: the bytes; a half-close (EOF one way,
the other still open); a reset (a RST on one side aborts the other with a
RST, a kernel RST through ``SO_LINGER`` 0); a refused or unreachable
target (the client's kernel connection is reset); backpressure (each
direction reads only as fast as the other side drains, so memory per
connection stays within the stream buffers whatever the speeds).

Authentication, one of:

- ``ssl``: the aiotcp connection runs TLS 1.3 (:func:`tls_contexts`,
  :class:`TLSStream`); the server can require client certificates.  A
  half-close is TLS's own: a close_notify (then the FIN) one way while
  the other way still carries data, as TLS 1.3 allows.
- ``psk``: a pre-shared key (:class:`PresharedKey`), which authenticates
  both ends when each connection starts and protects nothing after: the
  stream itself is not encrypted or integrity-protected.
- neither: anyone who can reach the server's UDP port reaches the targets;
  :func:`serve_server` and :func:`serve_client` log a warning.

The library API, under the command line::

    server = await aiotcp.forward.serve_server(("0.0.0.0", 4000), {4000: ("127.0.0.1", 22)})
    client = await aiotcp.forward.serve_client(("vpn.example.org", 4000), [(("127.0.0.1", 2222), 4000)])
    client.counters()             # connections, bytes each way, retransmissions, migrations
    await client.shutdown(30.0)   # stop accepting, let open connections finish, then reset
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import ssl as _ssl
import struct
from collections import Counter

from ..aio import create_endpoint
from ..aio.log import get_logger
from ..core.config import Config

log = get_logger()

#: bytes a direction reads at a time (and the stream reader's limit)
CHUNK = 1 << 16
#: the faults that end a stream with a reset, from either kind of socket
RESET_ERRORS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, TimeoutError)


class AuthenticationError(ConnectionError):
    """The peer does not hold the pre-shared key (or answered garbage)."""


class PresharedKey:
    """Mutual authentication by a shared secret when a connection starts.

    Design: the client sends ``MAGIC`` and a 32-byte random nonce Nc; the
    server answers with its nonce Ns and HMAC-SHA256(key, "server" | Nc |
    Ns); the client checks it and answers HMAC-SHA256(key, "client" | Nc |
    Ns), which the server checks before it connects to the target.  Both
    MACs cover both nonces, so neither can be replayed from another
    connection, and neither side reveals anything about the key.

    What it protects: only a holder of the key can make the server open
    connections to its targets, and the client's users know they reached
    a server holding the key.  An off-path attacker cannot inject into an
    authenticated connection either (TCP's sequence numbers and
    timestamps, aiotcp's path validation).  What it does not: the bytes
    after the handshake are neither encrypted nor authenticated, so
    anyone on the path can read them, and an on-path attacker can alter
    or take over the stream after the handshake.  Use TLS for that."""

    MAGIC = b"aiotcp-forward-psk/1\n"
    NONCE = 32
    MAC = 32

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("a pre-shared key needs at least 16 bytes")
        self.key = key

    @classmethod
    def from_file(cls, path: str) -> "PresharedKey":
        """The key is the file's contents, surrounding whitespace removed."""
        with open(path, "rb") as f:
            return cls(f.read().strip())

    def _mac(self, role: bytes, nc: bytes, ns: bytes) -> bytes:
        return hmac.new(self.key, role + nc + ns, hashlib.sha256).digest()

    async def client(self, reader, writer) -> None:
        nc = os.urandom(self.NONCE)
        writer.write(self.MAGIC + nc)
        answer = await reader.readexactly(self.NONCE + self.MAC)
        ns, mac = answer[:self.NONCE], answer[self.NONCE:]
        if not hmac.compare_digest(mac, self._mac(b"server", nc, ns)):
            raise AuthenticationError("the server does not hold the pre-shared key")
        writer.write(self._mac(b"client", nc, ns))

    async def server(self, reader, writer) -> None:
        hello = await reader.readexactly(len(self.MAGIC) + self.NONCE)
        if not hello.startswith(self.MAGIC):
            raise AuthenticationError("not a pre-shared-key client")
        nc, ns = hello[len(self.MAGIC):], os.urandom(self.NONCE)
        writer.write(ns + self._mac(b"server", nc, ns))
        mac = await reader.readexactly(self.MAC)
        if not hmac.compare_digest(mac, self._mac(b"client", nc, ns)):
            raise AuthenticationError("the client does not hold the pre-shared key")


def tls_contexts(*, server_side: bool, cert: str | None = None, key: str | None = None, ca: str | None = None,
                 require_client_cert: bool = False) -> _ssl.SSLContext:
    """The TLS context of one side.  Server: ``cert``/``key`` are its own,
    ``ca`` verifies client certificates (required with
    ``require_client_cert``).  Client: ``ca`` verifies the server (the
    system's roots without it), ``cert``/``key`` are the client's own."""
    if server_side:
        if cert is None:
            raise ValueError("a TLS server needs --cert (and --key unless the certificate file holds it)")
        context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH, cafile=ca)
        context.load_cert_chain(cert, key)
        if require_client_cert:
            if ca is None:
                raise ValueError("requiring client certificates needs --ca to verify them")
            context.verify_mode = _ssl.CERT_REQUIRED
    else:
        context = _ssl.create_default_context(_ssl.Purpose.SERVER_AUTH, cafile=ca)
        if cert is not None:
            context.load_cert_chain(cert, key)
    context.minimum_version = _ssl.TLSVersion.TLSv1_3  # a half-close needs 1.3's rules
    return context


class TLSStream:
    """TLS over one aiotcp stream, with a half-close (asyncio's own TLS
    transport cannot write_eof).  It is both the reader and the writer of
    the pair: ``read``, ``readexactly``, ``write``, ``drain``,
    ``write_eof`` (a close_notify, then the TCP FIN; reading goes on),
    ``close``, ``wait_closed``; ``transport`` is the aiotcp transport
    underneath, so an abort of it is a RST.  A stream that ends without
    close_notify (a truncation) raises ConnectionResetError."""

    def __init__(self, reader, writer, context: _ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None):
        self._reader, self._writer = reader, writer
        self._incoming, self._outgoing = _ssl.MemoryBIO(), _ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self.transport = writer.transport
        self._shut = False

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except _ssl.SSLWantReadError:
                self._flush()
                await self._fill()
        self._flush()

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)

    async def _fill(self) -> None:
        data = await self._reader.read(CHUNK)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def read(self, n: int = -1) -> bytes:
        while True:
            try:
                data = self._tls.read(CHUNK if n < 0 else n)
            except _ssl.SSLWantReadError:
                self._flush()
                await self._fill()
                continue
            except _ssl.SSLZeroReturnError:
                data = b""
            except _ssl.SSLEOFError as exc:
                raise ConnectionResetError("the TLS stream ended without close_notify") from exc
            self._flush()  # whatever reading produced (TLS 1.3 key updates)
            return data

    async def readexactly(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            data = await self.read(n - got)
            if not data:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def write(self, data) -> None:
        view = memoryview(data)
        while view:
            view = view[self._tls.write(view):]
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._shutdown()
        self._writer.write_eof()

    def _shutdown(self) -> None:
        if not self._shut:
            self._shut = True
            try:
                self._tls.unwrap()
            except (_ssl.SSLWantReadError, _ssl.SSLError):
                pass  # close_notify sent; the peer's comes (or not) by read()
            self._flush()

    def close(self) -> None:
        if not self.transport.is_closing():
            self._shutdown()
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()

    def get_extra_info(self, name: str, default=None):
        if name == "ssl_object":
            return self._tls
        if name == "peercert":
            return self._tls.getpeercert()
        return self._writer.get_extra_info(name, default)


# --------------------------------------------------------------- one stream

def _reset(writer) -> None:
    """Abort ``writer``'s connection with a RST: SO_LINGER 0, then abort(),
    on a kernel socket and an aiotcp connection alike (TLS over either too)."""
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # closed already
    transport.abort()


class Pair:
    """One forwarded connection: a kernel stream and an aiotcp stream,
    each direction copied until its EOF, a fault on either resetting both."""

    def __init__(self, forwarder: "Forwarder", kernel, tunnel):
        self.forwarder = forwarder
        self.kernel = kernel    # (reader, writer) of the kernel TCP connection
        self.tunnel = tunnel    # (reader, writer) of the aiotcp connection
        self.reset = False

    async def run(self) -> None:
        counters = self.forwarder._counters
        (kr, kw), (tr, tw) = self.kernel, self.tunnel
        # up: towards the target (client to server), down: back
        up, down = ("bytes_up", "bytes_down") if self.forwarder.side == "client" else ("bytes_down", "bytes_up")
        tasks = [asyncio.ensure_future(self._copy(kr, tw, up)), asyncio.ensure_future(self._copy(tr, kw, down))]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            faults = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            if faults:
                for task in pending:
                    task.cancel()
                self._abort()
                counters["resets"] += 1
                log.info("aiotcp.forward.reset", side=self.forwarder.side, why=repr(faults[0]))
                return
            for writer in (kw, tw):
                writer.close()
            for writer in (kw, tw):
                try:
                    await asyncio.wait_for(writer.wait_closed(), self.forwarder.close_timeout)
                except (OSError, asyncio.TimeoutError, _ssl.SSLError):
                    pass
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            self._abort()
            raise
        finally:
            self.forwarder._account(tw)

    async def _copy(self, reader, writer, counter: str) -> None:
        """One direction, until its EOF, which it passes on (a half-close).
        Each chunk waits for the writer to drain, so this direction reads
        no faster than the far side takes the bytes (backpressure)."""
        counters = self.forwarder._counters
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            counters[counter] += len(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    def _abort(self) -> None:
        if not self.reset:
            self.reset = True
            for _, writer in (self.kernel, self.tunnel):
                _reset(writer)


# ------------------------------------------------------------ the two sides

#: what a failed TLS handshake or pre-shared-key exchange raises
AUTH_ERRORS = (AuthenticationError, asyncio.IncompleteReadError, asyncio.TimeoutError, _ssl.SSLError, *RESET_ERRORS)


class Forwarder:
    """What both sides share: the endpoint, the authentication, the open
    pairs, the counters, the graceful shutdown."""

    side = ""

    def __init__(self, endpoint, config: Config, ssl=None, psk=None, connect_timeout: float = 30.0):
        self.endpoint = endpoint
        self.config = config
        self.ssl = ssl
        self.psk = psk
        self.connect_timeout = connect_timeout
        self.close_timeout = 30.0
        self._pairs: dict[asyncio.Task, Pair] = {}
        self._counters: Counter = Counter()
        self._closed_tcp = Counter()  # retransmissions and migrations of the connections gone
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    # counters ---------------------------------------------------------
    def counters(self) -> dict:
        """``connections`` accepted, ``active`` now, ``refused`` (the
        target or the tunnel could not be reached), ``resets`` (a pair
        ended by a fault), ``auth_failures``, the bytes each way
        (``bytes_up``: from the client's kernel side to the targets,
        ``bytes_down``: back), and the ``retransmissions`` and
        ``migrations`` of the aiotcp connections, open and closed."""
        result = {"connections": self._counters["connections"], "active": len(self._pairs)}
        for name in ("refused", "resets", "auth_failures", "bytes_up", "bytes_down"):
            result[name] = self._counters[name]
        live = Counter()
        for pair in self._pairs.values():
            live += self._tcp_counters(pair.tunnel[1])
        total = self._closed_tcp + live
        result["retransmissions"] = total["retransmissions"]
        result["migrations"] = total["migrations"]
        return result

    @staticmethod
    def _tcp_counters(writer) -> Counter:
        info = writer.transport.get_extra_info("tcp_info") if writer is not None else None
        if not info:
            return Counter()
        return Counter(retransmissions=info.get("segments_retransmitted", 0), migrations=info.get("migrations", 0))

    def _account(self, writer) -> None:
        self._closed_tcp += self._tcp_counters(writer)

    def log_counters(self) -> dict:
        counters = self.counters()
        worker = os.environ.get(WORKER_ENV)
        where = {} if worker is None else {"worker": int(worker)}
        log.info("aiotcp.forward.counters", side=self.side, **where, **counters)
        return counters

    # authentication -----------------------------------------------------
    async def _authenticate(self, tunnel: tuple, kernel_writer=None, server_hostname=None, **where):
        """TLS (``self.ssl``) and then the pre-shared key (``self.psk``) on
        the aiotcp stream ``tunnel`` (reader, writer), within
        connect_timeout.  The stream to use from then on, or None when it
        failed: counted, logged with ``where``, the aiotcp connection (and
        ``kernel_writer``'s, if given) reset."""
        server_side = self.side == "server"
        try:
            if self.ssl is not None:
                stream = TLSStream(*tunnel, self.ssl, server_side=server_side, server_hostname=server_hostname)
                tunnel = (stream, stream)
                await asyncio.wait_for(stream.handshake(), self.connect_timeout)
            if self.psk is not None:
                exchange = self.psk.server if server_side else self.psk.client
                await asyncio.wait_for(exchange(*tunnel), self.connect_timeout)
        except AUTH_ERRORS as exc:
            self._counters["auth_failures"] += 1
            log.warning("aiotcp.forward.auth_failed", why=repr(exc), **where)
            _reset(tunnel[1])
            if kernel_writer is not None:
                _reset(kernel_writer)
            return None
        return tunnel

    # pairs ------------------------------------------------------------
    def _start(self, kernel, tunnel) -> None:
        pair = Pair(self, kernel, tunnel)
        task = asyncio.ensure_future(pair.run())
        self._pairs[task] = pair
        self._idle.clear()
        task.add_done_callback(self._pair_done)

    def _pair_done(self, task) -> None:
        self._pairs.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("aiotcp.forward.error", side=self.side, error=repr(task.exception()))
        if not self._pairs:
            self._idle.set()

    # shutdown -----------------------------------------------------------
    def _stop_accepting(self) -> None:
        raise NotImplementedError

    async def shutdown(self, grace: float = 30.0) -> int:
        """Stop accepting, let the open connections finish for up to
        ``grace`` seconds, then reset the rest; close the endpoint.
        Returns how many connections had to be reset."""
        self._accepting = False
        self._stop_accepting()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except asyncio.TimeoutError:
            pass
        left = list(self._pairs)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
        self.endpoint.abort() if left else self.endpoint.close()
        try:
            await asyncio.wait_for(self.endpoint.wait_closed(), self.close_timeout)
        except asyncio.TimeoutError:
            self.endpoint.abort()
        return len(left)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.shutdown(0.0 if exc[0] is not None else self.close_timeout)


class ForwardServer(Forwarder):
    """aiotcp connections in, kernel TCP connections to the targets out."""

    side = "server"

    def __init__(self, endpoint, config, targets: dict, ssl=None, psk=None, connect_timeout: float = 10.0):
        super().__init__(endpoint, config, ssl, psk, connect_timeout)
        self.targets = dict(targets)
        self.servers = []

    @property
    def address(self):
        """The UDP address the server receives on."""
        return self.endpoint.local_address

    async def _start_listening(self) -> None:
        for port in self.targets:
            server = await self.endpoint.start_server(
                lambda r, w, port=port: self._accepted(r, w, port), tcp_port=port, limit=CHUNK)
            self.servers.append(server)

    def _stop_accepting(self) -> None:
        for server in self.servers:
            server.close()

    async def _accepted(self, reader, writer, port: int) -> None:
        self._counters["connections"] += 1
        if not self._accepting:
            _reset(writer)
            return
        tunnel = await self._authenticate((reader, writer), peer=writer.get_extra_info("peername"))
        if tunnel is None:
            return
        host, tport = self.targets[port]
        try:
            target = await asyncio.wait_for(asyncio.open_connection(host, tport, limit=CHUNK), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self._counters["refused"] += 1
            log.info("aiotcp.forward.target_failed", target=f"{host}:{tport}", why=repr(exc))
            _reset(tunnel[1])  # the client's kernel connection is reset, not left hanging
            return
        self._start(target, tunnel)


class ForwardClient(Forwarder):
    """Kernel TCP connections in, each an aiotcp connection over one endpoint."""

    side = "client"

    def __init__(self, endpoint, config, server: tuple, mappings: list, ssl=None, server_hostname=None,
                 psk=None, connect_timeout: float = 30.0):
        super().__init__(endpoint, config, ssl, psk, connect_timeout)
        self.server = server
        self.mappings = list(mappings)
        self.server_hostname = server_hostname
        self.listeners = []

    @property
    def addresses(self) -> list:
        """The kernel TCP addresses the client listens on, one per mapping."""
        return [listener.sockets[0].getsockname() for listener in self.listeners]

    async def _start_listening(self) -> None:
        for (host, port), tcp_port in self.mappings:
            listener = await asyncio.start_server(
                lambda r, w, tcp_port=tcp_port: self._accepted(r, w, tcp_port), host, port, limit=CHUNK)
            self.listeners.append(listener)

    def _stop_accepting(self) -> None:
        for listener in self.listeners:
            listener.close()

    async def _accepted(self, reader, writer, tcp_port: int) -> None:
        self._counters["connections"] += 1
        if not self._accepting:
            _reset(writer)
            return
        host, port = self.server
        try:
            tunnel = await self.endpoint.open_connection(
                host, port, tcp_port=tcp_port, limit=CHUNK, timeout=self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self._counters["refused"] += 1
            log.info("aiotcp.forward.tunnel_failed", server=f"{host}:{port}", tcp_port=tcp_port, why=repr(exc))
            _reset(writer)
            return
        tunnel = await self._authenticate(tunnel, writer, self.server_hostname, server=f"{host}:{port}")
        if tunnel is None:
            return
        self._start((reader, writer), tunnel)


def _warn_unauthenticated(side: str, ssl, psk) -> None:
    if ssl is None and psk is None:
        log.warning("aiotcp.forward.unauthenticated", side=side,
                    message="the tunnel is unauthenticated and unencrypted: anyone who reaches the server's UDP "
                            "port reaches its targets; use --tls or --psk-file")


async def serve_server(listen: tuple, targets: dict, *, config: Config | None = None, ssl=None,
                       psk: PresharedKey | None = None, sock=None, connect_timeout: float = 10.0,
                       reuse_port: bool = False) -> ForwardServer:
    """Receive aiotcp connections on the UDP address ``listen`` (or the
    bound UDP ``sock``) and forward each to a kernel TCP target:
    ``targets`` maps an aiotcp TCP port (None: the UDP port's number) to
    a ``(host, port)``.  A target
    that refuses or does not answer within ``connect_timeout`` resets the
    aiotcp connection.  ``reuse_port`` binds with SO_REUSEPORT, so that
    several processes share the port (``--workers``)."""
    _warn_unauthenticated("server", ssl, psk)
    if not targets:
        raise ValueError("a forward server needs at least one target")
    config = config or Config()
    endpoint = await create_endpoint(local_addr=None if sock is not None else listen, sock=sock, config=config,
                                     reuse_port=reuse_port or None)
    port = endpoint.local_address[1]
    targets = {port if tcp_port is None else tcp_port: target for tcp_port, target in targets.items()}
    forwarder = ForwardServer(endpoint, config, targets, ssl=ssl, psk=psk, connect_timeout=connect_timeout)
    try:
        await forwarder._start_listening()
    except BaseException:
        endpoint.abort()
        raise
    log.info("aiotcp.forward.listening", side="server", udp=endpoint.local_address,
             targets={port: f"{h}:{p}" for port, (h, p) in forwarder.targets.items()})
    return forwarder


async def serve_client(server: tuple, mappings: list, *, local_addr=("0.0.0.0", 0), config: Config | None = None,
                       ssl=None, server_hostname: str | None = None, psk: PresharedKey | None = None, sock=None,
                       connect_timeout: float = 30.0) -> ForwardClient:
    """Accept kernel TCP connections and carry each to the forward server
    at the UDP address ``server``: ``mappings`` is a list of
    ``((listen_host, listen_port), tcp_port)``, the kernel address to
    listen on and the server's aiotcp TCP port (its mapping) to reach.
    All of them share one endpoint: the UDP socket ``local_addr`` (or the
    bound ``sock``)."""
    _warn_unauthenticated("client", ssl, psk)
    if not mappings:
        raise ValueError("a forward client needs at least one mapping")
    config = config or Config()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    if sock is None and family == socket.AF_INET6 and local_addr == ("0.0.0.0", 0):
        local_addr = ("::", 0)
    endpoint = await create_endpoint(local_addr=None if sock is not None else local_addr, sock=sock, config=config)
    forwarder = ForwardClient(endpoint, config, server, mappings, ssl=ssl,
                              server_hostname=server_hostname or (server[0] if ssl is not None else None), psk=psk,
                              connect_timeout=connect_timeout)
    try:
        await forwarder._start_listening()
    except BaseException:
        endpoint.abort()
        for listener in forwarder.listeners:
            listener.close()
        raise
    log.info("aiotcp.forward.listening", side="client", udp=endpoint.local_address, server=f"{server[0]}:{server[1]}",
             listen=[f"{h}:{p}={t}" for (h, p), t in forwarder.mappings])
    return forwarder


# ---------------------------------------------------------- the command line

#: exit codes of ``python -m aiotcp forward``
EXIT_OK = 0            # stopped (SIGTERM, SIGINT) after every connection finished
EXIT_ERROR = 1         # an unexpected error
EXIT_USAGE = 2         # bad arguments or configuration file (argparse's own code)
EXIT_CANNOT_START = 3  # an address could not be bound or resolved, a key or certificate not read
EXIT_RESET = 4         # stopped, but connections still open after the grace period were reset


def hostport(text: str) -> tuple:
    """HOST:PORT, [IPv6]:PORT, or :PORT (every address)."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def add_arguments(parser) -> None:
    """The ``forward`` command's arguments (``server`` and ``client``)."""
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode in ("server", "client"):
        sub = modes.add_parser(mode, help=("accept aiotcp connections and connect each to a kernel TCP target"
                                           if mode == "server" else
                                           "accept kernel TCP connections and carry each over aiotcp"))
        sub.add_argument("--config", metavar="FILE", help="a TOML file whose keys are these options' names "
                                                          "(map: a list of strings); options given here win")
        if mode == "server":
            sub.add_argument("--listen", metavar="HOST:PORT", help="the UDP address to receive aiotcp on")
            sub.add_argument("--target", metavar="HOST:PORT",
                             help="the kernel TCP target of TCP port PORT of --listen (the default mapping)")
            sub.add_argument("--map", action="append", metavar="TCPPORT=HOST:PORT",
                             help="one more mapping: aiotcp TCP port TCPPORT to the target HOST:PORT (repeatable)")
            sub.add_argument("--require-client-cert", action="store_true", default=None,
                             help="with --tls: clients must present a certificate --ca verifies")
            sub.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                             help="for reaching a target (default 10)")
            sub.add_argument("--workers", type=int, default=None, metavar="N",
                             help="run N worker processes on the one UDP port (SO_REUSEPORT: the kernel keeps each "
                                  "peer's datagrams on one worker); default 1")
        else:
            sub.add_argument("--server", metavar="HOST:PORT", help="the forward server's UDP address")
            sub.add_argument("--listen", metavar="HOST:PORT",
                             help="a kernel TCP address to accept on, carried to the server's own UDP port number "
                                  "as TCP port (its default mapping)")
            sub.add_argument("--map", action="append", metavar="HOST:PORT=TCPPORT",
                             help="one more mapping: accept on HOST:PORT, carry to the server's TCP port TCPPORT "
                                  "(repeatable)")
            sub.add_argument("--tcp-port", type=int, metavar="PORT",
                             help="the server's TCP port --listen is carried to (default: the --server port, which "
                                  "is the server's own when nothing like a relay or a port forward is between)")
            sub.add_argument("--udp", metavar="HOST:PORT", help="the local UDP address (default: any, port 0)")
            sub.add_argument("--server-name", help="with --tls: the name the server's certificate must have "
                                                   "(default: the --server host)")
            sub.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                             help="for the aiotcp handshake (default 30)")
        sub.add_argument("--tls", action="store_true", default=None, help="run TLS inside each aiotcp connection")
        sub.add_argument("--cert", help="TLS: this side's certificate (PEM)")
        sub.add_argument("--key", help="TLS: this side's private key (PEM)")
        sub.add_argument("--ca", help="TLS: the CA file that verifies the other side")
        sub.add_argument("--psk-file", metavar="FILE", help="pre-shared key mode: the key (16 bytes or more) "
                                                            "is this file's contents")
        sub.add_argument("--congestion", choices=None, help="congestion control (default cubic)")
        sub.add_argument("--mss", type=int, help="the MSS to announce (default from --mtu)")
        sub.add_argument("--mtu", type=int, help="the path MTU to assume (default 1500)")
        sub.add_argument("--keepalive", type=float, metavar="SECONDS",
                         help="TCP keepalive of the aiotcp connections after this much idle time (default: off, "
                              "as Linux); finds a peer that vanished")
        sub.add_argument("--loop", choices=("uvloop", "asyncio"), help="event loop (default uvloop where installed)")
        sub.add_argument("--stats-interval", type=float, metavar="SECONDS",
                         help="log the counters this often (default 60; 0: only on SIGUSR1)")
        sub.add_argument("--grace", type=float, metavar="SECONDS",
                         help="on SIGTERM, how long open connections may finish before they are reset (default 30)")
        sub.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                         help="what this program logs to stderr (default info)")


DEFAULTS = {"connect_timeout": None, "stats_interval": 60.0, "grace": 30.0, "log_level": "info", "tls": False,
            "require_client_cert": False}


def settings(args) -> dict:
    """The command line over the --config file over the defaults."""
    values = dict(DEFAULTS)
    if args.config:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            raise ValueError("--config needs Python 3.11's tomllib") from None
        with open(args.config, "rb") as f:
            try:
                loaded = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{args.config}: {exc}") from None
        known = set(vars(args)) - {"command", "mode", "config"}
        unknown = set(key.replace("-", "_") for key in loaded) - known
        if unknown:
            raise ValueError(f"{args.config}: unknown keys {sorted(unknown)}")
        values.update({key.replace("-", "_"): value for key, value in loaded.items()})
    for key, value in vars(args).items():
        if value is not None and key not in ("command", "config"):
            values[key] = value
    if isinstance(values.get("map"), str):
        values["map"] = [values["map"]]
    return values


def config_from(values: dict) -> Config:
    changes = {}
    if values.get("congestion"):
        changes["congestion_control"] = values["congestion"]
    if values.get("mss"):
        changes["mss"] = int(values["mss"])
    if values.get("mtu"):
        changes["mtu"] = int(values["mtu"])
    if values.get("keepalive"):
        changes.update(keepalive=True, keepalive_idle=float(values["keepalive"]),
                       keepalive_interval=max(1.0, float(values["keepalive"]) / 4), keepalive_count=4)
    return Config().replace(**changes)


def server_mappings(values: dict) -> tuple:
    if not values.get("listen"):
        raise ValueError("forward server: --listen HOST:PORT is required")
    listen = hostport(values["listen"])
    targets = {}
    if values.get("target"):
        targets[None] = hostport(values["target"])  # TCP port: the UDP port's number
    for item in values.get("map") or ():
        port, sep, target = str(item).partition("=")
        if not sep or not port.isdigit():
            raise ValueError(f"--map {item!r}: expected TCPPORT=HOST:PORT")
        targets[int(port)] = hostport(target)
    if not targets:
        raise ValueError("forward server: give --target HOST:PORT or --map TCPPORT=HOST:PORT")
    return listen, targets


def client_mappings(values: dict) -> tuple:
    if not values.get("server"):
        raise ValueError("forward client: --server HOST:PORT is required")
    server = hostport(values["server"])
    mappings = []
    if values.get("listen"):
        mappings.append((hostport(values["listen"]), int(values.get("tcp_port") or server[1])))
    for item in values.get("map") or ():
        listen, sep, port = str(item).rpartition("=")
        if not sep or not port.isdigit():
            raise ValueError(f"--map {item!r}: expected HOST:PORT=TCPPORT")
        mappings.append((hostport(listen), int(port)))
    if not mappings:
        raise ValueError("forward client: give --listen HOST:PORT or --map HOST:PORT=TCPPORT")
    return server, mappings


def security_from(values: dict, server_side: bool) -> tuple:
    ssl = psk = None
    if values.get("tls"):
        ssl = tls_contexts(server_side=server_side, cert=values.get("cert"), key=values.get("key"),
                           ca=values.get("ca"), require_client_cert=bool(values.get("require_client_cert")))
    if values.get("psk_file"):
        if ssl is not None:
            raise ValueError("--tls and --psk-file: choose one")
        psk = PresharedKey.from_file(values["psk_file"])
    return ssl, psk


async def _serve(values: dict) -> int:
    import signal

    server_side = values["mode"] == "server"
    config = config_from(values)
    ssl, psk = security_from(values, server_side)
    timeout = {} if values.get("connect_timeout") is None else {"connect_timeout": float(values["connect_timeout"])}
    if server_side:
        listen, targets = server_mappings(values)
        forwarder = await serve_server(listen, targets, config=config, ssl=ssl, psk=psk,
                                       reuse_port=bool(values.get("reuse_port")), **timeout)
        worker = os.environ.get(WORKER_ENV)
        print(f"aiotcp forward server{'' if worker is None else ' worker ' + worker}: "
              f"udp {forwarder.address[0]}:{forwarder.address[1]} -> "
              + ", ".join(f"tcp port {p}: {h}:{t}" for p, (h, t) in forwarder.targets.items()), flush=True)
    else:
        server, mappings = client_mappings(values)
        udp = hostport(values["udp"]) if values.get("udp") else ("0.0.0.0", 0)
        forwarder = await serve_client(server, mappings, local_addr=udp, config=config, ssl=ssl,
                                       server_hostname=values.get("server_name"), psk=psk, **timeout)
        print("aiotcp forward client: " + ", ".join(
            f"{h}:{p} -> {server[0]}:{server[1]} tcp port {t}"
            for (h, p), (_, t) in zip(forwarder.addresses, forwarder.mappings)), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, forwarder.log_counters)
    interval = float(values["stats_interval"])

    async def report():
        while True:
            await asyncio.sleep(interval)
            forwarder.log_counters()

    reporter = asyncio.ensure_future(report()) if interval > 0 else None
    try:
        await stop.wait()
    finally:
        if reporter is not None:
            reporter.cancel()
        log.info("aiotcp.forward.stopping", side=forwarder.side, grace=float(values["grace"]),
                 active=len(forwarder._pairs))
        reset = await forwarder.shutdown(float(values["grace"]))
        counters = forwarder.log_counters()
        log.info("aiotcp.forward.stopped", side=forwarder.side, reset=reset, connections=counters["connections"])
    return EXIT_RESET if reset else EXIT_OK


#: set in a worker's environment (its number) by ``--workers``
WORKER_ENV = "AIOTCP_FORWARD_WORKER"


def supervise(workers: int, argv=None) -> int:
    """``--workers N``: run this command N times as worker processes that
    bind the one UDP port with SO_REUSEPORT, pass SIGTERM, SIGINT and
    SIGUSR1 on to them, and start again a worker that exits while the
    others run.  The kernel picks a worker for each datagram by a hash of
    its addresses and ports modulo the number of sockets on the port: a
    peer stays on its worker while the group keeps its size.  When a worker
    exits, its connections end (their segments reach another worker, which
    holds no such connection and answers with a reset), and the change of
    size moves some peers of the other workers too, which are reset the
    same way; new connections are not affected.  Returns the first nonzero
    exit code of a worker that was asked to stop, else 0."""
    import signal
    import subprocess
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "aiotcp", *argv]

    def start(number: int):
        return subprocess.Popen(command, env={**os.environ, WORKER_ENV: str(number)})

    procs = [start(number) for number in range(workers)]
    stopping = []

    def forward(sig, frame):
        if sig != signal.SIGUSR1:
            stopping.append(sig)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, forward)
    code = EXIT_OK
    while True:
        pid, status = os.wait()
        for number, proc in enumerate(procs):
            if proc.pid != pid:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            if stopping:
                code = code or max(proc.returncode, 0)
            elif proc.returncode == EXIT_CANNOT_START or proc.returncode == EXIT_USAGE:
                forward(signal.SIGTERM, None)  # cannot start: no worker can
                code = proc.returncode
            else:
                log.warning("aiotcp.forward.worker_exited", worker=number, code=proc.returncode)
                procs[number] = start(number)
        if all(proc.poll() is not None for proc in procs):
            return code


def main(args) -> int:
    """``python -m aiotcp forward server|client ...``: the exit code."""
    import logging
    import sys

    try:
        values = settings(args)
        if values["mode"] == "server":
            server_mappings(values)
        else:
            client_mappings(values)
    except (ValueError, OSError) as exc:
        print(f"aiotcp forward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=getattr(logging, str(values["log_level"]).upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    workers = int(values.get("workers") or 1)
    if values["mode"] == "server" and os.environ.get(WORKER_ENV) is None and workers != 1:
        if workers < 1:
            print("aiotcp forward: --workers must be 1 or more", file=sys.stderr)
            return EXIT_USAGE
        if hostport(values["listen"])[1] == 0:
            print("aiotcp forward: --workers needs a fixed --listen port (they all bind it)", file=sys.stderr)
            return EXIT_USAGE
        return supervise(workers)
    if os.environ.get(WORKER_ENV) is not None:
        values["reuse_port"] = True
    loop_name = values.get("loop")
    if loop_name is None:
        try:
            import uvloop  # noqa: F401
            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
    if loop_name == "uvloop":
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    try:
        return runner(_serve(values))
    except (OSError, ValueError, _ssl.SSLError) as exc:
        print(f"aiotcp forward: cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except KeyboardInterrupt:
        return EXIT_OK
