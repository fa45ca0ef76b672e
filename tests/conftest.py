"""Shared fixtures: fresh plugin managers and tiny data, never a global manager."""

from __future__ import annotations

import pytest

import mfbench
from mfbench.plan import RunConfig, plan
from mfbench.registry import collect
from mfbench.runner import Runner

TINY = "sprand[n_users=40,n_items=30,density=0.2]"


@pytest.fixture
def fresh_pm():
    """A plugin manager with the built-in plugins only (no installed plugins, no env var)."""
    return mfbench.make_plugin_manager(entry_points=False, env=False)


@pytest.fixture
def run_cases():
    """Plan and run cases on a plugin manager; returns the case records."""

    def run(pm, strategies, *, datasets=(TINY,), models=("dot",), devices=("cpu",), on_case=None, **config):
        config.setdefault("epochs", 1)
        config.setdefault("repeats", 1)
        config.setdefault("warmup", 0)
        cfg = RunConfig(**config)
        cases = plan(collect(pm), list(datasets), list(models), list(strategies), list(devices), cfg)
        return Runner(cfg, on_case=on_case).run(cases)

    return run
