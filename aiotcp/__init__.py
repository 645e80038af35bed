"""aiotcp: TCP (RFC 9293) in user space for asyncio, carried in UDP datagrams.

The asyncio API mirrors asyncio's own: :func:`open_connection`,
:func:`start_server`, :func:`create_connection`, :func:`create_server`.
The sans-I/O core is in :mod:`aiotcp.connection` and :mod:`aiotcp.endpoint`.
"""

from . import _fast
from .aio import Server, TCPTransport, create_connection, create_server, open_connection, start_server
from .config import Config
from .connection import State

__version__ = "0.1.0"

#: True when the compiled hot path is loaded (it always is: there is no
#: pure-Python fallback; the test suite asserts this explicitly).
COMPILED = _fast.__file__.endswith((".so", ".pyd"))

__all__ = [
    "COMPILED", "Config", "Server", "State", "TCPTransport", "__version__",
    "create_connection", "create_server", "open_connection", "start_server",
]
