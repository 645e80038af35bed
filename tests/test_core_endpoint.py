"""The sans-I/O endpoint: demultiplexing, RST for nothing, listen backlog and
SYN cookies, TIME_WAIT records, ISNs, bad input."""
import random
import tracemalloc

import pytest

from aiotcp import _fast
from aiotcp._fast import ACK, FIN, RST, SYN
from aiotcp.core.config import Config
from aiotcp.core.connection import TimeWait
from aiotcp.core.endpoint import Endpoint
from aiotcp.core.isn import SequenceSource
from aiotcp.tools.testing import BulkTransfer, Network, drain
from test_core_network import _rack_invariants

PEER = ("198.51.100.7", 4000)


def sent(ep):
    return [(_fast.decode(d), a) for d, a in drain(ep.outbox)]


def test_segment_to_nothing_draws_rst_per_rfc_9293_3_10_7_1():
    ep = Endpoint()
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 100, b"", 1452), PEER, 0.0)
    ((rst, addr),) = sent(ep)
    assert (rst.flags_str, rst.seq, rst.ack, addr) == ("RA", 0, 1001, PEER)
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 777, ACK, 100, b"xyz"), PEER, 0.0)
    ((rst, _),) = sent(ep)
    assert (rst.flags_str, rst.seq) == ("R", 777)
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 777, RST, 0), PEER, 0.0)
    assert sent(ep) == []  # never a RST for a RST
    assert ep.stats["no_connection"] == 3 and ep.stats["rst_sent"] == 2


def test_malformed_and_bad_checksum_are_dropped_and_counted():
    ep = Endpoint()
    ep.listen(80)
    ep.receive_datagram(b"\x00" * 10, PEER, 0.0)
    bad = bytearray(_fast.encode(4000, 80, 1, 0, SYN, 100))
    bad[5] ^= 1
    ep.receive_datagram(bytes(bad), PEER, 0.0)
    assert sent(ep) == [] and not ep.connections
    assert ep.stats["malformed"] == 1 and ep.stats["bad_checksum"] == 1


def test_listener_and_connection_share_the_endpoint_by_ports():
    net = Network(random.Random(5))
    a = net.add(("a", 1), Endpoint())
    b = net.add(("b", 1), Endpoint())
    b.listen(80)
    b.listen(81)
    c1 = a.connect(("b", 1), 80, 5000, 0.0)
    c2 = a.connect(("b", 1), 81, 5000, 0.0)
    net.flush(("a", 1))
    net.run(until=lambda: str(c1.state) == str(c2.state) == "ESTABLISHED", max_time=5)
    assert len(b.connections) == 2
    assert {k[1] for k in b.connections} == {80, 81}


def test_syn_flood_keeps_memory_bounded_and_a_client_still_connects():
    server = Endpoint()
    listener = server.listen(80, backlog=128)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for port in range(10_000):
        server.receive_datagram(_fast.encode(port + 1024, 80, port * 7919, 0, SYN, 65535, b"", 1452),
                                ("203.0.113.9", port + 1024), 0.0)
        drain(server.outbox)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert listener.half_open <= server.config.syn_backlog
    assert len(server.connections) <= server.config.syn_backlog
    assert server.stats["syn_cookies_sent"] >= 10_000 - server.config.syn_backlog
    assert grown < 5 * 1024 * 1024, grown
    # a legitimate client is answered with a cookie and connects at once
    client = Endpoint()
    net = Network(random.Random(1))
    net.add(("client", 1), client)
    net.add(("203.0.113.1", 80), server)
    conn = client.connect(("203.0.113.1", 80), 80, 1234, 0.0)
    net.flush(("client", 1))
    net.run(until=lambda: listener.accept_queue, max_time=0.1)  # well before any RTO
    assert str(conn.state) == "ESTABLISHED"
    assert server.stats["syn_cookies_accepted"] == 1
    accepted = listener.accept()
    assert accepted is not None and str(accepted.state) == "ESTABLISHED"
    # its options came through the cookie too
    assert accepted.ts_ok and accepted.sack_ok and accepted.snd_wscale == client.config.receive_wscale
    assert conn.ts_ok and conn.sack_ok and conn.snd_wscale == server.config.receive_wscale


