"""`python -m aiotcp demo`: real connections' lives drawn as ladder diagrams.

Each scenario runs real aiotcp connections over real UDP sockets on
loopback, in this process.  Every segment either side sends and every state
change is recorded as it happens; where a scenario needs a loss, aiotcp's
own relay (:mod:`aiotcp.tools.relay`) sits between the two and drops the
one segment chosen.  The record is then drawn the way TCP tutorials draw
it: two lifelines, an arrow per segment (flags, sequence numbers relative
to each side's ISN, length, window, the options that matter), each step
named as the tutorials name it, the states on each side's column, and a
paragraph saying what happened and which RFC rule made it happen.

    python -m aiotcp demo [--scenario NAME] [--lang en|zh] [--html FILE] [--pcap FILE]
    python -m aiotcp demo --list | --sysctl
"""
from __future__ import annotations

import asyncio
import html
import socket
from dataclasses import dataclass, field

from .. import _fast
from ..aio import UDPEndpoint, create_endpoint, open_connection, start_server
from ..core.config import Config, sysctl_table
from .demo_text import EXPLANATIONS, STEP_NAMES, TITLES, UI
from .relay import Impairment, Relay
from .trace import PcapWriter

WIDTH = 62
#: the scenarios, in the order the tutorials teach them
SCENARIOS = ("normal", "refused", "simultaneous-open", "simultaneous-close", "fin-ack", "half-close",
             "lost-final-ack", "backlog-overflow", "backlog-overflow-abort", "syn-flood", "fast-retransmit",
             "zero-window")
ALIASES = {"simultaneous_close": "simultaneous-close"}
# TIME_WAIT is shortened so that the demo shows it ending; the default is 60 s
# autocork off: each write its own segment, the ladder the tutorials draw
DEMO_CONFIG = Config(time_wait=0.5, client_time_wait=True, autocork=False)


# ------------------------------------------------------------ the record

@dataclass
class Step:
    """One thing that happened: a segment sent, or a state change."""
    time: float
    side: str                 # "left" or "right"
    kind: str                 # "segment" or "state"
    local_port: int
    peer_port: int
    seg: object = None        # the decoded segment
    raw: bytes = b""
    cwnd: int = 0             # the sender's congestion window, in segments (0: not a connection's)
    old: str = ""
    new: str = ""
    lost: bool = False        # dropped on the way by the scenario's relay
    name: str = ""            # the step's name (a key of STEP_NAMES)


class Ladder:
    """The record of a scenario: a tracer per side, each segment sent and
    each state change as a :class:`Step`.  ``focus``: draw only the
    connection of this client TCP port (others are counted)."""

    def __init__(self, clock, pcap: PcapWriter | None = None):
        self.clock = clock
        self.steps: list[Step] = []
        self.pcap = pcap
        self.focus: int | None = None

    def tracer(self, side: str) -> "_SideTracer":
        return _SideTracer(self, side)

    def lost(self, datagram: bytes) -> None:
        """The relay dropped ``datagram``: mark the latest step that sent it."""
        for step in reversed(self.steps):
            if step.kind == "segment" and step.raw == datagram:
                step.lost = True
                return

    def shown(self) -> list[Step]:
        if self.focus is None:
            return list(self.steps)
        return [s for s in self.steps if (s.local_port if s.side == "left" else s.peer_port) == self.focus]


