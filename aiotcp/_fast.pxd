# The C-level contract of aiotcp._fast (see _fast.pyx for the theory of operation).
#
# Anything declared here may be used from other Cython modules with `cimport`;
# everything else in _fast.pyx is private.  The Python-level contract is _fast.pyi.

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

# RFC 1071 ones' complement sum of `n` bytes at `p`, in network byte order,
# added to `acc` and folded to 16 bits (not complemented).
cdef uint32_t ones_sum(const uint8_t *p, Py_ssize_t n, uint32_t acc) noexcept nogil


# encode() with every argument explicit (see _fast.pyx): the connection's
# per-segment output path calls it directly from C.  The payload is
# payload[offset:offset + length], length -1 meaning to the end.
cpdef bytes encode_segment(uint16_t src_port, uint16_t dst_port, uint32_t seq, uint32_t ack,
                           uint8_t flags, uint16_t window, object payload, Py_ssize_t offset,
                           Py_ssize_t length, int mss, int wscale, bint sack_permitted,
                           object sack_blocks, bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           uint16_t urgent)


cdef struct _Chunk:
    PyObject *obj          # a bytes object held by reference (NULL: storage of our own)
    char *data             # the chunk's bytes
    Py_ssize_t len         # how many
    Py_ssize_t cap         # our own storage's size (0 for a reference)
    int64_t start          # the stream offset (SendBuffer._front's count) of data[0]


@cython.final
cdef class SendBuffer:
    """A connection's send buffer (see _fast.pyx): appended at the back,
    dropped from the front, read in place by encode_segment."""
    cdef _Chunk *_chunks                  # the chunks held are _chunks[_head:_head + _count]
    cdef Py_ssize_t _head, _count, _slots
    cdef int64_t _front                   # stream offset of the first byte held
    cdef Py_ssize_t _len                  # bytes held
    cdef Py_ssize_t _cursor               # the chunk _find found last (checked before use)
    cdef char *_spare                     # storage of our own kept for the next writes while not empty
    cdef Py_ssize_t _spare_cap
    cdef void _release(self, _Chunk *c) noexcept
    cdef void _let_go(self) noexcept
    cdef inline Py_ssize_t _find(self, Py_ssize_t offset) noexcept
    cdef void copy_out(self, uint8_t *dst, Py_ssize_t offset, Py_ssize_t n) noexcept
    cdef uint32_t copy_out_sum(self, uint8_t *dst, Py_ssize_t offset, Py_ssize_t n) noexcept
    cdef uint32_t _copy(self, uint8_t *dst, Py_ssize_t offset, Py_ssize_t n, bint summed) noexcept
    cdef _Chunk *_new_chunk(self) except NULL
    cpdef int extend(self, object data) except -1
    cpdef int drop(self, Py_ssize_t n) except -1
    cpdef int clear(self) except -1


# Bulk data's path: `count` segments of `size` bytes of `sndbuf` from
# `offset`, appended to `out`, the datagrams that `count` calls of
# encode_segment would give (ACK, PSH on the last when `psh`, the timestamp
# option when `has_ts`): each as (datagram, to), or with `joined` >= 2 up to
# that many in a row as one run, (datagrams back to back, to, datagram size).
cpdef int encode_run(list out, object to, uint16_t src_port, uint16_t dst_port, uint32_t seq, uint32_t ack,
                     uint16_t window, SendBuffer sndbuf, Py_ssize_t offset, Py_ssize_t size, Py_ssize_t count,
                     bint psh, bint has_ts, uint32_t ts_val, uint32_t ts_ecr, Py_ssize_t joined=*) except -1

# A run of the outbox cut back into its (datagram, addr) pairs.
cpdef list cut_run(tuple run)


