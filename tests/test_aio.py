"""The asyncio API over real UDP sockets on loopback, on the default loop and
on uvloop."""
import asyncio
import errno
import hashlib
import os
import socket
import struct

import pytest
import uvloop

import aiotcp
from aiotcp import Config
from aiotcp.core.connection import seq_diff

pytestmark = pytest.mark.asyncio


async def echo_server(**kwargs):
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await aiotcp.start_server(handle, "127.0.0.1", 0, **kwargs)


def port_of(server):
    return server.sockets[0].getsockname()[1]


async def test_every_api_test_runs_on_both_loops(request):
    # conftest.py's pytest_asyncio_loop_factories runs each test on both
    loop = asyncio.get_running_loop()
    kind = "uvloop" if "uvloop" in request.node.name else "asyncio"
    assert type(loop).__module__.split(".")[0] == kind


async def test_echo_roundtrip_and_graceful_close():
    server = await echo_server()
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        assert isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
        writer.write(b"hello aiotcp\n")
        assert await reader.readline() == b"hello aiotcp\n"
        writer.write_eof()
        assert await reader.read() == b""  # server closes after our FIN
        info = writer.get_extra_info("tcp_info")
        assert info["bytes_sent"] == 13 and info["rtt"] is not None
        assert writer.get_extra_info("peername") == ("127.0.0.1", port_of(server))
        tcp_socket = writer.get_extra_info("socket")
        assert tcp_socket.type == socket.SOCK_STREAM and tcp_socket.getpeername() == ("127.0.0.1", port_of(server))
        assert isinstance(writer.get_extra_info("udp_socket"), socket.socket)
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("offload", [True, False], ids=["gso-gro", "no-offload"])
async def test_bulk_transfer_both_ways_is_byte_exact(offload):
    data = os.urandom(3 << 20)
    config = Config(udp_gso=offload, udp_gro=offload)
    server = await echo_server(config=config)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), config=config)

        async def send():
            for i in range(0, len(data), 100_000):
                writer.write(data[i:i + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = await reader.read(-1)
        await sender
        assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
        io = writer.transport.endpoint.io
        if offload:  # segments left in runs and arrived in runs
            assert io.gso and io.gro
            assert io.writes < io.datagrams_out / 4 and io.reads < io.datagrams_in / 4
        else:
            assert io.writes == io.datagrams_out and io.reads == io.datagrams_in
            # without GRO, the receiver of the bulk read it in batches (recvmmsg)
            received_by = server.endpoint.io
            assert received_by.calls < received_by.reads / 2
        writer.close()


async def test_connection_refused_is_immediate_when_nothing_is_bound():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(aiotcp.open_connection("127.0.0.1", port), 2.0)


async def test_connection_refused_by_rst_when_no_listener_on_the_tcp_port():
    # a UDP socket exists, but its endpoint listens on another TCP port
    server = await echo_server()
    async with server:
        core = server.endpoint.core
        core.listeners.pop(port_of(server)).closed = True
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(aiotcp.open_connection("127.0.0.1", port_of(server)), 2.0)
        assert core.stats["rst_sent"] == 1


async def test_syn_timeout_raises_timeout_error():
    # a plain UDP socket that swallows everything: SYNs go unanswered
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        config = Config(syn_retries=2, rto_initial=0.05, rto_min=0.01)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(aiotcp.open_connection("127.0.0.1", sink.getsockname()[1], config=config), 5)
    finally:
        sink.close()


async def _peer_after_abort(stack, linger_zero: bool, close: bool = False):
    """What the client reads after the server wrote 100,000 bytes and then
    aborted (or closed) its connection (``linger_zero``: with SO_LINGER 0
    set first); the server's wait_closed() returns either way."""
    mod = asyncio if stack == "kernel" else aiotcp
    lost = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        if linger_zero:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                       struct.pack("ii", 1, 0))
        writer.write(b"x" * 100_000)
        writer.close() if close else writer.transport.abort()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
        lost.set_result(writer.transport.is_closing())

    server = await mod.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await mod.open_connection("127.0.0.1", port_of(server))
        try:
            got = len(await asyncio.wait_for(reader.read(), 10))
        except ConnectionResetError as exc:
            got = type(exc).__name__
        assert await asyncio.wait_for(lost, 10)
        writer.close()
    return got


async def test_abort_is_a_kernel_sockets_close_the_peer_reads_what_was_written():
    """asyncio's abort() over kernel TCP closes the socket at once and the
    kernel still sends what it holds, then a FIN: the same here (what a
    user-space TCP holds is all of it)."""
    assert await _peer_after_abort("kernel", False) == await _peer_after_abort("aiotcp", False) == 100_000


@pytest.mark.parametrize("close", [False, True], ids=["abort", "close"])
async def test_so_linger_zero_makes_close_and_abort_a_reset(close):
    assert await _peer_after_abort("kernel", True, close) == "ConnectionResetError"
    assert await _peer_after_abort("aiotcp", True, close) == "ConnectionResetError"


async def _after_connection_made_raises(stack, side: str):
    """What happens when ``side``'s protocol raises in connection_made():
    (what create_connection did, the echo the client got, the messages
    the loop's exception handler received)."""
    loop = asyncio.get_running_loop()
    handled: list = []
    loop.set_exception_handler(lambda loop, context: handled.append(context))
    echoed = loop.create_future()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            if side == "server":
                raise ValueError("in connection_made")

        def data_received(self, data):
            self.transport.write(data)

    class Client(asyncio.Protocol):
        def connection_made(self, transport):
            if side == "client":
                raise ValueError("in connection_made")

        def data_received(self, data):
            echoed.set_result(data)

    mod = loop if stack == "kernel" else aiotcp
    server = await mod.create_server(Echo, "127.0.0.1", 0)
    try:
        transport, _ = await mod.create_connection(Client, "127.0.0.1", port_of(server))
        transport.write(b"ping")
        try:
            got = await asyncio.wait_for(echoed, 10 if stack == "aiotcp" else 1)
        except TimeoutError:
            got = None  # uvloop's kernel transport never starts reading then
        transport.close()
    finally:
        server.close()
        loop.set_exception_handler(None)
    return ("returned", got, [(type(c["exception"]).__name__, c["message"].startswith("Exception in callback"))
                              for c in handled])


@pytest.mark.parametrize("side", ["client", "server"])
async def test_an_exception_in_connection_made_is_the_loops_and_the_connection_stays(side):
    """As asyncio's transports call connection_made() from a callback of
    the loop: what it raises reaches the loop's exception handler, and the
    connection goes on (create_connection returns it) and carries data, as
    over kernel TCP with asyncio's own loop (uvloop's kernel transport then
    never starts reading, which nobody relies on)."""
    kernel = await _after_connection_made_raises("kernel", side)
    assert kernel[0] == "returned" and kernel[2] == [("ValueError", True)]
    assert await _after_connection_made_raises("aiotcp", side) == ("returned", b"ping", kernel[2])
    if not isinstance(asyncio.get_running_loop(), uvloop.Loop):
        assert kernel[1] == b"ping"


async def test_reset_sends_a_rst_without_the_option():
    got = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        try:
            await reader.read()
        except ConnectionResetError as exc:
            got.set_result(exc)
        else:
            got.set_result(None)
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"x")
        await writer.drain()
        writer.transport.reset()
        assert isinstance(await asyncio.wait_for(got, 5), ConnectionResetError)


