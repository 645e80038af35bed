"""The endpoints of a loop share one loop timer (aio/udp.py's _TimerHub):
each endpoint's next deadline is an entry in one wheel, and the loop holds
a timer for the earliest only."""
import asyncio
import socket

import pytest

import aiotcp
from aiotcp import Config
from aiotcp.aio import udp

#: deadlines far off, so that none comes due while a test runs, however slow
QUIET = Config(rto_initial=10.0, rto_min=5.0, rto_max=60.0, delayed_ack=5.0, nat_keepalive=None)


class _CountingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, counting the timers it is asked for."""

    timers = 0

    def call_at(self, when, callback, *args, **kwargs):
        self.timers += 1
        return super().call_at(when, callback, *args, **kwargs)


def test_connections_one_after_another_make_no_loop_timer_each():
    """30 connections opened and closed in turn (client and server in this
    loop): a new connection's deadlines lie behind those already armed, so
    they move entries in the shared wheel and ask the loop for nothing.
    With a loop timer of its own, each client endpoint made at least one
    (its SYN's)."""
    count = 30

    async def main():
        async def handler(reader, writer):
            writer.write(await reader.read(1))
            writer.close()

        server = await aiotcp.start_server(handler, "127.0.0.1", 0, config=QUIET)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        async with server:
            before = loop.timers
            for _ in range(count):
                reader, writer = await aiotcp.open_connection("127.0.0.1", port, config=QUIET)
                writer.write(b"c")
                assert await reader.read(1) == b"c"
                writer.close()
                await writer.wait_closed()
            return loop.timers - before

    with asyncio.Runner(loop_factory=_CountingLoop) as runner:
        timers = runner.run(main())
    assert timers <= 3, timers


@pytest.mark.asyncio
async def test_each_endpoints_deadline_fires_at_its_time_beside_a_later_one():
    """Two clients towards peers that never answer: one's SYN timer is 10 s
    off, the other's 50 ms.  The second SYN of the quick one comes while
    the slow one has sent one SYN; when both have gone, the loop keeps no
    timer for them."""
    loop = asyncio.get_running_loop()
    quick = Config(rto_initial=0.05, rto_min=0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as slow_peer, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quick_peer:
        for peer in (slow_peer, quick_peer):
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
        slow = asyncio.ensure_future(aiotcp.open_connection(*slow_peer.getsockname(), config=QUIET))
        fast = asyncio.ensure_future(aiotcp.open_connection(*quick_peer.getsockname(), config=quick))
        try:
            first = await asyncio.wait_for(loop.sock_recv(quick_peer, 2048), 10)
            second = await asyncio.wait_for(loop.sock_recv(quick_peer, 2048), 10)
            assert first[13] & 0x02 and second[13] & 0x02 and first[4:8] == second[4:8]  # the SYN, again
            assert len(slow_peer.recv(2048)) >= 20  # its one SYN
            with pytest.raises(BlockingIOError):
                slow_peer.recv(2048)  # and no other yet
        finally:
            for opening in (slow, fast):
                opening.cancel()
            for opening in (slow, fast):
                with pytest.raises(asyncio.CancelledError):
                    await opening
    assert udp.open_endpoints(loop) == []
    assert not any(key[0] is loop for key in udp._hubs)  # the loop's last endpoint took the hub with it


def test_each_loop_keeps_its_own_hub_until_its_last_endpoint_closes():
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
    try:
        endpoints = [loop.run_until_complete(aiotcp.create_endpoint(("127.0.0.1", 0))) for loop in loops]
        hubs = [{key for key in udp._hubs if key[0] is loop} for loop in loops]
        assert all(len(found) == 1 for found in hubs)
        endpoints[0].close()
        assert not any(key[0] is loops[0] for key in udp._hubs)
        assert {key for key in udp._hubs if key[0] is loops[1]} == hubs[1]  # the other loop's stays
        endpoints[1].close()
        assert not any(key[0] is loops[1] for key in udp._hubs)
    finally:
        for loop in loops:
            loop.close()