class _SideTracer:
    def __init__(self, ladder: Ladder, side: str):
        self.ladder = ladder
        self.side = side

    def segment(self, owner, direction, datagram, remote_addr):
        if direction != "out":
            return
        raw = bytes(datagram)
        seg = _fast.decode(raw)
        cc = getattr(owner, "cc", None)
        mss = getattr(owner, "mss", 0) or 1
        self.ladder.steps.append(Step(self.ladder.clock(), self.side, "segment", seg.src_port, seg.dst_port, seg,
                                      raw, cwnd=cc.cwnd // mss if cc is not None else 0))
        if self.ladder.pcap is not None:
            self.ladder.pcap.segment(owner, "out", raw, remote_addr)

    def state(self, conn, old, new, now):
        self.ladder.steps.append(Step(self.ladder.clock(), self.side, "state", conn.local_port, conn.remote_port,
                                      old=str(old), new=str(new)))


# --------------------------------------------------------- naming the steps

def name_steps(steps: list[Step]) -> None:
    """Name each segment as the tutorials do: the handshake's three steps,
    the teardown's four waves, retransmissions, duplicate ACKs, windows."""
    syn_sent = set()    # the sides that sent a SYN
    synack_seen = set()
    handshake_done = set()
    fins = []           # [(side, seq of the FIN)] in order sent
    acked_fins = set()
    sent = set()
    last_ack = {}       # side -> the ACK of its last segment
    zero = {"left": False, "right": False}  # the side advertised a zero window
    dupacks = 0
    for step in steps:
        if step.kind != "segment":
            continue
        seg, side = step.seg, step.side
        other = "right" if side == "left" else "left"
        flags, length = seg.flags, len(seg.payload)
        # the FINs of the other side this segment acknowledges
        acked = [q for s, q in fins if s == other and seg.ack == (q + 1) & 0xFFFFFFFF]
        key = (side, flags & (_fast.SYN | _fast.FIN | _fast.RST | (_fast.ACK if flags & _fast.SYN else 0)),
               seg.seq, length)
        again = key in sent and (length or flags & (_fast.SYN | _fast.FIN))
        sent.add(key)
        if flags & _fast.RST:
            step.name = "rst"
        elif flags & _fast.SYN and not flags & _fast.ACK:
            if again:
                step.name = "retx_syn"
            elif other in syn_sent:
                step.name = "sim_syn"
                for earlier in steps:  # the other's SYN was simultaneous too
                    if earlier.name == "hs1":
                        earlier.name = "sim_syn"
                handshake_done.update(("left", "right"))  # no third step in a simultaneous open
            else:
                step.name = "hs1"
            syn_sent.add(side)
        elif flags & _fast.SYN:
            step.name = "retx_synack" if again else ("sim_synack" if side in syn_sent else "hs2")
            synack_seen.add(side)
        elif flags & _fast.FIN:
            if again:
                step.name = "retx_fin"
            elif not fins:
                step.name = "fin1"
            elif acked and other not in acked_fins:
                step.name = "fin23"
                acked_fins.add(other)
            elif any(s == other for s, _ in fins) and other not in acked_fins:
                step.name = "fin_sim"
            else:
                step.name = "fin3"
            if not again:
                fins.append((side, seg.seq + length))
        else:
            if other in synack_seen and side not in handshake_done and side in syn_sent and not length \
                    and not fins:
                step.name = "hs3"
                handshake_done.add(side)
            elif acked and other not in acked_fins:
                acked_fins.add(other)
                step.name = "ack2" if fins[0][0] == other else "ack4"
            elif acked and not length:
                step.name = "ack4_again" if fins[-1][0] == other or len(fins) == 1 else "ack_again"
            elif length and zero[other]:
                step.name = "probe"
            elif again:
                step.name = "fast_retx" if dupacks else "retx"
            elif length:
                step.name = "data"
            elif seg.window == 0:
                step.name = "zero_window"
            elif zero[side]:
                step.name = "window_update"
            elif last_ack.get(side) == seg.ack and seg.sack_blocks:
                step.name = "dupack"
                dupacks += 1
            elif not length and zero[other]:
                step.name = "probe"
            else:
                step.name = "ack"
            if seg.window == 0 and length == 0:
                step.name = "zero_window"
        zero[side] = seg.window == 0 if not flags & _fast.RST else zero[side]
        last_ack[side] = seg.ack


# -------------------------------------------------------------- drawing

def _from_syns(steps) -> tuple[dict, dict]:
    """From each port's first SYN: its ISN, and its window scale when both
    SYNs offered one (RFC 7323; else no scaling)."""
    isn, offered = {}, {}
    for step in steps:
        if step.kind == "segment" and step.seg.flags & _fast.SYN:
            isn.setdefault(step.local_port, step.seg.seq)
            offered.setdefault(step.local_port, step.seg.wscale)
    scales = offered if len(offered) >= 2 and all(v >= 0 for v in offered.values()) else {}
    return isn, scales


def describe(step: Step, isn: dict, scales: dict) -> str:
    """A segment in tutorial form, sequence numbers relative to each side's ISN."""
    seg = step.seg
    flags = [name for bit, name in ((_fast.SYN, "SYN"), (_fast.FIN, "FIN"), (_fast.RST, "RST"),
                                    (_fast.PSH, "PSH"), (_fast.ACK, "ACK")) if seg.flags & bit]
    own, peer = isn.get(seg.src_port), isn.get(seg.dst_port)
    seq = (seg.seq - own) & 0xFFFFFFFF if own is not None else seg.seq
    text = f"{','.join(flags) or '-'} seq={seq}"
    if seg.flags & _fast.ACK:
        text += f" ack={(seg.ack - peer) & 0xFFFFFFFF if peer is not None else seg.ack}"
    text += f" len={len(seg.payload)}"
    window = seg.window if seg.flags & _fast.SYN else seg.window << max(scales.get(seg.src_port, 0), 0)
    text += f" win={window}"
    if seg.mss >= 0:
        text += f" mss={seg.mss}"
    if seg.wscale >= 0:
        text += f" ws={seg.wscale}"
    if seg.sack_permitted:
        text += " sackOK"
    if seg.sack_blocks and peer is not None:
        text += " sack=" + ",".join(f"{(a - peer) & 0xFFFFFFFF}-{(b - peer) & 0xFFFFFFFF}"
                                    for a, b in seg.sack_blocks)
    return text


@dataclass
class Result:
    """A scenario's outcome: what was recorded and what the program saw."""
    scenario: str
    left: str
    right: str
    initial: tuple
    steps: list
    notes: list = field(default_factory=list)
    summary: list = field(default_factory=list)   # lines drawn in place of hidden steps
    port: int = 0

    def states(self, side: str) -> list:
        return [s.new for s in self.steps if s.kind == "state" and s.side == side]

    def segments(self, side: str | None = None) -> list:
        return [s for s in self.steps if s.kind == "segment" and (side is None or s.side == side)]


def render(result: Result, lang: str = "en") -> str:
    """The ladder as text, the notes, then the explanation."""
    ui, names = UI[lang], STEP_NAMES[lang]
    steps = result.steps
    isn, scales = _from_syns(steps)
    left, right = result.left, result.right
    lines = [f"aiotcp demo: {TITLES[lang][result.scenario]}",
             ui["subtitle"].format(port=result.port), "",
             f"{ui['time']:>9}  {left:<14}{'':^{WIDTH}}{right:>14}",
             f"{'':>9}  {'-' * 14}{'':^{WIDTH}}{'-' * 14}",
             f"{'':>9}  {result.initial[0]:<14}{'':^{WIDTH}}{result.initial[1]:>14}"]
    start = steps[0].time if steps else 0.0
    for line in result.summary:
        lines.append(f"{'':>9}  {'':<14}{('... ' + line + ' ...').center(WIDTH)}")
    for step in steps:
        ms = f"{(step.time - start) * 1000:9.1f}"
        if step.kind == "state":
            if step.side == "left":
                lines.append(f"{ms}  {step.new:<14}")
            else:
                lines.append(f"{ms}  {'':<14}{'':^{WIDTH}}{step.new:>14}")
            continue
        label = f" {describe(step, isn, scales)} "
        if step.lost:
            arrow = (label.center(WIDTH - 8, "-") + "-> X   ") if step.side == "left" else (
                "   X <-" + label.center(WIDTH - 8, "-"))
        elif step.side == "left":
            arrow = label.center(WIDTH - 1, "-") + ">"
        else:
            arrow = "<" + label.center(WIDTH - 1, "-")
        tail = names.get(step.name, "")
        if step.lost:
            tail = f"{tail} ({ui['lost']})" if tail else ui["lost"]
        if step.cwnd and step.seg.payload and step.side == "left" and result.scenario == "fast-retransmit":
            tail += f" cwnd={step.cwnd}"
        lines.append(f"{ms}  {'':<14}{arrow}{'':14}  {tail}".rstrip())
    lines.append("")
    lines.extend(result.notes)
    lines.append("")
    lines.append(EXPLANATIONS[lang][result.scenario])
    return "\n".join(lines)


def render_html(result: Result, lang: str = "en") -> str:
    """One self-contained page: the ladder as SVG, the explanation, the
    segment table.  No script, no network."""
    ui, names = UI[lang], STEP_NAMES[lang]
    steps = result.steps
    isn, scales = _from_syns(steps)
    x_left, x_right, row, top = 170, 730, 30, 90
    height = top + row * (len(steps) + 2) + 40
    esc = html.escape
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="1100" height="{height}" '
           f'font-family="monospace" font-size="12">',
           '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
           '<path d="M0,0 L10,4 L0,8 z" fill="#1f4e79"/></marker></defs>',
           f'<text x="{x_left}" y="30" text-anchor="middle" font-size="16" font-weight="bold">{esc(result.left)}</text>',
           f'<text x="{x_right}" y="30" text-anchor="middle" font-size="16" font-weight="bold">'
           f'{esc(result.right)}</text>',
           f'<line x1="{x_left}" y1="40" x2="{x_left}" y2="{height - 20}" stroke="#444" stroke-width="2"/>',
           f'<line x1="{x_right}" y1="40" x2="{x_right}" y2="{height - 20}" stroke="#444" stroke-width="2"/>']

    def box(x, y, text):
        width = 9 * len(text) + 16
        svg.append(f'<rect x="{x - width / 2}" y="{y - 14}" width="{width}" height="20" rx="4" fill="#fff3c4" '
                   f'stroke="#b8860b"/><text x="{x}" y="{y}" text-anchor="middle">{esc(text)}</text>')

    box(x_left, 60, result.initial[0])
    box(x_right, 60, result.initial[1])
    y = top
    table = []
    start = steps[0].time if steps else 0.0
    for line in result.summary:
        svg.append(f'<text x="{(x_left + x_right) / 2}" y="{y}" text-anchor="middle" fill="#666">'
                   f'… {esc(line)} …</text>')
        y += row
    for step in steps:
        if step.kind == "state":
            box(x_left if step.side == "left" else x_right, y, step.new)
            y += row
            continue
        label = describe(step, isn, scales)
        name = names.get(step.name, "")
        x1, x2 = (x_left, x_right) if step.side == "left" else (x_right, x_left)
        end = x2 if not step.lost else (x1 + x2) / 2
        colour = "#b22222" if step.lost else "#1f4e79"
        marker = "" if step.lost else 'marker-end="url(#arrow)"'
        svg.append(f'<line x1="{x1}" y1="{y - 6}" x2="{end}" y2="{y + 12}" stroke="{colour}" stroke-width="1.6" '
                   f'{marker}/>')
        if step.lost:
            svg.append(f'<text x="{end}" y="{y + 16}" text-anchor="middle" fill="#b22222" font-size="18">✗</text>')
        svg.append(f'<text x="{(x_left + x_right) / 2}" y="{y - 2}" text-anchor="middle">{esc(label)}</text>')
        if name:
            svg.append(f'<text x="{x_right + 70}" y="{y + 6}" fill="#2e7d32">{esc(name)}'
                       f'{" (" + esc(ui["lost"]) + ")" if step.lost else ""}</text>')
        table.append(f"<tr><td>{(step.time - start) * 1000:.1f}</td><td>{esc(result.left if step.side == 'left' else result.right)}</td>"
                     f"<td>{esc(label)}</td><td>{esc(name)}</td><td>{ui['lost'] if step.lost else ''}</td></tr>")
        y += row
    svg.append("</svg>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<title>aiotcp demo: {esc(result.scenario)}</title>'
            '<style>body{font-family:sans-serif;margin:2em;background:#fff;color:#111}'
            'table{border-collapse:collapse;font-family:monospace;font-size:12px}'
            'td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style></head><body>'
            f'<h1>aiotcp demo: {esc(TITLES[lang][result.scenario])}</h1>'
            f'<p>{esc(ui["subtitle"].format(port=result.port))}</p>'
            + "\n".join(svg) +
            f'<h2>{esc(ui["what"])}</h2><p>{esc(EXPLANATIONS[lang][result.scenario])}</p>'
            f'<ul>{notes}</ul>'
            f'<h2>{esc(ui["segments"])}</h2><table><tr><th>{esc(ui["time"])}</th><th>{esc(ui["from"])}</th>'
            f'<th>{esc(ui["segment"])}</th><th>{esc(ui["step"])}</th><th></th></tr>'
            + "".join(table) + "</table></body></html>\n")


# ------------------------------------------------------------ the scenarios

class Stage:
    """What a scenario works with: the loop, the ladder, helpers to make a
    server, a client, a relay that drops chosen segments."""

    def __init__(self, ladder: Ladder):
        self.loop = asyncio.get_running_loop()
        self.ladder = ladder
        self.notes: list[str] = []
        self.summary: list[str] = []
        self.closers = []
        self.cores = []

    async def server(self, handle, config=DEMO_CONFIG, **kwargs):
        server = await start_server(handle, "127.0.0.1", 0, config=config, tracer=self.ladder.tracer("right"),
                                    **kwargs)
        self.cores.append(server.endpoint.core)
        self.closers.append(server)
        return server, server.sockets[0].getsockname()[1]

    async def client(self, port, config=DEMO_CONFIG, via=None, **kwargs):
        host, udp = via or ("127.0.0.1", port)
        reader, writer = await open_connection(host, udp, config=config, tcp_port=port,
                                               tracer=self.ladder.tracer("left"), **kwargs)
        self.cores.append(writer.transport.endpoint.core)
        return reader, writer

    async def relay(self, port, up=None, down=None):
        """A relay towards UDP ``port``: ``up``/``down`` are predicates on
        a decoded segment, True for a segment to drop (see :func:`once`);
        each drop is marked lost in the ladder."""
        def dropper(predicate):
            if predicate is None:
                return None

            def drop(data: bytes) -> bool:
                try:
                    seg = _fast.decode(data)
                except _fast.MalformedSegment:
                    return False  # not a segment: pass it on
                if predicate(seg):
                    self.ladder.lost(data)
                    return True
                return False
            return drop

        relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", port), up=Impairment(drop=dropper(up)),
                            down=Impairment(drop=dropper(down))).start()
        self.closers.append(relay)
        return relay.address

    async def settle(self, timeout: float = 4.0) -> None:
        """Until every connection has closed (TIME_WAIT included)."""
        for _ in range(int(timeout / 0.01)):
            if not any(core.connections for core in self.cores):
                break
            await asyncio.sleep(0.01)  # the demo waits for TIME_WAIT to end

    async def close(self) -> None:
        for closer in reversed(self.closers):
            closer.close()
            if hasattr(closer, "wait_closed"):
                await closer.wait_closed()


