# C-level declarations that Cython applies to congestion.py when it compiles
# it (an "augmenting" .pxd, as connection.pxd is for connection.py).  The
# controllers become extension types with C fields, so the connection reads
# cwnd and calls on_ack without a dictionary lookup.  They are not final:
# a Python subclass may override any cpdef method, and the connection then
# calls the override.

cimport cython


cdef class CongestionControl:
    cdef public long long mss, cwnd, ssthresh
    cdef public object srtt  # kept up to date by the connection (None before the first sample)
    cdef public bint rate_samples
    cdef public long long _hs_acked, _hs_round_end, _hs_samples, hystart_exits
    cdef public double _hs_min, _hs_last_min
    cpdef on_rtt(self, double rtt)
    cpdef _slow_start_round(self, long long acked, long long flight)
    @cython.locals(grow=cython.longlong)
    cpdef long long _slow_start(self, long long acked, long long flight) except? <long long>-1
    cpdef double pacing_rate(self) except? -1
    cpdef on_rate_sample(self, rs, long long inflight, double now)
    cpdef on_ack(self, long long acked, long long flight, double now)
    cpdef on_fast_retransmit(self, long long flight, double now)
    cpdef on_rto(self, long long flight, double now)
    cpdef set_mss(self, long long mss)
    cpdef on_idle_restart(self)
    cpdef on_recovery_start(self, long long flight, double now, bint sack)
    cpdef on_dupack_in_recovery(self)
    cpdef on_partial_ack(self, long long acked)
    cpdef on_prr(self, long long pipe, long long sndcnt)
    cpdef on_recovery_end(self, long long flight, bint sack)


cdef class NewReno(CongestionControl):
    cdef public long long _bytes_acked
    cpdef on_ack(self, long long acked, long long flight, double now)


cdef class Cubic(CongestionControl):
    cdef public double w_max, k, w_est, cwnd_prior
    cdef public object epoch_start
    cpdef double w_cubic(self, double t) except? -1
    @cython.locals(mss=cython.longlong, cwnd=cython.double, t=cython.double, target=cython.double,
                   segments=cython.double, alpha=cython.double, c=cython.double, beta=cython.double)
    cpdef on_ack(self, long long acked, long long flight, double now)
    @cython.locals(cwnd=cython.double)
    cpdef _reduce(self)
    cpdef on_fast_retransmit(self, long long flight, double now)
    cpdef on_rto(self, long long flight, double now)
