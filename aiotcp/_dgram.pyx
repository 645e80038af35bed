# cython: language_level=3, boundscheck=False, wraparound=False
"""Batched datagram I/O for the asyncio layer: one non-blocking UDP socket,
read until it is empty and written in runs, from C.

Theory of operation
-------------------
Every segment still travels in its own UDP datagram (docs/wire-format.md); what this
module saves is the per-datagram cost in Python and in system calls.

*Reading.*  :meth:`DatagramSocket.receive` calls ``recvmmsg`` until the
socket is empty (or a limit), and hands each datagram to a callback as
``callback(view, addr, now)``; sparse traffic offers one slot, with a plain
``recvmsg`` (see :meth:`DatagramSocket.receive`).  With UDP GRO (Linux 5.0
and later) the kernel may coalesce datagrams of one flow into one read; the
``UDP_GRO`` control message then gives their size, and the read is cut back
into the original datagrams (all of that size but the last).  ``view`` is a
memoryview of the socket's own buffer: valid only during the callback (the
core copies what it keeps).  The source address is built only when it
differs from the previous datagram's, as the same tuple Python's
``recvfrom`` returns.

*Writing.*  :meth:`DatagramSocket.send` sends a list of ``(bytes, addr)``
pairs.  With UDP GSO (Linux 4.18 and later), a run of datagrams to the same
address whose sizes are equal (the last may be shorter), up to 64 of them and
64 KiB, goes in one ``sendmsg`` carrying a ``UDP_SEGMENT`` control message; the
kernel splits it back into exactly those datagrams.  The buffers are gathered
with an iovec, not joined.  A datagram alone goes with ``send`` (``sendto``
on an unconnected socket), which has no message header to copy in, and so
does a short run of a segment size seen twice in a row: it is copied into
one buffer and cut by a socket-wide ``UDP_SEGMENT`` (see
:meth:`DatagramSocket.send`).  If the kernel refuses GSO, the socket falls
back to one datagram per call for good.  A run the core built already
joined, ``(datagrams, addr, size)`` (Endpoint.outbox), goes in one
``sendmsg`` as it is; without GSO it is cut back into its datagrams first.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact
from libc.errno cimport errno, EAGAIN, EINTR, EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP, EMSGSIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memcmp, memset

from aiotcp._fast cimport DatagramSink, cut_run, monotonic

import os as _os
import socket as _socket
import _socket as _c_socket

#: the C socket's own field: socket.socket's ``family`` property makes an
#: AddressFamily member on every read (about a microsecond)
_raw_family = _c_socket.socket.family.__get__


def socket_family(sock) -> int:
    """``sock.family`` as a plain int, without making the enum member."""
    try:
        return _raw_family(sock)
    except TypeError:  # not a socket.socket: whatever it says
        return int(sock.family)

cdef extern from "<netinet/in.h>":
    struct in_addr:
        uint32_t s_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)
    int IPPROTO_UDP

cdef extern from "<arpa/inet.h>":
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "<net/if.h>":
    char *if_indextoname(unsigned int ifindex, char *ifname)
    unsigned int if_nametoindex(const char *ifname)

cdef extern from *:
    """
    #include <netinet/udp.h>
    #ifndef UDP_SEGMENT
    #define UDP_SEGMENT 103
    #endif
    #ifndef UDP_GRO
    #define UDP_GRO 104
    #endif
    """
    int UDP_SEGMENT
    int UDP_GRO

cdef extern from "<sys/socket.h>":
    int setsockopt(int fd, int level, int name, const void *value, socklen_t size)

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ

cdef enum:
    _BUFFER = 65536           # the largest UDP payload, coalesced or not
    _MAX_SEGMENTS = 64        # UDP_MAX_SEGMENTS of older kernels
    _MAX_GSO_BYTES = 65507    # the largest IPv4 UDP payload
    _CONTROL = 64             # room for one UDP_GRO or UDP_SEGMENT message
    _MAX_SLOTS = 16           # datagrams (or GRO runs) per recvmmsg, at most
    _SPARSE_PROBE = 8         # after a lone datagram, wakeups per batched probe
    _SHORT_RUN = 8192         # a run up to this many bytes goes as one buffer (see send())
    _LONE_LIMIT = 64          # lone datagrams in a row that clear the socket's segment size

#: a run sent in one call with GSO: at most this many bytes and datagrams
MAX_RUN_BYTES = _MAX_GSO_BYTES
MAX_RUN_DATAGRAMS = _MAX_SEGMENTS


cdef Py_ssize_t _split_run(list datagrams, Py_ssize_t i) except -1:
    """Put the run at ``datagrams[i]``, ``(datagrams, addr, size)``, back as
    its datagrams one by one, ``(datagram, addr)`` each, in its place (a
    socket without segmentation offload, or a run the kernel refused);
    returns how many items the list gained."""
    parts = cut_run(datagrams[i])
    datagrams[i:i + 1] = parts
    return len(parts) - 1


cdef class DatagramSocket:
    """Batched, GSO/GRO-aware I/O on one non-blocking UDP socket (IPv4 or
    IPv6).  ``gso`` and ``gro`` ask for the kernel offloads; each is
    dropped quietly where the kernel lacks it (see the attributes of the same
    names for what is in use)."""

    def __cinit__(self, sock, bint gso=True, bint gro=True):
        self._sock = sock
        self._fd = sock.fileno()
        self._family = socket_family(sock)
        if self._family != AF_INET and self._family != AF_INET6:
            raise ValueError("an IPv4 or IPv6 socket is needed")
        self.slots = 2
        self._buf = <char *>malloc(<size_t>self.slots * _BUFFER)
        if self._buf == NULL:
            raise MemoryError()
        self.gso = gso
        self._sticky = gso
        if gro:
            try:
                sock.setsockopt(IPPROTO_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                self.gro = False

    def __dealloc__(self):
        free(self._buf)

    cpdef Py_ssize_t receive(self, callback, double now, object peer=None, int limit=512) except -1:
        """Read until the socket would block, or ``limit`` reads, and call
        ``callback(view, addr, now)`` for each datagram; a
        :class:`~aiotcp._fast.DatagramSink` instead takes each one from C,
        straight out of the buffer.  ``addr`` is ``peer``
        when given (a connected socket), else the source address.  Returns
        the number of datagrams.  A socket error (an ICMP error surfacing)
        is raised as OSError once the datagrams before it are delivered.
        The first read's datagrams carry ``now``; each later read's, the
        clock when it returned: in a long batch they arrived after it began,
        and the RTT and delivery-rate samples taken from them would
        otherwise come out short.

        Reads are batched with ``recvmmsg``: a call that fills fewer slots
        than it offered found the socket empty, so a lone datagram costs one
        system call, not a read and a read that would block.  The number of
        slots (64 KiB each) starts at two and doubles, up to 16, each time a
        call fills them all: memory grows only under load.

        Sparse traffic (a request and its answer, a ping-pong) finds one
        datagram per wakeup; offered two slots, the kernel then tries the
        socket a second time before it returns, which cost about 0.4 us a
        read here (a tenth of a ping-pong's system time).  So after a wakeup
        that found a lone datagram, the next ones offer a single slot and
        stop there (a level-triggered poll says if more waits), and every
        ``_SPARSE_PROBE``-th wakeup offers all the slots again: a stream
        that picks up is back to batched reads within a few wakeups."""
        cdef mmsghdr hdrs[_MAX_SLOTS]
        cdef iovec iov[_MAX_SLOTS]
        cdef sockaddr_storage sa[_MAX_SLOTS]
        cdef char control[_MAX_SLOTS][_CONTROL]
        cdef msghdr *msg
        cdef cmsghdr *cm
        cdef char *base
        cdef ssize_t n, off, size
        cdef int reads = 0, gso_size, err, got, i, vlen
        cdef Py_ssize_t count = 0
        cdef object when = now
        cdef object addr
        cdef DatagramSink sink = callback if isinstance(callback, DatagramSink) else None
        cdef bint single = self._sparse > 0
        if single:
            self._sparse -= 1
        while reads < limit:
            vlen = self.slots if self.slots < limit - reads else limit - reads
            if single:
                vlen = 1
            for i in range(vlen):
                iov[i].iov_base = self._buf + <size_t>i * _BUFFER
                iov[i].iov_len = _BUFFER
                msg = &hdrs[i].msg_hdr
                msg.msg_name = &sa[i] if peer is None else NULL
                msg.msg_namelen = sizeof(sa[i]) if peer is None else 0
                msg.msg_iov = &iov[i]
                msg.msg_iovlen = 1
                msg.msg_control = control[i]
                msg.msg_controllen = _CONTROL
                msg.msg_flags = 0
            if vlen == 1:  # recvmsg: recvmmsg's own work for nothing
                n = recvmsg(self._fd, &hdrs[0].msg_hdr, MSG_DONTWAIT)
                if n >= 0:
                    hdrs[0].msg_len = <unsigned int>n
                    got = 1
                else:
                    got = -1
            else:
                got = recvmmsg(self._fd, hdrs, vlen, MSG_DONTWAIT, NULL)
            self.calls += 1
            if got < 0:
                err = errno
                if err == EINTR:
                    continue
                if err == EAGAIN:  # EWOULDBLOCK on Linux
                    break
                self.reads += reads
                self.datagrams_in += count
                raise OSError(err, _os.strerror(err))
            if reads:
                # a long batch: what this read returned arrived after the
                # batch began (the delivery times RTT and rate samples take)
                now = monotonic()
                when = now
            reads += got
            for i in range(got):
                msg = &hdrs[i].msg_hdr
                n = hdrs[i].msg_len
                base = self._buf + <size_t>i * _BUFFER
                gso_size = 0
                if self.gro and msg.msg_controllen:
                    cm = CMSG_FIRSTHDR(msg)
                    while cm != NULL:
                        if cm.cmsg_level == IPPROTO_UDP and cm.cmsg_type == UDP_GRO:
                            memcpy(&gso_size, CMSG_DATA(cm), sizeof(int))
                        cm = CMSG_NXTHDR(msg, cm)
                addr = peer if peer is not None else self._source(&sa[i], msg.msg_namelen)
                if gso_size <= 0 or gso_size >= n:
                    count += 1
                    if sink is not None:
                        sink.take(<const uint8_t *>base, n, addr, now)
                    else:
                        callback(PyMemoryView_FromMemory(base, n, PyBUF_READ), addr, when)
                    continue
                if sink is not None:  # it cuts the run, and joins in-order data
                    count += sink.take_run(<const uint8_t *>base, n, gso_size, addr, now)
                    continue
                off = 0
                while off < n:
                    size = gso_size if n - off > gso_size else n - off
                    count += 1
                    callback(PyMemoryView_FromMemory(base + off, size, PyBUF_READ), addr, when)
                    off += size
            if single:
                break  # one slot, filled or not: a level-triggered poll says if more waits
            if got < vlen:
                if reads == 1:
                    self._sparse = _SPARSE_PROBE - 1  # one datagram in all: sparse traffic
                break  # the socket is empty (a level-triggered poll says if more comes)
            if vlen == self.slots and self.slots < _MAX_SLOTS:
                self._grow()
        self.reads += reads
        self.datagrams_in += count
        return count

    cdef int _grow(self) except -1:
        """Twice the slots (the old ones' contents are no longer needed)."""
        cdef char *buf = <char *>malloc(<size_t>self.slots * 2 * _BUFFER)
        if buf == NULL:
            return 0  # keep reading with what there is
        free(self._buf)
        self._buf = buf
        self.slots *= 2
        return 0

    cdef object _source(self, sockaddr_storage *sa, socklen_t salen):
        """The address tuple of ``sa``, as Python's recvfrom builds it: the
        previous one again when the bytes are the same, and the previous
        host's text when only the port (or flow label) differs."""
        cdef sockaddr_in *s4
        cdef sockaddr_in6 *s6
        if self._raddr is not None and salen == self._rsalen and memcmp(sa, &self._rsa, salen) == 0:
            return self._raddr
        if sa.ss_family == AF_INET:
            s4 = <sockaddr_in *>sa
            if (self._rhost is None or self._rhsa.ss_family != AF_INET
                    or (<sockaddr_in *>&self._rhsa).sin_addr.s_addr != s4.sin_addr.s_addr):
                self._rhost = self._host_text(sa)
            addr = (self._rhost, ntohs(s4.sin_port))
        elif sa.ss_family == AF_INET6:
            s6 = <sockaddr_in6 *>sa
            if (self._rhost is None or self._rhsa.ss_family != AF_INET6
                    or (<sockaddr_in6 *>&self._rhsa).sin6_scope_id != s6.sin6_scope_id
                    or memcmp(&(<sockaddr_in6 *>&self._rhsa).sin6_addr, &s6.sin6_addr, 16) != 0):
                self._rhost = self._host_text(sa)
            addr = (self._rhost, ntohs(s6.sin6_port), ntohl(s6.sin6_flowinfo), s6.sin6_scope_id)
        else:
            return None
        memcpy(&self._rsa, sa, salen)
        self._rsalen = salen
        self._raddr = addr
        return addr

    cdef object _host_text(self, sockaddr_storage *sa):
        """The host part of ``sa`` (AF_INET or AF_INET6) as recvfrom gives it,
        with an IPv6 scope as "%name"; ``sa`` kept as the host's key."""
        cdef char host[64]
        cdef char ifname[32]
        cdef sockaddr_in6 *s6
        if sa.ss_family == AF_INET:
            inet_ntop(AF_INET, &(<sockaddr_in *>sa).sin_addr, host, sizeof(host))
            text = host.decode("ascii")
            memcpy(&self._rhsa, sa, sizeof(sockaddr_in))
            return text
        s6 = <sockaddr_in6 *>sa
        inet_ntop(AF_INET6, &s6.sin6_addr, host, sizeof(host))
        text = host.decode("ascii")
        if s6.sin6_scope_id:
            if if_indextoname(s6.sin6_scope_id, ifname) != NULL:
                text += "%" + ifname.decode("ascii")
            else:
                text += "%" + str(s6.sin6_scope_id)
        memcpy(&self._rhsa, sa, sizeof(sockaddr_in6))
        return text

    cdef int _destination(self, object addr) except -1:
        """Fill the cached destination with ``addr`` (a recvfrom-style tuple,
        or a host name that resolves) unless it is the cached one."""
        cdef sockaddr_in *s4
        cdef sockaddr_in6 *s6
        cdef bytes text
        if addr is self._saddr:
            return 0
        host = addr[0]
        port = addr[1]
        memset(&self._ssa, 0, sizeof(self._ssa))
        if self._family == AF_INET:
            s4 = <sockaddr_in *>&self._ssa
            s4.sin_family = AF_INET
            s4.sin_port = htons(port)
            text = host.encode("ascii" if host.isascii() else "idna")
            if inet_pton(AF_INET, text, &s4.sin_addr) != 1:
                return self._resolved(addr)
            self._ssalen = sizeof(sockaddr_in)
        else:
            s6 = <sockaddr_in6 *>&self._ssa
            s6.sin6_family = AF_INET6
            s6.sin6_port = htons(port)
            if len(addr) > 2:
                s6.sin6_flowinfo = htonl(addr[2])
            if len(addr) > 3:
                s6.sin6_scope_id = addr[3]
            name, _, scope = host.partition("%")
            text = name.encode("ascii" if name.isascii() else "idna")
            if inet_pton(AF_INET6, text, &s6.sin6_addr) != 1:
                return self._resolved(addr)
            if scope and not s6.sin6_scope_id:
                s6.sin6_scope_id = if_nametoindex(scope.encode()) if not scope.isdigit() else int(scope)
            self._ssalen = sizeof(sockaddr_in6)
        self._saddr = addr
        return 0

    cdef int _resolved(self, object addr) except -1:
        infos = _socket.getaddrinfo(addr[0], addr[1], self._family, _socket.SOCK_DGRAM)
        numeric = infos[0][4]
        self._destination(numeric)
        self._saddr = addr
        return 0

    cpdef Py_ssize_t send(self, list datagrams, Py_ssize_t start=0, bint connected=False) except -1:
        """Send ``datagrams[start:]``, ``(bytes, addr)`` pairs and runs,
        ``(bytes, addr, size)``: datagrams of ``size`` bytes back to back
        (``addr`` is ignored on a connected socket).  A run goes alone in one
        ``sendmsg``; where it cannot (no offload, or the kernel refuses it)
        it is replaced in the list by its datagrams, which go as below.
        Returns the index of the first one not sent because the socket would
        block (``len(datagrams)`` when all went).  Other socket errors are
        raised as OSError.

        A run goes in one ``sendmsg`` whose ``UDP_SEGMENT`` control message
        says where the kernel cuts it.  A short run (a message of a segment
        and a bit, in a request and its answer) costs less as one buffer
        given to ``send``/``sendto`` under a socket-wide ``UDP_SEGMENT``:
        no message header, iovec or control message to copy in, and on a
        connected socket the route stays cached, which any control message
        disables (about 0.15 us of kernel time a run, bench/udp_floor.py;
        a 1452-byte ping-pong sends one run each way).  So the second short run
        in a row of one segment size sets that size on the socket, and
        while it is set: short runs of that size are copied into one buffer
        (they are at most ``_SHORT_RUN`` bytes), a datagram alone larger
        than it goes with a control message of 0 (else the kernel would cut
        it), and 64 lone datagrams in a row clear it again (the kernel
        builds every datagram of a socket with a segment size set in pages,
        about 0.07 us more).  If the kernel refuses a send while a size is
        set (a route whose MTU is smaller, a device that cannot checksum),
        the socket clears it for good and tries again.  If it refuses a
        run (its segment size above the route's MTU, or no offload), that
        run goes again one datagram at a time; only when those all pass is
        segmentation offload off for good.  An error raised says in
        ``failed_at`` which datagram it stopped at."""
        cdef Py_ssize_t i = start, j, k, n = len(datagrams), total, size, nsize, off
        cdef Py_ssize_t single_until = -1  # datagrams before it go one by one
        cdef bint suspect = False  # a run was refused: offload, or a size?
        cdef iovec iov[_MAX_SEGMENTS]
        cdef char joined[_SHORT_RUN]
        cdef ssize_t r
        cdef int err
        cdef bint whole
        cdef tuple item, nxt
        cdef object data, addr
        while i < n:
            item = datagrams[i]
            data = item[0]
            addr = item[1]
            if len(item) == 3:  # a run: its datagrams in one buffer
                if suspect and i >= single_until:  # the run refused went through one by one
                    self.gso = suspect = False
                if not self.gso or i < single_until or not PyBytes_CheckExact(data):
                    n += _split_run(datagrams, i)  # its datagrams one by one, in its place
                    continue
                size = item[2]
                total = PyBytes_GET_SIZE(data)
                if not connected:
                    self._destination(addr)
                iov[0].iov_base = PyBytes_AS_STRING(data)
                iov[0].iov_len = total
                r = self._send_segmented(iov, 1, <uint16_t>size if total > size else 0, connected)
                if r < 0:
                    err = errno
                    if err == EINTR:
                        continue
                    if err == EAGAIN:
                        if suspect and i < single_until:
                            suspect = False
                        return i
                    if err == EIO or err == EINVAL or err == ENOPROTOOPT or err == EOPNOTSUPP or err == EMSGSIZE:
                        k = _split_run(datagrams, i)  # one by one: then judge
                        n += k
                        single_until, suspect = i + k + 1, True
                        continue
                    self.failed_at = i
                    raise OSError(err, _os.strerror(err))
                self.writes += 1
                self.datagrams_out += (total + size - 1) // size
                i += 1
                continue
            if not PyBytes_CheckExact(data):
                data = bytes(data)
            size = PyBytes_GET_SIZE(data)
            iov[0].iov_base = PyBytes_AS_STRING(data)
            iov[0].iov_len = size
            j = i + 1
            total = size
            if self.gso and size > 0 and i >= single_until:
                if suspect:  # the run refused went through one by one: offload is what failed
                    self.gso = suspect = False
                    continue
                # the run: same address, same size (a shorter one ends it)
                while j < n and j - i < _MAX_SEGMENTS:
                    nxt = datagrams[j]
                    if len(nxt) != 2:  # a run goes alone
                        break
                    if not connected and nxt[1] is not addr and nxt[1] != addr:
                        break
                    if not PyBytes_CheckExact(nxt[0]):
                        break
                    nsize = PyBytes_GET_SIZE(nxt[0])
                    if nsize == 0 or nsize > size or total + nsize > _MAX_GSO_BYTES:
                        break
                    iov[j - i].iov_base = PyBytes_AS_STRING(nxt[0])
                    iov[j - i].iov_len = nsize
                    total += nsize
                    j += 1
                    if nsize < size:
                        break
            if not connected:
                self._destination(addr)
            whole = False
            if j - i > 1 and total <= _SHORT_RUN and self._sticky:
                if size == self.segment or (size == self._last_run and self._segment_to(size)):
                    off = 0
                    for k in range(j - i):
                        memcpy(joined + off, iov[k].iov_base, iov[k].iov_len)
                        off += iov[k].iov_len
                    iov[0].iov_base = joined
                    iov[0].iov_len = total
                    whole = True
                    self._lone = 0
                self._last_run = size
            elif j - i == 1 and self.segment:
                self._lone += 1
                if self._lone >= _LONE_LIMIT:
                    self._segment_to(0)
            if whole or (j - i == 1 and (self.segment == 0 or size <= self.segment)):
                if connected:  # no message header to copy in
                    r = send(self._fd, iov[0].iov_base, iov[0].iov_len, 0)
                else:
                    r = sendto(self._fd, iov[0].iov_base, iov[0].iov_len, 0,
                               <sockaddr *>&self._ssa, self._ssalen)
            else:
                # a run, or a datagram alone larger than the socket's
                # segment size (a control message of 0 keeps it whole)
                r = self._send_segmented(iov, j - i, <uint16_t>size if j - i > 1 else 0, connected)
            if r < 0:
                err = errno
                if err == EINTR:
                    continue
                if err == EAGAIN:  # EWOULDBLOCK on Linux
                    if suspect and i < single_until:
                        suspect = False  # not judged: offload stays
                    return i
                if err == EIO or err == EINVAL or err == ENOPROTOOPT or err == EOPNOTSUPP or err == EMSGSIZE:
                    if self.segment:
                        # maybe the socket's segment size: without it from now on
                        self._sticky = False
                        self._segment_to(0)
                        if self.segment == 0:
                            continue
                    elif j - i > 1:
                        single_until, suspect = j, True  # this run one by one: then judge
                        continue
                self.failed_at = i
                raise OSError(err, _os.strerror(err))
            self.writes += 1
            self.datagrams_out += j - i
            i = j
        if suspect:
            self.gso = False
        return n

    cdef ssize_t _send_segmented(self, iovec *iov, Py_ssize_t count, uint16_t segment, bint connected) noexcept:
        """One ``sendmsg`` of ``count`` buffers with a ``UDP_SEGMENT``
        control message of ``segment`` (0: the message goes whole), to the
        peer (connected) or the address _destination set."""
        cdef msghdr msg
        cdef char control[_CONTROL]
        cdef cmsghdr *cm
        msg.msg_name = NULL if connected else &self._ssa
        msg.msg_namelen = 0 if connected else self._ssalen
        msg.msg_iov = iov
        msg.msg_iovlen = count
        msg.msg_flags = 0
        memset(control, 0, _CONTROL)
        msg.msg_control = control
        msg.msg_controllen = CMSG_SPACE(sizeof(uint16_t))
        cm = CMSG_FIRSTHDR(&msg)
        cm.cmsg_level = IPPROTO_UDP
        cm.cmsg_type = UDP_SEGMENT
        cm.cmsg_len = CMSG_LEN(sizeof(uint16_t))
        memcpy(CMSG_DATA(cm), &segment, sizeof(uint16_t))
        return sendmsg(self._fd, &msg, 0)

    cdef bint _segment_to(self, int size):
        """Set the socket-wide UDP_SEGMENT size (0: none); False if the
        kernel refuses it, and then never again."""
        if setsockopt(self._fd, IPPROTO_UDP, UDP_SEGMENT, &size, sizeof(int)) != 0:
            self._sticky = False
            return False
        self.segment = size
        self._lone = 0
        return True
