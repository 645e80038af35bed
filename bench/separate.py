"""aiotcp against kernel TCP with client and server in separate processes,
both on uvloop, logging configured as the README says (the standard
``logging`` at WARNING): the figures of the scale issue, each with the
kernel's from the same run and the ratio.

- sequential connections/s: open, one byte each way, close;
- bulk goodput of one connection (--bulk-mib, 32 MiB; --bulk-runs
  transfers each repeat, 3: a transfer is over in tens of milliseconds);
- the same bytes over 8 concurrent connections (one client endpoint for
  aiotcp), the aggregate and Jain's fairness index of their goodputs;
- 1-byte ping-pong round trips/s;
- server memory per idle connection: the growth of the server process's
  resident set from --idle-warm to --idle-warm + --idle connections (a fresh
  server process, so that no earlier figure's buffers are in it), idle
  from the start and idle after the server wrote each 64 KB in 1000-byte
  writes (all acknowledged: nothing in flight); and, as root, the kernel's
  slab memory per connection over the same connections (/proc/slabinfo,
  the whole machine's: both ends' sockets for kernel TCP, which no resident
  set counts), with the server's resident set plus half of it (its own
  end's socket) beside it;
- two floors under the connection rate, with no TCP: a new UDP socket and
  two round trips, and the 7 datagrams of one aiotcp connection, each
  waking the other process as aiotcp's do (tcp_shaped_floor_rate); and
  one under the ping-pong, 1 byte back and forth over bare UDP
  (udp_ping_pong_floor).

The server process (``python bench/separate.py serve STACK [--workers]``)
tells each connection's job by its first byte.  With ``--workers N`` the
aiotcp server runs N processes on one UDP port with SO_REUSEPORT, and the
many-connection figure (--many concurrent connections, --rounds 1 KiB round
trips each) is measured against 1 worker and against N, twice: as it is,
and with --work SHA-256 passes over each message in the server before its
answer (a server whose own work outgrows a core, which is what workers are
for).  The client spreads its connections over --client-sockets UDP
sockets (32): the kernel picks a worker by a hash of a datagram's
addresses and ports, so connections sharing one client socket all reach
one worker, and a socket of each connection's own costs the client a
wakeup per datagram.  The busiest worker's share of the server's CPU is
printed beside the figures (1 / N: an even spread).

    python bench/bench.py --separate [--bulk-mib 32] [--repeat 3] [--idle 10000]
    python bench/separate.py [same options]
    python bench/separate.py --lo-mtu 1500   # both stacks on an Ethernet-sized path (root)
    python bench/separate.py --sizes 8,32,128,512 --repeat 5   # bulk at several sizes
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import logging
import os
import resource
import socket
import statistics
import struct
import sys
import time

import uvloop

import aiotcp

HERE = os.path.abspath(__file__)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --------------------------------------------------------------- the server

#: the TCP-shaped floor's server answers (tcp_shaped_floor_rate): a "SYN"
#: gets a "SYN-ACK", the "ACK" nothing, the request its reply (with the
#: "FIN"), the client's "FIN" the last "ACK"; anything else comes straight back
_SHAPED = {b"S": b"s", b"A": None, b"D": b"d", b"F": b"f"}


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        reply = _SHAPED.get(data, data)
        if reply is not None:
            self.transport.sendto(reply, addr)


async def _serve_udp(port: int) -> None:
    """The floor's server: each datagram straight back."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", port))
    print(transport.get_extra_info("sockname")[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    transport.close()


async def _serve(stack: str, port: int) -> None:
    if stack == "udp":
        return await _serve_udp(port)
    idle = [0]
    changed = asyncio.Event()

    async def handler(reader, writer):
        try:
            kind = await reader.read(1)
            if kind == b"c":  # connect: one byte each way
                writer.write(b"c")
                await writer.drain()
            elif kind in (b"p", b"h"):  # ping-pong ("h": the next byte's count of SHA-256 passes over what came)
                passes = (await reader.readexactly(1))[0] if kind == b"h" else 0
                while data := await reader.read(1 << 16):
                    for _ in range(passes):
                        hashlib.sha256(data).digest()
                    writer.write(data)
            elif kind == b"b":  # bulk sink: the total back at the end
                total = 0
                while chunk := await reader.read(1 << 18):
                    total += len(chunk)
                writer.write(struct.pack("!Q", total))
                await writer.drain()
            elif kind in (b"i", b"w"):  # idle until the client leaves ("w": after 64 KB in 1000-byte writes)
                if kind == b"w":
                    for _ in range(64):
                        writer.write(b"w" * 1000)
                    await writer.drain()
                idle[0] += 1
                changed.set()
                await reader.read(1)
                idle[0] -= 1
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a connection still open when the server stops ends quietly
        finally:
            writer.close()

    if stack == "kernel":
        server = await asyncio.start_server(handler, "127.0.0.1", port, backlog=4096, reuse_port=bool(port))
    else:
        server = await aiotcp.start_server(handler, "127.0.0.1", port, backlog=4096, reuse_port=bool(port))
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).split():
        if line[0] == b"rss":  # rss N: once N idle connections are here
            while idle[0] < int(line[1]):
                changed.clear()
                await changed.wait()
            gc.collect()
            print(_rss_kib(), flush=True)
    server.close()


class Server:
    """A server process; ``workers`` processes share one port (SO_REUSEPORT)."""

    def __init__(self, stack: str, workers: int = 1):
        self.stack, self.workers = stack, workers
        self.procs: list = []
        self.port = 0

    async def __aenter__(self):
        if self.workers > 1:  # a free port for all of them
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        for _ in range(self.workers):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, HERE, "serve", self.stack, str(self.port),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.port = int(await proc.stdout.readline())
            self.procs.append(proc)
        return self

    def cpus(self) -> list:
        """CPU seconds each server process has used so far."""
        used = []
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            used.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))  # utime, stime
        return used

    async def rss(self, idle: int) -> int:
        proc = self.procs[0]
        proc.stdin.write(f"rss {idle}\n".encode())
        await proc.stdin.drain()
        return int(await proc.stdout.readline())

    async def __aexit__(self, *exc):
        for proc in self.procs:
            proc.stdin.close()
        for proc in self.procs:
            await proc.wait()


