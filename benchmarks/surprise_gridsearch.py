"""mfbench's tuner against scikit-surprise's own GridSearchCV, on one split of real ratings.

Both start from the same seeded split of MovieLens ml-latest-small into train,
validation and test (mfbench's ``split_three``: 80/10/10).

- Surprise: ``GridSearchCV(SVD)`` over its usual grid — ``lr_all`` {0.002, 0.005, 0.01},
  ``reg_all`` {0.02, 0.05, 0.1}, ``n_epochs`` {10, 20, 30}, 100 factors (its default) —
  with 3-fold cross-validation on train + validation, then the best parameters refitted
  on train + validation (its documented workflow) and judged on test.
- mfbench: ``mfbench tune`` of ``numba`` on the same biased model (100 factors), on train,
  judged on validation (trials, epochs as given), then the chosen parameters trained on
  train and judged on test at the epoch of best validation RMSE (early stopping on
  validation: no test rating is seen before the final figure).

    python benchmarks/surprise_gridsearch.py -o results/surprise-gridsearch-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import mfbench
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner
from mfbench.stats.summary import decision_rmse
from mfbench.tuning.studies import with_params
from mfbench.tuning.tuner import Tuner

ROOT = Path(__file__).resolve().parent.parent
SHARED_RATINGS = ROOT.parent / "shared" / "data" / "ml-latest-small" / "ratings.csv"
GRID = {"lr_all": [0.002, 0.005, 0.01], "reg_all": [0.02, 0.05, 0.1], "n_epochs": [10, 20, 30]}
MODEL = "biased[n_factors=100,init_std=0.1]"


def surprise_side(split, seed: int, folder: str) -> dict:
    from surprise import SVD, Dataset, Reader, accuracy
    from surprise.model_selection import GridSearchCV

    def rows(part):
        return zip(part.users.tolist(), part.items.tolist(), part.values.tolist(), strict=True)

    # Surprise reads raw ids as strings from a file (its DataFrame loader needs pandas).
    pool = Path(folder) / "train_valid.csv"
    pool.write_text("".join(f"{u},{i},{r}\n" for part in (split.train, split.valid) for u, i, r in rows(part)))
    reader = Reader(line_format="user item rating", sep=",", rating_scale=(0.5, 5.0))
    started = time.perf_counter()
    search = GridSearchCV(SVD, GRID, measures=["rmse"], cv=3, n_jobs=1, joblib_verbose=0)
    search.fit(Dataset.load_from_file(str(pool), reader))
    search_s = time.perf_counter() - started
    best = search.best_params["rmse"]
    model = SVD(**best, random_state=seed)
    model.fit(Dataset.load_from_file(str(pool), reader).build_full_trainset())
    test = [(str(u), str(i), r) for u, i, r in rows(split.test)]
    rmse = accuracy.rmse(model.test(test), verbose=False)
    fits = int(np.prod([len(v) for v in GRID.values()])) * 3
    return {
        "best_params": best,
        "cv_rmse": float(search.best_score["rmse"]),
        "test_rmse": float(rmse),
        "tuning_s": search_s,
        "fits": fits,
    }


def mfbench_side(dataset: str, trials: int, epochs: int, seed: int) -> dict:
    registry = collect(mfbench.make_plugin_manager(entry_points=False, env=False))
    config = RunConfig(epochs=epochs, warmup=0, repeats=1, seed=seed)
    (case,) = plan(registry, [dataset], [MODEL], ["numba"], ["cpu"], config)
    with tempfile.TemporaryDirectory() as folder:
        summary = Tuner(f"{folder}/s.db", config, trials=trials, say=lambda _: None).tune(case)
    record = Runner(config).run_case(with_params(case, summary["chosen"]))
    epochs_seen = record["repeats"][0]["epochs"]
    best = min(range(len(epochs_seen)), key=lambda e: decision_rmse(epochs_seen[e]))
    return {
        "chosen": summary["chosen"],
        "trials": summary["n_trials"],
        "counts": summary["counts"],
        "tuning_s": summary["cost_s"],
        "best_valid_rmse": decision_rmse(epochs_seen[best]),
        "best_epoch": best + 1,
        "test_rmse_at_best_valid": epochs_seen[best]["test_rmse"],
        "final_test_rmse": epochs_seen[-1]["test_rmse"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", default=str(SHARED_RATINGS), help="ml-latest-small ratings.csv (default: shared/data's)")
    parser.add_argument("--trials", type=int, default=20, help="mfbench trials (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="mfbench epoch budget per trial (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    dataset = f"movielens[path='{args.ratings}']"
    registry = collect(mfbench.make_plugin_manager(entry_points=False, env=False))
    ratings = registry.datasets["movielens"].cls(path=args.ratings).load(args.seed)
    split = ratings.split_three(0.1, 0.1, args.seed)
    ours = mfbench_side(dataset, args.trials, args.epochs, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        theirs = surprise_side(split, args.seed, folder)
    print(
        f"mfbench tune (numba, {ours['trials']} trials x {args.epochs} epochs): {ours['tuning_s']:.1f} s, "
        f"chose {ours['chosen']}, test RMSE {ours['test_rmse_at_best_valid']:.4f} (epoch {ours['best_epoch']})"
    )
    print(
        f"Surprise GridSearchCV ({theirs['fits']} fits): {theirs['tuning_s']:.1f} s, chose {theirs['best_params']}, "
        f"test RMSE {theirs['test_rmse']:.4f}"
    )
    print(
        f"tuning time: mfbench {ours['tuning_s'] / theirs['tuning_s']:.1%} of Surprise's; test RMSE "
        f"{ours['test_rmse_at_best_valid']:.4f} vs {theirs['test_rmse']:.4f}"
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "ratings": args.ratings,
                    "split": "80/10/10, seed " + str(args.seed),
                    "grid": GRID,
                    "mfbench": ours,
                    "surprise": theirs,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
