"""Load the per-segment modules from their .py sources, not the compiled
extensions built from them (the AIOTCP_PURE_PYTHON=1 switch).

The modules of SOURCE_MODULES (core/connection.py, core/rack.py, ..., aio/udp.py)
are plain Python that
Cython compiles (their .pxd files add C types); this finder makes the interpreter
run the sources instead, so the two builds can be tested against each other.
"""
import importlib.machinery
import importlib.util
import os
import sys

SOURCE_MODULES = ("core.connection", "core.endpoint", "core.congestion", "core.rack", "core.ranges", "core.receive",
                  "core.recovery", "core.rtt", "core.rate", "core.bbr", "core.pmtu", "aio.udp")


class _SourceFinder:
    def __init__(self, package: str, directory: str):
        self.names = {f"{package}.{name}": os.path.join(directory, *name.split(".")) + ".py"
                      for name in SOURCE_MODULES}

    def find_spec(self, fullname, path=None, target=None):
        source = self.names.get(fullname)
        if source is None:
            return None
        loader = importlib.machinery.SourceFileLoader(fullname, source)
        return importlib.util.spec_from_file_location(fullname, source, loader=loader)


def prefer_sources(package: str, directory: str) -> None:
    sys.meta_path.insert(0, _SourceFinder(package, directory))
