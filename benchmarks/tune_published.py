"""Tuning against the published numbers: tune every strategy on real ratings, race the tuned ones over
seeds, and say what the tuning cost; or compare pruners on one study budget.

The published figures for biased matrix factorization on MovieLens 100K are about 0.906-0.91 RMSE
(LibRec's and gorse's biased SVD, 5-fold), 0.919 for Surprise's SVD++. ML-100K is in the recbole
wheel (``pip download recbole --no-deps``, then ``recbole/dataset_example/ml-100k/ml-100k.inter``);
ml-latest-small is in the shared data folder.

    python benchmarks/tune_published.py --ratings ml-100k.inter -s numba -s als --trials 16 \\
        -o results/tuned-ml100k-cpu-2core.json
    python benchmarks/tune_published.py --ratings ml-100k.inter -s numba --trials 16 \\
        --compare-pruners median,hyperband,none -o results/pruners-ml100k-cpu-2core.json

Each study: ``mfbench tune`` on the biased model, ``--trials`` trials of up to ``--epochs`` epochs
(early stopping on validation with ``--patience``), the model's width and initialization searched
with the strategy's parameters. The race: ``mfbench run --tuned`` over ``--seeds`` seeds (each its
own split), each tuned case trained for the epochs its study chose, with an auto target; the held-out
RMSE is the test ratings', which no decision saw.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mfbench.stats.intervals import mean_ci


def dataset_selection(path: Path) -> str:
    """The ``file[...]`` selection of a ratings file: recbole's .inter or MovieLens's ratings.csv."""
    header = path.open(encoding="utf-8").readline()
    if "user_id:token" in header:
        return f"file[path={path},user=user_id:token,item=item_id:token,rating=rating:float]"
    if "userId" in header:
        return f"file[path={path},user=userId,item=movieId,rating=rating]"
    return f"file[path={path}]"


def mfbench(*words: str) -> float:
    """Run one mfbench command; its wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mfbench", *words], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def tune(args: argparse.Namespace, storage: Path, pruner: str) -> float:
    return mfbench(
        "tune", "-d", dataset_selection(args.ratings), "-m", "biased", *[w for s in args.strategy for w in ("-s", s)],
        "--device", "cpu", "--trials", str(args.trials), "--epochs", str(args.epochs), "--warmup", "0",
        "--patience", str(args.patience), "--sampler", args.sampler, "--pruner", pruner,
        "--fresh-seeds", str(args.fresh_seeds), "--storage", str(storage),
        *(["--time-budget", args.time_budget] if args.time_budget else []),
    )  # fmt: skip


def race(args: argparse.Namespace, storage: Path, output: Path) -> dict[str, Any]:
    mfbench(
        "run", "-d", dataset_selection(args.ratings), "-m", "biased", *[w for s in args.strategy for w in ("-s", s)],
        "--device", "cpu", "--tuned", str(storage), "--epochs", str(args.epochs), "--warmup", "0",
        "--seeds", str(args.seeds), "--target-rmse", "auto", "--no-calibration", "-q", "-o", str(output), "--force",
    )  # fmt: skip
    return json.loads(output.read_text())


def summary_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Per strategy: held-out RMSE over seeds, what its study chose, what tuning cost, time to target."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for case in document["cases"]:
        if case["status"] == "ok":
            by_strategy.setdefault(case["strategy"]["name"], []).append(case)
    rows = []
    for name, records in by_strategy.items():
        tuning = records[0].get("tuning") or {}
        rmse = mean_ci([r["summary"]["final_test_rmse"] for r in records])
        times = [r["summary"].get("time_to_target_s") for r in records]
        reached = [t for t in times if isinstance(t, (int, float)) and math.isfinite(t)]
        ttt = statistics.median(reached) if len(reached) * 2 >= len(times) and reached else None
        cost = float(tuning.get("cost_s") or 0.0)
        rows.append(
            {
                "strategy": name,
                "seeds": len(records),
                "test_rmse": rmse.estimate,
                "test_rmse_low": rmse.low,
                "test_rmse_high": rmse.high,
                "chosen": tuning.get("chosen"),
                "chosen_epochs": tuning.get("chosen_epochs"),
                "trials": tuning.get("n_trials"),
                "tuning_wall_s": cost,
                "tuning_cpu_s": tuning.get("cpu_s"),
                "epochs_trained": tuning.get("epochs_trained"),
                "fresh_valid_rmse": (tuning.get("fresh") or {}).get("estimate"),
                "time_to_target_s": ttt,
                "time_with_tuning_s": ttt + cost if ttt is not None else None,
                "target_rmse": records[0]["summary"].get("target_rmse"),
            }
        )
    return sorted(rows, key=lambda r: r["test_rmse"])


def print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        interval = f"[{r['test_rmse_low']:.4f}, {r['test_rmse_high']:.4f}]" if r["test_rmse_low"] is not None else ""
        ttt = "not reached" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.3g} s"
        total = "-" if r["time_with_tuning_s"] is None else f"{r['time_with_tuning_s']:.0f} s"
        print(
            f"{r['strategy']:12s} test RMSE {r['test_rmse']:.4f} {interval} over {r['seeds']} seeds; "
            f"chosen {r['chosen']}, {r['chosen_epochs']} epochs; tuning {r['trials']} trials, "
            f"{r['tuning_wall_s']:.0f} s; time to {r['target_rmse']:.4f}: {ttt} "
            f"({total} with tuning)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=Path, required=True)
    parser.add_argument("-s", "--strategy", action="append", default=None)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--sampler", default="gp")
    parser.add_argument("--pruner", default="median")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fresh-seeds", type=int, default=3)
    parser.add_argument("--time-budget", help="per study, as mfbench tune takes it (5m); with --trials, whichever ends first")
    parser.add_argument("--compare-pruners", metavar="P1,P2", help="one study per pruner, same budget: best and wall time")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    args.strategy = args.strategy or ["numba"]
    with tempfile.TemporaryDirectory() as folder:
        if args.compare_pruners:
            found = []
            for pruner in args.compare_pruners.split(","):
                storage = Path(folder) / f"{pruner}.db"
                wall = tune(args, storage, pruner)
                document = race(args, storage, Path(folder) / f"{pruner}.json")
                rows = summary_rows(document)
                best = min(rows, key=lambda r: r["test_rmse"])
                found.append({"pruner": pruner, "tune_wall_s": wall, **best})
                print(
                    f"{pruner:10s} tune {wall:.0f} s ({best['epochs_trained']} epochs); test RMSE "
                    f"{best['test_rmse']:.4f} over {best['seeds']} seeds; fresh-seed validation {best['fresh_valid_rmse']}"
                )
            report: dict[str, Any] = {"pruners": found}
        else:
            storage = Path(folder) / "studies.db"
            wall = tune(args, storage, args.pruner)
            document = race(args, storage, args.output.with_suffix(".race.json"))
            rows = summary_rows(document)
            print_rows(rows)
            report = {"strategies": rows, "tune_wall_s": wall}
    report["command"] = ["python", "benchmarks/tune_published.py", *(argv if argv is not None else sys.argv[1:])]
    report["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
