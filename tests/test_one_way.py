"""Each shared job has one implementation, in the core; the rest of the tree calls it.

Atomic writes (``nbops.fileio``), hashes (``nbops.hashing``), pid checks (``nbops.process``),
names (``nbops.names``), the IPython shell (``nbops.shell``) and optional imports
(``nbops.deps``). A second copy growing back fails here with the place to fix.
"""

from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGE = REPO / "nbops"

#: (what is looked for, the one module allowed to have it)
_CALLS = {
    "os.replace": "fileio.py",
    "os.rename": "fileio.py",
    "get_ipython": "shell.py",
}
_DEFINITIONS = {
    "code_hash": {"hashing.py", "execute/_parameters.py"},  # the latter: code_hash(notebook)
    "hash_file": {"hashing.py"},
    "tree_hash": {"hashing.py"},
    "pid_alive": {"process.py"},
    "check_name": {"names.py"},
    "current_shell": {"shell.py"},
    "write_atomic": {"fileio.py"},
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _sources() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_shared_calls_live_in_one_core_module() -> None:
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                for wanted, home in _CALLS.items():
                    if (name == wanted or name.endswith("." + wanted)) and rel != home:
                        found.append(f"{rel}:{node.lineno} calls {name} (use nbops/{home})")
                probe = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
                if name == "os.kill" and probe == [0] and rel != "process.py":
                    found.append(f"{rel}:{node.lineno} probes a pid (use nbops/process.py)")
    assert found == []


def test_shared_helpers_are_defined_once() -> None:
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                homes = _DEFINITIONS.get(node.name)
                if homes is not None and rel not in homes:
                    found.append(f"{rel}:{node.lineno} defines {node.name} again")
    assert found == []
