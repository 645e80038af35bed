"""Batched datagram I/O (aiotcp._dgram) on real loopback sockets: GSO runs
arrive as exactly the datagrams that were sent, to plain sockets as well as to
GRO readers; addresses match Python's own; fallbacks and errors."""
import contextlib
import errno
import socket

import pytest

from aiotcp._dgram import DatagramSocket
from aiotcp.core.config import Config
from aiotcp._fast import ACK, DatagramSink, Segment, encode


def udp(family=socket.AF_INET, host="127.0.0.1"):
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def drain(io):
    got = []
    io.receive(lambda view, addr, now: got.append((bytes(view), addr, now)), 7.5)
    return got


def plain_reads(sock):
    """Every datagram waiting on a plain socket, one recv each."""
    got = []
    while True:
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            return got


def mixed_datagrams(addr):
    """A run longer than one GSO batch (44 of these fit in 64 KiB), a shorter
    datagram closing a run, an empty one, and sizes that differ; few enough
    for a default receive buffer."""
    out = [(bytes([i]) * 1484, addr) for i in range(50)]
    out += [(b"short", addr), (b"x" * 1484, addr), (b"", addr), (b"y" * 1484, addr)]
    out += [(bytes([i]) * (100 + i), addr) for i in range(5)]
    return out


@pytest.mark.parametrize("gso", [True, False])
def test_what_is_sent_is_what_arrives_datagram_for_datagram(gso):
    rx, tx = udp(), udp()
    with rx, tx:
        reader, writer = DatagramSocket(rx), DatagramSocket(tx, gso=gso)
        datagrams = mixed_datagrams(rx.getsockname())
        assert writer.send(datagrams) == len(datagrams)
        got = drain(reader)
        assert [g[0] for g in got] == [d[0] for d in datagrams]
        assert {g[1] for g in got} == {tx.getsockname()}
        # the first read's datagrams carry the time given; a later read's,
        # the clock when it read (they arrived after the batch began)
        assert got[0][2] == 7.5 and all(g[2] >= 7.5 for g in got)
        assert writer.datagrams_out == len(datagrams) and reader.datagrams_in == len(datagrams)
        if gso and writer.gso:
            # 44 + (6 and the short one) + 1 + the empty one + (1 and a
            # shorter one) + 4 of growing sizes
            assert writer.writes == 9
        else:
            assert writer.writes == len(datagrams)


def test_a_plain_socket_sees_one_datagram_per_segment():
    """The wire contract: GSO is a way of sending, not a format.  A reader
    without GRO (a gateway, a capture, another implementation) gets each
    datagram on its own."""
    rx, tx = udp(), udp()
    with rx, tx:
        writer = DatagramSocket(tx)
        datagrams = mixed_datagrams(rx.getsockname())
        writer.send(datagrams)
        assert plain_reads(rx) == [d[0] for d in datagrams]


def test_runs_break_at_a_change_of_address():
    rx1, rx2, tx = udp(), udp(), udp()
    with rx1, rx2, tx:
        writer = DatagramSocket(tx)
        a, b = rx1.getsockname(), rx2.getsockname()
        datagrams = [(b"a" * 1000, a)] * 3 + [(b"b" * 1000, b)] * 3 + [(b"a" * 1000, a)] * 2
        assert writer.send(datagrams) == 8
        assert [g[0] for g in drain(DatagramSocket(rx1))] == [b"a" * 1000] * 5
        assert [g[0] for g in drain(DatagramSocket(rx2))] == [b"b" * 1000] * 3


def test_connected_socket_and_the_peer_given_to_receive():
    rx, tx = udp(), udp()
    with rx, tx:
        tx.connect(rx.getsockname())
        rx.connect(tx.getsockname())
        writer, reader = DatagramSocket(tx), DatagramSocket(rx)
        assert writer.send([(b"one", None), (b"two", None)], 0, True) == 2
        got = []
        reader.receive(lambda view, addr, now: got.append((bytes(view), addr)), 0.0, "the peer")
        assert got == [(b"one", "the peer"), (b"two", "the peer")]


