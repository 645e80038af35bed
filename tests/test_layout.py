"""The tree shows the layers: the sans-I/O core, the compiled edge, the
asyncio layer and the tools, each a package of its own; the core imports
nothing from the layers above it; the module paths of earlier versions
still import, as the very same modules."""
import ast
import importlib
import pathlib

import aiotcp

ROOT = pathlib.Path(aiotcp.__file__).parent


def test_each_layer_is_a_package():
    for package in ("core", "aio", "tools"):
        assert (ROOT / package / "__init__.py").exists()
    assert (ROOT / "_fast.pyx").exists() and (ROOT / "_dgram.pyx").exists()
    assert not (ROOT / "connection.py").exists() and not (ROOT / "udp.py").exists()


def imported_modules(path: pathlib.Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_core_imports_nothing_from_the_layers_above():
    for path in (ROOT / "core").glob("*.py"):
        for name in imported_modules(path):
            assert not name.startswith(("..aio", "..tools", "aiotcp.aio", "aiotcp.tools", "asyncio")), (path, name)


def test_the_asyncio_layer_does_not_reach_the_tools():
    for path in (ROOT / "aio").glob("*.py"):
        for name in imported_modules(path):
            assert not name.startswith(("..tools", "aiotcp.tools")), (path, name)


def test_earlier_module_paths_are_the_same_modules():
    for old, new in aiotcp.MOVED.items():
        module = importlib.import_module(f"aiotcp.{old}")
        assert module is importlib.import_module(f"aiotcp.{new}")
        assert module.__spec__.name == f"aiotcp.{new}"  # its own spec, not the alias's
    from aiotcp.connection import Connection
    from aiotcp.core.connection import Connection as Same
    assert Connection is Same
