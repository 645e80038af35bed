"""`python -m aiotcp demo`: one real connection's life as a ladder diagram.

A server and a client run in this process over real UDP sockets on
loopback.  Every segment either side sends and every state change is
recorded as it happens, then drawn the way TCP tutorials draw it.
"""
from __future__ import annotations

import asyncio
import socket

from .. import _fast
from ..aio import UDPEndpoint, open_connection, start_server
from ..core.config import Config
from .trace import Recorder

WIDTH = 58


def describe(seg, isn: dict) -> str:
    """A segment in tutorial form, sequence numbers relative to each side's ISN."""
    flags = [name for bit, name in ((_fast.SYN, "SYN"), (_fast.FIN, "FIN"), (_fast.RST, "RST"),
                                    (_fast.PSH, "PSH"), (_fast.ACK, "ACK")) if seg.flags & bit]
    own = isn.get(seg.src_port)
    peer = isn.get(seg.dst_port)
    seq = (seg.seq - own) & 0xFFFFFFFF if own is not None else seg.seq
    text = f"{','.join(flags) or '-'} seq={seq}"
    if seg.flags & _fast.ACK:
        ack = (seg.ack - peer) & 0xFFFFFFFF if peer is not None else seg.ack
        text += f" ack={ack}"
    text += f" len={len(seg.payload)}"
    if seg.mss >= 0:
        text += f" mss={seg.mss}"
    if seg.wscale >= 0:
        text += f" ws={seg.wscale}"
    return text


def render(recorder: Recorder, left: str, right: str, listening: bool = True) -> str:
    entries = recorder.entries
    if not entries:
        return "(nothing recorded)"
    start = entries[0][0]
    isn = {}
    for _, side, kind, value in entries:
        if kind == "segment" and value.flags & _fast.SYN:
            isn.setdefault(value.src_port, value.seq)
    lines = [f"{'time ms':>9}  {left:<14}{'':^{WIDTH}}{right:>14}",
             f"{'':>9}  {'-' * 14}{'':^{WIDTH}}{'-' * 14}",
             f"{'':>9}  {'CLOSED':<14}{'':^{WIDTH}}{'LISTEN' if listening else 'CLOSED':>14}"]
    state = {left: "CLOSED", right: "LISTEN"}
    for stamp, side, kind, value in entries:
        ms = f"{(stamp - start) * 1000:9.3f}"
        if kind == "state":
            old, new = value
            state[side] = str(new)
            if side == left:
                lines.append(f"{ms}  {str(new):<14}{'':^{WIDTH}}")
            else:
                lines.append(f"{ms}  {'':<14}{'':^{WIDTH}}{str(new):>14}")
            continue
        label = f" {describe(value, isn)} "
        if side == left:
            arrow = label.center(WIDTH - 1, "-") + ">"
        else:
            arrow = "<" + label.center(WIDTH - 1, "-")
        lines.append(f"{ms}  {'':<14}{arrow}")
    return "\n".join(lines)


async def run(mode: str = "normal") -> str:
    loop = asyncio.get_running_loop()
    recorder = Recorder(clock=loop.time)
    # TIME_WAIT shortened so the demo can show it ending; the default is 60 s
    config = Config(time_wait=0.5, client_time_wait=True)
    out = []

    if mode == "refused":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        bare = UDPEndpoint(loop, sock, config, tracer=recorder)  # a UDP socket, no listener
        port = bare.local_port
        recorder.label(port, "server")
        try:
            reader, writer = await open_connection("127.0.0.1", port, config=config,
                                                   tracer=_LabelingTracer(recorder, "client"))
        except ConnectionRefusedError as exc:
            out.append(f"open_connection raised {type(exc).__name__}: {exc}")
        bare.close()
        body = render(recorder, "client", "server", listening=False)
        return "\n".join([_title(mode, port), body, ""] + out)

    server_writer = {}
    server_done = loop.create_future()

    async def handle(reader, writer):
        server_writer["w"] = writer
        while line := await reader.readline():
            writer.write(b"echo: " + line)
            await writer.drain()
        if mode != "simultaneous-close":
            writer.close()
        server_done.set_result(None)

    server = await start_server(handle, "127.0.0.1", 0, config=config, tracer=recorder)
    port = server.sockets[0].getsockname()[1]
    recorder.label(port, "server")
    reader, writer = await open_connection("127.0.0.1", port, config=config,
                                           tracer=_LabelingTracer(recorder, "client"))
    for message in (b"hello, TCP over UDP\n", b"bye\n"):
        writer.write(message)
        await writer.drain()
        reply = await reader.readline()
        out.append(f"client sent {message!r}, got {reply!r}")
    if mode == "simultaneous-close":
        # both sides close in the same instant: the FINs cross on the wire
        server_writer["w"].close()
        writer.close()
    else:
        writer.close()
    await asyncio.wait_for(server_done, 5)
    client_core = writer.transport.endpoint.core
    server_core = server.endpoint.core
    for _ in range(400):
        if not client_core.connections and not server_core.connections:
            break
        await asyncio.sleep(0.01)
    server.close()
    await server.wait_closed()
    body = render(recorder, "client", "server")
    out.append("TIME_WAIT lasted 0.5 s here (Config(time_wait=0.5)); the default is 60 s, 2 x MSL as Linux.")
    return "\n".join([_title(mode, port), body, ""] + out)


class _LabelingTracer:
    """Labels the client side by its TCP port once its first segment shows it."""

    def __init__(self, recorder: Recorder, name: str):
        self.recorder = recorder
        self.name = name
        self.labelled = False

    def segment(self, owner, direction, datagram, remote_addr):
        if not self.labelled and direction == "out":
            self.recorder.label(_fast.decode(bytes(datagram)).src_port, self.name)
            self.labelled = True
        self.recorder.segment(owner, direction, datagram, remote_addr)

    def state(self, conn, old, new, now):
        if not self.labelled:
            self.recorder.label(conn.local_port, self.name)
            self.labelled = True
        self.recorder.state(conn, old, new, now)


def _title(mode: str, port: int) -> str:
    what = {"normal": "handshake, two messages, close initiated by the client",
            "simultaneous-close": "handshake, two messages, both sides close at once",
            "refused": "a SYN to a UDP port where no TCP port listens"}[mode]
    return (f"aiotcp demo: {what}\n"
            f"real UDP datagrams on 127.0.0.1 (server UDP/TCP port {port}); "
            f"sequence numbers relative to each side's ISN\n")


def quiet_logging() -> None:
    """Applications configure logging, the library never does: the demo
    shows warnings and errors only."""
    import logging

    logging.basicConfig(level=logging.WARNING)


def main(mode: str = "normal") -> None:
    quiet_logging()
    print(asyncio.run(run(mode)))
