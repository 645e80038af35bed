"""Path migration (a NAT rebinding), NAT keepalive and hole punching in the
sans-I/O core: two core endpoints joined by hand, the client's UDP address
changing under them as a NAT would change it, and forged segments from an
off-path attacker."""
import pytest

from aiotcp import _fast
from aiotcp._fast import ACK, RST, SYN
from aiotcp.core.config import Config
from aiotcp.core.connection import State
from aiotcp.core.endpoint import Endpoint
from aiotcp.tools.testing import drain
from script import CONFIG, ISS, PEER_ISS, Script

CLIENT, REBOUND, SERVER, EVIL = ("198.18.1.2", 40000), ("198.18.1.2", 51234), ("198.18.0.1", 4000), ("203.0.113.9", 40000)
PORT = 4000


class Path:
    """The client's endpoint behind a NAT: it sends from CLIENT (what the
    server sees) until rebind() gives it another public address; what the
    server sends to an address the NAT no longer maps is lost."""

    def __init__(self, config=Config()):
        self.now = 0.0
        self.public = CLIENT
        self.client = Endpoint(config, now=0.0)
        self.server = Endpoint(config, now=0.0)
        self.server.listen(PORT)
        self.conn = self.client.connect(SERVER, PORT, PORT, 0.0)
        self.lost_to_old = 0
        self.last_ts = 0  # the server's latest TSval the client received
        self.run()
        self.peer = self.server.listeners[PORT].accept()
        assert self.conn.state is State.ESTABLISHED and self.peer.state is State.ESTABLISHED

    def run(self, rounds=100):
        for _ in range(rounds):
            moved = False
            for data, _dst in drain(self.client.outbox):
                self.server.receive_datagram(data, self.public, self.now)
                moved = True
            for data, dst in drain(self.server.outbox):
                moved = True
                if dst == self.public:
                    self.last_ts = _fast.decode(data).ts_val
                    self.client.receive_datagram(data, SERVER, self.now)
                else:
                    self.lost_to_old += 1
            if not moved:
                return

    def later(self, dt):
        self.now += dt
        self.client.handle_timer(self.now)
        self.server.handle_timer(self.now)
        self.run()

    def rebind(self, public=REBOUND):
        self.public = public


def test_a_rebinding_moves_the_connection_after_the_new_path_answers():
    path = Path()
    path.rebind()
    path.now += 1.0
    path.conn.send(b"after the rebinding", path.now)
    path.run()
    assert path.peer.remote_addr == REBOUND and path.peer.migrations == 1
    assert path.peer.info()["migrations"] == 1 and path.server.stats["path_challenges"] == 1
    assert path.server.stats["rst_sent"] == 0  # before: a RST for the unknown address
    for _ in range(10):
        path.later(1.0)
    assert path.peer.read() == b"after the rebinding"
    path.peer.send(b"and back", path.now)
    path.run()
    assert path.conn.read() == b"and back"
    assert path.conn.state is State.ESTABLISHED and path.peer.state is State.ESTABLISHED


def test_the_connection_follows_every_rebinding_of_a_transfer():
    path = Path()
    chunk = bytes(range(256)) * 100
    sent = b""
    for k in range(40):
        if k % 5 == 4:
            path.rebind(("198.18.1.2", 50000 + k))
        path.conn.send(chunk, path.now)
        sent += chunk
        path.later(0.05)
    for _ in range(100):
        if path.peer.read_buffered >= len(sent):
            break
        path.later(0.5)
    assert path.peer.read() == sent
    assert path.peer.migrations == 8 and path.peer.remote_addr == ("198.18.1.2", 50039)
    assert path.server.stats["path_challenges"] == 8 and path.server.stats["rst_sent"] == 0


# the harness moves datagrams at once and time in 50 ms steps: unpaced, a
# write arrives whole in one step (pacing would spread it over several)
UNPACED = Config(pacing=False)


