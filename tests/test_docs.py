"""The README and the documentation (docs/) stay true to the code.

The generated reference pages are written by docs/hooks/generate.py, imported here: its ``--help``
text must be what ``mfbench COMMAND --help`` prints. The hand-written pages' commands must parse,
their example outputs must be what the tool prints, and the plugin guide must match the tested
fixture and the public API. The strict site build (``mkdocs build --strict``) runs in CI (.ci/run).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest

from mfbench.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLUGIN_GUIDE = (DOCS / "plugins.md").read_text(encoding="utf-8")


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = load("docs_generate", DOCS / "hooks" / "generate.py")
OUTPUTS = load("readme_outputs", ROOT / "benchmarks" / "readme_outputs.py")


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def pages() -> dict[str, str]:
    """README.md and every hand-written page of docs/, by path."""
    found = {"README.md": README}
    for path in sorted(DOCS.rglob("*.md")):
        found[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return found


# -- the README's quick start ---------------------------------------------------------------


def test_ci_runs_the_readme_test_command():
    test_command = code_blocks(README, "sh")[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_quick_start_runs_the_default_suite():
    assert code_blocks(README, "sh")[0].strip().endswith("&& mfbench run")


def test_the_readme_stays_a_front_door():
    assert len(README.encode("utf-8")) <= 15 * 1024, "the README is the front door: move detail into docs/"
    assert "pip install -e '.[docs]' && mkdocs serve" in README


LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_every_relative_link_in_the_readme_and_the_pages_exists():
    for name, text in pages().items():
        base = (ROOT / name).parent
        for target in relative_links(text):
            path = target.split("#", 1)[0]
            assert (base / path).exists(), f"{name} links to {target}, which does not exist"
    assert {t.split("#")[0] for t in relative_links(README)} >= {"docs/plugins.md", "docs/getting-started.md"}


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    yaml = pytest.importorskip("yaml")  # the docs extra brings it (with mkdocs)
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def entries(nav: list) -> list[str]:
        found = []
        for item in nav:
            for value in item.values() if isinstance(item, dict) else [item]:
                found.extend(entries(value) if isinstance(value, list) else [value])
        return found

    in_nav = entries(config["nav"])
    on_disk = [str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "hooks" not in p.parts]
    assert sorted(in_nav) == sorted(on_disk)
    assert config["hooks"] == ["docs/hooks/generate.py"]
    assert set(GENERATE.PAGES) <= set(in_nav)


# -- the generated reference ----------------------------------------------------------------


def printed_help(path: tuple[str, ...]) -> str:
    """What ``mfbench PATH --help`` prints, through the real entry point."""
    from mfbench.cli.entry import main

    out = io.StringIO()
    with GENERATE.help_environment(), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    return out.getvalue()


def test_the_cli_reference_is_what_help_prints():
    from mfbench.cli import entry

    helps = GENERATE.command_helps()
    assert len([path for path in helps if len(path) == 1]) == len(entry.COMMANDS)
    assert ("data", "download") in helps
    page = GENERATE.cli_page()
    for path, text in helps.items():
        assert text == printed_help(path), f"the reference's `mfbench {' '.join(path)} --help` differs from what it prints"
        assert GENERATE.fence(text) in page


def test_the_run_settings_table_lists_every_setting():
    from mfbench.run.settings import declarations

    table = GENERATE.settings_table()
    rows = table.splitlines()[2:]
    assert len(rows) == len(declarations())
    for (name, declared), row in zip(declarations().items(), rows, strict=True):
        assert row.startswith(f"| `{name}`: ")
        for flag in declared.flags(name) if declared.commands else []:
            assert f"`{flag}`" in row
    assert "must be at least 1" in table  # the checks' own words give the ranges


def test_the_results_reference_names_every_field_of_the_schema():
    from mfbench.run.settings import declarations

    page = GENERATE.results_page()

    def names(node: dict, prefix: str = "") -> list[str]:
        found = []
        for name, child in node.get("properties", {}).items():
            found.append(prefix + name)
            found.extend(names(child, f"{prefix}{name}."))
        return found

    schema = GENERATE.results_schema()
    for node in [schema, *schema["$defs"].values()]:
        for name in names(node):
            assert f"| `{name}`" in page, f"{name} is not in the results reference"
    for name in declarations():
        assert f"| `config.{name}`" in page
    for name in schema["$defs"]:
        assert f"## {name}\n" in page


def test_the_code_map_has_every_folder_and_module():
    page = GENERATE.code_map_page()
    for init in (ROOT / "mfbench").rglob("__init__.py"):
        folder = init.parent.relative_to(ROOT / "mfbench")
        if str(folder) == "." or folder.name == "suites":
            continue
        assert f"## mfbench/{folder.as_posix()}/" in page
        for module in init.parent.glob("*.py"):
            assert module.name == "__init__.py" or f"`{module.name}`" in page


# -- the hand-written pages -----------------------------------------------------------------

#: Shell operators that end one simple command.
OPERATORS = {"&&", "||", ";", "|", "&"}
REDIRECTS = {">", ">>", "<", "2>", "2>&1"}
SCHEMATIC = "<!-- schematic -->\n"


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell snippet, as argument lists (continuations joined, comments,
    redirections and environment assignments left out)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        tokens = iter(list(lexer))
        for token in tokens:
            if token in OPERATORS:
                commands.append(current)
                current = []
            elif token in REDIRECTS:
                next(tokens, None)
            else:
                current.append(token)
        commands.append(current)
    return [c for c in commands if c]


def mfbench_arguments(command: list[str]) -> list[str] | None:
    """The arguments of an ``mfbench`` command (also ``python -m mfbench``, ``torchrun ... -m mfbench``)."""
    while command and re.match(r"^[A-Za-z_]\w*=", command[0]):
        command = command[1:]
    if command[:1] == ["mfbench"]:
        return command[1:]
    for index in range(len(command) - 1):
        if command[index : index + 2] == ["-m", "mfbench"]:
            return command[index + 2 :]
    return None


def documented_commands() -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Every mfbench command line in an sh block (and a YAML ``run:`` step) of the README and the
    pages, with where it is; and the blocks skipped as schematic."""
    found, skipped = [], []
    for name, text in pages().items():
        for match in re.finditer(r"(?P<marker><!-- schematic -->\n)?```(?P<lang>sh|yaml)\n(?P<body>.*?)```", text, flags=re.S):
            if match["marker"]:
                skipped.append(f"{name}: {match['body'].splitlines()[0]}")
                continue
            body = match["body"]
            if match["lang"] == "yaml":
                body = "\n".join(m for m in re.findall(r"^\s*(?:- )?run: (.*)$", body, flags=re.M))
            for command in shell_commands(body):
                arguments = mfbench_arguments(command)
                if arguments is not None:
                    found.append((name, arguments))
    return found, skipped


