"""aiotcp's controllers against Linux's own TCP through one impairment relay.

Three tables, each row measured in one run, each flow sending for a fixed
time (--seconds):

1. **Loss**: goodput at 0, 0.1, 1 and 5 % random loss both ways, at 20 ms and
   100 ms RTT: aiotcp with CUBIC, NewReno and BBR, aioquic (QUIC over the
   same relay), and Linux's TCP with CUBIC and BBR (the kernel's own
   stack, carried through the same relay by two TUN gateways in a network
   namespace: bench/linux_path.py; controller set per socket with
   TCP_CONGESTION), beside the Mathis bound MSS / RTT * 1.22 / sqrt(p).
2. **Bottleneck**: a rate-limited link with a bounded queue (--rate,
   --queue): goodput, the relay's queue drops, retransmitted segments and
   the sender's smoothed RTT under load (bufferbloat) for each controller,
   CUBIC with and without pacing.
3. **Fairness**: two flows sharing that bottleneck: BBR with BBR (Jain's
   index), BBR with CUBIC (the shares).

Where root, TUN or a controller is missing the Linux cells say why they
are empty.  Prints the tables and one JSON line.

    python bench/lossy.py [--seconds 8] [--rtts 0.02,0.1] [--loss 0,0.001,0.01,0.05] [--seeds 1]
                          [--rate 2500000] [--queue 131072] [--no-linux]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import ssl
import subprocess
import sys
import tempfile
import socket
import time
from collections import Counter

import uvloop

import aiotcp
from aiotcp import Config
from aiotcp.tools._udp import drain
from aiotcp.tools.relay import Impairment, Relay

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linux_path  # noqa: E402

MSS = 1440  # with timestamps


async def _sink(args) -> None:
    """Worker: an aiotcp server counting each flow's bytes (the first byte
    of a flow is its index) for ``args.sink`` seconds, then one JSON line."""
    received: dict = {}

    async def sink(reader, writer):
        entry = None
        try:
            while chunk := await reader.read(1 << 18):
                now = time.perf_counter()
                if entry is None:
                    entry = received[chunk[0]] = [0, now, now]
                entry[0] += len(chunk)
                entry[2] = now
        except (ConnectionError, asyncio.CancelledError):
            pass  # the sender aborts when its time is up
        finally:
            writer.transport.abort()

    server = await aiotcp.start_server(sink, "127.0.0.1", 0, config=Config(**json.loads(args.config)))
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(args.sink)  # the measurement's length, then the report
    print(json.dumps(received), flush=True)


async def _send(args) -> None:
    """Worker: one aiotcp flow to the relay for ``args.seconds``; its
    tcp_info at the end (with ``rtt_under_load``: the mean of the smoothed
    RTT sampled every 100 ms after the first quarter) as one JSON line."""
    host, port, tcp_port = args.send.split(":")
    reader, writer = await aiotcp.open_connection(host, int(port), tcp_port=int(tcp_port),
                                                  config=Config(**json.loads(args.config)))
    block = bytes([args.index]) * (1 << 16)
    rtts = []
    start = last = time.perf_counter()
    while (now := time.perf_counter()) - start < args.seconds:
        writer.write(block)
        await writer.drain()
        if now - last > 0.1:
            last = now
            if (srtt := writer.get_extra_info("tcp_info")["rtt"]) is not None:
                rtts.append(srtt)
    info = writer.get_extra_info("tcp_info")
    settled = rtts[len(rtts) // 4:]
    info["rtt_under_load"] = sum(settled) / len(settled) if settled else None
    writer.transport.abort()
    print(json.dumps(info, default=str), flush=True)


async def aiotcp_flows(seconds: float, up: Impairment, down: Impairment, configs: list, seed: int) -> tuple:
    """One flow per config (Config keyword dicts) through one relay (a
    shared bottleneck when ``up`` has a rate), each sending for
    ``seconds``: the receiver and each sender in a process of its own, as
    Linux's TCP runs beside the relay, not in it.  Per flow the sender's
    tcp_info at the end with ``goodput_mbps`` as the receiver counted it;
    and the relay's counters."""
    me = os.path.abspath(__file__)
    sink = await asyncio.create_subprocess_exec(sys.executable, me, "--sink", str(seconds + 4), "--config",
                                                json.dumps(configs[0]), stdout=subprocess.PIPE)
    port = int(await sink.stdout.readline())
    relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", port), up=up, down=down, seed=seed).start()
    senders = [await asyncio.create_subprocess_exec(
        sys.executable, me, "--send", f"127.0.0.1:{relay.address[1]}:{port}", "--index", str(i),
        "--seconds", str(seconds), "--config", json.dumps(config), stdout=subprocess.PIPE)
        for i, config in enumerate(configs)]
    try:
        flows = [json.loads(await proc.stdout.readline()) for proc in senders]
        received = json.loads(await asyncio.wait_for(sink.stdout.readline(), seconds + 30))
    finally:
        for proc in (*senders, sink):
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            await proc.wait()
        relay.close()
    for i, info in enumerate(flows):
        count, first, last = received.get(str(i), (0, 0.0, 0.0))
        info["goodput_mbps"] = count * 8 / 1e6 / (last - first) if last > first else 0.0
    return flows, dict(relay.stats)


