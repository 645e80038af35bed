"""Receive coalescing (Config.receive_coalescing): the in-order data segments
of one connection that a UDP GRO read brings back to back are processed as
one segment, as Linux's TCP GRO does, and nothing else changes: every byte
arrives once and in order, every checksum is verified, and the ACK is the
one those segments owe."""
import asyncio

import pytest

import aiotcp
from aiotcp import _fast
from aiotcp._fast import ACK, FIN, PSH, SYN
from aiotcp.core.config import Config
from aiotcp.core.endpoint import Endpoint
from aiotcp.core.events import DataReadable
from aiotcp.tools.testing import drain

PEER = ("198.51.100.7", 4000)
TS = (500, 0)  # the client's TSval; its TSecr is filled in from the SYN-ACK


def sent(ep):
    return [_fast.decode(d) for d, _ in drain(ep.outbox)]


def established(timestamps=True, coalesce=True):
    """A server connection after a handshake with PEER (client ISN 1000)."""
    ep = Endpoint(Config(timestamps=timestamps, receive_coalescing=coalesce))
    listener = ep.listen(80)
    ts = TS if timestamps else None
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 65535, b"", 1452, -1, False, None, ts), PEER, 0.0)
    (synack,) = sent(ep)
    echo = (TS[0], synack.ts_val) if timestamps else None
    ep.receive_datagram(_fast.encode(4000, 80, 1001, synack.seq + 1, ACK, 65535, b"", -1, -1, False, None, echo),
                        PEER, 0.0)
    conn = listener.accept()
    assert str(conn.state) == "ESTABLISHED" and sent(ep) == []
    return ep, conn, synack.seq + 1, echo


def data(seq, ack, payload, echo, flags=ACK, window=65535):
    return _fast.encode(4000, 80, seq, ack, flags, window, payload, -1, -1, False, None, echo)


def run_of(datagrams):
    """A GRO read: the datagrams back to back, all of the first one's size
    but the last."""
    size = len(datagrams[0])
    assert all(len(d) == size for d in datagrams[:-1]) and len(datagrams[-1]) <= size
    return b"".join(datagrams), size


@pytest.mark.parametrize("timestamps", [True, False])
def test_an_in_order_run_is_one_segment_with_the_data_of_all(timestamps):
    ep, conn, snd, echo = established(timestamps)
    chunks = [bytes([65 + i]) * 1000 for i in range(3)] + [b"tail"]
    run, size = run_of([data(1001 + 1000 * i, snd, c, echo, ACK | (PSH if i == 3 else 0))
                        for i, c in enumerate(chunks)])
    before = conn.segments_received
    ep.begin_batch()
    assert ep.receive_run(run, size, PEER, 0.1) == 4
    assert ep.segments_coalesced == 3
    assert conn.segments_received == before + 4  # one segment, counted as the four it joins
    readable = [e for _, e in drain(ep.events) if type(e) is DataReadable]
    assert len(readable) == 1
    assert conn.read() == b"".join(chunks)
    assert sent(ep) == []
    ep.end_batch()
    (ack,) = sent(ep)  # four segments owe one ACK, at the batch's end
    assert ack.flags == ACK and ack.ack == 1001 + 3004


def test_without_coalescing_the_same_run_gives_the_same_bytes_and_ack():
    results = []
    for coalesce in (True, False):
        ep, conn, snd, echo = established(coalesce=coalesce)
        run, size = run_of([data(1001 + 1200 * i, snd, bytes([i]) * 1200, echo) for i in range(5)])
        ep.begin_batch()
        assert ep.receive_run(run, size, PEER, 0.1) == 5
        ep.end_batch()
        results.append((conn.read(), [(s.ack, s.window) for s in sent(ep)], conn.segments_received,
                        ep.segments_coalesced))
    (joined, acks, count, coalesced), (plain, plain_acks, plain_count, none) = results
    assert joined == plain == b"".join(bytes([i]) * 1200 for i in range(5))
    assert acks == plain_acks and count == plain_count
    assert (coalesced, none) == (4, 0)


