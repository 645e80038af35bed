"""An in-memory, virtual-time network joining sans-I/O endpoints.

:class:`Network` delivers datagrams between :class:`~aiotcp.core.endpoint.Endpoint`
objects with a seeded choice per datagram of deliver / drop / duplicate /
reorder / delay / corrupt, and runs their timers in virtual time, so that a
transfer of megabytes over a 40%-loss link with minute-long backoffs runs in
seconds of real time and is exactly reproducible from its seed.
"""
from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass

from .._fast import cut_run
from ..core.endpoint import Endpoint
from ..core.events import Closed, Connected, DataReadable, Incoming, PeerClosed, Writable


def drain(items: list) -> list:
    """What a core output list (Endpoint.outbox, Endpoint.events) holds,
    emptied in place as the core's contract asks; a run in the outbox
    (datagrams, address, size) comes out as its datagrams, one pair each."""
    taken = datagrams(items)
    items.clear()
    return taken


def datagrams(items: list) -> list:
    """``items`` with each run, ``(datagrams, address, size)``, cut back into
    its ``(datagram, address)`` pairs."""
    if not any(len(item) == 3 for item in items):
        return items[:]
    pairs = []
    for item in items:
        if len(item) == 3:
            pairs.extend(cut_run(item))
        else:
            pairs.append(item)
    return pairs


@dataclass
class Impairment:
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0      # probability of an extra delay of up to reorder_delay
    reorder_delay: float = 0.05
    corrupt: float = 0.0
    latency: float = 0.01     # one-way base delay in seconds
    jitter: float = 0.0
    mtu: int = 0              # datagrams above this many bytes vanish (a black hole; 0: none)
    rate: float = 0.0         # a bottleneck, bytes/s, per sender (0: none) ...
    queue: int = 64 * 1024    # ... with a drop-tail queue of this many bytes


class Network:
    def __init__(self, rng: random.Random, impairment: Impairment | None = None, now: float = 0.0,
                 timer_late: float = 0.0, batches: bool = False):
        self.rng = rng
        #: each delivery is a receive batch (begin_batch, the handlers, end_batch), as
        #: the asyncio layer's reads are; else segments are handled one by one
        self.batches = batches
        #: how late each timer fires after its deadline, as a real loop's
        #: millisecond timeouts make it
        self.timer_late = timer_late
        self.impairment = impairment or Impairment()
        self.now = now
        self.endpoints: dict[object, Endpoint] = {}
        self._queue: list = []
        self._order = 0
        self.delivered = 0
        self.dropped = 0
        self.corrupted = 0
        self.too_big = 0
        self.queue_dropped = 0
        self._link_free: dict = {}  # by sender: when its bottleneck is idle again
        self.handlers: dict[object, object] = {}

    def add(self, addr, endpoint: Endpoint, handler=None) -> Endpoint:
        self.endpoints[addr] = endpoint
        self.handlers[addr] = handler
        return endpoint

    def _schedule(self, at: float, dst, data: bytes, src) -> None:
        self._order += 1
        heapq.heappush(self._queue, (at, self._order, dst, data, src))

    def flush(self, src) -> None:
        """Move what the endpoint at ``src`` wants to send onto the wire."""
        endpoint = self.endpoints[src]
        imp = self.impairment
        rng = self.rng
        for data, dst in drain(endpoint.outbox):
            if imp.mtu and len(data) > imp.mtu:
                self.too_big += 1
                continue
            if rng.random() < imp.drop:
                self.dropped += 1
                continue
            departs = self.now
            if imp.rate:
                free = max(self._link_free.get(src, 0.0), self.now)
                if (free - self.now) * imp.rate + len(data) > imp.queue:
                    self.queue_dropped += 1
                    continue
                departs = self._link_free[src] = free + len(data) / imp.rate
            copies = 2 if rng.random() < imp.duplicate else 1
            for _ in range(copies):
                delay = imp.latency + (rng.random() * imp.jitter if imp.jitter else 0.0)
                if imp.reorder and rng.random() < imp.reorder:
                    delay += rng.random() * imp.reorder_delay
                payload = data
                if imp.corrupt and rng.random() < imp.corrupt:
                    damaged = bytearray(data)
                    damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
                    payload = bytes(damaged)
                    self.corrupted += 1
                self._schedule(departs + delay, dst, payload, src)

    def _dispatch(self, addr, flush: bool = True) -> None:
        endpoint = self.endpoints[addr]
        handler = self.handlers.get(addr)
        while endpoint.events:
            events = drain(endpoint.events)
            if handler is not None:
                for source, event in events:
                    handler(source, event, self.now)
        if flush:
            self.flush(addr)

    def step(self) -> bool:
        """Advance to the next delivery or timer; False when nothing is left."""
        best = self._queue[0][0] if self._queue else None
        timer_addr = None
        for addr, endpoint in self.endpoints.items():
            deadline = endpoint.next_deadline()
            if deadline is not None:
                deadline += self.timer_late
                if best is None or deadline < best:
                    best, timer_addr = deadline, addr
        if best is None:
            return False
        self.now = max(self.now, best)
        if timer_addr is not None:
            self.endpoints[timer_addr].handle_timer(self.now)
            self._dispatch(timer_addr)
        else:
            _, _, dst, data, src = heapq.heappop(self._queue)
            endpoint = self.endpoints.get(dst)
            if endpoint is not None:
                self.delivered += 1
                if self.batches:
                    endpoint.begin_batch()
                    try:
                        endpoint.receive_datagram(data, src, self.now)
                        self._dispatch(dst, flush=False)
                    finally:
                        endpoint.end_batch(self.now)
                else:
                    endpoint.receive_datagram(data, src, self.now)
                self._dispatch(dst)
        return True

    def run(self, until=lambda: False, max_time: float = 1e6, max_steps: int = 50_000_000) -> int:
        """Step until ``until()``, ``max_time`` or ``max_steps``; returns
        the steps taken (``max_steps``: cut short, a storm or a spin)."""
        steps = 0
        while not until() and self.now < max_time and steps < max_steps:
            if not self.step():
                break
            steps += 1
        return steps


