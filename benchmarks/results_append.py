"""What saving one more finished case costs as a run's results file grows.

Adds ``--cases`` copies of a real case record (from results/quick-cpu-2core.json, ~3 KB of JSON each)
to a ``ResultsFile`` in a temporary folder, and prints the median seconds of an ``add`` in the first
and the last ``--window`` cases, and their ratio: a results file whose cost per case does not grow with
the number of cases has a ratio near 1.

    python benchmarks/results_append.py --cases 2000
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

from mfbench.results.files import ResultsFile, load_results

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args(argv)
    template = json.loads((ROOT / "results" / "quick-cpu-2core.json").read_text())["cases"][0]
    size = len(json.dumps(template))
    seconds = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.json"
        results = ResultsFile(path, {"selections": []})
        for index in range(args.cases):
            case = copy.deepcopy(template)
            case["id"] = f"{template['id']} #{index}"
            started = time.perf_counter()
            results.add(case)
            seconds.append(time.perf_counter() - started)
        read = len(load_results(path)["cases"])
        started = time.perf_counter()
        results.finish()
        finish_s = time.perf_counter() - started
    first = statistics.median(seconds[: args.window])
    last = statistics.median(seconds[-args.window :])
    print(f"{args.cases} cases of {size:,} bytes of JSON each; median seconds per add:")
    print(f"  cases 1-{args.window}: {first:.5f}")
    print(f"  cases {args.cases - args.window + 1}-{args.cases}: {last:.5f}  ({last / first:.1f}x the first)")
    print(f"  all {args.cases}: {sum(seconds):.1f} s; finish: {finish_s:.3f} s; a reader mid-run saw {read} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
