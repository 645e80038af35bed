# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled hot path of aiotcp: segment codec, checksum and timer wheel.

Theory of operation
-------------------
*Segments* are laid out exactly as ``docs/wire-format.md`` says (RFC 9293 section
3.1): one segment per UDP datagram, the checksum taken over a pseudo-header
whose addresses are zero.  :func:`decode` parses a datagram into a
:class:`Segment` whose ``payload`` is a memoryview of the caller's buffer (no
copy: it is valid only as long as that buffer is), and reports every malformed
case through :class:`MalformedSegment` and nothing else.  :func:`encode` builds
a datagram with the checksum filled in.  A datagram of 513 to 1500 bytes is
built in a bytes object of the *datagram ring* (2048 objects of 1500 bytes) that
nobody holds any more, if the next one in turn is free: malloc and free of a
block that size cost about 600 instructions a datagram.

*The checksum* is the RFC 1071 ones' complement sum, computed over 32-bit native
words into a 64-bit accumulator and folded; byte order independence (RFC 1071
section 2(B)) lets us sum in host order and swap once at the end.  On an x86-64
CPU with AVX2 (asked once, at the first checksum) a segment of 128 bytes or
more is summed 64 bytes a step in 32-bit vector lanes: 24 ns for 1480 bytes
against 52 ns.  ``_checksum_scalar`` and ``checksum_simd()`` let the tests hold
the two to the same answers.

*The timer wheel* is a hierarchical hashed wheel (Varghese and Lauck, scheme 7,
as in the classic Linux timer wheel): 8 levels of 64 slots each, level L slots
spanning 64**L ticks.  A timer lives in exactly one doubly linked slot list, so
schedule, cancel and reschedule are O(1) whatever the number of timers; when
the current tick crosses a level boundary the slot of the level above is
redistributed ("cascaded") downwards.  A deadline expires at tick
``ceil(deadline / tick)``: never before its deadline, and at most one tick after
it.  ``expire(now)`` returns timers in deadline order.

