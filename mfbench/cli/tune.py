"""``mfbench tune``: a budgeted search over each strategy's declared search space, per case."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

import pluggy
import torch

from ..errors import SelectionError
from ..plugin.registry import Registry
from ..report.tables import check_format
from ..report.tuning import render_tuning
from ..run.execute import Overrides, config_for, plan_suite
from ..run.executors import DEFAULT_EXECUTOR, LOCAL_EXECUTORS
from ..run.settings import parse_target
from ..run.suite import Suite, load_suite
from ..tuning.studies import MODEL_PREFIX
from ..tuning.tuner import DEFAULT_PATIENCE, PRUNERS, SAMPLERS, Tuner, declared_space, tuned_space
from .common import DEFAULT_STUDIES, Shared, add_setting_options, given_settings, load_registry

EPILOG = """\
examples:
  mfbench tune -d lowrank -m biased -s numba -s vectorized --trials 20
  mfbench tune -d 'movielens[path=ratings.csv]' -m biased -s '*' --trials 20 --storage sqlite:///studies.db
  mfbench run  -d 'movielens[path=ratings.csv]' -m biased -s '*' --tuned sqlite:///studies.db --target-rmse auto

Each case's study is named by the case's identity ("dataset / model / strategy / device").
Ctrl-C keeps the finished trials: the same command resumes. Several processes may work on
one study at once: start the same command in each (on one machine with a SQLite file, on
several with a database server URL such as postgresql://user@host/db); each stops when the
study holds --trials trials.
"""


def add_parser(sub: Any, shared: Shared) -> None:
    tune = sub.add_parser(
        "tune",
        parents=[shared.plugin_opts, shared.case_opts],
        help="tune each strategy's parameters on the validation split (Optuna studies)",
        description="For every case (dataset x model x strategy x device) of the selection or suite, run a budgeted "
        "search over the strategy's declared search space. Trials train for warm-up + counted epochs and are judged "
        "on the validation ratings only; the test ratings are never seen. Studies are stored, so an interrupted "
        "tune resumes and several processes can share one study.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_options(tune, "tune", shared.suite)
    tune.add_argument(
        "--target-rmse",
        dest="objective_target",
        type=parse_target,
        metavar="X",
        help="make each trial's objective its training seconds until validation RMSE <= X (default: no target; "
        "the objective is the best validation RMSE within the epoch budget; a suite's targets are for races)",
    )
    tune.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"trials per study, counting those it already holds (default {DEFAULT_TRIALS}; with --time-budget: "
        "no limit but the time)",
    )
    tune.add_argument(
        "--time-budget",
        type=parse_duration,
        metavar="DURATION",
        help="wall-clock budget per study (90s, 5m, 1h, or seconds): no trial starts once the study's trials have "
        "taken that long (a resumed study counts what it spent); with --trials, whichever ends first",
    )
    tune.add_argument(
        "--patience",
        type=parse_patience,
        default=DEFAULT_PATIENCE,
        metavar="N",
        help="stop a trial after N epochs without a better validation RMSE; its best epoch is what it reports, and "
        "the tuned race trains that many epochs (default %(default)s; none: every trial runs every epoch)",
    )
    tune.add_argument(
        "--storage",
        default=DEFAULT_STUDIES,
        help="where studies live: a SQLite file path or any Optuna storage URL (default %(default)s)",
    )
    tune.add_argument(
        "--sampler",
        default="qmc",
        choices=SAMPLERS,
        help="qmc: scrambled Sobol quasi-random points (default); tpe: tree-structured Parzen estimator; gp: Bayesian "
        "optimization with a Gaussian process; random",
    )
    tune.add_argument(
        "--pruner",
        default="none",
        choices=PRUNERS,
        help="none: every trial runs until --patience ends it (default: on ML-100K with 16 trials, median and "
        "hyperband pruning each chose parameters 0.009 held-out RMSE worse); median: stop trials behind the "
        "median of earlier ones at the same epoch; halving: successive halving over epochs (rungs at 1, 3, 9... "
        "epochs, the best third goes on); hyperband: brackets of successive halving from 1 epoch to --epochs",
    )
    tune.add_argument(
        "--params", metavar="P1,P2", help="tune only these parameters of the search space (default: all it declares)"
    )
    tune.add_argument(
        "--fresh-seeds",
        type=int,
        default=3,
        metavar="N",
        help="train each study's choice again on N seeds the search never saw, and show that score beside the "
        "search's best: the gap is what the search's luck was worth (default %(default)s; 0: none)",
    )
    tune.add_argument(
        "--executor",
        default=DEFAULT_EXECUTOR,
        choices=LOCAL_EXECUTORS,
        help="where each trial trains: process (default: a worker process per trial, so a crash fails that trial "
        "only), inprocess (this process, for pdb)",
    )
    tune.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")
    tune.set_defaults(handler=main)


DEFAULT_TRIALS = 20
#: The trial count of a study bounded by --time-budget alone.
UNLIMITED = 10**9
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """``90s``, ``5m``, ``1h`` or a number of seconds; positive."""
    text = text.strip().lower()
    number, unit = text, "s"
    for suffix in sorted(UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)], suffix
            break
    try:
        seconds = float(number) * UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: say 90s, 5m, 1h or a number of seconds") from None
    if not (seconds > 0 and seconds < float("inf")):
        raise argparse.ArgumentTypeError(f"a time budget must be more than 0, got {text!r}")
    return seconds


def parse_patience(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--patience takes a number of epochs or none, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--patience must be at least 1 epoch (or none), got {value}")
    return value


def check_params(cases: list[Any], only: set[str] | None) -> None:
    """Refuse, before any trial, a --params name that no case's search space (strategy or model) has."""
    if not only:
        return
    known = {name for case in cases for name in tuned_space(case)}
    declared = {name for case in cases for name in declared_space(case)}
    for name in sorted(only):
        if name in known:
            continue
        if name in declared:
            raise SelectionError(
                f"--params {name}: the selection fixes it (a value away from its default), so it is not searched"
            )
        if name.startswith(MODEL_PREFIX):
            models = sorted({c.model.name for c in cases})
            raise SelectionError(
                f"--params {name}: no selected model ({', '.join(models)}) declares it in a search space; "
                f"searchable: {', '.join(sorted(known)) or 'none'}"
            )
        searchable = ", ".join(sorted(known)) or "none"
        raise SelectionError(f"--params {name}: not in any selected search space; searchable: {searchable}")


def tune_cases(
    registry: Registry,
    suite: Suite,
    overrides: Overrides,
    storage: str,
    trials: int,
    *,
    sampler: str = "qmc",
    pruner: str = "none",
    only: set[str] | None = None,
    target: float | None = None,
    say: Any = print,
    pm: pluggy.PluginManager | None = None,
    executor: str = DEFAULT_EXECUTOR,
    fresh: int = 3,
    time_budget: float | None = None,
    patience: int | None = DEFAULT_PATIENCE,
) -> list[dict[str, Any]] | None:
    """Tune every planned case into ``storage``; the studies' summaries, or None when interrupted."""
    # Only a target given to tune makes the objective time-to-target: a suite's targets are
    # for its races (and "auto" ones are derived from tuned races, so they cannot steer tuning).
    config = replace(config_for(suite, overrides), target_rmse=target)
    cases, _ = plan_suite(registry, suite, overrides, config)
    check_params(cases, only)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    tuner = Tuner(
        storage,
        config,
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        only=only,
        say=say,
        pm=pm,
        executor=executor,
        fresh=fresh,
        time_budget=time_budget,
        patience=patience,
    )
    budget = f"{trials} trials" if time_budget is None else f"{time_budget:g} s of trials"
    if time_budget is not None and trials < UNLIMITED:
        budget += f" or {trials} trials, whichever ends first,"
    say(f"mfbench tune: {len(cases)} case(s), {budget} each, studies in {tuner.storage_text}")
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


def main(args: argparse.Namespace) -> int:
    check_format(args.format)
    if args.objective_target == "auto":
        raise SelectionError("mfbench tune takes a numeric --target-rmse (or none); 'auto' targets come from tuned races")
    pm, registry = load_registry(args.plugins)
    suite = load_suite(args.suite)
    overrides = Overrides(args.dataset, args.model, args.strategy, args.device, given_settings(args))
    only = set(args.params.split(",")) if args.params else None
    trials = args.trials if args.trials is not None else DEFAULT_TRIALS if args.time_budget is None else UNLIMITED
    summaries = tune_cases(
        registry,
        suite,
        overrides,
        args.storage,
        trials,
        sampler=args.sampler,
        pruner=args.pruner,
        only=only,
        target=args.objective_target,
        pm=pm,
        executor=args.executor,
        fresh=args.fresh_seeds,
        time_budget=args.time_budget,
        patience=args.patience,
    )
    if summaries is None:
        return 130
    print(render_tuning(summaries, args.format))
    print(f"\nstudies: {args.storage}; race them with: mfbench run ... --tuned {args.storage}")
    return 0
