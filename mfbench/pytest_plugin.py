"""pytest fixtures for people who write mfbench plugins.

Installed with mfbench and loaded by pytest through the ``pytest11`` entry point, so a
plugin's test suite can use them with no conftest. Where autoload is off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), load it with ``-p mfbench.pytest_plugin``.

``mfbench_plugin_manager``
    A fresh plugin manager: the built-in plugins and every installed plugin, but not the
    ``MFBENCH_PLUGINS`` environment variable, so a test sees the same parts on every machine
    that has the same packages. Register a module on it in a test to add parts.
``mfbench_registry``
    The parts of that manager, collected when the fixture is set up.
``mfbench_ratings``
    ``(train, test)``: small planted low-rank ratings (noise 0.5), for a quick fit.
``mfbench_run_case``
    Plans and runs cases with mfbench's own runner; returns the case records.
``mfbench_contract``
    The :mod:`mfbench.testing` module: ``assert_learns``, ``assert_exact``, ``assert_deterministic``.

This module imports nothing heavy: every pytest run in an environment with mfbench loads
it, so torch and the harness are imported only when a test asks for a fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

#: The data ``mfbench_run_case`` runs on unless told otherwise: planted, a second or less per epoch.
RUN_CASE_DATASET = "lowrank[n_users=200,n_items=100,nnz=4000]"
#: The planted data of ``mfbench_ratings`` (the contract's generator, smaller).
RATINGS_SIZE = {"n_users": 300, "n_items": 200, "nnz": 6000}


@pytest.fixture
def mfbench_plugin_manager():
    """A fresh plugin manager with built-in and installed plugins (never a global one)."""
    from .plugin.manager import make_plugin_manager

    return make_plugin_manager(entry_points=True, env=False)


@pytest.fixture
def mfbench_registry(mfbench_plugin_manager):
    """Every part of ``mfbench_plugin_manager``, by kind and name (``.strategies["my-name"].cls``)."""
    from .plugin.registry import collect

    return collect(mfbench_plugin_manager)


@pytest.fixture
def mfbench_ratings():
    """``(train, test)``: planted rank-5 ratings with noise 0.5, split 90/10 with seed 0."""
    from .plugin.contract_checks import planted_split

    return planted_split(**RATINGS_SIZE)


@pytest.fixture
def mfbench_contract():
    """The contract checks, :mod:`mfbench.testing` (the same checks mfbench runs on its own strategies)."""
    from .plugin import contract_checks as testing

    return testing


@pytest.fixture
def mfbench_run_case(mfbench_plugin_manager) -> Callable[..., list[dict[str, Any]]]:
    """Run strategies through mfbench's planner and runner, as ``mfbench run`` would.

    ``mfbench_run_case("my-strategy[lr=0.1]", models=("biased", "dot"))`` returns one record per case
    (``record["status"]``, ``record["reason"]``, ``record["summary"]``, ``record["repeats"]``). Parts are
    collected at each call, so modules registered on ``mfbench_plugin_manager`` during the test count.
    Defaults are small: one epoch, one repeat, no warm-up, on the CPU. ``require_ok=True`` fails the
    test, with the case's reason and traceback, unless every case finished ``ok``.
    """
    from .plugin.registry import collect
    from .run.plan import RunConfig, plan
    from .run.runner import Runner

    def run(
        strategies: str | Sequence[str],
        *,
        datasets: Sequence[str] = (RUN_CASE_DATASET,),
        models: Sequence[str] = ("biased",),
        devices: Sequence[str] = ("cpu",),
        plugin_manager=None,
        require_ok: bool = False,
        **config: Any,
    ) -> list[dict[str, Any]]:
        if isinstance(strategies, str):
            strategies = [strategies]
        config.setdefault("epochs", 1)
        config.setdefault("repeats", 1)
        config.setdefault("warmup", 0)
        run_config = RunConfig(**config)
        registry = collect(plugin_manager or mfbench_plugin_manager)
        cases = plan(registry, list(datasets), list(models), list(strategies), list(devices), run_config)
        records = Runner(run_config).run(cases)
        if require_ok:
            failed = [r for r in records if r["status"] != "ok"]
            if failed:
                details = "\n".join(f"{r['id']}: {r['status']}: {r['reason']}\n{r.get('traceback', '')}" for r in failed)
                pytest.fail(f"{len(failed)} of {len(records)} cases did not finish ok:\n{details}", pytrace=False)
        return records

    return run
