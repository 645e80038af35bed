"""Every attribute a compiled class sets is declared in its .pxd.

connection.py, endpoint.py, congestion.py, rtt.py and udp.py compile into
extension types whose fields are fixed by their .pxd files: a field set in
the .py but not declared works when the module runs as Python and fails at
run time once compiled (AttributeError: object has no attribute).  This
test names the missing declaration instead, so a new field fails here, with
the file to edit."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "aiotcp"
MODULES = ["core/connection", "core/endpoint", "core/congestion", "core/pmtu", "core/rack", "core/ranges", "core/recovery", "core/receive", "core/rtt", "aio/udp"]
CDEF_CLASS = re.compile(r"^cdef class (\w+)(?:\((\w+)\))?:", re.M)


def declared_fields(pxd_text: str) -> dict:
    """class -> (base, fields) from a .pxd: the names on `cdef [public] type a, b` lines."""
    classes, current = {}, None
    for line in pxd_text.splitlines():
        match = CDEF_CLASS.match(line)
        if match:
            current = match.group(1)
            classes.setdefault(current, (match.group(2), set()))
            continue
        code = line.split("#")[0]
        if current and code.startswith("    cdef ") and "(" not in code:  # a field, not a method
            # "cdef public long long a, b": the type is every word of the
            # first item but its last, which is the first name
            first, *rest = code.strip()[len("cdef "):].split(",")
            classes[current][1].update([first.split()[-1], *(name.strip() for name in rest)])
        elif line and not line.startswith((" ", "#", "@")):
            current = None
    return classes


def all_declared(classes: dict, name: str) -> set:
    fields = set()
    while name in classes:
        base, own = classes[name]
        fields |= own
        name = base
    return fields


def assigned_attributes(cls: ast.ClassDef) -> dict:
    """self.<name> = ... anywhere in the class's methods -> first line."""
    found = {}
    for node in ast.walk(cls):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        stack = list(targets)
        while stack:
            target = stack.pop()
            if isinstance(target, (ast.Tuple, ast.List)):
                stack.extend(target.elts)
            elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                  and target.value.id == "self"):
                found.setdefault(target.attr, node.lineno)
    return found


def settable_properties(cls: ast.ClassDef) -> set:
    names = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Attribute) and decorator.attr == "setter":
                    names.add(node.name)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_every_field_set_is_declared_in_the_pxd(module):
    source = (ROOT / f"{module}.py").read_text()
    classes = declared_fields((ROOT / f"{module}.pxd").read_text())
    for pxd in sorted(ROOT.rglob("*.pxd")):  # bases declared elsewhere (_fast.DatagramSink)
        for name, declaration in declared_fields(pxd.read_text()).items():
            classes.setdefault(name, declaration)
    tree = ast.parse(source)
    checked = 0
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        if cls.name not in classes:
            continue  # a plain Python class in a compiled module
        checked += 1
        declared = all_declared(classes, cls.name) | settable_properties(cls)
        missing = {name: line for name, line in assigned_attributes(cls).items() if name not in declared}
        assert not missing, (
            f"{module}.py class {cls.name} sets fields that aiotcp/{module}.pxd does not declare "
            f"(compiled, setting them raises AttributeError): "
            + ", ".join(f"{name} (line {line})" for name, line in sorted(missing.items(), key=lambda kv: kv[1])))
    assert checked, f"no class of {module}.py is declared in {module}.pxd"


def test_the_parser_sees_a_missing_field():
    pxd = "cdef class A:\n    cdef public long long x, y\n    cdef public object z  # note\n"
    tree = ast.parse("class A:\n    def f(self):\n        self.x = self.y = 1\n        self.w, self.z = 2, 3\n")
    declared = all_declared(declared_fields(pxd), "A")
    assert declared == {"x", "y", "z"}
    assert set(assigned_attributes(tree.body[0])) - declared == {"w"}
