"""aiotcp against kernel TCP (asyncio streams) and a raw UDP blast, in one run.

For each event loop (default asyncio, uvloop): bulk goodput of one connection,
ping-pong round trips with 1-byte and 1452-byte messages, and sequential
connection setup (open, one byte each way, close).  The raw UDP blast sends
1452-byte datagrams as fast as one socket can, one system call each: the
ceiling for anything that sends one datagram per segment that way.  aiotcp
hands runs of datagrams to the kernel with UDP GSO and takes them back with
GRO, so the table also shows its bulk goodput with both off, and a blast that
uses them (runs of 44 datagrams per call, the most that fit in 64 KiB).
The ping-pong also runs over bare UDP datagrams through the same asyncio
streams, with no TCP at all (udp_ping_pong): what kernel TCP's round trip
minus that one leaves is what the round-trip target leaves for all of TCP's
work at both ends.

Each figure is the median of --repeat runs.  The ratios the targets are
stated in are taken within each run, aiotcp and kernel TCP measured back to
back (the round trips in --pairs interleaved sets), and their medians
reported: a burst of load on a shared machine then moves both sides of a
ratio.  Prints a table, the ratios against the targets, and one JSON line;
compare ratios, not absolute numbers (the machines are shared and noisy).

    python bench/bench.py [--bulk-mib 64] [--pings 2000] [--connects 300]
                          [--loops asyncio,uvloop] [--repeat 3] [--pairs 5]
    python bench/bench.py --separate ...   (separate processes: bench/separate.py)
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import socket
import statistics
import struct
import sys
import time

import uvloop

import aiotcp

MSS = 1452


NO_OFFLOAD = aiotcp.Config(udp_gso=False, udp_gro=False)
UDP_SEGMENT, UDP_GRO = 103, 104  # <netinet/udp.h>


def stacks():
    return {
        "aiotcp": (aiotcp.start_server, aiotcp.open_connection),
        "aiotcp_no_offload": (functools.partial(aiotcp.start_server, config=NO_OFFLOAD),
                              functools.partial(aiotcp.open_connection, config=NO_OFFLOAD)),
        "kernel": (asyncio.start_server, asyncio.open_connection),
    }


async def bulk(stack: str, size: int) -> float:
    start_server, open_connection = stacks()[stack]
    done = asyncio.get_running_loop().create_future()

    async def sink(reader, writer):
        total = 0
        while chunk := await reader.read(1 << 18):
            total += len(chunk)
        done.set_result(total)
        writer.close()

    server = await start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await open_connection("127.0.0.1", port)
    block = b"\x5a" * (1 << 16)
    start = time.perf_counter()
    for _ in range(size // len(block)):
        writer.write(block)
        await writer.drain()
    writer.write_eof()
    total = await done
    elapsed = time.perf_counter() - start
    assert total == size, (total, size)
    writer.close()
    server.close()
    await server.wait_closed()
    return size / elapsed / 1e6


async def _exchange(reader, writer, size: int, count: int) -> float:
    """Microseconds a round trip: ``count`` messages of ``size`` bytes
    written and each read back whole before the next (after 20 unmeasured)."""
    message = b"p" * size
    for _ in range(20):  # warm up
        writer.write(message)
        await reader.readexactly(size)
    start = time.perf_counter()
    for _ in range(count):
        writer.write(message)
        await reader.readexactly(size)
    return (time.perf_counter() - start) / count * 1e6


async def ping_pong(stack: str, size: int, count: int) -> float:
    start_server, open_connection = stacks()[stack]

    async def handler(reader, writer):
        try:
            while True:
                writer.write(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            writer.close()

    server = await start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await open_connection("127.0.0.1", port)
    elapsed = await _exchange(reader, writer, size, count)
    writer.close()
    server.close()
    await server.wait_closed()
    return elapsed


async def connect_rate(stack: str, count: int) -> float:
    start_server, open_connection = stacks()[stack]

    async def handler(reader, writer):
        data = await reader.read(1)
        writer.write(data)
        await writer.drain()
        writer.close()

    server = await start_server(handler, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    start = time.perf_counter()
    for _ in range(count):
        reader, writer = await open_connection("127.0.0.1", port)
        writer.write(b"x")
        assert await reader.read(1) == b"x"
        writer.close()
    elapsed = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    return count / elapsed


async def udp_blast(size: int, batch: int = 1) -> float:
    """Goodput of 1452-byte datagrams from one socket to another on loopback;
    with ``batch`` > 1, that many per system call (UDP GSO, read with GRO)."""
    loop = asyncio.get_running_loop()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    if batch > 1:
        rx.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    tx.connect(rx.getsockname())
    buf = bytearray(65536)
    received = 0
    payload = b"u" * MSS
    run = payload * batch
    gso = [(socket.IPPROTO_UDP, UDP_SEGMENT, struct.pack("H", MSS))]
    count = size // MSS
    finished = loop.create_future()

    def on_readable():
        nonlocal received
        try:
            while True:
                received += rx.recv_into(buf)
        except BlockingIOError:
            pass
        if received >= count * MSS * 0.999 and not finished.done():
            finished.set_result(None)

    loop.add_reader(rx.fileno(), on_readable)
    start = time.perf_counter()
    sent = 0
    while sent < count:
        try:
            for _ in range(64):
                if batch > 1:
                    tx.sendmsg([run], gso)
                    sent += batch
                else:
                    tx.send(payload)
                    sent += 1
        except BlockingIOError:
            pass
        await asyncio.sleep(0)  # let the receiver drain: one process, one loop
    try:
        await asyncio.wait_for(finished, 1.0)
    except asyncio.TimeoutError:
        pass
    elapsed = time.perf_counter() - start
    loop.remove_reader(rx.fileno())
    rx.close()
    tx.close()
    return received / elapsed / 1e6


class _DatagramStream(asyncio.Transport):
    """The least a stream over UDP can be: each write() one datagram on a
    connected socket, each datagram read (one a wakeup) handed to the
    protocol as it is.  No TCP: no header, no checksum, no ACK, no timer,
    no loss, reordering or flow control handled.  Under asyncio's own
    StreamReader and StreamWriter, its ping-pong is the floor for any
    protocol carried over UDP through asyncio streams on this machine."""

    def __init__(self, loop, sock: socket.socket, protocol: asyncio.Protocol):
        super().__init__()
        self._loop, self._sock, self._protocol = loop, sock, protocol
        self._closing = False
        loop.add_reader(sock.fileno(), self._on_readable)
        protocol.connection_made(self)

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        self._protocol.data_received(data)

    def write(self, data) -> None:
        self._sock.send(data)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def get_write_buffer_size(self) -> int:
        return 0


async def udp_ping_pong(size: int, count: int) -> float:
    """ping_pong's exchange over two _DatagramStream ends."""
    loop = asyncio.get_running_loop()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    socks[0].connect(socks[1].getsockname())
    socks[1].connect(socks[0].getsockname())
    ends = []
    for sock in socks:
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport = _DatagramStream(loop, sock, protocol)
        ends.append((reader, asyncio.StreamWriter(transport, protocol, reader, loop), transport))
    (reader, writer, near), (peer_reader, peer_writer, far) = ends

    async def echo():
        while True:
            peer_writer.write(await peer_reader.readexactly(size))

    task = asyncio.ensure_future(echo())
    elapsed = await _exchange(reader, writer, size, count)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    near.close()
    far.close()
    return elapsed


