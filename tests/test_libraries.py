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


def udp_socket_factory(addr_info):
    """aiohttp's TCPConnector(socket_factory=...): its client makes and
    connects its own sockets (happy eyeballs) and then hands one to
    loop.create_connection(sock=...); a UDP socket is what aiotcp runs on."""
    import socket
    return socket.socket(addr_info[0], socket.SOCK_DGRAM)


async def test_aiohttp_server_and_client(monkeypatch):
    aiohttp = pytest.importorskip("aiohttp")
    web = pytest.importorskip("aiohttp.web")
    if "socket_factory" not in aiohttp.TCPConnector.__init__.__code__.co_varnames:
        pytest.skip("aiohttp before 3.12 has no socket_factory")
    onto_aiotcp(monkeypatch)
    peers = []

    async def echo(request):
        peers.append(request.transport.get_extra_info("peername"))
        assert isinstance(request.transport, aiotcp.TCPTransport)
        body = await request.read()
        return web.Response(body=body[::-1])

    app = web.Application(client_max_size=4 << 20)
    app.router.add_post("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bodies = [bytes(range(256)) * 4096, b"small", b"x" * 70_000]
    try:
        connector = aiohttp.TCPConnector(socket_factory=udp_socket_factory)
        async with aiohttp.ClientSession(connector=connector) as session:
            for body in bodies:
                async with session.post(f"http://127.0.0.1:{port}/", data=body) as response:
                    assert response.status == 200
                    assert await response.read() == body[::-1]
    finally:
        await runner.cleanup()
    # the client kept its one connection alive between the requests
    assert len(peers) == 3 and len(set(peers)) == 1


async def test_httpx_client(monkeypatch):
    httpx = pytest.importorskip("httpx")
    onto_aiotcp(monkeypatch)  # httpx (anyio) opens with loop.create_connection

    async def http(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), b"0"))
            body = await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body.upper())
            await writer.drain()
            if reader.at_eof():
                break

    async def serve(reader, writer):
        try:
            await http(reader, writer)
        except asyncio.IncompleteReadError:
            pass  # the client closed its kept-alive connection
        writer.close()

    server = await aiotcp.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient() as client:
        for body in (b"hello", b"a" * 300_000):
            response = await client.post(f"http://127.0.0.1:{port}/", content=body)
            assert (response.status_code, response.content) == (200, body.upper())
    server.close()
    await server.wait_closed()
