"""Scripted-segment tests of the sans-I/O connection, state by state
(RFC 9293 section 3.10), in virtual time."""
import sys

import pytest

from aiotcp.core.connection import State, TimeWait, seq_lt, seq_gt, seq_diff
from script import ACK, CONFIG, FIN, ISS, PEER_ISS, RST, SYN, Script, seg

P = PEER_ISS + 1  # first data sequence number of the peer
L = ISS + 1       # ours


# ------------------------------------------------------------- CLOSED -> SYN_SENT

def test_active_open_sends_syn_with_mss_and_arms_initial_rto():
    s = Script()
    s.conn.connect(0.0)
    (syn,) = s.sent()
    assert (syn.flags_str, syn.seq, syn.mss, syn.wscale) == ("S", ISS, 1452, -1)
    assert s.state_name == "SYN_SENT"
    assert s.conn.next_deadline() == 1.0  # RFC 6298 initial RTO


def test_window_scale_offered_when_enabled():
    s = Script(CONFIG.replace(window_scaling=True, receive_buffer=1 << 20, receive_buffer_max=None))
    s.conn.connect(0.0)
    (syn,) = s.sent()
    assert syn.wscale == 5 and syn.window == 65535
    # with autotuning, the shift covers the largest the buffer may grow to
    s = Script(CONFIG.replace(window_scaling=True, receive_buffer=1 << 20, receive_buffer_max=6 << 20))
    s.conn.connect(0.0)
    (syn,) = s.sent()
    assert syn.wscale == 7 and syn.window == 65535


# ------------------------------------------------------------- SYN_SENT

def test_syn_sent_syn_ack_establishes_and_acks():
    s = Script()
    s.conn.connect(0.0)
    s.sent()
    s.at(0.05).recv(SYN | ACK, seq=PEER_ISS, ack=L, mss=1000, window=4000)
    (ack,) = s.sent()
    assert (ack.flags_str, ack.seq, ack.ack) == ("A", L, P)
    assert s.state_name == "ESTABLISHED"
    assert s.events() == ["Connected"]
    assert s.conn.mss == 1000 and s.conn.snd_wnd == 4000
    assert s.conn.srtt == pytest.approx(0.05)
    assert s.conn.next_deadline() is None


def test_syn_sent_default_peer_mss_is_536():
    s = Script()
    s.conn.connect(0.0)
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L)
    assert s.conn.mss == 536
    s.sent()
    s.conn.send(b"x" * 2000, 0.1)
    assert [len(x.payload) for x in s.sent()] == [536, 536, 536, 392]


def test_syn_sent_data_on_syn_ack_is_accepted():
    s = Script()
    s.conn.connect(0.0)
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L, payload=b"early")
    assert s.conn.read() == b"early"
    assert s.conn.rcv_nxt == P + 5


@pytest.mark.parametrize("bad_ack", [ISS, ISS - 5, ISS + 2])
def test_syn_sent_unacceptable_ack_draws_reset(bad_ack):
    s = Script()
    s.conn.connect(0.0)
    s.sent()
    s.recv(SYN | ACK, seq=PEER_ISS, ack=bad_ack)
    (rst,) = s.sent()
    assert (rst.flags_str, rst.seq) == ("R", bad_ack & 0xFFFFFFFF)
    assert s.state_name == "SYN_SENT"


def test_syn_sent_rst_with_acceptable_ack_is_connection_refused():
    s = Script()
    s.conn.connect(0.0)
    s.recv(RST | ACK, seq=0, ack=L)
    assert s.state_name == "CLOSED"
    assert isinstance(s.conn.error, ConnectionRefusedError)
    assert s.events() == ["Closed"]


def test_syn_sent_rst_without_ack_is_ignored():
    s = Script()
    s.conn.connect(0.0)
    s.sent()
    s.recv(RST, seq=12345, ack=0)
    assert s.state_name == "SYN_SENT" and s.sent() == []


def test_syn_retransmission_backs_off_and_gives_up():
    s = Script(CONFIG.replace(syn_retries=3))
    s.conn.connect(0.0)
    s.sent()
    times = []
    while s.conn.state is State.SYN_SENT:
        t = s.conn.next_deadline()
        times.append(t)
        s.timer(t)
        if s.conn.state is State.SYN_SENT:
            (syn,) = s.sent()
            assert syn.flags_str == "S" and syn.seq == ISS
    assert times == [1.0, 3.0, 7.0, 15.0]
    assert isinstance(s.conn.error, TimeoutError)


def test_simultaneous_open():
    s = Script()
    s.conn.connect(0.0)
    s.sent()
    s.recv(SYN, seq=PEER_ISS, ack=0, mss=1452)
    (synack,) = s.sent()
    assert (synack.flags_str, synack.seq, synack.ack) == ("SA", ISS, P)
    assert s.state_name == "SYN_RCVD"
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L)
    assert s.state_name == "ESTABLISHED"
    assert s.states == [("CLOSED", "SYN_SENT"), ("SYN_SENT", "SYN_RCVD"), ("SYN_RCVD", "ESTABLISHED")]


def test_a_probe_in_syn_rcvd_after_a_timeout_resends_nothing_of_the_send_buffer():
    """Simultaneous open, our SYN-ACK timed out once: a segment one below
    rcv_nxt (a keepalive probe's shape, which ends the backoff of a
    synchronized connection) must not resend from snd_una, which is still
    our SYN and not a byte of the send buffer (that raised ValueError from
    the encoder, found by fuzzing a client with a scripted peer)."""
    s = Script()
    s.conn.connect(0.0)
    s.sent()
    s.recv(SYN, seq=PEER_ISS, ack=0, mss=1452)
    s.sent()
    assert s.state_name == "SYN_RCVD"
    s.timer(1.0)
    (again,) = s.sent()
    assert again.flags & SYN and s.conn.retries == 1
    s.recv(ACK, seq=PEER_ISS, ack=ISS)  # seq = rcv_nxt - 1
    assert all(not (x.payload or x.flags & FIN) for x in s.sent())
    assert s.state_name == "SYN_RCVD"
    s.recv(ACK, seq=P, ack=L)
    assert s.state_name == "ESTABLISHED"


# ------------------------------------------------------------- LISTEN -> SYN_RCVD

def passive():
    s = Script()
    s.conn.accept_syn(seg(SYN, PEER_ISS, 0, mss=1452), 0.0)
    return s


def test_passive_open_answers_syn_ack_and_establishes():
    s = passive()
    (synack,) = s.sent()
    assert (synack.flags_str, synack.seq, synack.ack, synack.mss) == ("SA", ISS, P, 1452)
    assert s.state_name == "SYN_RCVD"
    s.at(0.03).recv(ACK, seq=P, ack=L, payload=b"hello")
    assert s.state_name == "ESTABLISHED"
    assert s.conn.read() == b"hello"  # data on the final handshake ACK


def test_syn_rcvd_unacceptable_ack_draws_reset():
    s = passive()
    s.sent()
    s.recv(ACK, seq=P, ack=ISS + 50)
    (rst,) = s.sent()
    assert (rst.flags_str, rst.seq) == ("R", ISS + 50)
    assert s.state_name == "SYN_RCVD"


def test_syn_rcvd_duplicate_syn_resends_syn_ack():
    s = passive()
    s.sent()
    s.recv(SYN, seq=PEER_ISS, ack=0)
    (synack,) = s.sent()
    assert synack.flags_str == "SA"


def test_syn_ack_retransmission_limit():
    s = Script(CONFIG.replace(synack_retries=2))
    s.conn.accept_syn(seg(SYN, PEER_ISS), 0.0)
    s.timer(1.0).timer(3.0)
    assert len(s.sent()) == 3
    s.timer(7.0)
    assert s.state_name == "CLOSED" and isinstance(s.conn.error, TimeoutError)


# ------------------------------------------------------------- ESTABLISHED: data

def test_delayed_ack_then_every_second_segment():
    s = Script().established()
    s.at(1.0).recv(ACK, payload=b"a" * 100)
    assert s.sent() == []
    assert s.conn.next_deadline() == pytest.approx(1.04)
    s.timer(1.04)
    (ack,) = s.sent()
    assert ack.ack == P + 100
    s.recv(ACK, seq=P + 100, payload=b"b" * 100)
    s.recv(ACK, seq=P + 200, payload=b"c" * 100)
    (ack,) = s.sent()
    assert ack.ack == P + 300
    assert s.events() == ["DataReadable"]
    assert s.conn.read() == b"a" * 100 + b"b" * 100 + b"c" * 100


