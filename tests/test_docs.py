"""The README stays true: its commands, its plugin example and its hook list."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from mfbench.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = code_blocks("sh")[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_quick_start_runs_the_default_suite():
    assert code_blocks("sh")[0].strip().endswith("&& mfbench run")


def test_readme_plugin_example_is_the_tested_fixture():
    fixture = (ROOT / "tests" / "fixtures" / "mfbench-adagrad" / "mfbench_adagrad.py").read_text()
    assert fixture.strip() in [block.strip() for block in code_blocks("python")]


def test_every_hook_is_documented_and_tested():
    hooks = hookspecs.hook_names()
    assert hooks and sorted(hooks) == [name for name in dir(hookspecs) if name.startswith("mfbench_")]
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py")
    for hook in hooks:
        assert f"`{hook}(" in README, f"{hook} is not in the README's hook table"
        assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"
        assert hook in tests, f"no test uses {hook}"


def test_readme_example_outputs_are_what_the_tool_prints():
    spec = importlib.util.spec_from_file_location("readme_outputs", ROOT / "benchmarks" / "readme_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.MARKED.findall(README)) >= 2
    _, changed = module.regenerate(README)
    assert changed == [], f"run python benchmarks/readme_outputs.py: these README blocks differ from the tool: {changed}"


def test_every_mfbench_name_the_plugin_guide_uses_is_public():
    import mfbench

    guide = README[README.index("## Writing a plugin") : README.index("## Benchmarks in pytest")]
    used = set(re.findall(r"\bmfbench\.(\w+)", guide))
    names = {name for name in used if importlib.util.find_spec(f"mfbench.{name}") is None}  # not a module
    assert {"Strategy", "Executor", "Job", "hookimpl"} <= names
    assert names <= set(mfbench.__all__), f"the README uses mfbench names it does not export: {names - set(mfbench.__all__)}"


def test_the_dask_executor_uses_only_what_mfbench_exports():
    import ast

    import mfbench

    tree = ast.parse((ROOT / "plugins" / "executors" / "dask.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mfbench"):
            assert node.module == "mfbench", f"the dask plugin imports the internal module {node.module}"
            assert {alias.name for alias in node.names} <= set(mfbench.__all__)
        elif isinstance(node, ast.Import):
            assert all(alias.name == "mfbench" or not alias.name.startswith("mfbench") for alias in node.names)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "mfbench":
            assert node.attr in mfbench.__all__, f"the dask plugin uses mfbench.{node.attr}, which is not exported"
