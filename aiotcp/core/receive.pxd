# C-level declarations for receive.py (an augmenting .pxd, as connection.pxd):
# ReceiveBuffer is a final extension type; the connection calls it in C.

cimport cython
from aiotcp._fast cimport empty_list
from aiotcp.core.ranges cimport RangeSet, seq_offset

cdef long long MASK, HELD, WHOLE
cdef Py_ssize_t KEEP_IDLE  # _fast's, imported once: read in C, not looked up per call


@cython.final
cdef class ReceiveBuffer:
    cdef public long long buffered
    cdef public list _held, _ooo
    cdef public Py_ssize_t _head, _off
    cdef public RangeSet held_ranges
    @cython.locals(held=list)
    cpdef append(self, data)
    @cython.locals(held=list, parts=list, head=cython.Py_ssize_t, off=cython.Py_ssize_t,
                   need=cython.Py_ssize_t, avail=cython.Py_ssize_t)
    cpdef bytes read(self, long long limit=*)
    @cython.locals(held=list, head=cython.Py_ssize_t)
    cpdef bytes read_chunk(self)
    @cython.locals(held=list, head=cython.Py_ssize_t)
    cdef _compact(self)
    cpdef discard(self)
    cpdef bint has_holes(self) except -1
    @cython.locals(i=cython.Py_ssize_t, n=cython.Py_ssize_t, hi=cython.Py_ssize_t, mid=cython.Py_ssize_t,
                   end=cython.longlong, overlap=cython.longlong)
    cpdef store(self, long long seq, data, long long rcv_nxt)
    @cython.locals(offset=cython.longlong)
    cpdef take_next(self, long long rcv_nxt)
