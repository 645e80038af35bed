# C-level declarations that Cython applies to endpoint.py when it compiles
# it (an "augmenting" .pxd, as connection.pxd is for connection.py): the
# endpoint becomes an extension type whose fields are C members, and the
# per-datagram path reaches the decoder and the connection by direct C calls.

cimport cython
from aiotcp._fast cimport DatagramSink, Segment, TimerWheel, decode, empty_list
from aiotcp.core.connection cimport Connection


# the flags (imported from _fast) as C constants
cdef int ACK, FIN, RST, SYN


cdef class Endpoint(DatagramSink):
    cdef public object config, stats, sequences  # tracer, _batch: DatagramSink's
    cdef public list _batch_list
    cdef public bint ipv6, keep_time_wait
    cdef public dict connections, listeners, _by_ports
    cdef public TimerWheel wheel
    cdef public list outbox, events
    cdef public long long time_wait_count, _challenge_second, _challenge_count
    cdef public Connection _last_conn
    cdef public object _last_addr
    cdef public long _last_ports

    cpdef begin_batch(self)
    cpdef bint acks_deferred(self) except -1
    @cython.locals(conn=Connection)
    cpdef end_batch(self, double now=*)
    @cython.locals(seg=Segment)
    cpdef receive_datagram(self, data, addr, double now)
    @cython.locals(connection=Connection, ports=cython.long)
    cpdef receive_segment(self, Segment seg, addr, double now)
    # the handshake's steps and a connection's end: direct C calls
    cpdef _listen_receive(self, listener, Segment seg, addr, double now, bint quiet=*)
    cpdef Connection _new_connection(self, addr, long long local_port, long long remote_port, double now, iss=*)
    cpdef _forget(self, key, conn)
    cpdef _put(self, key, record)
    cpdef _remove(self, key, record)
    cdef _keys_of(self, long ports)
