"""The ``mfbench`` command line's parser: every command's options, their help and epilogs."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..errors import MfbenchError
from ..plugin.manager import PLUGINS_ENV
from ..plugin.options import RunOptions
from ..results.paths import default_results_dir
from ..run.executors import DEFAULT_EXECUTOR, LOCAL_EXECUTORS
from ..run.plan import RunConfig, parse_target
from ..run.selection import GRAMMAR_HELP
from ..run.suite import DEFAULT_SUITE, Suite, load_suite
from ..tuning.tuner import PRUNERS, SAMPLERS

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

executors (--executor): process, the default, runs each case in its own worker
  process, watched from here: a crash (a signal, an exit, the OOM killer) is one error
  row naming it, --timeout kills an epoch that never returns, and the suite goes on.
  inprocess runs the cases one after another in this process (for pdb).
"""
#: After the executors paragraph and the plugins' own (mfbench_add_run_options).
RUN_EPILOG_END = """
Exit status: 0 when every case ended ok, skipped, diverged or timeout; 1 when any case
ended in error; 2 for a usage error; 130 when interrupted (Ctrl-C), 143 when terminated
(SIGTERM); the finished cases are kept.
"""

TUNE_EPILOG = """\
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


DEFAULT_STUDIES = str(default_results_dir().parent / "studies.db")


FORMAT_HELP = (
    "any tabulate table format (default %(default)s, fitted to the terminal); "
    "export formats (github, latex, tsv...) show every column and row"
)


def default_text(key: str, fallback: str, suite: Suite | None) -> str:
    """What ``--help`` says a setting defaults to: the suite's value where the suite sets one."""
    if suite is not None and key in suite.settings:
        value = suite.settings[key]
        shown = f"{value:g}" if isinstance(value, (int, float)) else str(value)
        return f"default {shown}, the {suite.name} suite's; {fallback} where a suite sets none"
    in_groups = [g[key] for g in (suite.groups if suite is not None else []) if key in g]
    if suite is not None and in_groups:
        shown = ", ".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in in_groups)
        return f"default: {shown} in the {suite.name} suite's group(s) that set it, {fallback} elsewhere"
    return f"default {fallback}"


def help_suite(argv: Sequence[str]) -> Suite | None:
    """For ``mfbench run --help`` (and tune's): the suite it would run (--suite, else the
    default), so help states its settings."""
    if not argv or argv[0] not in ("run", "tune") or not {"-h", "--help"} & set(argv):
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--suite", default=DEFAULT_SUITE)
    known, _ = pre.parse_known_args(argv[1:])
    try:
        return load_suite(known.suite)
    except MfbenchError:
        return None


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