def test_forged_cookie_ack_draws_rst():
    ep = Endpoint()
    ep.listen(80)
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 123456789, ACK, 100), PEER, 0.0)
    ((rst, _),) = sent(ep)
    assert rst.flags_str == "R" and ep.stats["syn_cookies_rejected"] == 1
    assert not ep.connections


def test_cookie_roundtrip_and_expiry():
    src = SequenceSource(b"k" * 32)
    cookie, mss = src.make_cookie(PEER, 80, 4000, 1000, 1452, now=10.0)
    assert mss == 1452
    assert src.check_cookie(PEER, 80, 4000, 1000, cookie, now=100.0) == 1452
    assert src.check_cookie(PEER, 80, 4000, 1001, cookie, now=100.0) is None
    assert src.check_cookie(PEER, 80, 4001, 1000, cookie, now=100.0) is None
    assert src.check_cookie(PEER, 80, 4000, 1000, cookie, now=200.0) is None


def test_isn_is_keyed_per_tuple_and_advances_with_the_clock():
    src = SequenceSource(b"s" * 32)
    a = src.isn(PEER, 80, 4000, 0.0)
    assert src.isn(PEER, 80, 4001, 0.0) != a
    assert SequenceSource(b"t" * 32).isn(PEER, 80, 4000, 0.0) != a
    assert (src.isn(PEER, 80, 4000, 1.0) - a) % 2**32 == 250_000  # 4 us clock


def test_siphash_gives_the_reference_vectors():
    """SipHash-2-4 (the ISN's PRF, in C) against the paper's vectors: key
    00..0f, messages 00.. of 0, 8 and 15 bytes."""
    key = bytes(range(16))
    assert _fast.siphash(key, b"") == 0x726FDB47DD0E0E31
    assert _fast.siphash(key, bytes(range(8))) == 0x93F5F5799A932462
    assert _fast.siphash(key, bytes(range(15))) == 0xA129CA6149BE45E5


def test_the_isn_hash_covers_every_field_of_a_connection():
    key = bytes(16)
    identities = [(("10.0.0.1", 5000), 80, 4000), (("10.0.0.2", 5000), 80, 4000), (("10.0.0.1", 5001), 80, 4000),
                  (("10.0.0.1", 5000), 81, 4000), (("10.0.0.1", 5000), 80, 4001),
                  (("::1", 5000, 0, 0), 80, 4000), (("::1", 5000, 0, 1), 80, 4000),
                  ("a name", 80, 4000), (("10.0.0.1", 5000.0), 80, 4000)]  # other shapes: by repr
    hashes = [_fast.isn_hash(key, *identity) for identity in identities]
    assert len(set(hashes)) == len(hashes) and all(0 <= h < 2**32 for h in hashes)
    assert hashes == [_fast.isn_hash(key, *identity) for identity in identities]
    assert _fast.isn_hash(b"k" * 16, *identities[0]) != hashes[0]
    with pytest.raises(ValueError):
        _fast.isn_hash(b"short", *identities[0])


def test_time_wait_becomes_a_compact_record_that_expires_after_2msl():
    net = Network(random.Random(3))
    a = net.add(("a", 1), Endpoint())
    net.add(("b", 1), Endpoint())
    bt = BulkTransfer(net, ("a", 1), ("b", 1), 80, b"x" * 5000, b"y" * 100)
    net.run(until=lambda: any(isinstance(c, TimeWait) for c in a.connections.values()), max_time=10)
    (record,) = a.connections.values()
    assert isinstance(record, TimeWait) and a.time_wait_count == 1
    entered = net.now
    net.run(until=lambda: not a.connections, max_time=200)
    assert 60.0 <= net.now - entered <= 60.0 + 2 * a.config.timer_tick
    assert a.time_wait_count == 0
    assert bt.closed == {"client": None, "server": None}


