"""Autocork (Config.autocork, Linux's tcp_autocorking): what the tasks a
receive batch woke write in that turn of the loop behind data still
unacknowledged leaves at the batch's end, in as few segments as it fits,
carrying the batch's ACK; a write with nothing ahead of it leaves at once
when the batch woke no other connection: the peer is waiting for it (a
request, the reply to it).  Checked on the wire (every segment both sides
send) on both loops, against a real UDP socket pair."""

import asyncio

import pytest

import aiotcp
from aiotcp import Config
from aiotcp.tools.trace import Recorder

pytestmark = pytest.mark.asyncio


async def request_response(config: Config, reply_parts=(b"c",), requests=1):
    """One connection as the connection-rate benchmark makes it: open, one
    byte each way, close; the server writes its reply in parts, then closes
    at once.  With ``requests`` > 1, the client asks that many times and the
    server answers each earlier one with one byte first.  Returns the
    segments each side sent, as (flags, payload).

    The segments are counted, so nothing may be retransmitted: probes are
    off and the RTO is far beyond the test (a tail loss probe that a slow
    turn of the loop made spurious would add segments)."""
    config = config.replace(tail_loss_probe=False, rto_initial=60.0, rto_min=60.0)
    recorder = Recorder()

    async def handler(reader, writer):
        for _ in range(requests - 1):
            assert await reader.readexactly(1) == b"q"
            writer.write(b"r")
        assert await reader.readexactly(1) == b"q"
        for part in reply_parts:
            writer.write(part)
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handler, "127.0.0.1", 0, config=config, tracer=recorder)
    port = server.sockets[0].getsockname()[1]
    recorder.label(port, "server")
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port, config=config, tracer=recorder)
        for _ in range(requests - 1):
            writer.write(b"q")
            assert await reader.readexactly(1) == b"r"
        writer.write(b"q")
        assert await reader.read() == b"".join(reply_parts)
        writer.close()
        await writer.wait_closed()
    segments = {"client": [], "server": []}
    for _, side, kind, seg in recorder.entries:
        if kind == "segment":
            segments["server" if side == "server" else "client"].append((seg.flags_str, bytes(seg.payload)))
    return segments


def data_segments(segments):
    return [(flags, payload) for flags, payload in segments if payload]


async def test_a_first_reply_leaves_at_once_and_the_writes_after_it_wait_for_the_close():
    seen = await request_response(Config(), reply_parts=(b"a", b"b", b"c"))
    # the first write is what the client waits for: at once, alone; the two
    # after it, written while it is in flight, wait for the turn's end and
    # leave with the FIN the close added meanwhile
    assert data_segments(seen["server"]) == [("PA", b"a"), ("FPA", b"bc")], seen["server"]
    # the handshake's ACK goes alone, as Linux's with no write pending, and
    # the request, the client's first data, at once after it
    client = seen["client"]
    assert client[0][0] == "S" and client[1] == ("A", b"") and client[2] == ("PA", b"q"), client


async def test_a_later_reply_with_nothing_in_flight_leaves_at_once_too():
    seen = await request_response(Config(), reply_parts=(b"a", b"b", b"c"), requests=2)
    # the first reply ("r") at once; the second request acknowledged it, so
    # the second reply's first write has nothing ahead of it and goes at
    # once as well (a ping-pong's every message); the writes behind it and
    # the FIN: one segment at the turn's end
    assert data_segments(seen["server"]) == [("PA", b"r"), ("PA", b"a"), ("FPA", b"bc")], seen["server"]
    assert data_segments(seen["client"]) == [("PA", b"q"), ("PA", b"q")], seen["client"]


async def test_a_write_waits_behind_data_in_flight_or_when_the_batch_woke_other_connections():
    """A busy server's batch wakes many connections: their replies wait for
    the batch's end, even the first (the sends are gathered, not one system
    call each).  In a batch that woke one connection, a write waits only
    behind data still unacknowledged; once the peer's data acknowledges
    it, the next write goes at once."""
    accepted = asyncio.Queue()

    async def handler(reader, writer):
        await accepted.put((reader, writer))

    server = await aiotcp.start_server(handler, "127.0.0.1", 0)
    async with server:
        reader, client = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        server_reader, writer = await accepted.get()
        try:
            endpoint, conn = writer.transport.endpoint, writer.transport.get_extra_info("connection")
            sent = conn.segments_sent
            endpoint._batch_open, endpoint._woken = True, 2  # as a batch that delivered to two connections
            writer.write(b"x")  # the first write: waits all the same
            assert conn.segments_sent == sent and writer.transport._path.corked
            endpoint._end_batch()
            assert conn.segments_sent == sent + 1 and not writer.transport._path.corked
            endpoint._batch_open, endpoint._woken = True, 1  # woke this connection alone...
            writer.write(b"y")  # ... but "x" is in flight: this one waits behind it
            assert conn.segments_sent == sent + 1 and writer.transport._path.corked
            endpoint._end_batch()
            assert conn.segments_sent == sent + 2
            assert await reader.readexactly(2) == b"xy"
            client.write(b"z")  # acknowledges "xy"
            assert await server_reader.readexactly(1) == b"z"
            assert conn.send_buffered == 0
            endpoint._batch_open, endpoint._woken = True, 1
            writer.write(b"w")  # nothing ahead of it: at once
            assert conn.segments_sent == sent + 3 and not writer.transport._path.corked
            endpoint._end_batch()
            assert await reader.readexactly(1) == b"w"
        finally:  # a failed check must not leave the server waiting for its connection
            client.close()
            await client.wait_closed()
            writer.close()


async def test_without_autocork_each_write_and_the_handshake_ack_go_alone():
    seen = await request_response(Config(autocork=False), reply_parts=(b"a", b"b", b"c"))
    client, server = seen["client"], seen["server"]
    assert client[1] == ("A", b""), client  # the textbook third segment
    assert [payload for _, payload in server if payload] == [b"a", b"b", b"c"]
