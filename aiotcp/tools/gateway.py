"""A TUN gateway between Linux's own TCP and aiotcp peers (Linux, root).

The kernel side of a TUN device holds ``kernel_ip``; a route sends
``virtual_ip`` (the address aiotcp peers appear at) into the TUN.  IPv4 TCP
packets the kernel sends there lose their IP header, get the docs/wire-format.md checksum
and leave as one UDP datagram to an aiotcp peer; datagrams from aiotcp peers
are verified, wrapped in an IPv4 header with the TCP checksum for the real
addresses, and written to the TUN.  The TUN's MTU is set so that every kernel
segment fits one docs/wire-format.md datagram.

Which aiotcp peer a kernel packet goes to is decided by its destination TCP
port: the UDP address a peer last sent from with that TCP source port (an
aiotcp client), else ``(peer_host, port)`` (an aiotcp server, whose TCP port
is its UDP port).

When a datagram to an aiotcp peer draws an ICMP error (nothing bound at that
UDP port any more, say), the gateway hands the kernel the same ICMP error
for the TCP segment inside, as a router would: Linux then fails a connect()
with ECONNREFUSED at once instead of retrying its SYN for two minutes.

Use it in a network namespace of your own (``ip netns add``); it configures
only the TUN device it creates.
"""
from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import os
import random
import socket
import struct
import subprocess
from collections import Counter

from .. import _fast
from ..aio.udp import IP_RECVERR, ORIGIN_ICMP, error_queue
from ._udp import drain
from .trace import ipv4_header, to_ip_packet

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
#: IP + UDP headers in front of a docs/wire-format.md datagram on a 1500-byte path
UDP_OVERHEAD = 20 + 8
ICMP_DEST_UNREACH = 3


def open_tun(name: str) -> tuple[int, str]:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    result = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd, result[:16].rstrip(b"\0").decode()


class Gateway:
    def __init__(self, *, tun_name: str = "aiotcp%d", kernel_ip: str = "10.77.0.1",
                 virtual_ip: str = "10.77.0.2", listen: tuple = ("127.0.0.1", 0),
                 peer_host: str = "127.0.0.1", path_mtu: int = 1500,
                 drop_to_peer: float = 0.0, drop_to_kernel: float = 0.0, seed: int = 0):
        self.kernel_ip = kernel_ip
        self.virtual_ip = virtual_ip
        self.peer_host = peer_host
        self.tun_mtu = path_mtu - UDP_OVERHEAD + 20  # an IP packet carrying the largest segment
        self.drop = {"to_peer": drop_to_peer, "to_kernel": drop_to_kernel}
        self.rng = random.Random(seed)
        self.stats: Counter = Counter()
        self.peers: dict[int, tuple] = {}  # aiotcp-side TCP port -> UDP address
        self.fd, self.tun = open_tun(tun_name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        self._ident = 0
        self.loop = None

    @property
    def address(self):
        return self.sock.getsockname()

    def configure(self) -> None:
        """Address, MTU and route of the TUN device (in this namespace only)."""
        for args in (["addr", "add", f"{self.kernel_ip}/32", "peer", f"{self.virtual_ip}/32", "dev", self.tun],
                     ["link", "set", self.tun, "mtu", str(self.tun_mtu), "up"]):
            subprocess.run(["ip", *args], check=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        loop.add_reader(self.fd, self._from_kernel)
        loop.add_reader(self.sock.fileno(), self._from_peer)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.fd)
            self.loop.remove_reader(self.sock.fileno())
        os.close(self.fd)
        self.sock.close()

    def _from_kernel(self) -> None:
        while True:
            try:
                packet = os.read(self.fd, 65535)
            except (BlockingIOError, InterruptedError):
                return
            self.stats["from_kernel"] += 1
            if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
                self.stats["not_ipv4_tcp"] += 1
                continue
            header_len = (packet[0] & 0x0F) * 4
            total = struct.unpack_from("!H", packet, 2)[0]
            segment = bytearray(packet[header_len:total])
            dst_port = struct.unpack_from("!H", segment, 2)[0]
            if self.drop["to_peer"] and self.rng.random() < self.drop["to_peer"]:
                self.stats["dropped_to_peer"] += 1
                continue
            segment[16:18] = b"\0\0"
            segment[16:18] = struct.pack("!H", _fast.internet_checksum(segment, 6 + len(segment)))
            addr = self.peers.get(dst_port, (self.peer_host, dst_port))
            try:
                self.sock.sendto(segment, addr)
                self.stats["to_peer"] += 1
            except OSError:
                self.stats["send_errors"] += 1

    def _from_peer(self) -> None:
        for data, addr in drain(self.sock, self.stats, "icmp_errors"):
            try:
                seg = _fast.decode(data)
            except _fast.MalformedSegment:
                self.stats["malformed_from_peer"] += 1
                continue
            self.peers[seg.src_port] = addr
            if self.drop["to_kernel"] and self.rng.random() < self.drop["to_kernel"]:
                self.stats["dropped_to_kernel"] += 1
                continue
            self._ident += 1
            self._to_kernel(to_ip_packet(data, self.virtual_ip, self.kernel_ip, self._ident), "to_kernel")
        self._read_errors()

    def _to_kernel(self, packet: bytes, counter: str) -> None:
        try:
            os.write(self.fd, packet)
            self.stats[counter] += 1
        except OSError:
            self.stats["tun_write_errors"] += 1

    def _read_errors(self) -> None:
        """ICMP errors for datagrams we sent to aiotcp peers (IP_RECVERR):
        each comes back with the datagram, i.e. the kernel's TCP segment."""
        try:
            for segment, _, _, origin, icmp_type, icmp_code, _ in error_queue(self.sock, 65535, 1 << 30):
                if origin == ORIGIN_ICMP and icmp_type == ICMP_DEST_UNREACH and len(segment) >= 8:
                    self.stats["unreachable_from_peer"] += 1
                    self._ident += 1
                    self._to_kernel(self._unreachable(segment, icmp_code), "unreachable_to_kernel")
        except OSError:
            self.stats["errqueue_errors"] += 1

    def _unreachable(self, segment: bytes, code: int) -> bytes:
        """An ICMP destination unreachable from the virtual peer to the
        kernel, quoting the IP header and first 8 bytes of the kernel's
        segment (RFC 792), which is how the kernel finds its socket."""
        kernel, virtual = ipaddress.ip_address(self.kernel_ip), ipaddress.ip_address(self.virtual_ip)
        quoted = ipv4_header(kernel, virtual, socket.IPPROTO_TCP, len(segment)) + bytes(segment[:8])
        icmp = bytearray(struct.pack("!BBHI", ICMP_DEST_UNREACH, code, 0, 0) + quoted)
        icmp[2:4] = struct.pack("!H", _fast.internet_checksum(icmp))
        return ipv4_header(virtual, kernel, socket.IPPROTO_ICMP, len(icmp), self._ident) + bytes(icmp)


async def serve(args) -> None:
    gateway = Gateway(kernel_ip=args.kernel_ip, virtual_ip=args.virtual_ip,
                      listen=(args.listen_host, args.listen_port), peer_host=args.peer_host)
    gateway.configure()
    gateway.start(asyncio.get_running_loop())
    print(f"gateway: {gateway.tun} kernel {gateway.kernel_ip} <-> virtual peer {gateway.virtual_ip}, "
          f"UDP on {gateway.address[0]}:{gateway.address[1]}, TUN MTU {gateway.tun_mtu}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        print(dict(gateway.stats), flush=True)
        gateway.close()
