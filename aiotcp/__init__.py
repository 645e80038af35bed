"""aiotcp: TCP (RFC 9293) in user space for asyncio, carried in UDP datagrams."""

from . import _fast

__version__ = "0.1.0"

#: True when the compiled hot path is loaded (it always is: there is no
#: pure-Python fallback; the test suite asserts this explicitly).
COMPILED = _fast.__file__.endswith((".so", ".pyd"))

__all__ = ["COMPILED", "__version__"]
