"""Packetization-layer path MTU discovery (RFC 4821, with RFC 8899's rules
for datagram transports): which segment size the path carries.

One :class:`PathSearch` per connection.  Sizes are segments, the UDP
payload (TCP header included): a path MTU less 28 bytes (IPv4) or 48
(IPv6).  The search starts at the base (RFC 8899 BASE_PLPMTU: 1200 bytes
cross any path UDP crosses in practice, as QUIC assumes) and probes
upward; the first probe tries the upper bound itself (``Config.mtu``, the
peer's MSS), so a path as wide as the hosts' links is found in one round
trip, and a narrower one by bisection, first over the path MTUs links
commonly have (PPPoE's 1492, WireGuard's 1420, IPv6's minimum 1280 and
others: RFC 8899 section 5.3.2 allows such a table), then over what lies
between.  Each size is given
``MAX_PROBES`` probes (RFC 8899 MAX_PROBES): one lost probe may be any
loss, three mean the size does not pass.  The search stops when fewer than
``GRANULARITY`` bytes separate the largest size that passed and the
smallest that did not (Linux's tcp_probe_threshold).

The unit decides; the connection acts.  It sends a probe (new data in one
segment of :attr:`probe` bytes) when ``probe`` is set and says what became
of it (:meth:`probe_acked`, :meth:`probe_lost`); an ICMP "packet too big"
or the socket's EMSGSIZE is :meth:`too_big`; three timeouts in a row with
full-sized segments out are :meth:`black_hole`; :meth:`restart` is a new
path (a migration), :meth:`raise_due` the PMTU_RAISE_TIMER.  It reads
:attr:`size`, the segment size to use, after each.
"""
from __future__ import annotations

#: RFC 8899 BASE_PLPMTU, as a segment (UDP payload).
BASE = 1200
#: RFC 8899 MAX_PROBES: lost probes of one size before it is judged too big.
MAX_PROBES = 3
#: The search is complete when the bounds are this close (bytes; Linux
#: net.ipv4.tcp_probe_threshold).
GRANULARITY = 8
#: Path MTUs common on real links (Ethernet, PPPoE, IP-in-IP, GRE, VXLAN,
#: WireGuard, IPsec and mobile tunnels, IPv6's minimum), tried before
#: plain bisection so that these paths are found exactly.
COMMON_MTUS = (1500, 1492, 1480, 1476, 1460, 1450, 1440, 1420, 1400, 1380, 1360, 1350, 1300, 1280)
#: RFC 8899 PMTU_RAISE_TIMER (Linux ip_rt_mtu_expires): how long a size
#: below the upper bound stands before a larger one is tried again.
RAISE = 600.0

#: overhead -> the common path MTUs as segments (PathSearch.common)
_COMMON: dict = {}