async def rtt_pairs(size: int, count: int, pairs: int, flip: bool) -> tuple:
    """Ping-pong round trips of aiotcp, kernel TCP and the bare-UDP floor
    (udp_ping_pong) measured in ``pairs`` back-to-back sets, their order
    reversed every other set: the median round trip of each and the
    medians of the per-set ratios to kernel TCP.  A set is a few tens of
    milliseconds, so a burst of load on a shared machine lands on all of it
    far more often than on one part: the ratios are steadier than the
    figures."""
    times = {"aiotcp": [], "kernel": [], "udp": []}
    ratios = {"aiotcp": [], "udp": []}
    for i in range(pairs):
        order = ("aiotcp", "kernel", "udp")
        if (i % 2 == 1) != flip:
            order = order[::-1]
        one = {stack: await (udp_ping_pong(size, count) if stack == "udp" else ping_pong(stack, size, count))
               for stack in order}
        for stack, value in one.items():
            times[stack].append(value)
        for stack in ratios:
            ratios[stack].append(one[stack] / one["kernel"])
    return ({stack: statistics.median(values) for stack, values in times.items()},
            {stack: statistics.median(values) for stack, values in ratios.items()})


async def run_once(args, flip: bool = False) -> dict:
    """One run: every figure once, aiotcp and kernel TCP back to back (which
    goes first flips with ``flip``), and the ratios the targets are stated in,
    each taken within the run."""
    size = args.bulk_mib << 20
    stacks_in_order = ("kernel", "aiotcp") if flip else ("aiotcp", "kernel")
    results = {"udp_blast_MBps": await udp_blast(size),
               "udp_blast_gso_MBps": await udp_blast(size, batch=44)}
    results["aiotcp_no_offload_bulk_MBps"] = await bulk("aiotcp_no_offload", size)
    for stack in stacks_in_order:
        results[f"{stack}_bulk_MBps"] = await bulk(stack, size)
    results["bulk_vs_blast"] = results["aiotcp_bulk_MBps"] / results["udp_blast_MBps"]
    for name, message in (("1B", 1), ("1452B", MSS)):
        times, ratios = await rtt_pairs(message, args.pings, args.pairs, flip)
        for stack, value in times.items():
            results[f"{stack}_rtt_{name}_us"] = value
        results[f"rtt_{name}_vs_kernel"] = ratios["aiotcp"]
        results[f"udp_rtt_{name}_vs_kernel"] = ratios["udp"]
    for stack in stacks_in_order:
        results[f"{stack}_connects_per_s"] = await connect_rate(stack, args.connects)
    return results


