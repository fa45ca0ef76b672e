"""What running each case in its own worker process costs: per case, and on the quick suite.

Runs ``mfbench run`` with ``--executor inprocess`` and with the default ``process``
executor alternately (so both see the same machine load), several rounds, and prints
the median wall time of each and the difference. Per case: ``--cases`` tiny cases
(the notebook's loop on 40 x 30 ratings, one epoch), whose own work is milliseconds,
so the difference divided by their number is the isolation's fixed cost per case.

    python benchmarks/isolation_overhead.py --rounds 3            # both measurements
    python benchmarks/isolation_overhead.py --rounds 3 --no-quick # the per-case one only
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = "sprand[n_users=40,n_items=30,density=0.2]"


def wall(args: list[str], output: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mfbench", "run", *args, "-q", "--force", "-o", str(output)], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def cases_run(output: Path) -> int:
    """Cases that started a worker (the skipped ones need none)."""
    return sum(c["status"] != "skipped" for c in json.loads(output.read_text())["cases"])


def measure(name: str, args: list[str], rounds: int, folder: Path) -> float:
    times: dict[str, list[float]] = {"inprocess": [], "process": []}
    for round_ in range(rounds):
        order = ("inprocess", "process") if round_ % 2 == 0 else ("process", "inprocess")
        for executor in order:
            times[executor].append(wall([*args, "--executor", executor], folder / f"{executor}.json"))
    inprocess, process = (statistics.median(times[k]) for k in ("inprocess", "process"))
    cases = cases_run(folder / "process.json")
    print(f"{name}: {cases} case(s) run (skipped ones aside), {rounds} round(s) each, alternating")
    for key in ("inprocess", "process"):
        print(f"  {key:9s}  median {statistics.median(times[key]):7.2f} s   runs {', '.join(f'{t:.2f}' for t in times[key])}")
    print(f"  difference {process - inprocess:+.2f} s ({process / inprocess - 1:+.1%})")
    return process - inprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--no-quick", action="store_true", help="skip the quick suite (about 2 minutes a run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        differences = []
        for count in (1, args.cases):  # two sizes separate the cost per run from the cost per case
            sizes = ",".join(str(64 * (i + 1)) for i in range(count))
            tiny = [
                "-d",
                TINY,
                "-s",
                f"vectorized[batch_size=[{sizes}]]",
                "--device",
                "cpu",
                "--epochs",
                "1",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--no-calibration",
            ]
            differences.append(measure(f"tiny cases x{count}", tiny, args.rounds, Path(folder)))
        per_case = (differences[1] - differences[0]) / (args.cases - 1)
        print(
            f"isolation costs {per_case:+.3f} s per case and {differences[0] - per_case:+.2f} s once per run "
            f"(the worker server's start: torch and the plugins imported once)"
        )
        if not args.no_quick:
            measure("quick suite (mfbench run)", [], args.rounds, Path(folder))


if __name__ == "__main__":
    main()
