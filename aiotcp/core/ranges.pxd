# C-level declarations for ranges.py (an augmenting .pxd, as connection.pxd):
# RangeSet becomes a final extension type; offsets and sequence numbers are
# C long long, the range bounds live in two Python lists of ints.

cimport cython

cdef long long MASK, HALF

@cython.locals(d=cython.longlong)  # C arithmetic: an untyped local made it Python ints
cpdef long long seq_offset(long long seq, long long base) noexcept


@cython.final
cdef class RangeSet:
    cdef public long long base, total
    cdef public list _lo, _hi
    cpdef list ranges(self)
    @cython.locals(i=cython.Py_ssize_t, stop=cython.Py_ssize_t, base=cython.longlong)
    cpdef list top(self, Py_ssize_t count)
    cpdef clear(self, long long base)
    @cython.locals(lo=cython.Py_ssize_t, hi=cython.Py_ssize_t, mid=cython.Py_ssize_t)
    cdef Py_ssize_t _index(self, long long offset) except -1
    @cython.locals(lo=cython.longlong, hi=cython.longlong, i=cython.Py_ssize_t, j=cython.Py_ssize_t,
                   covered=cython.longlong, added=cython.longlong)
    cpdef long long add(self, long long start, long long end) except? <long long>-1
    @cython.locals(shift=cython.longlong, dropped=cython.longlong, n=cython.Py_ssize_t, k=cython.Py_ssize_t)
    cpdef advance(self, long long base)
    @cython.locals(offset=cython.longlong, i=cython.Py_ssize_t)
    cpdef containing(self, long long seq)
    cpdef long long first_end(self) except? <long long>-1
