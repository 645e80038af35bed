"""aiotcp.create_endpoint: many connections and listeners over one UDP
socket, on loopback and both loops (the NAT tests are test_nat.py)."""
import asyncio
import errno
import socket

import pytest

import aiotcp
from aiotcp import Config

pytestmark = pytest.mark.asyncio
LOCAL = ("127.0.0.1", 0)


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def talk(reader, writer, message: bytes) -> bytes:
    writer.write(message)
    await writer.drain()
    return await reader.readexactly(len(message))


async def test_many_connections_and_a_server_share_one_socket():
    a = await aiotcp.create_endpoint(local_addr=LOCAL)
    b = await aiotcp.create_endpoint(local_addr=LOCAL)
    c = await aiotcp.create_endpoint(local_addr=LOCAL)
    await b.start_server(echo)
    await c.start_server(echo)
    await a.start_server(echo)  # a listens too, on the same socket
    host, b_port = b.local_address
    streams = [await a.open_connection(host, b_port) for _ in range(3)]
    to_c = await a.open_connection(host, c.local_address[1])
    from_b = await b.open_connection(host, a.local_address[1])  # b connects to a's server meanwhile
    for i, (reader, writer) in enumerate([*streams, to_c, from_b]):
        assert await talk(reader, writer, b"hello %d" % i) == b"hello %d" % i
    for _, writer in [*streams, to_c]:
        assert writer.get_extra_info("sockname") == a.local_address  # the one UDP socket
    ports = [w.get_extra_info("tcp_ports")[0] for _, w in streams]
    assert ports[0] == a.local_address[1] and len(set(ports)) == 3  # distinct towards one peer
    assert to_c[1].get_extra_info("tcp_ports")[0] == a.local_address[1]  # may share towards another
    assert len(a.udp.core.connections) == 5
    for endpoint in (a, b, c):
        endpoint.close()
    for endpoint in (a, b, c):
        await asyncio.wait_for(endpoint.wait_closed(), 10)
    assert a.udp.sock.fileno() == -1


async def test_tcp_ports_can_differ_from_the_udp_port():
    a = await aiotcp.create_endpoint(local_addr=LOCAL)
    b = await aiotcp.create_endpoint(local_addr=LOCAL)
    await b.start_server(echo, tcp_port=7)
    reader, writer = await a.open_connection(*b.local_address, tcp_port=7, local_tcp_port=9)
    assert writer.get_extra_info("tcp_ports") == (9, 7)
    assert await talk(reader, writer, b"ports") == b"ports"
    with pytest.raises(ConnectionRefusedError):  # nothing listens on TCP port 8: b's RST
        await a.open_connection(*b.local_address, tcp_port=8)
    a.abort()
    b.abort()


async def test_misuse_is_a_clear_error():
    a = await aiotcp.create_endpoint(local_addr=LOCAL)
    b = await aiotcp.create_endpoint(local_addr=LOCAL)
    await b.start_server(echo)
    with pytest.raises(OSError) as already:
        await b.start_server(echo)
    assert already.value.errno == errno.EADDRINUSE
    first = await a.open_connection(*b.local_address, local_tcp_port=5555)
    with pytest.raises(OSError) as same:  # same peer, same ports
        first = await a.open_connection(*b.local_address, local_tcp_port=5555)
    assert same.value.errno == errno.EADDRINUSE and "5555" in str(same.value)
    first[1].close()
    connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    connected.connect(b.local_address)
    with pytest.raises(ValueError, match="connected"):
        await aiotcp.create_endpoint(sock=connected)
    connected.close()
    stream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(ValueError):
        await aiotcp.create_endpoint(sock=stream)
    stream.close()
    a.close()
    with pytest.raises(RuntimeError, match="closed"):
        await a.open_connection(*b.local_address)
    with pytest.raises(RuntimeError, match="closed"):
        await a.start_server(echo)
    await a.wait_closed()
    b.abort()