def rebound_between_two_writes(config=UNPACED):
    """The server writes, the client reads and ACKs, everything goes
    quiet; then the NAT gives the client a new address and the server
    writes again, to the old one: lost, and the client, which has nothing
    to send, hears nothing."""
    path = Path(config)
    first = bytes(range(256)) * 400
    path.peer.send(first, path.now)
    path.run()
    got = path.conn.read()
    for _ in range(6):
        path.later(0.05)
    path.rebind()
    path.later(0.05)
    path.peer.send(first, path.now)
    path.run()
    assert path.lost_to_old > 0
    return path, got, 2 * len(first)


def read_until(path, got, size, seconds):
    for _ in range(int(seconds / 0.05)):
        if len(got) >= size:
            break
        path.later(0.05)
        got += path.conn.read()
    return got


def test_a_stream_that_stops_after_a_rebinding_is_probed_within_a_second():
    """The client heard in-order data and then a silence: one probe after
    max(1 s, 2 RTO), from its new address, lets the server validate the
    path and move, instead of waiting for the 25 s NAT keepalive."""
    path, got, size = rebound_between_two_writes()
    start = path.now
    got = read_until(path, got, size, 5.0)
    assert len(got) == size and path.now - start <= 1.5, path.now - start  # simulated seconds
    assert path.conn.nat_keepalives == 1 and path.peer.migrations == 1 and path.peer.remote_addr == REBOUND
    # while the stream stays paused (it ended after the migration) the
    # probes back off, doubling up to the 25 s keepalive, each answered
    # by a pure ACK that starts no other
    end, probes, times = path.now, path.conn.nat_keepalives, []
    for _ in range(240):
        path.later(0.5)
        if path.conn.nat_keepalives > probes:
            probes = path.conn.nat_keepalives
            times.append(path.now - end)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert times[0] <= 2.0 and gaps[:3] == sorted(gaps[:3]) and gaps[1] >= 1.5 * gaps[0], times
    assert all(24.5 <= gap <= 26.0 for gap in gaps[-3:]), times


def test_a_stall_probe_lost_with_the_next_address_is_sent_again():
    """The NAT forgets the client twice in a row: the first stall probe
    moves the server to REBOUND, and the NAT forgets REBOUND before the
    server's resend reaches it, so the stream is still paused and the
    probe is sent again (backed off), not only at the 25 s keepalive."""
    path, got, size = rebound_between_two_writes()
    start = path.now
    path.later(1.2)  # the first stall probe went out from REBOUND; the server moved there ...
    assert path.conn.nat_keepalives == 1 and path.peer.remote_addr == REBOUND
    path.rebind(("198.18.1.2", 52000))  # ... and its resend, at the next timeout, goes to REBOUND: lost
    got = read_until(path, got + path.conn.read(), size, 10.0)
    assert len(got) == size and path.now - start <= 6.0, path.now - start
    assert path.peer.remote_addr == ("198.18.1.2", 52000) and path.conn.nat_keepalives >= 2


def test_without_nat_keepalive_the_stopped_stream_waits_for_the_client():
    """The control: the same rebinding with nat_keepalive off, and nothing
    arrives until the client speaks."""
    path, got, size = rebound_between_two_writes(Config(nat_keepalive=None))
    got = read_until(path, got, size, 10.0)
    assert len(got) < size and path.peer.migrations == 0
    path.conn.send(b"?", path.now)
    got = read_until(path, got, size, 60.0)
    assert len(got) == size and path.peer.migrations == 1


def test_a_migration_ends_the_backoff_and_resends_at_once():
    """The server backed off while its retransmissions went to the dead
    address; when the path it validated takes it elsewhere, the peer is
    plainly alive: the retry count and the backoff start over and the
    first unacknowledged segment goes to the new address at once."""
    path, got, size = rebound_between_two_writes(Config(nat_keepalive=None))
    for _ in range(60):  # 3 s of retransmissions into the old address
        path.later(0.05)
    assert path.peer.retries >= 3 and path.peer.rtt.rto >= 1.6
    before = len(got) + path.conn.read_buffered
    path.conn.send(b"?", path.now)
    path.run()  # no time passes
    assert path.peer.migrations == 1 and path.peer.retries == 0 and path.peer.rtt.rto < 1.0
    assert len(got) + path.conn.read_buffered > before  # resent at once, not after the backed-off RTO
    got = read_until(path, got + path.conn.read(), size, 5.0)
    assert len(got) == size


