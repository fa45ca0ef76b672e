"""``mfbench ab``: the A/B mode's command line, its table and its exit status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import SelectionError
from ..plugin.manager import make_plugin_manager
from ..report import escape
from ..report.tables import check_format
from ..results.files import atomic_write_json, now_iso
from ..results.revision import source_revision
from ..run.ab import BLOCK_SECONDS, BLOCKS, MIN_BLOCKS, AbResult, plan_side, run_ab, same_strategy_sides
from ..run.calibration import calibrate
from ..run.execute import FALLBACK
from ..run.executors import machine_info
from ..run.plan import RunConfig
from ..stats.verdict import CONFIDENCE, DEFAULT_MARGIN, NOISY, SLOWER, advice, could_be_slower_than, decide
from .common import Shared

#: Exit status when a fail threshold is given and the interval cannot rule out a loss beyond it.
EXIT_NOISY = 3

DESCRIPTION = """\
Measure BASE and NEW in this one process, in alternating short blocks (BASE, NEW, then
NEW, BASE, ...), so both see the same machine load; report NEW's speed over BASE's as
the median of the per-pair ratios with its 95% confidence interval, and a verdict:
slower, faster, no change (the whole interval within +-margin) or too noisy to tell."""

EPILOG = f"""\
BASE and NEW are either
  two strategy selections:      mfbench ab -s numba -s 'numba[schedule=blocked]'
  or one strategy from two plugin sources, each side in its own plugin manager:
    two module paths            mfbench ab -s my-sgd --base-plugin old_sgd --new-plugin new_sgd
    a built-in and a copy       mfbench ab -s vectorized --new-plugin no:mfbench.plugins.strategies.vectorized \\
                                  --new-plugin my_copy.vectorized
    two installed distributions mfbench ab -s my-sgd --base-plugin no:fast_sgd --new-plugin no:slow_sgd
  (--base-plugin/--new-plugin take what -p takes: a module path to load, or no:NAME to
  block a built-in module or an entry-point name; -p applies to both sides.)
Both sides train on the same data (-d, -m, default {FALLBACK["datasets"][0]} and {FALLBACK["models"][0]}) on one device.

Each block is a fresh case run by mfbench's runner: model built, setup, --warmup
epochs, then the timed epochs. By default a pilot block of each side sets the timed
epochs per block so that the slower side's block lasts about --block-seconds.

