"""Runs inside one of the two network namespaces made by test_queue.py: an
aiotcp server that hashes what it receives, or a client that sends seeded
bytes through a slow queue.  Prints one JSON line."""
import asyncio
import hashlib
import json
import os
import random
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiotcp  # noqa: E402


def udp_errors():
    lines = [line.split() for line in open("/proc/net/snmp") if line.startswith("Udp:")]
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:]) if "Err" in k and int(v)}


async def serve(port: int) -> dict:
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        digest, total = hashlib.sha256(), 0
        while chunk := await reader.read(1 << 16):
            digest.update(chunk)
            total += len(chunk)
        writer.write(b"ok")
        await writer.drain()
        writer.close()
        done.set_result({"received": total, "sha": digest.hexdigest(), "udp": udp_errors()})

    server = await aiotcp.start_server(handle, "0.0.0.0", port)
    print("ready", flush=True)
    async with server:
        return await asyncio.wait_for(done, 120)


async def send(host: str, port: int, size: int) -> dict:
    data = random.Random(size).randbytes(size)
    reader, writer = await aiotcp.open_connection(host, port)
    # a send buffer smaller than the window, so that the queue below fills it
    writer.get_extra_info("udp_socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    for i in range(0, size, 1 << 16):
        writer.write(data[i:i + (1 << 16)])
        await writer.drain()
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 120) == b"ok"
    endpoint = writer.transport.endpoint
    info = writer.get_extra_info("tcp_info")
    report = {"why": {k: info[k] for k in ("rto_count", "fast_retransmits", "tail_loss_probes", "rack_losses",
                                         "dsacks", "rtt", "min_rtt")},"sent": size, "sha": hashlib.sha256(data).hexdigest(),
              "send_blocked": endpoint.core.stats["send_blocked"],
              "datagrams_out": endpoint.io.datagrams_out,
              "retransmitted": writer.get_extra_info("tcp_info")["segments_retransmitted"]}
    writer.close()
    return report


if __name__ == "__main__":
    if sys.argv[1] == "server":
        print(json.dumps(asyncio.run(serve(int(sys.argv[2])))))
    else:
        print(json.dumps(asyncio.run(send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))))
