# C-level declarations for receive.py (an augmenting .pxd, as connection.pxd):
# ReceiveBuffer is a final extension type; the connection calls it in C.

cimport cython
from aiotcp._fast cimport empty_list
from aiotcp.core.ranges cimport RangeSet, seq_offset

cdef long long MASK, HELD


@cython.final
cdef class ReceiveBuffer:
    cdef public long long buffered
    cdef public bytearray _joined
    cdef public list _held, _ooo
    cdef public RangeSet held_ranges
    cpdef append(self, data)
    @cython.locals(held=list, joined=bytearray)
    cpdef bytes read(self, long long limit=*)
    cpdef discard(self)
    cpdef _join(self)
    cpdef bint has_holes(self)
    @cython.locals(i=cython.Py_ssize_t, n=cython.Py_ssize_t, hi=cython.Py_ssize_t, mid=cython.Py_ssize_t,
                   end=cython.longlong, overlap=cython.longlong)
    cpdef store(self, long long seq, data, long long rcv_nxt)
    @cython.locals(offset=cython.longlong)
    cpdef take_next(self, long long rcv_nxt)
