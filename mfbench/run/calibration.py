"""A fixed workload timed on every run, so results from two machines can be set side by side.

It does what MF training does most, on tensors of a fixed size: gather
factor rows, multiply, reduce, scatter-add updates back. Its speed is
reported as a score (workload units per second); each case's throughput is
also reported divided by it. Two machines whose scores differ by 2x and whose
relative throughputs agree ran the strategy equally well *relative to the
machine*: a caveat, not a proof, since strategies stress CPUs differently.

It also measures the machine's two ceilings, which the roofline fields of each
case are fractions of (``mfbench.stats.roofline``): memory bandwidth (a copy of a
table far larger than the caches, bytes read plus bytes written per second) and
compute peak (float32 matrix multiply, flops per second), both with torch's
threads of the run.
"""

from __future__ import annotations

import statistics
import time

import torch

ROWS, FACTORS, BATCH, ROUNDS = 50_000, 20, 100_000, 2
WORKLOAD = f"gather/multiply/scatter-add of {BATCH} rows of a {ROWS}x{FACTORS} float32 table"
#: float32 elements of the bandwidth probe's table: 128 MiB, far past any CPU's last-level cache.
STREAM_ELEMENTS = 32 * 2**20
#: Side of the square float32 matrices the compute probe multiplies (2 n^3 flops each).
MATMUL_SIDE = 1024


def best_seconds(work, repeats: int) -> float:
    """The fastest of ``repeats`` timings after one warm-up: a ceiling is what the machine can do."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def memory_bandwidth(repeats: int = 3) -> float:
    """Bytes per second of a large table copy (each element read once and written once)."""
    source = torch.ones(STREAM_ELEMENTS)
    target = torch.empty_like(source)
    seconds = best_seconds(lambda: target.copy_(source), repeats)
    return 2 * source.numel() * source.element_size() / seconds


def compute_peak(repeats: int = 3) -> float:
    """float32 flops per second of a square matrix multiply (BLAS: as near the peak as torch gets)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_SIDE, MATMUL_SIDE, generator=generator)
    b = torch.randn(MATMUL_SIDE, MATMUL_SIDE, generator=generator)
    out = torch.empty_like(a)
    seconds = best_seconds(lambda: torch.mm(a, b, out=out), repeats)
    return 2 * MATMUL_SIDE**3 / seconds


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
        "memory_bytes_per_s": memory_bandwidth(),
        "memory_probe": f"copy of a {STREAM_ELEMENTS * 4 // 2**20} MiB float32 table, best of 3",
        "peak_flops_per_s": compute_peak(),
        "compute_probe": f"float32 matmul {MATMUL_SIDE}x{MATMUL_SIDE}, best of 3",
    }
