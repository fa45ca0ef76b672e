"""How often do mfbench's speed verdicts cry wolf, and what slowdowns do they catch?

Runs, on this machine, with and without a concurrent CPU load that the script starts
and stops itself (one busy-loop process per ``--load-processes``):

* ``ab``: ``--pairs`` A/B measurements (``mfbench ab``'s engine) of the test strategy
  ``slowed`` against itself (A/A: every "slower" is a false alarm) and against
  ``slowed[slowdown=F]`` for F in 1.25, 1.5 and 2 (every "slower" is a detection);
* ``separate``: the first ``--separate-pairs`` of those pairs also measured as two separate runs one after the other (as
  two CI jobs would: base, then new, each a case of 3 repeats with the calibration
  timed before and after), judged as ``mfbench compare`` judges them, and by the
  interquartile-overlap rule compare used before (for the record);
* ``pytest-benchmark``: ``--sessions`` sessions of a few fast benchmarks of
  ``benchmarks/test_strategies.py``, saved with ``--benchmark-json``; every pair of
  sessions is compared as ``--benchmark-compare-fail=median:X%`` would, for several X.

Each pair is short, so the whole study fits in about 20-30 minutes::

    python benchmarks/noise_study.py -o study.json --summary results/noise-study-cpu-2core.json
    python benchmarks/noise_study.py --analyze study.json   # the verdicts again, from the raw measurements

The JSON keeps the raw measurements (block ratios, epoch seconds, calibration scores,
pytest-benchmark medians), so the analysis can be redone with other rules.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the test strategy module `slowed`

import torch  # noqa: E402

import mfbench  # noqa: E402
from mfbench.report.compare import compare_documents  # noqa: E402
from mfbench.results.files import atomic_write_json, now_iso  # noqa: E402
from mfbench.run.ab import plan_side, run_ab  # noqa: E402
from mfbench.run.calibration import calibrate  # noqa: E402
from mfbench.run.executors import machine_info  # noqa: E402
from mfbench.run.plan import RunConfig  # noqa: E402
from mfbench.run.runner import Runner  # noqa: E402
from mfbench.stats.summary import case_throughput  # noqa: E402
from mfbench.stats.verdict import SLOWER, decide  # noqa: E402

DATASET = "lowrank[n_users=300,n_items=200,nnz=6000]"
MODEL = "biased"
FACTORS = (1.0, 1.25, 1.5, 2.0)
#: The gate's setting: fail beyond a 10% loss.
THRESHOLD = 10.0
#: A/B: pairs of short blocks, as `mfbench ab` would run them in CI.
AB_BLOCKS, AB_BLOCK_SECONDS = 10, 0.05
#: Separate runs: what a CI job's `mfbench run` of one case would do.
SEPARATE_CONFIG = RunConfig(epochs=5, repeats=3, warmup=1, seed=0)
#: pytest-benchmark: fast benchmarks, and the thresholds to evaluate.
BENCHMARKS = "biased-vectorized-cpu or biased-minibatch-cpu or biased-numba-cpu or biased-als-cpu"
PYTEST_THRESHOLDS = (5, 10, 20, 30, 50)


def spin() -> None:
    while True:
        pass


class Load:
    """Busy-loop processes for the duration of a ``with`` block (none for ``processes=0``)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.workers: list[multiprocessing.Process] = []

    def __enter__(self) -> Load:
        for _ in range(self.processes):
            worker = multiprocessing.Process(target=spin, daemon=True)
            worker.start()
            self.workers.append(worker)
        time.sleep(0.5 if self.processes else 0)
        return self

    def __exit__(self, *exc: Any) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.join()


def selection(factor: float) -> str:
    return "slowed" if factor == 1.0 else f"slowed[slowdown={factor}]"


def measure_ab(pm: Any, factor: float) -> dict[str, Any]:
    config = RunConfig(epochs=1, repeats=1, warmup=1, seed=0)
    base = plan_side("BASE", pm, DATASET, MODEL, selection(1.0), "cpu", config)
    new = plan_side("NEW", pm, DATASET, MODEL, selection(factor), "cpu", config)
    result = run_ab(base, new, blocks=AB_BLOCKS, block_seconds=AB_BLOCK_SECONDS)
    return {
        "ratios": result.ratios,
        "epochs_per_block": result.epochs_per_block,
        "seconds": result.seconds,
        "interval": [result.interval.estimate, result.interval.low, result.interval.high],
    }


