"""The ``mfbench`` command line: run, list, report, data."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

import pluggy
from tabulate import tabulate

from . import __version__
from .devices import DEFAULT_DEVICES
from .errors import MfbenchError, SelectionError, unknown_name
from .manager import PLUGINS_ENV, make_plugin_manager
from .parts import Dataset
from .paths import cache_dir, default_results_dir
from .plan import RunConfig, plan
from .registry import Registry, collect
from .report import case_line, check_format, render_table
from .results import ResultsFile, default_results_path, load_results
from .runner import Runner
from .selection import GRAMMAR_HELP, format_params

DEFAULT_DATASETS = ("sprand",)
DEFAULT_MODELS = ("dot",)

DESCRIPTION = "mfbench: which matrix-factorization training strategy is fastest to a given quality, on your data and hardware?"
RUN_EPILOG = f"""\
selections:
{textwrap.fill(GRAMMAR_HELP, 78, initial_indent="  ", subsequent_indent="  ")}

examples:
  mfbench run                                   the default suite
  mfbench run -s reference --device cpu --epochs 1
  mfbench run -d "sprand[density=[0.01,0.02]]" -m dot -s reference
  mfbench run -s reference -p my_strategies     with a plugin module on PYTHONPATH

Without -d/-m/-s the default suite runs: every registered strategy on
{', '.join(DEFAULT_DATASETS)} (the notebook's data) with the {', '.join(DEFAULT_MODELS)} model.
Exit status: 0 when every case ended ok, skipped, diverged or timeout; 1 when any case
ended in error; 2 for a usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    plugin_opts = argparse.ArgumentParser(add_help=False)
    plugin_opts.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"load plugin MODULE by import path (repeatable), or block one with no:NAME; "
        f"{PLUGINS_ENV}=mod1,mod2 does the same",
    )
    parser = argparse.ArgumentParser(prog="mfbench", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[plugin_opts],
        help="run a benchmark suite",
        description="Cross datasets x models x strategies (x parameter grids) x devices, time every case, report.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-d", "--dataset", action="append", metavar="SEL", help="data generator (repeatable)")
    run.add_argument("-m", "--model", action="append", metavar="SEL", help="model variant (repeatable)")
    run.add_argument("-s", "--strategy", action="append", metavar="SEL", help="training strategy (repeatable)")
    run.add_argument(
        "--device", action="append", metavar="DEV", help="cpu, cuda or cuda:N (repeatable; default: cpu and cuda)"
    )
    run.add_argument("--epochs", type=int, default=RunConfig.epochs, help="timed epochs per repeat (default %(default)s)")
    run.add_argument("--repeats", type=int, default=RunConfig.repeats, help="repeats per case, each from a fresh model (default %(default)s)")
    run.add_argument("--seed", type=int, default=RunConfig.seed, help="seed for data, split, init and order (default %(default)s)")
    run.add_argument("--factors", type=int, help="n_factors of every model that has it, unless given in -m")
    run.add_argument("--test-fraction", type=float, default=RunConfig.test_fraction, help="held-out share (default %(default)s)")
    run.add_argument("--timeout", type=float, help="seconds per case, checked after each epoch (default: none)")
    run.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format (default %(default)s)")
    run.add_argument("-o", "--output", type=Path, help=f"results JSON path (default: {default_results_dir()}/run-TIMESTAMP.json)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the final table and the results path")

    lst = sub.add_parser("list", parents=[plugin_opts], help="list datasets, models and strategies, and their plugins")
    lst.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")

    rep = sub.add_parser("report", help="print a saved run's table again")
    rep.add_argument("results", type=Path, help="a results JSON file written by mfbench run")
    rep.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")

    data = sub.add_parser("data", help="manage data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    download = data_sub.add_parser("download", parents=[plugin_opts], help="download and cache a public data set")
    download.add_argument("name", help="a download name, e.g. ml-100k (see mfbench list)")
    download.add_argument("--cache", type=Path, help="cache folder (default: $MFBENCH_CACHE or ~/.cache/mfbench)")
    return parser


def load_registry(plugins: Sequence[str]) -> tuple[pluggy.PluginManager, Registry]:
    pm = make_plugin_manager(plugins)
    return pm, collect(pm)


def machine_info(pm: pluggy.PluginManager) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for part in reversed(pm.hook.mfbench_machine_info()):
        if part:
            info.update(part)
    return info


def cmd_run(args: argparse.Namespace) -> int:
    check_format(args.format)
    pm, registry = load_registry(args.plugins)
    config = RunConfig(
        epochs=args.epochs,
        repeats=args.repeats,
        seed=args.seed,
        test_fraction=args.test_fraction,
        factors=args.factors,
        timeout=args.timeout,
    )
    selections = {
        "datasets": args.dataset or list(DEFAULT_DATASETS),
        "models": args.model or list(DEFAULT_MODELS),
        "strategies": args.strategy or sorted(registry.strategies),
        "devices": args.device or list(DEFAULT_DEVICES),
    }
    cases = plan(registry, selections["datasets"], selections["models"], selections["strategies"], selections["devices"], config)
    path = args.output or default_results_path(default_results_dir())
    header = {
        "mfbench_version": __version__,
        "command": ["mfbench", *sys.argv[1:]],
        "machine": machine_info(pm),
        "plugins": sorted({e.origin for e in registry}),
        "selections": selections,
        "config": {k: getattr(config, k) for k in ("epochs", "repeats", "seed", "test_fraction", "factors", "timeout")},
    }
    results = ResultsFile(path, header)
    say = (lambda *a: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"mfbench: {len(cases)} case(s); results are written to {path} as each finishes")
    progress = sys.stderr.isatty() and not args.quiet
    total = len(cases)

    def on_epoch(case, repeat, epoch, entry):
        if progress:
            print(
                f"\r  {case.id}: repeat {repeat + 1}/{config.repeats} epoch {epoch + 1}/{config.epochs} "
                f"({entry['seconds']:.2f} s, test RMSE {entry['test_rmse']:.4f})\x1b[K",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def on_case(record):
        results.add(record)
        pm.hook.mfbench_case_finished(case=record)
        if progress:
            print("\r\x1b[K", end="", file=sys.stderr)
        say(case_line(len(results.document["cases"]), total, record))

    runner = Runner(config, on_case=on_case, on_epoch=on_epoch)
    try:
        runner.run(cases)
    except KeyboardInterrupt:
        done = len(results.document["cases"])
        print(f"\nmfbench: interrupted; the {done} finished case(s) are in {path}", file=sys.stderr)
        return 130
    results.finish()
    print(render_table(results.document["cases"], args.format))
    print(f"\nresults: {path}")
    errors = [c for c in results.document["cases"] if c["status"] == "error"]
    if errors:
        print(f"mfbench: {len(errors)} case(s) ended in error; their tracebacks are in the results file", file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    check_format(args.format)
    _, registry = load_registry(args.plugins)
    for title, table in (("datasets", registry.datasets), ("models", registry.models), ("strategies", registry.strategies)):
        rows = []
        for name in sorted(table):
            entry = table[name]
            row = [name, format_params(dict(entry.cls.params)), entry.origin, entry.cls.summary()]
            if title == "strategies":
                cls = entry.cls
                row[2:2] = [",".join(cls.devices), "exact" if cls.exact else "approximate"]  # type: ignore[attr-defined]
            if title == "datasets" and getattr(entry.cls, "downloads", None):
                row[-1] += f" (downloads: {', '.join(entry.cls.downloads)})"  # type: ignore[attr-defined]
            rows.append(row)
        headers = ["name", "params (defaults)", "plugin", "description"]
        if title == "strategies":
            headers[2:2] = ["devices", "kind"]
        print(f"{title}:")
        print(tabulate(rows, headers=headers, tablefmt=args.format, disable_numparse=True))
        print()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    document = load_results(args.results)
    print(render_table(document["cases"], check_format(args.format)))
    if not document.get("complete"):
        print(f"\nnote: {args.results} is from a run that did not finish; it holds the cases that did", file=sys.stderr)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command != "download":
        raise SelectionError("use: mfbench data download NAME")
    _, registry = load_registry(args.plugins)
    offers = {name: entry.cls for entry in registry.datasets.values() for name in getattr(entry.cls, "downloads", {})}
    if args.name not in offers:
        raise SelectionError(unknown_name("download", args.name, offers))
    dataset: type[Dataset] = offers[args.name]  # type: ignore[assignment]
    path = dataset.download(args.name, args.cache or cache_dir())
    print(f"{args.name}: {path}")
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "report": cmd_report, "data": cmd_data}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except MfbenchError as exc:
        print(f"mfbench: error: {exc}", file=sys.stderr)
        return 2
