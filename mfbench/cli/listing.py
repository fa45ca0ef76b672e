"""``mfbench list``: every dataset, model, strategy, executor and suite, with the plugin that provided it."""

from __future__ import annotations

import argparse
from typing import Any

from ..plugin.parts import Strategy
from ..plugin.search_space import describe_space
from ..report import escape
from ..report.tables import check_format
from ..run.executors import collect_executors
from ..run.selection import format_params
from ..run.suite import builtin_suites, load_suite
from .common import Shared, load_registry


def add_parser(sub: Any, shared: Shared) -> None:
    lst = sub.add_parser("list", parents=[shared.plugin_opts], help="list datasets, models and strategies, and their plugins")
    lst.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")
    lst.set_defaults(handler=main)


def strategy_kind(cls: type[Strategy]) -> str:
    """exact/approximate, and what else a reader of ``list`` must know before comparing it."""
    words = ["exact" if cls.exact else "approximate"]
    if not cls.stepwise:
        words.append("whole fits")
    if cls.objective != "rating":
        words.append(f"{cls.objective} objective")
    return ", ".join(words)


def main(args: argparse.Namespace) -> int:
    check_format(args.format)
    pm, registry = load_registry(args.plugins)
    for title, table in (("datasets", registry.datasets), ("models", registry.models), ("strategies", registry.strategies)):
        rows = []
        for name in sorted(table):
            entry = table[name]
            row = [name, format_params(dict(entry.cls.params)), entry.origin, entry.cls.summary()]
            if title == "strategies":
                cls: type[Strategy] = entry.cls  # type: ignore[assignment]
                row[2:2] = [",".join(cls.devices), strategy_kind(cls)]
                row.insert(2, describe_space(getattr(cls, "search_space", {})) or "(none)")
            if title == "models":  # searched with the strategy's space, as model.<param>
                row.insert(2, describe_space(getattr(entry.cls, "search_space", {})) or "(none)")
            downloads = getattr(entry.cls, "downloads", None)
            if title == "datasets" and downloads:
                row[-1] += f" (downloads: {', '.join(downloads)})"
            rows.append(row)
        headers = ["name", "params (defaults)", "plugin", "description"]
        if title == "strategies":
            headers[2:2] = ["devices", "kind"]
            headers.insert(2, "tuned over (mfbench tune)")
        if title == "models":
            headers.insert(2, "tuned over (as model.<param>)")
        print(f"{title}:")
        print(escape.table(rows, headers, args.format))
        print()
    executors, executors_aside = collect_executors(pm)
    rows = [[name, format_params(dict(e.cls.params)), e.origin, e.cls.summary()] for name, e in sorted(executors.items())]
    print("executors (mfbench run --executor NAME):")
    print(escape.table(rows, ["name", "options (defaults)", "plugin", "description"], args.format))
    print()
    aside = [
        [kind, name, entry.origin, entry.cls.unavailable]
        for kind, table in [*registry.unavailable.items(), ("executor", executors_aside)]
        for name, entry in sorted(table.items())
    ]
    if aside:
        print("unavailable here (registered by their plugins, but they cannot run on this machine):")
        print(escape.table(aside, ["kind", "name", "plugin", "why"], args.format))
        print()
    suites = [[name, load_suite(str(path)).description] for name, path in sorted(builtin_suites().items())]
    print("suites (mfbench run --suite NAME):")
    print(escape.table(suites, ["name", "description"], args.format))
    return 0