def test_out_of_order_acked_at_once_and_hole_fill_acked_at_once():
    s = Script().established()
    s.recv(ACK, seq=P + 100, payload=b"b" * 100)
    (dup,) = s.sent()
    assert dup.ack == P
    s.recv(ACK, seq=P + 300, payload=b"d" * 100)
    assert s.sent()[0].ack == P
    s.recv(ACK, seq=P, payload=b"a" * 100)
    (ack,) = s.sent()
    assert ack.ack == P + 200
    s.recv(ACK, seq=P + 150, payload=b"x" * 150)  # overlaps both sides of the hole
    assert s.sent()[0].ack == P + 400
    assert s.conn.read() == b"a" * 100 + b"b" * 100 + b"x" * 100 + b"d" * 100


def test_quick_ack_mode_after_out_of_order_data_or_a_duplicate():
    """As Linux's quick ACK mode: after out-of-order data, and after a
    duplicate (our ACK was lost), the next 16 in-order segments are each
    acknowledged at once; then every second segment again."""
    s = Script().established()
    s.recv(ACK, seq=P + 100, payload=b"b" * 100)  # a hole at P
    assert s.sent()[0].ack == P
    s.recv(ACK, seq=P, payload=b"a" * 100)  # the hole filled: ACK at once
    assert s.sent()[0].ack == P + 200
    seq = P + 200
    for i in range(16):
        s.recv(ACK, seq=seq, payload=b"c" * 100)
        seq += 100
        (ack,) = s.sent()
        assert ack.ack == seq  # each one, at once
    s.recv(ACK, seq=seq, payload=b"d" * 100)
    assert s.sent() == []  # delayed again
    s.recv(ACK, seq=seq + 100, payload=b"d" * 100)
    assert [a.ack for a in s.sent()] == [seq + 200]  # every second segment
    seq += 200
    s.recv(ACK, seq=seq - 100, payload=b"d" * 100)  # a duplicate: our ACK went missing
    assert [a.ack for a in s.sent()] == [seq]
    s.recv(ACK, seq=seq, payload=b"e" * 100)
    assert [a.ack for a in s.sent()] == [seq + 100]  # quick again


def test_a_lone_segment_is_read_as_it_arrived_and_partial_reads_keep_order():
    """The payload of a lone in-order segment is what read() returns, the
    very object (no copy); partial reads of it and data queued behind it
    see the same bytes in the same order, and read_buffered counts them."""
    s = Script().established()
    payload = b"hello world"
    s.recv(ACK, payload=payload)
    assert s.conn.rcv_buffer.chunks == 1 and s.conn.read_buffered == 11
    assert s.conn.read() == payload
    assert s.conn.read_buffered == 0 and s.conn.read() == b""
    s.recv(ACK, seq=P + 11, payload=b"abcdef")
    assert s.conn.read(2) == b"ab"
    s.recv(ACK, seq=P + 17, payload=b"ghi")
    assert s.conn.read_buffered == 7
    assert s.conn.read(5) == b"cdefg"
    s.recv(ACK, seq=P + 20, payload=b"jkl")
    s.recv(ACK, seq=P + 23, payload=b"mno")
    assert s.conn.read_buffered == 8
    assert s.conn.read() == b"hijklmno"
    assert s.conn.info()["read_buffered"] == 0


def test_many_unread_segments_are_folded_into_the_buffer_in_order():
    # payloads are kept whole until read; past 16 of them, tiny ones are
    # merged: a peer that sends tiny segments cannot make their per-object
    # overhead grow
    s = Script().established()
    for i in range(40):
        s.recv(ACK, seq=P + i, payload=bytes([i]))
        assert s.conn.rcv_buffer.chunks <= 17
    assert s.conn.read_buffered == 40 and s.conn.rcv_buffer.chunks == 17
    assert s.conn.read(3) == bytes([0, 1, 2])
    s.recv(ACK, seq=P + 40, payload=b"\x28\x29")
    assert s.conn.read() == bytes(range(3, 42)) and s.conn.read_buffered == 0
    s.recv(ACK, seq=P + 42, payload=b"x")
    s.recv(ACK, seq=P + 43, payload=b"yz")
    assert s.conn.read() == b"xyz" and s.conn.rcv_buffer.chunks == 0


def test_read_chunk_gives_each_payload_whole_and_opens_the_window():
    """read_chunk() hands out one segment's payload at a time, in order,
    and reading opens a closed window as read() does: the update goes once
    the window opened by min(buffer / 2, MSS)."""
    s = Script(CONFIG.replace(receive_buffer=4000)).established()
    payloads = [b"a" * 1452, b"b" * 1452, b"c" * 1096]
    seq = P
    for payload in payloads:
        s.recv(ACK, seq=seq, payload=payload)
        seq += len(payload)
    s.timer(s.conn.next_deadline())  # the delayed ACK
    assert s.sent()[-1].window == 0
    assert s.conn.read_chunk() == payloads[0]
    (update,) = s.sent()
    assert update.window == 1452
    assert s.conn.read_chunk() == payloads[1]
    assert [a.window for a in s.sent()] == [2904]
    assert s.conn.read_chunk() == payloads[2]
    assert s.sent() == []  # 1096 more is less than the MSS: silly window
    assert s.conn.read_chunk() == b"" and s.conn.read_buffered == 0


def test_sending_respects_peer_window_and_mss():
    s = Script().established(peer_mss=1000, window=2500)
    s.conn.send(b"z" * 5000, 0.0)
    # the 500 bytes left in the window wait: less than an MSS and less than
    # half the largest window offered (RFC 1122 section 4.2.3.4)
    assert [len(x.payload) for x in s.sent()] == [1000, 1000]
    s.recv(ACK, ack=L + 2000, window=2500)
    assert [len(x.payload) for x in s.sent()] == [1000, 1000]
    s.recv(ACK, ack=L + 4000, window=2500)
    assert [len(x.payload) for x in s.sent()] == [1000]


def test_unacceptable_segment_draws_ack_and_is_dropped():
    s = Script().established()
    s.recv(ACK, seq=P + 70000, payload=b"far")
    (ack,) = s.sent()
    assert (ack.flags_str, ack.ack) == ("A", P)
    assert s.conn.read() == b""


def test_ack_of_unsent_data_draws_ack_and_is_dropped():
    s = Script().established()
    s.recv(ACK, ack=L + 1000, payload=b"data")
    (ack,) = s.sent()
    assert ack.ack == P  # the data was dropped with the segment
    assert s.conn.snd_una == L


def test_receive_window_closes_and_reopens_with_update():
    s = Script(CONFIG.replace(receive_buffer=4000)).established()
    s.recv(ACK, payload=b"q" * 1452)
    s.recv(ACK, seq=P + 1452, payload=b"q" * 1452)
    s.recv(ACK, seq=P + 2904, payload=b"q" * 1096)
    s.timer(s.conn.next_deadline())  # the delayed ACK
    acks = s.sent()
    assert acks[-1].window == 0
    s.recv(ACK, seq=P + 4000, payload=b"x")  # beyond the closed window
    assert s.sent()[0].ack == P + 4000
    s.conn.read(100)
    assert s.sent() == []  # 100 bytes is less than min(buffer/2, MSS): silly window
    s.conn.read()
    (update,) = s.sent()
    assert update.window == 4000


# ------------------------------------------------------------- retransmission

def test_rto_retransmits_with_backoff_then_times_out():
    s = Script(CONFIG.replace(retries=3)).established()
    s.conn.send(b"payload", 0.0)
    s.sent()
    rto = s.conn.rto
    assert rto == pytest.approx(0.2)  # measured RTT of 0 is clamped to rto_min
    deadlines = []
    while s.conn.state is State.ESTABLISHED:
        deadlines.append(round(s.conn.next_deadline(), 6))
        s.timer(s.conn.next_deadline())
        for x in s.sent():
            assert x.seq == L and x.payload.tobytes() == b"payload"
    assert deadlines == [0.2, 0.6, 1.4, 3.0]
    assert isinstance(s.conn.error, TimeoutError)


def _quote(segment):
    """What an ICMP error quotes of a segment we sent: its header on."""
    from aiotcp import _fast
    return _fast.encode(segment.src_port, segment.dst_port, segment.seq, segment.ack, segment.flags, 0, b"")


def _time_out(s):
    while s.conn.state is State.ESTABLISHED:
        s.timer(s.conn.next_deadline())
        s.sent()


def test_a_timeout_after_a_port_unreachable_reports_the_refusal():
    """Linux's tcp_write_err: an ICMP error that did not end the connection
    (a soft error in ESTABLISHED) is what its timeout reports, not
    ETIMEDOUT: ECONNREFUSED when the peer's UDP port was gone."""
    s = Script(CONFIG.replace(retries=3)).established()
    s.conn.send(b"payload", 0.0)
    (data,) = s.sent()
    assert not s.conn.port_unreachable(_quote(data), 0.1)  # soft: the connection goes on
    assert s.state_name == "ESTABLISHED"
    _time_out(s)
    assert isinstance(s.conn.error, ConnectionRefusedError) and s.conn.error.errno == 111


