"""aiotcp servers on two machines behind a real UDP load balancer: nginx's
stream module, in network namespaces made here, configured as the README's
recipe says (a hash on the peer's address and port).  Each peer's datagrams
keep reaching one machine, the peers spread over both, and every
connection's bytes arrive once and in order; with the hash on the address
alone, a peer whose port changes (a NAT rebinding) stays on its machine and
its connection survives.

::

    c (10.9.1.2) -- lb (10.9.1.1 | 10.9.2.1, 10.9.3.1) -- w1 (10.9.2.11)
                                                     \\-- w2 (10.9.3.12)
"""
import asyncio
import hashlib
import os
import random
import re
import shutil
import struct
import subprocess

import pytest

import aiotcp
from natlab import Lab, why_not


def _why_not() -> str | None:
    reason = why_not()
    if reason is None and shutil.which("nginx") is None:
        reason = "needs nginx with its stream module (Debian: nginx-light, libnginx-mod-stream; .ci/run installs them)"
    if reason is None and not os.path.exists(STREAM_MODULE):
        reason = f"needs nginx's stream module ({STREAM_MODULE}; Debian: libnginx-mod-stream)"
    return reason


STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
WHY_NOT = _why_not()  # once: it makes a namespace to find out
pytestmark = [pytest.mark.asyncio, pytest.mark.netns,
              pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]
MACHINES = {"w1": "10.9.2.11", "w2": "10.9.3.12"}
BALANCER = ("10.9.1.1", 4000)
PORT = 4000


class Balanced(Lab):
    """A client, a balancer and two server machines, joined by veth pairs."""

    def __init__(self):
        tag = f"{os.getpid()}-{id(self) % 10000}"
        self.ns = {where: f"aiotcp-{where}-{tag}" for where in ("c", "lb", "w1", "w2")}

    def _up(self) -> None:
        self._namespaces()
        self._veth("lb", "c0", "10.9.1.1/24", "c", "eth0", "10.9.1.2/24")
        self._veth("lb", "w1", "10.9.2.1/24", "w1", "eth0", f"{MACHINES['w1']}/24")
        self._veth("lb", "w2", "10.9.3.1/24", "w2", "eth0", f"{MACHINES['w2']}/24")
        self.exec("c", "ip", "route", "add", "default", "via", "10.9.1.1")
        self.exec("w1", "ip", "route", "add", "default", "via", "10.9.2.1")
        self.exec("w2", "ip", "route", "add", "default", "via", "10.9.3.1")


@pytest.fixture
def lab():
    lab = Balanced().up()
    yield lab
    lab.down()


