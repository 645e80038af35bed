"""What Python sees of aiotcp._fast (the compiled hot path).

Contract:
- ``decode`` never raises anything but ``MalformedSegment`` (``BadChecksum``
  being one) for any buffer; the returned ``Segment.payload`` is a view of the
  buffer passed in, valid as long as that buffer is unchanged.
- ``encode`` returns a datagram that ``decode`` accepts and that carries the
  docs/wire-format.md checksum; it raises ``ValueError``/``OverflowError`` only for
  arguments out of range (caller bugs, never peer input).
- ``TimerWheel`` schedule/cancel are O(1); ``expire(now)`` returns timers whose
  deadline is <= now, in deadline order, at most one tick after the deadline.
"""

from typing import Any, Optional, Sequence, Tuple

from collections.abc import Buffer

FIN: int
SYN: int
RST: int
PSH: int
ACK: int
URG: int
ECE: int
CWR: int

class MalformedSegment(ValueError):
    reason: str
    def __init__(self, reason: str, detail: str = ...) -> None: ...

class BadChecksum(MalformedSegment):
    def __init__(self, detail: str = ...) -> None: ...

class Segment:
    src_port: int
    dst_port: int
    seq: int
    ack: int
    data_offset: int
    flags: int
    window: int
    checksum: int
    urgent: int
    mss: int
    wscale: int
    sack_permitted: bool
    sack_blocks: Tuple[Tuple[int, int], ...]
    has_ts: bool
    ts_val: int
    ts_ecr: int
    payload: memoryview
    segs: int  # the datagrams it came in: more than 1 when a run was joined
    @property
    def flags_str(self) -> str: ...
    @property
    def seg_len(self) -> int: ...

def flags_to_str(flags: int) -> str: ...
def internet_checksum(data: Buffer, initial: int = 0) -> int: ...
def _checksum_scalar(data: Buffer, initial: int = 0) -> int: ...
def checksum_simd() -> str | None: ...
def datagrams_reused() -> int: ...
def decode(data: Buffer, verify: bool = True) -> Segment: ...
def encode(
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: Buffer = b"",
    mss: int = -1,
    wscale: int = -1,
    sack_permitted: bool = False,
    sack_blocks: Optional[Sequence[Tuple[int, int]]] = None,
    ts: Optional[Tuple[int, int]] = None,
    urgent: int = 0,
) -> bytes: ...
def encode_segment(
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: Buffer,
    offset: int,
    length: int,
    mss: int,
    wscale: int,
    sack_permitted: bool,
    sack_blocks: Optional[Sequence[Tuple[int, int]]],
    has_ts: bool,
    ts_val: int,
    ts_ecr: int,
    urgent: int,
) -> bytes: ...
def encode_run(
    out: list,
    to: Any,
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    window: int,
    sndbuf: "SendBuffer",
    offset: int,
    size: int,
    count: int,
    psh: bool,
    has_ts: bool,
    ts_val: int,
    ts_ecr: int,
    joined: int = 0,
) -> int: ...
def cut_run(run: tuple) -> list:
    """A run of the outbox, (datagrams, addr, size), cut back into its (datagram, addr) pairs."""
    ...
def siphash(key: bytes, data: Buffer) -> int:
    """SipHash-2-4 of ``data`` under a 16-byte ``key`` (the 64-bit output read little-endian)."""
    ...
def isn_hash(key: bytes, remote_addr: Any, local_port: int, remote_port: int) -> int:
    """32 bits of SipHash-2-4 of a connection's identity (the ISN's F, RFC 6528)."""
    ...

class SendBuffer:
    """A connection's send buffer: appended at the back, dropped from the front."""
    def __len__(self) -> int: ...
    def extend(self, data: Buffer) -> int: ...
    def __iadd__(self, data: Buffer) -> SendBuffer: ...
    def drop(self, n: int) -> int: ...
    def clear(self) -> int: ...
    def __delitem__(self, key: slice) -> None: ...
    def __getitem__(self, key: int | slice) -> Any: ...
    def __buffer__(self, flags: int) -> memoryview: ...

class DatagramSink:
    """A receiver of datagrams (the core endpoint's base); C callers hand it
    raw datagrams, decoded in place."""
    tracer: object
    coalesce: bool
    segments_coalesced: int
    _batch: list | None  # the connections owing an ACK (or a woken writer's part of a run) at the batch's end
    run_bytes: int  # what the socket below sends in one call (UDP GSO), 0: a datagram a call
    run_datagrams: int
    def receive_datagram(self, data, addr, now: float) -> None: ...
    def receive_segment(self, seg: Segment, addr, now: float) -> None: ...
    def receive_run(self, data, size: int, addr, now: float) -> int: ...


class Timer:
    owner: Any
    deadline: float
    def __init__(self, owner: Any = None) -> None: ...
    @property
    def scheduled(self) -> bool: ...

class TimerWheel:
    tick: float
    def __init__(self, tick: float = 0.001, now: float = 0.0) -> None: ...
    def __len__(self) -> int: ...
    def schedule(self, timer: Timer, deadline: float) -> None: ...
    def cancel(self, timer: Timer) -> None: ...
    def expire(self, now: float) -> list[Timer]: ...
    def next_deadline(self) -> Optional[float]: ...
    def next_deadline_at(self) -> float: ...


def monotonic() -> float:
    """time.monotonic(), read in C: the asyncio layer's clock for the core."""
    ...

KEEP_IDLE: int

def empty_list(items: list, keep: int = 256) -> int:
    """items.clear(), keeping the storage of a list of up to ``keep`` slots; 0."""
    ...
