"""Buffer autotuning: the receive buffer grows with what the reader takes
per round trip (Linux's dynamic right sizing), the send buffer with the
congestion window (tcp_sndbuf_expand), each up to its configured limit;
a size set by the user (SO_RCVBUF, SO_SNDBUF, or a limit of None) stays.

Transfers run between two sans-I/O endpoints in virtual time, over a
long path (100 ms RTT) where a fixed 64 KiB window is the limit, and
through real sockets for the socket options."""
from __future__ import annotations

import asyncio
import hashlib
import random
import socket

import pytest

import aiotcp
from aiotcp import Config
from aiotcp.core.endpoint import Endpoint
from aiotcp.core.events import DataReadable, Incoming
from aiotcp.tools.testing import BulkTransfer, Impairment, Network

from test_aio import port_of

KiB, MiB = 1 << 10, 1 << 20
SMALL = Config(receive_buffer=64 * KiB, send_buffer=64 * KiB, receive_buffer_max=4 * MiB, send_buffer_max=3 * MiB,
               nat_keepalive=None)
CLIENT, SERVER = ("10.9.0.1", 40000), ("10.9.0.2", 80)


def transfer(config: Config, seed: int, size: int = 8 * MiB):
    """Send ``size`` bytes over a lossless 100 ms path; the connections,
    the receive buffer's sizes and the virtual time the bytes took."""
    rng = random.Random(seed)
    net = Network(rng, Impairment(latency=0.05))
    net.add(CLIENT, Endpoint(config))
    net.add(SERVER, Endpoint(config))
    data = rng.randbytes(size)
    bt = BulkTransfer(net, CLIENT, SERVER, 80, data, b"", chunk=16 * MiB)
    sizes = []
    original = bt._on_server_event
    arrived = []

    def watch(source, event, now):  # the receive buffer each time it is read
        original(source, event, now)
        if bt.server_conn is not None:
            sizes.append((bt.server_conn.info()["receive_buffer"], bt.server_conn.rcv_wnd))
        if bt.received_len["server"] == size and not arrived:
            arrived.append(now)

    net.handlers[SERVER] = watch
    net.run(until=bt.done, max_time=600)
    assert bt.received["server"].hexdigest() == hashlib.sha256(data).hexdigest(), f"seed {seed}"
    return bt.client_conn, bt.server_conn, sizes, arrived[0]


def test_buffers_grow_to_the_path_and_no_further():
    seed = 2601
    print("seed", seed)
    client, server, sizes, took = transfer(SMALL, seed)
    fixed_client, _, fixed_sizes, fixed_took = transfer(
        SMALL.replace(receive_buffer_max=None, send_buffer_max=None), seed)
    # fixed: 64 KiB per 100 ms round trip is the limit (8 MiB: about 13 s)
    assert {size for size, _ in fixed_sizes} == {64 * KiB}
    assert fixed_took > 12
    # autotuned: the window grows past what one round trip carries at
    # 64 KiB, the transfer takes a fraction of the time, and neither buffer
    # passes its limit, nor the window the receive buffer's
    grown = max(size for size, _ in sizes)
    assert 1 * MiB < grown <= 4 * MiB
    assert all(window <= size for size, window in sizes)
    assert sizes == sorted(sizes, key=lambda s: s[0])  # it never shrinks
    assert took < fixed_took / 4, (took, fixed_took)
    assert 64 * KiB < client.send_buffer <= 3 * MiB
    assert fixed_client.send_buffer == 64 * KiB
    # the receiver's round trip, from the echo of its timestamps: the
    # path's 100 ms and what queueing the sender adds (none here)
    assert 0.1 <= server.info()["rcv_rtt"] < 0.15


def test_a_reader_that_does_not_read_never_grows_its_buffer():
    seed = 2602
    print("seed", seed)
    rng = random.Random(seed)
    net = Network(rng, Impairment(latency=0.005))
    net.add(CLIENT, Endpoint(SMALL))
    net.add(SERVER, Endpoint(SMALL))
    bt = BulkTransfer(net, CLIENT, SERVER, 80, rng.randbytes(4 * MiB), b"", chunk=4 * MiB)
    reads = []

    def lazy(source, event, now):  # accepts; reads one segment's worth, once
        if isinstance(event, Incoming):
            bt.server_conn = source.accept()
        elif isinstance(event, DataReadable) and not reads:
            reads.append(len(source.read(1000)))

    net.handlers[SERVER] = lazy
    net.run(max_time=5)
    server = bt.server_conn
    assert reads == [1000]
    assert server.info()["receive_buffer"] == 64 * KiB
    assert 64 * KiB - server.mss < server.read_buffered <= 64 * KiB
    assert server.info()["rcv_rtt"] > 0  # measured; only the reading was missing


@pytest.mark.asyncio
async def test_socket_options_set_a_fixed_size_and_read_the_size_now():
    payload = random.Random(2603).randbytes(16 * MiB)
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        got = await reader.read()
        done.set_result((hashlib.sha256(got).digest(), writer.get_extra_info("tcp_info")["receive_buffer"]))
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=SMALL)
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port_of(server), config=SMALL)
        sock = writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 64 * KiB
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        digest, receive_buffer = await done
        assert digest == hashlib.sha256(payload).digest()
        assert 64 * KiB < receive_buffer <= 4 * MiB  # grew on loopback too
        conn = writer.get_extra_info("connection")
        grown = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert grown == conn.send_buffer and 64 * KiB < grown <= 3 * MiB
        # another option leaves the grown size alone; SO_SNDBUF fixes it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert conn.send_buffer == grown
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 200 * KiB)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 200 * KiB
        assert conn.config.send_buffer_max is None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 100 * KiB)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 100 * KiB
        assert conn.config.receive_buffer_max is None
        await reader.read()
        writer.close()
        await writer.wait_closed()
