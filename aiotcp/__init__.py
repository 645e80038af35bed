"""aiotcp: TCP (RFC 9293) in user space for asyncio, carried in UDP datagrams.

The asyncio API mirrors asyncio's own: :func:`open_connection`,
:func:`start_server`, :func:`create_connection`, :func:`create_server`.
The sans-I/O core is in :mod:`aiotcp.connection` and :mod:`aiotcp.endpoint`.
"""

import os as _os
import sys as _sys

if _os.environ.get("AIOTCP_PURE_PYTHON") == "1":
    # run connection.py, endpoint.py and congestion.py as the Python they are
    # (for debugging and for the test that checks both builds behave alike)
    from ._pure import prefer_sources as _prefer_sources

    _prefer_sources(__name__, __path__[0])

from . import _fast  # noqa: F401  (for COMPILED)
from .aio import (
    Server, StreamWriter, TCPTransport, create_connection, create_server, open_connection, start_server,
    start_tls,
)
from .config import Config
from .connection import State
from . import congestion as _congestion, endpoint as _endpoint, ranges as _ranges, rtt as _rtt, udp as _udp  # noqa: F401  (for COMPILED)

__version__ = "0.1.0"

#: True when the compiled hot path is loaded: _fast and _dgram always (they have no
#: pure-Python twins), and the per-segment modules unless AIOTCP_PURE_PYTHON=1.
#: The test suite asserts this explicitly.
COMPILED_MODULES = ("_fast", "_dgram", "connection", "endpoint", "congestion", "ranges", "rtt", "udp")
COMPILED = all(
    _sys.modules[f"{__name__}.{name}"].__file__.endswith((".so", ".pyd")) for name in COMPILED_MODULES
)

__all__ = [
    "COMPILED", "Config", "Server", "State", "StreamWriter", "TCPTransport", "__version__",
    "create_connection", "create_server", "open_connection", "start_server", "start_tls",
]
