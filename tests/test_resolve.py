"""Name resolution for UDP: numeric addresses answer without a lookup (as
asyncio's own create_connection does), names go through getaddrinfo."""
import socket

import pytest

from aiotcp.aio.transport import resolve


class CountingLoop:
    def __init__(self):
        self.lookups = []

    async def getaddrinfo(self, host, port, **kwargs):
        self.lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]


@pytest.mark.asyncio
async def test_numeric_addresses_need_no_lookup():
    loop = CountingLoop()
    assert await resolve(loop, "127.0.0.1", 80) == [(socket.AF_INET, socket.SOCK_DGRAM, 0, "", ("127.0.0.1", 80))]
    assert (await resolve(loop, "::1", 80, proto=17))[0][4] == ("::1", 80, 0, 0)
    assert loop.lookups == []


@pytest.mark.asyncio
async def test_names_scopes_and_other_families_are_looked_up():
    loop = CountingLoop()
    await resolve(loop, "localhost", 80)
    await resolve(loop, "fe80::1%lo", 80)
    await resolve(loop, "127.0.0.1", 80, family=socket.AF_INET6)  # a v4 address on a v6 socket: the resolver decides
    await resolve(loop, "127.0.0.1", "80")
    assert loop.lookups == ["localhost", "fe80::1%lo", "127.0.0.1", "127.0.0.1"]
