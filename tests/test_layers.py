"""The core's folders are floors: each imports only the ones below it, and no module imports itself back.

Read from the code's own imports (every ``import`` statement, at the top of a module or inside
a function, ``TYPE_CHECKING`` blocks included), so the rule cannot drift from the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mfbench"

#: Lowest first. A module may import its own folder and the folders before it, never one after.
FLOORS = ["_version", "errors", "data", "plugin", "metrics", "results", "stats", "run", "tuning", "report", "cli"]
#: Entry points above every floor: the facade plugin authors import, ``python -m mfbench``, and the
#: pytest plugin (which imports lazily, so a pytest run that never asks for its fixtures stays light).
ABOVE_ALL = {"mfbench", "mfbench.__main__", "mfbench.pytest_plugin"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, int, bool]]:
    """(imported mfbench module, line, inside a function) for every import in module ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    lazy_lines = {
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("mfbench") and target != name and not target.startswith("mfbench.plugins"):
                found.append((target, node.lineno, node.lineno in lazy_lines))
    return found


def floor(name: str) -> int | None:
    if name in ABOVE_ALL:
        return None
    return FLOORS.index(name.split(".")[1])


def test_every_module_is_on_a_floor():
    assert "mfbench.run.executors.base" in MODULES and len(MODULES) > 60
    assert all(name in ABOVE_ALL or name.split(".")[1] in FLOORS for name in MODULES), sorted(MODULES)


def test_no_module_imports_a_floor_above_its_own_or_the_facade():
    upward = []
    for name in MODULES:
        own = floor(name)
        if own is None:
            continue
        for target, line, _ in imports(name):
            theirs = floor(target)
            if theirs is None or theirs > own:
                upward.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert upward == []


def test_there_are_no_import_cycles():
    graph = {name: {target for target, _, _ in imports(name)} for name in MODULES}
    # A package's __init__ names its folder's surface: the edge from a module to its own folder's
    # __init__ is the package being initialised, not a dependency.
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    cycles = strongly_connected(graph)
    assert [sorted(c) for c in cycles if len(c) > 1] == []


def test_the_core_imports_its_own_modules_at_the_top():
    """A function-level import of an mfbench module hides a dependency (or a cycle it was
    written to break); lazy imports are for optional libraries, and for the pytest plugin."""
    lazy = [
        f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for name in MODULES
        if name != "mfbench.pytest_plugin"
        for target, line, inside in imports(name)
        if inside
    ]
    assert lazy == []


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative enough for a few hundred modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_a_cycle_and_an_upward_import():
    assert [sorted(c) for c in strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) if len(c) > 1] == [["a", "b"]]
    assert floor("mfbench.run.plan") > floor("mfbench.stats.summary") > floor("mfbench.data.ratings")