Exit status: 0, unless --fail-threshold PCT is given: then 1 when NEW is slower by more
than PCT percent, {EXIT_NOISY} when it is too noisy to rule that out (run more --blocks);
2 for a usage error, or when a side could not train.
"""


def add_parser(sub: Any, shared: Shared) -> None:
    ab = sub.add_parser(
        "ab",
        parents=[shared.plugin_opts],
        help="measure BASE and NEW interleaved in one process: a speed ratio that shared machines cannot fake",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ab.add_argument(
        "-s",
        "--strategy",
        action="append",
        required=True,
        metavar="SEL",
        help="BASE's then NEW's strategy selection; once with --base-plugin/--new-plugin",
    )
    ab.add_argument(
        "--base-plugin", action="append", default=[], metavar="MODULE", help="a -p argument for BASE's side only (repeatable)"
    )
    ab.add_argument(
        "--new-plugin", action="append", default=[], metavar="MODULE", help="a -p argument for NEW's side only (repeatable)"
    )
    ab.add_argument(
        "-d", "--dataset", default=FALLBACK["datasets"][0], metavar="SEL", help="data generator (default %(default)s)"
    )
    ab.add_argument("-m", "--model", default=FALLBACK["models"][0], metavar="SEL", help="model variant (default %(default)s)")
    ab.add_argument("--device", default="cpu", metavar="DEV", help="cpu, cuda or cuda:N (default %(default)s)")
    ab.add_argument(
        "--blocks", type=int, default=BLOCKS, metavar="N", help=f"block pairs (default %(default)s, at least {MIN_BLOCKS})"
    )
    ab.add_argument(
        "--block-seconds",
        type=float,
        default=BLOCK_SECONDS,
        metavar="S",
        help="timed seconds per block of the slower side, which sets the epochs per block (default %(default)s)",
    )
    ab.add_argument("--epochs", type=int, metavar="N", help="timed epochs per block, instead of sizing blocks by --block-seconds")
    ab.add_argument(
        "--warmup", type=int, default=1, metavar="N", help="untimed epochs at the start of each block (default %(default)s)"
    )
    ab.add_argument("--seed", type=int, default=0, help="seed for data, split, init and order (default %(default)s)")
    ab.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads (default %(default)s: steadier on shared machines)",
    )
    ab.add_argument(
        "--fail-threshold",
        type=float,
        metavar="PCT",
        help=f"exit 1 when NEW is slower by more than PCT percent, {EXIT_NOISY} when that cannot be ruled out",
    )
    ab.add_argument(
        "--min-change",
        type=float,
        metavar="PCT",
        help=f"the margin of 'no change' (default: the fail threshold, else {DEFAULT_MARGIN:g})",
    )
    ab.add_argument("--format", default="simple", metavar="FMT", help="any tabulate table format (github: for a job summary)")
    ab.add_argument("-o", "--output", type=Path, help="also write the blocks and the interval to this JSON file")
    ab.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    ab.set_defaults(handler=main)


def margin_for(fail_threshold: float | None, min_change: float | None) -> float:
    if min_change is not None:
        return min_change
    return fail_threshold if fail_threshold is not None else DEFAULT_MARGIN


def exit_status(verdict: str, result: AbResult, fail_threshold: float | None) -> int:
    """0/1/3 as the epilog says."""
    if fail_threshold is None:
        return 0
    if verdict == SLOWER and -result.interval.change_pct() > fail_threshold:
        return 1
    if verdict == NOISY and could_be_slower_than(result.interval, fail_threshold):
        return EXIT_NOISY
    return 0


def render(result: AbResult, verdict: str, margin: float, fmt: str) -> str:
    rows = []
    for side in (result.base, result.new):
        record = side.record or {}
        updates = (record.get("dataset") or {}).get("train_nnz")
        median = side.median_epoch_s()
        rows.append(
            [
                side.name,
                side.label,
                side.plugin,
                f"{median:.4g}",
                f"{updates / median:,.0f}" if updates and median > 0 else "",
                sum(len(b) for b in side.seconds),
                "; ".join(side.notes),
            ]
        )
    table = escape.table(rows, ["side", "strategy", "plugin", "median s/epoch", "upd/s", "epochs timed", "note"], fmt)
    interval = result.interval
    pct = interval.change_pct()
    lines = [
        "",
        f"NEW/BASE speed: {interval.describe()} ({CONFIDENCE:.0%} interval, median of {len(result.ratios)} "
        f"block pairs of {result.epochs_per_block} epoch(s), {result.seconds:.0f} s): {verdict}"
        + (f" ({pct:+.1f}% updates/s)" if interval.known else ""),
        f"verdict margin: +-{margin:g}% ('no change' needs the whole interval inside it)",
    ]
    hint = advice(verdict, blocks=True)
    if hint:
        lines.append(hint)
    return table + "\n" + "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    fmt = check_format(args.format)
    if args.threads < 1:
        raise SelectionError(f"--threads must be at least 1, got {args.threads}")
    if args.fail_threshold is not None and not args.fail_threshold >= 0:
        raise SelectionError(f"--fail-threshold is a percentage, 0 or more; got {args.fail_threshold}")
    if args.epochs is not None and args.epochs < 1:
        raise SelectionError(f"--epochs must be at least 1, got {args.epochs}")
    base_sel, new_sel = same_strategy_sides(args.strategy, args.base_plugin, args.new_plugin)
    torch.set_num_threads(args.threads)  # the command owns its process
    config = RunConfig(epochs=args.epochs or 1, repeats=1, warmup=args.warmup, seed=args.seed)
    config.validate()
    base_pm = make_plugin_manager([*args.plugins, *args.base_plugin])
    new_pm = make_plugin_manager([*args.plugins, *args.new_plugin])
    base = plan_side("BASE", base_pm, args.dataset, args.model, base_sel, args.device, config)
    new = plan_side("NEW", new_pm, args.dataset, args.model, new_sel, args.device, config)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    say(f"mfbench ab: BASE {base.case.id} ({base.plugin}); NEW {new.case.id} ({new.plugin})")
    started = now_iso()
    calibration_start = calibrate(repeats=3)
    result = run_ab(
        base,
        new,
        blocks=args.blocks,
        block_seconds=args.block_seconds,
        warmup=args.warmup,
        seed=args.seed,
        epochs=args.epochs,
        say=say,
    )
    margin = margin_for(args.fail_threshold, args.min_change)
    verdict = decide(result.interval, margin)
    print(render(result, verdict, margin, fmt))
    if args.output:
        machine = machine_info(new_pm)
        machine["calibration"] = calibration_start
        machine["calibration_end"] = calibrate(repeats=3)
        header = {
            "created": started,
            "finished": now_iso(),
            "mfbench_version": __version__,
            "source_revision": source_revision(),
            "command": ["mfbench", *sys.argv[1:]],
            "machine": machine,
        }
        document = result.document(header)
        document["verdict"] = {"verdict": verdict, "margin_pct": margin, "fail_threshold_pct": args.fail_threshold}
        atomic_write_json(args.output, document)
        print(f"\nresults: {args.output}")
    return exit_status(verdict, result, args.fail_threshold)
