"""The pytest-benchmark suite's cases, generated from the registry.

Every registered strategy is crossed with every registered model and every device
this machine has, so a newly installed strategy plugin gets a benchmark with no
edit here. The registry comes from ``mfbench.make_plugin_manager()`` (built-in,
installed and ``MFBENCH_PLUGINS`` plugins), the same parts ``mfbench list`` shows.

Run with ``pytest benchmarks/`` (the default test run, ``testpaths = tests``,
does not collect it); ``--benchmark-disable`` runs each case once as a smoke check.

Made to be compared between runs (``--benchmark-autosave``/``--benchmark-json``, then
``--benchmark-compare``): the session runs torch on ``BENCH_THREADS`` intra-op thread(s)
(two threads under contention made epochs 3-7x slower and far noisier), every benchmark
times enough rounds to cover ``MIN_TIME`` seconds of epochs, and the saved machine info
carries the thread count, mfbench's machine facts and the calibration score timed at
session start and end, so a reader can tell a slower machine from slower code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import torch

import mfbench
from mfbench.data.ratings import Ratings, fingerprint_split
from mfbench.plugin.parts import Dataset, Model, Strategy
from mfbench.plugin.registry import Entry, Registry, collect
from mfbench.run.calibration import calibrate
from mfbench.run.executors import machine_info as mfbench_machine_facts
from mfbench.run.plan import Choice, resolve

#: Small planted data: a few milliseconds per epoch for the fast strategies, a few seconds for the reference.
DATASET = "lowrank[n_users=300,n_items=200,nnz=6000]"
SEED = 0
TEST_FRACTION = 0.1
#: Timed rounds (one fresh model and one epoch each) per benchmark.
ROUNDS = 5
#: Fewer rounds for strategies that take seconds per epoch on DATASET (the per-rating reference).
SLOW_ROUNDS = {"reference": 2}
#: Untimed rounds first (fresh model and setup too), so one-off costs of a process's first epoch are not timed.
WARMUP_ROUNDS = 1
#: Enough rounds that the timed epochs add up to at least this many seconds: a ~1 ms epoch timed
#: over 5 rounds is 5 ms of measurement, where one scheduler hiccup moves the mean by 100%.
MIN_TIME = float(os.environ.get("MFBENCH_BENCH_MIN_TIME", "0.5"))  # the tests of this suite set it lower
#: ...but never more rounds than this (each round rebuilds the model and reruns the setup).
MAX_ROUNDS = 1000
#: ...and never more than this many seconds of setups, for strategies that start processes per setup.
MAX_SETUP_TIME = 20.0
#: torch intra-op threads for the whole session (recorded in the machine info and each benchmark).
BENCH_THREADS = 1


@dataclass(frozen=True)
class BenchCase:
    """One benchmark: a strategy training a model on the suite's data on one device."""

    dataset: Choice[Dataset]
    model: Choice[Model]
    strategy: Entry[Strategy]
    device: str

    @property
    def id(self) -> str:
        return f"{self.model.label}-{self.strategy.name}-{self.device}"

    @property
    def group(self) -> str:
        """Strategies on the same data and model share one table."""
        return f"{self.dataset.label} / {self.model.label}"

    @property
    def rounds(self) -> int:
        """The fewest timed rounds; :func:`rounds_for` raises it to cover ``MIN_TIME``."""
        return SLOW_ROUNDS.get(self.strategy.name, ROUNDS)

    def rounds_for(self, epoch_s: float, setup_s: float) -> int:
        """Timed rounds for this case, whose probe epoch took ``epoch_s`` after a setup of ``setup_s``.

        At least ``rounds``; more until the epochs cover ``MIN_TIME`` seconds, unless the
        setups (one before every round) would take longer than ``MAX_SETUP_TIME``.
        """
        wanted = math.ceil(MIN_TIME / epoch_s) if epoch_s > 0 else MAX_ROUNDS
        affordable = math.floor(MAX_SETUP_TIME / setup_s) if setup_s > 0 else MAX_ROUNDS
        return max(self.rounds, min(wanted, affordable, MAX_ROUNDS))

    @property
    def warmup_rounds(self) -> int:
        return 0 if self.strategy.name in SLOW_ROUNDS else WARMUP_ROUNDS


def available_devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def benchmark_cases(registry: Registry, devices: list[str] | None = None, dataset: str = DATASET) -> list[BenchCase]:
    """One case per registered strategy x model x device, in a stable order."""
    (data_choice,) = resolve(registry, Dataset, [dataset])
    models = resolve(registry, Model, sorted(registry.models))
    return [
        BenchCase(data_choice, model, registry.strategies[name], device)
        for model in models
        for name in sorted(registry.strategies)
        for device in (devices if devices is not None else available_devices())
    ]


@cache
def _registry() -> Registry:
    return collect(mfbench.make_plugin_manager())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_case" in metafunc.fixturenames:
        cases = benchmark_cases(_registry())
        metafunc.parametrize("bench_case", cases, ids=[c.id for c in cases])


_SPLITS: dict[tuple[str, str], tuple[Ratings, Ratings, str]] = {}


def _split(dataset: Choice, device: str) -> tuple[Ratings, Ratings, str]:
    key = (dataset.label, device)
    if key not in _SPLITS:
        ratings = dataset.make().load(SEED)
        train, test = ratings.split(TEST_FRACTION, SEED)
        _SPLITS[key] = (train.to(device), test.to(device), fingerprint_split(train, test))
    return _SPLITS[key]


@pytest.fixture
def bench_data(bench_case: BenchCase) -> tuple[Ratings, Ratings, str]:
    """``(train, test, fingerprint)`` of the suite's data on the case's device, loaded once per session."""
    return _split(bench_case.dataset, bench_case.device)


_CALIBRATION: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread for the whole session, and the calibration score before any benchmark."""
    torch.set_num_threads(BENCH_THREADS)
    if not config.getoption("benchmark_disable", default=False) and not config.getoption("collectonly"):
        _CALIBRATION["start"] = calibrate()


def calibration_summary() -> dict[str, Any]:
    """The calibration timed at session start and (once asked at the end) session end."""
    if "start" not in _CALIBRATION:
        return {}
    if "end" not in _CALIBRATION:
        _CALIBRATION["end"] = calibrate()
    start, end = _CALIBRATION["start"], _CALIBRATION["end"]
    return {
        "workload": start["workload"],
        "threads": start["threads"],
        "score": start["score"],
        "score_end": end["score"],
        # how far the machine's speed moved during the session: a change in a benchmark smaller
        # than this drift cannot be told from the machine changing under it
        "drift": abs(end["score"] / start["score"] - 1.0),
    }


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Saved runs carry mfbench's machine facts, the thread count and the calibration."""
    facts = mfbench_machine_facts(mfbench.make_plugin_manager())
    machine_info["mfbench"] = {**facts, "calibration": calibration_summary()}
    machine_info["torch_threads"] = torch.get_num_threads()
