"""Whole transfers between two sans-I/O endpoints over a seeded, impaired
in-memory network, in virtual time: byte-exact (SHA-256) and both sides
reaching CLOSED."""
import hashlib
import random

import pytest

from aiotcp.core.config import Config
from aiotcp.core.endpoint import Endpoint
from aiotcp.tools.testing import BulkTransfer, Impairment, Network

MiB = 1 << 20

CASES = {
    "clean": Impairment(),
    "drop5": Impairment(drop=0.05),
    "drop20": Impairment(drop=0.20),
    "drop40": Impairment(drop=0.40),
    "mixed": Impairment(drop=0.05, duplicate=0.05, reorder=0.1, corrupt=0.02, jitter=0.01),
}
SIZES = {"clean": 4 * MiB, "drop5": 3 * MiB, "drop20": 2 * MiB, "drop40": 2 * MiB, "mixed": 3 * MiB}


# At 40% loss each way a round trip fails 64% of the time, and 16 failures in
# a row (Linux's default tcp_retries2 = 15) happen in a fair share of
# transfers: the connection would rightly time out.  That link gets the
# larger retry budget a user of such a link would configure.
RETRIES = {"drop40": 40}


def transfer(seed: int, impairment: Impairment, size: int, retries: int = 15):
    rng = random.Random(seed)
    net = Network(rng, impairment)
    config = Config(retries=retries)
    client = net.add(("10.9.0.1", 40000), Endpoint(config))
    server = net.add(("10.9.0.2", 80), Endpoint(config))
    data = rng.randbytes(size)
    reply = rng.randbytes(size // 4)
    bt = BulkTransfer(net, ("10.9.0.1", 40000), ("10.9.0.2", 80), 80, data, reply)
    net.run(until=bt.done, max_time=500_000)
    return net, bt, data, reply, client, server


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("case", list(CASES))
def test_transfer_is_byte_exact_and_closes_cleanly(case, seed):
    base = random.Random(f"{case}-{seed}").randrange(2**32)
    print(f"\n{case}: seed={base} (replay: transfer({base}, CASES[{case!r}], {SIZES[case]}))")
    net, bt, data, reply, client, server = transfer(base, CASES[case], SIZES[case], RETRIES.get(case, 15))
    assert bt.received["server"].hexdigest() == hashlib.sha256(data).hexdigest(), f"seed {base}"
    assert bt.received["client"].hexdigest() == hashlib.sha256(reply).hexdigest(), f"seed {base}"
    assert bt.eof == {"client": True, "server": True}
    assert bt.closed == {"client": None, "server": None}, f"seed {base}"
    # the side that closed first handed TIME_WAIT to a compact record, which
    # has expired: no connection and no record is left on either endpoint
    assert {str(bt.client_conn.state), str(bt.server_conn.state)} <= {"CLOSED", "TIME_WAIT"}
    assert not client.connections and not server.connections
    assert client.time_wait_count == server.time_wait_count == 0
    if CASES[case].drop:
        assert bt.client_conn.segments_retransmitted > 0
    if CASES[case].corrupt:
        assert client.stats["bad_checksum"] + server.stats["bad_checksum"] > 0


def test_random_seeds(seeded_rng):
    """One more transfer with a fresh seed each run (printed above)."""
    seed = seeded_rng.randrange(2**32)
    net, bt, data, reply, *_ = transfer(seed, CASES["mixed"], MiB)
    assert bt.received["server"].hexdigest() == hashlib.sha256(data).hexdigest(), f"seed {seed}"
    assert bt.closed == {"client": None, "server": None}, f"seed {seed}"


def _rack_invariants(conn):
    """The RACK bookkeeping agrees with itself: records in sequence order
    inside [snd_una, snd_max], and the lost and SACKed tallies match them."""
    from aiotcp.core.connection import seq_diff, seq_le
    from aiotcp.core.rack import RACK_FLAGS
    _LOST, _SACKED = RACK_FLAGS["lost"], RACK_FLAGS["sacked"]
    records = conn.rack.records
    lost = sum(seq_diff(r.end, r.start) for r in records if r.flags & _LOST)
    assert lost == conn.rack.lost_bytes
    assert sum(1 for r in records if r.flags & _SACKED) == conn.rack.sacked_count
    previous_end = conn.snd_una
    for r in records:
        assert seq_le(previous_end, r.start) and seq_diff(r.end, r.start) > 0
        previous_end = r.end
    assert seq_le(previous_end, conn.snd_max)


@pytest.mark.parametrize("seed", range(3))
def test_rack_bookkeeping_stays_consistent_under_loss_and_reordering(seed):
    base = random.Random(f"rack-{seed}").randrange(2**32)
    print(f"\nseed={base}")
    rng = random.Random(base)
    net = Network(rng, Impairment(drop=0.05, reorder=0.05, duplicate=0.02, jitter=0.005))
    net.add(("10.9.0.1", 40000), Endpoint())
    net.add(("10.9.0.2", 80), Endpoint())
    data = rng.randbytes(MiB)
    bt = BulkTransfer(net, ("10.9.0.1", 40000), ("10.9.0.2", 80), 80, data)
    checks = 0
    while not bt.done() and net.step():
        conn = bt.client_conn
        if conn.sack_ok and conn.time_wait is None and str(conn.state) != "CLOSED":
            _rack_invariants(conn)
            checks += 1
    assert bt.received["server"].hexdigest() == hashlib.sha256(data).hexdigest(), f"seed {base}"
    assert checks > 1000 and bt.client_conn.rack.losses > 0
