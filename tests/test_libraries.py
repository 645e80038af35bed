"""Well-known asyncio libraries over aiotcp, on both loops: each is given
aiotcp's create_server/create_connection in place of the loop's, which is
how an application moves one onto aiotcp."""
import asyncio

import pytest

import aiotcp

pytestmark = pytest.mark.asyncio


def onto_aiotcp(monkeypatch):
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "create_server", aiotcp.create_server, raising=False)
    monkeypatch.setattr(loop, "create_connection", aiotcp.create_connection, raising=False)


async def test_websockets_echo_and_closing_handshake(monkeypatch):
    server_mod = pytest.importorskip("websockets.asyncio.server")
    client_mod = pytest.importorskip("websockets.asyncio.client")
    onto_aiotcp(monkeypatch)

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with server_mod.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with client_mod.connect(f"ws://127.0.0.1:{port}") as ws:
            for i in range(50):
                message = f"message {i} " * 500
                await ws.send(message)
                assert await ws.recv() == message
            assert isinstance(ws.transport, aiotcp.TCPTransport)
    # the closing handshake completed (1000), it did not fail with 1006
    assert ws.close_code == 1000


async def test_asyncssh_session(monkeypatch):
    asyncssh = pytest.importorskip("asyncssh")
    onto_aiotcp(monkeypatch)

    class NoAuth(asyncssh.SSHServer):
        def begin_auth(self, username):
            return False

    async def count_bytes(process):
        data = await process.stdin.read()  # to EOF
        process.stdout.write(f"{len(data)}\n")
        process.exit(0)

    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key], server_factory=NoAuth,
                                   process_factory=count_bytes)
    port = server.sockets[0].getsockname()[1]
    async with asyncssh.connect("127.0.0.1", port, known_hosts=None, username="user") as conn:
        result = await conn.run("count", input="a" * 300_000)
    assert (result.exit_status, result.stdout) == (0, "300000\n")
    server.close()
    await server.wait_closed()
