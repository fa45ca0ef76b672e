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
from .execute import Overrides, execute
from .executors import DEFAULT_EXECUTOR, collect_executors
from .errors import MfbenchError, SelectionError, unknown_name
from .manager import PLUGINS_ENV, make_plugin_manager
from .parts import Dataset
from .paths import cache_dir, default_results_dir
from .plan import RunConfig
from .registry import Registry, collect
from .report import check_format, render_csv, render_table
from .results import default_results_path, load_results
from .suite import DEFAULT_SUITE, SETTINGS, builtin_suites, load_suite
from .selection import GRAMMAR_HELP, format_params, parse_value

DESCRIPTION = "mfbench: which matrix-factorization training strategy is fastest to a given quality, on your data and hardware?"
RUN_EPILOG = f"""\
selections:
{textwrap.fill(GRAMMAR_HELP, 78, initial_indent="  ", subsequent_indent="  ")}

examples:
  mfbench run                                   the default suite ({DEFAULT_SUITE})
  mfbench run --suite full                      a built-in suite (mfbench list shows them)
  mfbench run -s reference --device cpu --epochs 1
  mfbench run -d "sprand[density=[0.01,0.02]]" -m dot -s reference
  mfbench run -s reference -p my_strategies     with a plugin module on PYTHONPATH

A suite (--suite NAME or PATH.toml) says what to cross and how; -d/-m/-s/--device
and the numeric options given on the command line override the suite's.

executors (--executor): inprocess, the default, runs the cases one after another here.
  dask runs each case on a Dask worker and gathers the records into the one results
  file as they come back: mfbench run --executor dask --scheduler tcp://HOST:8786
  (or --scheduler FILE from `dask scheduler --scheduler-file FILE`). Each worker
  process is sent one case at a time, whatever its --nthreads; workers on one host
  run cases side by side (the run warns), so start one per host for clean timings.
  The calibration is timed once per host, and each case's relative throughput uses
  its own host's score. A worker that dies mid-case gives that case an error row;
  the others finish. Every case records its host (the table shows it when there are
  several). Dask's nanny starts workers with OMP_NUM_THREADS=1: compare with an
  in-process run at --threads 1. Needs the dask extra: pip install 'mfbench[dask]'.

Exit status: 0 when every case ended ok, skipped, diverged or timeout; 1 when any case
ended in error; 2 for a usage error; 130 when interrupted (finished cases are kept).
"""