*A datagram sink* (:class:`DatagramSink`, the core endpoint's base) takes raw
datagrams from C (``aiotcp._dgram`` reads them into its own buffer): it
decodes them in place, copying only the payload, and hands the segment to
``receive_segment``, with no memoryview and no Python-level call in between.
A UDP GRO read (a run of datagrams of one size but for the last) goes to
``take_run``: consecutive in-order data segments of one connection in it
(only ACK and PSH among the flags, PSH ending the run; the same ports, ACK,
window and options, and those options the timestamps alone, laid out as
NOP, NOP, TS; contiguous sequence numbers; each checksum good) become one
segment with one payload, whose ``segs`` says how many it joins -- what
Linux's TCP GRO does.  A 1452-byte write is two segments beside the
timestamps (1440 + 12 bytes): joined, the receiver runs the TCP input path
once for it, builds no second payload and no join, and its reader gets one
bytes object.
"""

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.bytes cimport PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize


cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ

cdef extern from "<time.h>":
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec *tp) nogil
    int CLOCK_MONOTONIC


cpdef double monotonic() noexcept:
    """The clock the asyncio layer gives the core: ``time.monotonic()`` (the
    default loop's ``loop.time()``), read in C.  uvloop's ``loop.time()`` is
    the same clock cut to whole milliseconds and cached per loop iteration,
    never ahead of this one, so a loop timer armed for a time on this clock
    fires at it or just after."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9
from libc.math cimport ceil, floor, INFINITY
from libc.string cimport memcmp, memcpy, memmove, memset
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Big-endian fields at any alignment: one load or store and a byte
       swap (GCC merged few of the byte-at-a-time forms: about 110
       instructions a segment's header went to them). */
    #if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define AIOTCP_BE16(v) __builtin_bswap16(v)
    #define AIOTCP_BE32(v) __builtin_bswap32(v)
    #elif defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define AIOTCP_BE16(v) (v)
    #define AIOTCP_BE32(v) (v)
    #endif
    #ifdef AIOTCP_BE16
    static inline uint16_t aiotcp_rd16(const uint8_t *p) {
        uint16_t v; memcpy(&v, p, 2); return AIOTCP_BE16(v);
    }
    static inline uint32_t aiotcp_rd32(const uint8_t *p) {
        uint32_t v; memcpy(&v, p, 4); return AIOTCP_BE32(v);
    }
    static inline void aiotcp_wr16(uint8_t *p, uint16_t v) {
        v = AIOTCP_BE16(v); memcpy(p, &v, 2);
    }
    static inline void aiotcp_wr32(uint8_t *p, uint32_t v) {
        v = AIOTCP_BE32(v); memcpy(p, &v, 4);
    }
    #else
    static inline uint16_t aiotcp_rd16(const uint8_t *p) {
        return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
    }
    static inline uint32_t aiotcp_rd32(const uint8_t *p) {
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
               ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    }
    static inline void aiotcp_wr16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v;
    }
    static inline void aiotcp_wr32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
    }
    #endif
    /* RFC 1071 sum of n bytes read as big-endian 16-bit words, plus acc,
       folded to 16 bits (not complemented).  Words are summed in host order
       (RFC 1071 section 2(B)) and the folded sum swapped once at the end. */
    static inline uint64_t aiotcp_sum_tail(const uint8_t *p, Py_ssize_t n, uint64_t s) {
        uint32_t w;
        while (n >= 4) { memcpy(&w, p, 4); s += w; p += 4; n -= 4; }
        if (n >= 2) { uint16_t h; memcpy(&h, p, 2); s += h; p += 2; n -= 2; }
        if (n) { uint8_t last[2] = {p[0], 0}; uint16_t h; memcpy(&h, last, 2); s += h; }
        return s;
    }
    static inline uint32_t aiotcp_sum_fold(uint64_t s, uint32_t acc) {
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
    #if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        s = (uint16_t)(((s & 0xff) << 8) | (s >> 8));
    #endif
        s += acc;
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
        return (uint32_t)s;
    }
    static uint32_t aiotcp_ones_sum_scalar(const uint8_t *p, Py_ssize_t n, uint32_t acc) {
        uint64_t s = 0;
        while (n >= 16) {
            uint32_t a, b, c, d;
            memcpy(&a, p, 4); memcpy(&b, p + 4, 4);
            memcpy(&c, p + 8, 4); memcpy(&d, p + 12, 4);
            s += (uint64_t)a + b + c + d;
            p += 16; n -= 16;
        }
        return aiotcp_sum_fold(aiotcp_sum_tail(p, n, s), acc);
    }
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    #define AIOTCP_HAVE_AVX2 1
    /* 64 bytes a step: each 32-bit lane of a0 takes the low 16-bit word of
       two 32-bit words, a1 the high one.  A lane gains at most 2 * 0xFFFF
       a step, so 32768 steps (2 MiB) cannot overflow it; longer input is
       summed in blocks of that size.  With dst (not NULL) what is read is
       also copied there: a segment's payload summed on its way into the
       datagram, read once.  Inlined into the two below: in the sum alone
       dst is NULL, and the compiler drops the copy and its test. */
    __attribute__((target("avx2"), always_inline))
    static inline uint32_t aiotcp_sum_avx2(uint8_t *dst, const uint8_t *p, Py_ssize_t n, uint32_t acc) {
        uint64_t s = 0, lanes[4];
        const __m256i low = _mm256_set1_epi32(0xffff), zero = _mm256_setzero_si256();
        while (n >= 64) {
            Py_ssize_t steps = (n < (1 << 21) ? n : (1 << 21)) >> 6;
            __m256i a0 = zero, a1 = zero;
            n -= steps << 6;
            for (; steps; steps--, p += 64) {
                __m256i v0 = _mm256_loadu_si256((const __m256i *)p);
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(p + 32));
                if (dst) {
                    _mm256_storeu_si256((__m256i *)dst, v0);
                    _mm256_storeu_si256((__m256i *)(dst + 32), v1);
                    dst += 64;
                }
                a0 = _mm256_add_epi32(a0, _mm256_and_si256(v0, low));
                a1 = _mm256_add_epi32(a1, _mm256_srli_epi32(v0, 16));
                a0 = _mm256_add_epi32(a0, _mm256_and_si256(v1, low));
                a1 = _mm256_add_epi32(a1, _mm256_srli_epi32(v1, 16));
            }
            a0 = _mm256_add_epi64(
                _mm256_add_epi64(_mm256_unpacklo_epi32(a0, zero), _mm256_unpackhi_epi32(a0, zero)),
                _mm256_add_epi64(_mm256_unpacklo_epi32(a1, zero), _mm256_unpackhi_epi32(a1, zero)));
            _mm256_storeu_si256((__m256i *)lanes, a0);
            s += lanes[0] + lanes[1] + lanes[2] + lanes[3];
        }
        if (dst)
            memcpy(dst, p, n);
        return aiotcp_sum_fold(aiotcp_sum_tail(p, n, s), acc);
    }
    __attribute__((target("avx2")))
    static uint32_t aiotcp_ones_sum_avx2(const uint8_t *p, Py_ssize_t n, uint32_t acc) {
        return aiotcp_sum_avx2(NULL, p, n, acc);
    }
    __attribute__((target("avx2")))
    static uint32_t aiotcp_copy_sum_avx2(uint8_t *dst, const uint8_t *p, Py_ssize_t n) {
        return aiotcp_sum_avx2(dst, p, n, 0);
    }
    #else
    #define AIOTCP_HAVE_AVX2 0
    #endif
    /* -1 until the first call asks the CPU; then 1 if it has AVX2. */
    static int aiotcp_avx2 = -1;
    static inline int aiotcp_use_avx2(void) {
    #if AIOTCP_HAVE_AVX2
        if (aiotcp_avx2 < 0) {
            __builtin_cpu_init();
            aiotcp_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
        }
        return aiotcp_avx2;
    #else
        return 0;
    #endif
    }
    static inline uint32_t aiotcp_ones_sum(const uint8_t *p, Py_ssize_t n, uint32_t acc) {
    #if AIOTCP_HAVE_AVX2
        if (n >= 128 && aiotcp_use_avx2())
            return aiotcp_ones_sum_avx2(p, n, acc);
    #endif
        return aiotcp_ones_sum_scalar(p, n, acc);
    }
    /* Copy n bytes from src to dst (not overlapping) and return their
       aiotcp_ones_sum (acc 0): one pass over the bytes where the vector
       unit has one, a copy and a sum otherwise. */
    static inline uint32_t aiotcp_copy_sum(uint8_t *dst, const uint8_t *src, Py_ssize_t n) {
    #if AIOTCP_HAVE_AVX2
        if (n >= 128 && aiotcp_use_avx2())
            return aiotcp_copy_sum_avx2(dst, src, n);
    #endif
        memcpy(dst, src, n);
        return aiotcp_ones_sum_scalar(dst, n, 0);
    }
    /* Two folded sums added, ones' complement (end-around carry); b is
       byte-swapped first when its bytes start at an odd offset of the
       whole (RFC 1071 section 2(B)). */
    static inline uint32_t aiotcp_sum_add(uint32_t a, uint32_t b, int odd) {
        if (odd) b = ((b & 0xff) << 8) | (b >> 8);
        a += b;
        return (a & 0xffff) + (a >> 16);
    }
    /* The datagram ring: the bytes objects of datagrams above 512 bytes
       (which CPython takes from malloc, where a 1.5 KiB block costs several
       hundred instructions to get and to give back).  The ring keeps one
       reference to each object it made, all made AIOTCP_RING_CAP bytes
       long.  An object whose only reference is the ring's (refcount 1) is
       one nobody can see any more: it is handed out again, its size set to
       the new datagram's and its hash reset, exactly as if just made.  The
       cursor walks the ring in order, as datagrams are sent and dropped in
       order; an object still held (by a queue, a tracer, anyone) is skipped
       for a new one, and never touched.  The ring is as long as a bulk
       sender's largest burst between two flushes (an ACK that frees a
       congestion window of some 1,300 segments on loopback): with 64 slots
       five datagrams in six were still in the outbox when the cursor came
       back and were malloc'd anew (6 % of a bulk sender's time in malloc
       and free), with 2048 one in a thousand.  Slots fill only as large
       datagrams are sent: at most 3 MiB, in a process that sent bulk. */
    #define AIOTCP_RING_SLOTS 2048
    #define AIOTCP_RING_CAP 1500
    #if PY_VERSION_HEX >= 0x030E0000  /* ob_shash is deprecated: no ring */
    #define AIOTCP_RING_MAX 0
    #else
    #define AIOTCP_RING_MAX AIOTCP_RING_CAP
    #endif
    static PyObject *aiotcp_ring[AIOTCP_RING_SLOTS];
    static int aiotcp_ring_next = 0;
    static Py_ssize_t aiotcp_ring_reused = 0;
    static PyObject *aiotcp_datagram(Py_ssize_t size) {
        PyObject *b;
        int i;
        if (size <= 512 || size > AIOTCP_RING_MAX)
            return PyBytes_FromStringAndSize(NULL, size);
        i = aiotcp_ring_next;
        aiotcp_ring_next = (i + 1) % AIOTCP_RING_SLOTS;
        b = aiotcp_ring[i];
        if (b != NULL && Py_REFCNT(b) == 1) {
            aiotcp_ring_reused++;
        } else {
            b = PyBytes_FromStringAndSize(NULL, AIOTCP_RING_CAP);
            if (b == NULL)
                return NULL;
            Py_XSETREF(aiotcp_ring[i], b);  /* the old one, if held, is its holders' now */
        }
        Py_SET_SIZE(b, size);
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        ((PyBytesObject *)b)->ob_shash = -1;  /* the hash cache, read by bytes_hash */
    #pragma GCC diagnostic pop
        PyBytes_AS_STRING(b)[size] = 0;
        Py_INCREF(b);
        return b;
    }
    static inline int aiotcp_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    /* Empty a list and keep its item array: list.clear() frees the array
       and the next append allocates one again, once per datagram for the
       lists the per-segment path fills and empties.  Items go from the
       back, the size lowered before each is released; what a release
       appends goes too.  An array of more than ``keep`` slots is freed as
       clear() does, so what a burst grew is not kept. */
    static inline int aiotcp_empty_list(PyObject *op, Py_ssize_t keep) {
        PyListObject *l = (PyListObject *)op;
        Py_ssize_t n;
        if (l->allocated > keep)
            return PyList_SetSlice(op, 0, PY_SSIZE_T_MAX, NULL);
        while ((n = Py_SIZE(l)) > 0) {
            PyObject *item = l->ob_item[n - 1];
            Py_SET_SIZE(l, n - 1);
            Py_DECREF(item);
        }
        return 0;
    }
    """
    uint16_t aiotcp_rd16(const uint8_t *p) nogil
    uint32_t aiotcp_rd32(const uint8_t *p) nogil
    void aiotcp_wr16(uint8_t *p, uint16_t v) nogil
    void aiotcp_wr32(uint8_t *p, uint32_t v) nogil
    uint32_t aiotcp_ones_sum(const uint8_t *p, Py_ssize_t n, uint32_t acc) nogil
    uint32_t aiotcp_ones_sum_scalar(const uint8_t *p, Py_ssize_t n, uint32_t acc) nogil
    uint32_t aiotcp_copy_sum(uint8_t *dst, const uint8_t *src, Py_ssize_t n) nogil
    uint32_t aiotcp_sum_add(uint32_t a, uint32_t b, int odd) nogil
    int aiotcp_use_avx2() nogil
    int aiotcp_ctz64(uint64_t x) nogil
    int aiotcp_empty_list(object op, Py_ssize_t keep) except -1
    object aiotcp_datagram(Py_ssize_t size)
    Py_ssize_t aiotcp_ring_reused


#: the slots a connection's own per-segment lists (RACK's records, the
#: receive buffer's chunks) keep when emptied: an idle connection holds no more
KEEP_IDLE = 8


cpdef int empty_list(list items, Py_ssize_t keep=256) except -1:
    """``items.clear()``, keeping the list's storage for what is appended
    next (up to ``keep`` slots; a larger one is freed as clear() frees it).
    For the lists the per-segment path fills and empties each time (a
    connection's own, which an idle connection would hold, keep few)."""
    if items is None:
        raise TypeError("empty_list() needs a list")
    return aiotcp_empty_list(items, keep)


# --- flags (byte 13) ---------------------------------------------------------
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

cdef enum:
    _HEADER_LEN = 20
    _MAX_OPTIONS = 40
    _PROTO_TCP = 6
    _PSH = 0x08
    _ACK = 0x10

cdef object _EMPTY = memoryview(b"")

_FLAG_LETTERS = ((CWR, "W"), (ECE, "E"), (URG, "U"), (ACK, "A"),
                 (PSH, "P"), (RST, "R"), (SYN, "S"), (FIN, "F"))


def flags_to_str(int flags):
    """Flags as letters in wire order, e.g. 0x12 -> 'SA' (SYN+ACK)."""
    order = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"),
             (URG, "U"), (ECE, "E"), (CWR, "W"))
    return "".join(letter for bit, letter in order if flags & bit) or "."


