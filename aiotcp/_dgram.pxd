# The C-level contract of aiotcp._dgram (see _dgram.pyx for the theory of
# operation): the class, so that the compiled UDP endpoint calls receive()
# and send() directly.

from libc.stdint cimport uint16_t, uint32_t

cdef extern from "<sys/uio.h>":
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>":
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    struct timespec:
        pass
    ssize_t recvmsg(int fd, msghdr *msg, int flags) nogil
    int recvmmsg(int fd, mmsghdr *msgvec, unsigned int vlen, int flags, timespec *timeout) nogil
    ssize_t sendmsg(int fd, const msghdr *msg, int flags) nogil
    ssize_t send(int fd, const void *buf, size_t n, int flags) nogil
    ssize_t sendto(int fd, const void *buf, size_t n, int flags, const sockaddr *addr, socklen_t addrlen) nogil
    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)
    size_t CMSG_SPACE(size_t length)
    size_t CMSG_LEN(size_t length)
    int MSG_DONTWAIT
    int AF_INET
    int AF_INET6


cdef class DatagramSocket:
    cdef object _sock
    cdef int _fd
    cdef int _family
    cdef char *_buf
    cdef readonly bint gro
    cdef readonly bint gso
    cdef object _raddr
    cdef sockaddr_storage _rsa
    cdef socklen_t _rsalen
    # the host text of the last source address whose host part differed
    # (a server hears many ports of one host: inet_ntop once per host)
    cdef object _rhost
    cdef sockaddr_storage _rhsa
    cdef object _saddr
    cdef sockaddr_storage _ssa
    cdef socklen_t _ssalen
    # datagrams and system calls, each way (the ratio is the batching)
    cdef readonly unsigned long long datagrams_in, reads, datagrams_out, writes
    # recvmmsg system calls, including one that found the socket empty
    # (reads counts the datagrams or GRO runs they returned)
    cdef readonly unsigned long long calls
    cdef readonly int slots
    # wakeups left that read a single slot (sparse traffic, see receive())
    cdef readonly int _sparse
    # the socket-wide UDP_SEGMENT size in force (0: none), whether it may be
    # set, the segment size of the last short run, lone datagrams sent in a
    # row while it is set (see send())
    cdef readonly int segment
    cdef bint _sticky
    cdef Py_ssize_t _last_run
    # the index of the datagram a send() error stopped at (what came before
    # it went out)
    cdef readonly Py_ssize_t failed_at
    cdef int _lone

    cpdef Py_ssize_t receive(self, callback, double now, object peer=*, int limit=*) except -1
    cpdef Py_ssize_t send(self, list datagrams, Py_ssize_t start=*, bint connected=*) except -1
    cdef object _source(self, sockaddr_storage *sa, socklen_t salen)
    cdef object _host_text(self, sockaddr_storage *sa)
    cdef int _destination(self, object addr) except -1
    cdef int _resolved(self, object addr) except -1
    cdef int _grow(self) except -1
    cdef ssize_t _send_segmented(self, iovec *iov, Py_ssize_t count, uint16_t segment, bint connected) noexcept
    cdef bint _segment_to(self, int size)
