"""The receive buffer on its own: in-order bytes read back exactly, payloads
kept whole (no copy) and handed out whole by read_chunk(), small ones
merged past HELD chunks, out-of-order blocks stored once, trimmed, and
taken back in order; a seeded model test across the sequence wrap."""
import random

import pytest

from aiotcp.core.receive import ReceiveBuffer

HELD = 16  # receive.HELD (a C constant once compiled)
WHOLE = 1024  # receive.WHOLE

TOP = 1 << 32


def test_a_lone_payload_is_read_as_the_object_it_arrived_as():
    buf = ReceiveBuffer()
    payload = b"hello world"
    buf.append(payload)
    assert buf.buffered == 11 and buf.chunks == 1
    assert buf.read() is payload
    assert buf.buffered == 0 and buf.read() == b""


def test_partial_reads_keep_the_order():
    buf = ReceiveBuffer()
    buf.append(b"abcdef")
    assert buf.read(2) == b"ab"
    buf.append(memoryview(b"ghi"))  # a view is copied: its buffer may be reused
    assert buf.buffered == 7 and buf.read(5) == b"cdefg"
    buf.append(b"jkl")
    assert buf.read() == b"hijkl"


def test_past_held_chunks_small_payloads_are_merged():
    buf = ReceiveBuffer()
    for i in range(40):
        buf.append(bytes([i]))
        assert buf.chunks <= HELD + 1  # the 16 whole, then one bytearray
    assert buf.buffered == 40 and buf.chunks == HELD + 1
    assert buf.read(3) == bytes([0, 1, 2]) and buf.read() == bytes(range(3, 40))
    assert buf.chunks == 0
    buf.append(b"x")
    buf.append(b"yz")
    assert buf.read() == b"xyz"


def test_big_payloads_stay_whole_and_the_objects_stay_bounded():
    """A payload of WHOLE bytes or more is never merged (nor copied); small
    ones between them are, so the objects held stay within
    HELD + 2 * buffered / WHOLE + 1 whatever the mix."""
    buf = ReceiveBuffer()
    big = [bytes([i]) * WHOLE for i in range(40)]
    expected = bytearray()
    for i, payload in enumerate(big):
        buf.append(payload)
        expected += payload
        for j in range(i % 3):  # 0 to 2 tiny payloads after each big one
            buf.append(b"t")
            expected += b"t"
        assert buf.chunks <= HELD + 2 * buf.buffered // WHOLE + 1
    chunks = []
    while chunk := buf.read_chunk():
        chunks.append(chunk)
        assert type(chunk) is bytes
    assert b"".join(chunks) == expected and buf.buffered == 0
    assert all(any(chunk is payload for chunk in chunks) for payload in big)


def test_read_chunk_hands_out_payloads_whole_and_in_order():
    buf = ReceiveBuffer()
    first, second = b"a" * 3000, b"b" * 2000
    buf.append(first)
    buf.append(memoryview(second))  # a view is copied: its buffer may be reused
    assert buf.read(1000) == b"a" * 1000  # a partial read leaves the rest of it
    assert buf.read_chunk() == b"a" * 2000 and buf.buffered == 2000
    assert buf.read_chunk() == second and buf.read_chunk() == b"" and buf.chunks == 0
    buf.append(first)
    assert buf.read_chunk() is first


def test_a_seeded_mix_of_reads_keeps_every_byte_in_order():
    seed = 20261206
    print("seed", seed)
    rng = random.Random(seed)
    buf = ReceiveBuffer()
    sent = bytearray()
    got = bytearray()
    for step in range(3000):
        if rng.random() < 0.6:
            payload = rng.randbytes(rng.choice([1, 5, 100, 1023, 1024, 1440, 60000]))
            buf.append(payload if rng.random() < 0.8 else bytearray(payload))
            sent += payload
        else:
            how = rng.randrange(3)
            got += buf.read_chunk() if how == 0 else buf.read(rng.randrange(0, 5000)) if how == 1 else buf.read()
        assert buf.buffered == len(sent) - len(got)
        assert buf.chunks <= HELD + 2 * buf.buffered // WHOLE + 1
    got += buf.read()
    assert got == sent