async def aiotcp_goodput(seconds: float, rtt: float, loss: float, config: dict, seed: int) -> float:
    imp = Impairment(loss=loss, delay=rtt / 2)
    flows, _ = await aiotcp_flows(seconds, imp, imp, [config], seed)
    return flows[0]["goodput_mbps"]


async def quic_goodput(seconds: float, rtt: float, loss: float, seed: int, certfile: str, keyfile: str) -> float:
    from aioquic.asyncio import connect, serve
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    received = 0
    first = asyncio.get_running_loop().create_future()

    class Sink(QuicConnectionProtocol):
        def quic_event_received(self, event):
            nonlocal received
            if isinstance(event, StreamDataReceived):
                if not first.done():
                    first.set_result(time.perf_counter())
                received += len(event.data)

    server_config = QuicConfiguration(is_client=False, alpn_protocols=["bench"])
    server_config.load_cert_chain(certfile, keyfile)
    server = await serve("127.0.0.1", 0, configuration=server_config, create_protocol=Sink)
    port = server._transport.get_extra_info("sockname")[1]
    imp = Impairment(loss=loss, delay=rtt / 2)
    relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", port), up=imp, down=imp, seed=seed).start()
    client_config = QuicConfiguration(is_client=True, alpn_protocols=["bench"], verify_mode=ssl.CERT_NONE)
    async with connect("127.0.0.1", relay.address[1], configuration=client_config) as client:
        stream = client._quic.get_next_available_stream_id()
        block = b"q" * (1 << 16)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            client._quic.send_stream_data(stream, block)
            # keep the QUIC send buffer bounded: wait while much is unsent
            while len(client._quic._streams[stream].sender._buffer) > (4 << 20):
                client.transmit()
                await asyncio.sleep(0.005)
            client.transmit()
            await asyncio.sleep(0)
        measured_from = await asyncio.wait_for(first, 10)
        elapsed = time.perf_counter() - measured_from
        goodput = received / elapsed
    relay.close()
    server.close()
    return goodput * 8 / 1e6