def build_parser(suite: Suite | None = None, run_options: RunOptions | None = None) -> argparse.ArgumentParser:
    """The parser; ``suite`` (the one a ``run --help`` would run) makes the help state its defaults,
    ``run_options`` are the loaded plugins' own ``run`` options and help paragraphs."""
    run_options = run_options or RunOptions()
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
    # What to cross and how: shared by run (which times the cases) and tune (which tunes them).
    case_opts = argparse.ArgumentParser(add_help=False)
    case_opts.add_argument("-d", "--dataset", action="append", metavar="SEL", help="data generator (repeatable)")
    case_opts.add_argument("-m", "--model", action="append", metavar="SEL", help="model variant (repeatable)")
    case_opts.add_argument("-s", "--strategy", action="append", metavar="SEL", help="training strategy (repeatable)")
    case_opts.add_argument(
        "--device",
        action="append",
        metavar="DEV",
        help="cpu, cuda or cuda:N (repeatable; "
        + (
            f"default {', '.join(suite.base['devices'])}, the {suite.name} suite's)"
            if suite and "devices" in suite.base
            else "default: cpu and cuda)"
        ),
    )
    case_opts.add_argument(
        "--suite", default=DEFAULT_SUITE, metavar="NAME", help="a built-in suite name or a .toml path (default %(default)s)"
    )
    case_opts.add_argument(
        "--epochs", type=int, help=f"counted epochs per repeat ({default_text('epochs', str(RunConfig.epochs), suite)})"
    )
    case_opts.add_argument(
        "--warmup",
        type=int,
        help=f"uncounted warm-up epochs at the start of each repeat ({default_text('warmup', str(RunConfig.warmup), suite)})",
    )
    case_opts.add_argument(
        "--seed", type=int, help=f"seed for data, split, init and order ({default_text('seed', str(RunConfig.seed), suite)})"
    )
    case_opts.add_argument(
        "--factors",
        type=int,
        help=f"n_factors of every model that has it, unless given in -m ({default_text('factors', 'each model its own', suite)})",
    )
    case_opts.add_argument(
        "--test-fraction",
        type=float,
        help="share held out as the test set, for final figures only "
        f"({default_text('test_fraction', str(RunConfig.test_fraction), suite)})",
    )
    case_opts.add_argument(
        "--valid-fraction",
        type=float,
        help="share held out for validation: what targets and tuning see "
        f"({default_text('valid_fraction', str(RunConfig.valid_fraction), suite)})",
    )
    case_opts.add_argument(
        "--timeout",
        type=float,
        help=f"seconds per case: run kills a case's worker past it (the case is a timeout); tune checks each trial "
        f"after every epoch ({default_text('timeout', 'none', suite)})",
    )
    case_opts.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch intra-op threads for the run (" + default_text("threads", "torch's, one per core", suite) + ")",
    )
    parser = argparse.ArgumentParser(prog="mfbench", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[plugin_opts, case_opts, table_opts],
        help="run a benchmark suite",
        description="Cross datasets x models x strategies (x parameter grids) x devices, time every case, report.",
        epilog=RUN_EPILOG + run_options.epilog() + RUN_EPILOG_END,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--target-rmse",
        type=parse_target,
        metavar="X",
        help="report time-to-target: training seconds until validation RMSE <= X; 'auto' derives one per "
        f"workload from the run (see README, Targets); {default_text('target_rmse', 'none', suite)}",
    )
    run.add_argument(
        "--target-slack",
        type=float,
        metavar="S",
        help="for --target-rmse auto: the target is (1 + S) x the best validation RMSE of the workload (default 0.02)",
    )
    run.add_argument(
        "--repeats",
        type=int,
        help=f"repeats per case, each from a fresh model ({default_text('repeats', str(RunConfig.repeats), suite)})",
    )
    run.add_argument(
        "--no-calibration", action="store_true", help="skip the machine calibration workload (no relative throughput)"
    )
    run.add_argument(
        "--tune-trials",
        type=int,
        metavar="N",
        help="tune every case first (N trials per study, stored in --tuned or the default studies file), then race "
        "the tuned parameters (default: the suite's tune_trials; most suites do not tune)",
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
    run_options.install(run)
    run.add_argument(
        "--executor-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other option of the executor (repeatable), e.g. timeout=60; mfbench list shows each executor's options",
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

    tune = sub.add_parser(
        "tune",
        parents=[plugin_opts, case_opts],
        help="tune each strategy's parameters on the validation split (Optuna studies)",
        description="For every case (dataset x model x strategy x device) of the selection or suite, run a budgeted "
        "search over the strategy's declared search space. Trials train for warm-up + counted epochs and are judged "
        "on the validation ratings only; the test ratings are never seen. Studies are stored, so an interrupted "
        "tune resumes and several processes can share one study.",
        epilog=TUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tune.add_argument(
        "--target-rmse",
        type=parse_target,
        metavar="X",
        help="make each trial's objective its training seconds until validation RMSE <= X (default: no target; "
        "the objective is the best validation RMSE within the epoch budget; a suite's targets are for races)",
    )
    tune.add_argument(
        "--trials", type=int, default=20, help="trials per study, counting those it already holds (default %(default)s)"
    )
    tune.add_argument(
        "--storage",
        default=DEFAULT_STUDIES,
        help="where studies live: a SQLite file path or any Optuna storage URL (default %(default)s)",
    )
    tune.add_argument(
        "--sampler", default="qmc", choices=SAMPLERS, help="qmc: scrambled Sobol quasi-random points (default); tpe; random"
    )
    tune.add_argument(
        "--pruner",
        default="median",
        choices=PRUNERS,
        help="median: stop trials behind the median of earlier ones at the same epoch (default); none",
    )
    tune.add_argument(
        "--params", metavar="P1,P2", help="tune only these parameters of the search space (default: all it declares)"
    )
    tune.add_argument(
        "--executor",
        default=DEFAULT_EXECUTOR,
        choices=LOCAL_EXECUTORS,
        help="where each trial trains: process (default: a worker process per trial, so a crash fails that trial "
        "only), inprocess (this process, for pdb)",
    )
    tune.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")

    lst = sub.add_parser("list", parents=[plugin_opts], help="list datasets, models and strategies, and their plugins")
    lst.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format")

    rep = sub.add_parser("report", parents=[table_opts], help="print a saved run's table again")
    rep.add_argument("results", type=Path, help="a results JSON file written by mfbench run")
    rep.add_argument("--format", default="simple", metavar="FMT", help=FORMAT_HELP)
    rep.add_argument("--csv", action="store_true", help="write every column as CSV with raw numbers (spread as a fraction)")
    rep.add_argument("--target-rmse", type=float, metavar="X", help="time-to-target for this X (default: the run's)")
    rep.add_argument(
        "--profile",
        action="store_true",
        help="rank strategies over every workload of the run with one score (performance profile, AlgoPerf-style)",
    )

    cmp = sub.add_parser(
        "compare",
        parents=[table_opts],
        help="compare two results files case by case",
        description="Match cases by identity and show new/base ratios of throughput, time-to-target and held-out RMSE, "
        "with a verdict on speed from a 95%% confidence interval of the ratio: slower, faster, no change, or too "
        "noisy to tell.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("base", type=Path, help="the baseline results file")
    cmp.add_argument("new", type=Path, help="the results file to judge")
    cmp.add_argument("--format", default="simple", metavar="FMT", help=FORMAT_HELP)
    cmp.add_argument("--target-rmse", type=float, metavar="X", help="time-to-target threshold (default: the runs' own)")
    cmp.add_argument("--normalize", action="store_true", help="compare calibration-relative throughput (runs from two machines)")
    cmp.add_argument(
        "--fail-threshold",
        type=float,
        metavar="PCT",
        help="gate: exit 1 when a case is slower, or its RMSE worse, by more than PCT percent, or a base case is "
        "missing from NEW; 3 when too noisy to rule out a slowdown beyond PCT",
    )
    cmp.add_argument(
        "--allow-missing",
        action="store_true",
        help="with --fail-threshold: base cases missing from (or skipped in) NEW, or an unfinished NEW, do not fail",
    )
    cmp.add_argument(
        "--min-change",
        type=float,
        metavar="PCT",
        help="smallest speed change reported as one: 'no change' needs the interval within +-PCT "
        "(default: the fail threshold, else 5)",
    )

    from .ab import add_parser as add_ab_parser

    add_ab_parser(sub, plugin_opts)

    plt = sub.add_parser("plot", help="plot held-out RMSE against training time, and throughput")
    plt.add_argument("results", type=Path, help="a results JSON file")
    plt.add_argument("-o", "--output", type=Path, help="the PNG file to write (default: RESULTS with .png)")
    plt.add_argument("--target-rmse", type=float, metavar="X", help="draw this target (default: the run's)")
    plt.add_argument("--profile", action="store_true", help="draw the performance profiles rho(tau) of the strategies instead")

    data = sub.add_parser("data", help="manage data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    download = data_sub.add_parser("download", parents=[plugin_opts], help="download and cache a public data set")
    download.add_argument("name", help="a download name, e.g. ml-100k (see mfbench list)")
    download.add_argument("--cache", type=Path, help="cache folder (default: $MFBENCH_CACHE or ~/.cache/mfbench)")
    return parser
