"""What several commands share: their common options (plugins, what to cross, table views), the run
settings as options (generated from their declarations), and small helpers for their output."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from ..plugin.manager import PLUGINS_ENV, make_plugin_manager
from ..plugin.options import RunOptions
from ..plugin.registry import Registry, collect
from ..report import escape
from ..report.answer import render_answer
from ..report.html_report import write_report
from ..report.tablefit import View, parse_columns, terminal_width
from ..results.paths import default_results_dir
from ..run.executors import DEFAULT_EXECUTOR, LOCAL_EXECUTORS
from ..run.settings import declarations, defaults, value_type
from ..run.suite import DEFAULT_SUITE, Suite

FORMAT_HELP = (
    "any tabulate table format (default %(default)s, fitted to the terminal); "
    "export formats (github, latex, tsv...) show every column and row"
)

DEFAULT_STUDIES = str(default_results_dir().parent / "studies.db")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the run stops, its finished cases are kept."""


@dataclass
class Shared:
    """What every command's ``add_parser`` may use: the option groups several commands take, and
    for ``run``/``tune`` the suite their help describes and the loaded plugins' own run options."""

    plugin_opts: argparse.ArgumentParser
    table_opts: argparse.ArgumentParser
    case_opts: argparse.ArgumentParser
    suite: Suite | None
    run_options: RunOptions


def shared_options(suite: Suite | None, run_options: RunOptions | None = None) -> Shared:
    plugin_opts = argparse.ArgumentParser(add_help=False)
    plugin_opts.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"load plugin MODULE by import path (repeatable), or block one with no:NAME; {PLUGINS_ENV}=mod1,mod2 does the same",
    )
    table_opts = argparse.ArgumentParser(add_help=False)
    table_opts.add_argument(
        "--columns",
        metavar="LIST",
        help="comma-separated columns to show, e.g. dataset,strategy,updates/s,test-rmse (default: the essential ones; "
        "--wide lists them all)",
    )
    table_opts.add_argument(
        "--wide",
        action="store_true",
        help="every column and every row, labels in full (default: fit the terminal, collapse rows skipped for one reason)",
    )
    table_opts.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report to FILE")
    return Shared(plugin_opts, table_opts, case_options(suite), suite, run_options or RunOptions())


def case_options(suite: Suite | None) -> argparse.ArgumentParser:
    """What to cross and how: shared by run (which times the cases) and tune (which tunes them)."""
    case_opts = argparse.ArgumentParser(add_help=False)
    case_opts.add_argument("-d", "--dataset", action="append", metavar="SEL", help="data generator (repeatable)")
    case_opts.add_argument("-m", "--model", action="append", metavar="SEL", help="model variant (repeatable)")
    case_opts.add_argument("-s", "--strategy", action="append", metavar="SEL", help="training strategy (repeatable)")
    devices = (
        f"default {', '.join(suite.base['devices'])}, the {suite.name} suite's)"
        if suite and "devices" in suite.base
        else "default: cpu and cuda)"
    )
    case_opts.add_argument("--device", action="append", metavar="DEV", help="cpu, cuda or cuda:N (repeatable; " + devices)
    case_opts.add_argument(
        "--suite", default=DEFAULT_SUITE, metavar="NAME", help="a built-in suite name or a .toml path (default %(default)s)"
    )
    return case_opts


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def default_text(key: str, fallback: str, suite: Suite | None) -> str:
    """What ``--help`` says a setting defaults to: the suite's value where the suite sets one."""
    if suite is not None and key in suite.settings:
        return f"default {shown(suite.settings[key])}, the {suite.name} suite's; {fallback} where a suite sets none"
    in_groups = [g[key] for g in (suite.groups if suite is not None else []) if key in g]
    if suite is not None and in_groups:
        values = ", ".join(shown(v) for v in in_groups)
        return f"default: {values} in the {suite.name} suite's group(s) that set it, {fallback} elsewhere"
    return f"default {fallback}"


def add_setting_options(parser: argparse.ArgumentParser, command: str, suite: Suite | None) -> None:
    """The run settings ``command`` takes, as options: flag, type, metavar and help all come from
    the settings' declarations (mfbench.run.settings), and the help states the suite's defaults."""
    for name, declared in declarations().items():
        if command not in declared.commands:
            continue
        default = defaults()[name]
        kind = value_type(name)
        fallback = declared.shown_default if default is None else shown(default)
        help = f"{declared.help} ({default_text(name, fallback or 'none', suite)})"
        if kind is bool:  # a switch: --name, and --no-name to turn off what a suite turned on
            parser.add_argument(*declared.flags(name), dest=name, action=argparse.BooleanOptionalAction, help=help)
            continue
        parser.add_argument(*declared.flags(name), dest=name, type=declared.parse or kind, metavar=declared.metavar, help=help)


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the command line gave (None: the suite's or the default)."""
    return {name: getattr(args, name) for name in declarations() if getattr(args, name, None) is not None}


def table_view(args: argparse.Namespace) -> View:
    """--columns/--wide, and the width of the terminal the table is printed to."""
    return View(columns=parse_columns(args.columns), wide=args.wide, width=terminal_width(sys.stdout))


def load_registry(plugins: Sequence[str]) -> tuple[pluggy.PluginManager, Registry]:
    pm = make_plugin_manager(plugins)
    return pm, collect(pm)


def print_warnings(document: dict) -> None:
    """What went wrong beside the measurements (plugins' hooks, info()), once, at the end."""
    warnings = list(document.get("warnings") or [])
    for case in document.get("cases", []):
        warnings.extend(f"{w} (case {case['id']!r})" for w in case.get("warnings") or [])
    for warning in warnings:
        print(f"mfbench: warning: {warning}", file=sys.stderr)


def shows_hosts(document: dict) -> bool | None:
    """The table names each case's host when an executor that can use other hosts ran it."""
    name = (document.get("executor") or {}).get("name", DEFAULT_EXECUTOR)
    return True if name not in LOCAL_EXECUTORS else None


def print_answer(cases: list[dict[str, Any]], target: float | None = None, fmt: str = "simple") -> None:
    """The answer lines under the table: per workload, who is fastest and best, with ties and baselines
    (wrapped to the terminal's width, as the table is fitted to it; a Markdown list for Markdown formats)."""
    text = render_answer(cases, target)
    if not text:
        return
    if fmt in escape.MARKDOWN_FORMATS:
        items = [line.removeprefix("- ") for line in text.splitlines()]
        print("\n**answer**\n\n" + "\n".join(f"- {escape.markdown(item)}" for item in items))
        return
    text = escape.printable(text)
    width = terminal_width(sys.stdout)
    lines = text.splitlines() if width is None else [w for line in text.splitlines() for w in wrapped(line, width)]
    print("\nanswer:\n" + "\n".join(lines))


def wrapped(line: str, width: int) -> list[str]:
    return textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False) or [line]


def write_html_report(document: dict, path: Path, target: float | None = None) -> Path:
    return write_report(document, path, target=target)
