# C-level declarations that Cython applies to udp.py when it compiles it (an
# "augmenting" .pxd, as connection.pxd is for connection.py): the UDP
# endpoint becomes an extension type whose fields are C members, and its
# calls into the core endpoint and the datagram socket are C calls.

from aiotcp._dgram cimport DatagramSocket
from aiotcp.endpoint cimport Endpoint


cdef class UDPEndpoint:
    cdef public object loop, sock, config, peer, _log, _timer, _timer_when, _receive, _blocked
    cdef public Endpoint core
    cdef public DatagramSocket _io
    cdef public dict transports, servers, pending_connects
    cdef public int _fd
    cdef public bint _closed, _dispatching, close_when_idle

    cpdef _after(self)
    cpdef flush(self)
    cpdef bint _send(self, list datagrams) except -1
    cpdef _dispatch(self, source, event)
