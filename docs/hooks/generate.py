"""MkDocs hook: the reference pages, generated from the code at every build so they cannot drift.

``docs/reference/*.md`` are stubs (what GitHub shows); the site's pages are written here:

- ``reference/cli.md``: every command's ``--help``, exactly as ``mfbench COMMAND --help`` prints it
  at ``WIDTH`` columns (the parser of ``mfbench.cli.entry``, built as ``main`` builds it), and a
  table of the run settings from their declarations (``mfbench.run.settings``).
- ``reference/results-format.md``: the results file's fields, types and descriptions, read from
  the JSON Schema the package ships (``mfbench/results/results.schema.json``).
- ``reference/code-map.md``: the core's folders and modules, each with its own docstring.

Pages may show pictures from the repository's ``results/`` folder: they link them as
``../results/NAME.png`` (which GitHub shows), and this hook copies them into the site and points
the link there. ``tests/test_docs.py`` imports this module to check the pages against the code.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: Columns the help is formatted for (argparse reads $COLUMNS).
WIDTH = 100
#: The core's folders, lowest floor first (each imports only those before it; tests/test_layers.py).
FLOORS = ("data", "plugin", "results", "stats", "run", "run/executors", "tuning", "report", "cli")
#: Pictures pages may show from the repository's results/ folder.
PICTURES = re.compile(r"\]\(\.\./results/([\w.-]+\.png)\)")


# -- the command line ---------------------------------------------------------------------


@contextlib.contextmanager
def help_environment() -> Iterator[None]:
    """What ``--help`` is printed in: ``WIDTH`` columns, no colour, and only mfbench's own plugins
    (installed third-party plugins and ``MFBENCH_PLUGINS`` could add options)."""
    wanted = {"COLUMNS": str(WIDTH), "NO_COLOR": "1", "MFBENCH_DISABLE_PLUGIN_AUTOLOAD": "1", "MFBENCH_PLUGINS": None}
    saved = {key: os.environ.get(key) for key in wanted}
    try:
        for key, value in wanted.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def help_parser() -> Any:
    """The parser ``main`` builds for ``mfbench run --help``: the default suite's settings in the
    help, and the built-in plugins' own ``run`` options."""
    from mfbench.cli.entry import build_parser
    from mfbench.plugin.manager import make_plugin_manager
    from mfbench.plugin.options import collect_run_options
    from mfbench.run.suite import DEFAULT_SUITE, load_suite

    return build_parser(load_suite(DEFAULT_SUITE), collect_run_options(make_plugin_manager([])))


def subcommands(parser: Any) -> dict[str, Any]:
    """A parser's subcommands by name, in the order its help lists them."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_helps() -> dict[tuple[str, ...], str]:
    """``mfbench --help`` and every command's (``("data", "download")`` for a nested one), as printed."""
    with help_environment():
        helps: dict[tuple[str, ...], str] = {}

        def walk(path: tuple[str, ...], parser: Any) -> None:
            helps[path] = parser.format_help()
            for name, child in subcommands(parser).items():
                walk((*path, name), child)

        walk((), help_parser())
        return helps


