# C-level declarations for rack.py (an augmenting .pxd, as connection.pxd):
# Transmission and Rack are final extension types with C fields; the
# connection calls Rack's methods in C.  Times are C doubles (-1: none),
# sequence numbers and byte counts C long long.

cimport cython
from aiotcp._fast cimport empty_list
from aiotcp.core.ranges cimport seq_offset

cdef long long MASK
cdef Py_ssize_t KEEP_IDLE  # _fast's, imported once: read in C, not looked up per call
cdef int _RETRANS, _SACKED, _LOST


@cython.final
cdef class Transmission:
    cdef public long long start, end, order, size
    cdef public double sent
    cdef public int flags
    # the delivery-rate snapshot (core/rate.py writes it)
    cdef public long long delivered
    cdef public double delivered_time, first_sent_time
    cdef public bint app_limited


@cython.locals(record=Transmission)
cdef Transmission _transmission(long long start, long long end, double sent, int flags, long long order,
                                long long size)

cpdef long long segments(Transmission record) except -1


@cython.final
cdef class Rack:
    cdef public list records
    cdef public long long order, lost_bytes, sacked_count, segment_order, fack
    cdef public double xmit_ts, rack_rtt
    cdef public bint reordering, probe_outstanding
    cdef public long long reo_mult, reo_persist, dsack_round, dsacks, losses, lost_retransmits, probes
    cdef public long long lost_marked
    cdef public object rate
    @cython.locals(records=list, lo=cython.Py_ssize_t, hi=cython.Py_ssize_t, mid=cython.Py_ssize_t)
    cdef Py_ssize_t _first_ending_after(self, long long seq) except -1
    @cython.locals(i=cython.Py_ssize_t)
    cpdef record_at(self, long long seq)
    @cython.locals(records=list, record=Transmission, tail=Transmission, before=cython.longlong)
    cpdef split(self, Py_ssize_t i, long long at)
    @cython.locals(records=list, record=Transmission, lo=cython.Py_ssize_t, flags=cython.int, start=cython.longlong)
    cpdef on_transmit(self, long long seq, long long end, long long snd_max, double now, long long size=*)
    @cython.locals(records=list, record=Transmission, n=cython.Py_ssize_t, lo=cython.Py_ssize_t,
                   left=cython.longlong, right=cython.longlong, acked=cython.longlong, before=cython.longlong,
                   at=cython.longlong)
    cpdef bint on_ack(self, long long ack, blocks, long long snd_max, long long ts_ecr, long long ts_offset,
                      double min_rtt, double now) except -1
    @cython.locals(sent=cython.double, flags=cython.int, rtt=cython.double, ms=cython.longlong)
    cdef void _delivered(self, Transmission record, long long end, long long order, long long ts_ecr,
                         long long ts_offset, double min_rtt, double now) noexcept
    cpdef on_dsack(self, long long snd_una, long long snd_max)
    cpdef on_recovery_end(self)
    @cython.locals(reo=cython.double)
    cpdef double reo_wnd(self, double min_rtt, double srtt, bint in_recovery, double tick) except? -1
    @cython.locals(records=list, i=cython.Py_ssize_t, record=Transmission, flags=cython.int,
                   sent=cython.double, xmit_ts=cython.double, segment_order=cython.longlong,
                   wait=cython.double, timeout=cython.double, remaining=cython.double)
    cpdef double detect(self, double now, double min_rtt, double srtt, bint in_recovery, double tick) except? -2
    @cython.locals(record=Transmission)
    cpdef mark_first_lost(self)
    @cython.locals(record=Transmission)
    cpdef on_rto(self)
    @cython.locals(record=Transmission, lost=cython.longlong)
    cpdef on_rto_keep_sacked(self)
    @cython.locals(pto=cython.double)
    cpdef double probe_timeout(self, double srtt, long long flight, long long mss) except? -1
    cpdef on_probe(self)
