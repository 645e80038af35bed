"""Segment encode/decode against docs/wire-format.md, with dpkt as an independent oracle."""
import array
import socket
import struct
import random
import sys

import dpkt
import pytest
from hypothesis import given, settings, strategies as st

from aiotcp import _fast
from aiotcp._fast import MalformedSegment

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ZERO = socket.inet_aton("0.0.0.0")


@st.composite
def segments(draw):
    fields = dict(
        src_port=draw(u16), dst_port=draw(u16), seq=draw(u32), ack=draw(u32),
        flags=draw(st.integers(0, 255)), window=draw(u16), urgent=draw(u16),
        payload=draw(st.binary(max_size=1500)),
    )
    options = {}
    if draw(st.booleans()):
        options["mss"] = draw(u16)
    if draw(st.booleans()):
        options["wscale"] = draw(st.integers(0, 14))
    if draw(st.booleans()):
        options["sack_permitted"] = True
    ts = draw(st.none() | st.tuples(u32, u32))
    if ts is not None:
        options["ts"] = ts
    used = 4 * ("mss" in options) + (12 if ts else 4 * ("sack_permitted" in options)) + 4 * ("wscale" in options)
    room = (40 - used - 4) // 8
    if room > 0:
        blocks = draw(st.lists(st.tuples(u32, u32), max_size=min(4, room)))
        if blocks:
            options["sack_blocks"] = blocks
    return fields, options


def do_encode(fields, options):
    return _fast.encode(
        fields["src_port"], fields["dst_port"], fields["seq"], fields["ack"],
        fields["flags"], fields["window"], fields["payload"], urgent=fields["urgent"], **options,
    )


@given(segments())
@settings(max_examples=400)
def test_roundtrip(segment):
    fields, options = segment
    datagram = do_encode(fields, options)
    seg = _fast.decode(datagram)
    for name, value in fields.items():
        if name == "payload":
            assert seg.payload.tobytes() == value
        else:
            assert getattr(seg, name) == value, name
    assert seg.mss == options.get("mss", -1)
    assert seg.wscale == options.get("wscale", -1)
    assert seg.sack_permitted == options.get("sack_permitted", False)
    assert seg.sack_blocks == tuple(options.get("sack_blocks", ()))
    assert seg.has_ts == ("ts" in options)
    if "ts" in options:
        assert (seg.ts_val, seg.ts_ecr) == options["ts"]
    assert seg.data_offset * 4 == len(datagram) - len(fields["payload"])
    assert (seg.data_offset * 4) % 4 == 0


def test_payload_is_a_view_not_a_copy():
    datagram = bytearray(_fast.encode(1, 2, 3, 4, _fast.ACK, 5, b"abcdef"))
    seg = _fast.decode(datagram, verify=False)
    assert isinstance(seg.payload, memoryview)
    datagram[-1] = ord("Z")
    assert seg.payload.tobytes() == b"abcdeZ"
    assert seg.payload.obj is datagram


def test_options_that_do_not_fit_are_refused():
    with pytest.raises(ValueError):
        _fast.encode(1, 2, 3, 4, _fast.ACK, 5, ts=(1, 2), sack_blocks=[(1, 2)] * 4)