async def path_rtt(rtt: float, count: int = 50) -> float:
    """The relay path's real round-trip time: the median of UDP pings
    through a loss-free relay set to ``rtt``.  The loop's timers have
    millisecond resolution, so each delayed hop is a little late."""
    loop = asyncio.get_running_loop()
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.setblocking(False)

    def bounce():
        for data, addr in drain(echo, Counter(), "errors"):
            echo.sendto(data, addr)

    loop.add_reader(echo.fileno(), bounce)
    imp = Impairment(delay=rtt / 2)
    relay = await Relay(("127.0.0.1", 0), echo.getsockname(), up=imp, down=imp).start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    client.connect(relay.address)
    samples = []
    try:
        for _ in range(count):
            arrived = loop.create_future()
            loop.add_reader(client.fileno(), lambda f=arrived: f.done() or f.set_result(None))
            start = time.perf_counter()
            client.send(b"p")
            await asyncio.wait_for(arrived, 1.0)
            samples.append(time.perf_counter() - start)
            client.recv(16)
            loop.remove_reader(client.fileno())
    finally:
        loop.remove_reader(echo.fileno())
        relay.close()
        echo.close()
        client.close()
    samples.sort()
    return samples[len(samples) // 2]


def mathis(rtt: float, loss: float) -> float | None:
    if loss <= 0:
        return None
    return MSS * 8 / rtt * 1.22 / math.sqrt(loss) / 1e6


def _linux_max(name: str, default: int) -> int:
    """The largest buffer Linux's autotuning grows a TCP socket to (the
    third field of net.ipv4.tcp_rmem / tcp_wmem)."""
    try:
        with open(f"/proc/sys/net/ipv4/{name}") as f:
            return int(f.read().split()[2])
    except (OSError, IndexError, ValueError):
        return default


#: Linux's TCP grows its buffers up to these; aiotcp's are fixed by Config
#: (1 MiB each by default): "bbr, linux bufs" gives it the same room
LINUX_BUFFERS = {"receive_buffer": _linux_max("tcp_rmem", 6 << 20), "send_buffer": _linux_max("tcp_wmem", 4 << 20)}
AIOTCP = {"aiotcp cubic": {}, "aiotcp newreno": {"congestion": "newreno"}, "aiotcp bbr": {"congestion": "bbr"},
          "bbr, linux bufs": {"congestion": "bbr", **LINUX_BUFFERS}}
LINUX = ("cubic", "bbr")


def linux_cell(cc: str, seconds: float, rtt: float, loss: float, seeds: int, rate: float = 0.0,
               queue: int = 0, why: str | None = None) -> dict:
    """Linux's figures for one cell (mean over seeds), or why there are none."""
    if why is None and not linux_path.available(cc):
        why = f"{cc} not in tcp_available_congestion_control"
    if why is not None:
        return {"why": why}
    runs = []
    for seed in range(1, seeds + 1):
        try:
            runs.append(linux_path.measure(cc, seconds, rtt, loss, seed, rate, queue or 256 * 1024))
        except Exception as exc:  # reported in the cell, the table goes on
            return {"why": f"failed: {exc}"}
    return {"mbps": sum(r["mbps"] for r in runs) / len(runs),
            "rtt_under_load": runs[-1]["rtt_under_load"], "retrans": runs[-1]["retrans"],
            "queue_dropped": runs[-1]["relay"].get("up_queue_dropped", 0)}


async def run(args) -> dict:
    why = "--no-linux" if args.no_linux else linux_path.why_not()
    results = {"loss": {}, "bottleneck": {}, "fairness": {}}
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
        for rtt in args.rtts if "loss" in args.tables else ():
            measured[rtt] = await path_rtt(rtt)
            for loss in args.loss:
                row = {}
                for name, config in AIOTCP.items():
                    runs = [await aiotcp_goodput(args.seconds, rtt, loss, config, seed=seed)
                            for seed in range(1, args.seeds + 1)]
                    row[name] = sum(runs) / len(runs)
                try:
                    runs = [await quic_goodput(args.seconds, rtt, loss, seed, cert, key)
                            for seed in range(1, args.seeds + 1)]
                    row["aioquic"] = sum(runs) / len(runs)
                except Exception as exc:  # reported, the table goes on
                    print(f"aioquic at loss {loss}: {exc!r}", file=sys.stderr)
                    row["aioquic"] = float("nan")
                for cc in LINUX:
                    cell = linux_cell(cc, args.seconds, rtt, loss, args.seeds, why=why)
                    row[f"linux {cc}"] = cell.get("mbps", cell.get("why"))
                row["mathis @ path rtt"] = mathis(measured[rtt], loss)
                results["loss"][(rtt, loss)] = row
                print(f"  rtt {rtt * 1000:.0f} ms loss {loss * 100:g}%: " + ", ".join(
                    f"{n} {v:.1f}" if isinstance(v, float) else f"{n} {v}" for n, v in row.items()
                    if v is not None), file=sys.stderr, flush=True)
    # the bottleneck: a rate limit with a bounded queue, one flow each
    rtt = args.rtts[0]
    up = Impairment(delay=rtt / 2, rate=args.rate, queue=args.queue)
    down = Impairment(delay=rtt / 2)
    variants = dict(AIOTCP)
    variants["aiotcp cubic unpaced"] = {"pacing": False}
    for name, config in variants.items() if "bottleneck" in args.tables else ():
        flows, stats = await aiotcp_flows(args.seconds, up, down, [config], seed=1)
        info = flows[0]
        results["bottleneck"][name] = {"mbps": info["goodput_mbps"], "rtt_under_load": info["rtt_under_load"],
                                       "retrans": info["segments_retransmitted"],
                                       "queue_dropped": stats.get("up_queue_dropped", 0)}
    for cc in LINUX if "bottleneck" in args.tables else ():
        results["bottleneck"][f"linux {cc}"] = linux_cell(cc, args.seconds, rtt, 0.0, 1, args.rate, args.queue, why)
    # fairness: two flows on that bottleneck
    for pair in (("bbr", "bbr"), ("bbr", "cubic"), ("cubic", "cubic")) if "fairness" in args.tables else ():
        flows, stats = await aiotcp_flows(args.seconds, up, down, [{"congestion": c} for c in pair], seed=1)
        shares = [f["goodput_mbps"] for f in flows]
        jain = sum(shares) ** 2 / (len(shares) * sum(x * x for x in shares)) if any(shares) else 0.0
        results["fairness"][" + ".join(pair)] = {"mbps": shares, "jain": jain,
                                                 "queue_dropped": stats.get("up_queue_dropped", 0)}
    return results, measured


def _cell(value, width: int = 15) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, str):
        return f"{'n/a':>{width}}"
    return f"{value:>{width}.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rtts", type=lambda s: [float(x) for x in s.split(",")], default=[0.02, 0.1])
    parser.add_argument("--seeds", type=int, default=1, help="runs per case (relay seeds 1..N), averaged")
    parser.add_argument("--loss", type=lambda s: [float(x) for x in s.split(",")], default=[0, 0.001, 0.01, 0.05])
    parser.add_argument("--rate", type=float, default=2.5e6, help="the bottleneck's bytes/s (20 Mbit/s)")
    parser.add_argument("--queue", type=int, default=128 * 1024, help="the bottleneck's queue, bytes")
    parser.add_argument("--no-linux", action="store_true", help="leave Linux's columns out")
    parser.add_argument("--tables", default="loss,bottleneck,fairness", help="which of the three tables")
    parser.add_argument("--sink", type=float, help=argparse.SUPPRESS)  # worker modes
    parser.add_argument("--send", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink is not None:
        uvloop.run(_sink(args))
        return
    if args.send is not None:
        uvloop.run(_send(args))
        return
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("quic").setLevel(logging.WARNING)
    results, measured = uvloop.run(run(args))
    names = list(next(iter(results["loss"].values()))) if results["loss"] else []
    print(f"\n1. goodput Mbit/s, random loss both ways, {args.seconds:.0f} s each, mean of {args.seeds} seed(s) "
          f"(uvloop; Linux through two TUN gateways and the same relay)")
    widths = [max(10, len(n) + 2) for n in names]
    print(f"{'rtt':>6}{'loss':>7}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths)))
    whys = set()
    for (rtt, loss), row in results["loss"].items():
        print(f"{rtt * 1000:5.0f}ms{loss * 100:6.1f}%" + "".join(_cell(row[n], w) for n, w in zip(names, widths)))
        whys |= {v for v in row.values() if isinstance(v, str)}
    for why in sorted(whys):
        print(f"  n/a: {why}")
    for rtt, path in measured.items():
        print(f"  the relay path set to {rtt * 1000:.0f} ms measures {path * 1000:.1f} ms (UDP pings)")
    print(f"\n2. one flow through a {args.rate * 8 / 1e6:.0f} Mbit/s bottleneck with a {args.queue // 1024} KiB queue, "
          f"{args.rtts[0] * 1000:.0f} ms RTT, no random loss")
    print(f"{'':>22}{'Mbit/s':>10}{'RTT ms':>10}{'retrans':>10}{'queue drops':>13}")
    for name, cell in results["bottleneck"].items():
        if "why" in cell:
            print(f"{name:>22}  n/a: {cell['why']}")
            continue
        rtt = cell["rtt_under_load"]
        print(f"{name:>22}{cell['mbps']:10.1f}{'-' if rtt is None else format(rtt * 1000, '.1f'):>10}"
              f"{cell['retrans']:>10}{cell['queue_dropped']:>13}")
    print("\n3. two aiotcp flows sharing that bottleneck")
    for name, cell in results["fairness"].items():
        shares = " / ".join(f"{x:.1f}" for x in cell["mbps"])
        print(f"{name:>22}  {shares} Mbit/s, Jain's index {cell['jain']:.3f}, {cell['queue_dropped']} queue drops")
    print(json.dumps({"lossy": {f"{rtt}/{loss}": {n: (round(v, 2) if isinstance(v, float) else v)
                                                  for n, v in row.items()}
                                for (rtt, loss), row in results["loss"].items()},
                      "bottleneck": results["bottleneck"], "fairness": results["fairness"],
                      "path_rtt": {str(k): round(v, 5) for k, v in measured.items()},
                      "seconds": args.seconds, "seeds": args.seeds}, default=str))


if __name__ == "__main__":
    main()