async def test_half_close_peer_keeps_sending_after_our_fin():
    async def handle(reader, writer):
        request = await reader.read()  # until our FIN
        writer.write(b"got " + request)
        writer.write(b" and more")
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"question")
        assert writer.can_write_eof()
        writer.write_eof()
        assert await reader.read() == b"got question and more"
        with pytest.raises(RuntimeError):
            writer.write(b"after eof")
        writer.close()


async def test_readexactly_after_fin_raises_incomplete_read():
    async def handle(reader, writer):
        writer.write(b"abc")
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        assert info.value.partial == b"abc"
        writer.close()


async def test_drain_applies_backpressure_and_paused_reader_closes_the_window():
    config = Config(receive_buffer=64 * 1024, send_buffer=64 * 1024, receive_buffer_max=None, send_buffer_max=None)
    release = asyncio.Event()
    stats = {}

    async def handle(reader, writer):
        stats["transport"] = writer.transport
        writer.transport.pause_reading()
        await release.wait()
        writer.transport.resume_reading()
        stats["total"] = len(await reader.read())
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=config)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), config=config)
        writer.transport.set_write_buffer_limits(high=32 * 1024)
        chunk = b"z" * 16 * 1024
        written = 0
        for _ in range(64):  # 1 MiB: far more than window + buffers
            writer.write(chunk)
            written += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.3)
            except asyncio.TimeoutError:
                break
        else:
            pytest.fail("drain() never blocked although the reader is paused")
        conn = writer.get_extra_info("connection")
        # the window closed end to end: the paused reader's buffer is full to
        # within an MSS, and what the sender may still send is less than one
        # (silly window avoidance keeps it; a window of 0 is being probed)
        read_buffered = stats["transport"].get_extra_info("tcp_info")["read_buffered"]
        assert config.receive_buffer - conn.mss < read_buffered <= config.receive_buffer
        usable = conn.snd_wnd - seq_diff(conn.snd_nxt, conn.snd_una)
        assert usable < conn.mss or conn.persist_deadline is not None
        assert writer.transport.get_write_buffer_size() > 32 * 1024
        release.set()
        writer.write_eof()
        await reader.read()
        writer.close()
        await writer.wait_closed()
        assert stats["total"] == written