def accepted_pair(seed):
    """Two in-memory endpoints: a connected from port 5000 to b's listener
    on port 80, and b's side accepted."""
    net = Network(random.Random(seed))
    a = net.add(("a", 1), Endpoint())
    b = net.add(("b", 1), Endpoint())
    b.listen(80)
    client = a.connect(("b", 1), 80, 5000, 0.0)
    net.flush(("a", 1))
    net.run(until=lambda: b.listeners[80].accept_queue, max_time=1)
    return net, a, b, client, b.listeners[80].accept()


def test_syn_reuses_a_time_wait_tuple_with_higher_sequence():
    # b closes first so that the TIME_WAIT record is on the listening side
    net, a, b, conn, server_conn = accepted_pair(4)
    server_conn.close(net.now)
    net.flush(("b", 1))
    net.run(until=lambda: str(conn.state) == "CLOSE_WAIT", max_time=1)
    conn.close(net.now)
    net.flush(("a", 1))
    net.run(until=lambda: isinstance(next(iter(b.connections.values()), None), TimeWait), max_time=2)
    net.run(until=lambda: not a.connections, max_time=5)
    again = a.connect(("b", 1), 80, 5000, net.now + 1)
    net.flush(("a", 1))
    net.run(until=lambda: str(again.state) == "ESTABLISHED", max_time=net.now + 2)
    assert str(again.state) == "ESTABLISHED"
    assert b.stats["time_wait_reused"] == 1


def test_accept_queue_full_drops_handshake_completion():
    net = Network(random.Random(6))
    a = net.add(("a", 1), Endpoint())
    b = net.add(("b", 1), Endpoint())
    listener = b.listen(80, backlog=1)
    c1 = a.connect(("b", 1), 80, 5001, 0.0)
    c2 = a.connect(("b", 1), 80, 5002, 0.0)
    net.flush(("a", 1))
    net.run(max_time=0.5)
    assert len(listener.accept_queue) == 1
    assert b.stats["listen_overflows"] >= 1
    listener.accept()
    net.run(until=lambda: len(listener.accept_queue) == 1, max_time=10)
    assert len(listener.accept_queue) == 1  # the second completes once there is room
    assert {str(c1.state), str(c2.state)} == {"ESTABLISHED"}


def test_random_segments_and_timeouts_in_the_handshake_never_raise(seeded_rng):
    """A client connection from SYN_SENT on, and a listener's, fed
    segments of random flags whose numbers are near the right ones (the
    peer's ISN, ours, a keepalive's one below) or anywhere, between timer
    expiries: every state the handshake can reach (simultaneous open too)
    takes them without an exception, and the endpoints always send
    well-formed segments."""
    rng = seeded_rng
    flag_sets = [SYN, SYN | ACK, ACK, ACK | FIN, RST, RST | ACK, FIN, 0, 0xFF]
    for _ in range(1000):
        now = 0.0
        ep = Endpoint()
        ep.listen(80)
        conn = ep.connect(PEER, 80, 40000, now)
        peer_isn = rng.randrange(2**32)
        for _ in range(rng.randrange(1, 12)):
            if rng.random() < 0.3:
                now += rng.choice([0.2, 1.0, 3.0])
                ep.handle_timer(now)
            else:
                ours = conn.iss if rng.random() < 0.8 else rng.randrange(2**32)
                seq = rng.choice([peer_isn, peer_isn + 1, peer_isn - 1, conn.rcv_nxt - 1, conn.rcv_nxt,
                                  rng.randrange(2**32)]) % 2**32
                ack = rng.choice([ours, ours + 1, ours + 2, 0]) % 2**32
                ports = (80, 40000) if rng.random() < 0.8 else (4000, 80)  # to the client, or to the listener
                payload = rng.randbytes(rng.choice([0, 0, 1, 100]))
                data = _fast.encode(*ports, seq, ack, rng.choice(flag_sets), rng.randrange(65536), payload,
                                    rng.choice([-1, 536, 1452]))
                ep.receive_datagram(data, PEER, now)
            for datagram, _ in drain(ep.outbox):
                _fast.decode(datagram)  # well-formed
            drain(ep.events)


