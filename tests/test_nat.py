"""aiotcp across real Linux NATs (tests/natlab.py: namespaces, veth pairs,
nftables masquerade, conntrack), on both loops: hole punching through two
NATs that drop everything unsolicited, a clear failure behind a symmetric
NAT, a transfer that survives its NAT forgetting every mapping twice a
second, and NAT keepalive holding a binding through a long silence."""
import asyncio
import hashlib
import importlib.util
import os
import random

import pytest

import aiotcp
from aiotcp import Config
from natlab import Lab, why_not

pytestmark = [pytest.mark.asyncio, pytest.mark.netns,
              pytest.mark.skipif(why_not() is not None, reason=str(why_not()))]
MiB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


def _example():
    spec = importlib.util.spec_from_file_location("holepunch", os.path.join(HERE, "..", "examples", "holepunch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


holepunch = _example()


@pytest.fixture
def lab(request):
    lab = Lab(random_ports=getattr(request, "param", (False, False))).up()
    yield lab
    lab.down()


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def exchange(reader, writer, data: bytes) -> bytes:
    """Send ``data`` and read as much back (or what the peer sends), at once."""
    async def send():
        for i in range(0, len(data), 1 << 16):
            writer.write(data[i:i + (1 << 16)])
            await writer.drain()

    sending = asyncio.ensure_future(send())
    received = await reader.readexactly(len(data))
    await sending
    return received


async def endpoints_behind(lab, config=None):
    """The rendezvous in the internet, one endpoint on each host behind its NAT."""
    server = await aiotcp.create_endpoint(sock=lab.socket("inet", (Lab.INET[1], 3478)), config=config)
    await holepunch.rendezvous(server)
    peers = [await aiotcp.create_endpoint(sock=lab.socket(f"h{i}", ("0.0.0.0", 40000)), config=config)
             for i in (1, 2)]
    return server, peers


async def test_hole_punching_through_two_nats_that_drop_the_unsolicited(lab):
    server, (a, b) = await endpoints_behind(lab)
    rendezvous = (Lab.INET[1], 3478)
    (ra, wa), (rb, wb) = await asyncio.wait_for(asyncio.gather(
        holepunch.punch(a, rendezvous, "room", timeout=20), holepunch.punch(b, rendezvous, "room", timeout=20)), 30)
    # each sees the other at its NAT's outside address: the NATs are in between
    assert wa.get_extra_info("peername") == (Lab.OUTSIDE[2], 40000)
    assert wb.get_extra_info("peername") == (Lab.OUTSIDE[1], 40000)
    data_a, data_b = blob(4 * MiB, 1), blob(4 * MiB, 2)
    got_b, got_a = await asyncio.wait_for(asyncio.gather(exchange(rb, wb, data_b), exchange(ra, wa, data_a)), 60)
    assert hashlib.sha256(got_b).digest() == hashlib.sha256(data_a).digest()
    assert hashlib.sha256(got_a).digest() == hashlib.sha256(data_b).digest()
    for writer in (wa, wb):
        writer.close()
    await asyncio.wait_for(asyncio.gather(wa.wait_closed(), wb.wait_closed()), 30)
    for endpoint in (a, b, server):
        endpoint.close()
        await asyncio.wait_for(endpoint.wait_closed(), 30)


@pytest.mark.parametrize("lab", [(True, False)], indirect=True)
async def test_a_symmetric_nat_fails_with_a_clear_error(lab):
    """nat1 maps every destination to a new random port: the port the
    rendezvous saw is not the one h2's SYNs must reach."""
    server, (a, b) = await endpoints_behind(lab)
    rendezvous = (Lab.INET[1], 3478)
    results = await asyncio.wait_for(asyncio.gather(
        holepunch.punch(a, rendezvous, "room", timeout=3), holepunch.punch(b, rendezvous, "room", timeout=3),
        return_exceptions=True), 30)
    for result in results:
        assert isinstance(result, TimeoutError), result
        assert "no segment from the peer ever arrived" in str(result) and "symmetric NAT" in str(result)
    for endpoint in (a, b, server):
        endpoint.abort()


@pytest.mark.parametrize("lab", [(True, False)], indirect=True)
async def test_a_transfer_survives_its_nat_forgetting_every_mapping(lab):
    """A 16 MiB echo from h1 (behind a NAT that picks a new random port for
    every new mapping) to a server in the internet while the NAT's UDP
    mappings are flushed every half second: each flush moves the client
    to a new address, the server follows it, and every byte arrives once,
    in order, both ways."""
    async def echo(reader, writer):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await aiotcp.create_endpoint(sock=lab.socket("inet", (Lab.INET[1], 4000)))
    await server.start_server(echo)
    client = await aiotcp.create_endpoint(sock=lab.socket("h1", ("0.0.0.0", 40000)))
    reader, writer = await client.open_connection(Lab.INET[1], 4000)
    data = blob(16 * MiB, 3)
    flushes = 0

    async def rebind():
        nonlocal flushes
        while True:
            await asyncio.sleep(0.5)
            process = await asyncio.create_subprocess_exec(*lab.flush_udp("nat1"), stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.DEVNULL)
            await process.wait()
            flushes += 1

    async def send():
        for i in range(0, len(data), 1 << 16):
            writer.write(data[i:i + (1 << 16)])
            await writer.drain()
            await asyncio.sleep(0.02)  # pacing: spread the transfer over many flushes
        writer.write_eof()

    flusher = asyncio.ensure_future(rebind())
    sender = asyncio.ensure_future(send())
    try:
        echoed = await asyncio.wait_for(reader.readexactly(len(data)), 120)
        await sender
        assert await asyncio.wait_for(reader.read(), 30) == b""
    finally:
        flusher.cancel()
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    assert flushes >= 4 and server.udp.core.stats["migrations"] >= 3, (flushes, server.udp.core.stats)
    assert server.udp.core.stats["rst_sent"] == 0
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 30)
    client.close()
    server.close()
    await asyncio.wait_for(asyncio.gather(client.wait_closed(), server.wait_closed()), 30)


@pytest.mark.parametrize("lab", [(True, False)], indirect=True)
async def test_a_download_survives_rebindings_while_the_client_is_silent(lab):
    """The server writes 8 MiB in small, spaced writes while the client
    only reads, and the NAT forgets its mappings every two seconds,
    mostly while nothing is in flight: the server's next write goes to
    the address the NAT forgot, and the client, with nothing to send,
    would hear nothing until its 25 s NAT keepalive.  The probe after a
    stopped stream (about a second) tells the server the new address,
    and the migration resends what the old address swallowed at once."""
    data = blob(8 * MiB, 5)

    async def download(reader, writer):
        await reader.readexactly(3)
        for i in range(0, len(data), 1 << 16):
            writer.write(data[i:i + (1 << 16)])
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    server = await aiotcp.create_endpoint(sock=lab.socket("inet", (Lab.INET[1], 4000)))
    await server.start_server(download)
    client = await aiotcp.create_endpoint(sock=lab.socket("h1", ("0.0.0.0", 40000)))
    reader, writer = await client.open_connection(Lab.INET[1], 4000)
    writer.write(b"get")

    async def rebind():
        while True:
            await asyncio.sleep(2.0)
            process = await asyncio.create_subprocess_exec(*lab.flush_udp("nat1"), stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.DEVNULL)
            await process.wait()

    flusher = asyncio.ensure_future(rebind())
    try:
        got = await asyncio.wait_for(reader.read(), 60)  # to the EOF
    finally:
        flusher.cancel()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert server.udp.core.stats["migrations"] >= 2, server.udp.core.stats
    assert server.udp.core.stats["rst_sent"] == 0
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 30)
    client.close()
    server.close()
    await asyncio.wait_for(asyncio.gather(client.wait_closed(), server.wait_closed()), 30)