def zero_address_ip(tcp: dpkt.tcp.TCP) -> bytes:
    """dpkt computes the TCP checksum over the pseudo-header of the enclosing
    IP packet; with 0.0.0.0 on both ends that is exactly docs/wire-format.md's checksum."""
    ip = dpkt.ip.IP(src=ZERO, dst=ZERO, p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = 20 + len(bytes(tcp))
    return bytes(ip)[20:]


@given(segments())
@settings(max_examples=200)
def test_dpkt_built_segments_decode_identically(segment):
    fields, options = segment
    opts = b""
    if "mss" in options:
        opts += struct.pack("!BBH", 2, 4, options["mss"])
    if "sack_permitted" in options:
        opts += b"\x04\x02"
    if "ts" in options:
        opts += struct.pack("!BBII", 8, 10, *options["ts"])
    if "wscale" in options:
        opts += struct.pack("!BBB", 3, 3, options["wscale"])
    if "sack_blocks" in options:
        blocks = options["sack_blocks"]
        opts += struct.pack("!BB", 5, 2 + 8 * len(blocks)) + b"".join(struct.pack("!II", *b) for b in blocks)
    opts += b"\0" * (-len(opts) % 4)
    if len(opts) > 40:
        return
    tcp = dpkt.tcp.TCP(
        sport=fields["src_port"], dport=fields["dst_port"], seq=fields["seq"], ack=fields["ack"],
        flags=fields["flags"], win=fields["window"], urp=fields["urgent"], opts=opts,
        off=(20 + len(opts)) // 4, data=fields["payload"], sum=0,
    )
    wire = zero_address_ip(tcp)
    seg = _fast.decode(wire)  # verifies dpkt's checksum with ours
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window, seg.urgent) == (
        fields["src_port"], fields["dst_port"], fields["seq"], fields["ack"], fields["flags"],
        fields["window"], fields["urgent"])
    assert seg.payload.tobytes() == fields["payload"]
    assert seg.mss == options.get("mss", -1)
    assert seg.wscale == options.get("wscale", -1)
    assert seg.sack_blocks == tuple(options.get("sack_blocks", ()))


@given(segments())
@settings(max_examples=200)
def test_our_segments_parse_identically_in_dpkt(segment):
    fields, options = segment
    wire = do_encode(fields, options)
    tcp = dpkt.tcp.TCP(wire)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags, tcp.win, tcp.urp) == (
        fields["src_port"], fields["dst_port"], fields["seq"], fields["ack"], fields["flags"],
        fields["window"], fields["urgent"])
    assert tcp.data == fields["payload"]
    parsed = dict((k, v) for k, v in dpkt.tcp.parse_opts(tcp.opts) if k not in (0, 1))
    if "mss" in options:
        assert struct.unpack("!H", parsed[dpkt.tcp.TCP_OPT_MSS])[0] == options["mss"]
    if "wscale" in options:
        assert parsed[dpkt.tcp.TCP_OPT_WSCALE][0] == options["wscale"]
    if "ts" in options:
        assert struct.unpack("!II", parsed[dpkt.tcp.TCP_OPT_TIMESTAMP]) == options["ts"]
    assert (dpkt.tcp.TCP_OPT_SACKOK in parsed) == ("sack_permitted" in options)
    ours = tcp.sum
    tcp.sum = 0
    assert struct.unpack("!H", zero_address_ip(tcp)[16:18])[0] == ours


# --- malformed input: every case docs/wire-format.md lists --------------------------------

def raw_header(offset=5, options=b"", payload=b""):
    header = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, offset << 4, 0x10, 5, 0, 0) + options
    return header + payload


@pytest.mark.parametrize("length", range(0, 20))
def test_shorter_than_20_bytes_is_malformed(length):
    with pytest.raises(MalformedSegment) as info:
        _fast.decode(raw_header()[:length], verify=False)
    assert info.value.reason == "short"


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4])
def test_data_offset_below_5_is_malformed(offset):
    with pytest.raises(MalformedSegment) as info:
        _fast.decode(raw_header(offset=offset, payload=b"x" * 60), verify=False)
    assert info.value.reason == "data_offset"


def test_data_offset_past_the_end_is_malformed():
    with pytest.raises(MalformedSegment) as info:
        _fast.decode(raw_header(offset=6), verify=False)
    assert info.value.reason == "data_offset"
    assert _fast.decode(raw_header(offset=6, options=b"\0" * 4), verify=False).data_offset == 6


@pytest.mark.parametrize(
    "options",
    [
        b"\x02\x00\x00\x00",  # length 0
        b"\x02\x01\x00\x00",  # length 1
        b"\x08\x0c" + b"\0" * 2,  # runs past the header
        b"\x01\x01\x01\x09",  # unknown kind 9 with no length byte at the end
        b"\x05\x01\x00\x00",
    ],
)
def test_bad_option_length_is_malformed(options):
    with pytest.raises(MalformedSegment) as info:
        _fast.decode(raw_header(offset=6, options=options), verify=False)
    assert info.value.reason == "option"