def test_random_garbage_and_forged_segments_never_raise(seeded_rng):
    rng = seeded_rng
    net = Network(rng)
    a = net.add(("a", 1), Endpoint())
    net.add(("b", 1), Endpoint())
    bt = BulkTransfer(net, ("a", 1), ("b", 1), 80, rng.randbytes(300_000), rng.randbytes(1000))
    net.run(until=lambda: bt.server_conn is not None, max_time=5)
    conn = bt.client_conn
    checked = 0
    for i in range(20_000):
        kind = rng.random()
        if kind < 0.3:
            data = rng.randbytes(rng.randrange(0, 200))
        elif kind < 0.45:
            # ACKs with forged SACK blocks and timestamps around the live window
            def near(x):
                return (x + rng.randrange(-5000, 70000)) % 2**32
            blocks = [(near(conn.snd_una), near(conn.snd_una)) for _ in range(rng.randrange(1, 4))]
            data = _fast.encode(80, 40000, conn.rcv_nxt, near(conn.snd_una) if rng.random() < 0.3 else conn.snd_una,
                                ACK, rng.randrange(65536), b"", sack_blocks=blocks,
                                ts=(rng.randrange(2**32), rng.randrange(2**32)))
        else:
            # well-formed segments on the live 4-tuple with random fields
            data = _fast.encode(80, 40000, rng.randrange(2**32) if kind < 0.6 else (conn.rcv_nxt + rng.randrange(-70000, 70000)) % 2**32,
                                rng.randrange(2**32) if kind < 0.8 else (conn.snd_una + rng.randrange(-5000, 5000)) % 2**32,
                                rng.choice([ACK, SYN, RST, FIN | ACK, SYN | ACK, RST | ACK, 0xFF, 0]),
                                rng.randrange(65536), rng.randbytes(rng.randrange(0, 100)))
        a.receive_datagram(data, ("b", 1), net.now)
        if rng.random() < 0.05:
            # an ICMP error quoting a segment of any ports, or garbage, from
            # the peer's address or another (or the peer's, spelled as a
            # 4-tuple): judged or counted, never raised
            ports = rng.choice([(40000, 80), (80, 40000), (rng.randrange(65536), rng.randrange(65536))])
            quote = _fast.encode(*ports, rng.randrange(2**32), rng.randrange(2**32), ACK, 0, b"")
            quote = rng.choice([quote, quote[:rng.randrange(12)], rng.randbytes(rng.randrange(40))])
            addr = rng.choice([("b", 1), ("b", 1, 0, 0), ("c", 2)])
            if rng.random() < 0.5:
                a.icmp_too_big(addr, quote, rng.randrange(-100, 70000), net.now)
            else:
                a.icmp_port_unreachable(addr, quote, net.now)
        drain(a.outbox)
        drain(a.events)
        if i % 1000 == 0:
            net.step()
        if i % 100 == 0 and conn.sack_ok and conn.time_wait is None and str(conn.state) != "CLOSED":
            _rack_invariants(conn)  # forged SACKs may mislead RACK, never corrupt it
            checked += 1
    # a forged RST can only kill the connection with the exact sequence number
    assert str(conn.state) in {"ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSED", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "CLOSING"}
    assert conn.read_buffered + conn.rcv_buffer.out_of_order_bytes <= a.config.receive_buffer
    assert a.stats["challenge_acks_suppressed"] + a.stats["invalid_acks_suppressed"] > 0
    assert checked > 0


def _established_server():
    """A server endpoint with one ESTABLISHED connection from PEER (no options)."""
    ep = Endpoint(Config(timestamps=False, sack=False, window_scaling=False))
    listener = ep.listen(80)
    ep.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 65535, b"", 1000), PEER, 0.0)
    ((synack, _),) = sent(ep)
    ep.receive_datagram(_fast.encode(4000, 80, 1001, synack.seq + 1, ACK, 65535), PEER, 0.0)
    conn = listener.accept()
    assert str(conn.state) == "ESTABLISHED" and sent(ep) == []
    return ep, conn, synack.seq + 1


