"""A transfer through the impairment relay on loopback, checked end to end:
the server answers the SHA-256 of what it read."""
from __future__ import annotations

import asyncio
import hashlib

import aiotcp
from aiotcp.tools.relay import Relay


async def digest_through_relay(data: bytes, up, down=None, *, config=None, listen=("127.0.0.1", 0),
                               seed: int = 0, timeout: float = 60.0, after=None) -> tuple:
    """Send ``data`` through a relay impairing ``up`` (and ``down``) to a
    server that answers its digest; asserts the answer.  Returns the
    client's tcp_info, the relay (closed, its counters kept) and the
    client endpoint's counters.  ``after`` runs when the relay is closed."""
    config = config or aiotcp.Config()

    async def handle(reader, writer):
        writer.write(hashlib.sha256(await reader.read()).digest())
        await writer.drain()
        writer.close()

    server = await aiotcp.start_server(handle, "127.0.0.1", 0, config=config)
    port = server.sockets[0].getsockname()[1]
    relay = await Relay(listen, ("127.0.0.1", port), up=up, down=down, seed=seed).start()
    try:
        reader, writer = await aiotcp.open_connection(*relay.address, tcp_port=port, config=config)
        stats = writer.transport.endpoint.core.stats
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), timeout) == hashlib.sha256(data).digest()
        info = writer.get_extra_info("tcp_info")
        writer.close()
        await writer.wait_closed()
    finally:
        relay.close()
        server.close()
        if after is not None:
            after()
    return info, relay, stats
