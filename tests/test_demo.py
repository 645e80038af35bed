"""The teaching demo: every scenario from a real connection, its states and
segments; Chinese labels, the HTML page (rendered in headless Chromium),
the capture, and the sysctl table."""
import ast
import asyncio
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import dpkt
import pytest

from aiotcp import _fast
from aiotcp.core.config import SYSCTLS
from aiotcp.tools import demo
from aiotcp.tools.demo import SCENARIOS, play, render, render_html

ROOT = Path(__file__).resolve().parent.parent
ALL_STATES = {"LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",
              "LAST_ACK", "TIME_WAIT", "CLOSED"}


def names(result, side=None):
    return [s.name for s in result.segments(side)]


def flags(step) -> int:
    return step.seg.flags


def index_of(result, predicate) -> int:
    for i, step in enumerate(result.steps):
        if predicate(step):
            return i
    raise AssertionError("no such step")


# ------------------------------------------------------------ each scenario

def check_normal(r):
    assert r.states("left") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"]
    assert r.states("right") == ["SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    steps = [n for n in names(r) if n not in ("data", "ack")]
    assert steps == ["hs1", "hs2", "hs3", "fin1", "ack2", "fin3", "ack4"]
    assert [s.side for s in r.segments() if s.name in ("hs1", "hs2", "hs3")] == ["left", "right", "left"]
    assert "got b'echo: bye\\n'" in "\n".join(r.notes)


def check_refused(r):
    assert r.states("left") == ["SYN_SENT", "CLOSED"]
    assert [(s.side, flags(s) & (_fast.SYN | _fast.RST)) for s in r.segments()] == [
        ("left", _fast.SYN), ("right", _fast.RST)]
    assert any("ConnectionRefusedError" in n for n in r.notes)


def check_simultaneous_open(r):
    for side in ("left", "right"):
        assert r.states(side)[:3] == ["SYN_SENT", "SYN_RCVD", "ESTABLISHED"], side
    opening = [s for s in r.segments() if flags(s) & _fast.SYN]
    assert sorted((s.side, s.name) for s in opening) == [
        ("left", "sim_syn"), ("left", "sim_synack"), ("right", "sim_syn"), ("right", "sim_synack")]
    assert "hs3" not in names(r)


def check_simultaneous_close(r):
    for side in ("left", "right"):
        assert r.states(side)[-4:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT", "CLOSED"], side
    assert {"fin1", "fin_sim"} <= set(names(r))


def check_fin_ack(r):
    assert r.states("left")[-3:] == ["FIN_WAIT_1", "TIME_WAIT", "CLOSED"]
    assert "FIN_WAIT_2" not in r.states("left")
    combined = [s for s in r.segments("right") if flags(s) & _fast.FIN]
    assert len(combined) == 1 and combined[0].name == "fin23" and flags(combined[0]) & _fast.ACK
    client_fin = next(s for s in r.segments("left") if flags(s) & _fast.FIN)
    assert combined[0].seg.ack == (client_fin.seg.seq + len(client_fin.seg.payload) + 1) & 0xFFFFFFFF
    # no ACK alone between the client's FIN and the server's FIN
    between = r.segments("right")[r.segments("right").index(combined[0]) - 1]
    assert between.seg.ack != combined[0].seg.ack or flags(between) & _fast.FIN


def check_half_close(r):
    close_wait = index_of(r, lambda s: s.kind == "state" and s.side == "right" and s.new == "CLOSE_WAIT")
    last_ack = index_of(r, lambda s: s.kind == "state" and s.side == "right" and s.new == "LAST_ACK")
    sent = [s for s in r.steps[close_wait:last_ack] if s.kind == "segment" and s.side == "right" and s.seg.payload]
    assert sum(len(s.seg.payload) for s in sent) == len(b"first part of the answer\nthe rest, after the client's FIN\n")
    assert "FIN_WAIT_2" in r.states("left")
    assert any("the rest, after the client's FIN" in n for n in r.notes)


def check_lost_final_ack(r):
    lost = [s for s in r.segments() if s.lost]
    assert len(lost) == 1 and lost[0].side == "left" and flags(lost[0]) == _fast.ACK
    after = r.segments()[r.segments().index(lost[0]) + 1:]
    assert [s.name for s in after][:2] == ["retx_fin", "ack4_again"]
    assert [s.side for s in after][:2] == ["right", "left"]
    assert r.states("right")[-2:] == ["LAST_ACK", "CLOSED"]


def check_backlog_overflow(r):
    synacks = [s for s in r.segments("right") if flags(s) & _fast.SYN]
    assert len(synacks) >= 2 and synacks[1].name == "retx_synack"
    assert not any(flags(s) & _fast.RST for s in r.segments())
    client = index_of(r, lambda s: s.kind == "state" and s.side == "left" and s.new == "ESTABLISHED")
    server = index_of(r, lambda s: s.kind == "state" and s.side == "right" and s.new == "ESTABLISHED")
    retransmitted = index_of(r, lambda s: s.kind == "segment" and s.name == "retx_synack")
    assert client < retransmitted < server  # the client was connected long before the server agreed
    assert any("accepted: hello" in n for n in r.notes)


def check_backlog_overflow_abort(r):
    rst = [s for s in r.segments("right") if flags(s) & _fast.RST]
    assert len(rst) == 1
    hs3 = next(s for s in r.segments("left") if s.name == "hs3")
    assert r.steps.index(hs3) < r.steps.index(rst[0])
    assert r.states("right") == ["SYN_RCVD", "CLOSED"]
    assert r.states("left")[-1] == "CLOSED"
    assert any("ConnectionResetError" in n for n in r.notes)


def check_syn_flood(r):
    assert r.summary and "SYN cookies" in r.summary[0]
    assert names(r)[:3] == ["hs1", "hs2_cookie", "hs3"]
    assert "ESTABLISHED" in r.states("left")
    assert re.search(r"syn_cookies_accepted=1\b", "\n".join(r.notes))
    half_open = int(re.search(r"(\d+) half-open", r.summary[0]).group(1))
    assert half_open == 16  # bounded by the SYN queue, not by the flood


def check_fast_retransmit(r):
    lost = [s for s in r.segments() if s.lost]
    assert len(lost) == 1 and lost[0].seg.payload and lost[0].side == "left"
    repair = [s for s in r.segments("left") if s.seg.seq == lost[0].seg.seq and s is not lost[0]]
    assert repair and repair[0].name == "fast_retx"
    assert names(r, "right").count("dupack") >= 3
    assert repair[0].cwnd < lost[0].cwnd  # the congestion window was cut
    assert "rto_count=0" in "\n".join(r.notes)


def check_zero_window(r):
    seq = names(r)
    zero = seq.index("zero_window")
    assert "probe" in seq[zero:] and "window_update" in seq[zero:]
    assert seq.index("probe", zero) < seq.index("window_update", zero)
    assert any(s.seg.window == 0 for s in r.segments("right"))
    assert any("read 12000 bytes" in n for n in r.notes)


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_each_scenario_draws_what_the_tutorials_describe(scenario):
    result = await asyncio.wait_for(play(scenario), 30)
    globals()[f"check_{scenario.replace('-', '_')}"](result)
    text = render(result)
    for state in set(result.states("left")) | set(result.states("right")):
        assert state in text
    assert demo.EXPLANATIONS["en"][scenario] in text


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_chinese_labels_html_and_pcap_for_every_scenario(scenario, tmp_path):
    pcap = tmp_path / f"{scenario}.pcap"
    result = await asyncio.wait_for(play(scenario, str(pcap)), 30)
    text = render(result, "zh")
    assert demo.EXPLANATIONS["zh"][scenario] in text
    for step in result.segments():
        if step.name:
            assert demo.STEP_NAMES["zh"][step.name] in text
    page = render_html(result, "zh")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not re.search(r"<script|<link|<img|src=|href=|url\((?!#)", page)  # self-contained: nothing to fetch
    for state in set(result.states("left")) | set(result.states("right")):
        assert state in page
    with open(pcap, "rb") as f:
        packets = [dpkt.ip.IP(raw) for _, raw in dpkt.pcap.Reader(f)]
    shown = {(s.local_port, s.peer_port, s.seg.seq, s.seg.flags) for s in result.segments()}
    captured = {(p.data.sport, p.data.dport, p.data.seq, p.data.flags) for p in packets}
    assert shown <= captured  # every segment drawn is in the capture, lost ones included


def test_the_tutorial_names_in_chinese():
    zh = demo.STEP_NAMES["zh"]
    assert [zh[k] for k in ("hs1", "hs2", "hs3")] == ["第一次握手 (SYN)", "第二次握手 (SYN-ACK)", "第三次握手 (ACK)"]
    assert [zh[k][:5] for k in ("fin1", "ack2", "fin3", "ack4")] == ["第一次挥手", "第二次挥手", "第三次挥手", "第四次挥手"]
    assert set(demo.STEP_NAMES["en"]) == set(zh)
    for table in (demo.TITLES, demo.EXPLANATIONS):
        assert set(table["en"]) == set(table["zh"]) == set(SCENARIOS)


# ------------------------------------------------------------ the command line

def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "aiotcp", "demo", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_the_command_line_and_its_aliases():
    default = run_cli()
    assert default.returncode == 0, default.stderr
    assert "handshake 1 (SYN)" in default.stdout and "TIME_WAIT" in default.stdout
    alias = run_cli("--simultaneous-close", "--lang", "zh")
    assert alias.returncode == 0, alias.stderr
    assert "CLOSING" in alias.stdout and "同时关闭" in alias.stdout
    refused = run_cli("--refused")
    assert "ConnectionRefusedError" in refused.stdout
    listed = run_cli("--list")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(SCENARIOS)
    wrong = run_cli("--scenario", "no-such")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr


def test_sysctl_table_and_every_mirrored_field_names_its_sysctl():
    out = run_cli("--sysctl")
    assert out.returncode == 0, out.stderr
    for field, sysctl in SYSCTLS.items():
        assert re.search(rf"^{field}\s+\S+\s+net\.ipv4\.{sysctl}$", out.stdout, re.M), field
    # each field's own documentation (the #: lines above it) names its sysctl
    source = (ROOT / "aiotcp" / "core" / "config.py").read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config")
    docs, previous_end = {}, config.lineno
    for node in config.body:
        if isinstance(node, ast.AnnAssign):
            comment = [ln.strip() for ln in lines[previous_end:node.lineno - 1] if ln.strip().startswith("#:")]
            docs[node.target.id] = " ".join(comment)
            previous_end = node.end_lineno
    for field, sysctl in SYSCTLS.items():
        # fields documented as a group share the comment above the first
        group = [name for name in docs if docs[name]]
        text = docs[field] or docs[max((g for g in group if list(docs).index(g) < list(docs).index(field)),
                                       key=list(docs).index)]
        assert sysctl in text, (field, sysctl)
    for name in ("tcp_syncookies", "tcp_fin_timeout", "tcp_syn_retries", "tcp_synack_retries", "tcp_retries2",
                 "tcp_max_syn_backlog", "tcp_abort_on_overflow", "tcp_keepalive_time", "tcp_window_scaling",
                 "tcp_timestamps", "tcp_sack", "tcp_congestion_control"):
        assert name in SYSCTLS.values(), name


# ------------------------------------------------------------ in a browser

def png_pixels_vary(path: Path) -> bool:
    """Whether a PNG (8-bit RGB or RGBA, as Chromium writes) has more than
    one colour: decoded with zlib, no imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, channels = 8, b"", 0, 3
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, _, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    # rows unfiltered only as far as needed: filter type 0 or 1 rows still
    # tell a blank page (all one value after the filter byte) from a drawn one
    colours = set()
    for row in range(0, len(raw), stride * 7):
        line = raw[row + 1:row + stride]
        colours.update(line[i:i + channels] for i in range(0, len(line), channels * 13))
        if len(colours) > 8:
            return True
    return False


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium; .ci/run installs it)")
@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", ["normal", "lost-final-ack", "syn-flood"])
async def test_the_html_page_renders_in_headless_chromium(scenario, tmp_path):
    result = await asyncio.wait_for(play(scenario), 30)
    page = tmp_path / "ladder.html"
    page.write_text(render_html(result, "zh" if scenario == "normal" else "en"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    flags_ = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}"]
    proc = await asyncio.create_subprocess_exec(CHROMIUM, *flags_, f"--screenshot={shot}", "--window-size=1200,1400",
                                                page.as_uri(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert await asyncio.wait_for(proc.wait(), 90) == 0
    assert shot.exists() and png_pixels_vary(shot)
    proc = await asyncio.create_subprocess_exec(CHROMIUM, *flags_, "--dump-dom", page.as_uri(),
                                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    dom, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = re.sub(r"<[^>]+>", " ", dom.decode())
    for state in (set(result.states("left")) | set(result.states("right")) | set(result.initial)) & ALL_STATES:
        assert state in text, state