def once(predicate):
    """A predicate true for the first segment it matches only."""
    done = []

    def match(seg) -> bool:
        if not done and predicate(seg):
            done.append(True)
            return True
        return False
    return match


UI_NOTE_TIME_WAIT = "TIME_WAIT lasted 0.5 s here (Config(time_wait=0.5)); the default is 60 s, 2 x MSL as Linux."


async def _echo_exchange(stage, reader, writer) -> None:
    for message in (b"hello, TCP over UDP\n", b"bye\n"):
        writer.write(message)
        await writer.drain()
        reply = await reader.readline()
        stage.notes.append(f"client sent {message!r}, got {reply!r}")


async def _teardown_scenario(stage: Stage, mode: str) -> int:
    """normal, fin-ack, simultaneous-close, half-close, lost-final-ack."""
    loop = stage.loop
    done = loop.create_future()
    writers = {}

    async def handle(reader, writer):
        writers["server"] = writer
        while line := await reader.readline():
            if mode != "half-close":
                writer.write(b"echo: " + line)
                await writer.drain()
        if mode == "half-close":
            # CLOSE_WAIT: the client sent its FIN, the server still sends
            for part in (b"first part of the answer\n", b"the rest, after the client's FIN\n"):
                writer.write(part)
                await writer.drain()
        if mode == "normal":
            loop.call_later(0.05, writer.close)  # the application closes a little later
        elif mode != "simultaneous-close":
            writer.close()  # at once: the FIN carries the ACK of the client's FIN
        done.set_result(None)

    server, port = await stage.server(handle)
    via, closing = None, []
    if mode == "lost-final-ack":
        # the client's ACK of the server's FIN (the fourth wave) is lost once
        via = await stage.relay(port, up=once(lambda s: s.flags == _fast.ACK and not s.payload and closing))
    reader, writer = await stage.client(port, via=via)
    if mode == "half-close":
        writer.write(b"question 1\n")
        writer.write(b"question 2\n")
        await writer.drain()
        writer.write_eof()  # shutdown(SHUT_WR): the first wave, and the client can still read
        answer = await reader.read()
        stage.notes.append(f"after its write_eof() the client still read {answer!r}")
    else:
        await _echo_exchange(stage, reader, writer)
        if mode == "simultaneous-close":
            writers["server"].close()  # both sides close in the same instant: the FINs cross
    closing.append(True)
    writer.close()
    await asyncio.wait_for(done, 5)
    await stage.settle()
    stage.notes.append(UI_NOTE_TIME_WAIT)
    return port