def test_every_mfbench_command_in_the_docs_parses():
    from mfbench.run.selection import parse_selection

    parser = GENERATE.help_parser()
    commands, skipped = documented_commands()
    assert len(commands) >= 30, "the command lines were not found: is the extraction broken?"
    assert len(skipped) <= 3, f"keep schematic blocks few: {skipped}"
    for where, arguments in commands:
        line = shlex.join(["mfbench", *arguments])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                args = parser.parse_args(arguments)
            except SystemExit as exc:  # --help and --version exit 0; a usage error exits 2
                assert exc.code == 0, f"{where}: `{line}` does not parse: {err.getvalue().strip()}"
                continue
        for kind in ("dataset", "model", "strategy"):
            given = getattr(args, kind, None) or []
            for text in [given] if isinstance(given, str) else given:  # ab takes one -d, run many
                parse_selection(text)  # raises on a selection the grammar refuses


def test_the_command_line_guide_lists_only_options_that_exist():
    run = GENERATE.subcommands(GENERATE.help_parser())["run"]
    known = set(run._option_string_actions)
    guide = (DOCS / "command-line.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1] for line in guide.splitlines() if line.startswith("| `-")]
    assert len(rows) >= 20
    for first_cell in rows:
        for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", first_cell):
            assert flag in known, f"docs/command-line.md lists {flag}, which mfbench run does not take"


def test_example_outputs_are_what_the_tool_prints():
    marked = {page: OUTPUTS.MARKED.findall(page.read_text(encoding="utf-8")) for page in OUTPUTS.pages()}
    assert marked[OUTPUTS.README], "the README shows the quick suite's table"
    assert sum(len(blocks) for blocks in marked.values()) >= 3
    for page, blocks in marked.items():
        if blocks:
            _, changed = OUTPUTS.regenerate(page.read_text(encoding="utf-8"))
            assert changed == [], (
                f"run python benchmarks/readme_outputs.py: these {page.name} blocks differ from the tool: {changed}"
            )


# -- the plugin guide -----------------------------------------------------------------------


def test_readme_plugin_example_is_the_tested_fixture():
    """The plugin guide's complete example (once the README's) is the fixture package the tests install."""
    fixture = (ROOT / "tests" / "fixtures" / "mfbench-adagrad" / "mfbench_adagrad.py").read_text()
    assert fixture.strip() in [block.strip() for block in code_blocks(PLUGIN_GUIDE, "python")]


def test_the_plugin_guide_layout_example_is_an_exact_strategy():
    """The model layout contract's example runs, and is the reference's per-rating SGD on both layouts."""
    import torch

    import mfbench

    section = PLUGIN_GUIDE[PLUGIN_GUIDE.index("## The model layout contract") : PLUGIN_GUIDE.index("## Checking your strategy")]
    scope = {"mfbench": mfbench, "torch": torch}
    exec(code_blocks(section, "python")[0], scope)
    for kind in ("dot", "biased"):
        mfbench.testing.assert_exact(scope["PlainSGD"], kind)


def test_every_hook_is_documented_and_tested():
    hooks = hookspecs.hook_names()
    assert hooks and sorted(hooks) == [name for name in dir(hookspecs) if name.startswith("mfbench_")]
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py")
    for hook in hooks:
        assert f"`{hook}(" in PLUGIN_GUIDE, f"{hook} is not in the plugin guide's hook table (docs/plugins.md)"
        assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"
        assert hook in tests, f"no test uses {hook}"


def test_every_mfbench_name_the_plugin_guide_uses_is_public():
    import mfbench

    used = set(re.findall(r"\bmfbench\.(\w+)", PLUGIN_GUIDE))
    names = {name for name in used if importlib.util.find_spec(f"mfbench.{name}") is None}  # not a module
    assert {"Strategy", "Executor", "Job", "hookimpl"} <= names
    assert names <= set(mfbench.__all__), (
        f"the plugin guide uses mfbench names it does not export: {names - set(mfbench.__all__)}"
    )


def test_the_dask_executor_uses_only_what_mfbench_exports():
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


def test_the_readme_movielens_answer_is_what_the_tool_says_of_its_results_file():
    """The answer the README quotes from results/movielens-seeds-cpu-2core.json is the tool's own
    (each quoted sentence, without the workload's name in front of it)."""
    from mfbench.report.answer import render_answer
    from mfbench.results.files import load_results

    quoted = README[README.index("## What the intervals mean") :]
    block = re.findall(r"```text\n(.*?)```", quoted, flags=re.S)[0]
    sentences = re.split(r"\n(?! )", block.strip())
    answer = " ".join(render_answer(load_results(ROOT / "results" / "movielens-seeds-cpu-2core.json")["cases"]).split())
    assert len(sentences) == 2
    for sentence in sentences:
        assert " ".join(sentence.split()) in answer