def test_unknown_options_are_skipped_and_end_of_list_stops_parsing():
    options = b"\x1e\x04\xab\xcd" + b"\x02\x04\x05\xb4" + b"\x00\xff\xff\xff"
    seg = _fast.decode(raw_header(offset=8, options=options), verify=False)
    assert seg.mss == 1460


def test_bad_checksum_is_reported_as_its_own_reason():
    wire = bytearray(_fast.encode(1, 2, 3, 4, _fast.ACK, 5, b"data"))
    wire[-1] ^= 0xFF
    with pytest.raises(_fast.BadChecksum) as info:
        _fast.decode(bytes(wire))
    assert info.value.reason == "checksum"
    assert isinstance(info.value, MalformedSegment)


@given(st.binary(min_size=0, max_size=1600), st.booleans())
@settings(max_examples=2000)
def test_random_bytes_decode_or_are_malformed(data, verify):
    try:
        seg = _fast.decode(data, verify=verify)
    except MalformedSegment as exc:
        assert exc.reason in {"short", "data_offset", "option", "checksum"}
    else:
        assert len(seg.payload) == len(data) - seg.data_offset * 4


@given(st.binary(min_size=20, max_size=80))
@settings(max_examples=2000)
def test_random_headers_with_valid_offsets_decode_or_are_malformed(tail):
    # steer random bytes past the length and offset checks into the option parser
    offset = min(15, len(tail) // 4)
    data = struct.pack("!HHIIBB", 1, 2, 3, 4, offset << 4, 0) + tail
    try:
        _fast.decode(data, verify=False)
    except MalformedSegment as exc:
        assert exc.reason == "option"


def test_encode_segment_takes_a_slice_of_the_payload_without_copying_it_first():
    buffer = bytearray(b"0123456789")
    whole = _fast.encode(1, 2, 3, 4, _fast.ACK, 5, b"3456", ts=(7, 8))
    assert _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, buffer, 3, 4, -1, -1, False, None,
                                True, 7, 8, 0) == whole
    to_end = _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, buffer, 6, -1, -1, -1, False, None,
                                  False, 0, 0, 0)
    assert bytes(_fast.decode(to_end).payload) == b"6789"
    empty = _fast.encode_segment(1, 2, 3, 4, _fast.FIN, 5, buffer, 10, 0, -1, -1, False, None,
                                 False, 0, 0, 0)
    assert _fast.decode(empty).payload == b""
    with pytest.raises(ValueError):
        _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, buffer, 11, 0, -1, -1, False, None, False, 0, 0, 0)


def test_encode_segment_reads_every_kind_of_payload_the_same_way():
    """bytes and bytearray (the send buffer) are read in place, anything
    else through the buffer protocol: the datagrams are identical, and the
    offset is checked on every path."""
    class Sub(bytearray):
        pass

    raw = b"0123456789"
    kinds = [raw, bytearray(raw), Sub(raw), memoryview(raw), memoryview(bytearray(raw)),
             array.array("B", raw)]
    expected = _fast.encode(1, 2, 3, 4, _fast.ACK, 5, b"2345", ts=(7, 8))
    for payload in kinds:
        assert _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, payload, 2, 4, -1, -1, False, None,
                                    True, 7, 8, 0) == expected, type(payload)
        with pytest.raises(ValueError):
            _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, payload, 11, -1, -1, -1, False, None,
                                 False, 0, 0, 0)
    with pytest.raises(TypeError):
        _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, "text", 0, -1, -1, -1, False, None,
                             False, 0, 0, 0)