async def _refused(stage: Stage) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    bare = UDPEndpoint(stage.loop, sock, DEMO_CONFIG, tracer=stage.ladder.tracer("right"))  # no listener
    port = bare.local_port
    try:
        await stage.client(port)
    except ConnectionRefusedError as exc:
        stage.notes.append(f"open_connection raised {type(exc).__name__}: {exc}")
    bare.close()
    return port


async def _simultaneous_open(stage: Stage) -> int:
    a = await create_endpoint(local_addr=("127.0.0.1", 0), config=DEMO_CONFIG, tracer=stage.ladder.tracer("left"))
    b = await create_endpoint(local_addr=("127.0.0.1", 0), config=DEMO_CONFIG, tracer=stage.ladder.tracer("right"))
    pa, pb = a.local_address[1], b.local_address[1]
    stage.cores += [a.udp.core, b.udp.core]
    # neither listens: both open at once, each towards the other's port
    (ra, wa), (rb, wb) = await asyncio.gather(a.open_connection("127.0.0.1", pb, tcp_port=pb, timeout=5),
                                              b.open_connection("127.0.0.1", pa, tcp_port=pa, timeout=5))
    wa.write(b"hi from A\n")
    wb.write(b"hi from B\n")
    stage.notes.append(f"A read {await rb.readline()!r} at B, B's {await ra.readline()!r} at A")
    wa.close()
    await asyncio.wait_for(rb.read(), 5)
    wb.close()
    await wa.wait_closed()
    await wb.wait_closed()
    await stage.settle()
    for ep in (a, b):
        ep.close()
        await ep.wait_closed()
    return pb