def test_an_ack_after_a_port_unreachable_clears_it():
    """The path worked again (a NAT's old mapping sent it, say): the
    timeout that comes later is a timeout."""
    s = Script(CONFIG.replace(retries=3)).established()
    s.conn.send(b"payload", 0.0)
    (data,) = s.sent()
    s.conn.port_unreachable(_quote(data), 0.1)
    s.at(0.15).recv(ACK, ack=L + 7)
    s.conn.send(b"more", 0.2)
    s.sent()
    _time_out(s)
    assert type(s.conn.error) is TimeoutError


@pytest.mark.parametrize("config", [{"user_timeout": 1.0, "retries": 100},
                                    {"keepalive": True, "keepalive_idle": 1.0, "keepalive_interval": 1.0,
                                     "keepalive_count": 2},
                                    {"retries": 3, "zero_window": True}])
def test_user_timeout_keepalive_and_persist_report_the_soft_error_too(config):
    zero_window = config.pop("zero_window", False)
    s = Script(CONFIG.replace(**config)).established(window=0 if zero_window else 65535)
    if not s.conn.config.keepalive:
        s.conn.send(b"payload", 0.0)  # held by the zero window: persist probes
    s.timer(s.conn.next_deadline())
    (sent, *_) = s.sent()
    s.conn.port_unreachable(_quote(sent), s.now)
    _time_out(s)
    assert isinstance(s.conn.error, ConnectionRefusedError)


def test_karn_rule_no_rtt_sample_from_retransmission():
    s = Script().established()
    s.conn.send(b"x", 0.0)
    s.timer(s.conn.next_deadline())
    srtt = s.conn.srtt
    s.at(5.0).recv(ACK, ack=L + 1)
    assert s.conn.srtt == srtt


def test_fast_retransmit_after_three_duplicate_acks():
    s = Script().established(peer_mss=1000)
    s.conn.send(b"y" * 5000, 0.0)
    s.sent()
    for _ in range(3):
        s.recv(ACK, ack=L)
    (rexmit,) = s.sent()
    assert rexmit.seq == L and len(rexmit.payload) == 1000
    assert s.conn.recovery.fast_retransmits == 1 and s.conn.recovery.active


def test_zero_window_persist_probes_back_off_and_resume():
    s = Script().established(window=0)
    s.conn.send(b"abc", 0.0)
    assert s.sent() == []
    first = s.conn.next_deadline()
    s.timer(first)
    (probe,) = s.sent()
    assert probe.seq == L and probe.payload.tobytes() == b"a"
    second = s.conn.next_deadline()
    s.timer(second)
    assert s.sent()[0].payload.tobytes() == b"a"
    third = s.conn.next_deadline()
    assert third - second == pytest.approx(2 * (second - first))
    s.recv(ACK, ack=L, window=1000)
    (data,) = s.sent()
    assert data.payload.tobytes() == b"abc"


def test_sender_silly_window_avoidance():
    s = Script().established(peer_mss=1000, window=3000)
    s.conn.send(b"w" * 3000, 0.0)
    s.sent()
    s.recv(ACK, ack=L + 3000, window=100)  # tiny window, lots of data queued
    s.conn.send(b"v" * 5000, 0.1)
    assert s.sent() == []  # 100 bytes < MSS and < half the largest window


# ------------------------------------------------------------- teardown

def test_active_close_through_fin_wait_and_time_wait():
    s = Script().established()
    s.conn.close(0.0)
    (fin,) = s.sent()
    assert (fin.flags_str, fin.seq) == ("FA", L)
    assert s.state_name == "FIN_WAIT_1"
    s.recv(ACK, ack=L + 1)
    assert s.state_name == "FIN_WAIT_2"
    s.at(10.0).recv(FIN | ACK, ack=L + 1)
    (ack,) = s.sent()
    assert ack.ack == P + 1
    assert s.state_name == "TIME_WAIT"
    assert s.conn.next_deadline() == 70.0  # 2 x MSL = 60 s
    s.timer(69.999)
    assert s.state_name == "TIME_WAIT"
    s.timer(70.0)
    assert s.state_name == "CLOSED"
    assert s.states == [("ESTABLISHED", "FIN_WAIT_1"), ("FIN_WAIT_1", "FIN_WAIT_2"),
                        ("FIN_WAIT_2", "TIME_WAIT"), ("TIME_WAIT", "CLOSED")]


def test_fin_ack_together_in_fin_wait_1_goes_straight_to_time_wait():
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L + 1)
    assert s.states == [("ESTABLISHED", "FIN_WAIT_1"), ("FIN_WAIT_1", "TIME_WAIT")]


def test_time_wait_reacks_retransmitted_fin_and_restarts_timer():
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L + 1)
    s.sent()
    s.at(30.0).recv(FIN | ACK, seq=P, ack=L + 1)
    (ack,) = s.sent()
    assert (ack.flags_str, ack.seq, ack.ack) == ("A", L + 1, P + 1)
    assert s.conn.next_deadline() == 90.0


def test_time_wait_answers_an_in_window_bare_ack_with_nothing():
    """Linux's tcp_timewait_state_process: only a lost FIN needs our ACK
    again.  Answering every ACK made two TIME_WAITs (a simultaneous close)
    ACK each other without end once one stray ACK reached either."""
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L)  # crossed FINs
    s.recv(ACK, seq=P + 1, ack=L + 1)
    assert s.state_name == "TIME_WAIT"
    s.sent()
    for t in (1.0, 1.1, 5.0):
        s.at(t).recv(ACK, seq=P + 1, ack=L + 1)  # the peer's TIME_WAIT ACKing our FIN again
        assert s.sent() == []
    assert s.conn.stats["time_wait_bare_acks"] == 3
    s.at(6.0).recv(FIN | ACK, seq=P, ack=L + 1)  # its FIN again: our last ACK was lost
    (ack,) = s.sent()
    assert (ack.flags_str, ack.seq, ack.ack) == ("A", L + 1, P + 1)


def test_time_wait_rate_limits_acks_to_other_segments_but_not_to_data_or_fins():
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L + 1)
    s.sent()
    s.at(1.0).recv(ACK, seq=P + 5000, ack=L + 1)  # out of window
    assert [a.ack for a in s.sent()] == [P + 1]
    s.at(1.2).recv(ACK, seq=P + 5000, ack=L + 1)
    s.at(1.3).recv(SYN | ACK, seq=P + 5000, ack=L + 1)
    assert s.sent() == [] and s.conn.stats["time_wait_acks_suppressed"] == 2
    s.at(1.35).recv(ACK, seq=P - 10, ack=L + 1, payload=b"0123456789")  # data it sent before
    s.at(1.4).recv(FIN | ACK, seq=P, ack=L + 1)
    assert [a.flags_str for a in s.sent()] == ["A", "A"]
    s.at(1.45).recv(ACK, seq=P + 5000, ack=L + 1)  # still within 0.5 s of the first
    assert s.sent() == []
    s.at(1.5).recv(ACK, seq=P + 5000, ack=L + 1)
    assert len(s.sent()) == 1


def test_time_wait_ends_only_for_a_rst_at_rcv_nxt():
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L + 1)
    s.sent()
    for seq in (P, P + 2, P + 1000):
        s.recv(RST, seq=seq, ack=0)
    assert s.state_name == "TIME_WAIT" and s.sent() == []
    assert s.conn.stats["time_wait_rst_ignored"] == 3
    s.recv(RST, seq=P + 1, ack=0)
    assert s.state_name == "CLOSED" and s.conn.stats["time_wait_killed_by_rst"] == 1


def test_simultaneous_close_through_closing():
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L)  # the peer's FIN crossed ours
    assert s.state_name == "CLOSING"
    s.recv(ACK, seq=P + 1, ack=L + 1)
    assert s.state_name == "TIME_WAIT"


def test_passive_close_and_half_close():
    s = Script().established()
    s.recv(FIN | ACK, ack=L)
    assert s.state_name == "CLOSE_WAIT"
    assert s.events() == ["PeerClosed"]
    s.sent()
    s.conn.send(b"still talking", 0.0)  # half-close: we may keep sending
    (data,) = s.sent()
    assert data.payload.tobytes() == b"still talking"
    s.conn.close(0.0)
    (fin,) = s.sent()
    assert fin.flags_str == "FA" and s.state_name == "LAST_ACK"
    s.recv(ACK, seq=P + 1, ack=L + 14)
    assert s.state_name == "CLOSED" and s.conn.error is None


def test_fin_is_retransmitted():
    s = Script().established()
    s.conn.close(0.0)
    s.sent()
    s.timer(s.conn.next_deadline())
    (fin,) = s.sent()
    assert fin.flags_str == "FA" and fin.seq == L


def test_fin_after_data_carries_the_last_segment():
    s = Script().established()
    s.conn.send(b"bye", 0.0)
    s.sent()
    s.conn.close(0.0)
    (fin,) = s.sent()
    assert fin.seq == L + 3 and fin.flags_str == "FA"