async def test_server_api_like_asyncio_server():
    server = await echo_server()
    assert server.is_serving()
    assert server.get_loop() is asyncio.get_running_loop()
    task = asyncio.ensure_future(server.serve_forever())
    await asyncio.sleep(0)
    server.close()
    await server.wait_closed()
    assert not server.is_serving()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_create_connection_with_plain_protocol():
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    class Client(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.writelines([b"ping", b"\n"])

        def data_received(self, data):
            done.set_result(data)
            self.transport.close()

    server = await echo_server()
    async with server:
        transport, protocol = await aiotcp.create_connection(Client, "127.0.0.1", port_of(server))
        assert isinstance(protocol, Client)
        assert await asyncio.wait_for(done, 5) == b"ping\n"
        assert transport.is_closing()
        with pytest.raises(TypeError):
            transport.write("text is not bytes")


async def test_ipv6_loopback():
    server = await aiotcp.start_server(lambda r, w: w.close(), "::1", 0)
    async with server:
        reader, writer = await aiotcp.open_connection("::1", port_of(server))
        assert await reader.read() == b""
        writer.close()


async def test_tls_over_aiotcp(tls_contexts):
    server_ctx, client_ctx = tls_contexts
    server = await echo_server(ssl=server_ctx)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), ssl=client_ctx,
                                                      server_hostname="localhost")
        writer.write(b"secret\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"secret\n"
        assert writer.get_extra_info("ssl_object").version().startswith("TLS")
        writer.close()



async def test_a_reply_written_at_once_carries_the_ack_two_segments_owe():
    """Two segments in one receive batch owe an ACK (every second segment),
    and reading them opens the window by more than an MSS.  The protocols
    see the data before the batch's ACKs go, and the ACKs wait for the loop
    to run what the data woke: the stream handler's reply carries the ACK,
    with the opened window, and no bare ACK goes out (there were two per
    message: the batch's ACK, then a window update).

    Neither side may retransmit here: a tail loss probe that a slow turn of
    the loop made spurious brings a duplicate, whose receiver then ACKs
    every segment at once (quick ACK mode, as Linux's tcp_send_dupack), so
    probes are off and the RTO is far beyond the test.  The checks come
    after both sides closed: a failed one must fail, not leave the server's
    wait_closed() waiting for a client that never closes."""
    from aiotcp._fast import ACK
    from aiotcp.tools.trace import Recorder
    size = 1452  # more than one MSS (1440 with timestamps): two segments
    recorder = Recorder()
    config = Config(tail_loss_probe=False, rto_initial=60.0, rto_min=60.0)

    async def echo(reader, writer):
        try:
            while True:
                writer.write(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            writer.close()

    echoed = []
    server = await aiotcp.start_server(echo, "127.0.0.1", 0, tracer=recorder, config=config)
    async with server:
        recorder.label(port_of(server), "server")
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), config=config)
        try:
            writer.write(b"w" * size)
            await reader.readexactly(size)
            before = len(recorder.entries)
            for i in range(20):
                writer.write(bytes([i]) * size)
                echoed.append(await reader.readexactly(size) == bytes([i]) * size)
            after = len(recorder.entries)
        finally:
            writer.close()
    assert echoed == [True] * 20
    segments = [e[3] for e in recorder.entries[before:after] if e[2] == "segment" and e[1] == "server"]
    assert sum(len(s.payload) for s in segments) == 20 * size
    bare_acks = [s for s in segments if s.flags == ACK and not len(s.payload)]
    assert bare_acks == []


async def test_a_client_keeps_udp_gro_switched_on_with_one_socket_per_family():
    """Each connection's socket asks for GRO; the process keeps one more
    socket with GRO on, so the kernel never switches its GRO path off and
    on again per connection (gro_anchor)."""
    from aiotcp.aio.transport import UDP_GRO, gro_anchor

    async def handler(reader, writer):
        writer.write(await reader.read(1))
        writer.close()

    server = await aiotcp.start_server(handler, "127.0.0.1", 0)
    async with server:
        for _ in range(2):
            reader, writer = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            writer.write(b"x")
            assert await reader.read() == b"x"
            writer.close()
            await writer.wait_closed()
    anchor = gro_anchor(socket.AF_INET)
    assert anchor is gro_anchor(socket.AF_INET)  # one for the process
    assert anchor.fileno() >= 0 and anchor.getsockopt(socket.IPPROTO_UDP, UDP_GRO) == 1