def test_send_starts_at_the_index_given():
    rx, tx = udp(), udp()
    with rx, tx:
        addr = rx.getsockname()
        assert DatagramSocket(tx).send([(b"skipped", addr), (b"sent", addr)], 1) == 2
        assert [g[0] for g in drain(DatagramSocket(rx))] == [b"sent"]


def test_ipv6_addresses_are_the_tuples_python_builds():
    try:
        rx, tx = udp(socket.AF_INET6, "::1"), udp(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with rx, tx:
        writer = DatagramSocket(tx)
        for _ in range(2):  # the second run goes under a socket-wide segment size
            writer.send([(b"x" * 1200, rx.getsockname())] * 3 + [(b"end", rx.getsockname())])
        assert writer.segment == (1200 if writer.gso else 0)
        got = drain(DatagramSocket(rx))
        assert [len(g[0]) for g in got] == [1200, 1200, 1200, 3] * 2
        assert got[0][1] == tx.getsockname()  # (host, port, flowinfo, scope_id)


@pytest.mark.parametrize("family, hosts", [(socket.AF_INET, ["127.0.0.1", "127.0.0.2"]),
                                           (socket.AF_INET6, ["::1"])])
def test_interleaved_sources_each_get_their_own_address(family, hosts):
    """The source tuple is remade when the port or the host changes (the
    reader keeps the last host's text, not the last address): two senders
    on each host, taking turns."""
    with contextlib.ExitStack() as stack:
        try:
            rx = stack.enter_context(udp(family, hosts[0]))
            senders = [stack.enter_context(udp(family, host)) for host in hosts for _ in range(2)]
        except OSError:
            pytest.skip("no such loopback address")
        order = [i % len(senders) for i in [0, 1, 1, 0, 2, 3, 0, 2, 1, 3, 3][: 3 * len(senders) - 1]]
        for n, i in enumerate(order):
            senders[i].sendto(bytes([n]), rx.getsockname())
        got = drain(DatagramSocket(rx))
        assert [g[0] for g in got] == [bytes([n]) for n in range(len(order))]
        assert [g[1] for g in got] == [senders[i].getsockname() for i in order]


def test_host_names_resolve_when_sending():
    rx, tx = udp(), udp()
    with rx, tx:
        DatagramSocket(tx).send([(b"hello", ("localhost", rx.getsockname()[1]))])
        assert [g[0] for g in drain(DatagramSocket(rx))] == [b"hello"]


def test_socket_errors_surface_as_oserror():
    """An ICMP port unreachable comes back on a connected socket as
    ConnectionRefusedError, on the send or on the next read."""
    gone, tx = udp(), udp()
    with tx:
        tx.connect(gone.getsockname())
        gone.close()
        io = DatagramSocket(tx)
        with pytest.raises(ConnectionRefusedError):
            io.send([(b"anyone?", None)], 0, True)
            drain(io)
            io.send([(b"anyone?", None)], 0, True)


def test_only_udp_sockets_of_ip_families():
    left, right = socket.socketpair()
    with left, right, pytest.raises(ValueError):
        DatagramSocket(left)


def test_a_lone_datagram_costs_one_system_call_and_slots_grow_under_load():
    """recvmmsg: a call that fills fewer slots than it offered found the
    socket empty, so there is no second read that would block (a ping costs
    one read, as a kernel TCP read does).  The slots double each time a call
    fills them all, up to 16, so memory grows only under load."""
    rx, tx = udp(), udp()
    with rx, tx:
        reader, writer = DatagramSocket(rx, gro=False), DatagramSocket(tx, gso=False)
        addr = rx.getsockname()
        assert drain(reader) == [] and reader.calls == 1  # empty: one call
        assert reader.slots == 2
        writer.send([(bytes([i]) * 100, addr) for i in range(5)])
        # 2 slots, full: grow to 4; 3 of 4: empty, stop
        assert [g[0] for g in drain(reader)] == [bytes([i]) * 100 for i in range(5)]
        assert reader.calls == 3 and reader.slots == 4
        writer.send([(bytes([i % 256]) * 100, addr) for i in range(200)])
        assert [g[0] for g in drain(reader)] == [bytes([i % 256]) * 100 for i in range(200)]
        # 4, 8, then 11 full calls of 16, then 12 of 16 (empty): 14 calls
        assert reader.slots == 16 and reader.calls == 3 + 14
        writer.send([(b"ping", addr)])
        assert [g[0] for g in drain(reader)] == [b"ping"] and reader.calls == 3 + 14 + 1
        assert reader.reads == reader.datagrams_in == 206


class Sink(DatagramSink):
    """Records what a DatagramSink hands over, and by which way."""

    def __init__(self, tracer=None):
        self.tracer = tracer
        self.got = []

    def receive_datagram(self, data, addr, now):
        self.got.append(("datagram", bytes(data), addr, now))

    def receive_segment(self, seg, addr, now):
        self.got.append(("segment", seg, addr, now))


def test_a_datagram_sink_takes_segments_decoded_in_place_from_c():
    """The core endpoint is a DatagramSink: each datagram is decoded straight
    out of the socket's buffer, its payload copied (the buffer is reused for
    the next read), and only what does not decode, or what a tracer wants
    to see, goes through receive_datagram to be counted as before."""
    rx, tx = udp(), udp()
    with rx, tx:
        addr = rx.getsockname()
        good = [encode(4000, 80, 1000 + i, 0, ACK, 100, bytes([i]) * 1400) for i in range(3)]
        bad = bytearray(good[0])
        bad[5] ^= 1  # checksum broken
        DatagramSocket(tx, gso=False).send([(d, addr) for d in good] + [(bytes(bad), addr), (b"", addr)])
        sink = Sink()
        assert DatagramSocket(rx).receive(sink, 2.5) == 5
        kinds = [g[0] for g in sink.got]
        assert kinds == ["segment"] * 3 + ["datagram"] * 2
        assert sink.got[0][3] == 2.5  # the first read: the time given; later reads: the clock
        for i, (_, seg, source, now) in enumerate(sink.got[:3]):
            assert isinstance(seg, Segment) and (seg.seq, source) == (1000 + i, tx.getsockname()) and now >= 2.5
            assert type(seg.payload) is bytes and seg.payload == bytes([i]) * 1400
        assert [g[1] for g in sink.got[3:]] == [bytes(bad), b""]
        # a tracer sees datagrams: everything goes the Python way
        DatagramSocket(tx).send([(good[0], addr)])
        traced = Sink(tracer=object())
        DatagramSocket(rx).receive(traced, 0.0)
        assert [g[:2] for g in traced.got] == [("datagram", good[0])]


def test_sparse_traffic_reads_one_slot_and_a_probe_restores_batching():
    """After a wakeup that found a lone datagram, the next seven wakeups
    offer one slot (the kernel does not try the socket again before it
    returns) and leave the rest to the next wakeup; the eighth offers all
    the slots again, and a burst found that way ends the sparse mode."""
    rx, tx = udp(), udp()
    with rx, tx:
        reader, writer = DatagramSocket(rx, gro=False), DatagramSocket(tx, gso=False)
        addr = rx.getsockname()
        writer.send([(b"lone", addr)])
        assert [g[0] for g in drain(reader)] == [b"lone"] and reader.calls == 1
        burst = [(bytes([i]) * 10, addr) for i in range(10)]
        writer.send(burst)
        got = []
        for _ in range(7):
            calls = reader.calls
            got += drain(reader)
            assert len(got) == _ + 1 and reader.calls == calls + 1  # one slot, one call
        got += drain(reader)  # the probe: everything left, in one wakeup
        assert [g[0] for g in got] == [d[0] for d in burst]
        writer.send(burst)
        calls = reader.calls
        assert [g[0] for g in drain(reader)] == [d[0] for d in burst]  # batched again
        assert reader.calls - calls < len(burst)


SO_NO_CHECK = 11  # <asm-generic/socket.h>: send without UDP checksums, which GSO refuses


def short_run(addr, fill, size=1472, tail=44):
    """The two datagrams of a message a little over one segment."""
    return [(fill * size, addr), (fill * tail, addr)]


@pytest.fixture
def gso_pair():
    """A receiving socket, a sending one, the address, and a DatagramSocket
    on the sender (the test skips where the kernel has no UDP GSO)."""
    rx, tx = udp(), udp()
    with rx, tx:
        writer = DatagramSocket(tx)
        if not writer.gso:
            pytest.skip("no UDP GSO")
        yield rx, tx, rx.getsockname(), writer


def gso_writers():
    """A receiving socket, its address, whether the sender is connected to
    it, and a DatagramSocket on the sender: unconnected, then connected
    (the test skips where the kernel has no UDP GSO)."""
    for connected in (False, True):
        rx, tx = udp(), udp()
        with rx, tx:
            addr = rx.getsockname()
            if connected:
                tx.connect(addr)
            writer = DatagramSocket(tx)
            if not writer.gso:
                pytest.skip("no UDP GSO")
            yield rx, addr, connected, writer


def test_short_runs_go_whole_under_a_socket_wide_segment_size():
    """The second short run in a row of one segment size sets that size on
    the socket (UDP_SEGMENT), and from then on such runs go as one buffer
    with send/sendto; each still arrives as the datagrams that were sent, to
    a plain reader and to a GRO reader, on connected and unconnected
    sockets."""
    for rx, addr, connected, writer in gso_writers():
        sent = []
        for fill in (b"a", b"b", b"c"):
            writer.send(short_run(addr, fill), 0, connected)
            sent += [d[0] for d in short_run(addr, fill)]
            if fill == b"a":
                assert writer.segment == 0  # one short run is not a habit yet
        assert writer.segment == 1472
        assert plain_reads(rx) == sent
        assert writer.writes == 3 and writer.datagrams_out == 6
        # a GRO reader gets the runs back whole and cuts them as sent
        writer.send(short_run(addr, b"d"), 0, connected)
        assert [g[0] for g in drain(DatagramSocket(rx))] == [b"d" * 1472, b"d" * 44]


def test_under_a_socket_wide_segment_size_nothing_else_is_cut(gso_pair):
    """While the socket has a segment size, a lone datagram larger than it
    still arrives whole, runs of other sizes keep their own, long runs go as
    before, and 64 lone datagrams in a row clear the size."""
    rx, _, addr, writer = gso_pair
    writer.send(short_run(addr, b"a", 500, 20) + short_run(addr, b"b", 500, 20))
    assert writer.segment == 500
    plain_reads(rx)
    writer.send([(b"alone" * 240, addr)])  # 1200 bytes
    # a larger one ends no run (an empty one neither): each goes alone
    mixed = [(b"big" * 400, addr), (b"", addr), (b"s" * 499, addr), (b"e" * 500, addr), (b"", addr)]
    mixed += short_run(addr, b"c", 700, 10)  # another size: its own control message
    mixed += [(bytes([i]) * 1300, addr) for i in range(30)]  # a long run
    mixed += short_run(addr, b"d", 500, 500)  # the last as long as the others
    assert writer.send(mixed) == len(mixed)
    assert plain_reads(rx) == [b"alone" * 240] + [d[0] for d in mixed]
    assert writer.segment == 500
    lone = [(bytes([i]) * 100, addr) for i in range(64)]
    for d in lone:
        writer.send([d])
    assert writer.segment == 0
    assert plain_reads(rx) == [d[0] for d in lone]


def test_a_send_refused_under_the_socket_wide_segment_size_goes_again_without_it(gso_pair):
    """A kernel that refuses a send while the socket has a segment size (here
    because the socket sends without UDP checksums, which GSO cannot do)
    gets it again without the size, which the socket then never sets again,
    and runs fall back to one datagram per call as before."""
    rx, tx, addr, writer = gso_pair
    first = short_run(addr, b"a") + short_run(addr, b"b")
    writer.send(first)
    assert writer.segment == 1472
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    later = [(b"lone", addr)] + short_run(addr, b"c") + short_run(addr, b"d")
    assert writer.send(later) == len(later)
    assert writer.segment == 0 and not writer.gso
    assert plain_reads(rx) == [d[0] for d in first + later]


def joined_run(addr, sizes):
    """A run as the core hands it over, (datagrams back to back, addr,
    size), and its datagrams one by one: each a byte of its own, all of the
    first's size but the last, which may be shorter."""
    parts = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
    return (b"".join(parts), addr, sizes[0]), parts


def test_a_joined_run_goes_in_one_call_and_arrives_as_its_datagrams():
    """A run the core built in one buffer (Endpoint.outbox) goes alone in
    one sendmsg, cut by its own size, on connected and unconnected sockets;
    the pairs around it go as before; the list is left as it was."""
    for rx, addr, connected, writer in gso_writers():
        run, parts = joined_run(addr, [1000] * 5 + [300])
        items = [(b"before", addr), run, (b"after", addr)]
        assert writer.send(items, 0, connected) == 3
        assert plain_reads(rx) == [b"before"] + parts + [b"after"]
        assert writer.writes == 3 and writer.datagrams_out == 8
        assert items[1] is run


def test_without_offload_a_joined_run_goes_as_its_datagrams():
    """A socket without GSO puts the run back into the list as its
    datagrams, in its place, and sends them one a call."""
    rx, tx = udp(), udp()
    with rx, tx:
        addr = rx.getsockname()
        writer = DatagramSocket(tx, gso=False)
        run, parts = joined_run(addr, [700, 700, 700, 5])
        items = [(b"first", addr), run, (b"last", addr)]
        assert writer.send(items) == 6 == len(items)
        assert items == [(b"first", addr)] + [(p, addr) for p in parts] + [(b"last", addr)]
        assert plain_reads(rx) == [b"first"] + parts + [b"last"]
        assert writer.writes == 6


def test_a_joined_run_the_kernel_refuses_goes_one_by_one_and_offload_ends(gso_pair):
    """A run the kernel refuses (here: a socket sending without UDP
    checksums, which GSO cannot do) goes again as its datagrams, one a
    call; when those pass, the socket sends without GSO from then on."""
    rx, tx, addr, writer = gso_pair
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    run, parts = joined_run(addr, [1200] * 4)
    later, later_parts = joined_run(addr, [900] * 3)
    items = [run, later]
    assert writer.send(items) == len(items) == 7
    assert not writer.gso
    assert plain_reads(rx) == parts + later_parts


def test_without_cap_net_admin_the_buffers_are_asked_plainly_and_the_forced_options_once(monkeypatch):
    """A process that may not force the sizes gets EPERM once; from then on
    each socket asks with the plain options alone (one system call each)."""
    from aiotcp.aio import udp

    class Sock:
        def __init__(self):
            self.calls = []

        def setsockopt(self, level, option, value):
            self.calls.append(option)
            if option in (udp._SO_RCVBUFFORCE, udp._SO_SNDBUFFORCE):
                raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(udp, "_force_denied", False)
    first, second = Sock(), Sock()
    udp._grow_buffers(first, Config())
    udp._grow_buffers(second, Config())
    assert first.calls == [udp._SO_RCVBUFFORCE, socket.SO_RCVBUF, socket.SO_SNDBUF]
    assert second.calls == [socket.SO_RCVBUF, socket.SO_SNDBUF]
