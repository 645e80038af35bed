# C-level declarations for recovery.py (an augmenting .pxd, as connection.pxd):
# Recovery is a final extension type with C fields; the connection calls it
# in C and compares its actions as C ints.  recover is a sequence number,
# -1 when there is none.

cimport cython
from aiotcp.core.ranges cimport seq_offset

cdef int NOTHING, ENTER, REPAIR, RESEND, INFLATE, PARTIAL, END, DUP_THRESH


@cython.final
cdef class Recovery:
    cdef public bint sack, active
    cdef public long long recover, dupacks, prr_delivered, prr_out, recover_fs, delivered, pipe_credit
    cdef public long long fast_retransmits, sack_retransmits
    cpdef bint may_enter(self, long long snd_una) except -1
    cpdef start(self, long long snd_max, long long flight)
    cpdef int on_dupack(self, long long snd_una, long long lost_bytes, long long sacked_count) except? -1
    cpdef int on_loss(self, long long snd_una) except? -1
    cpdef int on_new_ack(self, long long ack, long long lost_bytes) except? -1
    cpdef on_rto(self, long long snd_max)
    cpdef on_sent(self, long long length)
    cpdef long long window_credit(self, long long sacked) except? <long long>-1
    @cython.locals(sndcnt=cython.longlong, limit=cython.longlong)
    cpdef long long prr(self, long long pipe, long long mss, long long ssthresh) except? <long long>-1
    cpdef set_pipe(self, long long flight, long long pipe)