COMPARE_EPILOG = """\
speed verdicts: the ratio NEW/BASE of median epoch times, with a 95% interval from a
bootstrap over repeats and epochs, widened by the machine's drift that the calibration
workload saw (timed before each run and after every case): 'slower'/'faster' when the
whole interval is on one side of 1 and the estimate beyond the margin (--min-change),
'no change' when the interval is within the margin, else 'too noisy to tell'. Two runs
made apart on a shared machine often are: measure BASE and NEW interleaved with
`mfbench ab` to resolve small changes.

--format github prints Markdown for a job summary or a pull-request comment.

Exit status: 0; with --fail-threshold, 1 when it tripped (the cases are listed), 3 when
nothing tripped but some case is too noisy to rule it out; 2 for a usage error.
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
    run.add_argument("--suite", default=DEFAULT_SUITE, metavar="NAME", help="a built-in suite name or a .toml path (default %(default)s)")
    run.add_argument("--epochs", type=int, help=f"counted epochs per repeat (default {RunConfig.epochs})")
    run.add_argument("--repeats", type=int, help=f"repeats per case, each from a fresh model (default {RunConfig.repeats})")
    run.add_argument("--warmup", type=int, help=f"uncounted warm-up epochs at the start of each repeat (default {RunConfig.warmup})")
    run.add_argument("--seed", type=int, help=f"seed for data, split, init and order (default {RunConfig.seed})")
    run.add_argument("--factors", type=int, help="n_factors of every model that has it, unless given in -m")
    run.add_argument("--test-fraction", type=float, help=f"held-out share (default {RunConfig.test_fraction})")
    run.add_argument("--timeout", type=float, help="seconds per case, checked after each epoch (default: none)")
    run.add_argument("--threads", type=int, metavar="N", help="torch intra-op threads for the run (default: torch's, one per core)")
    run.add_argument("--target-rmse", type=float, metavar="X", help="report time-to-target: training seconds until held-out RMSE <= X")
    run.add_argument("--no-calibration", action="store_true", help="skip the machine calibration workload (no relative throughput)")
    run.add_argument(
        "--executor", default=DEFAULT_EXECUTOR, metavar="NAME",
        help="where the cases run: inprocess (default), dask, or another executor plugin's (see below)",
    )
    run.add_argument(
        "--scheduler", metavar="ADDRESS_OR_FILE",
        help="for --executor dask: the scheduler's address (tcp://host:8786) or a scheduler file",
    )
    run.add_argument(
        "--executor-option", action="append", default=[], metavar="KEY=VALUE",
        help="any other option of the executor (repeatable), e.g. timeout=60 (seconds to reach a Dask scheduler and its workers)",
    )
    run.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format (default %(default)s)")
    run.add_argument("-o", "--output", type=Path, help=f"results JSON path (default: {default_results_dir()}/run-TIMESTAMP.json)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress: print only the final table and the results path")

    lst = sub.add_parser("list", parents=[plugin_opts], help="list datasets, models and strategies, and their plugins")
    lst.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")

    rep = sub.add_parser("report", help="print a saved run's table again")
    rep.add_argument("results", type=Path, help="a results JSON file written by mfbench run")
    rep.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")
    rep.add_argument("--csv", action="store_true", help="write the table as CSV with raw numbers")
    rep.add_argument("--target-rmse", type=float, metavar="X", help="time-to-target for this X (default: the run's)")

    cmp = sub.add_parser(
        "compare",
        help="compare two results files case by case",
        description="Match cases by identity and show new/base ratios of throughput, time-to-target and held-out RMSE, "
        "with a verdict on speed from a 95%% confidence interval of the ratio: slower, faster, no change, or too "
        "noisy to tell.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("base", type=Path, help="the baseline results file")
    cmp.add_argument("new", type=Path, help="the results file to judge")
    cmp.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")
    cmp.add_argument("--target-rmse", type=float, metavar="X", help="time-to-target threshold (default: the runs' own)")
    cmp.add_argument("--normalize", action="store_true", help="compare calibration-relative throughput (runs from two machines)")
    cmp.add_argument("--fail-threshold", type=float, metavar="PCT",
                     help="gate: exit 1 when a case is slower, or its RMSE worse, by more than PCT percent, or a base case is "
                     "missing from NEW; 3 when too noisy to rule out a slowdown beyond PCT")
    cmp.add_argument("--allow-missing", action="store_true",
                     help="with --fail-threshold: base cases missing from (or skipped in) NEW, or an unfinished NEW, do not fail")
    cmp.add_argument("--min-change", type=float, metavar="PCT",
                     help="smallest speed change reported as one: 'no change' needs the interval within +-PCT "
                     "(default: the fail threshold, else 5)")

    from .ab_cli import add_parser as add_ab_parser

    add_ab_parser(sub, plugin_opts)

    plt = sub.add_parser("plot", help="plot held-out RMSE against training time, and throughput")
    plt.add_argument("results", type=Path, help="a results JSON file")
    plt.add_argument("-o", "--output", type=Path, help="the PNG file to write (default: RESULTS with .png)")
    plt.add_argument("--target-rmse", type=float, metavar="X", help="draw this target (default: the run's)")

    data = sub.add_parser("data", help="manage data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    download = data_sub.add_parser("download", parents=[plugin_opts], help="download and cache a public data set")
    download.add_argument("name", help="a download name, e.g. ml-100k (see mfbench list)")
    download.add_argument("--cache", type=Path, help="cache folder (default: $MFBENCH_CACHE or ~/.cache/mfbench)")
    return parser


def load_registry(plugins: Sequence[str]) -> tuple[pluggy.PluginManager, Registry]:
    pm = make_plugin_manager(plugins)
    return pm, collect(pm)


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """--executor-option KEY=VALUE (values parsed like selection values) and --scheduler."""
    options: dict[str, Any] = {}
    for text in args.executor_option:
        key, eq, value = text.partition("=")
        if not eq or not key.strip():
            raise SelectionError(f"--executor-option takes KEY=VALUE, got {text!r}")
        options[key.strip()] = parse_value(value)
    if args.scheduler is not None:
        options["scheduler"] = args.scheduler
    return options


def cmd_run(args: argparse.Namespace) -> int:
    check_format(args.format)
    pm, registry = load_registry(args.plugins)
    suite = load_suite(args.suite)
    settings = {key: getattr(args, key) for key in SETTINGS}
    overrides = Overrides(args.dataset, args.model, args.strategy, args.device, settings)
    output = args.output or default_results_path(default_results_dir())
    results, interrupted = execute(
        pm, registry, suite, overrides, output, calibration=not args.no_calibration, quiet=args.quiet,
        executor=args.executor, executor_options=executor_options(args),
    )
    cases = results.document["cases"]
    if results.path is None:  # a torchrun rank other than 0: rank 0 reports
        return 1 if any(c["status"] == "error" for c in cases) else 0
    if interrupted:
        print(f"\nmfbench: interrupted; the {len(cases)} finished case(s) are in {output}", file=sys.stderr)
        return 130
    print(render_table(cases, args.format, hosts=shows_hosts(results.document)))
    print(f"\nresults: {output}")
    errors = [c for c in cases if c["status"] == "error"]
    if errors:
        print(f"mfbench: {len(errors)} case(s) ended in error; their tracebacks are in the results file", file=sys.stderr)
        return 1
    return 0


def shows_hosts(document: dict) -> bool | None:
    """The table names each case's host when another executor than the in-process one ran it."""
    name = (document.get("executor") or {}).get("name", DEFAULT_EXECUTOR)
    return True if name != DEFAULT_EXECUTOR else None


