"""The built-in plugins' layout rule: a plugin never imports another plugin's module;
what two plugins share lives in plugins/common/, which registers nothing."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def plugin_modules() -> list[Path]:
    return [p for p in sorted(PLUGINS.glob("*/*.py")) if p.parent.name != "common" and p.name != "__init__.py"]


def test_no_plugin_imports_another_plugins_module():
    plugin_names = {f"mfbench.plugins.{p.parent.name}.{p.stem}" for p in plugin_modules()}
    assert "mfbench.plugins.datasets.file" in plugin_names  # the rule is checked over real modules
    offenders = {}
    for path in plugin_modules():
        own = f"mfbench.plugins.{path.parent.name}.{path.stem}"
        others = sorted(m for m in imported_modules(path) if m in plugin_names - {own})
        if others:
            offenders[str(path.relative_to(PLUGINS))] = others
    assert offenders == {}, "move what is shared into plugins/common/"


def test_the_shared_helpers_register_nothing():
    helpers = [p for p in sorted((PLUGINS / "common").glob("*.py")) if p.name != "__init__.py"]
    assert len(helpers) >= 8
    registering = [p.name for p in helpers if "hookimpl" in p.read_text(encoding="utf-8")]
    assert registering == []