def test_dropped_datagrams_are_reused_and_held_ones_never_change():
    """The datagram ring hands a bytes object out again only once nothing
    else holds it: every datagram kept here keeps its bytes, length and
    hash, and still decodes to what was encoded into it."""
    payload = bytes(range(256)) * 6
    held = []
    before = _fast.datagrams_reused()
    for i in range(6000):  # the ring (2048 slots) walked about three times
        size = 600 + (i * 7) % 840
        d = _fast.encode(40000, 443, i, 0, _fast.ACK, 512, payload[:size], ts=(i, 0))
        h = hash(d)  # cached in the object: a reused one must not keep it
        copy = bytes(memoryview(d))  # a new object (bytes(d) would be d itself)
        assert h == hash(copy)
        if i % 3 == 0:
            held.append((d, copy, h, i, size))
    assert _fast.datagrams_reused() - before > 2000  # the dropped two thirds came back
    for d, copy, h, i, size in held:
        assert d == copy and hash(d) == h and len(d) == 20 + 12 + size
        seg = _fast.decode(d)
        assert seg.seq == i and seg.payload == payload[:size]
    small = _fast.encode(1, 2, 3, 4, _fast.ACK, 5, b"x" * 100)  # below the ring's sizes
    assert len(small) == 120 and _fast.decode(small).payload == b"x" * 100


def test_send_buffer_appends_at_the_back_and_drops_from_the_front():
    buf = _fast.SendBuffer()
    assert len(buf) == 0 and bytes(buf) == b""
    buf += b"0123456789"
    buf.extend(memoryview(b"__abc__")[2:5])  # any contiguous buffer
    buf.extend(bytearray(b"def"))
    assert bytes(buf) == b"0123456789abcdef" and len(buf) == 16
    assert buf[0] == ord("0") and buf[-1] == ord("f") and buf[3:6] == b"345" and buf[14:99] == b"ef"
    del buf[:4]
    assert bytes(buf) == b"456789abcdef" and buf[0] == ord("4") and buf[:3] == b"456"
    buf.drop(2)
    assert bytes(buf) == b"6789abcdef"
    view = memoryview(buf)
    assert view.readonly and view.tobytes() == b"6789abcdef"
    view.release()
    with pytest.raises(TypeError):
        del buf[2:4]  # only the front goes
    with pytest.raises(TypeError):
        buf.extend("text")
    with pytest.raises(IndexError):
        buf[10]
    buf.drop(100)  # more than it holds: all of it
    assert len(buf) == 0
    buf += b"xy"
    for _ in range(12):  # itself, as a bytearray takes it, while its storage grows
        buf += buf
    assert bytes(buf) == b"xy" * 4096
    buf.clear()
    assert bytes(buf) == b""


def test_send_buffer_storage_stays_put_under_a_bulk_transfer():
    # what a bulk sender does: 64 KiB writes, the front dropped as it is
    # acknowledged about 1 MiB behind.  A bytearray used so reallocates (a
    # copy of all it holds) on most writes; this storage settles
    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    buf = _fast.SendBuffer()
    model = bytearray()
    sizes = []
    for i in range(400):
        block = bytes([i & 0xFF]) * (1 << 16)
        buf += block
        model += block
        if len(buf) > (1 << 20):
            n = rng.randrange(1 << 16, 3 << 16)
            del buf[:n]
            del model[:n]
        sizes.append(sys.getsizeof(buf))
        assert len(buf) == len(model)
    assert bytes(buf) == bytes(model)
    # the writes are held by reference: what it owns, the array of its
    # chunks, doubles to fit them, then stays (a bytearray took some 120
    # sizes here)
    assert len(set(sizes[20:])) <= 4 and max(sizes) < (4 << 20)