def forged(path, seq_offset=0, ack_offset=0, ts_ecr=None, ts_ahead=0, has_ts=True, flags=ACK, payload=b"x"):
    """A segment with the connection's ports, as an attacker would write it."""
    peer = path.peer
    options = {}
    if has_ts:
        options["ts"] = (12345, (path.last_ts + ts_ahead) & 0xFFFFFFFF if ts_ecr is None else ts_ecr)
    return _fast.encode(PORT, PORT, (peer.rcv_nxt + seq_offset) & 0xFFFFFFFF,
                        (peer.snd_nxt + ack_offset) & 0xFFFFFFFF, flags, 65535, payload, **options)


@pytest.mark.parametrize("why, kwargs", [
    ("sequence number out of the window", dict(seq_offset=1 << 20)),
    ("ACK of data never sent", dict(ack_offset=1 << 20)),
    ("no timestamp", dict(has_ts=False)),
    ("an echo of a TSval never sent", dict(ts_ecr=None, ts_ahead=1_000_000)),
    ("a RST", dict(flags=RST | ACK, payload=b"")),
    ("a SYN", dict(flags=SYN, payload=b"")),
])
def test_forged_segments_from_another_address_move_nothing(why, kwargs):
    path = Path()
    for _ in range(3):
        path.server.receive_datagram(forged(path, **kwargs), EVIL, path.now)
    sent_to_evil = [dst for _, dst in path.server.outbox if dst == EVIL]
    assert sent_to_evil == [] or kwargs.get("flags") == SYN, why  # not even a challenge (a SYN: the listener's)
    drain(path.server.outbox)
    assert path.peer.remote_addr == CLIENT and path.peer.migrations == 0, why
    assert path.peer.state is State.ESTABLISHED and path.server.stats["rst_sent"] == 0, why
    path.conn.send(b"still here", path.now)
    path.run()
    assert path.peer.read() == b"still here", why


def test_a_right_guess_from_an_attacker_is_only_challenged():
    """Even with the sequence numbers and a timestamp echo (an on-path
    attacker), a segment from a new address gets a challenge; the
    connection stays where it is unless the challenge is answered."""
    path = Path()
    path.server.receive_datagram(forged(path), EVIL, path.now)
    challenge = drain(path.server.outbox)
    assert [dst for _, dst in challenge] == [EVIL, EVIL]  # the ACK with a fresh TSval, the probe
    probe = _fast.decode(challenge[1][0])
    assert probe.seq == (path.peer.snd_nxt - 1) & 0xFFFFFFFF and probe.has_ts
    assert path.peer.remote_addr == CLIENT
    path.conn.send(b"the real client", path.now)
    path.run()
    assert path.peer.read() == b"the real client" and path.peer.migrations == 0


def test_ports_shared_by_two_connections_move_neither():
    path = Path()
    other = Endpoint(Config(), now=0.0)
    conn2 = other.connect(SERVER, PORT, PORT, 0.0)  # same ports, another address
    for data, _ in drain(other.outbox):
        path.server.receive_datagram(data, ("198.18.9.9", 40000), 0.0)
    for data, _ in drain(path.server.outbox):
        other.receive_datagram(data, SERVER, 0.0)
    for data, _ in drain(other.outbox):
        path.server.receive_datagram(data, ("198.18.9.9", 40000), 0.0)
    assert conn2.state is State.ESTABLISHED
    path.server.receive_datagram(forged(path), REBOUND, path.now)
    assert path.server.stats["new_path_ambiguous"] == 1 and not path.server.outbox


def test_migration_off_drops_without_a_reset():
    path = Path(Config(migration=False))
    path.rebind()
    path.conn.send(b"lost", path.now)
    path.run()
    assert path.peer.remote_addr == CLIENT and path.server.stats["rst_sent"] == 0
    assert path.server.stats["new_path_dropped"] >= 1


