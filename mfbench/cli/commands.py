"""The ``mfbench`` commands (run, tune, list, report, compare, plot, data, ab) and ``main``; their options are in cli_parser."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pluggy
import torch
from tabulate import tabulate

from ..data.cache import cache_dir
from ..errors import MfbenchError, SelectionError, unknown_name
from ..plugin.manager import make_plugin_manager
from ..plugin.options import RunOptions, collect_run_options
from ..plugin.parts import Dataset, Strategy
from ..plugin.registry import Registry, collect
from ..plugin.search_space import describe_space
from ..report.tablefit import View, parse_columns, terminal_width
from ..report.tables import check_format, render_csv, render_table
from ..report.tuning import render_profile, render_tuning
from ..results.files import default_results_path, load_results
from ..results.paths import check_writable, default_results_dir
from ..run.execute import Overrides, config_for, execute, plan_suite
from ..run.executors import DEFAULT_EXECUTOR, INPROCESS, LOCAL_EXECUTORS, collect_executors, distributed
from ..run.resume import previous_run
from ..run.selection import format_params, parse_value
from ..run.suite import SETTINGS, builtin_suites, load_suite
from ..stats.performance_profile import performance_profile
from ..stats.summary import case_time_to_target
from .parser import DEFAULT_STUDIES, build_parser, help_suite


def table_view(args: argparse.Namespace) -> View:
    """--columns/--wide, and the width of the terminal the table is printed to."""
    return View(columns=parse_columns(args.columns), wide=args.wide, width=terminal_width(sys.stdout))


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the run stops, its finished cases are kept."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def load_registry(plugins: Sequence[str]) -> tuple[pluggy.PluginManager, Registry]:
    pm = make_plugin_manager(plugins)
    return pm, collect(pm)


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


def cmd_run(args: argparse.Namespace) -> int:
    check_format(args.format)
    # main made the plugin manager before parsing, for the plugins' own options.
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
        previous = previous_run(output, resume=args.resume, force=args.force)
    given_executor_options = executor_options(args, getattr(args, "run_options", None))
    trials = args.tune_trials if args.tune_trials is not None else suite.tune_trials
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
        tuned=tuned,
        previous=previous,
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
    print(render_table(cases, args.format, hosts=shows_hosts(results.document), view=table_view(args)))
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
        origin = "tuned" if target["from_tuned"] else "untuned"
        print(
            f"\ntarget {target['workload']}: {target['target_rmse']:.4f} = (1 + {target['slack']:g}) x best validation "
            f"RMSE {target['best_valid_rmse']:.4f} of {origin} case {target['from_case']}"
        )
    profile = document.get("profile")
    if profile and len(profile["workloads"]) > 1:
        print("\nperformance profile over workloads:")
        print(render_profile(profile, fmt))


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the command line gave (None: the suite's or the default)."""
    return {key: getattr(args, key, None) for key in SETTINGS}