def test_an_emptied_send_buffer_holds_no_storage():
    """As a kernel socket whose data is all acknowledged: emptied, a send
    buffer holds nothing, whatever it held before (a connection that
    wrote 64 KiB in small writes and went idle kept a 64 KiB block).
    While bytes are held, what a dropped chunk frees is kept for the next
    chunk; a ping-pong's block goes to the process's pool and back."""
    empty = sys.getsizeof(_fast.SendBuffer())
    buf = _fast.SendBuffer()
    buf += b"m" * 1452  # copied into storage of its own
    small = sys.getsizeof(buf)
    assert small > empty + 1452
    for _ in range(10):  # a ping-pong: written, acknowledged, written again
        buf.clear()
        assert sys.getsizeof(buf) == empty
        buf += b"n" * 1452
        assert sys.getsizeof(buf) == small and bytes(buf) == b"n" * 1452
    for _ in range(64):  # small writes that pile up, then all acknowledged
        buf += b"s" * 1000
    assert sys.getsizeof(buf) > empty + 64_000
    buf.drop(len(buf))
    assert sys.getsizeof(buf) == empty and bytes(buf) == b""
    buf += bytearray(8 << 20)  # a burst, copied (a bytearray can change)
    assert sys.getsizeof(buf) > 8 << 20
    buf.drop(4 << 20)
    buf += b"t" * 100
    assert bytes(buf[-101:]) == b"\0" + b"t" * 100
    buf.clear()
    assert sys.getsizeof(buf) == empty


def test_send_buffers_share_a_bounded_pool_of_small_blocks():
    """Emptied buffers give their 2 KiB blocks to the process's pool and
    new writes take them: many buffers emptied at once leave at most the
    pool's 32 blocks behind, and every buffer still holds what was
    written to it."""
    bufs = [_fast.SendBuffer() for _ in range(100)]
    for round in range(3):
        for i, buf in enumerate(bufs):
            buf += bytes([i, round]) * 300
        assert all(bytes(buf) == bytes([i, round]) * 300 for i, buf in enumerate(bufs))
        for buf in bufs:
            buf.clear()
    assert all(len(buf) == 0 and bytes(buf) == b"" for buf in bufs)


def test_a_large_bytes_write_is_held_by_reference_until_acknowledged():
    """A bytes object of 2 KiB or more is held as written, not copied (it
    cannot change); it is let go once the bytes in it are dropped."""
    buf = _fast.SendBuffer()
    block = bytes(range(256)) * 64  # 16 KiB
    refs = sys.getrefcount(block)
    size = sys.getsizeof(buf)
    buf += block
    buf += block  # twice: two chunks, the same object
    assert sys.getrefcount(block) == refs + 2 and sys.getsizeof(buf) - size < 1024
    assert bytes(buf) == block * 2 and buf[16384 - 2:16384 + 2] == block[-2:] + block[:2]
    buf.drop(16384 + 100)
    assert sys.getrefcount(block) == refs + 1 and bytes(buf) == block[100:]
    buf.drop(len(buf))
    assert sys.getrefcount(block) == refs and len(buf) == 0
    written = bytearray(b"x" * 4096)
    buf += written
    written[:] = b"y" * 4096  # a bytearray was copied: changing it changes nothing sent
    assert bytes(buf) == b"x" * 4096


def test_a_view_of_a_send_buffer_is_a_snapshot():
    buf = _fast.SendBuffer()
    buf += b"a" * 100
    held = memoryview(buf)
    buf += b"z" * 100_000
    del buf[:50]
    assert held.readonly and held.tobytes() == b"a" * 100  # what was held when it was taken
    assert bytes(buf) == b"a" * 50 + b"z" * 100_000
    held.release()
    with pytest.raises(TypeError):
        memoryview(buf)[0:1] = b"x"  # read-only


def test_send_buffer_chunks_read_back_in_order_whatever_the_mix_of_writes():
    """Large bytes held by reference, small writes and bytearrays copied
    into storage of its own, dropped from the front at about the rate they
    come: every way of reading it (an index, a slice, a view, a segment
    built from it across chunks) sees the bytes in order."""
    seed = 909
    print("seed", seed)
    rng = random.Random(seed)
    buf = _fast.SendBuffer()
    model = bytearray()
    for i in range(3000):
        n = rng.choice([1, 7, 100, 1440, 2047, 2048, 5000, 65536])
        block = bytes((i + k) & 0xFF for k in range(n)) if n < 5000 else bytes([i & 0xFF]) * n
        kind = rng.randrange(3)
        buf += block if kind == 0 else bytearray(block) if kind == 1 else memoryview(block)
        model += block
        if len(model) > 200_000:  # the front acknowledged
            k = rng.randrange(len(model) - 200_000, len(model) + 1)
            buf.drop(k)
            del model[:k]
        assert len(buf) == len(model)
        if not model:
            continue
        lo = rng.randrange(len(model))
        hi = min(len(model), lo + rng.randrange(0, 3000))
        assert buf[lo:hi] == model[lo:hi] and buf[lo] == model[lo] and buf[-1] == model[-1]
        segment = _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, buf, lo, hi - lo,
                                       -1, -1, False, None, False, 0, 0, 0)
        assert _fast.decode(segment).payload == model[lo:hi]  # decode checks the checksum
    with memoryview(buf) as view:
        assert view.tobytes() == model
    assert bytes(buf) == model


