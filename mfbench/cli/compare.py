"""``mfbench compare``: two results files case by case, with speed verdicts that know the noise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..report.compare import compare_documents
from ..report.comparison import render_comparison
from ..report.html_compare import write_comparison_report
from ..report.tables import check_format
from ..results.files import load_results
from ..results.paths import check_writable
from .common import FORMAT_HELP, Shared, table_view

EPILOG = """\
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


def add_parser(sub: Any, shared: Shared) -> None:
    cmp = sub.add_parser(
        "compare",
        parents=[shared.table_opts],
        help="compare two results files case by case",
        description="Match cases by identity and show new/base ratios of throughput, time-to-target and held-out RMSE, "
        "with a verdict on speed from a 95% confidence interval of the ratio: slower, faster, no change, or too "
        "noisy to tell.",
        epilog=EPILOG,
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
    cmp.set_defaults(handler=main)


def side_names(base: Path, new: Path) -> tuple[str, str]:
    """The two files' names as a page shows them: file names, or whole paths where those are alike."""
    return (base.name, new.name) if base.name != new.name else (str(base), str(new))


def main(args: argparse.Namespace) -> int:
    check_format(args.format)
    view = table_view(args)
    base, new = load_results(args.base), load_results(args.new)
    if args.html:
        check_writable(args.html, "HTML report (--html)", ".html")
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
        page = write_comparison_report(base, new, comparison, args.html, side_names(args.base, args.new))
        print(f"html: {page}", file=sys.stderr)
    return comparison.exit_code
