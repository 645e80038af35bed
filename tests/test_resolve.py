"""Name resolution for UDP: numeric addresses answer without a lookup (as
asyncio's own create_connection does), names go through getaddrinfo, and a
port is a TCP port (a service name is the TCP service's number)."""
import asyncio
import socket

import pytest

import aiotcp
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


@pytest.mark.asyncio
async def test_a_service_name_is_the_tcp_services_port():
    # as asyncio's create_connection resolves it: "http" is TCP port 80,
    # which the UDP lookup alone would not know (http has no UDP entry)
    try:
        expected = socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("no services database")
    loop = asyncio.get_running_loop()
    infos = await resolve(loop, "127.0.0.1", "http")
    assert infos and {info[4][1] for info in infos} == {expected}
    assert {(info[1], info[2]) for info in infos} == {(socket.SOCK_DGRAM, 0)}
    assert {info[2] for info in await resolve(loop, "localhost", "http", proto=socket.IPPROTO_UDP)} == {17}


@pytest.mark.asyncio
async def test_a_port_given_as_a_string_is_the_tcp_port_too():
    async def echo(reader, writer):
        writer.write(await reader.read(5))
        writer.close()

    server = await aiotcp.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await aiotcp.open_connection("localhost", str(port))
        writer.write(b"hello")
        assert await reader.read() == b"hello"
        writer.close()
        await writer.wait_closed()
        async with await aiotcp.create_endpoint(("127.0.0.1", 0)) as endpoint:
            reader, writer = await endpoint.open_connection("127.0.0.1", str(port))
            writer.write(b"again")
            assert await reader.read() == b"again"
            writer.close()
            await writer.wait_closed()


@pytest.mark.asyncio
async def test_host_or_port_left_out_is_asyncios_meaning():
    # host None: this host (asyncio resolves it to the loopback addresses);
    # port None: port 0, where nothing listens; both None: ValueError
    server = await aiotcp.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await aiotcp.open_connection(None, port, family=socket.AF_INET)
        assert writer.get_extra_info("peername") == ("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError, match="Connect call failed"):
        await aiotcp.open_connection("127.0.0.1", None)
    with pytest.raises(ValueError, match="host and port was not specified"):
        await aiotcp.open_connection(None, None)


@pytest.mark.asyncio
async def test_a_numeric_address_comes_back_in_the_form_getpeername_gives():
    # the client's connection is named by the address it was opened to, not
    # read back from the socket: written another way ("0:0::1"), it is still
    # the socket's peer as the kernel reports it, as over kernel TCP
    loop = CountingLoop()
    assert (await resolve(loop, "0:0:0:0:0:0:0:1", 80))[0][4] == ("::1", 80, 0, 0)
    assert (await resolve(loop, "::FFFF:7F00:1", 80))[0][4] == ("::ffff:127.0.0.1", 80, 0, 0)
    assert loop.lookups == []
    server = await aiotcp.start_server(lambda r, w: w.close(), "::1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        for host in ("0:0::1", "0000:0000:0000:0000:0000:0000:0000:0001"):
            reader, writer = await aiotcp.open_connection(host, port)
            assert writer.get_extra_info("peername") == ("::1", port, 0, 0)
            assert writer.get_extra_info("peername") == writer.get_extra_info("udp_socket").getpeername()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
