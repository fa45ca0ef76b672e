"""Plugin loading and registration: the road every built-in and third-party part travels."""

from __future__ import annotations

import sys
import textwrap

import pytest

import mfbench
from mfbench.errors import PluginError
from mfbench.plugin.registry import collect
from mfbench.report.tables import render_table


class Throwaway(mfbench.Strategy):
    """A strategy that only exists in this test."""

    name = "throwaway"
    params = {"steps": 1}

    def setup(self, model, train, device, seed):
        self.model = model

    def run_epoch(self, epoch):
        return 0.0


class ThrowawayPlugin:
    @mfbench.hookimpl
    def mfbench_register_strategies(self, register):
        register(Throwaway)


def test_throwaway_strategy_shows_in_a_run_and_its_table(fresh_pm, run_cases):
    fresh_pm.register(ThrowawayPlugin(), name="throwaway-plugin")
    registry = collect(fresh_pm)
    assert registry.strategies["throwaway"].plugin == "throwaway-plugin"
    records = run_cases(fresh_pm, ["throwaway[steps=[1,2]]"])
    assert [(r["strategy"]["name"], r["strategy"]["params"], r["status"]) for r in records] == [
        ("throwaway", {"steps": 1}, "ok"),
        ("throwaway", {"steps": 2}, "ok"),
    ]
    table = render_table(records)
    assert "throwaway" in table and "steps=2" in table


def test_duplicate_name_names_both_plugins(fresh_pm):
    class Clash:
        @mfbench.hookimpl
        def mfbench_register_strategies(self, register):
            class Again(Throwaway):
                name = "reference"

            register(Again)

    fresh_pm.register(Clash(), name="clashing-plugin")
    with pytest.raises(PluginError) as info:
        collect(fresh_pm)
    message = str(info.value)
    assert "'reference'" in message and "mfbench.plugins.strategies.reference" in message and "clashing-plugin" in message