def tune_cases(
    registry: Registry,
    suite: Any,
    overrides: Overrides,
    storage: str,
    trials: int,
    *,
    sampler: str = "qmc",
    pruner: str = "median",
    only: set[str] | None = None,
    target: float | None = None,
    say: Any = print,
    pm: pluggy.PluginManager | None = None,
    executor: str = DEFAULT_EXECUTOR,
) -> list[dict[str, Any]] | None:
    """Tune every planned case into ``storage``; the studies' summaries, or None when interrupted."""
    from ..tuning.tuner import Tuner

    # Only a target given to tune makes the objective time-to-target: a suite's targets are
    # for its races (and "auto" ones are derived from tuned races, so they cannot steer tuning).
    config = replace(config_for(suite, overrides), target_rmse=target)
    cases, _ = plan_suite(registry, suite, overrides, config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    tuner = Tuner(storage, config, trials=trials, sampler=sampler, pruner=pruner, only=only, say=say, pm=pm, executor=executor)
    say(f"mfbench tune: {len(cases)} case(s), {trials} trials each, studies in {tuner.storage_text}")
    summaries = []
    try:
        for index, case in enumerate(cases, 1):
            say(f"[{index}/{len(cases)}] {case.id}")
            summary = tuner.tune(case)
            if summary["status"] == "skipped":
                say(f"  skipped: {summary['reason']}")
            summaries.append(summary)
    except KeyboardInterrupt:
        print(
            f"\nmfbench: interrupted; finished trials are kept in {tuner.storage_text}: run the same command again to resume",
            file=sys.stderr,
        )
        return None
    return summaries


def cmd_tune(args: argparse.Namespace) -> int:
    check_format(args.format)
    if args.target_rmse == "auto":
        raise SelectionError("mfbench tune takes a numeric --target-rmse (or none); 'auto' targets come from tuned races")
    pm, registry = load_registry(args.plugins)
    suite = load_suite(args.suite)
    overrides = Overrides(args.dataset, args.model, args.strategy, args.device, given_settings(args))
    only = set(args.params.split(",")) if args.params else None
    summaries = tune_cases(
        registry,
        suite,
        overrides,
        args.storage,
        args.trials,
        sampler=args.sampler,
        pruner=args.pruner,
        only=only,
        target=args.target_rmse,
        pm=pm,
        executor=args.executor,
    )
    if summaries is None:
        return 130
    print(render_tuning(summaries, args.format))
    print(f"\nstudies: {args.storage}; race them with: mfbench run ... --tuned {args.storage}")
    return 0


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


def strategy_kind(cls: type[Strategy]) -> str:
    """exact/approximate, and what else a reader of ``list`` must know before comparing it."""
    words = ["exact" if cls.exact else "approximate"]
    if not cls.stepwise:
        words.append("whole fits")
    if cls.objective != "rating":
        words.append(f"{cls.objective} objective")
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
                cls: type[Strategy] = entry.cls  # type: ignore[assignment]
                row[2:2] = [",".join(cls.devices), strategy_kind(cls)]
                row.insert(2, describe_space(getattr(cls, "search_space", {})) or "(none)")
            downloads = getattr(entry.cls, "downloads", None)
            if title == "datasets" and downloads:
                row[-1] += f" (downloads: {', '.join(downloads)})"
            rows.append(row)
        headers = ["name", "params (defaults)", "plugin", "description"]
        if title == "strategies":
            headers[2:2] = ["devices", "kind"]
            headers.insert(2, "tuned over (mfbench tune)")
        print(f"{title}:")
        print(tabulate(rows, headers=headers, tablefmt=args.format, disable_numparse=True))
        print()
    executors, executors_aside = collect_executors(pm)
    rows = [[name, format_params(dict(e.cls.params)), e.origin, e.cls.summary()] for name, e in sorted(executors.items())]
    print("executors (mfbench run --executor NAME):")
    print(
        tabulate(
            rows, headers=["name", "options (defaults)", "plugin", "description"], tablefmt=args.format, disable_numparse=True
        )
    )
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


def write_html_report(document: dict, path: Path, target: float | None = None) -> Path:
    from ..report.html_report import write_report

    return write_report(document, path, target=target)


def run_profile(document: dict[str, Any], target: float | None) -> dict[str, Any]:
    """The run's profile; recomputed when a different target is asked for."""
    if target is None and document.get("profile"):
        return document["profile"]
    cases = document["cases"]
    if target is not None:
        cases = [
            dict(
                c, summary={**(c.get("summary") or {}), "target_rmse": target, "time_to_target_s": case_time_to_target(c, target)}
            )
            for c in cases
        ]
    return performance_profile(cases)


def cmd_report(args: argparse.Namespace) -> int:
    document = load_results(args.results)
    view = table_view(args)
    if args.profile:
        profile = run_profile(document, args.target_rmse)
        if not profile["strategies"]:
            raise MfbenchError(f"{args.results} has no time-to-target to score: give --target-rmse X")
        print(render_profile(profile, check_format(args.format)))
        return 0
    if args.csv:
        sys.stdout.write(render_csv(document["cases"], args.target_rmse, hosts=shows_hosts(document)))
    else:
        print(
            render_table(document["cases"], check_format(args.format), args.target_rmse, hosts=shows_hosts(document), view=view)
        )
    if args.html:
        print(f"html: {write_html_report(document, args.html, args.target_rmse)}", file=sys.stderr)
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
    dataset: type[Dataset] = offers[args.name]
    path = dataset.download(args.name, args.cache or cache_dir())
    print(f"{args.name}: {path}")
    return 0


def side_names(base: Path, new: Path) -> tuple[str, str]:
    """The two files' names as a page shows them: file names, or whole paths where those are alike."""
    return (base.name, new.name) if base.name != new.name else (str(base), str(new))


def cmd_compare(args: argparse.Namespace) -> int:
    from ..report.compare import compare_documents
    from ..report.comparison import render_comparison

    check_format(args.format)
    view = table_view(args)
    base, new = load_results(args.base), load_results(args.new)
    comparison = compare_documents(
        base,
        new,
        target=args.target_rmse,
        normalize=args.normalize,
        fail_threshold=args.fail_threshold,
        margin=args.min_change,
        allow_missing=args.allow_missing,
    )
    print(render_comparison(comparison, args.format, view=view))
    if args.html:
        from ..report.html_compare import write_comparison_report

        print(
            f"html: {write_comparison_report(base, new, comparison, args.html, side_names(args.base, args.new))}", file=sys.stderr
        )
    return comparison.exit_code


def cmd_plot(args: argparse.Namespace) -> int:
    from ..report.plot import plot_results

    document = load_results(args.results)
    if args.profile:
        from ..stats.performance_profile import plot_profile

        profile = run_profile(document, args.target_rmse)
        if not profile["strategies"]:
            raise MfbenchError(f"{args.results} has no time-to-target to score: give --target-rmse X")
        path = plot_profile(profile, args.output or args.results.with_name(args.results.stem + "-profile.png"))
        print(f"plot: {path}")
        return 0
    target = args.target_rmse if args.target_rmse is not None else document.get("config", {}).get("target_rmse")
    if not isinstance(target, (int, float)):
        target = None
    output = check_writable(args.output or args.results.with_suffix(".png"), "plot file (-o)")
    path = plot_results(document, output, target=target)
    print(f"plot: {path}")
    return 0


def cmd_ab(args: argparse.Namespace) -> int:
    from .ab import cmd_ab as run_ab_command

    return run_ab_command(args)


COMMANDS = {
    "run": cmd_run,
    "ab": cmd_ab,
    "tune": cmd_tune,
    "list": cmd_list,
    "report": cmd_report,
    "compare": cmd_compare,
    "plot": cmd_plot,
    "data": cmd_data,
}


def run_plugin_manager(argv: Sequence[str]) -> pluggy.PluginManager | None:
    """For ``mfbench run``: its plugin manager, made from the ``-p`` arguments before the whole
    command line is parsed, so the plugins loaded can add their own options (and blocked ones cannot)."""
    if not argv or argv[0] != "run":
        return None
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("-p", dest="plugins", action="append", default=[])
    known, _ = pre.parse_known_args(argv[1:])
    return make_plugin_manager(known.plugins)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        pm = run_plugin_manager(argv)
        run_options = collect_run_options(pm)
        parser = build_parser(help_suite(argv), run_options)
    except MfbenchError as exc:  # a plugin that fails to load, or whose options clash
        print(f"mfbench: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if pm is not None:
        args.plugin_manager, args.run_options = pm, run_options
    if args.command is None:
        parser.print_help()
        return 2
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        return COMMANDS[args.command](args)
    except MfbenchError as exc:
        print(f"mfbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM before the run began or outside one
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"\nmfbench: {how}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
