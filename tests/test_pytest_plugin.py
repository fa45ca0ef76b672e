"""The pytest kit for plugin authors (mfbench.pytest_plugin), run as a plugin author would.

Each test writes a throwaway test file and runs pytest on it with ``pytester``, loading the
kit the way a plugin's own suite would: through the installed ``pytest11`` entry point, or
``-p mfbench.pytest_plugin`` where that entry point is not installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

pytest_plugins = ["pytester"]

KIT = "mfbench.pytest_plugin"
FIXTURE_PACKAGE = Path(__file__).parent / "fixtures" / "mfbench-adagrad"


def kit_args() -> list[str]:
    """The ``-p`` that loads the kit: by entry-point name where installed (``-p MODULE`` would then
    register it a second time, which pytest refuses), else by module path."""
    for entry in importlib.metadata.entry_points(group="pytest11"):
        if entry.value == KIT:
            return ["-p", entry.name]
    return ["-p", KIT]


def test_every_fixture_in_a_plugin_authors_test_file(pytester):
    pytester.makepyfile(
        """
        import pluggy
        import torch
        import mfbench

        seen = []

        class Still(mfbench.Strategy):
            name = "kit-still"
            params = {"lr": 0.5}

            def setup(self, model, train, device, seed):
                pass

            def run_epoch(self, epoch):
                return 0.0

        class StillPlugin:
            @mfbench.hookimpl
            def mfbench_register_strategies(self, register):
                register(Still)

        def test_plugin_manager_is_fresh_with_builtins(mfbench_plugin_manager):
            assert isinstance(mfbench_plugin_manager, pluggy.PluginManager)
            assert mfbench_plugin_manager.get_plugin("mfbench.plugins.strategies.reference") is not None
            seen.append(mfbench_plugin_manager)
            mfbench_plugin_manager.register(StillPlugin(), name="still")

        def test_plugin_manager_does_not_leak_between_tests(mfbench_plugin_manager, mfbench_registry):
            assert seen and seen[0] is not mfbench_plugin_manager
            assert mfbench_plugin_manager.get_plugin("still") is None
            assert "kit-still" not in mfbench_registry.strategies

        def test_registry(mfbench_registry):
            assert mfbench_registry.strategies["reference"].plugin == "mfbench.plugins.strategies.reference"
            assert {"dot", "biased"} <= set(mfbench_registry.models)
            assert "lowrank" in mfbench_registry.datasets

        def test_ratings(mfbench_ratings):
            train, test = mfbench_ratings
            assert isinstance(train, mfbench.Ratings) and isinstance(test, mfbench.Ratings)
            assert len(train) + len(test) == 6000 and len(test) == 600
            assert (train.n_users, train.n_items) == (300, 200)
            assert train.values.dtype == torch.float32

        def test_run_case_runs_a_builtin_strategy(mfbench_run_case):
            (record,) = mfbench_run_case("vectorized[lr=0.05]", require_ok=True)
            assert record["status"] == "ok", record["reason"]
            assert record["strategy"]["params"]["lr"] == 0.05
            assert record["model"]["name"] == "biased" and record["device"] == "cpu"
            assert record["dataset"]["n_users"] == 200 and record["dataset"]["nnz"] == 4000
            (repeat,) = record["repeats"]
            assert [e["epoch"] for e in repeat["epochs"]] == [0]
            assert repeat["epochs"][0]["train_rmse"] != repeat["initial"]["train_rmse"]
            assert record["summary"]["epochs_timed"] == 1

        def test_run_case_sees_a_plugin_registered_in_the_test(mfbench_plugin_manager, mfbench_run_case):
            mfbench_plugin_manager.register(StillPlugin(), name="still")
            records = mfbench_run_case(["kit-still"], models=("dot", "biased"), epochs=2)
            assert [r["status"] for r in records] == ["ok", "ok"]
            assert [r["model"]["name"] for r in records] == ["dot", "biased"]
            assert all(r["strategy"]["plugin"] == "still" for r in records)
            assert all(len(r["repeats"][0]["epochs"]) == 2 for r in records)

        def test_contract(mfbench_contract):
            from mfbench import testing
            assert mfbench_contract is testing
            assert callable(mfbench_contract.assert_learns)
        """
    )
    result = pytester.runpytest_subprocess(*kit_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_contract_fixture_fails_a_strategy_that_does_not_learn(pytester):
    pytester.makepyfile(
        """
        import mfbench

        class Idle(mfbench.Strategy):
            name = "kit-idle"

            def setup(self, model, train, device, seed):
                pass

            def run_epoch(self, epoch):
                return None

        def test_idle_learns(mfbench_contract):
            mfbench_contract.assert_learns(Idle, "biased", max_epochs=2)
        """
    )
    result = pytester.runpytest_subprocess(*kit_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: kit-idle on biased: held-out RMSE * after 2 epochs, target 0.5750*"])


def test_run_case_require_ok_reports_a_broken_strategy(pytester):
    pytester.makepyfile(
        """
        import mfbench

        class Broken(mfbench.Strategy):
            name = "kit-broken"

            def setup(self, model, train, device, seed):
                pass

            def run_epoch(self, epoch):
                raise RuntimeError("the kit must show this")

        class Plugin:
            @mfbench.hookimpl
            def mfbench_register_strategies(self, register):
                register(Broken)

        def test_records_say_error(mfbench_plugin_manager, mfbench_run_case):
            mfbench_plugin_manager.register(Plugin())
            (record,) = mfbench_run_case("kit-broken")
            assert record["status"] == "error"
            assert "the kit must show this" in record["reason"]

        def test_require_ok_fails(mfbench_plugin_manager, mfbench_run_case):
            mfbench_plugin_manager.register(Plugin())
            mfbench_run_case("kit-broken", require_ok=True)
        """
    )
    result = pytester.runpytest_subprocess(*kit_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*1 of 1 cases did not finish ok:*", "*kit-broken*error: RuntimeError: the kit must show this*"])


def test_plugin_manager_ignores_the_environment_variable(pytester, monkeypatch):
    monkeypatch.setenv("MFBENCH_PLUGINS", "no_such_mfbench_plugin_module")
    pytester.makepyfile(
        """
        def test_loads(mfbench_registry):
            assert "reference" in mfbench_registry.strategies
        """
    )
    result = pytester.runpytest_subprocess(*kit_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_loading_the_kit_imports_nothing_beyond_mfbench():
    """Every pytest run in an environment with mfbench loads the kit: the harness modules (runner,
    planner, contract checks) wait until a test asks for a fixture."""
    code = (
        "import sys, mfbench; before = set(sys.modules); import mfbench.pytest_plugin; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('mfbench', 'torch', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mfbench.pytest_plugin']"


def test_example_package_tests_pass_with_the_kit(tmp_path):
    """The example third-party package, built and installed with pip, passes its own tests."""
    source = tmp_path / "mfbench-adagrad"
    shutil.copytree(FIXTURE_PACKAGE, source)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MFBENCH_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *kit_args(), "-p", "no:cacheprovider", "-q", "tests"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