def test_misspelt_hook_fails_at_load(tmp_path, monkeypatch):
    (tmp_path / "typo_plugin.py").write_text(
        textwrap.dedent(
            """
            import mfbench

            @mfbench.hookimpl
            def mfbench_register_stratgies(register):
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="mfbench_register_stratgies") as info:
        mfbench.make_plugin_manager(["typo_plugin"], entry_points=False, env=False)
    assert all(hook in str(info.value) for hook in mfbench.plugin.hookspecs.hook_names())  # it lists the real ones


@pytest.mark.parametrize(
    "bad, message",
    [
        (object, "not a subclass"),
        (type("NoName", (mfbench.Strategy,), {}), "invalid name"),
        (type("Spaced", (mfbench.Strategy,), {"name": "has space"}), "invalid name"),
        (type("BadParam", (mfbench.Strategy,), {"name": "x", "params": {"lr": [1, 2]}}), "must be a bool"),
        (type("BadDevice", (mfbench.Strategy,), {"name": "x", "devices": ("tpu",)}), "devices"),
        (type("WrongKind", (mfbench.Model,), {"name": "x"}), "not a subclass of mfbench.Strategy"),
    ],
)
def test_register_validates(fresh_pm, bad, message):
    class Bad:
        @mfbench.hookimpl
        def mfbench_register_strategies(self, register):
            register(bad)

    fresh_pm.register(Bad(), name="bad-plugin")
    with pytest.raises(PluginError, match=message) as info:
        collect(fresh_pm)
    assert "bad-plugin" in str(info.value)


def test_a_plugin_that_raises_while_registering_is_named(fresh_pm):
    class Broken:
        @mfbench.hookimpl
        def mfbench_register_models(self, register):
            raise RuntimeError("boom")

    fresh_pm.register(Broken(), name="broken-plugin")
    with pytest.raises(PluginError, match="broken-plugin.*boom"):
        collect(fresh_pm)


def test_block_a_builtin_plugin():
    pm = mfbench.make_plugin_manager(["no:mfbench.plugins.strategies.reference"], entry_points=False, env=False)
    assert "reference" not in collect(pm).strategies
    assert "dot" in collect(pm).models


@pytest.mark.parametrize(
    "old, new",
    [
        ("mfbench.plugins.vectorized", "mfbench.plugins.strategies.vectorized"),
        ("mfbench.plugins.numba_sgd", "mfbench.plugins.strategies.numba"),
        ("mfbench.plugins.dask_executor", "mfbench.plugins.executors.dask"),
    ],
)
def test_blocking_a_builtin_by_a_name_it_does_not_have_says_its_name(old, new):
    with pytest.raises(PluginError, match=rf"cannot block '{old}'.*did you mean no:{new}\?"):
        mfbench.make_plugin_manager([f"no:{old}"], entry_points=False, env=False)
    with pytest.raises(PluginError, match="there is no built-in plugin of that name; built-in plugins: "):
        mfbench.make_plugin_manager(["no:mfbench.plugins.strategies.nothing_here"], entry_points=False, env=False)


def test_load_module_with_p_and_env_var(tmp_path, monkeypatch, write_plugin_module):
    write_plugin_module(tmp_path, "by_flag", "flagged")
    write_plugin_module(tmp_path, "by_env", "from-env")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MFBENCH_PLUGINS", "by_env")
    registry = collect(mfbench.make_plugin_manager(["by_flag"], entry_points=False))
    assert registry.strategies["flagged"].plugin == "by_flag"
    assert registry.strategies["from-env"].plugin == "by_env"


def test_unknown_module_is_a_clear_error():
    with pytest.raises(PluginError, match="cannot import plugin module 'no_such_module_x'"):
        mfbench.make_plugin_manager(["no_such_module_x"], entry_points=False, env=False)


def test_no_global_manager_leaks_between_managers(fresh_pm):
    fresh_pm.register(ThrowawayPlugin(), name="throwaway-plugin")
    other = mfbench.make_plugin_manager(entry_points=False, env=False)
    assert "throwaway" not in collect(other).strategies


def test_throwaway_dataset_and_model_are_used_by_a_run(fresh_pm, run_cases):
    class Diagonal(mfbench.Dataset):
        """Each user rates the item with its own index."""

        name = "diagonal"
        params = {"n": 12}

        def load(self, seed):
            n = self.params["n"]
            return mfbench.Ratings.from_arrays(range(n), range(n), [float(k % 5) for k in range(n)], n, n)

    class Constant(mfbench.Model):
        name = "constant"
        params = {"n_factors": 3}

        def build(self, train):
            import torch

            class Module(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.bias = torch.nn.Parameter(torch.zeros(1))

                def forward(self, users, items):
                    return self.bias.expand(len(users))

            return Module()

    class Parts:
        @mfbench.hookimpl
        def mfbench_register_datasets(self, register):
            register(Diagonal)

        @mfbench.hookimpl
        def mfbench_register_models(self, register):
            register(Constant)

    fresh_pm.register(Parts(), name="parts")
    records = run_cases(fresh_pm, ["reference[lr=0.01]"], datasets=("diagonal[n=20]",), models=("constant",), factors=8)
    record = records[0]
    assert record["status"] == "ok"
    assert record["dataset"]["nnz"] == 20 and record["dataset"]["label"] == "diagonal[n=20]"
    assert record["model"]["params"] == {"n_factors": 8}  # --factors reaches models that declare n_factors


def test_missing_library_says_which_module_is_missing_and_how_to_install_it(tmp_path, monkeypatch):
    assert mfbench.missing_library("json", "textwrap", install="pip install x") is None
    assert mfbench.missing_library("json", install="pip install x", load=False) is None
    reason = mfbench.missing_library("json", "no_such_lib_here", install="pip install 'mfbench[x]'", load=False)
    assert reason == "no_such_lib_here is not installed (pip install 'mfbench[x]'): no module named 'no_such_lib_here'"
    (tmp_path / "broken_binding.py").write_text("raise OSError('libfoo.so: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reason = mfbench.missing_library("broken_binding", install="pip install foo", what="foo")
    assert reason == "foo is not installed (pip install foo): OSError: libfoo.so: cannot open shared object file"
    monkeypatch.setitem(sys.modules, "blocked_lib", None)
    assert "blocked_lib is not installed (pip install b)" in mfbench.missing_library("blocked_lib", install="pip install b")
    assert "blocked_lib" in mfbench.missing_library("blocked_lib", install="pip install b", load=False)


def test_module_paths_from_before_the_core_moved_into_folders_still_import_the_same_modules():
    """A plugin written against the earlier layout imports mfbench.testing, mfbench.roofline,
    mfbench.layout and mfbench.executors(.pool ...): each is the module that moved, not a copy."""
    import importlib

    import mfbench.plugin.contract_checks
    import mfbench.run.executors.pool

    assert importlib.import_module("mfbench.testing") is mfbench.plugin.contract_checks
    assert importlib.import_module("mfbench.executors.pool").WorkerGroup is mfbench.run.executors.pool.WorkerGroup
    assert importlib.import_module("mfbench.executors").Executor is mfbench.Executor
    assert importlib.import_module("mfbench.layout").find_tables is mfbench.find_tables
    assert importlib.import_module("mfbench.roofline").per_rating_sgd(20, 4, True)