def one_run(pm: Any, factor: float) -> dict[str, Any]:
    """A results document of one case, as `mfbench run` writes it (calibration before, and after the case)."""
    from mfbench.plugin.registry import collect
    from mfbench.run.execute import Overrides, plan_suite
    from mfbench.run.suite import load_suite

    suite = load_suite("quick")
    overrides = Overrides([DATASET], [MODEL], [selection(factor)], ["cpu"])
    cases, _ = plan_suite(collect(pm), suite, overrides, SEPARATE_CONFIG)
    start = calibrate()
    runner = Runner(SEPARATE_CONFIG)
    runner.calibration_score = start["score"]
    record = runner.run_case(cases[0])
    record["calibration_after"] = calibrate(repeats=3)
    return {"machine": {"cpu_model": "same", "calibration": start}, "config": {}, "cases": [record]}


def slim(document: dict[str, Any]) -> dict[str, Any]:
    """What the analysis needs of a one-case document: epoch seconds and calibration, no model output."""
    case = document["cases"][0]
    keep = {
        k: case[k] for k in ("id", "dataset", "model", "strategy", "device", "status", "reason", "summary", "calibration_after")
    }
    keep["repeats"] = [
        {
            "repeat": r["repeat"],
            "epochs": [
                {
                    "seconds": e["seconds"],
                    "test_rmse": e["test_rmse"],
                    "train_rmse": e["train_rmse"],
                    **({"warmup": True} if e.get("warmup") else {}),
                }
                for e in r["epochs"]
            ],
        }
        for r in case["repeats"]
    ]
    return {**document, "cases": [keep]}


def measure_separate(pm: Any, factor: float) -> dict[str, Any]:
    """Base, then new; the new case is relabelled as the base's, as one case measured on changed code is."""
    base, new = slim(one_run(pm, 1.0)), slim(one_run(pm, factor))
    for key in ("id", "strategy"):
        new["cases"][0][key] = base["cases"][0][key]
    return {"base": base, "new": new}


def pytest_sessions(count: int, say: Callable[[str], None]) -> list[dict[str, float]]:
    """Median seconds per benchmark of ``count`` pytest-benchmark sessions, run one after another."""
    sessions = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            path = Path(folder) / f"s{i}.json"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    str(HERE),
                    "-k",
                    BENCHMARKS,
                    f"--benchmark-json={path}",
                ],
                check=True,
                capture_output=True,
                cwd=HERE.parent,
                timeout=600,
            )
            document = json.loads(path.read_text())
            sessions.append({b["name"]: b["stats"]["median"] for b in document["benchmarks"]})
            say(f"  pytest-benchmark session {i + 1}/{count}")
    return sessions