def test_send_after_close_is_misuse():
    s = Script().established()
    s.conn.close(0.0)
    with pytest.raises(RuntimeError):
        s.conn.send(b"x", 0.0)


def test_abort_sends_rst():
    s = Script().established()
    s.conn.abort(0.0)
    (rst,) = s.sent()
    assert rst.flags_str == "RA" and rst.seq == L
    assert s.state_name == "CLOSED" and s.conn.error is None


# ------------------------------------------------------------- RST and SYN (RFC 5961)

def test_rst_with_exact_sequence_resets():
    s = Script().established()
    s.recv(RST, seq=P, ack=0)
    assert s.state_name == "CLOSED"
    assert isinstance(s.conn.error, ConnectionResetError)


def test_rst_in_window_but_not_exact_draws_challenge_ack():
    s = Script().established()
    s.recv(RST, seq=P + 10, ack=0)
    (ack,) = s.sent()
    assert (ack.flags_str, ack.seq, ack.ack) == ("A", L, P)
    assert s.state_name == "ESTABLISHED"


def test_rst_out_of_window_is_dropped_silently():
    s = Script().established()
    s.recv(RST, seq=P + 100_000, ack=0)
    assert s.sent() == [] and s.state_name == "ESTABLISHED"


def test_syn_in_synchronized_state_draws_rate_limited_challenge_ack():
    s = Script().established()
    s.at(1.0).recv(SYN, seq=P + 5, ack=0)
    assert [x.flags_str for x in s.sent()] == ["A"]
    s.at(1.1).recv(SYN, seq=P + 6, ack=0)
    assert s.sent() == []  # within invalid_ratelimit
    s.at(1.6).recv(SYN, seq=P + 7, ack=0)
    assert len(s.sent()) == 1
    assert s.state_name == "ESTABLISHED"
    assert s.conn.stats["challenge_acks"] == 2


def test_rst_in_syn_rcvd_of_passive_open_returns_quietly():
    s = passive()
    s.recv(RST, seq=P, ack=0)
    assert s.state_name == "CLOSED" and s.conn.error is None


def test_rst_in_last_ack_and_time_wait_closes():
    s = Script().established()
    s.recv(FIN | ACK, ack=L)
    s.conn.close(0.0)
    s.recv(RST, seq=P + 1, ack=0)
    assert s.state_name == "CLOSED" and s.conn.error is None


# ------------------------------------------------------------- sequence space

def test_sequence_comparisons_wrap():
    assert seq_lt(0xFFFFFFF0, 0x10) and seq_gt(0x10, 0xFFFFFFF0)
    assert seq_diff(0x10, 0xFFFFFFF0) == 0x20


def test_whole_lifecycle_across_the_wrap():
    s = Script(iss=0xFFFFFFFF - 3, peer_iss=0xFFFFFFFF - 1).established()
    s.conn.send(b"0123456789", 0.0)
    (data,) = s.sent()
    assert data.seq == 0xFFFFFFFD
    s.recv(ACK, seq=0xFFFFFFFF, ack=(0xFFFFFFFD + 10) & 0xFFFFFFFF, payload=b"abcdef")
    assert s.conn.snd_una == 7 and s.conn.send_buffered == 0
    assert s.conn.read() == b"abcdef" and s.conn.rcv_nxt == 5
    s.conn.close(0.0)
    s.recv(FIN | ACK, seq=5, ack=8)
    assert s.state_name == "TIME_WAIT"


def test_time_wait_record_is_compact():
    import sys
    record = TimeWait(1, 2, ("h", 1), 3, 4, 5, 0.0, 60.0, [], None)
    assert not hasattr(record, "__dict__")
    assert sys.getsizeof(record) < 200


def test_orphaned_fin_wait_2_times_out_after_fin_timeout():
    s = Script().established()
    s.conn.discard_input = True  # a full close: the user will not read again
    s.conn.close(0.0)
    s.recv(ACK, ack=L + 1)
    assert s.state_name == "FIN_WAIT_2"
    assert s.conn.next_deadline() == 60.0  # Linux tcp_fin_timeout
    s.timer(60.0)
    assert s.state_name == "CLOSED" and s.conn.stats["fin_wait_2_timeouts"] == 1


def test_half_closed_fin_wait_2_waits_for_the_peer():
    s = Script().established()
    s.conn.close(0.0)  # write_eof: the user still reads
    s.recv(ACK, ack=L + 1)
    assert s.state_name == "FIN_WAIT_2" and s.conn.next_deadline() is None


def test_keepalive_probes_then_times_out():
    s = Script(CONFIG.replace(keepalive=True, keepalive_idle=100.0, keepalive_interval=10.0,
                              keepalive_count=3)).established()
    assert s.conn.next_deadline() == 100.0
    s.at(50.0).recv(ACK, ack=L)  # hearing from the peer restarts the idle clock
    assert s.conn.next_deadline() == 150.0
    s.timer(150.0)
    (probe,) = s.sent()
    assert (probe.flags_str, probe.seq, len(probe.payload)) == ("A", L - 1, 0)
    s.timer(160.0).timer(170.0)
    assert len(s.sent()) == 2 and s.state_name == "ESTABLISHED"
    s.timer(180.0)
    assert s.state_name == "CLOSED" and isinstance(s.conn.error, TimeoutError)
    (rst,) = s.sent()  # as Linux: the peer may live, and only its answers be lost
    assert rst.flags_str == "RA" and rst.seq == L


def test_keepalive_gives_up_at_the_user_timeout_when_one_is_set():
    """Linux: with TCP_USER_TIMEOUT, keepalive ends the connection once the
    peer has been silent that long (a probe sent), not after keepalive_count
    probes."""
    s = Script(CONFIG.replace(keepalive=True, keepalive_idle=100.0, keepalive_interval=10.0,
                              keepalive_count=9, user_timeout=125.0)).established()
    s.timer(100.0).timer(110.0).timer(120.0)
    assert len(s.sent()) == 3 and s.state_name == "ESTABLISHED"
    s.timer(130.0)  # 130 s of silence, past the 125 s user timeout: six probes short of nine
    assert s.state_name == "CLOSED" and isinstance(s.conn.error, TimeoutError)
    assert s.conn.stats["keepalive_timeouts"] == 1


def test_keepalive_answer_keeps_the_connection():
    s = Script(CONFIG.replace(keepalive=True, keepalive_idle=100.0, keepalive_interval=10.0,
                              keepalive_count=1)).established()
    s.timer(100.0)
    s.sent()
    s.at(101.0).recv(ACK, ack=L)  # the peer answers the probe
    assert s.conn.next_deadline() == 201.0 and s.conn.keepalive_probes == 0


def test_keepalive_is_off_by_default():
    s = Script().established()
    assert s.conn.next_deadline() is None


def test_user_timeout_fails_unacknowledged_data():
    s = Script(CONFIG.replace(user_timeout=5.0, retries=100)).established()
    s.conn.send(b"data", 0.0)
    while s.conn.state is State.ESTABLISHED:
        s.timer(s.conn.next_deadline())
        assert s.now <= 5.0
    assert s.now == 5.0 and isinstance(s.conn.error, TimeoutError)


def test_user_timeout_restarts_on_progress():
    s = Script(CONFIG.replace(user_timeout=5.0)).established()
    s.conn.send(b"a" * 100, 0.0)
    s.at(4.0).recv(ACK, ack=L + 50)
    assert s.conn.user_timeout_deadline == 9.0
    s.at(4.5).recv(ACK, ack=L + 100)
    assert s.conn.user_timeout_deadline is None


# ------------------------------------------------------------- timestamps (RFC 7323)

TS = CONFIG.replace(timestamps=True)


def ts_established(peer_ts=5000):
    s = Script(TS)
    s.conn.connect(0.0)
    (syn,) = s.sent()
    assert syn.has_ts and syn.ts_ecr == 0
    s.at(0.010).recv(SYN | ACK, seq=PEER_ISS, ack=L, mss=1452, ts=(peer_ts, syn.ts_val))
    (ack,) = s.sent()
    return s, syn, ack


def test_timestamps_negotiated_echoed_and_taken_out_of_the_mss():
    s, syn, ack = ts_established()
    assert s.conn.ts_ok and ack.has_ts and ack.ts_ecr == 5000
    assert ack.ts_val - syn.ts_val == 10  # a millisecond clock
    assert s.conn.mss == 1452 - 12  # RFC 6691
    s.conn.send(b"x" * 3000, 0.02)
    sizes = [len(x.payload) for x in s.sent()]
    assert sizes == [1440, 1440, 120]


def test_no_timestamps_when_the_peer_does_not_offer_them():
    s = Script(TS)
    s.conn.connect(0.0)
    s.sent()
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L, mss=1452)
    (ack,) = s.sent()
    assert not s.conn.ts_ok and not ack.has_ts and s.conn.mss == 1452


