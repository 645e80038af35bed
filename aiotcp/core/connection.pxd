# C-level declarations that Cython applies to connection.py when it compiles
# it (an "augmenting" .pxd).  connection.py stays plain Python and runs as
# such when uncompiled; compiled, its Connection becomes a final extension
# type whose fields are C members, and the per-segment methods below become
# direct C calls with typed arguments and locals.
#
# Contract: sequence numbers, counters and window sizes are C long long
# (they never leave [0, 2**32) except transiently in arithmetic); times are
# C doubles; anything that may be None stays a Python object.  The methods
# are cpdef, so Python (the tests, the endpoint) still calls them.
#
# Exceptions: a cpdef method returning a C value declares how an error shows
# (``except -1`` for a bint, ``except? -1`` otherwise), here and in the other
# units' .pxd files, so its caller tests the value and asks Python for an
# error only on a match; undeclared, every call is followed by a
# PyErr_Occurred() call (a cpdef method may be overridden in Python).
# ranges.seq_offset is pure arithmetic: noexcept.  A long long value is
# written ``<long long>-1``: Cython 3.3 doubles the literal's LL suffix for
# a method of a final class.

cimport cython
from aiotcp._fast cimport DatagramSink, SendBuffer, Segment, Timer, TimerWheel, encode_run, encode_segment
from aiotcp.core.congestion cimport CongestionControl
from aiotcp.core.rack cimport Rack, Transmission, segments
from aiotcp.core.pmtu cimport PathSearch
from aiotcp.core.ranges cimport RangeSet
from aiotcp.core.recovery cimport Recovery
from aiotcp.core.receive cimport ReceiveBuffer
from aiotcp.core.rtt cimport RttEstimator

# 2**32, 2**32 - 1, 2**31: C constants, so that `x & MASK` is C arithmetic
# (not visible from Python: use seq_add and seq_diff)
cdef long long MOD, MASK, HALF
cdef double NEVER, NAT_STALL
# the flags (imported from _fast), as C constants
cdef int ACK, FIN, PSH, RST, SYN
# RACK's lost mark, and the recovery unit's actions, as C constants
cdef int _LOST, _SACKED, END, ENTER, INFLATE, PARTIAL, REPAIR, RESEND
cdef long long _QUICKACKS

cpdef long long seq_add(long long a, long long n)
@cython.locals(x=cython.ulonglong)
cpdef long long ts_offset(long long iss)
cpdef bint seq_lt(long long a, long long b)
cpdef bint seq_le(long long a, long long b)
cpdef bint seq_gt(long long a, long long b)
cpdef bint seq_ge(long long a, long long b)
@cython.locals(d=cython.longlong)
cpdef long long seq_diff(long long a, long long b)