def strategy_kind(cls: type) -> str:
    """exact/approximate, and what else a reader of ``list`` must know before comparing it."""
    words = ["exact" if cls.exact else "approximate"]  # type: ignore[attr-defined]
    if not cls.stepwise:  # type: ignore[attr-defined]
        words.append("whole fits")
    if cls.objective != "rating":  # type: ignore[attr-defined]
        words.append(f"{cls.objective} objective")  # type: ignore[attr-defined]
    return ", ".join(words)


def cmd_list(args: argparse.Namespace) -> int:
    check_format(args.format)
    pm, registry = load_registry(args.plugins)
    for title, table in (("datasets", registry.datasets), ("models", registry.models), ("strategies", registry.strategies)):
        rows = []
        for name in sorted(table):
            entry = table[name]
            row = [name, format_params(dict(entry.cls.params)), entry.origin, entry.cls.summary()]
            if title == "strategies":
                cls = entry.cls
                row[2:2] = [",".join(cls.devices), strategy_kind(cls)]
            if title == "datasets" and getattr(entry.cls, "downloads", None):
                row[-1] += f" (downloads: {', '.join(entry.cls.downloads)})"  # type: ignore[attr-defined]
            rows.append(row)
        headers = ["name", "params (defaults)", "plugin", "description"]
        if title == "strategies":
            headers[2:2] = ["devices", "kind"]
        print(f"{title}:")
        print(tabulate(rows, headers=headers, tablefmt=args.format, disable_numparse=True))
        print()
    executors, executors_aside = collect_executors(pm)
    rows = [[name, format_params(dict(e.cls.params)), e.origin, e.cls.summary()] for name, e in sorted(executors.items())]
    print("executors (mfbench run --executor NAME):")
    print(tabulate(rows, headers=["name", "options (defaults)", "plugin", "description"], tablefmt=args.format, disable_numparse=True))
    print()
    aside = [
        [kind, name, entry.origin, entry.cls.unavailable]
        for kind, table in [*registry.unavailable.items(), ("executor", executors_aside)]
        for name, entry in sorted(table.items())
    ]
    if aside:
        print("unavailable here (registered by their plugins, but they cannot run on this machine):")
        print(tabulate(aside, headers=["kind", "name", "plugin", "why"], tablefmt=args.format, disable_numparse=True))
        print()
    suites = [[name, load_suite(str(path)).description] for name, path in sorted(builtin_suites().items())]
    print("suites (mfbench run --suite NAME):")
    print(tabulate(suites, headers=["name", "description"], tablefmt=args.format, disable_numparse=True))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    document = load_results(args.results)
    if args.csv:
        sys.stdout.write(render_csv(document["cases"], args.target_rmse, hosts=shows_hosts(document)))
    else:
        print(render_table(document["cases"], check_format(args.format), args.target_rmse, hosts=shows_hosts(document)))
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


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_documents, render_comparison

    check_format(args.format)
    comparison = compare_documents(
        load_results(args.base),
        load_results(args.new),
        target=args.target_rmse,
        normalize=args.normalize,
        fail_threshold=args.fail_threshold,
        margin=args.min_change,
        allow_missing=args.allow_missing,
    )
    print(render_comparison(comparison, args.format))
    return comparison.exit_code


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_results

    document = load_results(args.results)
    target = args.target_rmse if args.target_rmse is not None else document.get("config", {}).get("target_rmse")
    path = plot_results(document, args.output or args.results.with_suffix(".png"), target=target)
    print(f"plot: {path}")
    return 0


def cmd_ab(args: argparse.Namespace) -> int:
    from .ab_cli import cmd_ab as run_ab_command

    return run_ab_command(args)


COMMANDS = {
    "run": cmd_run,
    "ab": cmd_ab,
    "list": cmd_list,
    "report": cmd_report,
    "compare": cmd_compare,
    "plot": cmd_plot,
    "data": cmd_data,
}


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
