"""A fixed workload timed on every run, so results from two machines can be set side by side.

It does what MF training does most, on tensors of a fixed size: gather
factor rows, multiply, reduce, scatter-add updates back. Its speed is
reported as a score (workload units per second); each case's throughput is
also reported divided by it. Two machines whose scores differ by 2x and whose
relative throughputs agree ran the strategy equally well *relative to the
machine*: a caveat, not a proof, since strategies stress CPUs differently.
"""

from __future__ import annotations

import statistics
import time

import torch

ROWS, FACTORS, BATCH, ROUNDS = 50_000, 20, 100_000, 2
WORKLOAD = f"gather/multiply/scatter-add of {BATCH} rows of a {ROWS}x{FACTORS} float32 table"


def calibrate(repeats: int = 5) -> dict:
    """Time the workload ``repeats`` times (after one warm-up) on CPU; score = units/s (median)."""
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(ROWS, FACTORS, generator=generator)
    other = torch.randn(ROWS, FACTORS, generator=generator)
    rows = torch.randint(0, ROWS, (BATCH,), generator=generator)
    cols = torch.randint(0, ROWS, (BATCH,), generator=generator)

    def work() -> None:
        for _ in range(ROUNDS):
            p = table.index_select(0, rows)
            q = other.index_select(0, cols)
            err = (p * q).sum(1, keepdim=True)
            table.index_add_(0, rows, q * err, alpha=-1e-6)

    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "workload": WORKLOAD,
        "threads": torch.get_num_threads(),
        "seconds": median,
        "seconds_all": times,
        "score": (BATCH * ROUNDS) / median,
    }
