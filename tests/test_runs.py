"""Bulk data's path: _push sends full segments of new data as runs
(Connection._send_run, _fast.encode_run), the header built once and its sum
taken once.  What leaves must be exactly what one segment at a time gives:
the same datagrams, byte for byte, in the same order, with the same
records, timers and counters behind them."""
import hashlib
import random

import pytest
from hypothesis import given, settings, strategies as st

from aiotcp import _fast
from aiotcp.core.config import Config
from aiotcp.core.endpoint import Endpoint
from aiotcp.tools.testing import BulkTransfer, Impairment, Network, datagrams

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=5000), min_size=1, max_size=8),
       src=u16, dst=u16, seq=u32, ack=u32, window=u16, size=st.integers(1, 1500),
       count=st.integers(1, 12), skip=st.integers(0, 4000), psh=st.booleans(), has_ts=st.booleans(),
       ts_val=u32, ts_ecr=u32)
def test_a_run_is_what_encode_segment_gives_one_at_a_time(chunks, src, dst, seq, ack, window, size, count,
                                                            skip, psh, has_ts, ts_val, ts_ecr):
    """Every segment of a run, its payload taken across the send buffer's
    chunks (odd sizes and offsets too), sequence numbers wrapping, PSH on
    the last or not, with and without timestamps."""
    buf = _fast.SendBuffer()
    for chunk in chunks:
        buf += chunk
    total = len(buf)
    if size * count > total:
        count = max(1, total // size)
        size = min(size, total)
    offset = min(skip, total - size * count)
    out = []
    _fast.encode_run(out, "to", src, dst, seq, ack, window, buf, offset, size, count, psh, has_ts, ts_val, ts_ecr)
    expected = []
    for i in range(count):
        flags = _fast.ACK | (_fast.PSH if psh and i == count - 1 else 0)
        expected.append((_fast.encode_segment(src, dst, (seq + i * size) & 0xFFFFFFFF, ack, flags, window, buf,
                                              offset + i * size, size, -1, -1, False, None, has_ts, ts_val,
                                              ts_ecr, 0), "to"))
    assert out == expected
    for datagram, _ in out:
        _fast.decode(datagram, verify=True)  # the checksum holds


@pytest.mark.parametrize("count,joined,shapes", [
    (10, 4, [4, 4, 2]), (9, 4, [4, 4, 1]), (3, 64, [3]), (1, 64, [1]), (5, 0, [1] * 5), (5, 1, [1] * 5)])
def test_a_run_joined_for_a_socket_that_sends_runs(count, joined, shapes):
    """With ``joined``, up to that many datagrams in a row come as one run,
    (datagrams back to back, to, size), a last one alone as a pair: cut
    back, the very datagrams given one by one."""
    buf = _fast.SendBuffer()
    buf += bytes(range(256)) * 60
    args = ("to", 1, 2, 0xFFFFF000, 9, 512, buf, 7, 1001, count, True, True, 1, 2)
    single, out = [], []
    _fast.encode_run(single, *args)
    _fast.encode_run(out, *args, joined)
    assert [len(item[0]) // 1033 if len(item) == 3 else 1 for item in out] == shapes
    assert all(item[1:] == ("to", 1033) for item in out if len(item) == 3)
    assert datagrams(out) == single


def test_a_run_outside_the_send_buffer_is_refused():
    buf = _fast.SendBuffer()
    buf += b"x" * 3000
    out = []
    for offset, size, count in ((0, 1000, 4), (2500, 1000, 1), (-1, 100, 1), (0, 0, 3), (0, 100, 0)):
        with pytest.raises(ValueError):
            _fast.encode_run(out, None, 1, 2, 3, 4, 5, buf, offset, size, count, False, False, 0, 0)
    assert out == []


class _Wire(Network):
    """The in-memory network, keeping every datagram each endpoint sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wire = []

    def flush(self, src) -> None:
        self.wire.extend((src, data, dst) for data, dst in datagrams(self.endpoints[src].outbox))
        super().flush(src)


class _Tracer:
    """A tracer that sees each segment alone: with one, _push sends one
    segment at a time (no runs)."""

    def segment(self, *args):
        pass

    def state(self, *args):
        pass


CASES = {
    "clean": Impairment(),
    "mixed": Impairment(drop=0.03, duplicate=0.03, reorder=0.1, corrupt=0.01, jitter=0.005),
}


def _transfer(seed: int, impairment: Impairment, gso: bool, traced: bool):
    rng = random.Random(seed)
    net = _Wire(rng, impairment, batches=gso)
    config = Config(retries=30)
    tracer = _Tracer() if traced else None
    client = net.add(("10.9.0.1", 40000), Endpoint(config, tracer=tracer))
    server = net.add(("10.9.0.2", 80), Endpoint(config, tracer=tracer))
    if gso:
        client.run_bytes, client.run_datagrams = server.run_bytes, server.run_datagrams = 65507, 64
    data = rng.randbytes(1 << 20)
    reply = rng.randbytes(1 << 18)
    bt = BulkTransfer(net, ("10.9.0.1", 40000), ("10.9.0.2", 80), 80, data, reply)
    net.run(until=bt.done, max_time=100_000)
    assert bt.received["server"].hexdigest() == hashlib.sha256(data).hexdigest(), f"seed {seed}"
    assert bt.received["client"].hexdigest() == hashlib.sha256(reply).hexdigest(), f"seed {seed}"
    assert bt.closed == {"client": None, "server": None}, f"seed {seed}"
    return net.wire, bt


@pytest.mark.parametrize("gso", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_runs_put_on_the_wire_what_one_segment_at_a_time_puts(case, gso):
    """A whole transfer (loss, duplicates, reordering and corruption in
    the mixed case: retransmissions, SACK, recovery), once with runs and
    once one segment at a time: the same datagrams in the same order."""
    seed = random.Random(f"runs-{case}-{gso}").randrange(2**32)
    print(f"seed {seed}")
    runs, bt = _transfer(seed, CASES[case], gso, traced=False)
    single, _ = _transfer(seed, CASES[case], gso, traced=True)
    assert len(runs) > 1000
    assert runs == single, f"seed {seed}"
    # and runs were taken: _push sent several segments at once, often
    print("runs", bt.client.stats["send_runs"], bt.server.stats["send_runs"])
    assert bt.client.stats["send_runs"] > 20 and bt.server.stats["send_runs"] > 0
