"""Events the sans-I/O core hands to the layer above.

A connection appends ``(connection, event)`` pairs to its event list (the
endpoint's, when it belongs to one); the layer above drains the list after
each call into the core.
"""
from __future__ import annotations


class Event:
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self):
        return hash((type(self),) + tuple(getattr(self, n) for n in self.__slots__))


class Connected(Event):
    """The connection reached ESTABLISHED."""
    __slots__ = ()


class DataReadable(Event):
    """In-order data waits in the receive buffer: call ``read()``."""
    __slots__ = ()


class PeerClosed(Event):
    """The peer's FIN arrived in order: no more data will come (EOF)."""
    __slots__ = ()


class FinAcked(Event):
    """Everything we sent, our FIN included, is acknowledged (FIN_WAIT_2):
    after a full close, nothing of ours is left to deliver."""
    __slots__ = ()


class Writable(Event):
    """Buffered outgoing data fell to the low-water mark the layer set."""
    __slots__ = ()


class Closed(Event):
    """The connection is finished for its user.  ``error`` is None after an
    orderly close or a local abort, else the exception the user should see
    (ConnectionRefusedError, ConnectionResetError, TimeoutError)."""
    __slots__ = ("error",)

    def __init__(self, error=None):
        self.error = error

    def __eq__(self, other):
        return type(other) is Closed and type(self.error) is type(other.error)

    __hash__ = Event.__hash__


class Incoming(Event):
    """A listener has an established connection to accept."""
    __slots__ = ()


class StateChanged(Event):
    """The connection moved from ``old`` to ``new`` (RFC 9293 state names)."""
    __slots__ = ("old", "new")

    def __init__(self, old, new):
        self.old = old
        self.new = new


class Retransmission(Event):
    """A retransmission: ``kind`` is "rto", "fast" or "syn"; ``seq`` the
    sequence number resent; ``rto`` the timeout now in force."""
    __slots__ = ("kind", "seq", "rto")

    def __init__(self, kind, seq, rto):
        self.kind = kind
        self.seq = seq
        self.rto = rto