def test_rtt_measured_from_timestamp_echo_on_every_ack():
    s, syn, ack = ts_established()
    s.at(1.0).conn.send(b"a" * 100, 1.0)
    (data,) = s.sent()
    s.at(1.3).recv(ACK, ack=L + 100, ts=(5100, data.ts_val))
    assert s.conn.srtt == pytest.approx(0.875 * 0.010 + 0.125 * 0.3, abs=0.002)


def test_paws_drops_a_segment_with_an_old_timestamp():
    s, syn, ack = ts_established(peer_ts=5000)
    s.at(0.5).recv(ACK, payload=b"new", ts=(6000, ack.ts_val))
    assert s.conn.ts_recent == 6000
    s.sent()
    s.at(0.6).recv(ACK, seq=P + 3, payload=b"old", ts=(5500, ack.ts_val))
    (dup,) = s.sent()
    assert dup.ack == P + 3  # dropped, answered with an ACK
    assert s.conn.read() == b"new" and s.conn.stats["paws_rejected"] == 1


def test_timestamp_on_a_segment_beyond_the_last_ack_is_not_remembered():
    s, syn, ack = ts_established(peer_ts=5000)
    s.recv(ACK, seq=P + 500, payload=b"later", ts=(9000, ack.ts_val))  # out of order
    assert s.conn.ts_recent == 5000


# ------------------------------------------------------------- SACK (RFC 2018, 2883, 6675)

SACK = CONFIG.replace(sack=True)


def sack_established(peer_mss=1000):
    s = Script(SACK)
    s.conn.connect(0.0)
    (syn,) = s.sent()
    assert syn.sack_permitted
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L, mss=peer_mss, sack_permitted=True)
    s.sent()
    assert s.conn.sack_ok
    return s


def test_sack_only_when_both_offer():
    s = Script(SACK)
    s.conn.connect(0.0)
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L)
    assert not s.conn.sack_ok
    p = Script(SACK)
    p.conn.accept_syn(seg(SYN, PEER_ISS), 0.0)
    (synack,) = p.sent()
    assert not synack.sack_permitted  # a SYN-ACK only answers an offer


def test_receiver_reports_sack_blocks_most_recent_first():
    s = sack_established()
    s.recv(ACK, seq=P + 100, payload=b"b" * 100)
    (a1,) = s.sent()
    assert a1.ack == P and a1.sack_blocks == ((P + 100, P + 200),)
    s.recv(ACK, seq=P + 300, payload=b"d" * 100)
    (a2,) = s.sent()
    assert a2.sack_blocks == ((P + 300, P + 400), (P + 100, P + 200))
    s.recv(ACK, seq=P + 200, payload=b"c" * 100)  # joins the two blocks
    (a3,) = s.sent()
    assert a3.sack_blocks == ((P + 100, P + 400),)
    s.recv(ACK, seq=P, payload=b"a" * 100)
    (a4,) = s.sent()
    assert a4.ack == P + 400 and a4.sack_blocks == ()


def test_duplicate_segment_is_reported_with_dsack():
    s = sack_established()
    s.recv(ACK, seq=P, payload=b"a" * 100)
    s.recv(ACK, seq=P + 100, payload=b"b" * 100)
    s.sent()
    s.recv(ACK, seq=P, payload=b"a" * 100)  # a spurious retransmission
    (ack,) = s.sent()
    assert ack.ack == P + 200 and ack.sack_blocks == ((P, P + 100),)  # RFC 2883: below the ACK


def test_sack_scoreboard_retransmits_the_lost_segment_before_three_dupacks():
    # RFC 6675: IsLost(snd_una) once more than 2 * SMSS bytes are SACKed above it
    s = sack_established(peer_mss=1000)
    s.conn.send(b"z" * 10_000, 0.0)
    assert len(s.sent()) == 10
    s.recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 2000)])
    s.recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 3000)])
    assert s.sent() == []  # 2 * SMSS SACKed above: not lost yet
    s.recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 4000)])
    (rexmit,) = s.sent()
    assert (rexmit.seq, len(rexmit.payload)) == (L, 1000)
    assert s.conn.recovery.active and s.conn.sacked_bytes == 3000
    assert s.conn.cc.ssthresh == s.conn.cc.cwnd  # no inflation in RFC 6675
    # a later hole is repaired too once SACKs show it lost
    s.recv(ACK, ack=L + 4000, sack_blocks=[(L + 5000, L + 8000)])
    sent = s.sent()
    assert sent[0].seq == L + 4000
    s.recv(ACK, ack=L + 10_000)
    assert not s.conn.recovery.active and s.conn.sacked_bytes == 0


def test_sacked_bytes_before_recovery_leave_room_for_new_data():
    """cwnd bounds the pipe, not the flight, before recovery too (as Linux's
    tcp_packets_in_flight): two segments SACKed above a hole that is not yet
    judged lost have left the network, so two new ones may go.  Before, the
    data a receiver held above a hole counted against cwnd until recovery
    began, which with steady random loss halved what a BBR sender had out."""
    s = sack_established(peer_mss=1000)
    s.conn.cc.cwnd = 10_000
    s.conn.send(b"z" * 20_000, 0.0)
    assert len(s.sent()) == 10
    s.recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 3000)])
    assert not s.conn.recovery.active and s.conn.sacked_bytes == 2000
    new = [(seg.seq, len(seg.payload)) for seg in s.sent() if seg.payload]
    assert new == [(L + 10_000, 1000), (L + 11_000, 1000)]
    assert s.conn._pipe() == 10_000  # what is in the network: cwnd, no more


def test_dsack_and_bogus_sack_blocks_are_ignored():
    s = sack_established()
    s.conn.send(b"q" * 3000, 0.0)
    s.sent()
    s.recv(ACK, ack=L + 1000, sack_blocks=[(L, L + 1000)])  # D-SACK below the ACK
    s.recv(ACK, ack=L + 1000, sack_blocks=[(L + 2000, L + 90_000)])  # beyond what was sent
    assert s.conn.sacked_bytes == 0
    assert s.conn.stats["dsack_received"] == 1 and s.conn.stats["sack_blocks_invalid"] == 1


def test_proportional_rate_reduction_spreads_the_reduction():
    """RFC 6937: while pipe > ssthresh, what is sent in recovery stays at
    ceil(prr_delivered * ssthresh / RecoverFS): about half the delivered data
    with NewReno's ssthresh of flight / 2, instead of a stall then a burst."""
    import math
    s = Script(SACK.replace(congestion_control="newreno"))
    s.conn.connect(0.0)
    s.sent()
    s.recv(SYN | ACK, seq=PEER_ISS, ack=L, mss=1000, sack_permitted=True, window=65535)
    s.sent()
    s.conn.cc.cwnd = 20_000
    s.conn.send(b"p" * 40_000, 0.0)
    assert len(s.sent()) == 20
    sent_in_recovery = []
    for k in range(2, 16):  # segment 1 lost; segments 2..15 arrive one by one, 50 ms on
        s.at(0.05 + k * 0.001).recv(ACK, ack=L, sack_blocks=[(L + 1000, L + k * 1000)])
        out = s.sent()
        if s.conn.recovery.active:
            sent_in_recovery.append(len(out))
            ssthresh, fs = s.conn.cc.ssthresh, s.conn.recovery.recover_fs
            assert s.conn.recovery.prr_out <= max(math.ceil(s.conn.recovery.prr_delivered * ssthresh / fs), 1000)
    # the first two SACKs each let a new segment go (the SACKed one has left
    # the network: RFC 3042's limited transmit, as Linux's pipe gives it)
    assert s.conn.recovery.recover_fs == 22_000 and s.conn.cc.ssthresh == 11_000
    total = sum(sent_in_recovery)
    assert 4 <= total <= 8  # about half of the 12 to 14 segments delivered
    assert max(sent_in_recovery) <= 2  # spread out, no burst


def test_restart_after_idle_returns_to_the_initial_window():
    s = Script(CONFIG.replace(slow_start_after_idle=True)).established(peer_mss=1000)
    s.conn.cc.cwnd = 50_000
    s.conn.send(b"a", 0.0)
    s.recv(ACK, ack=L + 1)
    s.sent()
    s.at(10.0).conn.send(b"b" * 30_000, 10.0)  # idle far longer than the RTO
    assert s.conn.cc.cwnd == 10_000
    assert len(s.sent()) == 10



