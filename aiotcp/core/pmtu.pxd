# C-level declarations for pmtu.py (an augmenting .pxd, as rtt.pxd): the
# search is a final extension type with C int fields (segment sizes and
# counters) and a C double (a time), made once per connection, on the
# handshake's path; the connection calls its methods in C.

cimport cython

cdef dict _COMMON
cdef int MAX_PROBES, GRANULARITY
cdef double RAISE


@cython.final
cdef class PathSearch:
    cdef public bint enabled
    cdef public int overhead, limit, base, probes, probe_losses, lowered, black_holes
    cdef public int size, low, high, probe, fails
    cdef public double completed_at
    cdef public tuple common
    cpdef restart(self, double now)
    cpdef set_limit(self, int limit, double now)
    @cython.locals(size=int, low=int, high=int, done=bint, candidates=list)
    cpdef _search(self, double now, bint optimistic=*)
    cpdef probe_sent(self)
    cpdef bint probe_acked(self, int size, double now) except -1
    cpdef probe_lost(self, int size, double now)
    cpdef bint too_big(self, int size, double now) except -1
    cpdef bint black_hole(self, double now) except -1
    cpdef bint raise_due(self, double now) except -1