async def _backlog_overflow(stage: Stage, abort: bool) -> int:
    """A listener whose application has not accepted yet (backlog 1): two
    clients connect at once, the first fills the accept queue, the
    second's final ACK finds it full (the one drawn)."""
    config = DEMO_CONFIG.replace(abort_on_overflow=abort)

    async def handle(reader, writer):
        try:
            writer.write(b"accepted: " + await reader.readline())
            await writer.drain()
        except ConnectionError:
            pass  # the client that filled the queue, aborted at the end
        writer.close()

    server, port = await stage.server(handle, config=config, backlog=1)
    listener = server.endpoint.core.listeners[port]
    listener.hold()  # the application has not called accept() yet
    ladder = stage.ladder
    (r1, w1), (r2, w2) = await asyncio.gather(stage.client(port), stage.client(port))
    first = next(s.peer_port for s in ladder.steps if s.side == "right" and s.kind == "state"
                 and s.new == "ESTABLISHED")
    waiting, other = (r1, w1), (r2, w2)
    if w2.get_extra_info("sockname")[1] == first:
        waiting, other = other, waiting
    ladder.focus = other[1].get_extra_info("sockname")[1]
    stage.summary.append(f"client port {first} connected at the same instant and fills the accept queue "
                         f"(backlog 1); it is not drawn")
    if abort:
        try:
            await asyncio.wait_for(other[0].read(), 5)
        except ConnectionResetError as exc:
            stage.notes.append(f"the drawn client's read() raised {type(exc).__name__}: {exc}")
    else:
        # wait for the first SYN-ACK retransmission and its ACK, dropped
        for _ in range(500):
            if sum(1 for s in ladder.steps if s.side == "right" and s.kind == "segment"
                   and s.seg.flags & _fast.SYN and s.peer_port == ladder.focus) >= 2:
                break
            await asyncio.sleep(0.01)  # the demo waits for the server's timer
        await asyncio.sleep(0.05)
        listener.release()  # the application accepts: room again
        server.endpoint.flush()
        stage.notes.append("the application then accepted; the drawn client's next segment (its data, with "
                           "the ACK) found room and completed the handshake")
        other[1].write(b"hello\n")
        stage.notes.append(f"the drawn client got {await asyncio.wait_for(other[0].readline(), 5)!r}")
        await asyncio.wait_for(other[0].read(), 5)
        other[1].close()
    stage.notes.append(f"server listen_overflows={server.endpoint.core.stats['listen_overflows']}")
    waiting[1].transport.reset()  # "aborted at the end" (see handle)
    listener.release()
    await stage.settle()
    return port


