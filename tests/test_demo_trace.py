"""The demo's ladder diagram, the pcap writer and structlog events."""
import asyncio
import logging
import shutil
import subprocess

import dpkt
import pytest

import aiotcp
from aiotcp import _fast
from aiotcp.tools.trace import PcapWriter, to_ip_packet


def test_ip_packet_checksum_is_valid_for_the_real_addresses():
    segment = _fast.encode(1234, 80, 1, 2, _fast.ACK | _fast.PSH, 100, b"hello", ts=(1, 2))
    packet = to_ip_packet(segment, "127.0.0.1", "127.0.0.2")
    ip = dpkt.ip.IP(packet)
    tcp = ip.data
    claimed = tcp.sum
    tcp.sum = 0
    ip.data = tcp
    ip.sum = 0
    assert dpkt.ip.IP(bytes(ip)).data.sum == claimed  # dpkt recomputes over the real pseudo-header
    assert tcp.data == b"hello"


def capture(tmp_path):
    path = tmp_path / "conn.pcap"

    async def main():
        writer_c = PcapWriter(path)
        server = await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        async with server:
            reader, writer = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1],
                                                          tracer=writer_c)
            writer.write(b"x" * 5000)
            await writer.drain()
            await reader.read()
            writer.close()
            await asyncio.sleep(0.05)
        writer_c.close()

    asyncio.run(main())
    return path


def test_pcap_capture_parses_with_dpkt(tmp_path):
    path = capture(tmp_path)
    with open(path, "rb") as f:
        packets = [dpkt.ip.IP(buf) for _, buf in dpkt.pcap.Reader(f)]
    flags = [p.data.flags for p in packets]
    assert flags[0] == dpkt.tcp.TH_SYN and flags[1] == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK
    assert sum(len(p.data.data) for p in packets if p.data.sport != 0 and p.src == packets[0].src) >= 5000


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (Debian package tshark)")
def test_pcap_opens_in_tshark_without_warnings(tmp_path):
    path = capture(tmp_path)
    result = subprocess.run(["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-z", "expert,warn"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SYN" in result.stdout
    lowered = result.stdout.lower()
    assert "checksum" not in lowered.split("expert info")[-1] if "expert info" in lowered else True
    assert "malformed" not in lowered
    assert "bad checksum" not in lowered and "incorrect" not in lowered


def _events(caplog, name):
    return [r.aiotcp for r in caplog.records if r.name == "aiotcp" and r.aiotcp["event"] == name]


def test_structlog_events_carry_connection_identity(caplog):
    async def main():
        server = await aiotcp.start_server(lambda r, w: w.transport.reset(), "127.0.0.1", 0)
        async with server:
            reader, writer = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()

    caplog.set_level(logging.DEBUG, logger="aiotcp")
    asyncio.run(main())
    resets = _events(caplog, "aiotcp.conn.reset")
    assert resets and resets[0]["remote_port"] > 0 and "local_port" in resets[0]
    record = next(r for r in caplog.records if r.aiotcp["event"] == "aiotcp.conn.reset")
    assert record.levelno == logging.INFO and record.getMessage().startswith("aiotcp.conn.reset ")


def test_state_changes_are_logged_under_aiotcp_names(caplog):
    async def main():
        server = await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        async with server:
            reader, writer = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            await reader.read()
            writer.close()
            await writer.wait_closed()

    caplog.set_level(logging.DEBUG, logger="aiotcp")
    asyncio.run(main())
    changes = [(e["old"], e["new"]) for e in _events(caplog, "aiotcp.conn.state")]
    assert ("SYN_SENT", "ESTABLISHED") in changes and ("CLOSE_WAIT", "LAST_ACK") in changes
    assert all("remote_port" in r.aiotcp for r in caplog.records if r.aiotcp["event"].startswith("aiotcp.conn."))