def _opener(stack: str, endpoint=None):
    if stack == "kernel":
        return asyncio.open_connection
    return endpoint.open_connection if endpoint is not None else aiotcp.open_connection


# --------------------------------------------------------------- the figures

async def connect_rate(stack: str, port: int, count: int) -> float:
    open_connection = _opener(stack)
    start = time.perf_counter()
    for _ in range(count):
        reader, writer = await open_connection("127.0.0.1", port)
        writer.write(b"c")
        assert await reader.read(1) == b"c"
        writer.close()
    return count / (time.perf_counter() - start)


async def udp_floor_rate(port: int, count: int) -> float:
    """The floor under any connection over UDP made in Python on this loop:
    per "connection" a new connected UDP socket and two round trips of one
    byte (what a handshake and one byte each way need at the least: SYN /
    SYN-ACK, then the request and the reply), then close.  No TCP at all."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        for _ in range(2):
            await loop.sock_sendall(sock, b"c")
            assert await loop.sock_recv(sock, 64) == b"c"
        sock.close()
    return count / (time.perf_counter() - start)


async def tcp_shaped_floor_rate(port: int, count: int) -> float:
    """The floor under an aiotcp connection in Python on this loop: the
    datagrams of one, with no TCP in them and no streams around them.  Per
    connection a new connected UDP socket watched by the loop, and what a
    connection of connect_rate sends: "SYN" and its answer, "ACK" and the
    1-byte request at once, the reply (which carries the server's "FIN"),
    then the client's "FIN".  The last "ACK" comes back while the next
    connection opens, and closes the socket then, as a client's LAST_ACK
    ends.  Each datagram wakes the other side's loop, as aiotcp's do (kernel
    TCP's handshake and teardown run in the kernel, with no wakeup)."""
    loop = asyncio.get_running_loop()
    address = ("127.0.0.1", port)
    closing: set = set()
    drained = loop.create_future()  # every socket closed, once the loop ends

    def readable(sock, state):
        try:
            data = sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        if data == b"f":  # the last ACK: the socket's part is over
            loop.remove_reader(sock.fileno())
            sock.close()
            closing.discard(sock)
            if not closing and not drained.done():
                drained.set_result(None)
        elif state[0] is not None and not state[0].done():
            state[0].set_result(data)

    start = time.perf_counter()
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(address)
        state = [loop.create_future()]
        loop.add_reader(sock.fileno(), readable, sock, state)
        sock.send(b"S")
        assert await state[0] == b"s"
        state[0] = loop.create_future()
        sock.send(b"A")
        sock.send(b"D")
        assert await state[0] == b"d"
        state[0] = None
        sock.send(b"F")
        closing.add(sock)
    rate = count / (time.perf_counter() - start)
    if closing:  # the last ACKs still on their way
        await drained
    return rate


class _Replies(asyncio.DatagramProtocol):
    def __init__(self):
        self.waiter = None

    def datagram_received(self, data, addr):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def udp_ping_pong_floor(port: int, count: int) -> float:
    """The floor under the ping-pong over UDP in Python on this loop: one
    byte back and forth over bare datagrams (asyncio's datagram transport,
    the reply awaited as a stream's read is), no TCP at all."""
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_datagram_endpoint(_Replies, remote_addr=("127.0.0.1", port))
    try:
        for rounds in (50, count):  # warm up, then the figure
            start = time.perf_counter()
            for _ in range(rounds):
                replies.waiter = loop.create_future()
                transport.sendto(b"x")
                await replies.waiter
        return count / (time.perf_counter() - start)
    finally:
        transport.close()


async def _send_bulk(open_connection, port: int, size: int) -> float:
    reader, writer = await open_connection("127.0.0.1", port)
    block = b"\x5a" * (1 << 16)
    start = time.perf_counter()
    writer.write(b"b")
    for _ in range(size // len(block)):
        writer.write(block)
        await writer.drain()
    writer.write_eof()
    total, = struct.unpack("!Q", await reader.readexactly(8))
    elapsed = time.perf_counter() - start
    assert total == size, (total, size)
    writer.close()
    return elapsed


async def bulk(stack: str, port: int, size: int) -> float:
    return size / await _send_bulk(_opener(stack), port, size) / 1e6


async def bulk_many(stack: str, port: int, size: int, n: int = 8) -> tuple:
    """Aggregate MB/s of ``size`` bytes split over ``n`` concurrent
    connections, and Jain's index of their goodputs."""
    endpoint = await aiotcp.create_endpoint(("127.0.0.1", 0)) if stack != "kernel" else None
    try:
        each = size // n
        start = time.perf_counter()
        times = await asyncio.gather(*(_send_bulk(_opener(stack, endpoint), port, each) for _ in range(n)))
        elapsed = time.perf_counter() - start
    finally:
        if endpoint is not None:
            endpoint.close()
    rates = [each / t for t in times]
    jain = sum(rates) ** 2 / (n * sum(r * r for r in rates))
    return each * n / elapsed / 1e6, jain


async def ping_pong(stack: str, port: int, count: int) -> float:
    reader, writer = await _opener(stack)("127.0.0.1", port)
    writer.write(b"p")
    for _ in range(50):  # warm up
        writer.write(b"x")
        await reader.readexactly(1)
    start = time.perf_counter()
    for _ in range(count):
        writer.write(b"x")
        await reader.readexactly(1)
    elapsed = time.perf_counter() - start
    writer.close()
    return count / elapsed


async def _open_idle(open_connection, port: int, count: int, held: list, kind: bytes = b"i") -> None:
    async def one():
        reader, writer = await open_connection("127.0.0.1", port)
        writer.write(kind)
        if kind == b"w":  # all of it read: the server has nothing in flight
            await reader.readexactly(64_000)
        held.append(writer)

    for first in range(0, count, 100):
        await asyncio.gather(*(one() for _ in range(min(100, count - first))))


def kernel_slab_bytes() -> int | None:
    """The bytes the kernel's slab caches hold in live objects, the whole
    machine's (/proc/slabinfo, root only; None if it cannot be read): where
    a kernel TCP socket lives, which no process's resident set counts."""
    try:
        with open("/proc/slabinfo") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    total = 0
    for line in lines:
        fields = line.split()
        total += int(fields[1]) * int(fields[3])  # active objects * object size
    return total


async def idle_memory(stack: str, warm: int, count: int, kind: bytes = b"i") -> tuple[float, float | None]:
    """KiB of server resident memory per idle connection (``kind`` b"w":
    idle after the server wrote it 64 KB in 1000-byte writes, all of them
    acknowledged), and KiB of kernel slab memory per connection over the
    same connections, both ends' (None without /proc/slabinfo)."""
    endpoint = await aiotcp.create_endpoint(("127.0.0.1", 0)) if stack != "kernel" else None
    held: list = []
    try:
        async with Server(stack) as server:
            await _open_idle(_opener(stack, endpoint), server.port, warm, held, kind)
            before = await server.rss(warm)
            slab_before = kernel_slab_bytes()
            await _open_idle(_opener(stack, endpoint), server.port, count, held, kind)
            after = await server.rss(warm + count)
            slab_after = kernel_slab_bytes()
            for writer in held:
                writer.close()
    finally:
        if endpoint is not None:
            endpoint.close()
    slab = None if slab_before is None or slab_after is None else (slab_after - slab_before) / 1024 / count
    return (after - before) / count, slab


async def many(port: int, conns: int, rounds: int, work: int = 0, sockets: int = 32) -> float:
    """Round trips/s over ``conns`` concurrent aiotcp connections, each with a
    1 KiB message back and forth ``rounds`` times (client in this process),
    spread over ``sockets`` client UDP sockets (aiotcp endpoints: see the
    module docstring); ``work``: SHA-256 passes the server makes over each
    message."""
    message = b"m" * 1024
    endpoints = [await aiotcp.create_endpoint(("127.0.0.1", 0)) for _ in range(sockets)]

    async def one(endpoint):
        reader, writer = await endpoint.open_connection("127.0.0.1", port)
        writer.write(b"h" + bytes([work]) if work else b"p")
        for _ in range(rounds):
            writer.write(message)
            await reader.readexactly(len(message))
        writer.close()

    try:
        start = time.perf_counter()
        await asyncio.gather(*(one(endpoints[i % sockets]) for i in range(conns)))
        return conns * rounds / (time.perf_counter() - start)
    finally:
        for endpoint in endpoints:
            endpoint.close()


async def run(args) -> dict:
    size = args.bulk_mib << 20
    figures: dict = {}
    for i in range(args.repeat):
        order = ("aiotcp", "kernel") if i % 2 == 0 else ("kernel", "aiotcp")
        for stack in order:
            async with Server(stack) as server:
                run_figures = {
                    "connects_per_s": [await connect_rate(stack, server.port, args.connects)],
                    # a transfer takes tens of milliseconds: a few of them a repeat
                    "bulk_MBps": [await bulk(stack, server.port, size) for _ in range(args.bulk_runs)],
                    "pingpong_per_s": [await ping_pong(stack, server.port, args.pings)],
                }
                many_runs = [await bulk_many(stack, server.port, size) for _ in range(args.bulk_runs)]
                run_figures["bulk8_MBps"] = [rate for rate, _ in many_runs]
                run_figures["bulk8_jain"] = [jain for _, jain in many_runs]
            for key, values in run_figures.items():
                figures.setdefault(f"{stack}_{key}", []).extend(values)
    floors, shaped, pings = [], [], []
    async with Server("udp") as server:
        for _ in range(args.repeat):
            floors.append(await udp_floor_rate(server.port, args.connects))
            shaped.append(await tcp_shaped_floor_rate(server.port, args.connects))
            pings.append(await udp_ping_pong_floor(server.port, args.pings))
    figures["udp_floor_connects_per_s"] = floors
    figures["tcp_shaped_floor_connects_per_s"] = shaped
    figures["udp_floor_pingpong_per_s"] = pings
    result = {key: statistics.median(values) for key, values in figures.items()}
    if args.idle:
        for stack in ("aiotcp", "kernel"):
            rss, slab = await idle_memory(stack, args.idle_warm, args.idle)
            result[f"{stack}_idle_KiB"] = rss
            result[f"{stack}_idle_written_KiB"] = (await idle_memory(stack, args.idle_warm, args.idle, b"w"))[0]
            if slab is not None:
                # the kernel's share: both ends' sockets for kernel TCP (alike:
                # a socket, its file and its epoll entry each), the UDP
                # sockets' nothing per connection for aiotcp (one each end)
                result[f"{stack}_idle_slab_KiB"] = slab
                result[f"{stack}_idle_total_KiB"] = rss + slab / 2
    if args.workers > 1:
        for work, name in ((0, "many"), (args.work, "work")):
            for workers in (1, args.workers):
                async with Server("aiotcp", workers) as server:
                    await many(server.port, args.many, 2, work, args.client_sockets)  # every worker warm
                    cpus, client_cpu, start = server.cpus(), time.process_time(), time.perf_counter()
                    result[f"aiotcp_{name}_{workers}w_per_s"] = await many(server.port, args.many, args.rounds,
                                                                            work, args.client_sockets)
                    wall = time.perf_counter() - start
                    used = [after - before for before, after in zip(cpus, server.cpus())]
                    # cores busy: the server's processes together, and the client's
                    result[f"aiotcp_{name}_{workers}w_server_cores"] = sum(used) / wall
                    result[f"aiotcp_{name}_{workers}w_client_cores"] = (time.process_time() - client_cpu) / wall
                    # the busiest worker's share of the server's CPU (1 / workers: even)
                    result[f"aiotcp_{name}_{workers}w_top_share"] = max(used) / (sum(used) or 1)
    return result


def report(r: dict, args) -> None:
    rows = [("sequential connections/s (open, 1 B each way, close)", "connects_per_s", True),
            (f"bulk goodput MB/s, one connection, {args.bulk_mib} MiB", "bulk_MBps", True),
            ("bulk goodput MB/s, 8 concurrent connections", "bulk8_MBps", True),
            ("1-byte ping-pong round trips/s", "pingpong_per_s", True),
            (f"server KiB per idle connection ({args.idle} connections)", "idle_KiB", False),
            ("the same, after 64 KB written in 1000-byte writes", "idle_written_KiB", False),
            ("kernel (slab) KiB per idle connection, both ends", "idle_slab_KiB", False),
            ("server resident + its end's kernel KiB (half the above)", "idle_total_KiB", False)]
    print(f"{'figure':58}{'aiotcp':>12}{'kernel':>12}{'ratio':>9}")
    for label, key, higher in rows:
        if f"aiotcp_{key}" not in r:
            continue
        a, k = r[f"aiotcp_{key}"], r[f"kernel_{key}"]
        ratio = f"{a / k:8.2f}x" if round(a, 1) > 0 else f"{'':9}"
        print(f"{label:58}{round(a, 1) or 0.0:12.1f}{k:12.1f}{ratio}")  # "or": no "-0.0"
    for label, key, figure in (("the floor: a UDP socket and 2 round trips of 1 B/s", "udp_floor_connects_per_s",
                                "connects_per_s"),
                               ("the floor with the 7 datagrams of a connection, no TCP/s",
                                "tcp_shaped_floor_connects_per_s", "connects_per_s"),
                               ("the floor: 1-byte round trips over bare UDP/s", "udp_floor_pingpong_per_s",
                                "pingpong_per_s")):
        if key not in r:
            continue
        floor = r[key]
        print(f"{label:58}{floor:12.1f}{'':12}{floor / r[f'kernel_{figure}']:8.2f}x  "
              f"(aiotcp at {r[f'aiotcp_{figure}'] / floor:.2f} of it)")
    print(f"{'Jain index, 8 concurrent connections':58}{r['aiotcp_bulk8_jain']:12.3f}{r['kernel_bulk8_jain']:12.3f}")
    if args.workers > 1:
        n = args.workers
        for name, what in (("many", "as they are"), ("work", f"{args.work} SHA-256 passes a message in the server")):
            one, more = r[f"aiotcp_{name}_1w_per_s"], r[f"aiotcp_{name}_{n}w_per_s"]
            print(f"aiotcp, {args.many} connections, {what}: {one:.0f} round trips/s with 1 worker, "
                  f"{more:.0f} with {n} ({more / one:.2f}x); cores busy, server / client: "
                  f"{r[f'aiotcp_{name}_1w_server_cores']:.2f} / {r[f'aiotcp_{name}_1w_client_cores']:.2f} "
                  f"with 1 worker, {r[f'aiotcp_{name}_{n}w_server_cores']:.2f} / "
                  f"{r[f'aiotcp_{name}_{n}w_client_cores']:.2f} with {n}, the busiest of the {n} taking "
                  f"{r[f'aiotcp_{name}_{n}w_top_share']:.2f} of the server's ({os.cpu_count()} cores here)")
    print(json.dumps({"separate": {k: round(v, 3) for k, v in r.items()}, "bulk_mib": args.bulk_mib,
                      "repeat": args.repeat, "python": sys.version.split()[0]}))


def add_arguments(parser) -> None:
    parser.add_argument("--bulk-mib", type=int, default=32)
    parser.add_argument("--bulk-runs", type=int, default=3, help="bulk transfers a repeat (the median of all is given)")
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=int, default=10000, help="idle connections for the memory figure (0: none)")
    parser.add_argument("--idle-warm", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="aiotcp server workers for the scaling figure (1: none)")
    parser.add_argument("--many", type=int, default=200, help="concurrent connections for the scaling figure")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--work", type=int, default=60, help="SHA-256 passes over each message in the server, "
                        "for the second scaling figure (0 to 255)")
    parser.add_argument("--client-sockets", type=int, default=32, help="the scaling figures' client UDP sockets, "
                        "its connections spread over them (the kernel spreads the sockets over the workers)")
    parser.add_argument("--sizes", help="instead: one connection's bulk goodput at these sizes in MiB "
                        "(e.g. 8,32,128,512), warm processes, --repeat transfers a size")
    parser.add_argument("--lo-mtu", type=int, help="run it all in a network namespace of its own whose loopback "
                        "has this MTU (root): 1500 puts kernel TCP's segments at the size aiotcp's are")


def _in_namespace(args, argv) -> int:
    """Run this bench again inside a new network namespace whose loopback
    has MTU ``args.lo_mtu``: kernel TCP sizes its segments from the
    interface (64 KiB on a host's loopback), aiotcp from Config.mtu (1500),
    so this shows the two on a path of one size.  The namespace is ours and
    goes when the run ends."""
    import shutil
    import subprocess
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("--lo-mtu needs root and iproute2 (ip netns): not run", file=sys.stderr)
        return 1
    name = f"aiotcp-bench-{os.getpid()}"
    rest = [a for i, a in enumerate(argv) if not (a.startswith("--lo-mtu") or (i and argv[i - 1] == "--lo-mtu"))]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "mtu", str(args.lo_mtu), "up"],
                       check=True)
        print(f"in network namespace {name}, loopback MTU {args.lo_mtu}", flush=True)
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, HERE, *rest]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", name])