def test_a_read_in_an_open_batch_leaves_its_ack_to_the_batch_end_or_to_a_reply():
    """Reading opens the window (here by more than an MSS), which owes an
    ACK: while the receive batch is open it waits for the batch's end, and a
    reply written before then carries it; with no batch open it goes at once."""
    ep, conn, snd = _established_server()
    ep.begin_batch()
    for i in range(2):
        ep.receive_datagram(_fast.encode(4000, 80, 1001 + 1000 * i, snd, ACK, 65535, b"d" * 1000), PEER, 0.1)
    assert conn.read() == b"d" * 2000 and sent(ep) == []
    ep.end_batch()
    ((ack, _),) = sent(ep)
    assert ack.flags_str == "A" and ack.ack == 3001 and ack.window == 65535  # the opened window
    ep.begin_batch()
    for i in range(2):
        ep.receive_datagram(_fast.encode(4000, 80, 3001 + 1000 * i, snd, ACK, 65535, b"e" * 1000), PEER, 0.2)
    assert conn.read() == b"e" * 2000
    conn.send(b"reply", 0.2)
    ((data, _),) = sent(ep)
    assert data.payload == b"reply" and data.ack == 5001 and data.window == 65535
    ep.end_batch()
    assert sent(ep) == []  # the reply carried it
    ep.receive_datagram(_fast.encode(4000, 80, 5001, snd + 5, ACK, 65535, b"f" * 1000), PEER, 0.3)
    assert sent(ep) == []  # one segment: a delayed ACK
    assert conn.read() == b"f" * 1000
    ((update, _),) = sent(ep)  # no batch: the window update goes at once
    assert update.ack == 6001 and update.window == 65535


def test_in_order_data_in_one_receive_batch_is_acked_once_at_its_end():
    ep, conn, snd = _established_server()
    ep.begin_batch()
    for i in range(6):
        ep.receive_datagram(_fast.encode(4000, 80, 1001 + 100 * i, snd, ACK, 65535, b"d" * 100), PEER, 0.1)
    assert sent(ep) == []  # six segments, no ACK yet (without a batch: three)
    ep.end_batch()
    ((ack, _),) = sent(ep)
    assert ack.flags_str == "A" and ack.ack == 1601 and conn.read() == b"d" * 600
    ep.end_batch()  # nothing more is owed
    assert sent(ep) == []


def test_out_of_order_data_in_a_batch_is_still_acked_at_once():
    ep, conn, snd = _established_server()
    ep.begin_batch()
    ep.receive_datagram(_fast.encode(4000, 80, 1101, snd, ACK, 65535, b"d" * 100), PEER, 0.1)
    (dup,) = sent(ep)  # a duplicate ACK for the hole, as fast retransmit needs
    assert dup[0].ack == 1001
    ep.receive_datagram(_fast.encode(4000, 80, 1001, snd, ACK, 65535, b"d" * 100), PEER, 0.1)
    (fill,) = sent(ep)  # the hole filled: acknowledged at once
    assert fill[0].ack == 1201
    ep.end_batch()
    assert sent(ep) == []


def test_batch_ack_is_not_sent_for_data_that_a_reply_already_acked():
    ep, conn, snd = _established_server()
    ep.begin_batch()
    for i in range(2):
        ep.receive_datagram(_fast.encode(4000, 80, 1001 + 100 * i, snd, ACK, 65535, b"d" * 100), PEER, 0.1)
    conn.send(b"reply", 0.1)  # the reply carries the ACK
    ((reply, _),) = sent(ep)
    assert reply.ack == 1201 and bytes(reply.payload) == b"reply"
    ep.end_batch()
    assert sent(ep) == []


def _cookie_server():
    """A server whose SYN queue is full, so every SYN is answered with a cookie."""
    server = Endpoint(Config(syn_backlog=1))
    listener = server.listen(80, backlog=1)
    server.receive_datagram(_fast.encode(9999, 80, 1, 0, SYN, 65535, b"", 1452), ("203.0.113.9", 9999), 0.0)
    drain(server.outbox)
    return server, listener


