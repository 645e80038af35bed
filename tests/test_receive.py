"""The receive buffer on its own: in-order bytes read back exactly, payloads
kept whole (no copy) up to HELD, out-of-order blocks stored once, trimmed,
and taken back in order; a seeded model test across the sequence wrap."""
import random

import pytest

from aiotcp.core.receive import ReceiveBuffer

HELD = 16  # receive.HELD (a C constant once compiled)

TOP = 1 << 32


def test_a_lone_payload_is_read_as_the_object_it_arrived_as():
    buf = ReceiveBuffer()
    payload = b"hello world"
    buf.append(payload)
    assert buf.buffered == 11 and buf.held_payloads == 1
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


def test_past_held_payloads_are_joined():
    buf = ReceiveBuffer()
    for i in range(40):
        buf.append(bytes([i]))
        assert buf.held_payloads <= HELD
    assert buf.buffered == 40 and buf.joined_bytes == 32
    assert buf.read(3) == bytes([0, 1, 2]) and buf.read() == bytes(range(3, 40))
    buf.append(b"x")
    buf.append(b"yz")
    assert buf.read() == b"xyz" and buf.joined_bytes == 0


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
