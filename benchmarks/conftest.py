"""The pytest-benchmark suite's cases, generated from the registry.

Every registered strategy is crossed with every registered model and every device
this machine has, so a newly installed strategy plugin gets a benchmark with no
edit here. The registry comes from ``mfbench.make_plugin_manager()`` (built-in,
installed and ``MFBENCH_PLUGINS`` plugins), the same parts ``mfbench list`` shows.

Run with ``pytest benchmarks/`` (the default test run, ``testpaths = tests``,
does not collect it); ``--benchmark-disable`` runs each case once as a smoke check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pytest
import torch

import mfbench
from mfbench.parts import Dataset, Model
from mfbench.plan import Choice, resolve
from mfbench.ratings import Ratings, fingerprint_split
from mfbench.registry import Entry, Registry, collect

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


@dataclass(frozen=True)
class BenchCase:
    """One benchmark: a strategy training a model on the suite's data on one device."""

    dataset: Choice
    model: Choice
    strategy: Entry
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
        return SLOW_ROUNDS.get(self.strategy.name, ROUNDS)

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


@lru_cache(maxsize=None)
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
        ratings = dataset.make().load(SEED)  # type: ignore[attr-defined]
        train, test = ratings.split(TEST_FRACTION, SEED)
        _SPLITS[key] = (train.to(device), test.to(device), fingerprint_split(train, test))
    return _SPLITS[key]


@pytest.fixture
def bench_data(bench_case: BenchCase) -> tuple[Ratings, Ratings, str]:
    """``(train, test, fingerprint)`` of the suite's data on the case's device, loaded once per session."""
    return _split(bench_case.dataset, bench_case.device)
