"""What the kernel charges for the datagrams of one message, before any TCP.

A 1452-byte message over aiotcp with timestamps on (Linux's default) is two
segments, because the MSS on a 1500-byte MTU is 1440 once the 12 bytes of
the timestamp option are taken off (docs/wire-format.md, RFC 6691): aiotcp sends them as
one UDP GSO run (a 1472-byte datagram and a 44-byte one) and reads them
back with one GRO read.  Kernel TCP on loopback (a 64 KiB MTU) sends the same
message as one segment.  This script times, on loopback and with no event
loop, a send and the read that takes it back, for:

- one 1472-byte datagram (a one-segment message) with ``send``;
- the same with ``sendmsg`` (what a message header costs);
- the two datagrams of a 1452-byte message as one GSO ``sendmsg``;
- the two as one buffer given to ``send`` on a socket whose ``UDP_SEGMENT``
  option cuts it (what aiotcp does for short runs, see aiotcp/_dgram.pyx);
- the two as two ``send`` calls, read with two reads;
- and the first, third and fourth again from an unconnected socket
  (``sendto``, ``sendmsg`` with an address), as a server's one socket for
  all its peers sends;
- kernel TCP: 1452 bytes written on a connected pair and read back.

Python's own cost per call is in every row alike; compare differences.  Each
figure is the best of several repeats, in microseconds per message.

    python bench/udp_floor.py [--rounds 200000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import time

UDP_SEGMENT, UDP_GRO = 103, 104  # <netinet/udp.h>
FULL, TAIL = 1472, 44  # 20 + 12 + 1440 and 20 + 12 + 12 bytes of TCP segment


def _pair():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    loose = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cut, loose_cut = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cut.connect(rx.getsockname())
    for s in (cut, loose_cut):
        s.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, FULL)
    return rx, tx, loose, cut, loose_cut


def udp_cases(rounds: int) -> dict[str, float]:
    rx, tx, loose, cut, loose_cut = _pair()
    dest = rx.getsockname()
    full, tail = b"f" * FULL, b"t" * TAIL
    both = full + tail
    gso = [(socket.IPPROTO_UDP, UDP_SEGMENT, struct.pack("=H", FULL))]
    recvmsg, space = rx.recvmsg, socket.CMSG_SPACE(4)

    def two_sends(first, second):
        tx.send(first)
        tx.send(second)

    # (what is sent and how, the datagrams to read back)
    cases = {
        "1 datagram, send": (tx.send, (full,), 1),
        "1 datagram, sendmsg": (tx.sendmsg, ([full],), 1),
        "2 datagrams, one GSO sendmsg": (tx.sendmsg, ([full, tail], gso), 1),
        "2 datagrams, one send, socket UDP_SEGMENT": (cut.send, (both,), 1),
        "2 datagrams, two sends": (two_sends, (full, tail), 2),
        "1 datagram, sendto (unconnected)": (loose.sendto, (full, dest), 1),
        "2 datagrams, GSO sendmsg (unconnected)": (loose.sendmsg, ([full, tail], gso, 0, dest), 1),
        "2 datagrams, sendto, socket UDP_SEGMENT (unconn.)": (loose_cut.sendto, (both, dest), 1),
    }

    def looped(send, args, reads):
        def run():
            for _ in range(rounds):
                send(*args)
                for _ in range(reads):
                    recvmsg(65536, space)
        return run

    try:
        return {name: _timed(looped(*case), rounds) for name, case in cases.items()}
    finally:
        for s in (rx, tx, loose, cut, loose_cut):
            s.close()


def tcp_case(rounds: int) -> float:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    with a, b:
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"m" * 1452
        view = memoryview(bytearray(1452))

        def run():
            for _ in range(rounds):
                a.send(message)
                got = 0
                while got < 1452:
                    got += b.recv_into(view[got:])

        return _timed(run, rounds)


def _timed(run, rounds: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.repeat):  # interleaved, so a noisy moment hits every row
        rows = udp_cases(args.rounds)
        rows["kernel TCP, 1452 bytes"] = tcp_case(args.rounds)
        for name, us in rows.items():
            best[name] = min(us, best.get(name, us))
    base = best["1 datagram, send"]
    print(f"{'send and read back, loopback':52} {'us':>7} {'vs 1 datagram':>14}")
    for name, us in best.items():
        print(f"{name:52} {us:7.3f} {us - base:+14.3f}")
    print(json.dumps({"udp_floor_us": {k: round(v, 3) for k, v in best.items()}}))


if __name__ == "__main__":
    main()