async def _syn_flood(stage: Stage) -> int:
    """Forged SYNs from many ports fill the SYN queue; the server answers
    further SYNs with SYN cookies, and a real client still connects."""
    config = DEMO_CONFIG.replace(syn_backlog=16)
    served = stage.loop.create_future()

    async def handle(reader, writer):
        line = await reader.readline()
        writer.write(b"welcome, " + line)
        await writer.drain()
        writer.close()
        if not served.done():
            served.set_result(None)

    server, port = await stage.server(handle, config=config, backlog=8)
    core = server.endpoint.core
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.0.1", 0))
    count = 200
    for i in range(count):
        flood.sendto(_fast.encode(20000 + i, port, 1000 * i, 0, _fast.SYN, 65535, b"", mss=1400),
                     ("127.0.0.1", port))
    for _ in range(300):
        if core.stats["syn_cookies_sent"] + sum(1 for c in core.connections.values()) >= count:
            break
        await asyncio.sleep(0.01)  # the server is reading the flood
    half_open = sum(listener.half_open for listener in core.listeners.values())
    stage.summary.append(f"{count} forged SYNs from ports 20000-{20000 + count - 1} (one UDP socket that never "
                         f"answers): {half_open} half-open in SYN_RCVD, the SYN queue full, "
                         f"{core.stats['syn_cookies_sent']} answered with SYN cookies; not drawn")
    reader, writer = await stage.client(port)
    stage.ladder.focus = writer.get_extra_info("sockname")[1]
    writer.write(b"a real client\n")
    stage.notes.append(f"the real client got {await reader.readline()!r}")
    await asyncio.wait_for(served, 5)
    writer.close()
    await writer.wait_closed()
    stage.notes.append(f"server stats: syn_cookies_sent={core.stats['syn_cookies_sent']} "
                       f"syn_cookies_accepted={core.stats['syn_cookies_accepted']}")
    flood.close()
    return port


