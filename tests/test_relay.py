"""Byte-exact transfers over real UDP sockets through the impairment relay."""
import asyncio
import hashlib
import os
import subprocess
import sys

import pytest

import aiotcp
from aiotcp import Config
from aiotcp.tools.relay import Impairment, Relay

async def through_relay(size, up, down, seed=1, config=None):
    """Send ``size`` random bytes client -> server and back through a relay;
    return the client's TCP-info snapshot and the relay's counters."""
    config = config or Config()
    data = os.urandom(size)
    got = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        received = await reader.read()
        writer.write(hashlib.sha256(received).digest())
        await writer.drain()
        writer.close()
        got.set_result(len(received))

    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=config)
    tcp_port = server.sockets[0].getsockname()[1]
    relay = await Relay(("127.0.0.1", 0), ("127.0.0.1", tcp_port), up=up, down=down, seed=seed).start()
    try:
        async with server:
            reader, writer = await aiotcp.open_connection("127.0.0.1", relay.address[1], tcp_port=tcp_port,
                                                          config=config)
            for i in range(0, size, 1 << 16):
                writer.write(data[i:i + (1 << 16)])
                await writer.drain()
            writer.write_eof()
            digest = await asyncio.wait_for(reader.read(), 120)
            info = writer.get_extra_info("tcp_info")
            writer.close()
            assert digest == hashlib.sha256(data).digest(), f"seed {seed}"
            assert await got == size
            return info, relay.stats
    finally:
        relay.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("name,imp", [
    ("loss", Impairment(loss=0.05, delay=0.005)),
    ("delay_jitter", Impairment(delay=0.01, jitter=0.01)),
    ("reorder", Impairment(reorder=0.1, reorder_gap=0.005, delay=0.002)),
    ("duplicate", Impairment(duplicate=0.1)),
    ("corrupt", Impairment(corrupt=0.05)),
    ("rate", Impairment(rate=4_000_000, queue=64 * 1024, delay=0.005)),
])
async def test_each_impairment_alone(name, imp):
    info, stats = await through_relay(512 * 1024, imp, imp)
    effect = {"loss": "up_lost", "reorder": "up_reordered", "duplicate": "up_duplicated",
              "corrupt": "up_corrupted", "rate": "up_queue_dropped", "delay_jitter": "up_out"}[name]
    if name != "rate":
        assert stats[effect] > 0
    if name in ("loss", "corrupt"):
        assert info["segments_retransmitted"] > 0


@pytest.mark.asyncio
async def test_mixed_impairments_at_high_loss():
    imp = Impairment(loss=0.3, delay=0.002, jitter=0.002, reorder=0.05, duplicate=0.05, corrupt=0.02)
    # at 30% loss each way, RTO backoff dominates real time: cap it, as a
    # user of such a link would (the default cap is 60 s)
    config = Config(retries=60, rto_max=1.0)
    info, stats = await through_relay(128 * 1024, imp, imp, seed=3, config=config)
    assert stats["up_lost"] > 0 and stats["down_lost"] > 0


@pytest.mark.asyncio
async def test_one_percent_loss_with_sack_is_repaired_by_rack_not_rtos():
    imp = Impairment(loss=0.01, delay=0.005)
    info, stats = await through_relay(2 << 20, imp, Impairment(delay=0.005), seed=5)
    print("relay", dict(stats), "tcp_info", info)
    assert stats["up_lost"] > 5
    # RACK marked (nearly) every lost datagram lost, and fast recovery
    # resent them: at most one RTO (a lost FIN has no later data to show it)
    assert info["rack_losses"] >= 0.8 * stats["up_lost"]
    assert info["fast_retransmits"] > 0 and info["rto_count"] <= 1


@pytest.mark.asyncio
async def test_one_percent_loss_without_sack_is_repaired_by_newreno():
    imp = Impairment(loss=0.01, delay=0.005)
    info, stats = await through_relay(2 << 20, imp, Impairment(delay=0.005), seed=5, config=Config(sack=False))
    print("relay", dict(stats), "tcp_info", info)
    assert not info["sack_ok"] and info["rack_losses"] == 0
    assert info["fast_retransmits"] > 0
    assert info["fast_retransmits"] >= 2 * info["rto_count"]


@pytest.mark.asyncio
async def test_blackout_in_mid_transfer():
    # 1 MB/s keeps the 2 MiB in flight for about 2 s, across the blackout
    imp = Impairment(delay=0.002, rate=1_000_000, queue=128 * 1024, blackouts=[(0.5, 5.0)])
    info, stats = await through_relay(2 << 20, imp, Impairment(delay=0.002, blackouts=[(0.5, 5.0)]))
    assert stats["up_blackout_dropped"] + stats["down_blackout_dropped"] > 0
    assert info["rto_count"] > 0  # the blackout was bridged by retransmission timeouts


def test_relay_command_line_prints_what_it_did():
    result = subprocess.run([sys.executable, "-m", "aiotcp", "relay", "--listen", "127.0.0.1:0",
                             "--to", "127.0.0.1:9", "--loss-up", "0.5", "--delay", "0.01", "--duration", "0.2"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "loss=0.5" in result.stdout and "delay=0.01" in result.stdout
