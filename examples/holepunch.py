"""TCP between two peers behind NATs, by hole punching over aiotcp.

    python examples/holepunch.py rendezvous [--listen 0.0.0.0:3478]
    python examples/holepunch.py peer ROOM --rendezvous HOST:3478 [--port 40000] [--timeout 30]

A rendezvous server, reachable by both, pairs the two peers that name the
same ROOM.  Each peer has one aiotcp endpoint (one UDP socket, so one NAT
binding).  It connects to the rendezvous over it and says which TCP port
it will use; the rendezvous sees its public address (the NAT's mapping,
``peername``) and, once both are there, tells each the other's.  Then both
open a connection to each other at about the same time: each side's first
SYN opens its own NAT's binding towards the other, the other's SYN passes
through it, and TCP's simultaneous open (RFC 9293 section 3.5) completes
the handshake.  ``punch=True`` keeps the attempt going through the RSTs
and ICMP errors the first SYNs may meet.

What it crosses: NATs that keep one public port per socket whatever the
destination (endpoint-independent mapping: Linux ``masquerade`` while the
port is free, most home routers), with any filtering, including dropping
everything unsolicited.  What it cannot: a NAT that maps each destination
to a new port (symmetric: ``masquerade random``, many carrier NATs),
because the port the rendezvous saw is not the one the peer's SYNs must
reach; the attempt then ends with a TimeoutError saying that nothing from
the peer ever arrived.  That needs a relay (TURN-like), not a punch.

Once connected, the peers chat: lines typed on one side print on the other.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

import aiotcp


# ------------------------------------------------------------ rendezvous

async def rendezvous(endpoint: aiotcp.Endpoint) -> aiotcp.Server:
    """Pair peers by room on ``endpoint``: each sends ``REGISTER room
    tcp_port``; when a second arrives, each is sent ``PEER ip udp_port
    tcp_port`` of the other."""
    waiting: dict[str, tuple] = {}

    async def handle(reader, writer):
        try:
            words = (await reader.readline()).decode().split()
            if len(words) != 3 or words[0] != "REGISTER" or not words[2].isdigit():
                writer.write(b"ERROR expected: REGISTER room tcp_port\n")
                return
            room, tcp_port = words[1], int(words[2])
            ip, udp_port = writer.get_extra_info("peername")[:2]
            me = (ip, udp_port, tcp_port, writer)
            other = waiting.pop(room, None)
            if other is None or other[3].is_closing():
                waiting[room] = me
                await reader.read()  # wait for the pair, or for the peer to give up
                if waiting.get(room) is me:
                    del waiting[room]
                return
            for to, about in ((me, other), (other, me)):
                to[3].write(f"PEER {about[0]} {about[1]} {about[2]}\n".encode())
        finally:
            writer.close()

    return await endpoint.start_server(handle)


# ------------------------------------------------------------ peer

async def meet(endpoint: aiotcp.Endpoint, rendezvous_addr, room: str) -> tuple[str, int, int]:
    """Register in ``room`` over ``endpoint``; the other peer's public
    (ip, udp_port, tcp_port), once it has registered too."""
    tcp_port = endpoint.local_address[1]
    reader, writer = await endpoint.open_connection(*rendezvous_addr)
    writer.write(f"REGISTER {room} {tcp_port}\n".encode())
    line = (await reader.readline()).decode().split()
    writer.close()
    await writer.wait_closed()
    if len(line) != 4 or line[0] != "PEER":
        raise ConnectionError(f"the rendezvous said {' '.join(line) or 'nothing'}")
    return line[1], int(line[2]), int(line[3])


async def punch(endpoint: aiotcp.Endpoint, rendezvous_addr, room: str, timeout: float = 30.0):
    """Meet the other peer of ``room`` and connect to it through both NATs:
    (reader, writer), or TimeoutError after ``timeout`` seconds."""
    ip, udp_port, tcp_port = await meet(endpoint, rendezvous_addr, room)
    return await endpoint.open_connection(ip, udp_port, tcp_port=tcp_port,
                                          local_tcp_port=endpoint.local_address[1], punch=True, timeout=timeout)


# ------------------------------------------------------------ the command line

def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def run_rendezvous(listen) -> None:
    endpoint = await aiotcp.create_endpoint(local_addr=listen)
    await rendezvous(endpoint)
    print(f"rendezvous on {endpoint.local_address}", flush=True)
    await asyncio.Event().wait()


async def run_peer(room: str, rendezvous_addr, port: int, timeout: float) -> None:
    endpoint = await aiotcp.create_endpoint(local_addr=("0.0.0.0", port))
    print(f"peer on UDP port {endpoint.local_address[1]}, meeting in room {room!r}", flush=True)
    reader, writer = await punch(endpoint, rendezvous_addr, room, timeout)
    print(f"connected to {writer.get_extra_info('peername')}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def to_peer():
        while line := await stdin.readline():
            writer.write(line)
            await writer.drain()
        writer.write_eof()

    sending = asyncio.ensure_future(to_peer())
    while line := await reader.readline():
        print(line.decode().rstrip("\n"), flush=True)
    sending.cancel()
    endpoint.close()
    await endpoint.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    server = modes.add_parser("rendezvous")
    server.add_argument("--listen", type=address, default=("0.0.0.0", 3478))
    peer = modes.add_parser("peer")
    peer.add_argument("room")
    peer.add_argument("--rendezvous", type=address, required=True)
    peer.add_argument("--port", type=int, default=40000, help="the UDP (and TCP) port, 0: any")
    peer.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    try:
        if args.mode == "rendezvous":
            asyncio.run(run_rendezvous(args.listen))
        else:
            asyncio.run(run_peer(args.room, args.rendezvous, args.port, args.timeout))
    except KeyboardInterrupt:
        pass
    except (TimeoutError, ConnectionError) as exc:
        sys.exit(f"holepunch: {exc}")


if __name__ == "__main__":
    main()
