"""Build the compiled hot path.  Everything else is in pyproject.toml."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("AIOTCP_DEBUG_BUILD") == "1"
extensions = [
    Extension(
        "aiotcp._fast",
        ["aiotcp/_fast.pyx"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
    Extension(
        "aiotcp._dgram",
        ["aiotcp/_dgram.pyx"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
    # plain Python modules on the per-segment path, compiled as they are
    # (connection.pxd types connection.py for the compiler)
    *(Extension(f"aiotcp.{name}", [f"aiotcp/{name.replace('.', '/')}.py"],
                extra_compile_args=["-O0", "-g"] if debug else ["-O3"])
      for name in ("core.connection", "core.endpoint", "core.congestion", "core.rack", "core.ranges", "core.receive", "core.recovery", "core.rtt",
                   "core.rate", "core.bbr", "core.pmtu", "aio.udp")),
]
setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "annotation_typing": False},
        annotate=False,
    )
)
