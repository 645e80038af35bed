"""aiotcp: TCP (RFC 9293) in user space for asyncio, carried in UDP datagrams.

The asyncio API mirrors asyncio's own: :func:`open_connection`,
:func:`start_server`, :func:`create_connection`, :func:`create_server`.

The tree is the architecture:

- ``aiotcp.core``: the sans-I/O TCP core (connection, rtt, ranges,
  congestion, endpoint, events, config, isn)
- ``aiotcp._fast``, ``aiotcp._dgram``: the compiled edge (segment codec,
  checksum, timer wheel, send buffer; batched datagram I/O)
- ``aiotcp.aio``: the asyncio layer (the UDP endpoint, the transport and
  server, the streams API, the TCP-like socket, logging)
- ``aiotcp.tools``: demo, relay, gateway, forward (the tunnel), trace, the in-memory
  test network
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import os as _os
import sys as _sys

if _os.environ.get("AIOTCP_PURE_PYTHON") == "1":
    # run the compiled per-segment modules as the Python they are (for
    # debugging and for the test that checks both builds behave alike)
    from ._pure import prefer_sources as _prefer_sources

    _prefer_sources(__name__, __path__[0])

from . import _fast  # noqa: F401  (for COMPILED)
from .aio import (
    Endpoint, Server, StreamWriter, TCPTransport, create_connection, create_endpoint, create_server,
    open_connection, start_server, start_tls,
)
from .core.config import Config
from .core.connection import State
from .core import (  # noqa: F401  (for COMPILED)
    bbr as _bbr, congestion as _congestion, endpoint as _endpoint, pmtu as _pmtu, rack as _rack, ranges as _ranges,
    rate as _rate, receive as _receive, recovery as _recovery, rtt as _rtt,
)
from .aio import udp as _udp  # noqa: F401  (for COMPILED)

__version__ = "0.1.0"

#: True when the compiled hot path is loaded: _fast and _dgram always (they have no
#: pure-Python twins), and the per-segment modules unless AIOTCP_PURE_PYTHON=1.
#: The test suite asserts this explicitly.
COMPILED_MODULES = ("_fast", "_dgram", "core.connection", "core.endpoint", "core.congestion", "core.rack",
                    "core.ranges", "core.receive", "core.recovery", "core.rtt", "core.rate", "core.bbr", "core.pmtu",
                    "aio.udp")
COMPILED = all(
    _sys.modules[f"{__name__}.{name}"].__file__.endswith((".so", ".pyd")) for name in COMPILED_MODULES
)

#: The module paths before the tree had its layers (aiotcp.connection is
#: aiotcp.core.connection): they still import, as the same module objects;
#: and the tunnel's library API, aiotcp.forward (aiotcp.tools.forward).
MOVED = {
    **{name: f"core.{name}" for name in ("connection", "endpoint", "congestion", "ranges", "receive", "rtt", "events",
                                         "config", "isn")},
    **{name: f"aio.{name}" for name in ("udp", "tcpsocket", "log")},
    **{name: f"tools.{name}" for name in ("demo", "relay", "gateway", "trace", "testing", "_udp", "forward")},
}


class _MovedModuleFinder(_importlib_abc.MetaPathFinder, _importlib_abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in MOVED:
            return None
        return _importlib_util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = _importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # importlib sets __spec__ to the alias's: undone below
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # imported already: keep its own spec


_sys.meta_path.append(_MovedModuleFinder())

__all__ = [
    "COMPILED", "Config", "Endpoint", "Server", "State", "StreamWriter", "TCPTransport", "__version__",
    "create_connection", "create_endpoint", "create_server", "open_connection", "start_server", "start_tls",
]
