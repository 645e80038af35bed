"""A connection reset between the end of the handshake and the making of
its transport: the transport, once made, must still report it."""
import asyncio

import pytest

import aiotcp
from aiotcp.aio import transport as transport_module
from aiotcp.core.connection import State


@pytest.mark.asyncio
async def test_a_reset_that_arrives_before_the_transport_exists_still_reaches_the_reader(monkeypatch):
    async def reset_at_once(reader, writer):
        writer.transport.reset()  # a RST right after the handshake

    made = transport_module.transport_for

    async def late_transport_for(endpoint, conn, *args, **kwargs):
        for _ in range(5000):  # until the RST has closed the connection, no transport made yet
            if conn.state is State.CLOSED:
                break
            await asyncio.sleep(0.001)
        assert conn.state is State.CLOSED
        return await made(endpoint, conn, *args, **kwargs)

    monkeypatch.setattr(transport_module, "transport_for", late_transport_for)
    server = await aiotcp.start_server(reset_at_once, "127.0.0.1", 0)
    reader, writer = await aiotcp.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 10)
    writer.close()
    server.close()