def test_tail_loss_probe_then_rack_repair_without_rto():
    """RFC 8985: the last two segments of a flight are lost.  After 2 SRTT a
    probe resends the last one; its SACK leaves a hole that RACK declares lost
    at once, and SACK recovery repairs it; no RTO."""
    s = sack_established(peer_mss=1000)
    s.conn.config = s.conn.config.replace(tail_loss_probe=True)
    s.conn.rtt.set(0.05, 0.05)  # the handshake took no time: give it a real RTT
    s.conn.send(b"t" * 5000, 0.0)
    assert len(s.sent()) == 5
    s.at(0.05).recv(ACK, ack=L + 3000)  # segments 4 and 5 never arrive
    pto = s.conn.next_deadline()
    assert pto == pytest.approx(0.05 + 2 * s.conn.srtt, abs=0.002)
    s.timer(pto)
    (probe,) = s.sent()
    assert (probe.seq, len(probe.payload)) == (L + 4000, 1000)  # the last segment again
    s.at(pto + 0.06).recv(ACK, ack=L + 3000, sack_blocks=[(L + 4000, L + 5000)])
    # one segment SACKed above the hole is not lost by counting bytes, but
    # by RACK's clock: the hole was sent long before the probe, which arrived
    (repair,) = s.sent()
    assert (repair.seq, len(repair.payload)) == (L + 3000, 1000)
    s.recv(ACK, ack=L + 5000)
    assert s.conn.rto_count == 0 and s.conn.rack.probes == 1 and s.conn.rack.losses >= 1


def test_tail_loss_probe_with_timestamps_then_rack_repair_without_rto():
    """The same with timestamps: the ACK that SACKs the probe echoes
    TS.Recent, the timestamp of the last segment that arrived in order (data
    above a hole never updates it, RFC 7323 section 4.3), which predates
    the probe.  That SACK still counts as the probe's delivery (only the
    RTT test applies to it, as in Linux): RACK declares the hole lost and
    repairs it; no RTO."""
    s = Script(SACK.replace(timestamps=True, tail_loss_probe=True))
    s.conn.connect(0.0)
    (syn,) = s.sent()
    s.at(0.010).recv(SYN | ACK, seq=PEER_ISS, ack=L, mss=1012, sack_permitted=True, ts=(5000, syn.ts_val))
    s.sent()
    assert s.conn.ts_ok and s.conn.sack_ok and s.conn.mss == 1000
    s.conn.rtt.set(0.05, 0.05)
    s.at(0.02).conn.send(b"t" * 5000, 0.02)
    first = s.sent()
    assert len(first) == 5
    s.at(0.07).recv(ACK, ack=L + 3000, ts=(5060, first[2].ts_val))  # segments 4 and 5 never arrive
    s.timer(s.conn.next_deadline())
    (probe,) = s.sent()
    assert (probe.seq, len(probe.payload)) == (L + 4000, 1000) and probe.ts_val > first[2].ts_val
    s.at(s.now + 0.05).recv(ACK, ack=L + 3000, sack_blocks=[(L + 4000, L + 5000)],
                            ts=(5200, first[2].ts_val))  # TS.Recent: still the third segment's
    (repair,) = s.sent()
    assert (repair.seq, len(repair.payload)) == (L + 3000, 1000)
    s.recv(ACK, ack=L + 5000, ts=(5210, repair.ts_val))
    assert s.conn.rto_count == 0 and s.conn.rack.probes == 1 and s.conn.rack.losses >= 1


def test_one_tail_loss_probe_per_tail_then_the_rto():
    """RFC 8985 section 7.3: a probe that sends new data must not arm
    another probe; the RTO follows until an ACK advances."""
    s = sack_established(peer_mss=1000)
    s.conn.config = s.conn.config.replace(tail_loss_probe=True)
    s.conn.rtt.set(0.05, 0.05)
    s.conn.send(b"u" * 3000, 0.0)
    s.sent()
    s.at(0.05).recv(ACK, ack=L + 1000)
    s.conn.send(b"v" * 1000, 0.05)  # more data queued but held by nothing: sent at once
    s.sent()
    s.timer(s.conn.next_deadline())
    assert s.conn.rack.probes == 1 and len(s.sent()) == 1
    assert s.conn.next_deadline() == s.conn.rto_deadline and s.conn.pto_deadline is None


def test_rack_time_rule_repairs_a_hole_that_byte_counting_cannot():
    """One segment SACKed above a hole is not enough for RFC 6675's IsLost,
    but RACK's reordering window (min RTT / 4) is: recovery starts then."""
    s = sack_established(peer_mss=1000)
    s.conn.rtt.set(0.04, 0.04)
    s.conn.send(b"r" * 3000, 0.0)
    s.sent()
    s.at(0.04).recv(ACK, ack=L + 1000, sack_blocks=[(L + 2000, L + 3000)])
    assert s.sent() == [] and s.conn.next_deadline() == pytest.approx(0.05)
    s.timer(0.05)
    (repair,) = s.sent()
    assert repair.seq == L + 1000 and s.conn.rack.losses == 1 and s.conn.rto_count == 0


def test_close_in_syn_sent_goes_to_closed():
    s = Script()
    s.conn.connect(0.0)
    s.sent()
    s.conn.close(0.1)
    assert s.state_name == "CLOSED" and s.sent() == [] and s.conn.next_deadline() is None
    assert s.states == [("CLOSED", "SYN_SENT"), ("SYN_SENT", "CLOSED")]


def test_close_in_syn_rcvd_sends_fin_once_established():
    s = passive()
    s.sent()
    s.conn.close(0.0)  # RFC 9293 3.10.4: queue the FIN until the handshake completes
    assert s.state_name == "SYN_RCVD" and s.sent() == []
    s.recv(ACK, seq=P, ack=L)
    (fin,) = s.sent()
    assert fin.flags_str == "FA" and fin.seq == L
    assert s.states[-2:] == [("SYN_RCVD", "ESTABLISHED"), ("ESTABLISHED", "FIN_WAIT_1")]


def test_acked_bytes_leave_the_send_buffer_at_once_and_every_resend_carries_the_right_bytes():
    # the send buffer holds exactly what is not yet acknowledged: offsets
    # into it count from snd_una
    s = Script().established(peer_mss=1000, window=65535)
    data = bytes(range(256)) * 40  # 10,240 distinctive bytes
    s.conn.send(data, s.now)
    first = s.sent()
    assert b"".join(bytes(x.payload) for x in first) == data[:10_000]  # IW10 of 1000 B
    s.at(0.1).recv(ACK, ack=L + 3000)
    assert s.conn.send_buffered == len(data) - 3000 and bytes(s.conn._sndbuf) == data[3000:]
    s.sent()
    s.timer(s.conn.rto_deadline)  # RTO: resend from snd_una
    (rtx,) = [x for x in s.sent() if x.seq == L + 3000]
    assert bytes(rtx.payload) == data[3000:4000]
    s.at(1.5).recv(ACK, ack=L + 8000)
    assert bytes(s.conn._sndbuf) == data[8000:]
    s.sent()
    s.timer(s.conn.rto_deadline)
    (rtx,) = [x for x in s.sent() if x.seq == L + 8000]
    assert bytes(rtx.payload) == data[8000:9000]
    s.conn.send(b"tail", s.now)  # appended behind what is still in flight
    s.recv(ACK, ack=L + len(data))
    assert bytes(s.conn._sndbuf) == b"tail"
    (x,) = [x for x in s.sent() if x.seq == L + len(data)]
    assert bytes(x.payload) == b"tail"
    s.recv(ACK, ack=L + len(data) + 4)
    assert s.conn.send_buffered == 0


def test_small_writes_reuse_the_send_buffer_storage():
    # one-byte messages, each acknowledged before the next: each goes into
    # the storage the last one left, which is never shrunk and regrown
    from aiotcp.core.connection import seq_diff
    s = Script().established()
    sizes = set()
    for i in range(300):
        s.conn.send(bytes([i & 0xFF]), s.now)
        (x,) = s.sent()
        assert bytes(x.payload) == bytes([i & 0xFF]) and seq_diff(x.seq, L) == i
        s.recv(ACK, ack=x.seq + 1)
        assert s.conn.send_buffered == 0 and len(s.conn._sndbuf) == 0
        sizes.add(sys.getsizeof(s.conn._sndbuf))
    assert len(sizes) == 1
    # each written while the one before is still in flight: the buffer holds
    # just that one, and its storage stays put
    sizes = set()
    for i in range(300, 5300):
        s.conn.send(bytes([i & 0xFF]), s.now)
        (x,) = s.sent()
        assert bytes(x.payload) == bytes([i & 0xFF]) and seq_diff(x.seq, L) == i
        s.recv(ACK, ack=x.seq)  # all but this one
        assert bytes(s.conn._sndbuf) == bytes([i & 0xFF])
        sizes.add(sys.getsizeof(s.conn._sndbuf))
    assert len(sizes) == 1


# ------------------------------------------------------------- RACK (RFC 8985)

