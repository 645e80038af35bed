"""The order of a client's first steps: the SYN leaves before the socket is
registered with the loop (asyncio's own loop, whose registration can be
watched; the order is the same on uvloop)."""
import asyncio
import socket

import pytest

import aiotcp


class _WatchRecordingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, noting what a peer socket holds each time a socket is
    registered for reading."""

    peer: socket.socket
    registered: asyncio.Future

    def add_reader(self, fd, callback, *args):
        if not self.registered.done():
            try:
                self.registered.set_result(self.peer.recv(2048, socket.MSG_PEEK))
            except BlockingIOError:
                self.registered.set_result(b"")
        return super().add_reader(fd, callback, *args)


def test_a_clients_syn_leaves_before_its_socket_is_watched():
    """open_connection sends the SYN first and registers the socket with the
    loop (and grows its buffers) after, while the peer works on the SYN:
    what comes back meanwhile waits in the socket.  The SYN is at the peer
    when the registration comes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)

        async def main():
            loop = asyncio.get_running_loop()
            loop.peer, loop.registered = peer, loop.create_future()
            opening = asyncio.ensure_future(aiotcp.open_connection(*peer.getsockname()))
            try:
                first = await asyncio.wait_for(loop.registered, 10)
            finally:
                opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            return first

        with asyncio.Runner(loop_factory=_WatchRecordingLoop) as runner:
            first = runner.run(main())
        assert len(first) >= 20 and first[13] & 0x12 == 0x02, first  # a SYN, the peer's first datagram
