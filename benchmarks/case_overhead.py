"""What a case costs before it trains, per executor: the constant behind a large grid's estimate.

Runs ``--cases`` seeds of a trivial case (numba on a 50 x 50 sprand, one epoch, no warm-up, no
calibration) with the process executor and in-process, ``--runs`` times each, interleaved, and prints
the median wall seconds per case of each and their difference (the worker process's share):
mfbench.run.execute.PROCESS_CASE_START_S is this figure on the project's machine.

    python benchmarks/case_overhead.py --cases 20 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(executor: str, cases: int, folder: Path) -> float:
    command = [
        sys.executable, "-m", "mfbench", "run", "-d", "sprand[n_users=50,n_items=50]", "-m", "dot", "-s", "numba",
        "--seeds", str(cases), "--epochs", "1", "--warmup", "0", "--repeats", "1", "--no-calibration", "-q",
        "--executor", executor, "-o", str(folder / f"{executor}.json"), "--force",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) / cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    per_case: dict[str, list[float]] = {"process": [], "inprocess": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.runs):
            for executor in per_case:
                per_case[executor].append(one_run(executor, args.cases, Path(folder)))
    medians = {name: statistics.median(values) for name, values in per_case.items()}
    for name, values in per_case.items():
        print(f"{name:10s} {medians[name]:.3f} s per case (median of {args.runs}: {', '.join(f'{v:.3f}' for v in values)})")
    print(f"worker process: {medians['process'] - medians['inprocess']:.3f} s per case")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