class SackPeer:
    """A scripted receiver 50 ms away: each segment the connection sends is
    acknowledged (cumulative ACK plus SACK blocks) one RTT later, unless the
    test drops that transmission."""

    def __init__(self, s, drop):
        self.s, self.drop, self.got, self.count = s, drop, set(), {}

    def ack_for(self):
        base = L
        while base in self.got:
            base += 1000
        blocks, start, end = [], None, None
        for seq in sorted(self.got):
            if seq < base:
                continue
            if start is None or seq != end:
                if start is not None:
                    blocks.append((start, end))
                start = seq
            end = seq + 1000
        if start is not None:
            blocks.append((start, end))
        return base, blocks[-3:]

    def run(self, t, segments, limit=100):
        for _ in range(limit):
            replies = []
            for x in segments:
                t += 0.001
                n = self.count[x.seq] = self.count.get(x.seq, 0) + 1
                if (x.seq, n) in self.drop or not x.payload:
                    continue
                self.got.add(x.seq)
                ack, blocks = self.ack_for()
                self.s.at(t + 0.05).recv(ACK, ack=ack, sack_blocks=blocks)
                replies += self.s.sent()
            t += 0.05
            if not replies:
                deadline = self.s.conn.next_deadline()
                if deadline is None or self.s.conn.snd_una == self.s.conn.snd_max:
                    return t
                assert deadline != self.s.conn.rto_deadline, "only the RTO is left"
                self.s.timer(deadline)
                replies = self.s.sent()
                t = max(t, deadline)
            segments = replies
        raise AssertionError("no progress")


def test_rack_repairs_a_lost_retransmission_without_an_rto():
    """The first segment is lost, and so is its fast retransmission.  New
    data sent after the retransmission is SACKed a round trip later: by
    RACK's clock the retransmission is lost too, and it goes again."""
    s = sack_established(peer_mss=1000)
    s.conn.rtt.set(0.05, 0.05)
    data = b"k" * 30_000
    s.conn.send(data, 0.0)
    first = s.sent()
    peer = SackPeer(s, drop={(L, 1), (L, 2)})
    peer.run(0.0, first)
    assert s.conn.snd_una == L + len(data)
    assert peer.count[L] == 3  # original, lost retransmission, its repair
    assert s.conn.rack.lost_retransmits == 1 and s.conn.rto_count == 0
    assert s.conn.recovery.fast_retransmits == 1  # one recovery episode, one window reduction


def test_rack_without_dupthresh_sacks_waits_a_reordering_window():
    """Fewer than DupThresh segments SACKed above a hole: RACK waits
    min_rtt / 4 past the newest delivery before it calls the hole lost."""
    s = sack_established(peer_mss=1000)
    s.conn.rtt.set(0.04, 0.04)
    s.conn.send(b"w" * 3000, 0.0)
    s.sent()
    s.at(0.040).recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 2000)])
    assert s.sent() == [] and s.conn.reo_deadline == pytest.approx(0.050)
    s.at(0.045).recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 3000)])
    # RACK.rtt is now that of the newest delivery: the deadline moves on
    assert s.sent() == [] and s.conn.reo_deadline == pytest.approx(0.055)
    s.timer(0.055)
    (repair,) = s.sent()
    assert repair.seq == L and s.conn.rack.losses == 1


def test_rack_reordering_seen_widens_the_window_in_recovery():
    """RFC 8985 step 3: an original transmission delivered below data
    already delivered is reordering, and from then on the reordering window
    stays min_rtt / 4 even with DupThresh segments SACKed."""
    s = sack_established(peer_mss=1000)
    s.conn.rtt.set(0.04, 0.04)
    s.conn.send(b"o" * 6000, 0.0)
    s.sent()
    s.at(0.040).recv(ACK, ack=L, sack_blocks=[(L + 1000, L + 2000)])
    s.at(0.041).recv(ACK, ack=L + 2000)  # the first segment was only late
    assert s.conn.rack.reordering and s.sent() == []
    for k in (4, 5, 6):  # segment 3 missing, 3 segments SACKed above it
        s.at(0.040 + k * 0.001).recv(ACK, ack=L + 2000, sack_blocks=[(L + 3000, L + k * 1000)])
    assert s.sent() == [] and s.conn.reo_wnd == pytest.approx(0.01)
    s.timer(s.conn.reo_deadline)
    (repair,) = s.sent()
    assert repair.seq == L + 2000


def test_dsack_widens_the_reordering_window_once_per_round_trip():
    """RFC 8985 section 6.2 step 4: a D-SACK shows a retransmission was
    spurious; the reordering window grows by min_rtt / 4 (at most once per
    round trip) and stays wide for 16 recoveries."""
    s = sack_established(peer_mss=1000)
    s.conn.rtt.set(0.04, 0.04)
    s.conn.send(b"d" * 4000, 0.0)
    s.sent()
    assert s.conn.reo_wnd == pytest.approx(0.01)
    s.at(0.04).recv(ACK, ack=L + 2000, sack_blocks=[(L, L + 1000)])  # D-SACK: below the ACK
    assert s.conn.rack.dsacks == 1 and s.conn.rack.reo_mult == 2
    assert s.conn.reo_wnd == pytest.approx(0.02)
    s.at(0.041).recv(ACK, ack=L + 3000, sack_blocks=[(L + 1000, L + 2000)])  # same round trip
    assert s.conn.rack.dsacks == 2 and s.conn.rack.reo_mult == 2
    s.at(0.05).recv(ACK, ack=L + 4000)
    s.conn.send(b"e" * 1000, 0.05)
    s.at(0.09).recv(ACK, ack=L + 5000, sack_blocks=[(L + 4000, L + 5000)])  # the next round trip
    assert s.conn.rack.reo_mult == 3 and s.conn.reo_wnd == pytest.approx(0.03)
    for _ in range(16):
        s.conn.rack.on_recovery_end()
    assert s.conn.rack.reo_mult == 1


def test_a_write_after_everything_is_acknowledged_starts_the_send_buffer_afresh():
    """With all earlier data acknowledged the send buffer holds nothing (as
    a kernel socket's: an idle connection keeps no storage), and the next
    write takes a block of the process's pool; the sequence numbers, the
    payloads and a retransmission of the new data stay right, and so does
    a write that lands while data is still in flight."""
    s = Script().established(peer_mss=1000)
    buf = s.conn._sndbuf
    empty = sys.getsizeof(buf)
    s.conn.send(b"a" * 1500, 0.0)
    assert [(x.seq, x.payload.tobytes()) for x in s.sent()] == [(L, b"a" * 1000), (L + 1000, b"a" * 500)]
    size = sys.getsizeof(buf)
    s.recv(ACK, ack=L + 1500)
    assert len(buf) == 0 and sys.getsizeof(buf) == empty < size  # all acknowledged: nothing held
    s.conn.send(b"b" * 1200, 0.0)
    assert s.conn._sndbuf is buf and bytes(buf) == b"b" * 1200 and sys.getsizeof(buf) == size
    assert [(x.seq, x.payload.tobytes()) for x in s.sent()] == [(L + 1500, b"b" * 1000), (L + 2500, b"b" * 200)]
    s.conn.send(b"c" * 300, 0.0)  # behind data in flight: appended
    assert bytes(buf) == b"b" * 1200 + b"c" * 300
    assert [(x.seq, x.payload.tobytes()) for x in s.sent()] == [(L + 2700, b"c" * 300)]
    s.timer(s.conn.rto_deadline)  # the RTO resends from the first unacknowledged byte
    (again,) = [x for x in s.sent() if x.seq == L + 1500]
    assert again.payload.tobytes() == b"b" * 1000


# ------------------------------------------------------------- RFC rules an independent peer checks

TS = CONFIG.replace(timestamps=True)


def test_syn_ack_carries_window_scale_only_if_the_syn_did():
    # RFC 7323 section 2.2
    config = CONFIG.replace(window_scaling=True, receive_buffer=1 << 20, receive_buffer_max=None)
    s = Script(config)
    s.conn.accept_syn(seg(SYN, PEER_ISS, 0, mss=1452), 0.0)  # no options but the MSS
    (synack,) = s.sent()
    assert synack.flags_str == "SA" and synack.wscale == -1 and not synack.has_ts
    s = Script(config)
    s.conn.accept_syn(seg(SYN, PEER_ISS, 0, mss=1452, wscale=7), 0.0)
    (synack,) = s.sent()
    assert synack.wscale == 5


def established_with_timestamps():
    s = Script(TS)
    s.conn.connect(0.0)
    s.recv(SYN | ACK, seq=PEER_ISS, ack=ISS + 1, mss=1460, ts=(1000, 0))
    assert s.conn.ts_ok
    s.sent()
    return s


