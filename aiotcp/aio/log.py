"""aiotcp's logging: structlog events through the standard ``logging``
logger ``aiotcp``.

A library never configures logging.  Every event has a namespaced name
(``aiotcp.conn.state``) and its facts as keyword fields, as structlog has
them; they reach the application as ordinary ``logging`` records of the
logger ``aiotcp``, so the application's logging configuration decides what
is shown and where.  An application that configures nothing sees only
warnings and errors (Python's last-resort handler, on stderr), never
anything on stdout.  Each record's message is the event name followed by
its fields (``aiotcp.conn.state old='SYN_SENT' new='ESTABLISHED' ...``),
and the fields themselves are the record's ``aiotcp`` attribute (a dict)
for a formatter or a test to read.

Debug events cost one ``isEnabledFor`` check when nobody listens: call
sites on per-connection paths test :data:`debug_enabled` first.
"""
from __future__ import annotations

import functools
import logging

import structlog

#: the standard logger every aiotcp event goes to
stdlib_logger = logging.getLogger("aiotcp")


def _render(logger, method_name, event_dict):
    """The last processor: the stdlib call's arguments, a message made of
    the event and its fields, the fields as ``record.aiotcp``."""
    exc_info = event_dict.pop("exc_info", None)
    event = event_dict.get("event", "")
    fields = " ".join(f"{key}={value!r}" for key, value in event_dict.items() if key != "event")
    message = f"{event} {fields}" if fields else str(event)
    kwargs = {"extra": {"aiotcp": dict(event_dict)}}
    if exc_info:
        kwargs["exc_info"] = exc_info
    return (message,), kwargs


def get_logger(**fields) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to ``fields``, writing to :data:`stdlib_logger`."""
    return structlog.wrap_logger(
        stdlib_logger,
        processors=[structlog.stdlib.filter_by_level, _render],
        wrapper_class=structlog.stdlib.BoundLogger,
    ).bind(**fields)


#: ``debug_enabled()``: whether anyone listens to aiotcp's debug events
#: (cheap: the logging module caches the answer per logger, and this is the
#: logger's own method, with no frame of ours around it)
debug_enabled = functools.partial(stdlib_logger.isEnabledFor, logging.DEBUG)
