"""Bulk data leaves in whole runs of the socket's system calls
(Connection._whole_runs): while more data is sure to come soon, the part
of a UDP GSO run left over waits for it, as Linux's TSO deferral and
autocorking keep a partial super-segment for the next write.  Never with a
FIN queued, never without GSO, and never for longer than an ACK or the end
of the receive batch."""
import hashlib

import pytest

import aiotcp
from aiotcp import _fast
from aiotcp._fast import ACK, SYN
from aiotcp.core.config import Config
from aiotcp.core.endpoint import Endpoint
from aiotcp.tools.testing import drain

PEER = ("198.51.100.7", 4000)
MSS = 1000
#: a run of 10 segments of 1000 bytes (and 20 of header): 10,000 bytes of data
RUN = 10 * MSS
RUN_BYTES = 10 * (MSS + 20)


def sent(ep):
    return [_fast.decode(d) for d, _ in drain(ep.outbox)]


def sender(run_bytes: int = RUN_BYTES):
    """A server endpoint with one ESTABLISHED connection from PEER (MSS
    1000, no options), a congestion window that never limits, a send
    buffer that does not grow (so the low water stays where the test puts
    it), and a socket below that sends ``run_bytes`` bytes a call (0: no GSO)."""
    ep = Endpoint(Config(timestamps=False, sack=False, window_scaling=False, send_buffer_max=None))
    ep.run_bytes, ep.run_datagrams = run_bytes, 64 if run_bytes else 0
    listener = ep.listen(80)
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 65535, b"", MSS), PEER, 0.0)
    (synack,) = sent(ep)
    ep.receive_datagram(_fast.encode(4000, 80, 1001, synack.seq + 1, ACK, 65535), PEER, 0.0)
    conn = listener.accept()
    conn.cc.cwnd = 1 << 20
    return ep, conn, synack.seq + 1


def ack(ep, snd, acked, now):
    ep.receive_datagram(_fast.encode(4000, 80, 1001, (snd + acked) & 0xFFFFFFFF, ACK, 65535), PEER, now)


def payload_bytes(segments):
    return [len(s.payload) for s in segments]


def test_a_paused_writer_holds_a_partial_run_while_a_run_is_in_flight():
    ep, conn, snd = sender()
    conn.send(b"a" * 20000, 0.1)  # not paused: all of it goes
    assert payload_bytes(sent(ep)) == [MSS] * 20
    conn.low_water = 0  # the transport paused the writer: more data comes
    conn.send(b"b" * 15500, 0.1)
    assert payload_bytes(sent(ep)) == [MSS] * 10  # one whole run; 5,500 wait
    assert conn.snd_nxt == (snd + 30000) & 0xFFFFFFFF and conn.send_buffered == 35500
    ack(ep, snd, 20000, 0.2)  # a run is still in flight: its ACK is coming
    assert sent(ep) == []
    ack(ep, snd, 30000, 0.3)  # nothing in flight: what waited goes
    segments = sent(ep)
    assert payload_bytes(segments) == [MSS] * 5 + [500]
    assert b"".join(s.payload for s in segments) == b"b" * 5500


def woken_writer():
    """A writer paused with 15,500 bytes of its last write queued: 10,000
    left, 5,500 wait; then an ACK in an open receive batch wakes it."""
    ep, conn, snd = sender()
    conn.send(b"a" * 20000, 0.1)
    sent(ep)
    conn.low_water = 30000
    conn.send(b"b" * 15500, 0.1)
    assert payload_bytes(sent(ep)) == [MSS] * 10
    ep.begin_batch()
    ack(ep, snd, 10000, 0.2)  # 25,500 buffered: the writer is woken
    assert conn.low_water is None and sent(ep) == []  # the 5,500 wait for its writes
    return ep, conn


def test_a_writer_woken_by_an_ack_fills_the_run_before_the_batch_ends():
    ep, conn = woken_writer()
    conn.send(b"c" * 4500, 0.2)
    segments = sent(ep)
    assert payload_bytes(segments) == [MSS] * 10  # a whole run, the old data first
    assert b"".join(s.payload for s in segments) == b"b" * 5500 + b"c" * 4500
    ep.end_batch(0.2)
    assert sent(ep) == []


def test_what_a_woken_writer_did_not_add_to_goes_when_the_batch_ends():
    ep, conn = woken_writer()
    ep.end_batch(0.25)  # the writer wrote nothing
    segments = sent(ep)
    assert payload_bytes(segments) == [MSS] * 5 + [500]
    assert conn._last_send == 0.25  # sent at the batch's end, not at its ACK's time


def test_a_queued_fin_sends_everything():
    ep, conn, snd = sender()
    conn.send(b"a" * 20000, 0.1)
    sent(ep)
    conn.low_water = 0
    conn.send(b"b" * 15500, 0.1)
    sent(ep)
    conn.close(0.1)  # the 5,500 and the FIN go, paused or not
    segments = sent(ep)
    assert payload_bytes(segments) == [MSS] * 5 + [500] and segments[-1].flags_str == "FPA"


@pytest.mark.parametrize("run_bytes", [0, 1020])
def test_without_gso_or_with_runs_of_one_segment_nothing_waits(run_bytes):
    ep, conn, snd = sender(run_bytes)
    conn.send(b"a" * 20000, 0.1)
    sent(ep)
    conn.low_water = 0
    conn.send(b"b" * 15500, 0.1)
    assert payload_bytes(sent(ep)) == [MSS] * 15 + [500]


@pytest.mark.asyncio
async def test_a_bulk_writer_over_udp_gso_sends_whole_runs():
    """Over real sockets: 64 KiB writes (45.5 segments each) into a full
    send buffer leave in runs of 44 datagrams, one system call each, not a
    run and a call for the tail of each write; every byte arrives."""
    size = 32 << 20
    block = bytes(range(256)) * 256
    got = hashlib.sha256()

    async def sink(reader, writer):
        while chunk := await reader.read(1 << 18):
            got.update(chunk)
        writer.close()

    server = await aiotcp.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await aiotcp.open_connection("127.0.0.1", port)
    io = writer.transport._endpoint.io
    if not io.gso:
        pytest.skip("no UDP GSO here")
    for _ in range(size // len(block)):
        writer.write(block)
        await writer.drain()
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    assert got.hexdigest() == hashlib.sha256(block * (size // len(block))).hexdigest()
    runs = io.datagrams_out / 44
    print(f"{io.writes} send calls for {io.datagrams_out} datagrams ({runs:.0f} runs of 44)")
    # each 64 KiB write alone would be a run and the call of its tail (1.5
    # calls a run); what is left is slow start's window-limited runs
    assert io.writes - runs < 0.1 * runs
