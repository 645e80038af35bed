# C-level declarations that Cython applies to udp.py when it compiles it (an
# "augmenting" .pxd, as connection.pxd is for connection.py): the UDP
# endpoint becomes an extension type whose fields are C members, and its
# calls into the core endpoint and the datagram socket are C calls.

cimport cython
from aiotcp._dgram cimport DatagramSocket
from aiotcp._fast cimport Timer, TimerWheel, empty_list, monotonic
from aiotcp.core.endpoint cimport Endpoint
from aiotcp.core.connection cimport Connection


cdef class TransportPath


# the socket's readiness callback on the loop: its calls are C calls
cdef class _Watch:
    cdef public object loop, epoll
    cdef public int fd
    cdef public bint writing, active, fragile
    cpdef add(self, callback)
    cpdef remove(self)
    cpdef rearm(self, callback)
    cpdef close(self)


# the loop timer the endpoints of a loop share: their entries' moves are C calls
cdef class _TimerHub:
    cdef public object loop, handle, context
    cdef public TimerWheel wheel
    cdef public double when
    cdef public bint firing
    cpdef schedule(self, Timer entry, double when)
    cpdef _arm(self, double when)
    cpdef cancel(self, Timer entry)


cdef class UDPEndpoint:
    cdef public object loop, sock, sockname, config, peer, _log, _blocked, _end_batch_soon, _batch_context
    cdef public _TimerHub _hub
    cdef public Timer _hub_entry
    cdef public _Watch _watch_read, _watch_write
    cdef public long long _wheel_changes
    cdef public Endpoint core
    cdef public DatagramSocket io
    cdef public dict transports, paths, servers, pending_connects
    cdef public list close_callbacks, _corked
    cdef public int _fd, _recv_batch, _woken
    cdef public bint closed, _dispatching, close_when_idle, _batch_open, _batch_held, _recverr

    @cython.locals(events=list, i=Py_ssize_t, when=double, wheel=TimerWheel, entry=Timer)
    cpdef flush(self)
    cpdef _arm(self, double when)
    cpdef _send_outbox(self)
    cpdef bint _send(self, list datagrams) except -1
    @cython.locals(path=TransportPath)
    cpdef _dispatch(self, source, event)


cdef class TransportPath:
    cdef public object transport, loop, protocol
    cdef public UDPEndpoint endpoint
    cdef public Connection conn
    cdef public bint buffered, closing, eof_written, lost, finished, reading_paused, eof_pending
    cdef public bint eof_delivered, corked, autocork, started
    cdef public long long pause_above

    cpdef set_protocol(self, protocol)
    cpdef write(self, data)
    cpdef catch_up(self)
    cpdef deliver(self)
