# C-level declarations for rtt.py (an augmenting .pxd, as connection.pxd):
# the estimator is a final extension type with C double fields, and the
# connection calls its methods in C.  NO_SAMPLE (-1.0) marks "no sample yet"
# in the C fields; the srtt and min_rtt properties show it as None.

cimport cython

cdef double NO_SAMPLE


@cython.final
cdef class RttEstimator:
    cdef public double rto_initial, rto_min, rto_max, granularity
    cdef public double rto, smoothed, variation, lowest
    cpdef configure(self, double rto_initial, double rto_min, double rto_max, double granularity)
    cpdef double bounded(self, double value) except? -1
    cpdef sample(self, double rtt)
    cpdef double on_rto(self) except? -1
    cpdef double base(self) except? -1
    cpdef unback(self)
    cpdef restart(self)