class PathSearch:
    """The search's state: ``size`` in use, the bounds ``low`` (largest
    size known to pass) and ``high`` (largest not known to fail), the next
    ``probe`` (0: none wanted) and counters."""

    # fields, not an instance dict: every connection has one (with its
    # dict, an idle server connection took about 60 bytes more)
    __slots__ = ("enabled", "overhead", "common", "limit", "base", "probes", "probe_losses", "lowered",
                 "black_holes", "completed_at", "size", "low", "high", "probe", "fails")

    def __init__(self, limit: int, enabled: bool = True, base: int = BASE, overhead: int = 28):
        self.enabled = enabled
        #: the IP and UDP headers in front of a segment: path MTU - segment
        self.overhead = overhead
        #: the common path MTUs as segments (less the IP and UDP headers)
        common = _COMMON.get(overhead)
        if common is None:  # one tuple for every connection with this overhead
            common = _COMMON[overhead] = tuple(mtu - overhead for mtu in COMMON_MTUS)
        self.common = common
        self.limit = limit  # the upper bound: Config.mtu, then the peer's MSS
        self.base = min(base, limit)
        self.probes = 0  # probes sent
        self.probe_losses = 0
        self.lowered = 0  # by a "packet too big" or EMSGSIZE
        self.black_holes = 0
        self.completed_at = 0.0
        self.restart(0.0)

    def __repr__(self):
        return (f"PathSearch(size {self.size}, low {self.low}, high {self.high}, probe {self.probe}, "
                f"limit {self.limit})")

    @property
    def searching(self) -> bool:
        return self.probe > 0

    def restart(self, now: float) -> None:
        """A new path: from the base again (the upper bound itself when
        discovery is off)."""
        if not self.enabled:
            self.size = self.low = self.high = self.limit
            self.probe = 0
            self.fails = 0
            return
        self.size = self.low = self.base
        self.high = self.limit
        self._search(now)

    def set_limit(self, limit: int, now: float) -> None:
        """The upper bound fell (the peer's MSS is smaller than ours)."""
        limit = max(limit, 64)
        if limit >= self.limit:
            return
        self.limit = limit
        self.base = min(self.base, limit)
        self.high = min(self.high, limit)
        if self.size > limit or not self.enabled:
            self.size = limit
        self.low = min(self.low, self.size)
        self._search(now)

    def _search(self, now: float, optimistic: bool = True) -> None:
        """Choose the next probe: the upper bound first, then the middle
        one of the common sizes left between the bounds, then halfway."""
        self.fails = 0
        low, high = self.low, self.high
        done = not self.enabled or high <= low
        if not done and high - low < GRANULARITY:  # done unless a common size lies between
            done = True
            for size in self.common:
                if low < size <= high:
                    done = False
                    break
        if done:
            self.probe = 0
            self.completed_at = now
        elif optimistic:
            self.probe = high  # every new connection comes here: no list made
        else:
            candidates = [size for size in self.common if low < size <= high]
            if candidates:
                self.probe = candidates[len(candidates) // 2]
            else:
                self.probe = (low + high + 1) // 2

    def probe_sent(self) -> None:
        self.probes += 1

    def probe_acked(self, size: int, now: float) -> bool:
        """A probe of ``size`` arrived: the path carries it.  True if the
        size in use grew."""
        if size <= self.low:
            return False
        self.low = size
        grew = size > self.size
        self.size = size
        self.high = max(self.high, size)
        self._search(now, optimistic=False)
        return grew

    def probe_lost(self, size: int, now: float) -> None:
        """A probe of ``size`` was lost (repaired by the connection like any
        loss, never counted as congestion)."""
        if size != self.probe:
            return
        self.probe_losses += 1
        self.fails += 1
        if self.fails >= MAX_PROBES:
            self.high = size - 1
            self._search(now, optimistic=False)

    def too_big(self, size: int, now: float) -> bool:
        """The path said (an ICMP the connection checked, or the kernel's
        EMSGSIZE) that segments above ``size`` do not pass.  Below the size
        in use: that size at once, never below the base (True).  Between it
        and a probe: the probe failed, and ``size`` is tried next."""
        if not self.enabled:
            return False
        size = max(size, self.base)
        if size < self.size:
            self.lowered += 1
            self.size = self.low = self.high = size
            self._search(now)
            return True
        if self.probe and size < self.probe:
            self.high = size
            self._search(now, optimistic=True)
        return False

    def black_hole(self, now: float) -> bool:
        """Full-sized segments vanish where small ones would not (RFC 4821
        section 7.7): back to the base, and the size that failed is not
        tried again before the raise timer.  True if the size fell."""
        if not self.enabled or self.size <= self.base:
            return False
        self.black_holes += 1
        self.high = self.size - 1
        self.size = self.low = self.base
        self._search(now)
        return True

    def raise_due(self, now: float) -> bool:
        """PMTU_RAISE_TIMER: a complete search below the upper bound is
        tried upward again after RAISE seconds.  True if a search began."""
        if not self.enabled or self.probe or self.size >= self.limit or now - self.completed_at < RAISE:
            return False
        self.low, self.high = self.size, self.limit
        self._search(now)
        return self.probe > 0
