"""``mfbench run``: run a suite (or a selection), print the table, write the results file."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..errors import SelectionError
from ..plugin.manager import make_plugin_manager
from ..plugin.options import RunOptions
from ..plugin.registry import collect
from ..report.progress import Progress
from ..report.tablefit import check_columns
from ..report.tables import RESULT_COLUMNS, check_format, render_table
from ..report.tuning import render_profile
from ..results.files import default_results_path
from ..results.paths import check_writable, default_results_dir
from ..run.execute import Overrides, config_for, execute
from ..run.executors import DEFAULT_EXECUTOR, INPROCESS, distributed
from ..run.resume import previous_run
from ..run.selection import GRAMMAR_HELP, parse_value
from ..run.settings import RunConfig
from ..run.suite import DEFAULT_SUITE, load_suite
from ..stats.targets import describe_target
from ..tuning.studies import tuned_parameters
from .common import (
    DEFAULT_STUDIES,
    FORMAT_HELP,
    Shared,
    Terminated,
    add_setting_options,
    given_settings,
    print_answer,
    print_warnings,
    shows_hosts,
    table_view,
    write_html_report,
)
from .tune import tune_cases

EPILOG = f"""\
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

executors (--executor): process, the default, runs each case in its own worker
  process, watched from here: a crash (a signal, an exit, the OOM killer) is one error
  row naming it, --case-timeout kills an epoch that never returns, and the suite goes on.
  inprocess runs the cases one after another in this process (for pdb).
"""
#: After the executors paragraph and the plugins' own (mfbench_add_run_options).
EPILOG_END = """
Exit status: 0 when every case ended ok, skipped, diverged or timeout; 1 when any case
ended in error; 2 for a usage error; 130 when interrupted (Ctrl-C), 143 when terminated
(SIGTERM); the finished cases are kept.
"""


def add_parser(sub: Any, shared: Shared) -> None:
    run = sub.add_parser(
        "run",
        parents=[shared.plugin_opts, shared.case_opts, shared.table_opts],
        help="run a benchmark suite",
        description="Cross datasets x models x strategies (x parameter grids) x devices, time every case, report.",
        epilog=EPILOG + shared.run_options.epilog() + EPILOG_END,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_options(run, "run", shared.suite)
    run.add_argument(
        "--no-calibration", action="store_true", help="skip the machine calibration workload (no relative throughput)"
    )
    run.add_argument(
        "--tuned",
        metavar="STORAGE",
        help="race each strategy with the parameters its study in STORAGE chose (made by mfbench tune: a SQLite "
        "path or an Optuna storage URL); without it the race is at the selected (default) parameters",
    )
    run.add_argument(
        "--executor",
        default=DEFAULT_EXECUTOR,
        metavar="NAME",
        help="where the cases run: process (default: a worker process per case), inprocess (for pdb), "
        "or an executor plugin's (mfbench list shows them; see below)",
    )
    shared.run_options.install(run)
    run.add_argument(
        "--executor-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other option of the executor (repeatable), e.g. connect_timeout=60; mfbench list shows each executor's options",
    )
    run.add_argument("--format", default="simple", metavar="FMT", help=FORMAT_HELP)
    run.add_argument("-o", "--output", type=Path, help=f"results JSON path (default: {default_results_dir()}/run-TIMESTAMP.json)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="with -o FILE: keep FILE's finished cases (same case, data and options), run the rest",
    )
    run.add_argument("--force", action="store_true", help="with -o FILE: overwrite an existing FILE")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress: print only the final table and the results path")
    run.set_defaults(handler=main)


def executor_options(args: argparse.Namespace, run_options: RunOptions | None = None) -> dict[str, Any]:
    """--executor-option KEY=VALUE (values parsed like selection values), then plugins' own run options."""
    options: dict[str, Any] = {}
    for text in args.executor_option:
        key, eq, value = text.partition("=")
        if not eq or not key.strip():
            raise SelectionError(f"--executor-option takes KEY=VALUE, got {text!r}")
        options[key.strip()] = parse_value(value)
    if run_options is not None:
        options.update(run_options.values(args))
    return options


