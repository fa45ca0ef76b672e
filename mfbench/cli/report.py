"""``mfbench report``: a saved run's table again (or as CSV, an HTML page, the profile score)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import MfbenchError, SelectionError
from ..report.tables import check_format, render_csv, render_table
from ..report.tuning import render_profile
from ..results.files import load_results
from ..results.paths import check_writable
from ..stats.performance_profile import performance_profile
from ..stats.summary import case_time_to_target
from .common import FORMAT_HELP, Shared, print_answer, shows_hosts, table_view, write_html_report


def add_parser(sub: Any, shared: Shared) -> None:
    rep = sub.add_parser("report", parents=[shared.table_opts], help="print a saved run's table again")
    rep.add_argument("results", type=Path, help="a results JSON file written by mfbench run")
    rep.add_argument("--format", default="simple", metavar="FMT", help=FORMAT_HELP)
    rep.add_argument("--csv", action="store_true", help="write every column as CSV with raw numbers (spread as a fraction)")
    rep.add_argument("--target-rmse", type=float, metavar="X", help="time-to-target for this X (default: the run's)")
    rep.add_argument(
        "--profile",
        action="store_true",
        help="rank strategies over every workload of the run with one score (performance profile, AlgoPerf-style)",
    )
    rep.add_argument(
        "--with-tuning",
        action="store_true",
        help="with --profile: each time-to-target plus what the case's tuning cost (its study's wall time), "
        "for a comparison that charges tuning to the strategy",
    )
    rep.set_defaults(handler=main)


def run_profile(document: dict[str, Any], target: float | None, with_tuning: bool = False) -> dict[str, Any]:
    """The run's profile, computed from its cases (for ``target``, when given). The file's own
    ``profile`` is a copy for readers of the JSON: its non-finite ratios are strings there."""
    cases = document["cases"]
    if target is not None:
        cases = [
            dict(
                c, summary={**(c.get("summary") or {}), "target_rmse": target, "time_to_target_s": case_time_to_target(c, target)}
            )
            for c in cases
        ]
    return performance_profile(cases, with_tuning=with_tuning)


def main(args: argparse.Namespace) -> int:
    document = load_results(args.results)
    view = table_view(args)
    if args.html:
        check_writable(args.html, "HTML report (--html)", ".html")
    if args.with_tuning and not args.profile:
        raise SelectionError("--with-tuning goes with --profile (the table's 'with tuning' column shows it per case)")
    if args.profile:
        profile = run_profile(document, args.target_rmse, args.with_tuning)
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
        print_answer(document["cases"], args.target_rmse, args.format)
    if args.html:
        print(f"html: {write_html_report(document, args.html, args.target_rmse)}", file=sys.stderr)
    if not document.get("complete"):
        print(f"\nnote: {args.results} is from a run that did not finish; it holds the cases that did", file=sys.stderr)
    return 0