async def nginx(lab, tmp_path, hash_key: str):
    """nginx in the balancer's namespace, the README's recipe with
    ``hash_key``; returns the process once it listens."""
    upstreams = "".join(f"        server {address}:{PORT};\n" for address in MACHINES.values())
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""load_module {STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx.log info;
events {{ worker_connections 1024; }}
stream {{
    upstream aiotcp {{
        hash {hash_key} consistent;
{upstreams}    }}
    server {{
        listen {BALANCER[0]}:{BALANCER[1]} udp;
        proxy_pass aiotcp;
        proxy_timeout 10m;
    }}
}}
""")
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", lab.ns["lb"], "nginx", "-c", str(conf), "-p", str(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):  # another process's socket: polled
        if f":{BALANCER[1]} " in lab.exec("lb", "ss", "-lun"):
            return process
        assert process.returncode is None, (tmp_path / "nginx.log").read_text()
        await asyncio.sleep(0.05)
    raise AssertionError("nginx did not listen: " + (tmp_path / "nginx.log").read_text())


async def machines(lab, handler_for) -> list:
    """An aiotcp server on each machine, serving with ``handler_for(machine)``."""
    endpoints = []
    for where, address in MACHINES.items():
        endpoint = await aiotcp.create_endpoint(sock=lab.socket(where, (address, PORT)))
        await endpoint.start_server(handler_for(where))
        endpoints.append(endpoint)
    return endpoints


def digests(served: dict):
    """The handler of each machine (for :func:`machines`): a connection is
    answered with the digest of what it sent, then the machine's name,
    counted in ``served``."""
    def handler(where):
        async def serve(reader, writer):
            size = struct.unpack("!I", await reader.readexactly(4))[0]
            digest = hashlib.sha256(await reader.readexactly(size)).digest()
            served[where] += 1
            writer.write(digest + where.encode())
            await writer.drain()
            writer.close()
        return serve
    return handler


async def one_connection(lab, rng, size: int):
    """A connection through the balancer from its own UDP socket (its own
    flow): sends ``size`` random bytes, checks the digest it gets back;
    returns the machine that served it."""
    data = rng.randbytes(size)
    endpoint = await aiotcp.create_endpoint(sock=lab.socket("c"))
    try:
        reader, writer = await endpoint.open_connection(*BALANCER)
        writer.write(struct.pack("!I", size) + data)
        reply = await asyncio.wait_for(reader.read(), 60)
        assert reply[:32] == hashlib.sha256(data).digest()
        writer.close()
        await writer.wait_closed()
        return reply[32:].decode()
    finally:
        endpoint.close()
        await endpoint.wait_closed()


def _outside_ports(listing: str) -> set:
    """The ports the client's masquerade gave its flows (conntrack -L)."""
    return set(re.findall(r"dst=10\.9\.1\.2 sport=\d+ dport=(\d+)", listing))


async def close(endpoints, process):
    for endpoint in endpoints:
        endpoint.close()
        await endpoint.wait_closed()
    process.terminate()
    await process.wait()


async def test_peers_spread_over_two_machines_behind_nginx(lab, tmp_path, seeded_rng):
    """The README's nginx recipe: 24 peers, each its own flow, hashed on
    address and port; both machines serve some, each peer is served whole
    by one machine (every byte, in order: the digest matches)."""
    process = await nginx(lab, tmp_path, "$remote_addr$remote_port")
    served = {where: 0 for where in MACHINES}
    endpoints = await machines(lab, digests(served))
    try:
        sizes = [seeded_rng.choice((1, 1000, 200_000)) for _ in range(24)]
        where = await asyncio.wait_for(asyncio.gather(
            *(one_connection(lab, random.Random(seeded_rng.random()), size) for size in sizes)), 120)
        assert sorted(set(where)) == ["w1", "w2"], where  # 2**-23 odds of one machine
        assert sum(served.values()) == 24 and served == {w: where.count(w) for w in MACHINES}
    finally:
        await close(endpoints, process)


async def test_a_rebinding_behind_nginx_hashed_on_the_address_keeps_its_machine(lab, tmp_path, seeded_rng):
    """``hash $remote_addr``: the peer moves to a new port in the middle of
    a download (its own namespace masquerades it, and its conntrack is
    flushed, as a home router that forgets the mapping does); nginx gives the new port a new upstream socket to
    the same machine, which sees a new address, checks the path and
    carries on: the whole download arrives, in order."""
    process = await nginx(lab, tmp_path, "$remote_addr")
    size = 8 << 20
    blob = seeded_rng.randbytes(size)

    peers = []
    served = asyncio.Event()

    async def download(reader, writer):
        await reader.readexactly(1)
        peers.append(writer.get_extra_info("peername"))
        for i in range(0, size, 1 << 16):
            writer.write(blob[i:i + (1 << 16)])
            await writer.drain()
        writer.close()
        await writer.wait_closed()  # the FIN acknowledged: every byte reached the client
        peers.append(writer.get_extra_info("peername"))
        served.set()

    endpoints = await machines(lab, lambda where: download)
    # the client's own namespace masquerades it (random ports): flushing
    # its conntrack moves it to a new port, as its home router would
    lab.exec("c", "nft", "-f", "-", input=b"""
table ip nat {
    chain post { type nat hook postrouting priority 100; oifname "eth0" masquerade random; }
}
""")
    # a small receive buffer, not autotuned: most of the download is still
    # to come when the port changes (the whole of it fits in the buffers
    # of a fast path otherwise, and nothing would cross from the new port)
    client = await aiotcp.create_endpoint(sock=lab.socket("c"), config=aiotcp.Config(
        receive_buffer=256 << 10, receive_buffer_max=None))
    try:
        reader, writer = await client.open_connection(*BALANCER)
        writer.write(b"g")
        first = await asyncio.wait_for(reader.readexactly(1 << 20), 60)
        before = lab.exec("c", "conntrack", "-L", "-p", "udp")
        lab.exec("c", "conntrack", "-D", "-p", "udp")
        rest = await asyncio.wait_for(reader.read(), 120)
        after = lab.exec("c", "conntrack", "-L", "-p", "udp")
        await asyncio.wait_for(served.wait(), 30)  # the server's end: our ACK of its FIN
        assert hashlib.sha256(first + rest).digest() == hashlib.sha256(blob).digest()
        assert _outside_ports(before) and _outside_ports(after) and _outside_ports(before) != _outside_ports(after)
        # one machine, reached from nginx's new upstream socket
        assert len(peers) == 2 and peers[0][0] == peers[1][0] and peers[0] != peers[1], peers
        writer.close()
        await writer.wait_closed()
    finally:
        client.close()
        await client.wait_closed()
        await close(endpoints, process)
