"""aiotcp as a drop-in for asyncio's TCP: what asyncio over kernel TCP does
with close(), wait_closed(), half-close, the socket, errors, keywords and
addresses, over real UDP sockets on both loops."""
import asyncio
import builtins
import errno
import gc
import hashlib
import os
import socket
import sys

import pytest

import aiotcp
from aiotcp import Config

pytestmark = pytest.mark.asyncio
HERE = os.path.dirname(os.path.abspath(__file__))


def port_of(server):
    return server.sockets[0].getsockname()[1]


async def until(condition, what: str, bound: float = 10.0):
    """Waits (polling the event loop) until condition() holds; fails after bound seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not condition():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.001)


def all_acknowledged(writer) -> bool:
    info = writer.get_extra_info("tcp_info")
    return info["send_buffered"] == 0 and info["snd_una"] == info["snd_nxt"]


async def hashing_server(results: asyncio.Queue, **kwargs):
    async def handle(reader, writer):
        digest, total = hashlib.sha256(), 0
        try:
            while chunk := await reader.read(1 << 16):
                digest.update(chunk)
                total += len(chunk)
            outcome = "eof"
        except ConnectionResetError:
            outcome = "reset"
        writer.close()
        await results.put((outcome, total, digest.hexdigest()))

    return await aiotcp.start_server(handle, "127.0.0.1", 0, **kwargs)


# ------------------------------------------------------------ 1. no data lost at close

@pytest.mark.parametrize("writer_loop", ["asyncio", "uvloop"])
async def test_a_writer_that_exits_after_wait_closed_loses_nothing(writer_loop):
    size = 8 << 20
    results: asyncio.Queue = asyncio.Queue()
    server = await hashing_server(results)
    async with server:
        for _ in range(3):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, os.path.join(HERE, "close_writer.py"), writer_loop, "127.0.0.1",
                str(port_of(server)), str(size), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()[-2000:]
            outcome, total, sha = await asyncio.wait_for(results.get(), 30)
            assert (outcome, total, sha) == ("eof", size, out.decode().split()[0])


async def test_a_loop_that_ends_with_data_unsent_resets_the_peer():
    # a reader that never reads: the writer's data cannot all go
    accepted: asyncio.Queue = asyncio.Queue()

    async def handle(reader, writer):
        writer.transport.pause_reading()
        await accepted.put(reader)

    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=Config(receive_buffer=64 * 1024))
    async with server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(HERE, "close_writer.py"), "asyncio", "127.0.0.1", str(port_of(server)),
            str(4 << 20), "nowait", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        reader = await asyncio.wait_for(accepted.get(), 10)
        reader._transport.resume_reading()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 10)  # not an orderly EOF, and no hang


async def test_wait_closed_waits_for_the_acknowledgment():
    results: asyncio.Queue = asyncio.Queue()
    server = await hashing_server(results)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"x" * (2 << 20))
        writer.close()
        assert writer.is_closing()
        await writer.wait_closed()
        info = writer.get_extra_info("tcp_info")
        assert info["state"] in ("FIN_WAIT_2", "TIME_WAIT", "CLOSED") and info["send_buffered"] == 0
        assert (await results.get())[:2] == ("eof", 2 << 20)


async def test_linger_bounds_the_wait_and_says_so():
    accepted = asyncio.Event()

    async def handle(reader, writer):
        writer.transport.pause_reading()  # never reads: the window closes
        accepted.set()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=Config(receive_buffer=16 * 1024))
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), config=Config(linger=0.5))
        await accepted.wait()
        writer.write(b"y" * (1 << 20))
        writer.close()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 10)
        server.abort_clients()


async def test_server_wait_closed_waits_for_its_connections():
    serving, release = asyncio.Event(), asyncio.Event()

    async def handle(reader, writer):
        serving.set()
        await release.wait()
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
    await serving.wait()
    server.close()
    waiting = asyncio.ensure_future(server.wait_closed())
    done, _ = await asyncio.wait([waiting], timeout=0.2)
    assert not done and not server.is_serving()  # a connection is still open
    release.set()
    assert await reader.read() == b""
    writer.close()
    await asyncio.wait_for(waiting, 10)


async def test_close_clients_and_abort_clients():
    """asyncio 3.12's Server methods: close_clients() closes each transport,
    abort_clients() aborts it, which over kernel TCP is a close that does
    not wait; either way the client reads an EOF (the handler reads on, so
    nothing is left unread to make it a RST) and wait_closed() returns."""
    for method in ("close_clients", "abort_clients"):
        serving = asyncio.Event()

        async def handle(reader, writer):
            assert await reader.readexactly(2) == b"hi"
            serving.set()
            await reader.read()

        server = await aiotcp.start_server(handle, "127.0.0.1", 0)
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"hi")
        await serving.wait()
        server.close()
        getattr(server, method)()
        assert await asyncio.wait_for(reader.read(), 5) == b"", method
        writer.close()
        await asyncio.wait_for(server.wait_closed(), 5)


# ------------------------------------------------------------ 2. RSTs the application sees

async def test_closing_with_unread_data_resets_the_peer():
    delivered, got = asyncio.Event(), asyncio.Event()

    async def handle(reader, writer):
        writer.transport.pause_reading()
        await delivered.wait()  # the data is in, unread
        writer.close()
        got.set()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"you will not read this")
        await until(lambda: all_acknowledged(writer), "the server acknowledges the data")
        delivered.set()
        await got.wait()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 5)
        writer.close()


async def test_writing_to_a_closed_peer_gets_a_reset():
    async def handle(reader, writer):
        await reader.readexactly(5)
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"hello")
        assert await reader.read() == b""  # its FIN
        with pytest.raises(ConnectionResetError):
            for _ in range(200):
                writer.write(b"z" * 10_000)
                await writer.drain()
                await asyncio.sleep(0.005)
        writer.close()


# ------------------------------------------------------------ 3. the transport

async def test_after_both_fins_the_transport_stays_open_until_closed():
    # what websockets does in its closing handshake
    async def handle(reader, writer):
        assert await reader.read() == b"bye"
        writer.write(b"ok")
        await writer.drain()
        writer.write_eof()
        writer.close()
        await writer.wait_closed()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"bye")
        writer.write_eof()
        # the server's FIN came after it read ours, so it acknowledges ours
        assert await reader.read() == b"ok"
        assert writer.get_extra_info("tcp_info")["state"] in ("TIME_WAIT", "CLOSED")
        assert not writer.is_closing()
        await writer.drain()  # no ConnectionResetError('Connection lost')
        writer.close()
        await writer.wait_closed()


async def test_the_socket_answers_like_a_tcp_socket():
    server = await aiotcp.start_server(lambda r, w: None, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        sock = writer.get_extra_info("socket")
        assert (sock.family, sock.type, sock.proto) == (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        assert sock.getpeername() == ("127.0.0.1", port_of(server))
        assert sock.getsockname() == writer.get_extra_info("udp_socket").getsockname()
        conn = writer.get_extra_info("connection")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # asyncssh does this with 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0 and not conn.config.nodelay
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 9000)
        config = conn.config
        assert (config.keepalive, config.keepalive_idle, config.keepalive_interval, config.keepalive_count,
                config.user_timeout) == (True, 30.0, 5.0, 4, 9.0)
        assert conn.keepalive_deadline is not None
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO)["state"] == "ESTABLISHED"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 1 << 18
        with pytest.raises(OSError) as raised:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        assert raised.value.errno == errno.ENOPROTOOPT
        with pytest.raises(OSError) as raised:
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert raised.value.errno == errno.ENOPROTOOPT
        writer.close()


async def test_a_protocol_callback_that_raises_is_a_fatal_error_as_in_asyncio():
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    lost = loop.create_future()

    class Failing(asyncio.Protocol):
        def data_received(self, data):
            raise ValueError("the application's own bug")

        def connection_lost(self, exc):
            lost.set_result(exc)

    server = await aiotcp.create_server(Failing, "127.0.0.1", 0)
    try:
        async with server:
            reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
            writer.write(b"trigger")
            exc = await asyncio.wait_for(lost, 5)
            assert isinstance(exc, ValueError)
            (context,) = reported
            assert isinstance(context["exception"], ValueError)
            assert context["message"] == "Fatal error: protocol.data_received() call failed."
            # the transport was aborted: a close, as asyncio's over kernel TCP
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
    finally:
        loop.set_exception_handler(None)


async def test_asyncio_keywords_are_accepted(tls_contexts):
    server_ctx, client_ctx = tls_contexts
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    server = await aiotcp.start_server(lambda r, w: w.close(), sock=udp, ssl=server_ctx, ssl_shutdown_timeout=5,
                                       start_serving=False)
    async with server:
        assert not server.is_serving()
        await server.start_serving()
        assert server.is_serving()
        reader, writer = await aiotcp.open_connection(
            "127.0.0.1", port_of(server), family=socket.AF_INET, proto=0, flags=0, ssl=client_ctx,
            server_hostname="localhost", ssl_shutdown_timeout=5, happy_eyeballs_delay=0.25, interleave=1)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), sock=client, ssl=client_ctx,
                                                      server_hostname="localhost")
        assert writer.get_extra_info("udp_socket") is client
        writer.close()
    with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
        await aiotcp.open_connection("127.0.0.1", 9, ssl_shutdown_timeout=5)
    with socket.socket() as tcp, pytest.raises(ValueError, match="A UDP Socket was expected"):
        await aiotcp.create_server(asyncio.Protocol, sock=tcp)


async def test_starttls_works_on_every_loop(tls_contexts):
    server_ctx, client_ctx = tls_contexts

    async def handle(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"go ahead\n")
        await writer.start_tls(server_ctx)
        writer.write(b"secret: " + await reader.readline())
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"go ahead\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").version().startswith("TLS")
        writer.write(b"42\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"secret: 42\n"
        writer.close()


async def test_aiotcp_start_tls_upgrades_a_transport(tls_contexts):
    server_ctx, client_ctx = tls_contexts

    async def handle(reader, writer):
        await writer.start_tls(server_ctx)
        writer.write(await reader.readline())
        await writer.drain()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await aiotcp.create_connection(lambda: protocol, "127.0.0.1", port_of(server))
        tls = await aiotcp.start_tls(transport, protocol, client_ctx, server_hostname="localhost")
        writer = asyncio.StreamWriter(tls, protocol, reader, loop)
        protocol._replace_writer(writer)
        writer.write(b"over tls\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"over tls\n"
        writer.close()
        with pytest.raises(TypeError):
            await aiotcp.start_tls(object(), protocol, client_ctx)


# ------------------------------------------------------------ 4. every address

async def test_every_resolved_address_is_tried_in_turn(monkeypatch):
    loop = asyncio.get_running_loop()
    server = await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = port_of(server)

    async def getaddrinfo(host, port, **kwargs):  # "localhost" as many hosts resolve it: ::1 first
        return [(socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    async with server:
        for kwargs in ({}, {"happy_eyeballs_delay": 0.25}):
            reader, writer = await aiotcp.open_connection("localhost", port, **kwargs)
            assert writer.get_extra_info("peername") == ("127.0.0.1", port)
            assert await reader.read() == b""
            writer.close()
    # nothing listens on either now: both refusals, combined as asyncio does
    with pytest.raises(OSError, match="Multiple exceptions") as raised:
        await aiotcp.open_connection("localhost", port)
    assert f"Connect call failed ('::1', {port}, 0, 0)" in str(raised.value)
    assert f"Connect call failed ('127.0.0.1', {port})" in str(raised.value)
    if sys.version_info < (3, 11):
        return  # no ExceptionGroup before 3.11
    with pytest.raises(builtins.ExceptionGroup) as raised:
        await aiotcp.open_connection("localhost", port, all_errors=True)
    assert [type(exc) for exc in raised.value.exceptions] == [ConnectionRefusedError] * 2


# ------------------------------------------------------------ 5. no descriptor left behind

def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("closes_first", ["client", "server"])
async def test_short_connections_leave_no_descriptor_behind(closes_first):
    async def handle(reader, writer):
        if closes_first == "server":
            writer.write(b"x")
            writer.close()
        else:
            await reader.read()
            writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        baseline = open_descriptors()
        for _ in range(1500):
            reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
            if closes_first == "server":
                await reader.read()
            writer.close()
            await writer.wait_closed()
        # the last teardown may still be on its way
        await until(lambda: gc.collect() >= 0 and open_descriptors() <= baseline,
                    f"back to {baseline} descriptors")


async def test_a_refused_connection_leaves_no_descriptor_behind():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    baseline = open_descriptors()
    for _ in range(50):
        with pytest.raises(ConnectionRefusedError):
            await aiotcp.open_connection("127.0.0.1", port)
    assert open_descriptors() <= baseline




def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", [None, "", ("127.0.0.1", "::1")])
async def test_a_server_listens_on_every_address_its_host_resolves_to(host):
    # asyncio's create_server: host None (or "") is every interface, IPv4 and
    # IPv6, and a sequence of hosts is all of theirs: a socket each, the IPv6
    # ones for IPv6 alone, each with its own port when the port is 0
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")

    async def echo(reader, writer):
        writer.write(await reader.read(100))
        writer.close()

    server = await aiotcp.start_server(echo, host, 0)
    async with server:
        families = sorted(sock.family for sock in server.sockets)
        assert families == [socket.AF_INET, socket.AF_INET6]
        v6 = next(sock for sock in server.sockets if sock.family == socket.AF_INET6)
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        for sock in server.sockets:
            loopback = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
            reader, writer = await aiotcp.open_connection(loopback, sock.getsockname()[1])
            writer.write(loopback.encode())
            assert await reader.read() == loopback.encode()
            writer.close()
            await writer.wait_closed()
    assert server.sockets == ()


async def test_an_address_in_use_is_named_as_asyncio_names_it():
    async with await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", 0) as server:
        port = port_of(server)
        with pytest.raises(OSError, match=rf"error while attempting to bind on address \('127.0.0.1', {port}\): "
                                          "address already in use") as caught:
            await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        assert caught.value.errno == errno.EADDRINUSE
