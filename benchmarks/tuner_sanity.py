"""Does the tuner find the step size a dense grid finds? A sanity check on planted data.

For each strategy, a dense log-spaced grid of ``lr`` (other parameters at their defaults)
is trained for the epoch budget and judged by its best validation RMSE; then
``mfbench tune --params lr`` runs a study of ``--trials`` trials over the strategy's
declared ``lr`` range. The check passes when the tuned lr is within 2x of the grid's best.

    python benchmarks/tuner_sanity.py -o results/tuner-sanity-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import mfbench
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner
from mfbench.stats.summary import best_decision_rmse
from mfbench.tuning.studies import with_params
from mfbench.tuning.tuner import Tuner

DATA = "lowrank[n_users=2000,n_items=1000,nnz=100000,rank=5]"
MODEL = "biased[n_factors=5]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-s", "--strategy", action="append", help="strategies (default: vectorized, numba)")
    parser.add_argument("--grid", type=int, default=16, help="grid points over the lr range (default %(default)s)")
    parser.add_argument("--trials", type=int, default=20, help="trials of the study (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=8, help="epoch budget (default %(default)s)")
    parser.add_argument("-o", "--output", type=Path, help="write the findings as JSON")
    args = parser.parse_args()
    registry = collect(mfbench.make_plugin_manager(entry_points=False, env=False))
    config = RunConfig(epochs=args.epochs, warmup=0, repeats=1, seed=0)
    runner = Runner(config)
    findings = []
    for name in args.strategy or ["vectorized", "numba"]:
        (case,) = plan(registry, [DATA], [MODEL], [name], ["cpu"], config)
        dim = case.strategy.entry.cls.search_space["lr"]
        grid = [dim.low * (dim.high / dim.low) ** (i / (args.grid - 1)) for i in range(args.grid)]
        scores = []
        started = time.perf_counter()
        for lr in grid:
            record = runner.run_case(with_params(case, {"lr": lr}))
            value = best_decision_rmse(record) if record["status"] == "ok" else None
            scores.append(math.inf if value is None else value)
        grid_s = time.perf_counter() - started
        best_lr = grid[min(range(len(grid)), key=scores.__getitem__)]
        with tempfile.TemporaryDirectory() as folder:
            tuner = Tuner(f"{folder}/s.db", config, trials=args.trials, only={"lr"}, say=lambda _: None)
            summary = tuner.tune(case)
        tuned_lr = summary["best"]["params"]["lr"]
        ratio = max(tuned_lr, best_lr) / min(tuned_lr, best_lr)
        findings.append(
            {
                "strategy": name,
                "grid": grid,
                "grid_best_valid": scores,
                "grid_best_lr": best_lr,
                "grid_s": grid_s,
                "tuned_lr": tuned_lr,
                "tuned_best_valid": summary["best"]["best_valid_rmse"],
                "tuning_s": summary["cost_s"],
                "trials": summary["n_trials"],
                "ratio": ratio,
                "within_2x": ratio <= 2.0,
            }
        )
        print(
            f"{name}: grid best lr {best_lr:.4g} (valid {min(scores):.4f}, {args.grid} points, {grid_s:.0f} s); "
            f"tuned lr {tuned_lr:.4g} (valid {summary['best']['best_valid_rmse']:.4f}, {summary['n_trials']} trials, "
            f"{summary['cost_s']:.0f} s): ratio {ratio:.2f} {'<= 2: ok' if ratio <= 2 else '> 2: FAILED'}"
        )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps({"data": DATA, "model": MODEL, "epochs": args.epochs, "findings": findings}, indent=1) + "\n"
        )
    return 0 if all(f["within_2x"] for f in findings) else 1


if __name__ == "__main__":
    raise SystemExit(main())