async def run_all(args) -> dict:
    """The median of each figure, and of each ratio, over --repeat runs."""
    runs = [await run_once(args, flip=bool(i % 2)) for i in range(args.repeat)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def targets(r: dict) -> str:
    """The issue's targets (on uvloop, default MSS, loopback), each met or not."""
    checks = (
        (f"bulk >= 60% of the UDP blast ({r['bulk_vs_blast']:.0%})", r["bulk_vs_blast"] >= 0.60),
        (f"RTT 1 B <= kernel ({r['rtt_1B_vs_kernel']:.3f}x)", r["rtt_1B_vs_kernel"] <= 1.0),
        (f"RTT 1452 B <= kernel ({r['rtt_1452B_vs_kernel']:.3f}x)", r["rtt_1452B_vs_kernel"] <= 1.0),
        (f">= 1000 connections/s ({r['aiotcp_connects_per_s']:.0f})", r["aiotcp_connects_per_s"] >= 1000),
    )
    return "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk-mib", type=int, default=64)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=5,
                        help="interleaved aiotcp/kernel/bare-UDP sets per ping-pong figure in each run")
    parser.add_argument("--separate", action="store_true",
                        help="client and server in separate processes on uvloop (bench/separate.py; its own options "
                             "follow, see there)")
    args, rest = parser.parse_known_args()
    if args.separate:
        import separate
        separate.main([arg for arg in sys.argv[1:] if arg != "--separate"])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.WARNING)
    table = {}
    for kind in args.loops.split(","):
        runner = uvloop.run if kind == "uvloop" else asyncio.run
        table[kind] = runner(run_all(args))
    rows = [
        ("bulk goodput MB/s", "bulk_MBps"),
        ("ping-pong RTT 1 B (us)", "rtt_1B_us"),
        ("ping-pong RTT 1452 B (us)", "rtt_1452B_us"),
        ("connections/s (open, 1 B each way, close)", "connects_per_s"),
    ]
    print(f"{'':44}" + "".join(f"{k + ' aiotcp':>16}{k + ' kernel':>16}" for k in table))
    for label, key in rows:
        line = f"{label:44}"
        for kind, r in table.items():
            line += f"{r['aiotcp_' + key]:16.1f}{r['kernel_' + key]:16.1f}"
        print(line)
    for label, key in (("RTT 1 B over bare UDP, no TCP (us)", "udp_rtt_1B_us"),
                       ("RTT 1452 B over bare UDP, no TCP (us)", "udp_rtt_1452B_us"),
                       ("aiotcp bulk MB/s, GSO/GRO off", "aiotcp_no_offload_bulk_MBps"),
                       ("raw UDP blast MB/s (1452 B datagrams)", "udp_blast_MBps"),
                       ("raw UDP blast MB/s, GSO/GRO runs of 44", "udp_blast_gso_MBps")):
        line = f"{label:44}"
        for kind, r in table.items():
            line += f"{r[key]:16.1f}{'':16}"
        print(line)
    for kind, r in table.items():
        print(f"{kind}: aiotcp bulk = {r['bulk_vs_blast']:.0%} of the UDP blast "
              f"({r['aiotcp_no_offload_bulk_MBps'] / r['udp_blast_MBps']:.0%} with GSO/GRO off; "
              f"{r['aiotcp_bulk_MBps'] / r['udp_blast_gso_MBps']:.0%} of the GSO blast); "
              f"RTT 1 B = {r['rtt_1B_vs_kernel']:.3f}x kernel, 1452 B = {r['rtt_1452B_vs_kernel']:.3f}x; "
              f"{r['aiotcp_connects_per_s']:.0f} connections/s")
        print(f"{kind}: bare UDP round trips = {r['udp_rtt_1B_vs_kernel']:.3f}x kernel TCP at 1 B, "
              f"{r['udp_rtt_1452B_vs_kernel']:.3f}x at 1452 B: the round-trip target leaves all of TCP, "
              f"both ends, about {r['kernel_rtt_1B_us'] - r['udp_rtt_1B_us']:.1f} us and "
              f"{r['kernel_rtt_1452B_us'] - r['udp_rtt_1452B_us']:.1f} us a round trip; aiotcp takes "
              f"{r['aiotcp_rtt_1B_us'] - r['udp_rtt_1B_us']:.1f} us and "
              f"{r['aiotcp_rtt_1452B_us'] - r['udp_rtt_1452B_us']:.1f} us")
    if "uvloop" in table:
        print("targets on uvloop: " + targets(table["uvloop"]))
    print(json.dumps({"bench": {k: {n: round(v, 2) for n, v in r.items()} for k, r in table.items()},
                      "bulk_mib": args.bulk_mib, "repeat": args.repeat, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