async def test_nat_keepalive_holds_the_binding_so_the_server_can_speak_first(lab):
    """nat1 forgets a silent UDP mapping after 2 s.  The client's NAT
    keepalive (every 0.5 s here) keeps it through 5 s of silence, after
    which the server speaks first and the client hears it.  Without the
    keepalive the mapping is gone and the server's segments die at the NAT
    (the client never hears them): the control half shows the mapping is
    the difference."""
    lab.udp_timeout("nat1", 2)
    told = asyncio.get_running_loop().create_future()
    writers = []

    async def speaker(reader, writer):
        writers.append(writer)
        await told
        writer.write(b"the server speaks first\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await aiotcp.create_endpoint(sock=lab.socket("inet", (Lab.INET[1], 4000)))
    await server.start_server(speaker)
    kept = await aiotcp.create_endpoint(sock=lab.socket("h1", ("0.0.0.0", 40000)), config=Config(nat_keepalive=0.5))
    quiet = await aiotcp.create_endpoint(sock=lab.socket("h1", ("0.0.0.0", 40001)), config=Config(nat_keepalive=None))
    reader, writer = await kept.open_connection(Lab.INET[1], 4000)
    _, quiet_writer = await quiet.open_connection(Lab.INET[1], 4000)
    await asyncio.sleep(5.0)  # the silence under test (longer than the NAT's timeout)
    mappings = lab.mappings("nat1")
    assert "sport=40000" in mappings and "sport=40001" not in mappings, mappings
    told.set_result(None)
    assert await asyncio.wait_for(reader.readline(), 10) == b"the server speaks first\n"
    assert writer.get_extra_info("tcp_info")["nat_keepalives"] >= 5
    for endpoint in (kept, quiet, server):
        endpoint.abort()
