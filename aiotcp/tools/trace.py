"""Per-segment tracing: an opt-in hook that costs nothing when unused.

A tracer is any object with two methods, passed as ``tracer=`` to an endpoint
(or to ``create_connection`` / ``create_server``):

- ``segment(owner, direction, datagram, remote_addr)``: every datagram an
  endpoint receives (``"in"``, before any check, so it may be malformed) and
  every segment it sends (``"out"``).  ``datagram`` may be a view of a
  reusable buffer: copy it to keep it.
- ``state(connection, old, new, now)``: every state change.

The core calls a tracer only when one is set (one ``is not None`` test per
segment otherwise).  Here are two: :class:`Recorder` (keeps everything, used
by the ladder diagram) and :class:`PcapWriter` (a capture Wireshark opens).
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import time

from .. import _fast


class Recorder:
    """Records segments sent and state changes with a label per side."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.entries: list[tuple] = []
        self._labels: dict = {}

    def label(self, local_port: int, name: str) -> None:
        """Name the side whose TCP port is ``local_port``."""
        self._labels[local_port] = name

    def _side(self, port):
        return self._labels.get(port, str(port))

    def segment(self, owner, direction, datagram, remote_addr):
        if direction != "out":
            return
        seg = _fast.decode(bytes(datagram))
        self.entries.append((self.clock(), self._side(seg.src_port), "segment", seg))

    def state(self, conn, old, new, now):
        self.entries.append((self.clock(), self._side(conn.local_port), "state", (old, new)))


# ---------------------------------------------------------------- pcap

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)  # LINKTYPE_RAW


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv4_header(src, dst, protocol: int, payload_length: int, ident: int = 0) -> bytes:
    """A 20-byte IPv4 header (don't fragment, TTL 64) with its checksum;
    ``src`` and ``dst`` are ipaddress.IPv4Address objects."""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_length, ident & 0xFFFF, 0x4000,
                                   64, protocol, 0, src.packed, dst.packed))
    header[10:12] = struct.pack("!H", _fast.internet_checksum(header))
    return bytes(header)


def to_ip_packet(segment: bytes, src_ip: str, dst_ip: str, ident: int = 0) -> bytes:
    """Wrap a docs/wire-format.md segment in an IPv4 or IPv6 header between the given
    addresses, with the TCP checksum recomputed for them (docs/wire-format.md: anything
    that moves a segment to a real IP packet recomputes the checksum)."""
    src = ipaddress.ip_address(src_ip)
    dst = ipaddress.ip_address(dst_ip)
    length = len(segment)
    body = bytearray(segment)
    body[16:18] = b"\0\0"
    words = src.packed + dst.packed
    pseudo = sum(struct.unpack(f"!{len(words) // 2}H", words)) + 6 + (length >> 16) + (length & 0xFFFF)
    body[16:18] = struct.pack("!H", _fast.internet_checksum(body, _fold(pseudo)))
    if src.version == 4:
        return ipv4_header(src, dst, socket.IPPROTO_TCP, length, ident) + bytes(body)
    header = struct.pack("!IHBB16s16s", 6 << 28, length, socket.IPPROTO_TCP, 64, src.packed, dst.packed)
    return header + bytes(body)


class PcapWriter:
    """Writes every datagram of one UDP endpoint as an IP packet between the
    endpoints' addresses, so that a capture opens in Wireshark or tshark as
    ordinary TCP with valid checksums.  ``local_ip`` is the endpoint's own
    address (the remote one comes with each datagram)."""

    def __init__(self, path, local_ip: str = "127.0.0.1", clock=time.time):
        self.file = open(path, "wb")
        self.file.write(_PCAP_HEADER)
        self.local_ip = local_ip
        self.clock = clock
        self.count = 0

    def segment(self, owner, direction, datagram, remote_addr):
        remote_ip = remote_addr[0] if remote_addr else "0.0.0.0"
        data = bytes(datagram)
        if len(data) < 20:
            return  # not a segment: nothing to show as TCP
        self.count += 1
        if direction == "out":
            packet = to_ip_packet(data, self.local_ip, remote_ip, self.count)
        else:
            packet = to_ip_packet(data, remote_ip, self.local_ip, self.count)
        stamp = self.clock()
        seconds = int(stamp)
        self.file.write(struct.pack("<IIII", seconds, int((stamp - seconds) * 1e6), len(packet), len(packet)))
        self.file.write(packet)

    def state(self, conn, old, new, now):
        pass

    def close(self):
        self.file.close()