def progress_display(total: int, config: RunConfig, quiet: bool) -> Progress:
    """The live bar (or a line per case) of ``mfbench run``: an epoch's progress per repeat."""
    return Progress(total, config.repeats, config.warmup + config.epochs, quiet=quiet)


def main(args: argparse.Namespace) -> int:
    check_format(args.format)
    view = table_view(args)
    check_columns(view.columns, RESULT_COLUMNS)  # before the run, not after it
    # mfbench.cli.main made the plugin manager before parsing, for the plugins' own options.
    pm = getattr(args, "plugin_manager", None) or make_plugin_manager(args.plugins)
    registry = collect(pm)
    suite = load_suite(args.suite)
    overrides = Overrides(args.dataset, args.model, args.strategy, args.device, given_settings(args))
    if (args.resume or args.force) and args.output is None:
        raise SelectionError("--resume and --force need -o FILE: the results file to resume or overwrite")
    output = args.output or default_results_path(default_results_dir())
    previous = None
    if distributed.launched_by_torchrun():
        if args.resume:  # every rank must run the same cases in step
            raise SelectionError("--resume is not available under torchrun: resume the run without it, or use --force")
    if distributed.is_primary():  # under torchrun rank 0 writes the file; the others must not see it as taken
        check_writable(output, "results file (-o)")
        if args.html:
            check_writable(args.html, "HTML report (--html)", ".html")
        previous = previous_run(output, resume=args.resume, force=args.force)
    given_executor_options = executor_options(args, getattr(args, "run_options", None))
    trials = config_for(suite, overrides).tune_trials
    tuned = args.tuned
    if trials is not None:
        tuned = tuned or DEFAULT_STUDIES
        say = (lambda _: None) if args.quiet else print
        # Trials run in worker processes unless the run itself is in this process (pdb).
        trial_executor = INPROCESS if args.executor == INPROCESS else DEFAULT_EXECUTOR
        if tune_cases(registry, suite, overrides, tuned, trials, say=say, pm=pm, executor=trial_executor) is None:
            return 130
    results, interrupted = execute(
        pm,
        registry,
        suite,
        overrides,
        output,
        calibration=not args.no_calibration,
        quiet=args.quiet,
        executor=args.executor,
        executor_options=given_executor_options,
        tuned=tuned_parameters(tuned) if tuned else None,
        previous=previous,
        display=progress_display,
    )
    if results is None:
        raise interrupted or KeyboardInterrupt()  # stopped before the results file began: nothing was measured
    cases = results.document["cases"]
    if results.path is None:  # a torchrun rank other than 0: rank 0 reports
        return 1 if any(c["status"] == "error" for c in cases) else 0
    if interrupted:
        print_warnings(results.document)
        terminated = isinstance(interrupted, Terminated)
        how = "terminated" if terminated else "interrupted"
        print(f"\nmfbench: {how}; the {len(cases)} finished case(s) are in {output}", file=sys.stderr)
        return 143 if terminated else 130
    print(render_table(cases, args.format, hosts=shows_hosts(results.document), view=view))
    print_answer(cases, fmt=args.format)
    print_scores(results.document, args.format)
    print(f"\nresults: {output}")
    if args.html:
        print(f"html: {write_html_report(results.document, args.html)}")
    if not tuned:
        print("parameters: as selected (defaults unless set), not tuned; mfbench tune, then run --tuned, races tuned ones")
    print_warnings(results.document)
    errors = [c for c in cases if c["status"] == "error"]
    if errors:
        print(f"mfbench: {len(errors)} case(s) ended in error; their tracebacks are in the results file", file=sys.stderr)
        return 1
    return 0


def print_scores(document: dict[str, Any], fmt: str) -> None:
    """The derived targets and, over several workloads, the performance-profile score."""
    for target in document.get("targets") or []:
        print(f"\ntarget {target['workload']}: {describe_target(target)}")
    profile = document.get("profile")
    if profile and len(profile["workloads"]) > 1:
        print("\nperformance profile over workloads:")
        print(render_profile(profile, fmt))