def cut_cases(snd, echo):
    """Runs that must be cut, each as (datagrams, the index where a new
    segment starts)."""
    a, b = b"a" * 1000, b"b" * 1000
    return {
        "sequence gap": [data(1001, snd, a, echo), data(3001, snd, b, echo)],
        "other ack": [data(1001, snd, a, echo), data(2001, snd + 10, b, echo)],  # acks our 10 bytes
        "other window": [data(1001, snd, a, echo), data(2001, snd, b, echo, window=1000)],
        "other timestamps": [data(1001, snd, a, echo), data(2001, snd, b, (echo[0] + 1, echo[1]))],
        "FIN": [data(1001, snd, a, echo), data(2001, snd, b, echo, ACK | FIN)],
        "PSH before the end": [data(1001, snd, a, echo, ACK | PSH), data(2001, snd, b, echo)],
        "no data": [data(1001, snd, a, echo), data(2001, snd, b"", echo)],
    }


@pytest.mark.parametrize("case", list(cut_cases(0, (0, 0))))
def test_a_run_is_cut_where_the_next_segment_may_not_join(case):
    ep, conn, snd, echo = established()
    conn.send(b"x" * 10, 0.05)
    sent(ep)
    run, size = run_of(cut_cases(snd, echo)[case])
    before = conn.segments_received
    ep.begin_batch()
    assert ep.receive_run(run, size, PEER, 0.1) == 2
    ep.end_batch()
    assert ep.segments_coalesced == 0
    assert conn.segments_received == before + 2
    expected = b"a" * 1000 if case in ("sequence gap", "no data") else b"a" * 1000 + b"b" * 1000
    assert conn.read() == expected
    if case == "FIN":
        assert conn.fin_received
    if case == "other ack":
        assert conn.snd_una == (snd + 10) & 0xFFFFFFFF


def test_a_segment_with_options_beyond_timestamps_starts_no_run():
    """A SACK block (here a bogus one, which the ACK step counts and
    ignores) is more than Linux's GRO joins: the segment is taken alone."""
    ep, conn, snd, echo = established()
    sack = _fast.encode(4000, 80, 1001, snd, ACK, 65535, b"s" * 1000, -1, -1, False, [(snd, snd)], echo)
    plain = data(2001, snd, b"p" * 1000, echo)
    assert len(plain) < len(sack)  # a valid run: the shorter one last
    ep.begin_batch()
    assert ep.receive_run(sack + plain, len(sack), PEER, 0.1) == 2
    ep.end_batch()
    assert ep.segments_coalesced == 0
    assert conn.read() == b"s" * 1000 + b"p" * 1000


def test_a_corrupt_segment_in_the_middle_of_a_run_ends_the_joined_part_there():
    ep, conn, snd, echo = established()
    parts = [data(1001 + 1000 * i, snd, bytes([97 + i]) * 1000, echo) for i in range(4)]
    corrupt = bytearray(parts[2])
    corrupt[40] ^= 0x01
    run, size = run_of(parts[:2] + [bytes(corrupt)] + parts[3:])
    ep.begin_batch()
    assert ep.receive_run(run, size, PEER, 0.1) == 4
    ep.end_batch()
    # the first two join; the corrupt one is dropped and counted; the last is
    # out of order behind the hole it leaves
    assert ep.segments_coalesced == 1 and ep.stats["bad_checksum"] == 1
    assert conn.read() == b"a" * 1000 + b"b" * 1000
    assert ep.stats["out_of_order_segments"] == 1


