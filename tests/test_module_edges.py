"""No module of aiotcp reaches into another's private names: each crosses
an edge through public calls (connection <-> endpoint, core <-> the UDP
endpoint, the UDP endpoint <-> the transports, the tools <-> all of them).

Checked in the source: an attribute ``obj._name`` read or set on anything
but ``self`` must be a name the same module defines.  The exceptions are
asyncio's own private names that asyncio's start_tls and streams use in
the same way (SSLProtocol._app_transport, StreamReaderProtocol's
_client_connected_cb and _replace_writer) and Enum's _value_."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "aiotcp"
ASYNCIO_AND_STDLIB = {"_app_transport", "_client_connected_cb", "_replace_writer", "_value_"}


def defined_names(tree: ast.AST) -> set:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


def foreign_private_accesses(source: str) -> list:
    tree = ast.parse(source)
    own = defined_names(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in own and node.attr not in ASYNCIO_AND_STDLIB):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_another_modules_private_names():
    offenders = {str(path.relative_to(ROOT)): found for path in sorted(ROOT.rglob("*.py"))
                 if (found := foreign_private_accesses(path.read_text()))}
    assert not offenders, offenders


def test_the_check_sees_a_foreign_private_name():
    assert foreign_private_accesses("def f(conn):\n    return conn._sndbuf\n") == ["line 2: conn._sndbuf"]
    assert foreign_private_accesses("class A:\n    def f(self, other):\n        self._x = other._x\n") == []