class BulkTransfer:
    """Drive one connection between two endpoints of a :class:`Network`:
    the client sends ``data`` (and the server, ``reply``), then both close;
    records SHA-256 of what each side received and every state reached."""

    def __init__(self, net: Network, client_addr, server_addr, port: int, data: bytes,
                 reply: bytes = b"", chunk: int = 256 * 1024):
        self.net = net
        self.data = data
        self.reply = reply
        self.chunk = chunk
        self.client = net.endpoints[client_addr]
        self.server = net.endpoints[server_addr]
        self.listener = self.server.listen(port)
        net.handlers[client_addr] = self._on_client_event
        net.handlers[server_addr] = self._on_server_event
        self.received = {"client": hashlib.sha256(), "server": hashlib.sha256()}
        self.received_len = {"client": 0, "server": 0}
        self.closed = {}
        self.eof = {"client": False, "server": False}
        self.server_conn = None
        self._offsets = {}
        self.client_conn = self.client.connect(server_addr, port, 40000, net.now)
        net.flush(client_addr)

    def _feed(self, conn, payload: bytes, now: float) -> None:
        offset = self._offsets.get(conn, 0)
        while offset < len(payload) and conn.send_buffered < self.chunk:
            piece = payload[offset:offset + self.chunk]
            conn.send(piece, now)
            offset += len(piece)
        self._offsets[conn] = offset
        if offset >= len(payload):
            if not conn.closed_by_user:
                conn.close(now)
        else:
            conn.low_water = self.chunk // 2

    def _on(self, side, conn, payload, event, now) -> None:
        if isinstance(event, Connected):
            self._feed(conn, payload, now)
        elif isinstance(event, Writable):
            self._feed(conn, payload, now)
        elif isinstance(event, DataReadable):
            chunk = conn.read()
            self.received[side].update(chunk)
            self.received_len[side] += len(chunk)
        elif isinstance(event, PeerClosed):
            self.eof[side] = True
        elif isinstance(event, Closed):
            self.closed[side] = event.error

    def _on_client_event(self, source, event, now):
        self._on("client", source, self.data, event, now)

    def _on_server_event(self, source, event, now):
        if isinstance(event, Incoming):
            self.server_conn = source.accept()
            return
        self._on("server", source, self.reply, event, now)

    def done(self) -> bool:
        return "client" in self.closed and "server" in self.closed and not self.client.connections \
            and not self.server.connections
