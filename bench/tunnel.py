"""The tunnel (``python -m aiotcp forward``) against a direct kernel TCP
connection, in one run, on loopback.

A kernel TCP target runs in this process: a sink that answers one byte
after the sender's EOF, and an echo.  The forward server and client run as
their own processes, the way they are used.  Each figure is measured
twice, back to back: directly to the target, and through the tunnel
(kernel TCP into the forward client, aiotcp over one UDP socket, kernel
TCP out of the forward server).  Goodput is one connection's, then eight
at once (their sum); the round trip is a 1-byte ping-pong on an open
connection.  The same figures through two plain kernel TCP proxies
(processes like the forwarders, asyncio streams copying) tell what the
two extra processes cost by themselves on this machine, apart from
aiotcp.  With --iperf3 (and iperf3 installed) iperf3's own upload
figure too, direct and through the tunnel.  Medians of --repeat runs,
and the ratio tunnel/direct taken within each run; compare ratios, not
absolute numbers (the machines are shared and noisy).

    python bench/tunnel.py [--mib 64] [--pings 1000] [--repeat 3] [--loop uvloop|asyncio] [--iperf3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 16


async def sink(reader, writer):
    while await reader.read(CHUNK):
        pass
    writer.write(b"!")
    await writer.drain()
    writer.close()


async def echo(reader, writer):
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    writer.close()


async def upload(address, size: int) -> None:
    reader, writer = await asyncio.open_connection(*address)
    block = bytes(CHUNK)
    for _ in range(size // CHUNK):
        writer.write(block)
        await writer.drain()
    writer.write_eof()
    assert await reader.read() == b"!"
    writer.close()


async def goodput(address, size: int, connections: int) -> float:
    """Mbit/s, all connections together."""
    start = time.perf_counter()
    await asyncio.gather(*(upload(address, size // connections) for _ in range(connections)))
    return size * 8 / (time.perf_counter() - start) / 1e6


async def round_trip(address, pings: int) -> float:
    """Median microseconds of a 1-byte ping-pong."""
    reader, writer = await asyncio.open_connection(*address)
    times = []
    for _ in range(pings):
        start = time.perf_counter()
        writer.write(b"x")
        await reader.readexactly(1)
        times.append(time.perf_counter() - start)
    writer.close()
    return statistics.median(times) * 1e6


async def start(*argv) -> tuple:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiotcp", *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    if not line:
        raise RuntimeError(f"python -m aiotcp {' '.join(argv)} did not start")
    return process, line


async def tunnel_to(target, loop: str) -> tuple:
    """A forward server towards ``target`` and a client towards it:
    (processes, the client's kernel address)."""
    server, line = await start("forward", "server", "--listen", "127.0.0.1:0", "--target",
                               f"{target[0]}:{target[1]}", "--loop", loop, "--log-level", "error")
    host, port = re.search(r"udp ([\d.]+):(\d+)", line).groups()
    client, line = await start("forward", "client", "--listen", "127.0.0.1:0", "--server", f"{host}:{port}",
                               "--loop", loop, "--log-level", "error")
    host, port = re.search(r"client: ([\d.]+):(\d+)", line).groups()
    return (server, client), (host, int(port))


async def proxy(target_port: int) -> None:
    """``--proxy PORT``: a plain kernel TCP proxy to 127.0.0.1:PORT,
    printing its own port."""
    async def copy(reader, writer):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        writer.write_eof()

    async def handle(reader, writer):
        target = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(copy(reader, target[1]), copy(target[0], writer))
        writer.close()
        target[1].close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"proxy: 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


async def proxies_to(target) -> tuple:
    """Two kernel proxies in a row towards ``target``: (processes, address)."""
    processes, port = [], target[1]
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--proxy", str(port), stdout=asyncio.subprocess.PIPE)
        port = int(re.search(r":(\d+)", (await process.stdout.readline()).decode()).group(1))
        processes.append(process)
    return processes, ("127.0.0.1", port)


def iperf3(port: int, seconds: int) -> float:
    """iperf3's upload figure to ``port``, Mbit/s (received)."""
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


async def measure(args) -> dict:
    sink_server = await asyncio.start_server(sink, "127.0.0.1", 0)
    echo_server = await asyncio.start_server(echo, "127.0.0.1", 0)
    sink_addr, echo_addr = sink_server.sockets[0].getsockname(), echo_server.sockets[0].getsockname()
    processes, iperf = [], None

    async def started(coroutine):
        more, address = await coroutine
        processes.extend(more)
        return address

    try:
        sink_tunnel = await started(tunnel_to(sink_addr, args.loop))
        echo_tunnel = await started(tunnel_to(echo_addr, args.loop))
        sink_proxied = await started(proxies_to(sink_addr))
        echo_proxied = await started(proxies_to(echo_addr))
        if args.iperf3:
            iperf = subprocess.Popen(["iperf3", "-s", "-p", "5299"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            iperf_tunnel = await started(tunnel_to(("127.0.0.1", 5299), args.loop))
            await asyncio.sleep(0.5)  # iperf3 -s has no readiness signal of its own
        return summary(await runs_of(args, sink_addr, echo_addr, sink_tunnel, echo_tunnel, sink_proxied,
                                     echo_proxied, iperf_tunnel if iperf else None))
    finally:
        for process in processes:
            process.kill()
            await process.wait()
        if iperf is not None:
            iperf.terminate()
            iperf.wait()
        sink_server.close()
        echo_server.close()


async def runs_of(args, sink_addr, echo_addr, sink_tunnel, echo_tunnel, sink_proxied, echo_proxied,
                  iperf_tunnel) -> list:
    size = args.mib << 20
    runs = []
    for _ in range(args.repeat):
        run = {}
        for name, (direct, through, proxied, measure_one) in {
            "goodput_1": (sink_addr, sink_tunnel, sink_proxied, lambda a: goodput(a, size, 1)),
            "goodput_8": (sink_addr, sink_tunnel, sink_proxied, lambda a: goodput(a, size, 8)),
            "rtt_us": (echo_addr, echo_tunnel, echo_proxied, lambda a: round_trip(a, args.pings)),
        }.items():
            run[name] = (await measure_one(direct), await measure_one(through), await measure_one(proxied))
        if iperf_tunnel is not None:
            run["iperf3"] = (await asyncio.to_thread(iperf3, 5299, args.seconds),
                             await asyncio.to_thread(iperf3, iperf_tunnel[1], args.seconds), None)
        runs.append(run)
    return runs


def summary(runs: list) -> dict:
    result = {}
    for name in runs[0]:
        direct = statistics.median(r[name][0] for r in runs)
        through = statistics.median(r[name][1] for r in runs)
        ratio = statistics.median(r[name][1] / r[name][0] for r in runs)
        result[name] = {"direct": round(direct, 1), "tunnel": round(through, 1), "ratio": round(ratio, 3)}
        if runs[0][name][2] is not None:
            result[name]["proxies"] = round(statistics.median(r[name][2] for r in runs), 1)
            result[name]["ratio_proxies"] = round(statistics.median(r[name][1] / r[name][2] for r in runs), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--iperf3", action="store_true", help="also iperf3's figure (needs iperf3)")
    parser.add_argument("--seconds", type=int, default=5, help="of each iperf3 run")
    parser.add_argument("--proxy", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy is not None:
        return uvloop.run(proxy(args.proxy))
    if args.iperf3 and shutil.which("iperf3") is None:
        parser.error("--iperf3: iperf3 is not installed")
    result = (uvloop.run if args.loop == "uvloop" else asyncio.run)(measure(args))
    print(f"tunnel ({args.loop} in the forwarders and here), {args.mib} MiB, medians of {args.repeat}")
    print(f"{'':12} {'direct':>10} {'tunnel':>10} {'tunnel/direct':>14} {'2 proxies':>10} {'tunnel/proxies':>15}")
    units = {"goodput_1": "Mbit/s", "goodput_8": "Mbit/s", "rtt_us": "us", "iperf3": "Mbit/s"}
    for name, row in result.items():
        print(f"{name:12} {row['direct']:>10} {row['tunnel']:>10} {row['ratio']:>14} {row.get('proxies', ''):>10} "
              f"{row.get('ratio_proxies', ''):>15}  {units[name]}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
