"""How long full-catalog ranking evaluation takes: NDCG@10 and recall@20 for every user, one pass.

Builds a biased model with random tables (``--users`` x ``--items``, ``--factors`` wide, random
item biases) and random ratings drawn with numpy in one go: about ``--train`` excluded training
items and ``--heldout`` held-out items per user (uniform draws; repeats are dropped, and a held-out
draw that is also a training item is dropped too). Then times
:func:`mfbench.metrics.ranking.evaluate_ranking` for NDCG@10 and recall@20 in the same pass,
``--runs`` times, and prints the median seconds and users per second with every run's figure.
``--output FILE`` writes the figures as JSON with the machine (platform, CPU count, torch's version
and threads) and the command.

    python benchmarks/ranking_eval.py                       # 100,000 users x 20,000 items, 3 runs
    python benchmarks/ranking_eval.py --users 10000 --runs 5 --output ranking.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import mfbench
from mfbench.metrics.ranking import MEMORY_BUDGET_BYTES, evaluate_ranking
from mfbench.plugins.models.biased import BiasedDotProduct

REQUESTS = [("ndcg", 10), ("recall", 20)]


def random_ratings(
    rng: np.random.Generator, n_users: int, n_items: int, train: int, heldout: int
) -> tuple[mfbench.Ratings, mfbench.Ratings]:
    """(training, held-out) ratings: ``train`` and ``heldout`` uniform draws per user, repeats dropped."""
    draws = rng.integers(0, n_items, size=(n_users, train + heldout), dtype=np.int64)
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + draws
    train_keys = np.unique(keys[:, :train])
    held_keys = np.setdiff1d(np.unique(keys[:, train:]), train_keys, assume_unique=True)

    def ratings(k: np.ndarray) -> mfbench.Ratings:
        return mfbench.Ratings.from_arrays(k // n_items, k % n_items, np.ones(len(k), dtype=np.float32), n_users, n_items)

    return ratings(train_keys), ratings(held_keys)


def random_model(n_users: int, n_items: int, n_factors: int, seed: int) -> BiasedDotProduct:
    torch.manual_seed(seed)
    model = BiasedDotProduct(n_users, n_items, n_factors, global_mean=3.5, init_std=0.1)
    with torch.no_grad():
        model.item_bias.weight.normal_(std=0.1)
        model.user_bias.weight.normal_(std=0.1)
    return model


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--train", type=int, default=50, help="training items drawn per user (excluded from ranking)")
    parser.add_argument("--heldout", type=int, default=10, help="held-out items drawn per user (the relevant ones)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    budget = MEMORY_BUDGET_BYTES >> 20
    parser.add_argument("--batch-users", type=int, default=None, help=f"users per batch (default: {budget} MiB of scores)")
    parser.add_argument("--threads", type=int, default=None, help="torch's intra-op threads (default: torch's own choice)")
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    train, heldout = random_ratings(np.random.default_rng(args.seed), args.users, args.items, args.train, args.heldout)
    model = random_model(args.users, args.items, args.factors, args.seed)
    print(
        f"{args.users:,} users x {args.items:,} items, {args.factors} factors: {len(train):,} training and "
        f"{len(heldout):,} held-out ratings (built in {time.perf_counter() - started:.1f} s), torch {torch.__version__} "
        f"on {torch.get_num_threads()} thread(s)"
    )
    seconds, result = [], None
    for _ in range(args.runs):
        result = evaluate_ranking(model, heldout, [train], REQUESTS, batch_users=args.batch_users)
        seconds.append(result.seconds)
    assert result is not None
    median = statistics.median(seconds)
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"median {median:.2f} s over {args.runs} run(s) ({runs}): {result.n_users / median:,.0f} users/s")
    values = ", ".join(f"{name} {value:.5f}" for name, value in result.metrics.items())
    print(f"{result.scorer} scorer, {result.batch_users} users per batch: {values}")
    if args.output:
        figures = {
            "users": args.users,
            "items": args.items,
            "factors": args.factors,
            "train_ratings": len(train),
            "heldout_ratings": len(heldout),
            "requests": [f"{m}@{k}" for m, k in REQUESTS],
            "runs": args.runs,
            "seconds": seconds,
            "median_seconds": median,
            "users_per_second": result.n_users / median,
            "evaluated_users": result.n_users,
            "skipped_users": result.n_skipped,
            "scorer": result.scorer,
            "batch_users": result.batch_users,
            "metrics": result.metrics,
            "machine": machine(),
            "command": shlex.join([sys.executable, *sys.argv]),
        }
        args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
