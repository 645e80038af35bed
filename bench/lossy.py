"""Goodput through the impairment relay at 20 ms RTT with random loss.

For each loss rate (0, 0.1, 1, 5 %): aiotcp with CUBIC, with NewReno, and
with SACK off, and aioquic (QUIC over the same relay), each sending for a
fixed time; beside the Mathis bound MSS / RTT * 1.22 / sqrt(p).  Loss is
applied in both directions.  Prints a table and one JSON line.

    python bench/lossy.py [--seconds 10] [--rtt 0.02] [--loss 0,0.001,0.01,0.05] [--seeds 1]
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

MSS = 1440  # with timestamps


async def aiotcp_goodput(seconds: float, rtt: float, loss: float, config: Config, seed: int) -> float:
    loop = asyncio.get_running_loop()
    received = 0
    first = loop.create_future()
    finished = loop.create_future()

    sinks = []

    async def sink(reader, writer):
        nonlocal received
        sinks.append(writer)
        try:
            while chunk := await reader.read(1 << 18):
                if not first.done():
                    first.set_result(time.perf_counter())
                received += len(chunk)
        except ConnectionError:
            pass  # the sender aborts when its time is up
        finally:
            finished.set_result(None)
        writer.close()

    server = await aiotcp.start_server(sink, "127.0.0.1", 0, config=config)
    port = server.sockets[0].getsockname()[1]
    imp = Impairment(loss=loss, delay=rtt / 2)
    relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", port), up=imp, down=imp, seed=seed).start()
    reader, writer = await aiotcp.open_connection("127.0.0.1", relay.address[1], tcp_port=port, config=config)
    block = b"g" * (1 << 16)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        writer.write(block)
        await writer.drain()
    measured_from = await first
    elapsed = time.perf_counter() - measured_from
    goodput = received / elapsed
    writer.transport.abort()
    for sink_writer in sinks:  # the RST may be lost on the way: end the sink here too
        sink_writer.transport.abort()
    await asyncio.wait_for(finished, 10)
    relay.close()
    server.close()
    return goodput * 8 / 1e6


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


async def run(args) -> dict:
    variants = {
        "aiotcp cubic": Config(),
        "aiotcp newreno": Config(congestion_control="newreno"),
        "aiotcp sack off": Config(sack=False),
    }
    results = {}
    measured = await path_rtt(args.rtt)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
        for loss in args.loss:
            row = {}
            for name, config in variants.items():
                runs = [await aiotcp_goodput(args.seconds, args.rtt, loss, config, seed=seed)
                        for seed in range(1, args.seeds + 1)]
                row[name] = sum(runs) / len(runs)
            try:
                runs = [await quic_goodput(args.seconds, args.rtt, loss, seed, cert, key)
                        for seed in range(1, args.seeds + 1)]
                row["aioquic"] = sum(runs) / len(runs)
            except Exception as exc:  # reported, the table goes on
                print(f"aioquic at loss {loss}: {exc!r}", file=sys.stderr)
                row["aioquic"] = float("nan")
            row["mathis bound"] = mathis(args.rtt, loss)
            row["mathis @ path rtt"] = mathis(measured, loss)
            results[loss] = row
    return results, measured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rtt", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, default=1, help="runs per case (relay seeds 1..N), averaged")
    parser.add_argument("--loss", type=lambda s: [float(x) for x in s.split(",")], default=[0, 0.001, 0.01, 0.05])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("quic").setLevel(logging.WARNING)
    results, measured = uvloop.run(run(args))
    names = list(next(iter(results.values())))
    print(f"goodput Mbit/s at {args.rtt * 1000:.0f} ms RTT (the relay path measures {measured * 1000:.1f} ms), "
          f"loss both ways, {args.seconds:.0f} s each, mean of {args.seeds} seed(s) (uvloop)")
    print(f"{'loss':>8}" + "".join(f"{n:>18}" for n in names))
    for loss, row in results.items():
        cells = "".join(f"{'-' if row[n] is None else format(row[n], '.1f'):>18}" for n in names)
        print(f"{loss * 100:7.1f}%" + cells)
    print(json.dumps({"lossy_goodput_mbps": {str(k): {n: (None if v is None else round(v, 2))
                                                      for n, v in row.items()} for k, row in results.items()},
                      "rtt": args.rtt, "path_rtt": round(measured, 5), "seconds": args.seconds,
                      "seeds": args.seeds}))


if __name__ == "__main__":
    main()
