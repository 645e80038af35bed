"""What ``get_extra_info("socket")`` gives for an aiotcp transport: an object
that answers like the TCP socket a kernel-TCP transport would hand out.

asyncio's own ``TransportSocket`` is the model: a narrow view of the socket
that libraries poke at in ``connection_made`` (asyncssh and aiohttp set
TCP_NODELAY, others read the addresses or TCP_INFO).  Here the options map
onto the connection (:meth:`aiotcp.core.connection.Connection.reconfigure`);
options a kernel TCP socket has but aiotcp does not raise
``OSError(ENOPROTOOPT)``, as a kernel socket does for an option it does not
know.  The UDP socket that carries the connection is
``get_extra_info("udp_socket")``.
"""
from __future__ import annotations

import errno
import socket
import struct

from .._fast import monotonic

IPPROTO_TCP = socket.IPPROTO_TCP
SOL_SOCKET = socket.SOL_SOCKET
# Linux's option numbers, where the socket module lacks a name
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_KEEPIDLE = getattr(socket, "TCP_KEEPIDLE", 4)
TCP_KEEPINTVL = getattr(socket, "TCP_KEEPINTVL", 5)
TCP_KEEPCNT = getattr(socket, "TCP_KEEPCNT", 6)


def _no_option(level, option):
    return OSError(errno.ENOPROTOOPT, f"Protocol not available (option {option} at level {level})")


class TCPSocket:
    """A per-connection, TCP-looking socket object (see the module doc)."""

    type = socket.SOCK_STREAM
    proto = IPPROTO_TCP

    def __init__(self, transport):
        self._transport = transport

    @property
    def _conn(self):
        return self._transport.get_extra_info("connection")

    @property
    def family(self):
        return self._transport.get_extra_info("udp_socket").family

    def __repr__(self):
        return (f"<aiotcp.TCPSocket family={self.family!r} laddr={self.getsockname()!r} "
                f"raddr={self.getpeername()!r}>")

    def fileno(self) -> int:
        """-1, as a closed socket says: there is no kernel socket of this
        connection to hand out (the UDP socket is shared and not TCP)."""
        return -1

    def getpeername(self):
        return self._transport.get_extra_info("peername")

    def getsockname(self):
        return self._transport.get_extra_info("sockname")

    def gettimeout(self):
        return 0.0

    def getblocking(self):
        return False

    def setblocking(self, flag):
        if flag:
            raise ValueError("an aiotcp connection is non-blocking: it lives on the event loop")

    def settimeout(self, value):
        if value != 0:
            raise ValueError("an aiotcp connection is non-blocking: it lives on the event loop")

    # ---------------------------------------------------------- options

    def setsockopt(self, level, option, value, optlen=None):
        if level == SOL_SOCKET and option == socket.SO_LINGER:
            # struct linger {int l_onoff; int l_linger}: only "on, 0 s" changes
            # what close() and abort() do (a RST); as a non-blocking socket's
            # close(), nothing here waits for a longer linger
            onoff, seconds = struct.unpack("ii", bytes(value)[:8].ljust(8, b"\0"))
            self._transport.linger = (int(bool(onoff)), seconds)
            return
        if not isinstance(value, int):
            value = int.from_bytes(bytes(value)[:4], "little") if value else 0
        change = self._change(level, option, value)
        self._conn.reconfigure(monotonic(), **change)
        self._transport.endpoint.flush()

    def _change(self, level, option, value) -> dict:
        if level == IPPROTO_TCP:
            if option == socket.TCP_NODELAY:
                return {"nodelay": bool(value)}
            if option == TCP_KEEPIDLE:
                return {"keepalive_idle": float(self._positive(value))}
            if option == TCP_KEEPINTVL:
                return {"keepalive_interval": float(self._positive(value))}
            if option == TCP_KEEPCNT:
                return {"keepalive_count": self._positive(value)}
            if option == TCP_USER_TIMEOUT:
                if value < 0:
                    raise OSError(errno.EINVAL, "Invalid argument")
                return {"user_timeout": value / 1000 if value else None}
        elif level == SOL_SOCKET:
            if option == socket.SO_KEEPALIVE:
                return {"keepalive": bool(value)}
            if option == socket.SO_RCVBUF:
                # the window it bounds takes effect as the reader reads; as in
                # Linux, a size set by the user turns autotuning off
                return {"receive_buffer": max(int(value), 1024), "receive_buffer_max": None}
            if option == socket.SO_SNDBUF:
                return {"send_buffer": max(int(value), 1024), "send_buffer_max": None}
        raise _no_option(level, option)

    @staticmethod
    def _positive(value: int) -> int:
        if value < 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return value

    def getsockopt(self, level, option, buflen=None):
        if level == SOL_SOCKET and option == socket.SO_LINGER:
            linger = self._transport.linger
            return struct.pack("ii", *linger)[:buflen] if buflen is not None else linger[0]
        config = self._conn.config
        if level == IPPROTO_TCP:
            if option == TCP_INFO:
                return self._conn.info()  # the snapshot, not Linux's struct
            values = {
                socket.TCP_NODELAY: int(config.nodelay),
                TCP_KEEPIDLE: int(config.keepalive_idle),
                TCP_KEEPINTVL: int(config.keepalive_interval),
                TCP_KEEPCNT: config.keepalive_count,
                TCP_USER_TIMEOUT: int((config.user_timeout or 0) * 1000),
                getattr(socket, "TCP_MAXSEG", 2): self._conn.mss,
            }
        elif level == SOL_SOCKET:
            values = {
                socket.SO_KEEPALIVE: int(config.keepalive),
                socket.SO_RCVBUF: self._conn.receive_buffer,
                socket.SO_SNDBUF: self._conn.send_buffer,
                socket.SO_TYPE: socket.SOCK_STREAM,
                socket.SO_ERROR: 0,
            }
        else:
            values = {}
        if option not in values:
            raise _no_option(level, option)
        value = values[option]
        if buflen is not None:
            return value.to_bytes(4, "little")[:buflen]
        return value