def test_send_buffer_read_in_order_as_a_bulk_sender_reads_it():
    """Segments read in order from the older chunks (the send buffer
    remembers the chunk it found last), the front dropped as ACKs come so
    that the chunks move down their array, a resend now and then from an
    earlier offset, writes of every size: each segment carries the right
    bytes."""
    seed = 4242
    print("seed", seed)
    rng = random.Random(seed)
    buf = _fast.SendBuffer()
    model = bytearray()
    sent = 0  # offset from the front of the next new segment
    for i in range(4000):
        if len(model) - sent < 64 * 1024:
            n = rng.choice([100, 1440, 3000, 65536, 65536, 100_000])
            block = bytes((i * 7 + k) & 0xFF for k in range(n)) if n < 4000 else bytes([i & 0xFF, 1]) * (n // 2)
            buf += block
            model += block
        if rng.random() < 0.05 and sent:
            at = rng.randrange(sent)  # a resend
        else:
            at = sent
            sent = min(len(model), sent + 1440)
        n = min(1440, len(model) - at)
        segment = _fast.encode_segment(1, 2, 3, 4, _fast.ACK, 5, buf, at, n, -1, -1, False, None, False, 0, 0, 0)
        assert _fast.decode(segment).payload == model[at:at + n], (i, at)
        if rng.random() < 0.1 and sent:  # an ACK: the front goes
            k = rng.randrange(sent + 1)
            buf.drop(k)
            del model[:k]
            sent -= k
        assert len(buf) == len(model)


class _Released:
    """Counts its releases; optionally appends to a list as it goes."""

    released = 0

    def __init__(self, into=None):
        self.into = into

    def __del__(self):
        _Released.released += 1
        if self.into is not None:
            self.into.append(_Released())


def test_empty_list_releases_every_item_and_keeps_the_storage():
    items = [_Released() for _ in range(6)]
    grown = sys.getsizeof(items)
    cleared = [None] * 6
    cleared.clear()
    assert sys.getsizeof(cleared) < grown  # what list.clear() does, and empty_list does not
    before = _Released.released
    _fast.empty_list(items)
    assert items == [] and _Released.released == before + 6
    assert sys.getsizeof(items) == grown
    items.append(_Released())  # reused as any list
    assert len(items) == 1 and sys.getsizeof(items) == grown
    _fast.empty_list(items)
    _fast.empty_list(items)  # empty already: nothing to do
    assert items == [] and _Released.released == before + 7


def test_empty_list_frees_a_large_list_and_what_releasing_appends_goes_too():
    items = list(range(1000))
    _fast.empty_list(items)
    assert items == [] and sys.getsizeof(items) == sys.getsizeof([])
    # a connection's own lists keep fewer slots (an idle connection holds them)
    items = list(range(9))
    _fast.empty_list(items, 8)
    assert items == [] and sys.getsizeof(items) == sys.getsizeof([])
    items = list(range(8))
    grown = sys.getsizeof(items)
    _fast.empty_list(items, 8)
    assert items == [] and sys.getsizeof(items) == grown
    items = [_Released(), _Released()]
    items[1].into = items  # its release appends another item
    before = _Released.released
    _fast.empty_list(items)
    assert items == [] and _Released.released == before + 3
    with pytest.raises(TypeError):
        _fast.empty_list(None)
    with pytest.raises(TypeError):
        _fast.empty_list((1, 2))
