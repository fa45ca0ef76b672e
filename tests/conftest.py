"""Shared fixtures: fresh plugin managers, throwaway plugins and tiny data, never a global manager.

Test modules share through these fixtures and :mod:`mfbench.plugin.contract_checks`, never by importing
each other (or this file), so each test module stands alone under any import mode.
"""

from __future__ import annotations

import textwrap

import pytest

import mfbench
from mfbench.plugin.contract_checks import TINY_DATASET
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner


@pytest.fixture
def fresh_pm():
    """A plugin manager with the built-in plugins only (no installed plugins, no env var)."""
    return mfbench.make_plugin_manager(entry_points=False, env=False)


@pytest.fixture
def register_strategies():
    """Register strategy classes on a plugin manager as one throwaway plugin; returns the manager.

    ``register_strategies(pm, Raising, Counting, name="test-parts")``: the plugin's name is what
    records and errors show as the part's plugin (default: "test-" and the strategies' names).
    """

    def register(pm, *classes, name=None):
        class Strategies:
            @mfbench.hookimpl
            def mfbench_register_strategies(self, register):
                for cls in classes:
                    register(cls)

        pm.register(Strategies(), name=name or "test-" + "-".join(cls.name for cls in classes))
        return pm

    return register


@pytest.fixture
def write_plugin_module():
    """Write a plugin module ``module``.py into ``directory`` that registers one strategy named ``strategy``."""

    def write(directory, module="my_strategies", strategy="mine"):
        (directory / f"{module}.py").write_text(
            textwrap.dedent(
                f"""
                import mfbench

                class Mine(mfbench.Strategy):
                    name = "{strategy}"
                    params = {{"lr": 0.5}}

                    def setup(self, model, train, device, seed):
                        pass

                    def run_epoch(self, epoch):
                        return None

                @mfbench.hookimpl
                def mfbench_register_strategies(register):
                    register(Mine)
                """
            )
        )

    return write


@pytest.fixture
def run_cases():
    """Plan and run cases on a plugin manager; returns the case records."""

    def run(pm, strategies, *, datasets=(TINY_DATASET,), models=("dot",), devices=("cpu",), on_case=None, **config):
        config.setdefault("epochs", 1)
        config.setdefault("repeats", 1)
        config.setdefault("warmup", 0)
        cfg = RunConfig(**config)
        cases = plan(collect(pm), list(datasets), list(models), list(strategies), list(devices), cfg)
        return Runner(cfg, on_case=on_case).run(cases)

    return run