def test_discard_drops_what_nobody_will_read():
    buf = ReceiveBuffer()
    buf.append(b"x" * 100)
    buf.discard()
    assert buf.buffered == 0 and buf.read() == b""


def test_out_of_order_blocks_are_stored_once_and_taken_in_order():
    buf = ReceiveBuffer()
    rcv_nxt = 1000
    buf.store(1010, b"k" * 10, rcv_nxt)  # [1010, 1020)
    buf.store(1030, b"m" * 10, rcv_nxt)  # [1030, 1040)
    buf.store(1015, b"K" * 20, rcv_nxt)  # overlaps both: only [1020, 1030) is new
    assert buf.held_ranges.ranges() == [(1010, 1040)] and buf.out_of_order_bytes == 30
    assert buf.take_next(rcv_nxt) is None  # the hole [1000, 1010) remains
    chunks = []
    rcv_nxt = 1012  # the hole filled, and two bytes more in order
    while (chunk := buf.take_next(rcv_nxt)) is not None:
        chunks.append(chunk)
        rcv_nxt += len(chunk)
    assert b"".join(chunks) == b"k" * 8 + b"K" * 10 + b"m" * 10 and rcv_nxt == 1040
    assert not buf.has_holes() and buf.out_of_order_bytes == 0


def test_a_block_already_held_is_not_stored_again():
    buf = ReceiveBuffer()
    buf.store(50, b"abcdef", 0)
    buf.store(51, b"bcd", 0)
    buf.store(40, b"0123456789abcdefghij", 0)  # covers the first: it replaces it
    assert buf.held_ranges.ranges() == [(40, 60)]
    assert buf.take_next(40) == b"0123456789abcdefghij"


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_against_a_model_across_the_wrap(seed):
    print("seed", seed)
    rng = random.Random(seed)
    start = TOP - 5000  # the stream crosses 2**32
    stream = bytes(rng.randrange(256) for _ in range(20_000))
    buf = ReceiveBuffer()
    rcv_nxt = 0  # offset into stream
    received = bytearray()
    while rcv_nxt < len(stream):
        lo = rcv_nxt + rng.randrange(-200, 3000)
        hi = min(lo + rng.randrange(1, 1500), len(stream))
        lo = max(lo, 0)
        if hi <= lo:
            continue
        if lo <= rcv_nxt:  # in order (part of it may be old)
            if hi > rcv_nxt:
                buf.append(stream[rcv_nxt:hi])
                rcv_nxt = hi
                while (chunk := buf.take_next((start + rcv_nxt) % TOP)) is not None:
                    buf.append(chunk)
                    rcv_nxt += len(chunk)
        else:
            buf.store((start + lo) % TOP, stream[lo:hi], (start + rcv_nxt) % TOP)
        if rng.random() < 0.3:
            received += buf.read(rng.randrange(1, 5000))
    received += buf.read()
    assert bytes(received) == stream


def test_holes_filled_give_the_block_list_back_and_a_new_hole_makes_one():
    """A buffer without a hole holds no list of out-of-order blocks (most
    connections, most of the time); each buffer gets its own when a hole
    opens, never one shared with another."""
    buffers = [ReceiveBuffer() for _ in range(3)]
    for buffer in buffers[:2]:
        buffer.store(110, b"x", 100)
    a, b, c = buffers
    assert a.take_next(100) is None and a.has_holes() and not c.has_holes()
    a.store(100, b"y" * 10, 100)
    assert a.take_next(100) == b"y" * 10 and a.take_next(110) == b"x"
    assert not a.has_holes() and b.has_holes() and not c.has_holes()
    a.store(200, b"z", 111)
    assert a.has_holes() and not c.has_holes() and a.take_next(200) == b"z" and not a.has_holes()
    assert b.take_next(110) == b"x" and not b.has_holes()
    c.store(300, b"w", 250)
    assert c.has_holes() and not a.has_holes() and not b.has_holes()
