"""How often LIBMF's end-of-fit race deadlocks a fit, and how fast ``libmf`` sees it.

LIBMF 0.9.2's scheduler can leave a fit that never returns on tiny problems (see
``mfbench.plugins.peers.libmf.fit_within``). This fits LIBMF many times on a small
random problem through ``fit_within`` (what the ``libmf`` strategy calls) and reports
how many fits deadlocked, how long each took to be given up, and how long the fits
that returned took. Load the machine to see the race: it needs the main thread
preempted at the end of a fit.

    python benchmarks/libmf_deadlock.py --fits 1500 --load 2

Measured on the shared 2-core machine with ``--fits 1500 --load 2``: 11 of 1,500 fits
of 5,400 ratings deadlocked, each given up after 0.508-0.518 s; the fits that returned
took 7.9 ms median, 16.5 ms at most.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

from mfbench.plugins.peers.libmf import UNAVAILABLE, LibmfHung, fit_within, libmf_mf


def problem(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random [user, item, rating] rows over 300 x 200, as the bindings take them."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 3), dtype=np.float32)
    X[:, 0], X[:, 1], X[:, 2] = rng.integers(0, 300, n), rng.integers(0, 200, n), rng.normal(3.0, 1.0, n)
    return X


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=500, help="fits to try (default %(default)s)")
    parser.add_argument("--ratings", type=int, default=5400, help="ratings per fit (default %(default)s)")
    parser.add_argument("--load", type=int, default=0, help="busy processes to run meanwhile (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a fit is given up anyway")
    args = parser.parse_args(argv)
    if UNAVAILABLE is not None:
        print(f"libmf_deadlock: {UNAVAILABLE}", file=sys.stderr)
        return 2
    X = problem(args.ratings)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    returned: list[float] = []
    hung: list[float] = []
    try:
        for _ in range(args.fits):
            engine = libmf_mf.MF(
                fun=libmf_mf.P_L2_MFR, k=6, nr_threads=1, nr_bins=3, nr_iters=1, lambda_p1=0.0, lambda_q1=0.0,
                lambda_p2=0.02, lambda_q2=0.02, eta=0.25, quiet=True, copy_data=False,
            )  # fmt: skip
            started = time.perf_counter()
            try:
                fit_within(engine, X, args.timeout)
                returned.append(time.perf_counter() - started)
            except LibmfHung:
                hung.append(time.perf_counter() - started)  # its threads stay behind, asleep
    finally:
        for process in busy:
            process.kill()
    print(f"{args.fits} fits of {args.ratings} ratings, {args.load} busy processes: {len(hung)} deadlocked")
    if hung:
        print(f"given up after {min(hung):.3f}-{max(hung):.3f} s")
    if returned:
        print(f"fits that returned: {statistics.median(returned) * 1e3:.1f} ms median, {max(returned) * 1e3:.1f} ms at most")
    return 0


if __name__ == "__main__":
    sys.exit(main())
