"""Shared fixtures: fresh plugin managers, throwaway plugins and tiny data, never a global manager.

Test modules share through these fixtures and :mod:`mfbench.plugin.contract_checks`, never by importing
each other (or this file), so each test module stands alone under any import mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


@pytest.fixture(scope="session")
def matrix_files(tmp_path_factory):
    """Results files this suite writes itself, for every command to read (tests/test_command_matrix.py):

    * ``every status``: two seeds, ``--target-rmse auto``, cases that end ok, diverged, in error, in
      a timeout and (without CUDA) skipped, from tests/fault_plugins.py, in a subprocess as a user runs it;
    * ``partial``: the first cases of that run, as a run that was stopped leaves its file.
    """
    folder = tmp_path_factory.mktemp("matrix")
    out = folder / "every-status.json"
    tests = str(Path(__file__).parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p),
        "MFBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    strategies = ["vectorized", "vectorized[lr=1000]", "als", "fault-raise", "fault-hang"]
    data = "lowrank[n_users=60,n_items=40,nnz=1500,rank=2]"
    command = [sys.executable, "-m", "mfbench", "run", "-p", "fault_plugins", "-d", data]
    command += ["-m", "biased[n_factors=2]", *(a for s in strategies for a in ("-s", s)), "--device", "cpu", "--device", "cuda"]
    command += ["--seeds", "2", "--epochs", "3", "--warmup", "0", "--repeats", "1", "--target-rmse", "auto"]
    # The hang ends in a timeout after 5 s; the other cases take about 0.5 s each on a quiet 2-core
    # machine (setup included), so a loaded machine leaves them a 10x margin.
    command += ["--case-timeout", "5", "--no-calibration", "-q", "-o", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and out.exists(), done.stdout + done.stderr  # 1: cases ended in error
    document = json.loads(out.read_text())
    partial = folder / "partial.json"
    partial.write_text(json.dumps({**document, "complete": False, "cases": document["cases"][:5]}))
    return {"every status": out, "partial": partial}