async def test_closed_connections_are_freed_without_the_garbage_collector():
    """A connection closed on both sides leaves no reference cycle among
    aiotcp's objects (the core connection and its timer, the transport and
    its path, the client's UDP endpoint): they are freed as their last
    reference goes, as asyncio's own transports are, and the collector
    never has to run for them."""
    import gc

    served = asyncio.Queue()

    async def handler(reader, writer):
        writer.write(await reader.read(1))
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        served.put_nowait(True)

    server = await aiotcp.start_server(handler, "127.0.0.1", 0)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds stays in gc.garbage to look at
    try:
        async with server:
            for _ in range(5):
                reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
                endpoint_closed = asyncio.get_running_loop().create_future()
                writer.transport.endpoint.close_callbacks.append(lambda f=endpoint_closed: f.set_result(None))
                writer.write(b"x")
                assert await reader.readexactly(1) == b"x"
                writer.close()  # the server reads its EOF, then closes
                await writer.wait_closed()
                await asyncio.wait_for(endpoint_closed, 10)
                assert await asyncio.wait_for(served.get(), 10)  # the server's side is over too
            del reader, writer
            gc.collect()
            cyclic = [type(obj).__module__ + "." + type(obj).__qualname__ for obj in gc.garbage
                      if type(obj).__module__.startswith("aiotcp")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cyclic == []


async def _bare_udp_client(port: int):
    """A client that is a bare UDP socket, from TCP port 4000 with ISN 999:
    it sends the SYN to the aiotcp server on UDP port ``port`` of 127.0.0.1
    and returns (the socket, the server's SYN-ACK); the handshake's last
    ACK is the caller's to send."""
    from aiotcp import _fast

    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.settimeout(5)
    raw.sendto(_fast.encode(4000, port, 1000, 0, _fast.SYN, 65535, b"", 1452), ("127.0.0.1", port))
    return raw, _fast.decode(await asyncio.get_running_loop().run_in_executor(None, raw.recv, 2048))


async def test_a_server_in_last_ack_whose_client_socket_went_ends_on_the_icmp():
    """A client acknowledges everything, sends its FIN and closes its UDP
    socket without acknowledging the server's FIN (as when an aiotcp
    client's last ACK is lost: its TIME_WAIT keeps no socket).  The
    server's FIN, sent again, draws an ICMP port unreachable, which ends
    LAST_ACK: wait_closed() returns, not after Config.linger (60 s)."""
    from aiotcp import _fast

    closed = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        closed.set_result(writer.transport.endpoint.core.stats["last_ack_peer_gone"])

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        addr = ("127.0.0.1", port_of(server))
        raw, synack = await _bare_udp_client(addr[1])
        loop = asyncio.get_running_loop()

        async def segment():
            return _fast.decode(await loop.run_in_executor(None, raw.recv, 2048))

        ours = (synack.seq + 1) & 0xFFFFFFFF
        raw.sendto(_fast.encode(4000, addr[1], 1001, ours, _fast.ACK | _fast.FIN, 65535), addr)
        while not (await segment()).flags & _fast.FIN:
            pass  # the ACK of our FIN, then the server's FIN
        raw.close()  # gone without acknowledging it
        assert await asyncio.wait_for(closed, 20) == 1


async def test_a_reply_and_fin_whose_last_ack_was_lost_end_on_the_icmp():
    """The common case of the one above: the server's reply and its close
    leave as one segment, and the aiotcp client's one ACK of both is lost
    (the path between went: here the relay closes while the ACK is in its
    delay line) after the client entered TIME_WAIT, which keeps no
    socket.  The server's reply and FIN, sent again, draw the ICMP port
    unreachable that ends LAST_ACK: the handler's wait_closed() returns,
    not after Config.linger (60 s)."""
    from aiotcp.tools.relay import Impairment, Relay

    closed = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        writer.write(await reader.read())
        writer.close()
        await writer.wait_closed()
        closed.set_result(writer.transport.endpoint.core.stats["last_ack_peer_gone"])

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    delay = Impairment(delay=0.05)
    relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", port_of(server)), up=delay, down=delay).start()
    try:
        reader, writer = await aiotcp.open_connection(*relay.address, tcp_port=port_of(server))
        writer.write(b"request")
        writer.write_eof()
        assert await reader.read() == b"request"
        writer.close()
        await writer.wait_closed()
        assert writer.get_extra_info("tcp_info")["state"] == "TIME_WAIT"
    finally:
        relay.close()  # the last ACK, 50 ms from the server, goes with it
    async with server:
        assert await asyncio.wait_for(closed, 20) == 1


async def test_an_icmp_for_a_connection_already_gone_is_counted_not_raised():
    """The server resets a connection whose client socket has gone: the
    connection is removed at once, and the ICMP port unreachable its RST
    draws names ports no connection has any more.  On the server's
    ephemeral port (32768 and up) the search by ports overflowed a C int
    and the error went up into the event loop; it is counted and dropped."""
    from aiotcp import _fast

    loop = asyncio.get_running_loop()
    errors: list = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    accepted = loop.create_future()

    async def handle(reader, writer):
        accepted.set_result(writer)
        await reader.read()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    async with server:
        addr = ("127.0.0.1", port_of(server))
        assert addr[1] >= 32768  # an ephemeral port
        raw, synack = await _bare_udp_client(addr[1])
        raw.sendto(_fast.encode(4000, addr[1], 1001, (synack.seq + 1) & 0xFFFFFFFF, _fast.ACK, 65535), addr)
        writer = await asyncio.wait_for(accepted, 10)
        stats = writer.transport.endpoint.core.stats
        raw.close()
        writer.transport.reset()  # a RST to the closed port: the ICMP comes back
        deadline = loop.time() + 10
        while not stats["icmp_port_unreachable"] and loop.time() < deadline:
            await asyncio.sleep(0.01)  # the error queue is read on the socket's next wakeup
        assert stats["icmp_port_unreachable"] >= 1
    assert errors == []


async def test_a_server_whose_client_socket_went_times_out_with_the_refusal():
    """The client's socket went without a word: the server's segments draw
    ICMP port unreachables, soft errors that do not end the connection (a
    NAT's rebinding sends them too), and its retransmissions then run out.
    As Linux's tcp_write_err, the timeout reports the soft error: the
    handler's read raises ConnectionRefusedError, not TimeoutError."""
    from aiotcp import _fast

    loop = asyncio.get_running_loop()
    accepted = loop.create_future()
    failed = loop.create_future()

    async def handle(reader, writer):
        accepted.set_result(writer)
        try:
            await reader.read()
        except OSError as exc:
            failed.set_result(exc)

    config = Config(retries=2, rto_initial=0.05, rto_min=0.05, nat_keepalive=None)
    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=config)
    async with server:
        addr = ("127.0.0.1", port_of(server))
        raw, synack = await _bare_udp_client(addr[1])
        raw.sendto(_fast.encode(4000, addr[1], 1001, (synack.seq + 1) & 0xFFFFFFFF, _fast.ACK, 65535), addr)
        writer = await asyncio.wait_for(accepted, 10)
        raw.close()
        writer.write(b"to nobody")
        exc = await asyncio.wait_for(failed, 30)
        assert isinstance(exc, ConnectionRefusedError) and exc.errno == errno.ECONNREFUSED
        assert writer.transport.endpoint.core.stats["icmp_port_unreachable"] >= 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the forced buffer sizes need CAP_NET_ADMIN")
async def test_the_udp_socket_gets_room_for_its_windows_beyond_rmem_max():
    """The socket asks for twice the largest receive window and send
    buffer; as root it gets them past net.core.rmem_max / wmem_max (the
    forced options), so that the connections of one server socket do not
    overflow its queue together.  (Linux reports twice what was set.)"""
    config = Config()
    endpoint = await aiotcp.create_endpoint(("127.0.0.1", 0), config=config)
    try:
        sock = endpoint.udp.sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * 2 * config.receive_buffer_limit
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 2 * 2 * config.send_buffer
    finally:
        endpoint.close()


async def test_a_clients_socket_is_watched_and_given_room_once_the_syn_is_out():
    """The registration after the SYN happens: the connection works, and its
    socket gets its windows' room as a server's does."""
    server = await echo_server()
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server))
        writer.write(b"room")
        assert await reader.readexactly(4) == b"room"
        sock = writer.get_extra_info("udp_socket")
        config = Config()
        if os.geteuid() == 0:  # the forced sizes (see the test above)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * 2 * config.receive_buffer_limit
        assert writer.transport.endpoint._watch_read is not None
        writer.close()
        await writer.wait_closed()
