"""Hunt flaky tests: run the test suite (or some of it) many times under a full CPU load and count,
per test, the runs it failed.

A shared CI runner is a loaded machine; a test whose outcome depends on timing, thread scheduling,
process start-up or a wall-clock bound passes on a quiet laptop and fails there now and then. This
script makes the load on purpose (``--load N`` busy processes, by default one per core) and runs
pytest ``--runs`` times, each in a fresh process, reading every run's JUnit XML:

    python benchmarks/flake_hunt.py --runs 10 -o hunt.json                  # the whole suite, 10 times
    python benchmarks/flake_hunt.py --runs 200 -k deadlocked_fit tests/test_peers.py
    python benchmarks/flake_hunt.py --runs 2 -m timing                      # what CI runs (.ci/run)

It prints one line per run and, at the end, every test that failed at least once with its count;
``-o`` writes the same as JSON (the command, the machine's cores, runs x tests, failures per test, and
the slowest tests of the last run). Exit 1 when any test failed in any run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))
BURN = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nwhile True:\n    pass\n"


@contextmanager
def cpu_load(processes: int):
    """``processes`` busy loops, one per core by default: the load of a shared CI runner, or worse."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait(timeout=10)


def outcomes(report: Path) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """(outcome by test id: passed, failed, error or skipped; seconds by test id; the failure's text by
    failed test id) from a JUnit XML file."""
    found: dict[str, str] = {}
    seconds: dict[str, float] = {}
    why: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag: child for child in case}
        found[test] = next((name for tag, name in OUTCOMES if tag in kinds), "passed")
        seconds[test] = float(case.get("time") or 0.0)
        failure = kinds.get("failure", kinds.get("error"))
        if failure is not None:
            why[test] = (failure.text or failure.get("message") or "")[-3000:]
    return found, seconds, why


def hunt(runs: int, load: int, pytest_args: list[str], say=print) -> dict[str, Any]:
    failures: Counter[str] = Counter()
    reasons: dict[str, list[str]] = {}
    counts: list[int] = []
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder, cpu_load(load):
        for run in range(1, runs + 1):
            report = Path(folder) / f"run-{run}.xml"
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args]
            began = time.monotonic()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if not report.exists():
                say(f"run {run}: pytest wrote no report (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                failures["(the run itself)"] += 1
                continue
            found, seconds, why = outcomes(report)
            failed = sorted(t for t, outcome in found.items() if outcome in ("failed", "error"))
            failures.update(failed)
            for test in failed:
                reasons.setdefault(test, []).append(why.get(test, ""))
            counts.append(len(found))
            say(
                f"run {run}/{runs}: {len(found)} tests, {len(failed)} failed, {time.monotonic() - began:.0f} s"
                + (f": {', '.join(failed)}" if failed else "")
            )
    slowest = sorted(seconds.items(), key=lambda item: -item[1])[:15]
    return {
        "command": ["python", "benchmarks/flake_hunt.py", *sys.argv[1:]],
        "cores": os.cpu_count(),
        "load_processes": load,
        "runs": runs,
        "tests_per_run": counts,
        "failures": dict(failures.most_common()),
        "failure_texts": reasons,
        "seconds": time.monotonic() - started,
        "slowest_last_run": [{"test": t, "seconds": s} for t, s in slowest],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="pytest runs, each in a fresh process (default %(default)s)")
    parser.add_argument(
        "--load", type=int, default=os.cpu_count() or 2, help="busy processes beside the tests (default: one per core)"
    )
    parser.add_argument("-o", "--output", type=Path, help="also write the result as JSON")
    args, pytest_args = parser.parse_known_args(argv)
    if args.runs < 1 or args.load < 0:
        parser.error("--runs must be at least 1 and --load 0 or more")
    result = hunt(args.runs, args.load, pytest_args)
    flaky = result["failures"]
    print(
        f"\n{args.runs} runs x {max(result['tests_per_run'], default=0)} tests under {args.load} busy processes, "
        f"{result['seconds'] / 60:.0f} min: " + ("no failure" if not flaky else f"{len(flaky)} test(s) failed at least once")
    )
    for test, count in flaky.items():
        print(f"  {count}/{args.runs}  {test}")
    for test, texts in result["failure_texts"].items():
        print(f"\n--- {test}, first failure:\n{texts[0][-1500:]}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if flaky else 0


if __name__ == "__main__":
    raise SystemExit(main())
