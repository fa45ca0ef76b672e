"""One training epoch of every registered strategy, timed by pytest-benchmark.

Each round builds a fresh seeded model and runs the strategy's setup (neither is
timed), then times ``run_epoch(0)`` (``fit(1)`` for a strategy that trains whole
fits only) with the device synchronized before and after, as mfbench's runner does. ``extra_info`` carries updates/s (training ratings / median
epoch), the held-out RMSE of the last round's model and the data fingerprint, so
saved runs (``--benchmark-autosave``) are comparable only on the same data.
"""

from __future__ import annotations

import pytest
import torch

from mfbench.metrics import rmse
from mfbench.parts import Strategy
from mfbench.timing import synchronize


def test_epoch(benchmark, bench_case, bench_data):
    train, test, fingerprint = bench_data
    device = torch.device(bench_case.device)
    strategy_cls: type[Strategy] = bench_case.strategy.cls  # type: ignore[assignment]
    if device.type not in strategy_cls.devices:
        pytest.skip(f"strategy {strategy_cls.name!r} supports {', '.join(strategy_cls.devices)} only")
    benchmark.group = bench_case.group
    live: list[Strategy] = []  # at most one: the previous round's strategy is torn down first
    last: dict[str, torch.nn.Module] = {}

    def teardown_live() -> None:
        while live:
            live.pop().teardown()

    def fresh_round():
        teardown_live()
        torch.manual_seed(0)
        model = bench_case.model.make().build(train).to(device)  # type: ignore[attr-defined]
        strategy: Strategy = bench_case.strategy.cls()  # type: ignore[assignment]
        reason = strategy.skip(model, device)
        if reason:
            pytest.skip(reason)
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
        benchmark.pedantic(one_epoch, setup=fresh_round, rounds=bench_case.rounds, warmup_rounds=bench_case.warmup_rounds)
    finally:
        teardown_live()

    benchmark.extra_info["train_nnz"] = train.nnz
    benchmark.extra_info["data_fingerprint"] = fingerprint
    benchmark.extra_info["test_rmse"] = rmse(last["model"], test)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["updates_per_s"] = train.nnz / median if median > 0 else float("inf")