async def _fast_retransmit(stage: Stage) -> int:
    """One data segment lost on the way: the receiver's duplicate ACKs
    (with SACK) bring a fast retransmit, and the window shrinks."""
    done = stage.loop.create_future()

    async def handle(reader, writer):
        data = await reader.read()
        writer.write(f"got {len(data)} bytes\n".encode())
        await writer.drain()
        writer.close()
        done.set_result(len(data))

    server, port = await stage.server(handle)
    seen = []

    def fourth_data(seg) -> bool:
        if seg.payload:
            seen.append(seg.seq)
            return len(seen) == 4
        return False

    via = await stage.relay(port, up=fourth_data)
    reader, writer = await stage.client(port, via=via)
    writer.write(bytes(12 * 1400))
    await writer.drain()
    writer.write_eof()
    stage.notes.append(f"the server said {await reader.readline()!r}")
    await asyncio.wait_for(done, 5)
    info = writer.transport.get_extra_info("tcp_info")
    stage.notes.append(f"client tcp_info: fast_retransmits={info['fast_retransmits']} "
                       f"retransmitted={info['segments_retransmitted']} rto_count={info['rto_count']} "
                       f"cwnd={info['cwnd'] // info['mss']} segments")
    writer.close()
    await stage.settle()
    return port


async def _zero_window(stage: Stage) -> int:
    """A reader that stops: the receive buffer fills, the window falls to
    zero, the sender probes it, and the window reopens when reading
    resumes."""
    config = DEMO_CONFIG.replace(receive_buffer=4096, receive_buffer_max=None)
    done = stage.loop.create_future()
    size = 12000

    async def handle(reader, writer):
        await asyncio.sleep(1.0)  # the application is busy: it reads nothing for a second
        data = await reader.readexactly(size)
        writer.write(f"read {len(data)} bytes\n".encode())
        await writer.drain()
        writer.close()
        done.set_result(None)

    server, port = await stage.server(handle, config=config, limit=1024)
    reader, writer = await stage.client(port)
    writer.write(bytes(size))
    await writer.drain()
    stage.notes.append(f"the server said {await reader.readline()!r}")
    await asyncio.wait_for(done, 5)
    writer.close()
    await stage.settle()
    return port


