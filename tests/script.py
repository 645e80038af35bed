"""Helpers for scripted-segment tests: build a connection in a given state,
feed it segments at given virtual times, read back exactly what it sent."""
from __future__ import annotations

from aiotcp import _fast
from aiotcp._fast import ACK, FIN, RST, SYN
from aiotcp.core.config import Config
from aiotcp.core.connection import Connection, State

LOCAL, REMOTE = 1000, 2000
ISS = 100_000
PEER_ISS = 500_000
# NAT keepalive, path MTU probes and pacing off: these scripts count every segment
# and timer, and the sizes follow the MSS alone (their own tests turn them on)
CONFIG = Config(delayed_ack=0.04, window_scaling=False, receive_buffer=65535, timestamps=False, sack=False,
                nat_keepalive=None, pmtu_discovery=False, pacing=False)


def seg(flags, seq, ack=0, payload=b"", window=65535, **options):
    """A segment as the peer would send it."""
    return _fast.decode(_fast.encode(REMOTE, LOCAL, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window,
                                     payload, **options))


class Script:
    def __init__(self, config: Config = CONFIG, iss: int = ISS, peer_iss: int = PEER_ISS, now: float = 0.0):
        self.now = now
        self.states = []
        self.conn = Connection(config, local_port=LOCAL, remote_port=REMOTE, remote_addr=("peer", 1),
                               iss=iss, now=now, tracer=self)
        self.peer_iss = peer_iss & 0xFFFFFFFF
        self.peer_nxt = (peer_iss + 1) & 0xFFFFFFFF

    # tracer interface: remember state changes
    def segment(self, owner, direction, data, addr):
        pass

    def state(self, conn, old, new, now):
        self.states.append((old.name, new.name))

    # driving
    def at(self, t: float) -> "Script":
        self.now = t
        return self

    def recv(self, flags, seq=None, ack=None, payload=b"", **kw):
        if seq is None:
            seq = self.peer_nxt
        if ack is None:
            ack = self.conn.snd_nxt
        self.conn.receive(seg(flags, seq, ack, payload, **kw), self.now)
        return self

    def sent(self):
        """Decoded segments the connection sent since the last call."""
        out = [_fast.decode(d) for d, _ in self.conn.out]
        self.conn.out.clear()
        return out

    def events(self):
        out = [type(e).__name__ for _, e in self.conn.events
               if type(e).__name__ not in ("StateChanged", "Retransmission")]
        self.conn.events.clear()
        return out

    def timer(self, t: float):
        self.now = t
        self.conn.handle_timer(t)
        return self

    @property
    def state_name(self):
        return self.conn.state.name

    # building states
    def established(self, peer_mss=1460, window=65535):
        """Active open completed: SYN sent, SYN-ACK received, ACK sent."""
        self.conn.connect(self.now)
        self.recv(SYN | ACK, seq=self.peer_iss, ack=self.conn.iss + 1, mss=peer_mss, window=window)
        assert self.conn.state is State.ESTABLISHED
        self.sent()
        self.events()
        self.states.clear()
        return self


def flags(segment) -> str:
    return segment.flags_str


__all__ = ["Script", "seg", "flags", "ACK", "FIN", "RST", "SYN", "LOCAL", "REMOTE", "ISS", "PEER_ISS", "CONFIG"]