def test_syn_cookie_carries_window_scale_and_sack_in_the_timestamp():
    """As Linux does: with cookies the SYN's options survive in the low six
    bits of the SYN-ACK's timestamp, which the ACK echoes; the connection
    then has timestamps, SACK and the peer's window scale."""
    server, listener = _cookie_server()
    server.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 65535, b"", 1452, 9, True, None, (777, 0)),
                            PEER, 5.0)
    ((synack, _),) = sent(server)
    assert server.stats["syn_cookies_sent"] == 1 and not server.connections.get((PEER, 80, 4000))
    assert synack.has_ts and synack.ts_ecr == 777 and synack.ts_val & 0x3F == 0x10 | 9
    assert synack.wscale == server.config.receive_wscale and synack.sack_permitted
    ack = _fast.encode(4000, 80, 1001, synack.seq + 1, ACK, 1000, b"", ts=(778, synack.ts_val))
    server.receive_datagram(ack, PEER, 5.02)
    conn = listener.accept()
    assert conn is not None and str(conn.state) == "ESTABLISHED"
    assert conn.ts_ok and conn.sack_ok and conn.snd_wscale == 9 and conn.rcv_wscale == server.config.receive_wscale
    assert conn.snd_wnd == 1000 << 9  # the ACK's window, scaled
    assert conn.info()["mss_max"] == 1452 - 12  # the path's search starts below it
    # our clock never runs behind the timestamp the SYN-ACK carried
    conn.send(b"hello", 5.03)
    ((data, _),) = sent(server)
    assert data.ts_val - synack.ts_val < 1 << 31 and data.ts_ecr == 778


def test_syn_cookie_without_timestamps_runs_without_options():
    server, listener = _cookie_server()
    server.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 65535, b"", 1452, 9, True), PEER, 5.0)
    ((synack, _),) = sent(server)
    assert not synack.has_ts and synack.wscale < 0 and not synack.sack_permitted
    server.receive_datagram(_fast.encode(4000, 80, 1001, synack.seq + 1, ACK, 1000), PEER, 5.02)
    conn = listener.accept()
    assert not conn.ts_ok and not conn.sack_ok and conn.snd_wscale == 0 and conn.rcv_wscale == 0
    assert conn.snd_wnd == 1000


def test_a_later_deadline_leaves_the_wheel_entry_which_fires_early_and_rearms():
    """The retransmission timer restarts with every ACK (and stops with an
    ACK of everything); the timer-wheel entry moves only when a deadline
    comes earlier.  When the stale entry fires, nothing is done before its
    time and the entry goes to the real deadline, where the timer does fire."""
    ep, conn, snd = _established_server()
    # the handshake's retransmission timer stopped when the ACK came, and
    # its entry stayed: it fires with nothing to do, and nothing is re-armed
    assert conn.next_deadline() is None and conn.timer.scheduled
    ep.handle_timer(1.0)
    assert sent(ep) == [] and not conn.timer.scheduled and len(ep.wheel) == 0
    conn.send(b"a" * 100, 1.0)
    conn.send(b"b" * 100, 1.0)
    assert len(sent(ep)) == 2
    first = conn.rto_deadline
    assert conn.timer.deadline == first
    # the first segment is acknowledged at 1.1: the RTO restarts, later
    ep.receive_datagram(_fast.encode(4000, 80, 1001, snd + 100, ACK, 65535), PEER, 1.1)
    assert conn.rto_deadline > first and conn.timer.deadline == first  # entry left alone
    ep.handle_timer(first + 0.001)  # the spare wakeup (the wheel fires within a tick)
    assert sent(ep) == [] and conn.segments_retransmitted == 0
    assert conn.timer.scheduled and conn.timer.deadline == conn.rto_deadline  # re-armed
    ep.handle_timer(conn.rto_deadline + 0.001)
    ((resent, _),) = sent(ep)
    assert resent.payload == b"b" * 100 and conn.segments_retransmitted == 1


def test_a_stream_from_one_address_object_is_routed_again_after_its_connection_goes():
    """The endpoint remembers the connection the last datagram went to, by
    the address object and ports (the datagram socket hands out one address
    object per source).  When the connection goes, so must the memory: a new
    SYN on the same 4-tuple, from the same address object, is the listener's."""
    net, a, b, first, served = accepted_pair(8)
    first.send(b"through the remembered connection", net.now)
    net.flush(("a", 1))
    net.run(until=lambda: served.read_buffered, max_time=1)
    assert served.read() == b"through the remembered connection"
    served.abort(net.now)
    net.flush(("b", 1))
    net.run(until=lambda: not a.connections and not b.connections, max_time=1)
    again = a.connect(("b", 1), 80, 5000, net.now)
    net.flush(("a", 1))
    net.run(until=lambda: str(again.state) == "ESTABLISHED", max_time=net.now + 2)
    assert str(again.state) == "ESTABLISHED"
    assert b.listeners[80].accept() is not served


