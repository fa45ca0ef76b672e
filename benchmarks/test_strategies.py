"""One training epoch of every registered strategy, timed by pytest-benchmark.

Each round builds a fresh seeded model and runs the strategy's setup (neither is
timed), then times ``run_epoch(0)`` (``fit(1)`` for a strategy that trains whole
fits only) with the device synchronized before and after, as mfbench's runner does.

Whether a case runs at all (device supported, ``skip()`` accepts the model) is
decided before ``benchmark.pedantic`` is called: pytest-benchmark creates the
benchmark's stats record when ``pedantic`` starts, and a skip raised inside a
round leaves that record empty, which breaks ``--benchmark-json`` and
``--benchmark-autosave`` for the whole session.

Untimed probe rounds time the epoch and a second setup (the first may compile); the number of timed rounds
follows from it (``BenchCase.rounds_for`` in conftest.py), so that a ~1 ms epoch is measured
over at least ``MIN_TIME`` seconds. ``extra_info`` carries updates/s (training
ratings / median epoch), the held-out RMSE of the last round's model, the data
fingerprint (saved runs are comparable only on the same data), the thread count and
the rounds timed.
"""

from __future__ import annotations

import time

import pytest
import torch

from mfbench.data.metrics import rmse
from mfbench.plugin.parts import Strategy
from mfbench.run.timing import synchronize

#: Epochs of the untimed probe round that sizes the number of timed rounds.
PROBE_EPOCHS = 3


def test_epoch(benchmark, bench_case, bench_data):
    train, test, fingerprint = bench_data
    device = torch.device(bench_case.device)
    strategy_cls = bench_case.strategy.cls
    if device.type not in strategy_cls.devices:
        pytest.skip(f"strategy {strategy_cls.name!r} supports {', '.join(strategy_cls.devices)} only")
    benchmark.group = bench_case.group
    live: list[Strategy] = []  # at most one: the previous round's strategy is torn down first
    last: dict[str, torch.nn.Module] = {}

    def teardown_live() -> None:
        while live:
            live.pop().teardown()

    def build() -> tuple[torch.nn.Module, Strategy]:
        torch.manual_seed(0)
        model = bench_case.model.make().build(train).to(device)
        return model, bench_case.strategy.cls()

    model, strategy = build()
    reason = strategy.skip(model, device)
    if reason:  # before pedantic: see the module docstring
        pytest.skip(reason)

    def fresh_round():
        teardown_live()
        model, strategy = build()
        live.append(strategy)
        strategy.setup(model, train, device, 0)
        last["model"] = model
        synchronize(device)
        return (strategy,), {}

    def one_epoch(strategy: Strategy) -> float | None:
        # A library that trains only whole fits (Surprise, LIBMF) is timed on a fit of one epoch.
        loss = strategy.run_epoch(0) if strategy.stepwise else strategy.fit(1)
        synchronize(device)
        return loss

    try:
        rounds = bench_case.rounds
        if benchmark.enabled:
            (probe,), _ = fresh_round()  # a first setup may compile (numba): not what later rounds cost
            epochs = []
            for _ in range(PROBE_EPOCHS):  # the first epoch of a process is often slow: keep the fastest
                start = time.perf_counter()
                one_epoch(probe)
                epochs.append(time.perf_counter() - start)
            start = time.perf_counter()
            fresh_round()
            setup_s = time.perf_counter() - start
            rounds = bench_case.rounds_for(min(epochs), setup_s)
        benchmark.pedantic(one_epoch, setup=fresh_round, rounds=rounds, warmup_rounds=bench_case.warmup_rounds)
    finally:
        teardown_live()

    benchmark.extra_info["train_nnz"] = train.nnz
    benchmark.extra_info["data_fingerprint"] = fingerprint
    benchmark.extra_info["test_rmse"] = rmse(last["model"], test)
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()
    benchmark.extra_info["rounds"] = rounds
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["updates_per_s"] = train.nnz / median if median > 0 else float("inf")
