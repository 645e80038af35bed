"""The suite runs against the compiled hot path, never a fallback; the
pure-Python twin of the compiled modules passes the core and API suites too."""
import importlib.machinery
import os
import subprocess
import sys

import aiotcp
from aiotcp import _fast
from aiotcp.core import connection


def test_compiled_extension_is_loaded():
    assert aiotcp.COMPILED
    assert _fast.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert type(_fast.decode).__name__ in {"builtin_function_or_method", "cython_function_or_method"}
    for name in aiotcp.COMPILED_MODULES:
        assert sys.modules[f"aiotcp.{name}"].__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_connection_is_a_typed_extension_type():
    # connection.pxd made Connection's fields C members: no instance dict,
    # and a sequence-number field refuses what is not an integer
    conn = connection.Connection(local_port=1, remote_port=2)
    assert not hasattr(conn, "__dict__")
    try:
        conn.snd_nxt = "x"
    except TypeError:
        pass
    else:
        raise AssertionError("snd_nxt accepted a str")


def test_pure_python_twin_passes_the_core_suite():
    env = dict(os.environ, AIOTCP_PURE_PYTHON="1")
    here = os.path.dirname(__file__)
    check = subprocess.run(
        [sys.executable, "-c", "import sys, aiotcp; assert not aiotcp.COMPILED; "
         "compiled = [name for name in aiotcp.COMPILED_MODULES if name not in ('_fast', '_dgram') "
         "and not sys.modules['aiotcp.' + name].__file__.endswith('.py')]; assert not compiled, compiled"],
        env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         os.path.join(here, "test_core_states.py"), os.path.join(here, "test_core_network.py"),
         os.path.join(here, "test_congestion.py"), os.path.join(here, "test_core_endpoint.py"),
         os.path.join(here, "test_aio.py"), os.path.join(here, "test_coalescing.py")],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_the_transports_per_segment_half_is_compiled():
    # TCPTransport.write and data delivery are TransportPath's, an extension
    # type (udp.pxd); each transport carries its path's write as its own, so
    # that StreamWriter.write() runs no Python frame of aiotcp's
    from aiotcp.aio.udp import TransportPath
    assert TransportPath.__dictoffset__ == 0  # C fields, no instance dict
    for name in ("write", "deliver"):
        assert type(getattr(TransportPath, name)).__name__ in {"method_descriptor", "cython_function_or_method"}


def test_the_adapter_clock_is_time_monotonic_and_never_behind_a_loop():
    """The asyncio layer reads the core's clock in C (_fast.monotonic): the
    clock of time.monotonic() and of the default loop's time(); uvloop's
    time() is that clock cut to milliseconds, so never ahead of it, and a
    loop timer armed for a core deadline never fires before it."""
    import asyncio
    import time

    import uvloop
    from aiotcp._fast import monotonic
    before = time.monotonic()
    now = monotonic()
    assert before <= now <= time.monotonic()
    for loop in (asyncio.new_event_loop(), uvloop.new_event_loop()):
        try:
            assert loop.time() <= monotonic()
        finally:
            loop.close()


def test_the_path_search_is_a_typed_extension_type():
    # made once per connection on the handshake's path: pmtu.pxd makes its
    # sizes C ints, and the connection calls it in C
    from aiotcp.core.pmtu import PathSearch

    search = PathSearch(1472)
    assert (search.size, search.probe) == (1200, 1472)
    try:
        search.size = "x"
    except TypeError:
        pass
    else:
        raise AssertionError("size accepted a str")
