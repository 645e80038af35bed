"""A chat over aiotcp.

    python examples/chat.py server [--host 127.0.0.1] [--port 7000]
    python examples/chat.py client NAME [--host 127.0.0.1] [--port 7000]

Every line a client types goes to everyone as "NAME: line".  Joins and
leaves are announced; "/who" lists who is here; "/quit" leaves gracefully.
There are no application heartbeats: TCP keepalive on the server
(``--keepalive`` seconds of silence, then three probes that far apart)
notices a client that vanished (killed, unplugged), and a user timeout as
long (Config.user_timeout, Linux's TCP_USER_TIMEOUT) notices one that
vanished with a line sent to it still unacknowledged, which keepalive
never probes (TCP would otherwise retransmit it for minutes); the clients' NAT
keepalive (Config.nat_keepalive, on by default for connections that a
client opens) keeps the binding of any NAT in between alive while nobody
types.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys


import aiotcp


class ChatServer:
    def __init__(self):
        self.users: dict[str, asyncio.StreamWriter] = {}

    def broadcast(self, text: str, skip: str | None = None) -> None:
        data = (text + "\n").encode()
        for name, writer in list(self.users.items()):
            if name != skip and not writer.is_closing():
                writer.write(data)
        print(text, flush=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = None
        reason = "left"
        try:
            line = await reader.readline()
            name = line.decode(errors="replace").strip()
            if not name or name in self.users:
                writer.write(b"* name taken or empty, bye\n")
                name = None
                return
            self.users[name] = writer
            writer.write(f"* welcome {name}; here: {', '.join(sorted(self.users))}\n".encode())
            self.broadcast(f"* {name} joined", skip=name)
            while line := await reader.readline():
                text = line.decode(errors="replace").rstrip("\r\n")
                if text == "/quit":
                    writer.write(b"* bye\n")
                    break
                if text == "/who":
                    writer.write(f"* here: {', '.join(sorted(self.users))}\n".encode())
                    continue
                self.broadcast(f"{name}: {text}")
        except (ConnectionError, TimeoutError):
            reason = "vanished"  # keepalive: the client stopped answering
        finally:
            if name is not None:
                self.users.pop(name, None)
                self.broadcast(f"* {name} {reason}")
            writer.close()


async def serve(host: str, port: int, keepalive: float) -> None:
    chat = ChatServer()
    # the user timeout bounds what keepalive cannot see: data sent and never
    # acknowledged (set to keepalive's own bound, idle + count * interval)
    config = aiotcp.Config(keepalive=True, keepalive_idle=keepalive, keepalive_interval=keepalive,
                           keepalive_count=3, user_timeout=4 * keepalive)
    server = await aiotcp.start_server(chat.handle, host, port, config=config)
    print(f"* chat server on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


async def client(name: str, host: str, port: int) -> None:
    reader, writer = await aiotcp.open_connection(host, port)
    writer.write(f"{name}\n".encode())
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def typed():
        while line := await stdin.readline():
            writer.write(line)
            await writer.drain()
            if line.strip() == b"/quit":
                return
        writer.write(b"/quit\n")

    typing = asyncio.ensure_future(typed())
    try:
        while line := await reader.readline():
            print(line.decode(errors="replace").rstrip("\n"), flush=True)
            if line == b"* bye\n":
                break
    finally:
        typing.cancel()
        writer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["server", "client"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--keepalive", type=float, default=10.0,
                        help="server: seconds of silence before a client is probed (then 3 probes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if args.mode == "server":
            asyncio.run(serve(args.host, args.port, args.keepalive))
        else:
            if not args.name:
                parser.error("client needs a NAME")
            asyncio.run(client(args.name, args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