SCENARIO_RUNNERS = {
    "normal": lambda stage: _teardown_scenario(stage, "normal"),
    "simultaneous-close": lambda stage: _teardown_scenario(stage, "simultaneous-close"),
    "fin-ack": lambda stage: _teardown_scenario(stage, "fin-ack"),
    "half-close": lambda stage: _teardown_scenario(stage, "half-close"),
    "lost-final-ack": lambda stage: _teardown_scenario(stage, "lost-final-ack"),
    "backlog-overflow": lambda stage: _backlog_overflow(stage, False),
    "backlog-overflow-abort": lambda stage: _backlog_overflow(stage, True),
    "syn-flood": _syn_flood,
    "fast-retransmit": _fast_retransmit,
    "zero-window": _zero_window,
}


async def play(scenario: str, pcap: str | None = None) -> Result:
    """Run ``scenario`` and return what was recorded."""
    scenario = ALIASES.get(scenario, scenario)
    if scenario not in SCENARIOS:
        raise ValueError(f"no scenario {scenario!r}; there are: {', '.join(SCENARIOS)}")
    loop = asyncio.get_running_loop()
    writer = PcapWriter(pcap) if pcap else None
    ladder = Ladder(loop.time, writer)
    stage = Stage(ladder)
    left, right, initial = "client", "server", ("CLOSED", "LISTEN")
    try:
        if scenario == "refused":
            port = await _refused(stage)
            initial = ("CLOSED", "CLOSED")
        elif scenario == "simultaneous-open":
            port = await _simultaneous_open(stage)
            left, right, initial = "A", "B", ("CLOSED", "CLOSED")
        else:
            port = await SCENARIO_RUNNERS[scenario](stage)
    finally:
        await stage.close()
        ladder.pcap = None  # what the loop's shutdown aborts later is not part of the scenario
        if writer is not None:
            writer.close()
    steps = ladder.shown()
    name_steps(steps)
    if scenario == "syn-flood":
        for step in steps:
            if step.name == "hs2":
                step.name = "hs2_cookie"  # the SYN queue was full: the server kept no state for it
    return Result(scenario, left, right, initial, steps, stage.notes, stage.summary, port)


async def run(mode: str = "normal", lang: str = "en") -> str:
    """The scenario's ladder as text."""
    return render(await play(mode), lang)


def sysctl_text() -> str:
    rows = sysctl_table()
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'aiotcp.Config field':<{width}}  {'default':<10}  Linux sysctl"]
    lines += [f"{name:<{width}}  {default!s:<10}  {sysctl}" for name, default, sysctl in rows]
    return "\n".join(lines)


def quiet_logging() -> None:
    """Applications configure logging, the library never does: the demo
    shows warnings and errors only."""
    import logging

    logging.basicConfig(level=logging.WARNING)


def main(scenario: str = "normal", lang: str = "en", html_path: str | None = None,
         pcap: str | None = None) -> None:
    quiet_logging()
    result = asyncio.run(play(scenario, pcap))
    print(render(result, lang))
    if html_path:
        with open(html_path, "w", encoding="utf-8") as f:
            f.write(render_html(result, lang))
        print(f"\n{UI[lang]['wrote']} {html_path}")
    if pcap:
        print(f"{UI[lang]['wrote']} {pcap}")