def test_without_timestamps_the_sequence_numbers_and_the_challenge_round_suffice():
    path = Path(Config(timestamps=False))
    path.rebind()
    path.conn.send(b"no timestamps", path.now)
    path.run()
    assert path.peer.migrations == 1 and path.peer.remote_addr == REBOUND
    for _ in range(5):
        path.later(1.0)
    assert path.peer.read() == b"no timestamps"


# ------------------------------------------------------------ NAT keepalive

def test_nat_keepalive_probes_after_silence_and_never_fails():
    s = Script(CONFIG.replace(nat_keepalive=5.0))
    s.established()
    assert s.conn.nat_keepalive_deadline == 5.0
    s.at(3.0)
    s.conn.send(b"data", 3.0)
    s.sent()
    s.recv(ACK, ack=s.conn.snd_nxt)
    s.timer(5.0)
    assert s.sent() == [] and s.conn.nat_keepalive_deadline == 8.0  # something went out at 3
    for k in range(1, 20):  # the peer never answers: the probes go on, nothing fails
        s.timer(3.0 + 5.0 * k)
        (probe,) = s.sent()
        assert probe.flags_str == "A" and probe.seq == (s.conn.snd_una - 1) & 0xFFFFFFFF and not probe.payload
    assert s.conn.state is State.ESTABLISHED and s.conn.nat_keepalives == 19


def test_nat_keepalive_is_off_for_accepted_connections_and_by_config():
    s = Script(CONFIG.replace(nat_keepalive=5.0))
    s.conn.accept_syn(_fast.decode(_fast.encode(2000, 1000, PEER_ISS, 0, SYN, 65535, b"")), 0.0)
    s.recv(ACK, seq=PEER_ISS + 1, ack=ISS + 1)
    assert s.conn.state is State.ESTABLISHED and s.conn.nat_keepalive_deadline is None
    quiet = Script(CONFIG.replace(nat_keepalive=None)).established()
    assert quiet.conn.nat_keepalive_deadline is None
    with pytest.raises(ValueError):
        Config(nat_keepalive=0)


# ------------------------------------------------------------ hole punching

def test_a_punching_attempt_survives_resets_and_icmp_errors():
    s = Script()
    s.conn.punching = True
    s.conn.connect(0.0)
    s.sent()
    s.recv(RST | ACK, seq=0, ack=ISS + 1)
    s.conn.report_error(ConnectionRefusedError(111, "refused"), 0.1)
    assert s.state_name == "SYN_SENT" and s.conn.error is None
    s.timer(1.0)
    (syn,) = s.sent()
    assert syn.flags_str == "S"
    s.recv(SYN, seq=PEER_ISS, ack=0, mss=1452)  # the other side's SYN: simultaneous open
    s.recv(SYN | ACK, seq=PEER_ISS, ack=ISS + 1)
    assert s.state_name == "ESTABLISHED"


def test_without_punching_a_reset_refuses_and_the_timeout_says_what_came_back():
    s = Script(CONFIG.replace(syn_retries=1))
    s.conn.connect(0.0)
    s.timer(1.0)
    s.timer(3.0)
    assert isinstance(s.conn.error, TimeoutError) and "nothing ever came back" in str(s.conn.error)


def test_a_keepalive_probe_from_the_peer_ends_our_backoff():
    """Our data was lost until the timeouts backed off; then the peer
    probes us (as the path challenge of a migrating peer ends): it hears
    us, so the first unacknowledged segment goes again at once and the
    backoff starts over, instead of waiting for the next, longer timeout."""
    path = Path(UNPACED)
    path.conn.send(b"lost until the probe", path.now)
    for _ in range(20):
        drain(path.client.outbox)  # the first send, the tail probe and each timeout's resend vanish
        if path.conn.retries >= 3:
            break
        path.now = path.conn.next_deadline() + 0.01  # past the timer wheel's tick
        path.client.handle_timer(path.now)
    assert path.conn.retries >= 3 and path.conn.rtt.rto >= 1.6
    path.peer._send_probe()
    path.run()
    assert path.peer.read() == b"lost until the probe"
    assert path.conn.retries == 0 and path.conn.rtt.rto < 1.0
