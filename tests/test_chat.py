"""examples/chat.py end to end: a server and three clients as separate
processes over aiotcp on loopback."""
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest

CHAT = str(Path(__file__).resolve().parent.parent / "examples" / "chat.py")


async def spawn(*args):
    return await asyncio.create_subprocess_exec(
        sys.executable, CHAT, *args, "--keepalive", "0.3",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def expect(proc, fragment: str, timeout: float = 10.0) -> str:
    """Read lines until one contains ``fragment`` (event-driven, no sleeps)."""
    async def scan():
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"EOF before {fragment!r}; stderr: {(await proc.stderr.read()).decode()}")
            text = line.decode()
            if fragment in text:
                return text

    return await asyncio.wait_for(scan(), timeout)


async def say(proc, line: str):
    proc.stdin.write(line.encode() + b"\n")
    await proc.stdin.drain()


@contextlib.asynccontextmanager
async def room(*names):
    """A chat server and the clients ``names``, each one in after the
    others saw it join; yields (server, {name: client}); kills them all."""
    server = await spawn("server", "--port", "0")
    procs = [server]
    try:
        port = (await expect(server, "chat server on")).strip().rsplit(":", 1)[1]
        clients = {}
        for name in names:
            client = clients[name] = await spawn("client", name, "--port", port)
            procs.append(client)
            await expect(client, f"* welcome {name}")
            for other in names[:len(clients) - 1]:
                await expect(clients[other], f"* {name} joined")
        yield server, clients
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.mark.asyncio
async def test_chat_with_three_clients():
    async with room("alice", "bob", "carol") as (_, clients):
        alice, bob, carol = clients.values()
        await say(alice, "hello everyone")
        assert "alice: hello everyone" in await expect(bob, "alice:")
        assert "alice: hello everyone" in await expect(carol, "alice:")

        await say(bob, "/who")
        assert "alice, bob, carol" in await expect(bob, "* here:")

        carol.send_signal(signal.SIGKILL)  # vanishes without a FIN
        await carol.wait()
        assert "carol vanished" in await expect(alice, "carol", timeout=15)

        await say(bob, "/quit")
        await expect(bob, "* bye")
        assert await asyncio.wait_for(bob.wait(), 10) == 0
        assert "* bob left" in await expect(alice, "bob left")


@pytest.mark.asyncio
async def test_a_client_that_vanishes_with_a_line_unacknowledged():
    """Keepalive probes only an idle connection: a client killed while a
    line to it is unacknowledged is noticed by the server's user timeout
    (else the line would be retransmitted, backing off, for minutes)."""
    async with room("alice", "carol") as (server, clients):
        alice, carol = clients.values()
        carol.send_signal(signal.SIGSTOP)  # it can no longer acknowledge anything
        await say(alice, "are you there?")
        await expect(server, "alice: are you there?")  # broadcast, so sent to carol too
        carol.send_signal(signal.SIGKILL)
        await carol.wait()
        assert "carol vanished" in await expect(alice, "carol", timeout=15)