def measure(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    pm = mfbench.make_plugin_manager(["slowed"])

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    document: dict[str, Any] = {
        "schema": "mfbench.noise-study",
        "created": now_iso(),
        "command": sys.argv,
        "machine": machine_info(pm),
        "dataset": DATASET,
        "model": MODEL,
        "factors": FACTORS,
        "ab": {"blocks": AB_BLOCKS, "block_seconds": AB_BLOCK_SECONDS},
        "separate": {
            "config": {"epochs": SEPARATE_CONFIG.epochs, "repeats": SEPARATE_CONFIG.repeats, "warmup": SEPARATE_CONFIG.warmup}
        },
        "conditions": {},
    }
    started = time.perf_counter()
    for load in args.loads:
        name = "busy" if load else "no load"
        condition: dict[str, Any] = {"load_processes": load, "ab": {}, "separate": {}}
        document["conditions"][name] = condition
        with Load(load):
            for pair in range(args.pairs):
                for factor in FACTORS:  # interleaved, so every factor meets the same spells of load
                    if "ab" in args.parts:
                        condition["ab"].setdefault(str(factor), []).append(measure_ab(pm, factor))
                    if "separate" in args.parts and pair < args.separate_pairs:
                        condition["separate"].setdefault(str(factor), []).append(measure_separate(pm, factor))
                say(f"{name}: pair {pair + 1}/{args.pairs} done ({time.perf_counter() - started:.0f} s)")
                if args.output:
                    atomic_write_json(args.output, document)
            if "pytest-benchmark" in args.parts:
                condition["pytest_benchmark"] = pytest_sessions(args.sessions, say)
        if args.output:
            atomic_write_json(args.output, document)
    document["seconds"] = time.perf_counter() - started
    document["finished"] = now_iso()
    return document


# -- analysis ------------------------------------------------------------------


def count(verdicts: list[str], what: str) -> str:
    return f"{sum(v == what for v in verdicts)}/{len(verdicts)}"


def analyze(document: dict[str, Any]) -> dict[str, Any]:
    """Per condition and factor: how many A/B and separate-run pairs were called slower (and by which rule)."""
    from mfbench.stats.verdict import Interval

    summary: dict[str, Any] = {}
    for name, condition in document["conditions"].items():
        rows: dict[str, Any] = {}
        for factor, runs in condition.get("ab", {}).items():
            verdicts = [decide(Interval(*run["interval"], "ab"), THRESHOLD) for run in runs]
            rows.setdefault(factor, {})["ab"] = {
                "slower": count(verdicts, SLOWER),
                "verdicts": verdicts,
                "median_ratio": statistics.median(run["interval"][0] for run in runs),
            }
        for factor, pairs in condition.get("separate", {}).items():
            verdicts, legacy, ratios = [], [], []
            for pair in pairs:
                comparison = compare_documents(pair["base"], pair["new"], fail_threshold=THRESHOLD)
                row = comparison.rows[0]
                verdicts.append(row.speed)
                ratios.append(row.speed_ratio)
                base_speed, new_speed = case_throughput(pair["base"]["cases"][0]), case_throughput(pair["new"]["cases"][0])
                legacy_slower = new_speed.q3 < base_speed.q1 and (1 - new_speed.median / base_speed.median) * 100 > THRESHOLD
                legacy.append(SLOWER if legacy_slower else "~")
            rows.setdefault(factor, {})["separate"] = {
                "slower": count(verdicts, SLOWER),
                "verdicts": verdicts,
                "median_ratio": statistics.median(r for r in ratios if r is not None),
                "interquartile_rule_slower": count(legacy, SLOWER),
            }
        sessions = condition.get("pytest_benchmark")
        if sessions:
            alarms = {}
            names = sorted(set.intersection(*(set(s) for s in sessions)))
            comparisons = [(a[n], b[n]) for a, b in itertools.combinations(sessions, 2) for n in names]
            for pct in PYTEST_THRESHOLDS:
                tripped = sum(new > old * (1 + pct / 100) for old, new in comparisons)
                alarms[f"median:{pct}%"] = f"{tripped}/{len(comparisons)}"
            rows["pytest-benchmark"] = {"benchmarks": names, "sessions": len(sessions), "false_alarms": alarms}
        summary[name] = rows
    return summary


def compact(document: dict[str, Any]) -> dict[str, Any]:
    """The study without the separate runs' raw documents (about 1 MB): their intervals and verdicts stay."""
    small = json.loads(json.dumps(document, default=str))
    for condition in small["conditions"].values():
        for factor, pairs in condition.get("separate", {}).items():
            slim_pairs = []
            for pair in pairs:
                row = compare_documents(pair["base"], pair["new"], fail_threshold=THRESHOLD).rows[0]
                interval = row.speed_interval
                slim_pairs.append(
                    {
                        "ratio": row.speed_ratio,
                        "verdict": row.speed,
                        "interval": [interval.estimate, interval.low, interval.high] if interval else None,
                        "widened": interval.widened if interval else None,
                    }
                )
            condition["separate"][factor] = slim_pairs
    return small


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="write the measurements and their analysis here")
    parser.add_argument("--summary", type=Path, help="also write the study without the separate runs' raw documents here")
    parser.add_argument("--analyze", type=Path, metavar="STUDY.json", help="analyze a saved study instead of measuring")
    parser.add_argument("--pairs", type=int, default=20, help="pairs per factor and condition (default %(default)s)")
    parser.add_argument(
        "--separate-pairs", type=int, default=10, help="of those, pairs also measured as two separate runs (default %(default)s)"
    )
    parser.add_argument("--sessions", type=int, default=6, help="pytest-benchmark sessions per condition (default %(default)s)")
    parser.add_argument(
        "--loads", type=int, nargs="+", default=[0, 1], metavar="N", help="busy-loop processes per condition (default: 0, then 1)"
    )
    parser.add_argument(
        "--parts", nargs="+", default=["ab", "separate", "pytest-benchmark"], choices=["ab", "separate", "pytest-benchmark"]
    )
    args = parser.parse_args(argv)
    if args.analyze:
        document = json.loads(args.analyze.read_text())
    else:
        document = measure(args)
    document["analysis"] = analyze(document)
    if args.output:
        atomic_write_json(args.output, document)
    if args.summary:
        atomic_write_json(args.summary, compact(document))
    print(json.dumps(document["analysis"], indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