def fence(text: str, language: str = "text") -> str:
    """A fenced block that no run of backticks in ``text`` can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}\n"


def cell(text: Any) -> str:
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def type_text(hint: Any) -> str:
    parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    words = []
    for part in parts:
        if part is type(None):
            words.append("none")
        elif typing.get_origin(part) is not None:
            words.append(repr(part).replace("typing.", ""))
        else:
            words.append(getattr(part, "__name__", str(part)))
    return " or ".join(words)


def default_text(value: Any, shown_default: str | None) -> str:
    if value is None:
        return shown_default or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


#: Values no setting accepts, tried in turn to make a check say what it allows.
PROBES: tuple[Any, ...] = (-1, 2.0, 0, -0.5, "?", [-1])


def range_text(check: Any) -> str:
    """What a setting's range check allows, in the check's own words ("must be at least 1")."""
    if check is None:
        return "any"
    for probe in PROBES:
        try:
            problem = check(probe)
        except Exception:  # a probe of a type the check does not handle
            continue
        if problem:
            return re.sub(r",? got .*$", "", problem)
    return "any"


def settings_table() -> str:
    """The run settings: flags, suite keys, types, defaults, ranges and commands, from their declarations."""
    from mfbench.run.settings import RunConfig, declarations, defaults

    hints = typing.get_type_hints(RunConfig)
    rows = ["| setting | flag | in a suite file | type | default | range | commands |", "|---|---|---|---|---|---|---|"]
    for name, declared in declarations().items():
        flags = ", ".join(f"`{flag}`" for flag in declared.flags(name)) if declared.commands else "—"
        if declared.suite:
            keys = ", ".join(f"`{key}`" for key in (name, *declared.old_names))
            where = f"{keys} (top level{' or a `[[group]]`' if declared.group else ''})"
        else:
            where = "—"
        row = (
            f"`{name}`: {declared.help}",
            flags,
            where,
            type_text(hints[name]),
            default_text(defaults()[name], declared.shown_default),
            "true or false" if hints[name] is bool else range_text(declared.check),
            ", ".join(declared.commands) or "—",
        )
        rows.append("| " + " | ".join(cell(part) for part in row) + " |")
    return "\n".join(rows) + "\n"


def heading(path: tuple[str, ...]) -> str:
    return " ".join(("mfbench", *path))


def cli_page() -> str:
    helps = command_helps()
    commands = ", ".join(f"[`{heading(path)}`](#{'-'.join(('mfbench', *path))})" for path in helps if path)
    parts = [
        "# Command line reference\n",
        "Generated from the code when the site is built (`docs/hooks/generate.py`): each block is what "
        f"`mfbench COMMAND --help` prints in a terminal {WIDTH} columns wide, from the same parser; "
        "`tests/test_docs.py` checks that they agree. `run --help` and `tune --help` state the defaults "
        "of the suite they would run: the default one here (`quick`); `mfbench run --suite NAME --help` "
        "states that suite's. Plugins you install may add `run` options; they are left out here. "
        "The [command line guide](../command-line.md) explains suites, selections and the options.\n",
        f"Commands: {commands}.\n",
        "## Run settings\n",
        "The settings every case of a run shares, each declared once (`RunConfig` in "
        "`mfbench/run/settings.py`): the command line's options, the keys a suite file may set, the checks "
        "and the results file's `config` all come from that declaration. A value given on the command line "
        "wins over the suite's; a `[[group]]` value applies to that group's cases only. Old names are "
        "still accepted, as flags and suite keys, and read from older results files.\n",
        settings_table(),
    ]
    for path, text in helps.items():
        parts.append(f"## {heading(path)}\n")
        parts.append(fence(text))
    return "\n".join(parts)


# -- the results format --------------------------------------------------------------------


def results_schema() -> dict[str, Any]:
    return json.loads((ROOT / "mfbench" / "results" / "results.schema.json").read_text(encoding="utf-8"))


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_type(node: dict[str, Any]) -> str:
    """A field's type in words: ``string``, ``integer or null``, ``array of [case](#case)``..."""
    if "$ref" in node:
        name = ref_name(node["$ref"])
        return f"[{name}](#{name})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in node["enum"])
    if "anyOf" in node:
        return " or ".join(schema_type(option) for option in node["anyOf"])
    kinds = node.get("type")
    if kinds is None:
        return "any"
    words = []
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "array" and "items" in node:
            words.append(f"array of {schema_type(node['items'])}")
        else:
            words.append(kind)
    text = " or ".join(words)
    bounds = [f"≥ {node['minimum']}"] if "minimum" in node else []
    return f"{text} ({', '.join(bounds)})" if bounds else text