cdef class Connection:
    # identity, wiring and life cycle
    cdef public object _config, stats, tracer, listener
    cdef public DatagramSink endpoint
    cdef public list out, events
    cdef public Timer timer
    cdef public TimerWheel wheel
    cdef public object state, error, time_wait, _soft_error
    cdef public bint _synchronized, _sending, _receiving
    cdef public long long local_port, remote_port
    cdef public object remote_addr
    cdef public bint half_open, passive, closed_by_user, discard_input, _closed_reported
    # copied from the (frozen) config by its setter, for the per-segment path
    cdef public long long _rcvbuf_size
    # buffer autotuning: the limits (0: fixed), the send buffer's size now,
    # and the receive side's measurement (_rcv_space_adjust)
    cdef public long long _rcvbuf_max, _sndbuf_max, send_buffer, _rcvq_space, _rcvq_seq
    cdef public double _rcvq_time, _rcv_rtt
    cdef public bint _nodelay, _ack_coalescing, _keepalive, _tlp, _ss_after_idle
    cdef public double _delayed_ack, _user_timeout, _timer_tick
    # send sequence space
    cdef public long long iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2
    cdef public long long max_snd_wnd, snd_wscale, local_mss, peer_mss, mss
    # path MTU (pmtu.py's search): the largest segment the path carries
    # now and at most; the probe due (its payload) and the one in flight
    cdef public PathSearch pmtu
    cdef public long long _seg_max, _seg_limit, _probe_len, _probe_seq, _probe_end, _probe_size
    cdef public SendBuffer _sndbuf
    cdef public long long _sndbuf_seq
    cdef public bint _fin_queued, _waking
    cdef public object fin_seq, low_water
    # receive sequence space
    cdef public long long irs, rcv_nxt, rcv_wscale, _rcv_adv
    cdef public ReceiveBuffer rcv_buffer
    cdef public object _ooo_fin
    cdef public bint fin_received, _readable_pending, _wscale_ok, _ack_queued
    cdef public long long _ack_pending, _last_ack_sent, _quickack
    # timestamps
    cdef public double _now, _ts_recent_stamp
    cdef public bint ts_ok
    cdef public long long ts_recent, _ts_offset
    # SACK, PRR
    cdef public bint sack_ok
    cdef public RangeSet scoreboard
    cdef public object _last_ooo_seq, _dsack
    cdef public double _last_send
    # timers and RTT
    cdef public RttEstimator rtt
    cdef public double _rtt_time, _last_invalid_ack, _challenge_count_window
    cdef public object _syn_sent_at
    cdef public long long _rtt_seq
    # deadlines, NEVER when the timer is not running
    cdef public double _rto_at, _persist_at, _delack_at, _orphan_at
    cdef public double _keepalive_at, _user_timeout_at, _pto_at, _reo_at, _nat_at, _last_out
    # pacing (the token bucket in _push) and the pacing timer
    cdef public bint _pacing
    cdef public double _pace_at, _pace_credit, _pace_stamp, _max_pacing_rate
    # delivery-rate estimation (rate.py), None unless the controller asks
    cdef public object rate
    cdef public long long _lost_seen
    cdef public double _nat_keepalive, _path_sent_at, _data_in_at, _nat_probed_at, _nat_quick
    cdef public long long _nat_stall_probes
    cdef public object _path_addr
    cdef public long long _path_ts, migrations, nat_keepalives
    cdef public bint punching
    cdef public long long retries, _persist_backoff, keepalive_probes
    cdef public long long _challenge_count
    # loss detection and recovery, congestion control
    cdef public Rack rack
    cdef public Recovery recovery
    cdef public CongestionControl cc
    # counters
    cdef public long long segments_sent, segments_received, bytes_sent, bytes_received
    cdef public long long bytes_acked, segments_retransmitted, bytes_retransmitted
    cdef public long long rto_count

    cpdef receive(self, Segment seg, double now)
    # the life cycle and the handshake's steps: direct C calls from the
    # methods that change state, not Python-level lookups and calls
    cpdef _set_state(self, new, double now)
    cpdef _clear_timers(self)
    cpdef _start_rate_samples(self, double now)
    cpdef _report_closed(self, error)
    cpdef _finish(self, double now, error)
    cpdef _send_syn(self, double now, bint ack)
    cpdef _ack_syn(self, Segment seg, double now)
    cpdef _set_peer_mss(self, long long mss)
    cpdef _size_segments(self)
    cpdef _start_nat_keepalive(self, double now)
    @cython.locals(pmtu=PathSearch)
    cpdef _pmtu_follow(self, double now)
    cpdef bint _may_probe(self, long long unsent, long long usable) except -1
    # the timers' operations (see the table in connection.py); they only
    # assign C doubles, so they cannot raise (noexcept: no error check per call)
    cdef void _start_rto(self, double now) noexcept
    cdef void _stop_rto(self) noexcept
    cdef void _start_persist(self, double now) noexcept
    cdef void _stop_persist(self) noexcept
    cdef void _stop_pto(self) noexcept
    cdef void _stop_reo(self) noexcept
    cdef void _start_delack(self, double now) noexcept
    cdef void _stop_delack(self) noexcept
    cdef void _start_user_timeout(self, double now) noexcept
    cdef void _stop_user_timeout(self) noexcept
    @cython.locals(best=cython.double)
    cpdef next_deadline(self)
    cpdef double _deadline(self) except? -1
    @cython.locals(timer=Timer, deadline=cython.double)
    cpdef _rearm(self)
    @cython.locals(free=cython.longlong, edge=cython.longlong, advance=cython.longlong,
                   window=cython.longlong)
    cpdef long long _window_field(self) except? <long long>-1
    @cython.locals(ms=cython.longlong)
    cpdef long long _ts_val(self) except? <long long>-1
    cpdef send(self, data, double now, bint push=*)
    cpdef push(self, double now)
    cpdef bytes read(self, long long limit=*)
    cpdef bytes read_chunk(self)
    cdef bytes _taken(self, bytes data)
    cpdef bint _owe_ack(self) except -1
    cpdef send_deferred_ack(self, double now=*)
    cpdef long long _data_end(self) except? <long long>-1
    @cython.locals(count=cython.longlong, run=cython.longlong, unsent=cython.longlong)
    cpdef long long _whole_runs(self, long long data_end) except? <long long>-1
    @cython.locals(free=cython.longlong, edge=cython.longlong)
    cpdef bint _window_update_due(self) except -1
    @cython.locals(copied_seq=cython.longlong, copied=cython.longlong, space=cython.longlong,
                   window=cython.longlong, rtt=cython.double, now=cython.double)
    cpdef _rcv_space_adjust(self)
    cpdef _rcv_rtt_sample(self, double rtt)
    cpdef _size_buffers(self, config)
    @cython.locals(size=cython.longlong)
    cpdef _send_buffer_expand(self)
    @cython.locals(pto=cython.double, deadline=cython.double)
    cpdef _arm_pto(self, double now)
    cpdef _heard_from_peer(self, double now)
    cpdef _on_fin(self, double now)
    @cython.locals(receive=ReceiveBuffer)
    cpdef _drain_ooo(self)
    @cython.locals(mss=cython.int, wscale=cython.int, sack_permitted=cython.bint, has_ts=cython.bint)
    cpdef _emit(self, int flags, long long seq, long long ack, payload=*, long long window=*,
                bint syn_options=*, Py_ssize_t offset=*, Py_ssize_t length=*, to=*)
    cpdef _send_ack(self)
    @cython.locals(start=cython.longlong, end=cython.longlong, new_data=cython.bint, flags=cython.int)
    cpdef _send_data(self, long long seq, long long length, bint fin, double now, long long window=*)
    cpdef _sent(self, long long seq, long long timed, long long end, long long length, double now)
    cpdef long long _run_datagrams(self) except -1
    @cython.locals(mss=cython.longlong, length=cython.longlong, start=cython.longlong, ack=cython.longlong,
                   has_ts=cython.bint, end=cython.longlong)
    cpdef _send_run(self, long long seq, long long count, double now, long long window)
    @cython.locals(data_end=cython.longlong, send_end=cython.longlong, snd_nxt=cython.longlong,
                   snd_max=cython.longlong, unsent=cython.longlong, flight=cython.longlong,
                   length=cython.longlong, window=cython.longlong, usable=cython.longlong,
                   rate=cython.double, credit=cython.double, quantum=cython.double,
                   advertised=cython.longlong, runs=cython.bint, mss=cython.longlong, count=cython.longlong)
    cpdef _push(self, double now)
    cpdef double _pacing_rate(self) except? -1
    cpdef _rtt_sample(self, double rtt, double now)
    @cython.locals(wnd=cython.longlong, rcv_nxt=cython.longlong)
    cpdef bint _acceptable(self, long long seq, long long seg_len) except -1
    @cython.locals(flags=cython.int, paylen=cython.longlong, seg_len=cython.longlong,
                   ack=cython.longlong, seq=cython.longlong)
    cpdef _receive_synchronized(self, Segment seg, double now)
    # the handshake's segments: typed, so that their fields are C reads
    cpdef accept_syn(self, Segment seg, double now)
    cpdef _take_peer_syn(self, Segment seg)
    @cython.locals(flags=cython.int)
    cpdef _receive_syn_sent(self, Segment seg, double now)
    cpdef bint _fin_acked(self) except -1
    cpdef _update_window(self, Segment seg, long long seq, long long ack)
    @cython.locals(snd_una=cython.longlong, sacked_before=cython.longlong, window_changed=cython.bint)
    cpdef bint _process_ack(self, Segment seg, long long seq, long long ack, long long paylen,
                            double now) except -1
    @cython.locals(acked=cython.longlong, flight_before=cython.longlong,
                   data_acked=cython.longlong, recovery=Recovery, action=cython.int)
    cpdef _on_new_ack(self, long long ack, double now)
    @cython.locals(rcv_nxt=cython.longlong, offset=cython.longlong, room=cython.longlong,
                   length=cython.longlong, fin=cython.bint, had_holes=cython.bint)
    cpdef _process_text_and_fin(self, Segment seg, long long seq, double now)
    @cython.locals(ts_ecr=cython.longlong)
    cpdef _rack_on_ack(self, Segment seg, long long ack, double now)
    @cython.locals(timeout=cython.double)
    cpdef _rack_detect(self, double now)
    cpdef _recover(self, int action, double now)
    @cython.locals(flight=cython.longlong, pipe=cython.longlong)
    cpdef _sack_recovery_send(self, double now)
    cpdef long long _pipe(self) except? <long long>-1
    @cython.locals(mss=cython.longlong, rack=Rack, records=list, i=cython.Py_ssize_t, record=Transmission,
                   length=cython.longlong)
    cpdef long long _resend_lost(self, long long pipe, double now) except? <long long>-1