@pytest.mark.parametrize("where", [16, 17, 32, -1])  # the checksum field, the payload's first and last byte
@pytest.mark.parametrize("position", range(5))
def test_a_corrupt_segment_anywhere_in_a_run_is_dropped_as_without_joining(position, where):
    """A payload's sum is taken as it is copied into the joined payload;
    whichever datagram of the run is bad (the first, one inside, the short
    last one), in its header or its payload, it alone is dropped and
    counted, what precedes it is delivered, and the receiver ends as one
    that joins nothing."""
    outcomes = []
    for coalesce in (True, False):
        ep, conn, snd, echo = established(coalesce=coalesce)
        parts = [bytearray(data(1001 + 1000 * i, snd, bytes([97 + i]) * 1000, echo)) for i in range(4)]
        parts.append(bytearray(data(5001, snd, b"tail", echo)))
        parts[position][where] ^= 0x20
        run, size = run_of([bytes(part) for part in parts])
        ep.begin_batch()
        assert ep.receive_run(run, size, PEER, 0.1) == 5
        ep.end_batch()
        drain(ep.outbox)
        got = conn.read()
        outcomes.append((got, conn.rcv_nxt, conn.rcv_buffer.held_ranges.ranges()))
        assert ep.stats["bad_checksum"] == 1
        assert got == b"".join(bytes([97 + i]) * 1000 for i in range(position))
        if coalesce:  # what precedes the bad one joins, what follows it too
            assert ep.segments_coalesced == max(position - 1, 0) + max(5 - position - 2, 0)
    assert outcomes[0] == outcomes[1]


def test_random_runs_deliver_the_same_bytes_with_and_without_coalescing(seeded_rng):
    """Runs cut at random, with reordering, duplicates, PSH and corruption
    thrown in: with or without joining, the receiver reads exactly the same
    bytes (a prefix of the stream: never one lost, doubled or out of place)
    and acknowledges the same sequence number."""
    rng = seeded_rng
    for _ in range(40):
        stream = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12000)))
        mss = rng.choice([100, 536, 1000, 1440])
        segments = [(start, stream[start:start + mss]) for start in range(0, len(stream), mss)]
        for _ in range(rng.randrange(3)):  # reordering
            i, j = rng.randrange(len(segments)), rng.randrange(len(segments))
            segments[i], segments[j] = segments[j], segments[i]
        for _ in range(rng.randrange(2)):  # a duplicate
            segments.insert(rng.randrange(len(segments) + 1), rng.choice(segments))
        flags = [ACK | (PSH if rng.random() < 0.1 else 0) for _ in segments]
        corrupt = rng.randrange(len(segments) * 4)  # most often none
        # GRO reads: up to five datagrams, one size but for the last
        reads, pos = [], 0
        while pos < len(segments):
            n = 1
            while (n < rng.randrange(1, 6) and pos + n < len(segments)
                   and len(segments[pos + n][1]) <= len(segments[pos][1])
                   and len(segments[pos + n - 1][1]) == len(segments[pos][1])):
                n += 1
            reads.append(range(pos, pos + n))
            pos += n
        outcomes = []
        for coalesce in (True, False):
            ep, conn, snd, echo = established(coalesce=coalesce)
            wire = [bytearray(data(1001 + start, snd, chunk, echo, flags[i]))
                    for i, (start, chunk) in enumerate(segments)]
            if corrupt < len(wire):
                wire[corrupt][-1] ^= 0x5A
            got = b""
            for indexes in reads:
                ep.begin_batch()
                ep.receive_run(b"".join(wire[i] for i in indexes), len(wire[indexes[0]]), PEER, 0.1)
                ep.end_batch()
                got += conn.read()
            drain(ep.outbox)
            outcomes.append((got, conn.rcv_nxt, ep.stats["bad_checksum"]))
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][0] == stream[:len(outcomes[0][0])]


@pytest.mark.asyncio
async def test_a_write_of_two_segments_arrives_joined_over_real_udp():
    """End to end on loopback: a 1452-byte write is two segments (1440 bytes
    beside the timestamps, and 12); the sender hands them to the kernel as
    one GSO run, the receiver reads them with GRO and joins them."""
    got = asyncio.get_running_loop().create_future()

    async def echo(reader, writer):
        got.set_result(await reader.readexactly(1452 * 3))
        writer.close()

    server = await aiotcp.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await aiotcp.open_connection("127.0.0.1", port)
    message = bytes(range(256)) * 18
    for i in range(3):
        writer.write(message[i * 1452:(i + 1) * 1452])
        await writer.drain()
    assert await got == message[:1452 * 3]
    udp = server.endpoint
    assert writer.transport.get_extra_info("tcp_info")["mss"] == 1440  # two segments a write
    if udp.io.gro and writer.transport.endpoint.io.gso:  # Linux 5.0 and later
        assert udp.core.segments_coalesced >= 1
    writer.close()
    server.close()
    await server.wait_closed()
