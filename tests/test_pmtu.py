"""Path MTU: real paths narrower than the hosts' links, with and without
the router's ICMP, and the relay's --mtu.

::

    client (10.0.5.2, mtu 1500) -- router (10.0.5.1 | 10.0.6.1, mtu 1280 towards the server)
                                           -- server (10.0.6.2, mtu 1500)

Only the path can tell: both hosts' own links are 1500 bytes.  The router
answers a DF datagram too big for its next link with ICMP "fragmentation
needed", or, with ``icmp type destination-unreachable drop`` in its
nftables output chain, says nothing (a black hole).  All namespaces are
created here and removed after; nothing touches the root namespace.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import struct
import time

import pytest

import aiotcp
from aiotcp.tools.relay import Impairment, Relay

from natlab import Lab, _run, why_not

MiB = 1 << 20


class PathLab(Lab):
    """A client, a router and a server; the router's link to the server
    has MTU ``narrow``."""

    def __init__(self, narrow: int = 1280, icmp: bool = True):
        tag = f"{os.getpid()}-{id(self) % 10000}"
        self.ns = {"c": f"aiotcp-pc-{tag}", "r": f"aiotcp-pr-{tag}", "s": f"aiotcp-ps-{tag}"}
        self.narrow, self.icmp = narrow, icmp

    def _up(self) -> None:
        for name in self.ns.values():
            _run("ip", "netns", "add", name)
        for where in self.ns:
            self.exec(where, "ip", "link", "set", "lo", "up")
        self._veth("r", "toc", "10.0.5.1/24", "c", "eth0", "10.0.5.2/24")
        self._veth("r", "tos", "10.0.6.1/24", "s", "eth0", "10.0.6.2/24")
        self.exec("r", "ip", "link", "set", "tos", "mtu", str(self.narrow))  # the router's end only
        self.exec("c", "ip", "route", "add", "default", "via", "10.0.5.1")
        self.exec("s", "ip", "route", "add", "default", "via", "10.0.6.1")
        self.exec("r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if not self.icmp:
            rules = ("table ip f {\n chain out { type filter hook output priority 0;\n"
                     "  icmp type destination-unreachable drop; }\n}\n")
            self.exec("r", "nft", "-f", "-", input=rules.encode())


@pytest.fixture
def lab_factory():
    reason = why_not()
    if reason:
        pytest.skip(reason)
    labs = []

    def make(**kwargs):
        lab = PathLab(**kwargs).up()
        labs.append(lab)
        return lab
    yield make
    for lab in labs:
        lab.down()


async def transfer(lab: PathLab, size: int, seed: int, on_connected=None) -> tuple:
    """``size`` seeded bytes client to server through the router, SHA-256
    checked by the server's answer; (client tcp_info, seconds until the
    segment size last changed, total seconds)."""
    print(f"seed {seed}")
    data = random.Random(seed).randbytes(size)

    async def handle(reader, writer):
        digest = hashlib.sha256()
        while chunk := await reader.read(1 << 16):
            digest.update(chunk)
        writer.write(digest.digest())
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handle, sock=lab.socket("s", ("10.0.6.2", 0)))
    port = server.sockets[0].getsockname()[1]
    start = time.monotonic()
    reader, writer = await aiotcp.open_connection("10.0.6.2", port, sock=lab.socket("c", ("10.0.5.2", 0)))
    if on_connected is not None:
        on_connected(writer)
    sizes, settled = [], [0.0]

    async def watch():  # a measurement, not a synchronisation: when did the size last move?
        while True:
            segment = writer.get_extra_info("tcp_info")["pmtu_segment"]
            if not sizes or sizes[-1] != segment:
                sizes.append(segment)
                settled[0] = time.monotonic() - start
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 120)
    total = time.monotonic() - start
    watcher.cancel()
    info = writer.get_extra_info("tcp_info")
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    assert answer == hashlib.sha256(data).digest()  # byte-exact
    print(f"segment sizes {sizes}; settled after {settled[0]:.3f} s, transfer {total:.2f} s")
    return info, settled[0], total


@pytest.mark.asyncio
async def test_icmp_fragmentation_needed_lowers_the_size_at_once(lab_factory):
    lab = lab_factory(narrow=1280, icmp=True)
    info, settled, total = await asyncio.wait_for(transfer(lab, 16 * MiB, 24), 120)
    assert info["pmtu"] == 1280 and info["pmtu_segment"] == 1252  # exactly the path's size
    assert info["pmtu_black_holes"] == 0 and info["pmtu_lowered"] >= 1
    print(f"ICMP case: settled at {info['pmtu']} after {settled:.3f} s")


@pytest.mark.asyncio
async def test_a_black_hole_without_icmp_still_completes(lab_factory):
    lab = lab_factory(narrow=1280, icmp=False)
    info, settled, total = await asyncio.wait_for(transfer(lab, 16 * MiB, 25), 120)
    assert info["pmtu_black_holes"] >= 1
    assert info["pmtu_segment"] == 1200  # the base, below the path's 1252: no probing upward yet
    print(f"black-hole case: settled at {info['pmtu']} after {settled:.3f} s")


def forged_too_big(client: str, server: str, mtu: int) -> bytes:
    """ICMP "fragmentation needed" quoting a UDP datagram from ``client``
    to ``server`` between ports no socket uses."""
    inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1500, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                        socket.inet_aton(client), socket.inet_aton(server))
    quoted = inner + struct.pack("!HHHH", 9, 9, 1480, 0)
    header = struct.pack("!BBHHH", 3, 4, 0, 0, mtu)
    total = sum(struct.unpack(f"!{len(header + quoted) // 2}H", header + quoted))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return struct.pack("!BBHHH", 3, 4, ~total & 0xFFFF, 0, mtu) + quoted


@pytest.mark.asyncio
async def test_a_forged_packet_too_big_quoting_nothing_of_ours_changes_nothing(lab_factory):
    lab = lab_factory(narrow=1500, icmp=True)
    with lab.inside("r"):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)

    def forge(writer):
        for _ in range(5):
            raw.sendto(forged_too_big("10.0.5.2", "10.0.6.2", 600), ("10.0.5.2", 0))

    try:
        info, _, _ = await asyncio.wait_for(transfer(lab, 4 * MiB, 26, on_connected=forge), 120)
    finally:
        raw.close()
    assert info["pmtu"] == 1500 and info["pmtu_lowered"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("size_limit", [1200])
async def test_through_the_relays_mtu_on_loopback(size_limit):
    """``python -m aiotcp relay --mtu 1200`` drops bigger datagrams
    silently: black-hole detection brings the segments to 1200 bytes."""
    seed = 27
    print(f"seed {seed}")
    data = random.Random(seed).randbytes(4 * MiB)

    async def handle(reader, writer):
        writer.write(hashlib.sha256(await reader.read()).digest())
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", port), up=Impairment(mtu=size_limit),
                        down=Impairment(mtu=size_limit)).start()
    try:
        reader, writer = await aiotcp.open_connection(*relay.address, tcp_port=port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 60) == hashlib.sha256(data).digest()
        info = writer.get_extra_info("tcp_info")
        writer.close()
        await writer.wait_closed()
    finally:
        relay.close()
        server.close()
    assert info["pmtu_segment"] <= size_limit and info["pmtu_black_holes"] >= 1
    assert relay.stats["up_too_big"] >= 1


def test_the_relay_command_line_has_mtu():
    import argparse

    from aiotcp.tools.relay import add_arguments, impairments_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    up, down = impairments_from(parser.parse_args(["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--mtu",
                                                   "1200", "--mtu-down", "1400"]))
    assert (up.mtu, down.mtu) == (1200, 1400)


@pytest.mark.asyncio
@pytest.mark.parametrize("discovery", [True, False])
async def test_dont_fragment_on_every_datagram_unless_discovery_is_off(discovery):
    config = aiotcp.Config(pmtu_discovery=discovery)
    server = await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", 0, config=config)
    reader, writer = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1], config=config)
    udp = writer.transport.endpoint.sock
    mode = udp.getsockopt(socket.IPPROTO_IP, 10)  # IP_MTU_DISCOVER
    info = writer.get_extra_info("tcp_info")
    writer.close()
    server.close()
    assert (mode == 2) == discovery  # IP_PMTUDISC_DO
    assert info["pmtu"] == 1500 and info["pmtu_lowered"] == 0


def test_the_core_lowers_to_the_path_never_below_the_base_and_forgets_it_on_a_new_path():
    from aiotcp.core.connection import BASE_SEGMENT, Connection

    conn = Connection(aiotcp.Config(), local_port=1, remote_port=2, remote_addr=("127.0.0.1", 2))
    assert conn.info()["pmtu_segment"] == 1472
    assert conn.path_too_big(1252, 1.0) and conn.info()["pmtu"] == 1280
    assert not conn.path_too_big(1300, 1.0)  # never raised by a report
    assert conn.path_too_big(500, 1.0) and conn.info()["pmtu_segment"] == BASE_SEGMENT
    conn.migrate(("127.0.0.2", 2), 2.0)
    assert conn.info()["pmtu_segment"] == 1472  # a new path is measured anew
    fixed = Connection(aiotcp.Config(pmtu_discovery=False), local_port=1, remote_port=2,
                       remote_addr=("127.0.0.1", 2))
    assert not fixed.path_too_big(1000, 1.0) and fixed.info()["pmtu_segment"] == 1472
