"""The asyncio layer: it only adapts the core to asyncio.

- udp: one UDP socket on the loop (its reader, one loop timer, the events
  going to transports) and each transport's per-segment half
- transport: the transport, the server and the streams API
- endpoint: many connections and listeners over one UDP socket (NATs)
- tcpsocket: what get_extra_info("socket") gives
- log: structlog events through the standard logger ``aiotcp``
"""
from .transport import (  # noqa: F401
    Server, StreamWriter, TCPTransport, create_connection, create_server, open_connection, start_server,
    start_tls,
)
from .udp import UDPEndpoint  # noqa: F401
from .endpoint import Endpoint, create_endpoint  # noqa: F401
