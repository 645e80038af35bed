"""The floor under bulk goodput over UDP from Python, with no TCP at all.

aiotcp's bulk goodput is compared with kernel TCP's (bench/separate.py).
This script measures, on the same machine and in the same run, what moving
a byte stream through UDP datagrams costs a Python sender and receiver that
do the least any user-space stream must do, and nothing of TCP:

- the sender joins 1440-byte payloads of a 64 KiB write, each after a
  32-byte header (aiotcp's size, with timestamps), into one buffer (the
  one copy a datagram needs) and sends it as one GSO run (``UDP_SEGMENT``),
  as aiotcp does;
- the receiver reads GRO runs of up to 64 KiB into one buffer and copies
  it into the bytes handed to the reader (the one copy a reader needs);
- in the third row both sides also run aiotcp's checksum
  (``aiotcp._fast.internet_checksum``) over every byte, as the wire
  format requires of each segment.

The headers are made once and the payloads are cut once, and neither side
loops over segments in Python: what is timed is the system calls, the
copies and the checksum passes, the work no user-space TCP over UDP can
leave out, not the interpreter.

No acknowledgements, no retransmission, no flow control: the sender runs
flat out and what the receiver's socket cannot hold is dropped, so the
receiver's rate is the figure.  Kernel TCP is timed the same way (a
blocking sender of 64 KiB writes, a receiver reading into one buffer),
sender and receiver each in a process of its own, as in the UDP case.

    python bench/bulk_floor.py [--seconds 3] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time

UDP_SEGMENT, UDP_GRO = 103, 104  # <netinet/udp.h>
SOL_UDP = 17
MSS, HEADER = 1440, 32
WRITE = 64 * 1024
END = b"end"


def _checksum():
    from aiotcp import _fast

    return _fast.internet_checksum


def receive_udp(port_out, checksum: bool) -> dict:
    """Read until the sender's END; the rate between the first datagram and
    the last."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    sock.bind(("127.0.0.1", 0))
    port_out(sock.getsockname()[1])
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    space = socket.CMSG_SPACE(4)
    reader = bytearray()
    total = 0
    first = last = 0.0
    sum16 = _checksum() if checksum else None
    while True:
        n, ancillary, _, _ = sock.recvmsg_into([buf], space)
        if n == len(END) and buf[:n] == END:
            break
        size = n
        for level, kind, data in ancillary:
            if level == SOL_UDP and kind == UDP_GRO:
                size = struct.unpack("=i", data[:4])[0]
        if not total:
            first = time.perf_counter()
        if sum16 is not None:
            sum16(view[:n])
        reader += view[:n]  # headers and all: a per-segment loop here would time Python
        total += n - HEADER * -(-n // size)
        if len(reader) >= 1 << 20:  # the reader takes it
            del reader[:]
        last = time.perf_counter()
    return {"bytes": total, "seconds": last - first}


def send_udp(port: int, seconds: float, checksum: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(SOL_UDP, UDP_SEGMENT, HEADER + MSS)
    data = os.urandom(WRITE)
    header = struct.pack("!HHIIHHHH12x", 1, 2, 0, 0, 0x8010, 65535, 0, 0)
    runs = []  # each a list of header, payload, header, payload...: at most 64 KiB
    for start in range(0, WRITE, 44 * MSS):
        runs.append([piece for offset in range(start, min(start + 44 * MSS, WRITE), MSS)
                     for piece in (header, data[offset:offset + MSS])])
    sum16 = _checksum() if checksum else None
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for parts in runs:
            run = b"".join(parts)  # the copy into the datagrams
            if sum16 is not None:
                sum16(run)
            try:
                sock.send(run)
            except OSError:  # ENOBUFS: the run is dropped, as a full queue drops it
                pass
    for _ in range(20):  # alone, after the queue has drained (GRO would join it to a run)
        time.sleep(0.01)
        try:
            sock.send(END)
        except OSError:  # the receiver has it and is gone
            break


def receive_tcp(port_out) -> dict:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port_out(server.getsockname()[1])
    conn, _ = server.accept()
    buf = bytearray(1 << 18)
    total = 0
    first = 0.0
    while n := conn.recv_into(buf):
        if not total:
            first = time.perf_counter()
        total += n
    return {"bytes": total, "seconds": time.perf_counter() - first}


def send_tcp(port: int, seconds: float) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    data = os.urandom(WRITE)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sock.sendall(data)
    sock.close()


def one(kind: str, seconds: float) -> float:
    """MB/s the receiver saw, the receiver in a process of its own."""
    receiver = subprocess.Popen([sys.executable, __file__, "receive", kind], stdout=subprocess.PIPE, text=True)
    port = int(receiver.stdout.readline())
    if kind == "tcp":
        send_tcp(port, seconds)
    else:
        send_udp(port, seconds, kind == "udp+checksum")
    result = json.loads(receiver.stdout.readline())
    receiver.wait()
    return result["bytes"] / result["seconds"] / 1e6


def main() -> None:
    if sys.argv[1:2] == ["receive"]:
        def port_out(port):
            print(port, flush=True)
        kind = sys.argv[2]
        result = receive_tcp(port_out) if kind == "tcp" else receive_udp(port_out, kind == "udp+checksum")
        print(json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list] = {"tcp": [], "udp": [], "udp+checksum": []}
    for _ in range(args.repeat):  # interleaved, so the machine's drift hits all alike
        for kind in rates:
            rates[kind].append(one(kind, args.seconds))
    best = {kind: sorted(values)[len(values) // 2] for kind, values in rates.items()}
    print(f"kernel TCP, blocking sockets:            {best['tcp']:8.1f} MB/s")
    print(f"UDP, 1440-byte payloads, two copies:     {best['udp']:8.1f} MB/s  {best['udp'] / best['tcp']:.2f}x")
    print(f"  and aiotcp's checksum at both ends:    {best['udp+checksum']:8.1f} MB/s  "
          f"{best['udp+checksum'] / best['tcp']:.2f}x")
    print(json.dumps({"medians_MBps": best, "all": rates}))


if __name__ == "__main__":
    main()
