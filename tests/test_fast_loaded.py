"""The suite runs against the compiled hot path, never a fallback."""
import importlib.machinery

import aiotcp
from aiotcp import _fast


def test_compiled_extension_is_loaded():
    assert aiotcp.COMPILED
    assert _fast.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert type(_fast.decode).__name__ in {"builtin_function_or_method", "cython_function_or_method"}