def field_rows(node: dict[str, Any], prefix: str = "", extra: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """One table row per property (nested objects' properties as dotted names)."""
    rows = []
    required = set(node.get("required", ()))
    properties = node.get("properties", {})
    for name, child in properties.items():
        description = child.get("description") or (extra or {}).get(name, ("", ""))[1]
        if not description and "const" in child:
            description = f"always {json.dumps(child['const'])}"
        mark = " (required)" if name in required else ""
        rows.append(f"| `{prefix}{name}`{mark} | {cell(schema_type(child))} | {cell(description)} |")
        if child.get("properties"):
            rows.extend(field_rows(child, f"{prefix}{name}.", extra=settings_fields() if name == "config" else None))
    for name, (kind, description) in (extra or {}).items():
        if name not in properties:
            rows.append(
                f"| `{prefix}{name}` | {cell(kind)} | {cell(description)} (written by every run; the schema does not name it) |"
            )
    return rows


def settings_fields() -> dict[str, tuple[str, str]]:
    """The run settings as the ``config`` object holds them: (type, description) by name."""
    from mfbench.run.settings import RunConfig, declarations

    hints = typing.get_type_hints(RunConfig)
    return {name: (type_text(hints[name]), f"the run setting: {declared.help}") for name, declared in declarations().items()}


def table(node: dict[str, Any]) -> str:
    rows = ["| field | type | what it is |", "|---|---|---|", *field_rows(node)]
    return "\n".join(rows) + "\n"


def results_page() -> str:
    schema = results_schema()
    parts = [
        "# Results format reference\n",
        "Generated from the JSON Schema the package ships, `mfbench/results/results.schema.json` "
        '(`importlib.resources.files("mfbench.results") / "results.schema.json"`), when the site is '
        "built. Every file `report`, `compare`, `plot` and `--resume` read is checked against it. "
        "The [results files](../results.md) page explains the document as a whole, with the fields the "
        "schema leaves open (`machine`, `targets`, `profile`, tuning records...).\n",
        f"{schema.get('description', '')}\n",
        "## The document\n",
        table(schema),
    ]
    for name, node in schema.get("$defs", {}).items():
        parts.append(f"## {name}\n")
        if node.get("description"):
            parts.append(f"{node['description'][0].upper()}{node['description'][1:]}.\n")
        if node.get("properties"):
            parts.append(table(node))
        else:
            parts.append(f"Type: {schema_type({k: v for k, v in node.items() if k != 'description'})}.\n")
    return "\n".join(parts)


# -- the code map -------------------------------------------------------------------------


def docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def public_names(path: Path) -> list[str]:
    """A module's ``__all__``, read without importing it."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            if isinstance(node.value, (ast.List, ast.Tuple)):
                return [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def names_line(path: Path, what: str) -> str:
    names = public_names(path)
    return f"{what}: {', '.join(f'`{name}`' for name in names)}.\n" if names else ""


def markdown_docstring(text: str) -> str:
    """reST roles (``:class:`X```) as plain code spans."""
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)


def first_paragraph(text: str) -> str:
    return " ".join(markdown_docstring(text).split("\n\n")[0].split())


def folders() -> list[str]:
    """The core's folders (packages), lowest floor first; any not in ``FLOORS`` after them."""
    package = ROOT / "mfbench"
    found = sorted(str(p.parent.relative_to(package)) for p in package.rglob("__init__.py") if p.parent != package)
    found = [f for f in found if not f.endswith("suites")]
    return [f for f in FLOORS if f in found] + [f for f in found if f not in FLOORS]


def code_map_page() -> str:
    package = ROOT / "mfbench"
    parts = [
        "# Code map\n",
        "Generated from the code when the site is built: each folder of the core with its "
        "`__init__.py` docstring, and each module with the first paragraph of its own. Folders are "
        "floors, lowest first; see [the layout](../layout.md).\n",
        "## Top level\n",
        "| module | what it is |",
        "|---|---|",
    ]
    for path in sorted(package.glob("*.py")):
        parts.append(f"| `mfbench/{path.name}` | {cell(first_paragraph(docstring(path)) or '—')} |")
    parts.append("")
    parts.append(names_line(package / "__init__.py", "The names plugin authors import from `mfbench` (`mfbench.__all__`)"))
    for folder in folders():
        parts.append(f"## mfbench/{folder}/\n")
        parts.append(markdown_docstring(docstring(package / folder / "__init__.py")).strip() + "\n")
        parts.append(names_line(package / folder / "__init__.py", f"The names `mfbench.{folder.replace('/', '.')}` exports"))
        modules = sorted(p for p in (package / folder).glob("*.py") if p.name != "__init__.py")
        if modules:
            parts.extend(["| module | what it is |", "|---|---|"])
            for path in modules:
                parts.append(f"| `{path.name}` | {cell(first_paragraph(docstring(path)) or '—')} |")
            parts.append("")
    return "\n".join(parts)


# -- MkDocs events ------------------------------------------------------------------------

#: Generated pages, and what writes each. The files in docs/ are stubs that say so (GitHub shows
#: them, and links to them resolve there); at build time their text is replaced by what is generated.
PAGES = {
    "reference/cli.md": cli_page,
    "reference/results-format.md": results_page,
    "reference/code-map.md": code_map_page,
}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    missing = [uri for uri in PAGES if files.get_file_from_path(uri) is None]
    if missing:
        raise RuntimeError(f"docs/hooks/generate.py: the stub page(s) {', '.join(missing)} are missing from docs/")
    for picture in sorted(name for name in pictures(Path(config["docs_dir"])) if (ROOT / "results" / name).is_file()):
        files.append(File.generated(config, f"results/{picture}", abs_src_path=str(ROOT / "results" / picture)))
    return files


def pictures(docs_dir: Path) -> set[str]:
    """The names of the results/ pictures the pages show."""
    return {name for page in docs_dir.rglob("*.md") for name in PICTURES.findall(page.read_text(encoding="utf-8"))}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """A generated page's text in place of its stub; ``../results/X.png`` (the repository's
    folder, as GitHub shows it) pointed at the copy in the site."""
    if page.file.src_uri in PAGES:
        return PAGES[page.file.src_uri]()
    depth = page.file.src_uri.count("/")

    def relink(match: re.Match[str]) -> str:
        if not (ROOT / "results" / match[1]).is_file():
            return match[0]  # left as it is, for the link check to report
        return f"]({'../' * depth}results/{match[1]})"

    return PICTURES.sub(relink, markdown)