def test_time_wait_reacks_carry_timestamps_after_an_active_close():
    # RFC 7323 section 3.2: every segment but a RST, once negotiated
    s = established_with_timestamps()
    s.conn.close(1.0)
    s.recv(FIN | ACK, ack=L + 1, ts=(1100, 0))
    assert s.state_name == "TIME_WAIT"
    s.sent()
    record = s.conn.time_wait
    s.at(2.0).recv(FIN | ACK, seq=P, ack=L + 1, ts=(1200, 0))  # our last ACK was lost
    (ack,) = s.sent()
    assert ack.flags_str == "A" and ack.has_ts and ack.ts_ecr == 1200
    assert ack.ts_val == (2000 + s.conn._ts_offset) & 0xFFFFFFFF
    assert record.ts_recent == 1200


def test_time_wait_reacks_carry_timestamps_after_closing():
    s = established_with_timestamps()
    s.conn.close(1.0)
    s.recv(FIN | ACK, ack=L, ts=(1100, 0))  # crossed FINs: CLOSING
    s.recv(ACK, seq=P + 1, ack=L + 1, ts=(1110, 0))
    assert s.state_name == "TIME_WAIT"
    s.sent()
    s.at(3.0).recv(FIN | ACK, seq=P, ack=L + 1, ts=(1300, 0))
    (ack,) = s.sent()
    assert ack.has_ts and ack.ts_ecr == 1300


def test_time_wait_without_timestamps_sends_none():
    s = Script().established()
    s.conn.close(0.0)
    s.recv(FIN | ACK, ack=L + 1)
    s.sent()
    s.recv(FIN | ACK, seq=P, ack=L + 1)
    (ack,) = s.sent()
    assert not ack.has_ts


def test_release_with_unread_data_resets_the_peer():
    # RFC 1122 section 4.2.2.13, Linux tcp_close(): not an orderly FIN
    s = Script().established()
    s.recv(ACK, payload=b"never read")
    s.sent()
    s.conn.release(1.0)
    (rst,) = s.sent()
    assert rst.flags_str == "RA" and rst.seq == L
    assert s.state_name == "CLOSED" and s.conn.stats["resets_unread_data"] == 1


def test_release_with_everything_read_is_an_orderly_close():
    s = Script().established()
    s.recv(ACK, payload=b"read")
    assert s.conn.read() == b"read"
    s.sent()
    s.conn.release(1.0)
    (fin,) = s.sent()
    assert fin.flags_str == "FA" and s.state_name == "FIN_WAIT_1"


@pytest.mark.parametrize("acked", [False, True], ids=["fin-wait-1", "fin-wait-2"])
def test_data_after_release_draws_a_reset(acked):
    s = Script().established()
    s.conn.release(0.0)
    s.sent()
    if acked:
        s.recv(ACK, ack=L + 1)
        assert s.state_name == "FIN_WAIT_2"
    s.recv(ACK, ack=L + 1 if acked else L, payload=b"more for a closed socket")
    (rst,) = s.sent()
    assert rst.flags_str == "RA" and rst.seq == (L + 1 if acked else L)
    assert s.state_name == "CLOSED" and s.conn.stats["resets_data_after_close"] == 1


def test_data_after_a_half_close_is_still_read():
    s = Script().established()
    s.conn.close(0.0)  # write_eof: the user still reads
    s.sent()
    s.recv(ACK, ack=L + 1, payload=b"reply")
    assert s.conn.read() == b"reply" and s.state_name == "FIN_WAIT_2"


def test_a_released_connection_lingers_then_resets():
    s = Script(CONFIG.replace(linger=5.0, retries=100)).established()
    s.conn.send(b"x" * 100, 0.0)
    s.conn.release(0.0)
    s.sent()
    assert s.conn.orphan_deadline == 5.0
    s.timer(5.0)  # the peer never acknowledged
    assert s.state_name == "CLOSED" and s.conn.stats["linger_timeouts"] == 1
    rst = [x for x in s.sent() if x.flags_str == "RA"]
    assert rst and rst[-1].seq == L + 101
    (closed,) = [e for _, e in s.conn.events if type(e).__name__ == "Closed"]
    assert isinstance(closed.error, TimeoutError)


def test_a_released_connection_acknowledged_in_time_has_fin_timeout_next():
    s = Script(CONFIG.replace(linger=5.0)).established()
    s.conn.release(0.0)
    s.at(1.0).recv(ACK, ack=L + 1)
    assert s.state_name == "FIN_WAIT_2" and s.conn.orphan_deadline == 61.0
    assert [type(e).__name__ for _, e in s.conn.events].count("FinAcked") == 1


def test_reconfigure_changes_one_connections_options():
    s = Script().established()
    assert s.conn.next_deadline() is None
    s.conn.reconfigure(1.0, keepalive=True, keepalive_idle=30.0)
    assert s.conn.keepalive_deadline == 31.0 and s.conn.config.keepalive
    s.conn.reconfigure(2.0, keepalive=False)
    assert s.conn.keepalive_deadline is None


def test_a_connection_copies_every_option_of_its_config_and_of_each_reconfigure():
    """The values a connection copies out of its Config (once per Config,
    Config.per_connection and Config.buffer_sizes) are that Config's: a fresh connection's, and
    after reconfigure() the new Config's, never an earlier one's."""
    changed = dict(nodelay=False, delayed_ack=0.1, ack_coalescing=False, keepalive=True,
                   tail_loss_probe=False, slow_start_after_idle=False, user_timeout=7.0, nat_keepalive=9.0,
                   timer_tick=0.002, max_pacing_rate=1e6, rto_initial=2.0, rto_min=0.3, rto_max=90.0,
                   receive_buffer=4096, receive_buffer_max=8192, send_buffer=2048, send_buffer_max=16384)

    def copied(conn):
        rtt = conn.rtt
        return (conn._nodelay, conn._delayed_ack, conn._ack_coalescing, conn._keepalive, conn._tlp,
                conn._ss_after_idle, conn._user_timeout, conn._nat_keepalive, conn._timer_tick,
                conn._pacing, conn._max_pacing_rate, rtt.rto_initial, rtt.rto_min, rtt.rto_max, rtt.granularity,
                conn._rcvbuf_size, conn._rcvbuf_max, conn.send_buffer, conn._sndbuf_max)

    def expected(config):
        return (config.nodelay, config.delayed_ack, config.ack_coalescing, config.keepalive,
                config.tail_loss_probe, config.slow_start_after_idle,
                -1.0 if config.user_timeout is None else config.user_timeout,
                -1.0 if config.nat_keepalive is None else config.nat_keepalive, config.timer_tick,
                config.pacing or config.max_pacing_rate is not None, config.max_pacing_rate or 0.0,
                config.rto_initial, config.rto_min, config.rto_max, config.timer_tick,
                config.receive_buffer, max(config.receive_buffer, config.receive_buffer_max or 0)
                if config.receive_buffer_max is not None else 0,
                config.send_buffer, max(config.send_buffer, config.send_buffer_max or 0)
                if config.send_buffer_max is not None else 0)

    other = CONFIG.replace(**changed)
    assert all(getattr(other, k) != getattr(CONFIG, k) for k in changed)
    conn = Script().established().conn
    assert copied(conn) == expected(CONFIG)
    assert copied(Script(other).conn) == expected(other)
    conn.reconfigure(1.0, **changed)
    assert copied(conn) == expected(other) and conn.config.per_connection is not CONFIG.per_connection
    assert conn.config.buffer_sizes is not CONFIG.buffer_sizes
    conn.reconfigure(2.0, **{k: getattr(CONFIG, k) for k in changed})
    assert copied(conn) == expected(CONFIG)


@pytest.mark.parametrize("sack", [False, True])
def test_answers_to_zero_window_probes_start_no_fast_retransmit(sack):
    """The peer answers each persist probe with its ACK again, the window
    still closed: nothing was lost, so however many such answers come, no
    fast retransmit and no window reduction (Linux's zero-window probe
    leaves no data outstanding, so it never counts them as duplicates;
    ours carries a byte, so the ACKs' closed window says it).  Counted as
    duplicates, the third started a recovery: a byte sent again and cwnd
    halved while the reader was merely slow."""
    config = CONFIG.replace(sack=sack)
    s = Script(config)
    s.conn.connect(s.now)
    s.recv(SYN | ACK, seq=s.peer_iss, ack=s.conn.iss + 1, mss=1460, window=0, sack_permitted=sack)
    s.sent()
    assert s.conn.sack_ok == sack
    s.conn.send(b"abc", 0.0)
    cwnd = s.conn.cc.cwnd
    for _ in range(5):
        s.timer(s.conn.next_deadline())
        (probe,) = s.sent()
        assert probe.payload.tobytes() == b"a"
        s.recv(ACK, ack=L, window=0)
        assert s.sent() == []  # no retransmission in answer
    assert not s.conn.recovery.active and s.conn.cc.cwnd == cwnd
    assert s.conn.info()["fast_retransmits"] == 0
    s.recv(ACK, ack=L, window=1000)  # the reader caught up
    assert [d.payload.tobytes() for d in s.sent()] == [b"abc"]