def _syn_sent_client(config=None):
    """A client endpoint whose SYN went out: (endpoint, connection, SYN)."""
    ep = Endpoint(config or Config())
    conn = ep.connect(PEER, 80, 5000, 0.0)
    ((syn, _),) = sent(ep)
    assert syn.flags_str == "S"
    return ep, conn, syn


def _synack(syn):
    return _fast.encode(80, 5000, 7000, syn.seq + 1, SYN | ACK, 65535, b"", 1452)


def test_the_handshake_ack_goes_at_once_even_in_a_receive_batch():
    """As Linux acknowledges a SYN-ACK when no write is pending: the server
    accepts before the client's first data comes, so a server that closes
    at once sends a FIN, not a reset for data it never read."""
    for config, batch in ((Config(), True), (Config(autocork=False), True), (Config(), False)):
        ep, conn, syn = _syn_sent_client(config)
        if batch:
            ep.begin_batch()
        ep.receive_datagram(_synack(syn), PEER, 0.01)
        ((ack, _),) = sent(ep)
        assert ack.flags_str == "A" and ack.ack == 7001 and not ack.payload, (config.autocork, batch)


def test_data_queued_without_push_leaves_with_the_close_that_follows():
    """send(push=False) only queues; push() (or close()) sends it, and a
    close after it puts the FIN on the same segment."""
    ep, conn, snd = _established_server()
    conn.send(b"reply", 0.1, False)
    assert sent(ep) == [] and conn.send_buffered == 5
    conn.push(0.1)
    ((data, _),) = sent(ep)
    assert bytes(data.payload) == b"reply" and data.flags_str == "PA"
    conn.send(b"last", 0.2, False)
    conn.close(0.2)
    ((both, _),) = sent(ep)
    assert bytes(both.payload) == b"last" and set(both.flags_str) == set("FPA")
    conn.abort(0.3)
    drain(ep.outbox)
    conn.push(0.3)  # a closed connection sends nothing
    assert sent(ep) == []


def _in_last_ack(port=80, reply=b""):
    """A connection accepted by hand that got the peer's FIN and closed:
    LAST_ACK, its FIN out (the peer's ACK of it still to come), with
    ``reply`` written just before the close (then one segment carries both)."""
    ep = Endpoint()
    listener = ep.listen(port)
    ep.receive_datagram(_fast.encode(4000, port, 1000, 0, SYN, 65535, b"", 1452), PEER, 0.0)
    ((synack, _),) = sent(ep)
    ours = (synack.seq + 1) & 0xFFFFFFFF
    ep.receive_datagram(_fast.encode(4000, port, 1001, ours, ACK, 65535), PEER, 0.01)
    conn = listener.accept()
    ep.receive_datagram(_fast.encode(4000, port, 1001, ours, FIN | ACK, 65535), PEER, 0.02)
    if reply:
        conn.send(reply, 0.03, False)
    conn.close(0.03)
    ep.end_batch()
    fins = [d for d, _ in drain(ep.outbox) if _fast.decode(d).flags & FIN]
    assert str(conn.state) == "LAST_ACK" and len(fins) == 1
    return ep, conn, fins[0]


def test_a_port_unreachable_for_our_fin_in_last_ack_ends_the_connection():
    """The peer acknowledged everything and sent its FIN, then its socket
    went (an aiotcp client keeps none for TIME_WAIT): an ICMP port
    unreachable quoting our FIN ends LAST_ACK at once, without an error,
    instead of waiting out Config.linger for an ACK that cannot come."""
    ep, conn, fin = _in_last_ack()
    assert not ep.icmp_port_unreachable(PEER, fin[:4] + b"\0\0\0\0" + fin[8:], 0.1)  # not our FIN's number
    assert not ep.icmp_port_unreachable(("198.51.100.8", 4000), fin, 0.1)  # not the peer's address
    assert str(conn.state) == "LAST_ACK"
    assert ep.icmp_port_unreachable(PEER, fin, 0.1)
    assert str(conn.state) == "CLOSED" and conn.error is None
    assert ep.stats["last_ack_peer_gone"] == 1 and not ep.connections


