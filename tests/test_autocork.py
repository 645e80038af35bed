"""Autocork (Config.autocork, Linux's tcp_autocorking): what the tasks a
receive batch woke write in that turn of the loop leaves at the batch's
end, in as few segments as it fits, carrying the batch's ACK.  Checked on the wire
(every segment both sides send) on both loops, against a real UDP socket
pair."""

import pytest

import aiotcp
from aiotcp import Config
from aiotcp.tools.trace import Recorder

pytestmark = pytest.mark.asyncio


async def request_response(config: Config, reply_parts=(b"c",)):
    """One connection as the connection-rate benchmark makes it: open, one
    byte each way, close; the server writes its reply in parts, then closes
    at once.  Returns the segments each side sent, as (flags, payload).

    The segments are counted, so nothing may be retransmitted: probes are
    off and the RTO is far beyond the test (a tail loss probe that a slow
    turn of the loop made spurious would add segments)."""
    config = config.replace(tail_loss_probe=False, rto_initial=60.0, rto_min=60.0)
    recorder = Recorder()

    async def handler(reader, writer):
        assert await reader.read(1) == b"q"
        for part in reply_parts:
            writer.write(part)
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handler, "127.0.0.1", 0, config=config, tracer=recorder)
    port = server.sockets[0].getsockname()[1]
    recorder.label(port, "server")
    async with server:
        reader, writer = await aiotcp.open_connection("127.0.0.1", port, config=config, tracer=recorder)
        writer.write(b"q")
        assert await reader.read() == b"".join(reply_parts)
        writer.close()
        await writer.wait_closed()
    segments = {"client": [], "server": []}
    for _, side, kind, seg in recorder.entries:
        if kind == "segment":
            segments["server" if side == "server" else "client"].append((seg.flags_str, bytes(seg.payload)))
    return segments


async def test_a_reply_and_the_close_after_it_leave_as_one_segment():
    seen = await request_response(Config(), reply_parts=(b"a", b"b", b"c"))
    server = seen["server"]
    replies = [(flags, payload) for flags, payload in server if payload]
    assert len(replies) == 1, server  # three writes and the FIN: one segment
    flags, payload = replies[0]
    assert payload == b"abc" and "F" in flags and "A" in flags
    # the handshake's ACK goes alone, as Linux's with no write pending
    client = seen["client"]
    assert client[0][0] == "S" and client[1] == ("A", b"") and client[2][1] == b"q", client
    # SYN, SYN-ACK, ACK, request, reply + FIN, FIN, last ACK: seven in all
    # (the FINs no longer cross: that took two more)
    assert len(client) + len(server) == 7, seen


async def test_without_autocork_each_write_and_the_handshake_ack_go_alone():
    seen = await request_response(Config(autocork=False), reply_parts=(b"a", b"b", b"c"))
    client, server = seen["client"], seen["server"]
    assert client[1] == ("A", b""), client  # the textbook third segment
    assert [payload for _, payload in server if payload] == [b"a", b"b", b"c"]
    assert len(client) + len(server) > 7