def main(argv=None) -> None:
    _raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve":
        uvloop.run(_serve(argv[1], int(argv[2])))
        return
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.lo_mtu:
        sys.exit(_in_namespace(args, argv))
    if args.sizes:
        uvloop.run(bulk_sizes([int(mib) for mib in args.sizes.split(",")], args.repeat))
        return
    report(uvloop.run(run(args)), args)


async def bulk_sizes(sizes: list, repeat: int) -> None:
    """One connection's bulk goodput at each size (MiB), both stacks, warm
    processes (a 32 MiB transfer each first, not counted), their
    transfers taking turns: the median of ``repeat`` transfers a size."""
    print(f"{'size':>10}{'aiotcp MB/s':>14}{'kernel MB/s':>14}{'ratio':>9}")
    async with Server("aiotcp") as ours, Server("kernel") as kernels:
        servers = {"aiotcp": ours, "kernel": kernels}
        for stack, server in servers.items():
            await bulk(stack, server.port, 32 << 20)
        for mib in sizes:
            rates: dict = {"aiotcp": [], "kernel": []}
            for _ in range(repeat):
                for stack, server in servers.items():
                    rates[stack].append(await bulk(stack, server.port, mib << 20))
            a, k = statistics.median(rates["aiotcp"]), statistics.median(rates["kernel"])
            print(f"{mib:>6} MiB{a:14.0f}{k:14.0f}{a / k:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
