"""The README stays true: its commands, its plugin example and its hook list."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import mfbench.hookspecs

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
    hooks = mfbench.hookspecs.hook_names()
    assert hooks and sorted(hooks) == [name for name in dir(mfbench.hookspecs) if name.startswith("mfbench_")]
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py")
    for hook in hooks:
        assert f"`{hook}(" in README, f"{hook} is not in the README's hook table"
        assert getattr(mfbench.hookspecs, hook).__doc__, f"{hook} has no docstring"
        assert hook in tests, f"no test uses {hook}"


def test_readme_example_outputs_are_what_the_tool_prints():
    spec = importlib.util.spec_from_file_location("readme_outputs", ROOT / "benchmarks" / "readme_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.MARKED.findall(README)) >= 2
    _, changed = module.regenerate(README)
    assert changed == [], f"run python benchmarks/readme_outputs.py: these README blocks differ from the tool: {changed}"
