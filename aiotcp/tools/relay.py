"""An impairment relay for UDP: netem in user space.

``python -m aiotcp relay --listen HOST:PORT --to HOST:PORT [impairments]``
forwards datagrams both ways.  Each client address that sends to the listen
address gets its own upstream socket towards the target, so replies find
their way back.  Every impairment is seeded and set per direction: "up" is
client to target, "down" target to client.

Impairments, applied in this order: timed blackouts (everything dropped),
random loss, corruption (one bit flipped), duplication, a rate limit with a
bounded queue (tail drop), then delay with jitter and random reordering
(extra delay for a fraction of datagrams).
"""
from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field, fields

from ._udp import drain


@dataclass
class Impairment:
    loss: float = 0.0            # probability a datagram is dropped
    delay: float = 0.0           # one-way delay, seconds
    jitter: float = 0.0          # extra uniform delay in [0, jitter)
    reorder: float = 0.0         # probability of an extra delay of reorder_gap
    reorder_gap: float = 0.01
    duplicate: float = 0.0       # probability a datagram is sent twice
    corrupt: float = 0.0         # probability one bit is flipped
    rate: float = 0.0            # bytes per second, 0 = unlimited
    queue: int = 256 * 1024      # bytes the rate limiter may hold
    blackouts: list = field(default_factory=list)  # [(start, duration)] from relay start
    drop: object = None          # a function of the datagram: True drops it (the demo's chosen segment)
    mtu: int = 0                 # drop datagrams of more UDP payload bytes than this, silently (0: no limit)
    icmp: bool = False           # ... answering each with the ICMP "fragmentation needed" a router sends
                                 # (IPv4, a raw socket: root or CAP_NET_RAW)


class _Direction:
    def __init__(self, name: str, impairment: Impairment, rng: random.Random, stats: Counter, loop, start):
        self.name = name
        self.imp = impairment
        self.rng = rng
        self.stats = stats
        self.loop = loop
        self.start = start
        self.link_free = 0.0  # when the rate-limited link is idle again
        self.queued = 0
        self.raw = None  # the raw socket the ICMP goes out of (Impairment.icmp)

    def forward(self, data: bytes, send, origin=None) -> None:
        """Carry ``data`` (sent from ``origin[0]`` to ``origin[1]``, the
        addresses an ICMP about it quotes) through the impairments to
        ``send``."""
        imp, rng, stats, name = self.imp, self.rng, self.stats, self.name
        now = self.loop.time()
        stats[f"{name}_in"] += 1
        elapsed = now - self.start
        if any(s <= elapsed < s + d for s, d in imp.blackouts):
            stats[f"{name}_blackout_dropped"] += 1
            return
        if imp.mtu and len(data) > imp.mtu:
            stats[f"{name}_too_big"] += 1  # a path narrower than the datagram, its ICMP filtered ...
            if imp.icmp and self.raw is not None and origin is not None:
                try:  # ... or not
                    self.raw.sendto(icmp_too_big(origin[0], origin[1], imp.mtu + 28, data), (origin[0][0], 0))
                    stats[f"{name}_icmp_sent"] += 1
                except OSError:
                    stats[f"{name}_icmp_errors"] += 1
            return
        if imp.drop is not None and imp.drop(data):
            stats[f"{name}_dropped"] += 1
            return
        if imp.loss and rng.random() < imp.loss:
            stats[f"{name}_lost"] += 1
            return
        if imp.corrupt and rng.random() < imp.corrupt and data:
            damaged = bytearray(data)
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            data = bytes(damaged)
            stats[f"{name}_corrupted"] += 1
        copies = 1
        if imp.duplicate and rng.random() < imp.duplicate:
            copies = 2
            stats[f"{name}_duplicated"] += 1
        for _ in range(copies):
            at = now
            if imp.rate:
                if self.queued + len(data) > imp.queue:
                    stats[f"{name}_queue_dropped"] += 1
                    continue
                self.link_free = max(self.link_free, now) + len(data) / imp.rate
                at = self.link_free
                self.queued += len(data)
            delay = imp.delay + (rng.random() * imp.jitter if imp.jitter else 0.0)
            if imp.reorder and rng.random() < imp.reorder:
                delay += imp.reorder_gap
                stats[f"{name}_reordered"] += 1
            self._later(at + delay, at, data, send)

    def _later(self, when: float, dequeued: float, data: bytes, send) -> None:
        def fire():
            if self.imp.rate:
                self.queued -= len(data)
            try:
                send(data)
                self.stats[f"{self.name}_out"] += 1
            except OSError:
                self.stats[f"{self.name}_send_errors"] += 1

        if when <= self.loop.time():
            fire()
        else:
            self.loop.call_at(when, fire)