def test_a_port_unreachable_for_our_reply_and_fin_in_last_ack_ends_the_connection():
    """The reply and the close after it left as one segment, and the
    peer's one ACK of both was lost before its socket went: the port
    unreachable quoting that segment, sent again, ends LAST_ACK too.  A
    quote of a sequence number already acknowledged is not that segment
    (RFC 5927) and does not."""
    ep, conn, both = _in_last_ack(reply=b"reply")
    segment = _fast.decode(both)
    assert set(segment.flags_str) == set("FPA") and bytes(segment.payload) == b"reply"
    assert segment.seq == conn.snd_una  # the reply is unacknowledged too
    stale = bytearray(both)
    stale[4:8] = ((segment.seq - 1) & 0xFFFFFFFF).to_bytes(4, "big")
    assert not ep.icmp_port_unreachable(PEER, bytes(stale), 0.1)  # before snd_una: not that segment
    assert str(conn.state) == "LAST_ACK"
    assert ep.icmp_port_unreachable(PEER, both, 0.2)
    assert str(conn.state) == "CLOSED" and conn.error is None
    assert ep.stats["last_ack_peer_gone"] == 1 and not ep.connections


def test_a_port_unreachable_for_data_without_the_fin_in_last_ack_is_a_soft_error():
    """In LAST_ACK, a quote of data sent before the FIN (not the segment
    that carries it) leaves the connection to its timers, with a soft
    error kept."""
    ep, conn, fin = _in_last_ack()
    data = bytearray(fin)
    data[13] &= ~FIN  # the same sequence number, without the FIN
    assert not ep.icmp_port_unreachable(PEER, bytes(data), 0.1)
    assert str(conn.state) == "LAST_ACK" and isinstance(conn._soft_error, ConnectionRefusedError)


@pytest.mark.parametrize("port", [80, 40000, 65535])
def test_an_icmp_quote_is_matched_by_ports_whatever_their_size(port):
    """The error queue may spell the peer's address otherwise than recvfrom
    did (an IPv6 address's flow and scope fields): the quote's ports find
    the connection then.  A local port of 32768 or more (every ephemeral
    port) made the ports' key overflow a C int, and the OverflowError went
    up into the event loop."""
    ep, conn, fin = _in_last_ack(port)
    assert not ep.icmp_port_unreachable(("198.51.100.8", 4000), fin, 0.1)  # nobody's
    assert not ep.icmp_too_big(("198.51.100.8", 4000), fin, 1200, 0.1)
    assert ep.stats["icmp_ptb_not_ours"] == 1 and str(conn.state) == "LAST_ACK"
    assert ep.icmp_port_unreachable(PEER + (0, 0), fin, 0.1)  # the same peer, spelled as a 4-tuple
    assert str(conn.state) == "CLOSED" and ep.stats["last_ack_peer_gone"] == 1


def test_a_port_unreachable_is_a_soft_error_anywhere_else():
    """As Linux takes it: an established connection goes on (the peer may
    be rebinding), whatever the quote."""
    other = Endpoint()
    other.listen(80)
    other.receive_datagram(_fast.encode(4000, 80, 1000, 0, SYN, 65535, b"", 1452), PEER, 0.0)
    ((synack, _),) = sent(other)
    ours = (synack.seq + 1) & 0xFFFFFFFF
    other.receive_datagram(_fast.encode(4000, 80, 1001, ours, ACK, 65535), PEER, 0.01)
    established = other.listeners[80].accept()
    established.send(b"data", 0.02)
    other.end_batch()
    (data,) = [d for d, _ in drain(other.outbox)]
    assert not other.icmp_port_unreachable(PEER, data, 0.1)
    assert str(established.state) == "ESTABLISHED"