class MalformedSegment(ValueError):
    """A datagram that is not a valid segment under docs/wire-format.md.

    ``reason`` is one of ``"short"`` (under 20 bytes), ``"data_offset"``
    (below 5 or past the end), ``"option"`` (an option length below 2 or past
    the header) or ``"checksum"`` (see :class:`BadChecksum`).
    """

    def __init__(self, reason, detail=""):
        ValueError.__init__(self, f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class BadChecksum(MalformedSegment):
    """The docs/wire-format.md checksum did not verify."""

    def __init__(self, detail=""):
        MalformedSegment.__init__(self, "checksum", detail)


cdef uint32_t ones_sum(const uint8_t *p, Py_ssize_t n, uint32_t acc) noexcept nogil:
    return aiotcp_ones_sum(p, n, acc)


cdef inline uint32_t _header_sum(const uint8_t *p, Py_ssize_t n, Py_ssize_t total) noexcept nogil:
    """The sum of ``n`` bytes at ``p`` seeded with docs/wire-format.md's
    pseudo-header for a segment of ``total`` bytes (protocol 6 and the
    length; the addresses are not in it)."""
    return aiotcp_ones_sum(p, n, _PROTO_TCP + <uint32_t>(total & 0xFFFF))


cdef inline void _put_header(uint8_t *p, uint16_t src_port, uint16_t dst_port, uint32_t seq, uint32_t ack,
                             Py_ssize_t hlen, uint8_t flags, uint16_t window, uint16_t urgent) noexcept nogil:
    """The 20-byte fixed header at ``p`` (RFC 9293 section 3.1), the
    checksum 0, the data offset for ``hlen`` bytes of header."""
    aiotcp_wr16(p, src_port)
    aiotcp_wr16(p + 2, dst_port)
    aiotcp_wr32(p + 4, seq)
    aiotcp_wr32(p + 8, ack)
    p[12] = <uint8_t>((hlen // 4) << 4)
    p[13] = flags
    aiotcp_wr16(p + 14, window)
    aiotcp_wr16(p + 16, 0)
    aiotcp_wr16(p + 18, urgent)


cdef inline void _put_timestamps(uint8_t *o, bint sack_permitted, uint32_t ts_val, uint32_t ts_ecr) noexcept nogil:
    """The 12 bytes of the timestamp option as Linux lays them out: two
    NOPs (or SACK-permitted in their place), then kind 8."""
    if sack_permitted:
        o[0] = 4; o[1] = 2
    else:
        o[0] = 1; o[1] = 1
    o[2] = 8; o[3] = 10
    aiotcp_wr32(o + 4, ts_val); aiotcp_wr32(o + 8, ts_ecr)


cdef inline uint32_t _wire_sum(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """The ones' complement sum of a datagram with docs/wire-format.md's pseudo-header
    (zero addresses, protocol 6, the datagram's length): 0xFFFF for a
    datagram whose checksum is right; its complement is the checksum."""
    return _header_sum(p, n, n)


cdef int _checksum_of(data, uint32_t initial, bint vector) except -1:
    cdef Py_buffer view
    cdef uint32_t total
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    if vector:
        total = aiotcp_ones_sum(<const uint8_t *>view.buf, view.len, initial)
    else:
        total = aiotcp_ones_sum_scalar(<const uint8_t *>view.buf, view.len, initial)
    PyBuffer_Release(&view)
    return (~total) & 0xFFFF


def internet_checksum(data, uint32_t initial=0):
    """RFC 1071 checksum of ``data``: the 16-bit ones' complement of the ones'
    complement sum of its big-endian 16-bit words plus ``initial`` (for example
    a pseudo-header's sum).  ``data`` is any contiguous buffer."""
    return _checksum_of(data, initial, True)


def _checksum_scalar(data, uint32_t initial=0):
    """:func:`internet_checksum` without the vector path (for the tests)."""
    return _checksum_of(data, initial, False)


cdef enum:
    _SNDBUF_KEEP = 256 * 1024  # the largest storage a send buffer keeps for its next writes (more is freed)
    _SNDBUF_MIN = 2048         # the least storage a send buffer allocates
    _SNDBUF_REF = 2048         # a bytes object this long or longer is held by reference
    _SNDBUF_POOL = 32          # blocks of _SNDBUF_MIN kept for the process's send buffers
    _SNDBUF_SLOTS = 8          # a send buffer's first chunk array (the size pooled)

# the process's spare blocks of _SNDBUF_MIN bytes, and chunk arrays of 8
# slots (the first size): an emptied send buffer gives its own here and the
# next write of any buffer takes them (the GIL guards them: a send buffer
# is only touched holding it)
cdef void *_sndbuf_pool[_SNDBUF_POOL]
cdef int _sndbuf_pooled = 0
cdef void *_chunks_pool[_SNDBUF_POOL]
cdef int _chunks_pooled = 0


cdef inline void _pool_or_free(void **pool, int *pooled, void *block, bint fits) noexcept:
    """``block`` into ``pool`` if it ``fits`` (has the pool's size) and
    the pool has room, else freed."""
    if fits and pooled[0] < _SNDBUF_POOL:
        pool[pooled[0]] = block
        pooled[0] += 1
    else:
        free(block)


cdef class SendBuffer:
    """A connection's send buffer: bytes appended at the back, dropped from
    the front once acknowledged, read in place by :func:`encode_segment`.

    The bytes held are a sequence of chunks.  A ``bytes`` object of at
    least 2 KiB is held as it was written, by reference (it cannot change):
    the bytes are copied once, into the segments built from them, where a
    buffer of its own would copy them twice, the second time from memory
    long out of the cache (a bulk sender's megabytes).  Anything else
    (smaller writes, a bytearray, a memoryview) is copied into storage of
    the buffer's own, appended to its last chunk while there is room.
    Dropping the front only moves it, releasing the chunks it passes.  A
    block of its own that fills while it is the only chunk, with at least
    as many of its bytes dropped as held, has the bytes held moved down to
    its start: no byte moves more often than bytes were dropped, and small
    writes acknowledged as they go stay in one block.

    While it holds bytes, storage a dropped chunk frees is kept (the
    largest block, up to 256 KiB) for the chunks written next.  Emptied
    (:meth:`clear`, or everything dropped), it holds nothing, as a kernel
    socket whose data is all acknowledged: a block of 2 KiB and the first
    size of chunk array go to small pools of the process's (at most 32
    of each), from which the next write of any send buffer takes them, so
    that a ping-pong's writes still go where the last one went; anything
    else is freed.  A buffer view of it (``bytes(buf)``,
    ``memoryview(buf)``) is a read-only snapshot of the bytes held when it
    was taken: what is written or dropped after does not change it."""

    def __dealloc__(self):
        cdef Py_ssize_t k
        for k in range(self._head, self._head + self._count):
            self._release(&self._chunks[k])
        self._let_go()

    def __len__(self):
        return self._len

    def __sizeof__(self):
        cdef Py_ssize_t size = object.__sizeof__(self) + self._slots * sizeof(_Chunk) + self._spare_cap
        cdef Py_ssize_t k
        for k in range(self._head, self._head + self._count):
            size += self._chunks[k].cap
        return size

    cdef void _release(self, _Chunk *c) noexcept:
        """Let a chunk go: a reference released; storage of our own kept as
        the spare (the larger of the two, up to _SNDBUF_KEEP) or freed."""
        if c.obj != NULL:
            Py_DECREF(<object>c.obj)
            c.obj = NULL
        elif c.cap:
            if c.cap <= _SNDBUF_KEEP and c.cap > self._spare_cap:
                free(self._spare)
                self._spare = c.data
                self._spare_cap = c.cap
            else:
                free(c.data)
        c.data = NULL
        c.cap = 0

    cdef void _let_go(self) noexcept:
        """Hold nothing (the chunks already released): the chunk array and
        the spare block pooled if they have the pools' sizes (_SNDBUF_SLOTS,
        _SNDBUF_MIN bytes) and the pools room, else freed."""
        if self._chunks != NULL:
            _pool_or_free(_chunks_pool, &_chunks_pooled, self._chunks, self._slots == _SNDBUF_SLOTS)
            self._chunks = NULL
            self._slots = 0
        if self._spare != NULL:
            _pool_or_free(_sndbuf_pool, &_sndbuf_pooled, self._spare, self._spare_cap == _SNDBUF_MIN)
            self._spare = NULL
            self._spare_cap = 0

    cdef inline Py_ssize_t _find(self, Py_ssize_t offset) noexcept:
        """The index of the chunk holding byte ``offset`` from the front
        (the caller checked the range)."""
        cdef int64_t at = self._front + offset
        cdef Py_ssize_t lo = self._head, hi = self._head + self._count - 1, mid
        cdef Py_ssize_t k = self._cursor
        if self._chunks[hi].start <= at:  # most often: new data, in the last chunk
            return hi
        # next most often: segments read in order from older chunks, the one
        # found last time or the next (only a chunk that holds ``at`` is
        # taken: the index may be stale after a drop or a move)
        if lo <= k < hi and self._chunks[k].start <= at:
            if at >= self._chunks[k + 1].start:
                k += 1
            if at < self._chunks[k].start + self._chunks[k].len:
                self._cursor = k
                return k
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if self._chunks[mid].start <= at:
                lo = mid
            else:
                hi = mid - 1
        self._cursor = lo
        return lo

    cdef void copy_out(self, uint8_t *dst, Py_ssize_t offset, Py_ssize_t n) noexcept:
        """Copy the ``n`` bytes held from ``offset`` on to ``dst`` (the
        caller checked the range)."""
        self._copy(dst, offset, n, False)

    cdef uint32_t copy_out_sum(self, uint8_t *dst, Py_ssize_t offset, Py_ssize_t n) noexcept:
        """copy_out, returning the ones' complement sum of the bytes copied
        (aiotcp_ones_sum of them, acc 0), taken as they are copied."""
        return self._copy(dst, offset, n, True)

    cdef inline uint32_t _copy(self, uint8_t *dst, Py_ssize_t offset, Py_ssize_t n, bint summed) noexcept:
        """copy_out, a chunk at a time; ``summed``: also their sum, each
        piece that starts at an odd offset of the whole byte-swapped."""
        cdef Py_ssize_t k, skip, take, done = 0
        cdef uint32_t total = 0
        cdef _Chunk *c
        if n <= 0:
            return 0
        k = self._find(offset)
        skip = <Py_ssize_t>(self._front + offset - self._chunks[k].start)
        while n > 0:
            c = &self._chunks[k]
            take = c.len - skip
            if take > n:
                take = n
            if summed:
                total = aiotcp_sum_add(total, aiotcp_copy_sum(dst + done, <const uint8_t *>c.data + skip, take),
                                       done & 1)
            else:
                memcpy(dst + done, c.data + skip, take)
            done += take
            n -= take
            skip = 0
            k += 1
        return total

    cdef _Chunk *_new_chunk(self) except NULL:
        """Room for one more chunk at the back of the array."""
        global _chunks_pooled
        cdef _Chunk *chunks
        cdef Py_ssize_t slots
        if self._head + self._count == self._slots:
            if self._head > 0:  # the dropped front's slots: move the chunks down
                memmove(self._chunks, self._chunks + self._head, self._count * sizeof(_Chunk))
                self._head = 0
            elif self._slots == 0 and _chunks_pooled:
                _chunks_pooled -= 1
                self._chunks = <_Chunk *>_chunks_pool[_chunks_pooled]
                self._slots = _SNDBUF_SLOTS
            else:
                slots = 2 * self._slots if self._slots else _SNDBUF_SLOTS
                chunks = <_Chunk *>realloc(self._chunks, slots * sizeof(_Chunk))
                if chunks == NULL:
                    raise MemoryError()
                self._chunks = chunks
                self._slots = slots
        self._count += 1
        return &self._chunks[self._head + self._count - 1]

    cpdef int extend(self, object data) except -1:
        """Append the bytes of ``data`` (any contiguous buffer)."""
        global _sndbuf_pooled
        cdef Py_buffer view
        cdef const uint8_t *src
        cdef Py_ssize_t n, room, cap, dead
        cdef bint viewed
        cdef _Chunk *c
        if data is self:
            data = bytes(self)
        if PyBytes_CheckExact(data) and PyBytes_GET_SIZE(data) >= _SNDBUF_REF:
            n = PyBytes_GET_SIZE(data)
            c = self._new_chunk()
            Py_INCREF(data)
            c.obj = <PyObject *>data
            c.data = PyBytes_AS_STRING(data)
            c.len = n
            c.cap = 0
            c.start = self._front + self._len
            self._len += n
            return 0
        viewed = _borrow(data, &view, &src, &n)
        try:
            if n <= 0:
                return 0
            if self._count:  # the room left in the last chunk, if it is our own
                c = &self._chunks[self._head + self._count - 1]
                if c.obj == NULL and c.cap - c.len < n and self._count == 1:
                    # full, and the only chunk: if as many of its bytes were
                    # dropped as it still holds, those move down to its
                    # start (no byte moves more often than bytes were
                    # dropped), so that small writes acknowledged as they
                    # go stay in one block
                    dead = <Py_ssize_t>(self._front - c.start)
                    if dead > 0 and dead >= c.len - dead:
                        memmove(c.data, c.data + dead, c.len - dead)
                        c.len -= dead
                        c.start = self._front
                room = c.cap - c.len if c.obj == NULL else 0
                if room > 0:
                    if room > n:
                        room = n
                    memcpy(c.data + c.len, src, room)
                    c.len += room
                    src += room
                    n -= room
                    self._len += room
            if n > 0:
                # at least _SNDBUF_MIN, and more as more is held (up to 64 KiB a chunk)
                cap = self._len if self._len < 65536 else 65536
                if cap < _SNDBUF_MIN:
                    cap = _SNDBUF_MIN
                if cap < n:
                    cap = n
                c = self._new_chunk()
                c.obj = NULL
                if self._spare != NULL and self._spare_cap >= cap:
                    c.data = self._spare
                    c.cap = self._spare_cap
                    self._spare = NULL
                    self._spare_cap = 0
                elif cap == _SNDBUF_MIN and _sndbuf_pooled:
                    _sndbuf_pooled -= 1
                    c.data = <char *>_sndbuf_pool[_sndbuf_pooled]
                    c.cap = cap
                else:
                    c.data = <char *>malloc(cap)
                    if c.data == NULL:
                        self._count -= 1
                        raise MemoryError()
                    c.cap = cap
                memcpy(c.data, src, n)
                c.len = n
                c.start = self._front + self._len
                self._len += n
        finally:
            if viewed:
                PyBuffer_Release(&view)
        return 0

    def __iadd__(self, data):
        self.extend(data)
        return self

    cpdef int drop(self, Py_ssize_t n) except -1:
        """Drop the first ``n`` bytes (all of them if ``n`` is as many or
        more)."""
        cdef _Chunk *c
        if n < 0:
            raise ValueError("negative count")
        if n >= self._len:
            self.clear()
            return 0
        self._front += n
        self._len -= n
        while True:
            c = &self._chunks[self._head]
            if c.start + c.len > self._front:
                break
            self._release(c)
            self._head += 1
            self._count -= 1
        return 0

    cpdef int clear(self) except -1:
        """Drop everything, and hold no storage (a block of 2 KiB goes to
        the process's pool for the next small write)."""
        cdef Py_ssize_t k
        for k in range(self._head, self._head + self._count):
            self._release(&self._chunks[k])
        self._head = self._count = 0
        self._front += self._len
        self._len = 0
        self._let_go()
        return 0

    def __delitem__(self, key):
        """``del buf[:n]`` drops the first n bytes; nothing else is allowed."""
        if type(key) is not slice or key.step not in (None, 1) or key.start not in (None, 0):
            raise TypeError("a send buffer drops bytes from its front only: del buf[:n]")
        stop = len(self) if key.stop is None else key.stop
        if stop < 0:
            stop = max(len(self) + stop, 0)
        self.drop(stop)

    def __getitem__(self, key):
        """An index gives an int, a slice (step 1) a copy as bytes."""
        cdef Py_ssize_t size = self._len
        cdef Py_ssize_t i, lo, hi, step, k
        cdef bytes out
        if type(key) is slice:
            lo, hi, step = key.indices(size)
            if step != 1:
                raise ValueError("slices of a send buffer have step 1")
            if hi < lo:
                hi = lo
            out = PyBytes_FromStringAndSize(NULL, hi - lo)
            self.copy_out(<uint8_t *>PyBytes_AS_STRING(out), lo, hi - lo)
            return out
        i = key
        if i < 0:
            i += size
        if i < 0 or i >= size:
            raise IndexError("send buffer index out of range")
        k = self._find(i)
        return (<const uint8_t *>self._chunks[k].data)[self._front + i - self._chunks[k].start]

    def __getbuffer__(self, Py_buffer *view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("a send buffer is read-only")
        snapshot = self[:]
        PyBuffer_FillInfo(view, self, PyBytes_AS_STRING(snapshot), self._len, 1, flags)
        Py_INCREF(snapshot)  # released with the view (__releasebuffer__)
        view.internal = <void *>snapshot

    def __releasebuffer__(self, Py_buffer *view):
        if view.internal != NULL:
            Py_DECREF(<object>view.internal)
            view.internal = NULL


cdef inline int _borrow(object data, Py_buffer *view, const uint8_t **src, Py_ssize_t *n) except -1:
    """Point ``src`` and ``n`` at the bytes of ``data``: bytes and bytearray
    in place, anything else through the buffer protocol into
    ``view``.  Returns 1 when ``view`` must be released.  The caller runs no
    Python code while it reads, so the storage cannot move."""
    if type(data) is bytearray:
        src[0] = <const uint8_t *>PyByteArray_AS_STRING(data)
        n[0] = PyByteArray_GET_SIZE(data)
        return 0
    if type(data) is bytes:
        src[0] = <const uint8_t *>PyBytes_AS_STRING(data)
        n[0] = PyBytes_GET_SIZE(data)
        return 0
    PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    src[0] = <const uint8_t *>view.buf
    n[0] = view.len
    return 1


def datagrams_reused():
    """How many datagrams :func:`encode` built in a bytes object of the
    datagram ring that had been dropped (for the tests)."""
    return aiotcp_ring_reused


def checksum_simd():
    """The vector path the checksum takes here: ``"avx2"`` or ``None``."""
    return "avx2" if aiotcp_use_avx2() else None


# --- keyed hashing: SipHash-2-4 -----------------------------------------------

cdef inline uint64_t _rotl(uint64_t x, int b) noexcept nogil:
    return (x << b) | (x >> (64 - b))


cdef inline uint64_t _le64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | p[i]
    return v


cdef inline void _sip_rounds(uint64_t *v, int rounds) noexcept nogil:
    cdef int r
    for r in range(rounds):
        v[0] += v[1]; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
        v[2] += v[3]; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
        v[0] += v[3]; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
        v[2] += v[1]; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)


cdef uint64_t siphash24(const uint8_t *key, const uint8_t *m, Py_ssize_t n) noexcept nogil:
    """SipHash-2-4 (Aumasson and Bernstein, 2012) of ``n`` bytes at ``m``
    under a 16-byte ``key``: the keyed PRF Linux draws its ISNs from
    (secure_tcp_seq)."""
    cdef uint64_t k0 = _le64(key), k1 = _le64(key + 8), w
    cdef uint64_t v[4]
    cdef Py_ssize_t whole = n - n % 8, off, i
    v[0] = k0 ^ 0x736f6d6570736575ULL
    v[1] = k1 ^ 0x646f72616e646f6dULL
    v[2] = k0 ^ 0x6c7967656e657261ULL
    v[3] = k1 ^ 0x7465646279746573ULL
    for off in range(0, whole, 8):
        w = _le64(m + off)
        v[3] ^= w
        _sip_rounds(v, 2)
        v[0] ^= w
    w = (<uint64_t>n) << 56  # the last word: the length's low byte, then what is left
    for i in range(n - whole):
        w |= (<uint64_t>m[whole + i]) << (8 * i)
    v[3] ^= w
    _sip_rounds(v, 2)
    v[0] ^= w
    v[2] ^= 0xff
    _sip_rounds(v, 4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


cdef inline const uint8_t *_sip_key(bytes key) except NULL:
    """The 16 bytes of a SipHash key (ValueError for another length)."""
    if len(key) != 16:
        raise ValueError("SipHash takes a 16-byte key")
    return <const uint8_t *>PyBytes_AS_STRING(key)


def siphash(bytes key, data) -> int:
    """SipHash-2-4 of ``data`` (a bytes-like object) under the 16-byte
    ``key``, as an int (the 64-bit output read little-endian)."""
    cdef Py_buffer view
    cdef const uint8_t *secret = _sip_key(key)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return siphash24(secret, <const uint8_t *>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


cpdef long long isn_hash(bytes key, object remote_addr, long long local_port, long long remote_port) except -1:
    """32 bits of SipHash-2-4 under the 16-byte ``key`` of a connection's
    identity: the two TCP ports (2 bytes each, big-endian), then each
    field of the UDP address tuple -- a str as its UTF-8 length (2 bytes)
    and bytes, an int as 8 bytes little-endian -- or, for an address of
    another shape, a 0xFF byte and its ``repr`` in UTF-8."""
    cdef uint8_t buf[4 + 4 * (2 + 255)]
    cdef Py_ssize_t n = 4, k, size
    cdef const char *text
    cdef long long v
    cdef bint plain
    cdef const uint8_t *secret = _sip_key(key)
    aiotcp_wr16(buf, <uint16_t>local_port)
    aiotcp_wr16(buf + 2, <uint16_t>remote_port)
    plain = type(remote_addr) is tuple and len(<tuple>remote_addr) <= 4
    if plain:
        for item in <tuple>remote_addr:
            if type(item) is str:
                text = PyUnicode_AsUTF8AndSize(item, &size)
                if size > 255:
                    plain = False
                    break
                aiotcp_wr16(buf + n, <uint16_t>size)
                memcpy(buf + n + 2, text, size)
                n += 2 + size
            elif type(item) is int and -(1 << 62) <= item < (1 << 62):
                v = item
                for k in range(8):
                    buf[n + k] = <uint8_t>((<uint64_t>v) >> (8 * k))
                n += 8
            else:
                plain = False
                break
    if not plain:
        message = bytes(buf[:4]) + b"\xff" + repr(remote_addr).encode()
        return siphash24(secret, <const uint8_t *>PyBytes_AS_STRING(message), len(message)) & 0xFFFFFFFF
    return siphash24(secret, buf, n) & 0xFFFFFFFF


@cython.freelist(16)
cdef class Segment:
    """A decoded segment.  Options that are absent read as ``mss == -1``,
    ``wscale == -1``, ``sack_permitted == False``, ``sack_blocks == ()`` and
    ``has_ts == False``.  ``payload`` is a memoryview into the buffer given to
    :func:`decode`."""

    @property
    def flags_str(self):
        return flags_to_str(self.flags)

    @property
    def seg_len(self):
        """SEG.LEN of RFC 9293: data length plus one for SYN and one for FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self):
        parts = [f"{self.src_port}>{self.dst_port}", f"[{self.flags_str}]",
                 f"seq={self.seq}", f"ack={self.ack}", f"win={self.window}",
                 f"len={len(self.payload)}"]
        if self.mss >= 0:
            parts.append(f"mss={self.mss}")
        if self.wscale >= 0:
            parts.append(f"wscale={self.wscale}")
        if self.sack_permitted:
            parts.append("sackOK")
        if self.sack_blocks:
            parts.append(f"sack={list(self.sack_blocks)}")
        if self.has_ts:
            parts.append(f"ts={self.ts_val},{self.ts_ecr}")
        return "Segment(" + " ".join(parts) + ")"


cdef inline Segment _parse(const uint8_t *p, Py_ssize_t n, object data, bint verify):
    cdef Segment seg
    cdef int doff, i, end, kind, olen, nblocks, b
    cdef list blocks
    if n < _HEADER_LEN:
        raise MalformedSegment("short", f"{n} bytes")
    doff = p[12] >> 4
    if doff < 5 or doff * 4 > n:
        raise MalformedSegment("data_offset", f"offset {doff} in {n} bytes")
    if verify and _wire_sum(p, n) != 0xFFFF:
        raise BadChecksum()
    seg = Segment.__new__(Segment)
    seg.src_port = aiotcp_rd16(p)
    seg.dst_port = aiotcp_rd16(p + 2)
    seg.seq = aiotcp_rd32(p + 4)
    seg.ack = aiotcp_rd32(p + 8)
    seg.data_offset = doff
    seg.flags = p[13]
    seg.window = aiotcp_rd16(p + 14)
    seg.checksum = aiotcp_rd16(p + 16)
    seg.urgent = aiotcp_rd16(p + 18)
    seg.mss = -1
    seg.wscale = -1
    seg.sack_blocks = ()
    seg.segs = 1
    end = doff * 4
    i = _HEADER_LEN
    while i < end:
        kind = p[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            raise MalformedSegment("option", f"kind {kind} has no length byte")
        olen = p[i + 1]
        if olen < 2 or i + olen > end:
            raise MalformedSegment("option", f"kind {kind} length {olen}")
        if kind == 2 and olen == 4:
            seg.mss = aiotcp_rd16(p + i + 2)
        elif kind == 3 and olen == 3:
            seg.wscale = p[i + 2]
        elif kind == 4 and olen == 2:
            seg.sack_permitted = True
        elif kind == 5 and olen >= 10 and (olen - 2) % 8 == 0:
            nblocks = (olen - 2) // 8
            blocks = []
            for b in range(nblocks):
                blocks.append((aiotcp_rd32(p + i + 2 + 8 * b), aiotcp_rd32(p + i + 6 + 8 * b)))
            seg.sack_blocks = tuple(blocks)
        elif kind == 8 and olen == 10:
            seg.has_ts = True
            seg.ts_val = aiotcp_rd32(p + i + 2)
            seg.ts_ecr = aiotcp_rd32(p + i + 6)
        i += olen
    if end == n:
        seg.payload = _EMPTY
    elif data is None:  # a buffer about to be reused: copy the payload
        seg.payload = PyBytes_FromStringAndSize(<const char *>p + end, n - end)
    elif isinstance(data, memoryview):
        seg.payload = data[end:]
    else:
        seg.payload = memoryview(data)[end:]
    return seg


cpdef Segment decode(data, bint verify=True):
    """Decode one datagram into a :class:`Segment`.

    Raises :class:`MalformedSegment` (or its subclass :class:`BadChecksum`)
    for anything docs/wire-format.md calls malformed, and nothing else for any input
    that supports the buffer protocol.  The payload is a view of ``data``.
    """
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return _parse(<const uint8_t *>view.buf, view.len, data, verify)
    finally:
        PyBuffer_Release(&view)


cdef class DatagramSink:
    """A receiver of datagrams (the core endpoint's base class).

    Python callers use :meth:`receive_datagram`.  C callers that read into a
    buffer of their own (aiotcp._dgram) use ``take``, which decodes in place
    (the payload is copied, as the buffer is about to be reused) and calls
    :meth:`receive_segment` directly.  Whatever ``take`` would not decode
    cleanly (a malformed segment, or a tracer that wants the datagram) goes
    through :meth:`receive_datagram` instead, so that it is counted and seen
    exactly as before."""

    cpdef bint defer_ack(self, object conn) except -1:
        """Hold ``conn``'s owed ACK, or what its woken writer may add to,
        until the receive batch open now ends (the endpoint's end_batch
        calls its send_deferred_ack); False when no batch is open."""
        if self._batch is None:
            return False
        self._batch.append(conn)
        return True

    cpdef receive_datagram(self, data, addr, double now):
        raise NotImplementedError

    cpdef receive_segment(self, Segment seg, addr, double now):
        raise NotImplementedError

    cdef int take(self, const uint8_t *p, Py_ssize_t n, object addr, double now) except -1:
        cdef Segment seg
        if self.tracer is None:
            try:
                seg = _parse(p, n, None, True)
            except MalformedSegment:
                pass  # receive_datagram counts it
            else:
                self.receive_segment(seg, addr, now)
                return 0
        self.receive_datagram(PyMemoryView_FromMemory(<char *>p, n, PyBUF_READ), addr, now)
        return 0

    cdef Py_ssize_t take_run(self, const uint8_t *p, Py_ssize_t n, Py_ssize_t size,
                             object addr, double now) except -1:
        cdef Py_ssize_t off = 0, count = 0, dlen, hlen, nxt, nlen, total, parts, k, plen, good
        cdef const uint8_t *first
        cdef const uint8_t *q
        cdef const uint8_t *last
        cdef Segment seg
        cdef bytes payload
        cdef char *dst
        while off < n:
            first = p + off
            dlen = size if n - off > size else n - off
            parts = 1
            nxt = off + dlen
            # PSH ends a run: a first segment with it has nothing to join
            if not (nxt < n and self.coalesce and self.tracer is None and not first[13] & _PSH
                    and _joinable(first, dlen)):
                self.take(first, dlen, addr, now)
                count += 1
                off = nxt
                continue
            hlen = (first[12] >> 4) * 4
            total = dlen - hlen
            while nxt < n:
                nlen = size if n - nxt > size else n - nxt
                q = p + nxt
                if not _joins(first, hlen, total, q, nlen):
                    break
                parts += 1
                total += nlen - hlen
                nxt += nlen
                if q[13] & _PSH:
                    break
            if parts == 1:  # nothing joined it: take() checks its sum
                self.take(first, dlen, addr, now)
                count += 1
                off = nxt
                continue
            # each payload summed as it is copied (read once), each datagram
            # checked with its header's sum: the run ends before a bad one,
            # which take() then counts
            payload = PyBytes_FromStringAndSize(NULL, total)
            dst = PyBytes_AS_STRING(payload)
            k = off
            good = 0
            last = first
            while k < nxt:
                dlen = size if nxt - k > size else nxt - k
                plen = dlen - hlen
                if aiotcp_sum_add(_header_sum(p + k, hlen, dlen),
                                  aiotcp_copy_sum(<uint8_t *>dst, p + k + hlen, plen), 0) != 0xFFFF:
                    break
                last = p + k
                dst += plen
                good += 1
                k += dlen
            if good == 0:
                self.take(first, size, addr, now)
                count += 1
                off += size
                continue
            if good < parts:  # a bad sum cut the run (rare): its good part alone
                payload = payload[:dst - PyBytes_AS_STRING(payload)]
            seg = _parse(first, hlen, None, False)  # the header
            seg.payload = payload
            seg.flags = first[13] | (last[13] & _PSH)
            seg.segs = <int>good
            self.segments_coalesced += good - 1
            self.receive_segment(seg, addr, now)
            count += good
            off = k
        return count

    def receive_run(self, data, Py_ssize_t size, addr, double now):
        """Take ``data``, datagrams of ``size`` bytes back to back (the last
        may be shorter) as one UDP GRO read brings them, from Python (the
        tests).  Returns the number of datagrams."""
        cdef Py_buffer view
        if size <= 0:
            raise ValueError("size must be positive")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self.take_run(<const uint8_t *>view.buf, view.len, size, addr, now)
        finally:
            PyBuffer_Release(&view)


cdef inline bint _joinable(const uint8_t *p, Py_ssize_t n) noexcept:
    """A datagram that may start a coalesced run: a data segment with ACK
    (and PSH) only among its flags, and no options but the timestamps as
    Linux and aiotcp lay them out (NOP, NOP, TS) -- so no SYN option, no
    SACK block.  Linux's TCP GRO asks as much (tcp_gro_receive).  Its
    checksum is checked as its payload is copied (take_run)."""
    cdef int doff
    if n <= _HEADER_LEN:
        return False
    doff = p[12] >> 4
    if doff * 4 >= n or (p[13] & ~_PSH) != _ACK:
        return False
    return doff == 5 or (doff == 8 and p[20] == 1 and p[21] == 1 and p[22] == 8 and p[23] == 10)


cdef inline bint _joins(const uint8_t *first, Py_ssize_t hlen, Py_ssize_t total,
                        const uint8_t *q, Py_ssize_t n) noexcept:
    """Whether the datagram ``q`` continues the run that ``first`` starts
    and that carries ``total`` bytes so far: the same ports, ACK, window and
    options (the same timestamps too), flags ACK (and PSH), its sequence
    number right after the run's data, and some data of its own (its
    checksum is checked as its payload is copied: take_run)."""
    if n <= hlen or (q[12] >> 4) * 4 != hlen or (q[13] & ~_PSH) != _ACK:
        return False
    if memcmp(first, q, 4) != 0 or memcmp(first + 8, q + 8, 4) != 0 or memcmp(first + 14, q + 14, 2) != 0:
        return False
    if hlen > _HEADER_LEN and memcmp(first + _HEADER_LEN, q + _HEADER_LEN, hlen - _HEADER_LEN) != 0:
        return False
    return aiotcp_rd32(q + 4) == <uint32_t>(aiotcp_rd32(first + 4) + <uint32_t>total)


def encode(uint16_t src_port, uint16_t dst_port, uint32_t seq, uint32_t ack,
           uint8_t flags, uint16_t window, payload=b"", int mss=-1,
           int wscale=-1, bint sack_permitted=False, sack_blocks=None,
           ts=None, uint16_t urgent=0):
    """Build one datagram with the docs/wire-format.md checksum filled in.

    ``ts`` is ``(ts_val, ts_ecr)`` or None; ``sack_blocks`` a sequence of
    ``(left, right)`` pairs.  Options are laid out as Linux lays them out
    (MSS, SACK-permitted/timestamps, window scale, SACK), NOP-padded to 4
    bytes.  Raises ValueError if the options do not fit in 40 bytes.
    """
    if ts is None:
        return encode_segment(src_port, dst_port, seq, ack, flags, window, payload, 0, -1,
                              mss, wscale, sack_permitted, sack_blocks, False, 0, 0, urgent)
    return encode_segment(src_port, dst_port, seq, ack, flags, window, payload, 0, -1,
                          mss, wscale, sack_permitted, sack_blocks, True, ts[0], ts[1], urgent)


cpdef bytes encode_segment(uint16_t src_port, uint16_t dst_port, uint32_t seq, uint32_t ack,
                           uint8_t flags, uint16_t window, object payload, Py_ssize_t offset,
                           Py_ssize_t length, int mss, int wscale, bint sack_permitted,
                           object sack_blocks, bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           uint16_t urgent):
    """:func:`encode` with every argument explicit, for C callers: the
    payload is ``payload[offset:offset + length]`` (``length`` -1: to the
    end) without a copy of the slice, the timestamp option present when
    ``has_ts``."""
    cdef int optlen = 0, nblocks = 0, i
    cdef Py_ssize_t plen = 0, total
    cdef uint32_t hsum
    cdef Py_buffer pview
    cdef const uint8_t *src
    cdef bint viewed
    cdef SendBuffer sndbuf
    cdef uint8_t *p
    cdef uint8_t *o
    if mss >= 0:
        if mss > 0xFFFF:
            raise ValueError("mss out of range")
        optlen += 4
    if has_ts:
        optlen += 12              # SACK-permitted rides in the two NOPs
    elif sack_permitted:
        optlen += 4
    if wscale >= 0:
        if wscale > 255:
            raise ValueError("wscale out of range")
        optlen += 4
    if sack_blocks:
        nblocks = len(sack_blocks)
        optlen += 4 + 8 * nblocks
    if optlen > _MAX_OPTIONS:
        raise ValueError(f"options need {optlen} bytes, more than 40")
    sndbuf = None
    if type(payload) is SendBuffer:  # copied out of its chunks below
        sndbuf = <SendBuffer>payload
        viewed = False
        src = NULL
        plen = sndbuf._len
    else:
        viewed = _borrow(payload, &pview, &src, &plen)  # nothing below runs Python code
    try:
        if offset < 0 or offset > plen:
            raise ValueError("payload offset out of range")
        plen -= offset
        if 0 <= length < plen:
            plen = length
        total = _HEADER_LEN + optlen + plen
        out = aiotcp_datagram(total)
        p = <uint8_t *>PyBytes_AS_STRING(out)
        _put_header(p, src_port, dst_port, seq, ack, _HEADER_LEN + optlen, flags, window, urgent)
        o = p + _HEADER_LEN
        if mss >= 0:
            o[0] = 2; o[1] = 4; aiotcp_wr16(o + 2, <uint16_t>mss); o += 4
        if has_ts:
            _put_timestamps(o, sack_permitted, ts_val, ts_ecr)
            o += 12
        elif sack_permitted:
            o[0] = 1; o[1] = 1; o[2] = 4; o[3] = 2; o += 4
        if wscale >= 0:
            o[0] = 1; o[1] = 3; o[2] = 3; o[3] = <uint8_t>wscale; o += 4
        if nblocks:
            o[0] = 1; o[1] = 1; o[2] = 5; o[3] = <uint8_t>(2 + 8 * nblocks); o += 4
            for i in range(nblocks):
                left, right = sack_blocks[i]
                aiotcp_wr32(o, <uint32_t>left); aiotcp_wr32(o + 4, <uint32_t>right); o += 8
        # the header's sum (with the pseudo-header), then the payload's,
        # taken as it is copied (the header's length is a multiple of 4)
        hsum = _header_sum(p, _HEADER_LEN + optlen, total)
        if plen:
            if sndbuf is not None:
                hsum = aiotcp_sum_add(hsum, sndbuf.copy_out_sum(o, offset, plen), 0)
            else:
                hsum = aiotcp_sum_add(hsum, aiotcp_copy_sum(o, src + offset, plen), 0)
        aiotcp_wr16(p + 16, (~hsum) & 0xFFFF)
        return out
    finally:
        if viewed:
            PyBuffer_Release(&pview)


cpdef int encode_run(list out, object to, uint16_t src_port, uint16_t dst_port, uint32_t seq, uint32_t ack,
                     uint16_t window, SendBuffer sndbuf, Py_ssize_t offset, Py_ssize_t size, Py_ssize_t count,
                     bint psh, bint has_ts, uint32_t ts_val, uint32_t ts_ecr, Py_ssize_t joined=0) except -1:
    """Append to ``out`` the ``count`` segments of ``size`` bytes that
    ``sndbuf`` holds from ``offset`` on, the first at ``seq``: the
    datagrams ``count`` calls of :func:`encode_segment` give (ACK, PSH on
    the last when ``psh``, the timestamp option when ``has_ts`` and no
    other), made from one header whose sum is taken once (each adds its
    sequence number's to it, then its payload's).  Each goes as
    ``(datagram, to)``; with ``joined`` (2 or more), up to that many in a
    row go as one run, ``(datagrams, to, datagram_size)``: their bytes back
    to back in one buffer, for a socket that sends a run in one call
    (aiotcp._dgram, UDP GSO)."""
    cdef uint8_t head[_HEADER_LEN + 12]
    cdef Py_ssize_t hlen = _HEADER_LEN + (12 if has_ts else 0)
    cdef Py_ssize_t total = hlen + size, i = 0, k, n
    cdef uint32_t base, hsum
    cdef uint8_t *p
    if count < 1 or size < 1 or offset < 0 or offset + count * size > sndbuf._len:
        raise ValueError("run outside the send buffer")
    _put_header(head, src_port, dst_port, 0, ack, hlen, _ACK, window, 0)
    if has_ts:
        _put_timestamps(head + _HEADER_LEN, False, ts_val, ts_ecr)
    base = _header_sum(head, hlen, total)
    while i < count:
        n = min(count - i, joined) if joined >= 2 else 1
        if n > 1:
            datagram = PyBytes_FromStringAndSize(NULL, n * total)
        else:
            datagram = aiotcp_datagram(total)
        p = <uint8_t *>PyBytes_AS_STRING(datagram)
        for k in range(n):
            memcpy(p, head, hlen)
            aiotcp_wr32(p + 4, seq)
            hsum = aiotcp_sum_add(aiotcp_sum_add(base, seq >> 16, 0), seq & 0xFFFF, 0)
            if psh and i + k == count - 1:
                p[13] = _ACK | _PSH
                hsum = aiotcp_sum_add(hsum, _PSH, 0)
            hsum = aiotcp_sum_add(hsum, sndbuf.copy_out_sum(p + hlen, offset + (i + k) * size, size), 0)
            aiotcp_wr16(p + 16, (~hsum) & 0xFFFF)
            p += total
            seq += <uint32_t>size
        out.append((datagram, to, total) if n > 1 else (datagram, to))
        i += n
    return 0


cpdef list cut_run(tuple run):
    """A run of the outbox, ``(datagrams, addr, size)``, cut back into its
    ``(datagram, addr)`` pairs: ``size`` bytes each, the last what is left."""
    data, addr, size = run
    data = bytes(data)
    return [(data[k:k + size], addr) for k in range(0, len(data), size)]


# --- timer wheel ---------------------------------------------------------------

cdef enum:
    _LEVELS = 8
    _BITS = 6
    _SLOTS = 64
    _MASK = 63


cdef class Timer:
    """A schedulable entry.  Create one per thing that needs a deadline and
    reschedule it freely; ``owner`` is yours."""

    def __cinit__(self, owner=None):
        self.owner = owner
        self._level = -1
        self.deadline = 0.0

    def __repr__(self):
        state = f"at {self.deadline!r}" if self._level >= 0 else "idle"
        return f"<Timer {state} owner={self.owner!r}>"


cdef class TimerWheel:
    """A hierarchical timer wheel (see the module docstring).

    ``tick`` is the granularity in seconds (default 1 ms).  Deadlines are in
    the same time base as ``now`` (for example ``loop.time()``)."""

    def __cinit__(self, double tick=0.001, double now=0.0):
        if not tick > 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._current = <int64_t>floor(now / tick)
        # a level's 64 list heads are made when a timer first goes there: an
        # endpoint with one connection uses two or three levels of the eight
        self._heads = [None] * _LEVELS
        memset(self._occupied, 0, sizeof(self._occupied))

    def __len__(self):
        return self._count

    cdef void _link(self, Timer t):
        cdef int64_t diff = t._expiry - self._current
        cdef int level = 0
        cdef int slot
        cdef Timer head
        cdef list row
        if diff < 0:
            t._expiry = self._current
            diff = 0
        while level < _LEVELS - 1 and diff >= (<int64_t>1 << (_BITS * (level + 1))):
            level += 1
        if level == _LEVELS - 1 and diff >= (<int64_t>1 << (_BITS * _LEVELS)):
            # beyond the wheel's span (thousands of years at 1 ms): park it at
            # the far edge; it is cascaded down again in due course.
            t._expiry = self._current + (<int64_t>1 << (_BITS * _LEVELS)) - 1
        slot = (t._expiry >> (_BITS * level)) & _MASK
        t._level = level
        t.scheduled = True
        self.changes += 1
        t._slot = slot
        row = <list>self._heads[level]
        if row is None:
            row = [None] * _SLOTS
            self._heads[level] = row
        head = row[slot]
        t._prev = None
        t._next = head
        if head is not None:
            head._prev = t
        row[slot] = t
        self._occupied[level] |= (<uint64_t>1) << slot

    cdef void _unlink(self, Timer t):
        if t._prev is not None:
            t._prev._next = t._next
        else:
            (<list>self._heads[t._level])[t._slot] = t._next
            if t._next is None:
                self._occupied[t._level] &= ~((<uint64_t>1) << t._slot)
        if t._next is not None:
            t._next._prev = t._prev
        t._prev = None
        t._next = None
        t._level = -1
        t.scheduled = False
        self.changes += 1

    cpdef schedule(self, Timer timer, double deadline):
        """Schedule ``timer`` at ``deadline``, moving it if already scheduled."""
        if timer._level >= 0:
            if timer._wheel is not self:
                raise ValueError("timer belongs to another wheel")
            self._unlink(timer)
        else:
            self._count += 1
            timer._wheel = self
        timer.deadline = deadline
        timer._expiry = <int64_t>ceil(deadline / self.tick)
        self._order += 1
        timer._order = self._order
        self._link(timer)

    cpdef cancel(self, Timer timer):
        """Unschedule ``timer``; a no-op if it is not scheduled."""
        if timer._level < 0:
            return
        if timer._wheel is not self:
            raise ValueError("timer belongs to another wheel")
        self._unlink(timer)
        timer._wheel = None
        self._count -= 1

    cdef void _cascade(self, int level):
        cdef int slot = (self._current >> (_BITS * level)) & _MASK
        cdef list row = self._heads[level]
        cdef Timer t = row[slot]
        cdef Timer nxt
        row[slot] = None
        self._occupied[level] &= ~((<uint64_t>1) << slot)
        while t is not None:
            nxt = t._next
            t._prev = None
            t._next = None
            self._link(t)
            t = nxt

    def expire(self, double now):
        """Remove and return, in deadline order, every timer whose deadline
        is <= ``now`` and whose tick has been reached."""
        cdef int64_t target = <int64_t>floor(now / self.tick)
        cdef list fired = []
        cdef list late = []
        cdef int level, top, s
        cdef int64_t nt
        cdef uint64_t bits
        cdef Timer t, nxt
        cdef list row
        self.changes += 1
        # tick k is reached when k * tick <= now, the same product that
        # next_deadline() returns, so waking at that time always makes progress
        while (target + 1) * self.tick <= now:
            target += 1
        while self._current <= target:
            if self._count == 0:
                self._current = target + 1
                break
            if (self._current & _MASK) == 0:
                top = 0
                while top < _LEVELS - 1 and (self._current & ((<int64_t>1 << (_BITS * (top + 1))) - 1)) == 0:
                    top += 1
                level = top
                while level >= 1:
                    if self._occupied[level]:
                        self._cascade(level)
                    level -= 1
            s = self._current & _MASK
            bits = self._occupied[0] >> s
            if bits == 0:
                # nothing left in this block at level 0: jump straight to the
                # next tick that has work (an expiry or a cascade)
                nt = self._next_tick()
                if nt <= self._current:
                    nt = self._current + 1
                self._current = min(nt, target + 1)
                continue
            if (bits & 1) == 0:
                self._current = min(self._current + aiotcp_ctz64(bits), target + 1)
                continue
            row = self._heads[0]
            t = row[s]
            row[s] = None
            self._occupied[0] &= ~((<uint64_t>1) << s)
            while t is not None:
                nxt = t._next
                t._prev = None
                t._next = None
                t._level = -1
                t.scheduled = False
                if t.deadline > now:
                    late.append(t)
                else:
                    t._wheel = None
                    self._count -= 1
                    fired.append(t)
                t = nxt
            self._current += 1
        for t in late:
            t._expiry = self._current
            self._link(t)
        if len(fired) > 1:
            fired.sort(key=_timer_key)
        return fired

    cpdef next_deadline(self):
        """The time of the earliest tick at which :meth:`expire` may have work,
        or None when nothing is scheduled.  Exact (the tick of the earliest
        deadline) for timers less than 64 ticks away; otherwise the start of
        the slot that holds them, where they are cascaded, so a caller that
        sleeps until then and calls :meth:`expire` never oversleeps."""
        if self._count == 0:
            return None
        return self._next_tick() * self.tick

    cpdef double next_deadline_at(self):
        """:meth:`next_deadline` as a C double: infinity when nothing is
        scheduled (no float object for callers in C)."""
        if self._count == 0:
            return INFINITY
        return self._next_tick() * self.tick

    cdef int64_t _next_tick(self):
        cdef int level, base_slot, rot
        cdef int64_t base, best = -1, cand
        cdef uint64_t bits, rotated
        for level in range(_LEVELS):
            bits = self._occupied[level]
            if bits == 0:
                continue
            base = self._current >> (_BITS * level)
            base_slot = base & _MASK
            if level == 0:
                rotated = (bits >> base_slot) | ((bits << (_SLOTS - base_slot)) if base_slot else 0)
                cand = base + aiotcp_ctz64(rotated)
            elif (bits >> base_slot) & 1 and (self._current & ((<int64_t>1 << (_BITS * level)) - 1)) == 0:
                # the current tick is this slot's boundary, not yet processed
                cand = self._current
            else:
                # entries of slot j at this level are cascaded when the current
                # tick reaches block base + ((j - base - 1) mod 64) + 1
                rot = (base_slot + 1) & _MASK
                rotated = (bits >> rot) | ((bits << (_SLOTS - rot)) if rot else 0)
                cand = (base + 1 + aiotcp_ctz64(rotated)) << (_BITS * level)
            if best < 0 or cand < best:
                best = cand
        return best


def _timer_key(Timer t):
    return (t.deadline, t._order)