class Relay:
    def __init__(self, listen: tuple, target: tuple, *, up: Impairment | None = None,
                 down: Impairment | None = None, seed: int = 0):
        self.listen = listen
        self.target = target
        self.up_imp = up or Impairment()
        self.down_imp = down or Impairment()
        self.seed = seed
        self.stats: Counter = Counter()
        self.sock: socket.socket | None = None
        self._upstream: dict[tuple, socket.socket] = {}
        self._raw: socket.socket | None = None

    @property
    def address(self):
        return self.sock.getsockname()

    async def start(self) -> "Relay":
        self.loop = loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(self.listen)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        start = loop.time()
        rng = random.Random(self.seed)
        self.up = _Direction("up", self.up_imp, random.Random(rng.random()), self.stats, loop, start)
        self.down = _Direction("down", self.down_imp, random.Random(rng.random()), self.stats, loop, start)
        if self.up_imp.icmp or self.down_imp.icmp:
            if family != socket.AF_INET:
                raise ValueError("the relay's ICMP answer is IPv4 only")
            try:
                self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            except PermissionError as exc:
                raise PermissionError(exc.errno, "--icmp sends ICMP from a raw socket: it needs root "
                                                 "(CAP_NET_RAW)") from None
            self.up.raw = self.down.raw = self._raw
        loop.add_reader(self.sock.fileno(), self._from_client)
        return self

    def _from_client(self) -> None:
        for data, addr in drain(self.sock, self.stats, "client_errors"):
            upstream = self._upstream.get(addr)
            if upstream is None:
                upstream = socket.socket(self.sock.family, socket.SOCK_DGRAM)
                upstream.setblocking(False)
                upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                upstream.connect(self.target)
                self._upstream[addr] = upstream
                self.loop.add_reader(upstream.fileno(), self._from_target, addr, upstream)
                self.stats["clients"] += 1
            self.up.forward(data, upstream.send, (addr, self.sock.getsockname()))

    def _from_target(self, addr, upstream: socket.socket) -> None:
        while True:
            try:
                data = upstream.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.stats["target_errors"] += 1  # e.g. ICMP: nothing at the target
                return
            self.down.forward(data, lambda d: self.sock.sendto(d, addr), (upstream.getpeername(), upstream.getsockname()))

    def close(self) -> None:
        for upstream in self._upstream.values():
            self.loop.remove_reader(upstream.fileno())
            upstream.close()
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        if self._raw is not None:
            self._raw.close()

    def report(self) -> str:
        return "\n".join(f"{key}: {value}" for key, value in sorted(self.stats.items()))


def icmp_too_big(src: tuple, dst: tuple, mtu: int, payload: bytes) -> bytes:
    """The ICMP "fragmentation needed" (type 3 code 4, next-hop ``mtu``) a
    router sends about a UDP datagram from ``src`` to ``dst`` ((address,
    port) pairs) carrying ``payload``: its IPv4 and UDP headers and as much
    of the payload as keeps the ICMP within 576 bytes (RFC 1812 section
    4.3.2.3)."""
    length = 28 + len(payload)
    inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                        socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    quoted = inner + struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload[:576 - 20 - 8 - 28]
    body = struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quoted
    padded = body + b"\0" * (len(body) % 2)
    total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]


def _hostport(text: str) -> tuple:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def add_arguments(parser) -> None:
    parser.add_argument("--listen", required=True, type=_hostport, help="HOST:PORT to receive on")
    parser.add_argument("--to", required=True, type=_hostport, help="HOST:PORT to forward to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    for f in fields(Impairment):
        if f.name == "drop":
            continue  # a function: for programs, not the command line
        if f.name == "blackouts":
            kind, help_ = str, "START:DURATION seconds from the relay's start (repeatable)"
        else:
            kind, help_ = type(f.default), None
        for suffix in ("", "-up", "-down"):
            name = f"--{f.name.replace('_', '-')}{suffix}"
            if kind is bool:
                parser.add_argument(name, action="store_const", const=True, default=None,
                                    help="with --mtu: answer with the ICMP a router sends (root)"
                                    if f.name == "icmp" and not suffix else None)
            elif f.name == "blackouts":
                parser.add_argument(name, action="append", default=None, help=help_ if not suffix else None)
            else:
                parser.add_argument(name, type=kind, default=None)


def impairments_from(args) -> tuple[Impairment, Impairment]:
    result = []
    for direction in ("up", "down"):
        values = {}
        for f in fields(Impairment):
            if f.name == "drop":
                continue
            both = getattr(args, f.name)
            own = getattr(args, f"{f.name}_{direction}")
            value = own if own is not None else both
            if value is None:
                continue
            if f.name == "blackouts":
                value = [tuple(float(x) for x in item.split(":")) for item in value]
            values[f.name] = value
        result.append(Impairment(**values))
    return result[0], result[1]


async def run(args) -> None:
    up, down = impairments_from(args)
    relay = await Relay(args.listen, args.to, up=up, down=down, seed=args.seed).start()
    print(f"relay: {args.listen[0]}:{relay.address[1]} -> {args.to[0]}:{args.to[1]}\n  up: {up}\n  down: {down}",
          flush=True)
    try:
        if args.duration is not None:
            await asyncio.sleep(args.duration)
        else:
            await asyncio.Event().wait()
    finally:
        relay.close()
        print(relay.report(), flush=True)
