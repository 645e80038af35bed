"""RFC 1071 checksum and the docs/wire-format.md zero-address pseudo-header."""
import struct

import pytest
from hypothesis import given, strategies as st

from aiotcp import _fast


def reference_sum(data: bytes) -> int:
    """Textbook RFC 1071 sum, one 16-bit word at a time (the test oracle)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize(
    "data, expected",
    [
        # RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2
        (bytes.fromhex("0001f203f4f5f6f7"), 0xFFFF & ~0xDDF2),
        (b"", 0xFFFF),
        (b"\x01", 0xFEFF),  # odd byte is the high half of a zero-padded word
        (b"\xff\xff", 0x0000),  # 0xffff is negative zero: complement is 0
        (b"\x00\x01\x00\x02", 0xFFFC),
        (b"\x80\x00\x80\x00", 0xFFFE),  # end-around carry: 0x10000 -> 0x0001
    ],
)
def test_known_answers(data, expected):
    assert _fast.internet_checksum(data) == expected


def test_initial_value_is_added():
    assert _fast.internet_checksum(b"\x00\x01", 0x0002) == 0xFFFF & ~0x0003


@given(st.binary(max_size=3000))
def test_matches_reference_for_every_length_and_alignment(data):
    for start in range(min(4, len(data) + 1)):
        chunk = data[start:]
        assert _fast.internet_checksum(chunk) == (~reference_sum(chunk)) & 0xFFFF
        assert _fast.internet_checksum(memoryview(data)[start:]) == (~reference_sum(chunk)) & 0xFFFF


def test_wire_checksum_worked_by_hand():
    # a bare SYN: sport 1, dport 2, seq 3, ack 0, offset 5, flags SYN, window 4
    header = struct.pack("!HHIIBBHHH", 1, 2, 3, 0, 5 << 4, 0x02, 4, 0, 0)
    # pseudo-header: 0.0.0.0, 0.0.0.0, zero, protocol 6, length 20
    # words: 0001 0002 0000 0003 0000 0000 5002 0004 0000 0000 + 0006 + 0014
    expected_sum = 0x0001 + 0x0002 + 0x0003 + 0x5002 + 0x0004 + 0x0006 + 0x0014
    datagram = _fast.encode(1, 2, 3, 0, _fast.SYN, 4)
    assert datagram[:16] == header[:16]
    assert struct.unpack("!H", datagram[16:18])[0] == (~expected_sum) & 0xFFFF
    assert _fast.decode(datagram).checksum == (~expected_sum) & 0xFFFF


def test_a_flipped_bit_anywhere_fails_verification():
    datagram = bytearray(_fast.encode(4000, 80, 1, 2, _fast.ACK | _fast.PSH, 100, b"payload!", ts=(5, 6)))
    for byte in range(len(datagram)):
        for bit in range(8):
            datagram[byte] ^= 1 << bit
            with pytest.raises(_fast.MalformedSegment):
                _fast.decode(bytes(datagram))
            datagram[byte] ^= 1 << bit
    assert _fast.decode(bytes(datagram)).payload.tobytes() == b"payload!"


@given(st.binary(min_size=100, max_size=5000), st.integers(0, 0xFFFF))
def test_vector_path_matches_the_scalar_one(data, initial):
    """Lengths and alignments either side of the vector path's 128-byte
    threshold and 64-byte step give the scalar loop's answer."""
    for start in range(min(5, len(data))):
        view = memoryview(data)[start:]
        assert _fast.internet_checksum(view, initial) == _fast._checksum_scalar(view, initial)


@pytest.mark.parametrize("size", [128, 129, 191, 1480, 65535, (2 << 20) + 67])
def test_vector_path_carries_at_its_limits(size):
    """All-ones words fill every lane at its maximum (and past one 2 MiB
    block); the sum of n bytes of 0xFF is negative zero, complement 0."""
    data = b"\xff" * size
    expected = (~reference_sum(data)) & 0xFFFF if size < 70000 else _fast._checksum_scalar(data)
    assert _fast.internet_checksum(data) == expected == _fast._checksum_scalar(data)


def test_vector_path_is_taken_where_the_cpu_has_it():
    import platform
    flags = open("/proc/cpuinfo").read().split() if platform.system() == "Linux" else []
    if platform.machine() == "x86_64" and "avx2" in flags:
        assert _fast.checksum_simd() == "avx2"
    else:
        assert _fast.checksum_simd() is None


def _wire_reference(datagram: bytes) -> int:
    """The docs/wire-format.md checksum by the textbook sum: the datagram
    with its checksum field zeroed, plus protocol 6 and its length."""
    zeroed = datagram[:16] + b"\0\0" + datagram[18:]
    total = reference_sum(zeroed) + 6 + len(datagram)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


@given(st.lists(st.sampled_from([1, 3, 127, 128, 129, 1447, 2048, 2049, 2051, 3001]), min_size=1, max_size=6),
       st.randoms(use_true_random=False), st.data())
def test_a_segment_summed_as_its_payload_is_copied_matches_the_textbook_sum(sizes, rng, data):
    """encode_segment sums the payload as it copies it, piece by piece out
    of a send buffer's chunks (bytes of 2 KiB and more are held as written,
    each a chunk; smaller writes are copied in): a chunk of odd length puts
    the next one's bytes at odd offsets, and pieces fall either side of
    the 128-byte vector threshold.  The checksum is the textbook one, for a
    SendBuffer and for plain bytes."""
    pieces = [rng.randbytes(n) for n in sizes]
    buf = _fast.SendBuffer()
    for piece in pieces:
        buf.extend(piece)
    whole = b"".join(pieces)
    offset = data.draw(st.integers(0, len(whole)))
    length = data.draw(st.integers(0, min(len(whole) - offset, 1500)))
    ts = data.draw(st.booleans())
    for payload in (buf, whole):
        datagram = _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, payload, offset, length,
                                        -1, -1, False, None, ts, 7, 8, 0)
        assert datagram[len(datagram) - length:] == whole[offset:offset + length]
        assert struct.unpack("!H", datagram[16:18])[0] == _wire_reference(datagram)