cdef class Segment:
    """One decoded TCP segment (RFC 9293 section 3.1)."""
    cdef readonly uint16_t src_port
    cdef readonly uint16_t dst_port
    cdef readonly uint32_t seq
    cdef readonly uint32_t ack
    cdef readonly uint8_t data_offset
    cdef readonly uint8_t flags
    cdef readonly uint16_t window
    cdef readonly uint16_t checksum
    cdef readonly uint16_t urgent
    cdef readonly int mss             # -1 when absent
    cdef readonly int wscale          # -1 when absent
    cdef readonly bint sack_permitted
    cdef readonly tuple sack_blocks   # ((left, right), ...), empty when absent
    cdef readonly bint has_ts
    cdef readonly uint32_t ts_val
    cdef readonly uint32_t ts_ecr
    cdef readonly object payload      # memoryview over the decoded buffer
    cdef readonly int segs            # datagrams it came in: > 1 when coalesced


# Decode one datagram (see _fast.pyx); C callers skip the Python call.
cpdef Segment decode(data, bint verify=*)


cdef class DatagramSink:
    """A receiver of datagrams: the core endpoint's base (see _fast.pyx)."""
    cdef public object tracer          # a per-segment tracer, or None
    cdef public bint coalesce          # join in-order data runs (take_run)
    cdef public long long segments_coalesced  # datagrams joined to the one before
    # the connections owing an ACK (or a woken writer's part of a run) at
    # the end of the receive batch open now (a list), or None between
    # batches: the endpoint's, here so that a connection reaches it with a
    # C field access
    cdef public object _batch
    # what the socket below sends in one system call (UDP GSO): at most
    # run_bytes in at most run_datagrams datagrams; 0: a datagram a call
    cdef public long long run_bytes, run_datagrams
    cpdef bint defer_ack(self, object conn) except -1
    cpdef receive_datagram(self, data, addr, double now)
    cpdef receive_segment(self, Segment seg, addr, double now)
    # from C: decode the n bytes at p in place and pass the segment on
    cdef int take(self, const uint8_t *p, Py_ssize_t n, object addr, double now) except -1
    # from C: a GRO run (datagrams of ``size`` bytes, the last may be
    # shorter), in-order data segments of one connection joined into one
    cdef Py_ssize_t take_run(self, const uint8_t *p, Py_ssize_t n, Py_ssize_t size,
                             object addr, double now) except -1


cdef class Timer:
    """One entry of a TimerWheel; `owner` is whatever the caller hangs on it."""
    cdef public object owner
    cdef readonly double deadline
    cdef readonly bint scheduled   # in a wheel (set and cleared with _level)
    cdef int64_t _expiry
    cdef int _level
    cdef int _slot
    cdef uint64_t _order
    cdef Timer _prev
    cdef Timer _next
    cdef object _wheel


cdef class TimerWheel:
    cdef readonly double tick
    cdef int64_t _current          # every tick below this one has been processed
    cdef Py_ssize_t _count
    cdef uint64_t _order
    cdef list _heads               # per level: None, or its 64 list heads (Timer or None)
    cdef uint64_t _occupied[8]     # one bitmap of 64 slots per level
    # counts every change that may move the next deadline (a timer linked
    # or unlinked, an expire() pass): a caller that saw the same count
    # need not ask next_deadline again
    cdef readonly int64_t changes
    cdef void _link(self, Timer t)
    cdef void _unlink(self, Timer t)
    cdef void _cascade(self, int level)
    cdef int64_t _next_tick(self)
    cpdef schedule(self, Timer timer, double deadline)
    cpdef next_deadline(self)
    cpdef double next_deadline_at(self)
    cpdef cancel(self, Timer timer)


# time.monotonic(), from C: the asyncio layer's clock for the core
cpdef double monotonic() noexcept

# list.clear() that keeps the list's storage (see _fast.pyx)
cpdef int empty_list(list items, Py_ssize_t keep=*) except -1


# SipHash-2-4 of n bytes under a 16-byte key, and the ISN's hash of a
# connection's identity (see _fast.pyx).
cdef uint64_t siphash24(const uint8_t *key, const uint8_t *m, Py_ssize_t n) noexcept nogil
cpdef long long isn_hash(bytes key, object remote_addr, long long local_port, long long remote_port) except -1