async def test_close_is_graceful_and_abort_resets():
    a = await aiotcp.create_endpoint(local_addr=LOCAL)
    b = await aiotcp.create_endpoint(local_addr=LOCAL)
    received = asyncio.get_running_loop().create_future()

    async def sink(reader, writer):
        received.set_result(await reader.read())
        writer.close()

    await b.start_server(sink)
    _, writer = await a.open_connection(*b.local_address)
    payload = bytes(range(256)) * 8192  # 2 MiB, still in flight at close()
    writer.write(payload)
    a.close()  # graceful, as writer.close(): everything arrives, then the socket closes
    assert await asyncio.wait_for(received, 30) == payload
    await asyncio.wait_for(a.wait_closed(), 30)
    assert a.is_closing() and a.udp.closed

    outcome = asyncio.get_running_loop().create_future()

    async def reader_side(reader, writer):
        try:
            outcome.set_result(await reader.read())
        except ConnectionResetError as exc:
            outcome.set_result(exc)
        writer.close()

    d = await aiotcp.create_endpoint(local_addr=LOCAL)
    await d.start_server(reader_side)
    c = await aiotcp.create_endpoint(local_addr=LOCAL)
    _, writer_c = await c.open_connection(*d.local_address)
    writer_c.write(b"unfinished")
    pending = asyncio.ensure_future(c.open_connection("127.0.0.1", 9, punch=True))  # nobody there
    while not c.udp.pending_connects:  # the attempt has started (its name resolves first)
        assert not pending.done()
        await asyncio.sleep(0.001)
    c.abort()  # RSTs go out, the socket closes now
    assert c.udp.closed
    await c.wait_closed()
    assert isinstance(await asyncio.wait_for(outcome, 10), ConnectionResetError)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(pending, 10)
    b.abort()
    d.abort()


async def test_a_server_socket_given_with_sock():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(LOCAL)
    ep = await aiotcp.create_endpoint(sock=sock)
    assert ep.local_address == sock.getsockname()
    await ep.start_server(echo)
    reader, writer = await aiotcp.open_connection(*ep.local_address)  # an ordinary client
    assert await talk(reader, writer, b"sock=") == b"sock="
    writer.close()
    await writer.wait_closed()
    ep.close()
    await ep.wait_closed()


async def test_punching_towards_each_other_connects_both():
    """Both sides open towards each other at once (TCP's simultaneous
    open, the hole punch); each gets one connection to the other."""
    a = await aiotcp.create_endpoint(local_addr=LOCAL)
    b = await aiotcp.create_endpoint(local_addr=LOCAL)
    (ra, wa), (rb, wb) = await asyncio.gather(
        a.open_connection(*b.local_address, punch=True, timeout=10),
        b.open_connection(*a.local_address, punch=True, timeout=10))
    wa.write(b"from a")
    wb.write(b"from b")
    assert await rb.readexactly(6) == b"from a" and await ra.readexactly(6) == b"from b"
    a.close()
    b.close()
    await asyncio.gather(a.wait_closed(), b.wait_closed())


async def test_punching_alone_times_out_saying_nothing_came_back():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(LOCAL)  # reads nothing, answers nothing
    a = await aiotcp.create_endpoint(local_addr=LOCAL)
    with pytest.raises(TimeoutError, match="no segment from the peer ever arrived"):
        await a.open_connection(*silent.getsockname(), punch=True, timeout=1.5)
    assert not a.udp.core.connections  # the attempt is gone
    b = await aiotcp.create_endpoint(local_addr=LOCAL)  # an endpoint that is not punching
    with pytest.raises(TimeoutError, match="segments from the peer arrived"):
        await a.open_connection(*b.local_address, punch=True, timeout=1.5)  # b answers RSTs
    a.abort()
    b.abort()
    silent.close()


async def test_an_endpoint_keeps_working_after_its_connections_end():
    a = await aiotcp.create_endpoint(local_addr=LOCAL, config=Config(time_wait=0.5))
    b = await aiotcp.create_endpoint(local_addr=LOCAL)
    await b.start_server(echo)
    for i in range(5):
        reader, writer = await a.open_connection(*b.local_address)
        assert await talk(reader, writer, b"round %d" % i) == b"round %d" % i
        writer.close()
        await writer.wait_closed()
    assert not a.udp.closed
    a.close()
    b.close()
    await asyncio.gather(a.wait_closed(), b.wait_closed())


async def test_a_readable_socket_is_read_a_bounded_batch_a_turn_until_empty():
    """As the kernel's NAPI budget: a socket holding many datagrams is read
    a few at a time (two GRO runs, or 64 datagrams without GRO), the loop's
    other work (the readers of what came) running between, until it is
    empty (here all junk, which is dropped and counted)."""
    for gro, most in ((True, 2 * 2), (False, 64)):  # a GRO run holds two here at most
        endpoint = await aiotcp.create_endpoint(local_addr=LOCAL, config=Config(udp_gro=gro))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            io = endpoint.udp.io
            assert io.gro == gro
            before = io.datagrams_in
            for i in range(300):  # alternate sizes: a GRO run holds two at most
                sender.sendto(b"x" * (40 + i % 2), endpoint.local_address)
            counts = []
            for _ in range(300):  # one turn of the loop each
                await asyncio.sleep(0)
                counts.append(io.datagrams_in - before)
                if counts[-1] >= 300:
                    break
            steps = [b - a for a, b in zip([0, *counts], counts)]
            assert counts[-1] == 300, counts
            assert max(steps) <= most, steps
            assert len([step for step in steps if step]) >= 300 // most, steps
        finally:
            sender.close()
            endpoint.close()
            await endpoint.wait_closed()
