"""Time-to-target on real MovieLens ratings: every peer and every mfbench strategy, one target.

The target is the best validation RMSE that Surprise's SVD reaches with its own defaults
(100 factors, lr 0.005, reg 0.02, init N(0, 0.1), up to its default 20 epochs) on a
seeded 80/10/10 train/validation/test split; test RMSE is reported, never used to decide. Then
each strategy trains the same model on the same split and the script reports the training seconds it needs to reach that target:

- a strategy that steps epoch by epoch runs once per repeat with ``--target-rmse``
  (the runner's time-to-target: every epoch's seconds until validation RMSE <= target);
- a strategy that only trains whole fits (Surprise, LIBMF) is fitted with 1, 2, 3...
  epochs; its time-to-target is the median fit time of the fewest epochs that reach it;
- a strategy with an implicit-feedback objective has no rating target: it is listed
  with its seconds per iteration only.

Every case is also written to one mfbench results file (``mfbench report`` reads it).

    python benchmarks/movielens_ttt.py                    # ../shared/data's ml-latest-small
    python benchmarks/movielens_ttt.py --ratings ml-latest-small --repeats 3 -o results/x.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

import mfbench
from mfbench.errors import MfbenchError
from mfbench.plugin.registry import collect
from mfbench.results.files import ResultsFile
from mfbench.run.executors import machine_info
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner
from mfbench.stats.summary import as_number, decision_rmse, final_decision_rmse, final_test_rmse

ROOT = Path(__file__).resolve().parent.parent
SHARED_RATINGS = ROOT.parent / "shared" / "data" / "ml-latest-small" / "ratings.csv"

#: Surprise SVD's defaults, as the model and strategy mfbench trains: 100 factors, lr_all 0.005
#: (mfbench's lr is a step on (pred - r)**2, whose gradient carries a factor 2: lr 0.0025), reg_all
#: 0.02, init N(0, 0.1).
SURPRISE_MODEL = "biased[n_factors=100,init_std=0.1]"
SURPRISE_DEFAULTS = "surprise-svd[lr=0.0025,reg=0.02,init_std=0.1]"
SURPRISE_DEFAULT_EPOCHS = 20

#: (strategy selection, model selection). Models without biases are for the peers that have none.
#: Parameters other than the defaults are the ones that keep a strategy from diverging on
#: MovieLens' skewed users (see docs/parts.md, "Default step sizes").
CONTENDERS: list[tuple[str, str]] = [
    (SURPRISE_DEFAULTS, SURPRISE_MODEL),
    ("surprise-svd", SURPRISE_MODEL),
    ("libmf[threads=2]", "dot[n_factors=100,init_std=0.1]"),
    ("implicit-als[threads=2]", "dot[n_factors=100,init_std=0.1]"),
    ("numba", SURPRISE_MODEL),
    ("numba[schedule=blocked,threads=2]", SURPRISE_MODEL),
    ("scripted", SURPRISE_MODEL),
    ("als", SURPRISE_MODEL),
    ("vectorized[lr=0.002]", SURPRISE_MODEL),
    ("minibatch[optimizer=adagrad,lr=0.05]", SURPRISE_MODEL),
    ("hogwild[batch_size=256,lr=0.01]", SURPRISE_MODEL),
    ("ddp[lr=0.002]", SURPRISE_MODEL),
    ("sharded[lr=0.01,batch_size=256]", SURPRISE_MODEL),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ratings",
        default=str(SHARED_RATINGS) if SHARED_RATINGS.exists() else "ml-latest-small",
        help="a MovieLens ratings file, folder or download name (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats per case; medians are reported (default 3)")
    parser.add_argument("--max-epochs", type=int, default=40, help="most epochs any strategy gets (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="split and initialization seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("-s", "--strategy", action="append", help="only these contenders (strategy names; repeatable)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "movielens-ttt.json")
    parser.add_argument("--format", default="github", help="tabulate format of the table (default github)")
    return parser.parse_args(argv)


class Measurement:
    def __init__(self, args: argparse.Namespace, results: ResultsFile) -> None:
        self.args = args
        self.results = results
        self.registry = collect(mfbench.make_plugin_manager())
        self.dataset = f"movielens[path={args.ratings}]"

    def run(self, strategy: str, model: str, epochs: int, target: float | None = None) -> dict[str, Any]:
        config = RunConfig(
            epochs=epochs,
            repeats=self.args.repeats,
            warmup=0,
            seed=self.args.seed,
            test_fraction=0.1,
            target_rmse=target,
            threads=self.args.threads,
        )
        [case] = plan(self.registry, [self.dataset], [model], [strategy], ["cpu"], config)
        record = Runner(config).run_case(case)
        self.results.add(record)
        final = final_test_rmse(record)
        print(
            f"  {record['id']}: {record['status']}"
            + (f", test RMSE {final.median:.4f}" if final else "")
            + (f" ({record['reason']})" if record["reason"] else ""),
            file=sys.stderr,
        )
        return record

    def available(self, strategy: str) -> bool:
        name = strategy.split("[")[0]
        if name in self.registry.strategies:
            return True
        aside = self.registry.unavailable["strategy"].get(name)
        print(f"mfbench: skipping {name}: {aside.cls.unavailable if aside else 'not registered'}", file=sys.stderr)
        return False

    def whole_fits(self, strategy: str, model: str, target: float | None, epochs: int) -> tuple[list[dict], dict | None]:
        """Fits of 1, 2, ... epochs until one reaches ``target`` (all of them when target is None)."""
        fits = []
        for n in range(1, epochs + 1):
            record = self.run(strategy, model, n)
            fits.append(record)
            final = final_decision_rmse(record)
            if record["status"] != "ok":
                return fits, None
            if target is not None and final is not None and final.median <= target:
                return fits, record
        return fits, None


def median_fit_seconds(record: dict[str, Any]) -> float:
    return statistics.median(sum(as_number(e["seconds"]) for e in r["epochs"]) for r in record["repeats"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pm = mfbench.make_plugin_manager()
    header = {
        "command": ["python", "benchmarks/movielens_ttt.py", *(argv or sys.argv[1:])],
        "suite": {"name": "movielens-ttt", "path": None, "description": __doc__.split("\n\n")[0]},
        "machine": machine_info(pm),
    }
    try:
        measurement = Measurement(args, ResultsFile(args.output, header))
        if not measurement.available("surprise-svd"):
            print("mfbench: the target comes from Surprise's SVD: pip install 'mfbench[peers]'", file=sys.stderr)
            return 2
        print(f"target: Surprise SVD with its defaults, fits of 1..{SURPRISE_DEFAULT_EPOCHS} epochs", file=sys.stderr)
        fits, _ = measurement.whole_fits(SURPRISE_DEFAULTS, SURPRISE_MODEL, None, SURPRISE_DEFAULT_EPOCHS)
        best = min(fits, key=lambda r: final_decision_rmse(r).median if final_decision_rmse(r) else math.inf)
        target = final_decision_rmse(best).median
        best_epochs = best["repeats"][0]["epochs"][0]["epochs_covered"]
        print(f"target: validation RMSE {target:.4f} (Surprise SVD defaults, best at {best_epochs} epochs)", file=sys.stderr)
        rows = []
        wanted = set(args.strategy or [])
        for strategy, model in CONTENDERS:
            if (wanted and strategy.split("[")[0] not in wanted) or not measurement.available(strategy):
                continue
            cls = measurement.registry.strategies[strategy.split("[")[0]].cls
            if cls.objective != "rating":
                record = measurement.run(strategy, model, 5)
                rows.append(row(strategy, model, record, None, None, "implicit objective: seconds per iteration only"))
            elif cls.stepwise:
                record = measurement.run(strategy, model, args.max_epochs, target)
                ttt = record["summary"].get("time_to_target_s") if record["status"] == "ok" else None
                rows.append(row(strategy, model, record, ttt, epochs_to(record, target), record["reason"]))
            else:
                fits, reached = measurement.whole_fits(strategy, model, target, args.max_epochs)
                last = reached or fits[-1]
                ttt = median_fit_seconds(reached) if reached else None
                n = reached["repeats"][0]["epochs"][0]["epochs_covered"] if reached else None
                rows.append(row(strategy, model, last, ttt, n, "whole fits of 1, 2, ... epochs"))
        measurement.results.finish()
    except MfbenchError as exc:
        print(f"mfbench: {exc}", file=sys.stderr)
        return 2
    print(
        f"\nMovieLens ({args.ratings}), seeded 80/10/10 split (seed {args.seed}), {args.repeats} repeat(s);"
        f" target validation RMSE {target:.4f} = the best of Surprise SVD's defaults\n"
    )
    print(
        tabulate(
            rows,
            headers=[
                "strategy",
                "model",
                "status",
                "epochs to target",
                "time to target s",
                "s/epoch",
                "setup s",
                "best test RMSE",
                "note",
            ],
            tablefmt=args.format,
            disable_numparse=True,
        )
    )
    print(f"\nresults: {args.output}")
    return 0


def epochs_to(record: dict[str, Any], target: float) -> int | None:
    """Median over repeats of the epochs it took to reach ``target`` (None if most repeats never did)."""
    counts = []
    for repeat in record["repeats"]:
        hits = [i + 1 for i, e in enumerate(repeat["epochs"]) if decision_rmse(e) <= target]
        counts.append(hits[0] if hits else None)
    reached = [c for c in counts if c is not None]
    return int(statistics.median(reached)) if reached and len(reached) * 2 >= len(counts) else None


def row(strategy: str, model: str, record: dict[str, Any], ttt: float | None, epochs: int | None, note: str) -> list[str]:
    summary = record.get("summary") or {}
    best = min((as_number(e.get("test_rmse")) for r in record["repeats"] for e in r.get("epochs", [])), default=math.nan)
    return [
        strategy,
        model.split("[")[0],
        record["status"],
        "" if epochs is None else str(epochs),
        "n/a" if "implicit" in note else ("not reached" if ttt is None else f"{ttt:.3g}"),
        f"{summary['median_epoch_s']:.3g}" if summary.get("median_epoch_s") else "",
        f"{summary['median_setup_s']:.3g}" if summary.get("median_setup_s") is not None else "",
        "" if "implicit" in note or math.isnan(best) else f"{best:.4f}",
        note,
    ]


if __name__ == "__main__":
    sys.exit(main())
