"""``mfbench plot``: held-out RMSE against training time and throughput, or the performance profiles, as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import MfbenchError
from ..report.plot import plot_profile, plot_results
from ..results.files import load_results
from ..results.paths import check_writable
from .common import Shared
from .report import run_profile


def add_parser(sub: Any, shared: Shared) -> None:
    plt = sub.add_parser("plot", help="plot held-out RMSE against training time, and throughput")
    plt.add_argument("results", type=Path, help="a results JSON file")
    plt.add_argument("-o", "--output", type=Path, help="the PNG file to write (default: RESULTS with .png)")
    plt.add_argument("--target-rmse", type=float, metavar="X", help="draw this target (default: the run's)")
    plt.add_argument("--profile", action="store_true", help="draw the performance profiles rho(tau) of the strategies instead")
    plt.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    document = load_results(args.results)
    if args.profile:
        profile = run_profile(document, args.target_rmse)
        if not profile["strategies"]:
            raise MfbenchError(f"{args.results} has no time-to-target to score: give --target-rmse X")
        output = args.output or args.results.with_name(args.results.stem + "-profile.png")
        path = plot_profile(profile, check_writable(output, "plot file (-o)", ".png"))
        print(f"plot: {path}")
        return 0
    target = args.target_rmse if args.target_rmse is not None else document.get("config", {}).get("target_rmse")
    if not isinstance(target, (int, float)):
        target = None
    output = check_writable(args.output or args.results.with_suffix(".png"), "plot file (-o)", ".png")
    path = plot_results(document, output, target=target)
    print(f"plot: {path}")
    return 0
