"""Declared parameter constraints: checked while planning, every violation listed, the same for every part."""

from __future__ import annotations

import math

import pytest

import mfbench
from mfbench.cli import main
from mfbench.errors import PluginError, SelectionError
from mfbench.plugin.constraints import compile_constraint, violations
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan


@pytest.mark.parametrize(
    "spec, good, bad",
    [
        ("positive", [1e-9, 3], [0, -1, math.nan, "x", True]),
        ("non-negative", [0, 2.5], [-1e-9, math.nan]),
        (">= 1", [1, 7], [0, 0.5]),
        ("< 10", [9.9, -3], [10, 11]),
        ("(0, 1]", [1, 0.5], [0, 1.01, math.nan]),
        ("[0, 1)", [0, 0.99], [1, -0.1]),
        (("sgd", "adagrad"), ["sgd"], ["adam", 1]),
    ],
)
def test_each_form_accepts_and_refuses(spec, good, bad):
    check, _ = compile_constraint(spec)
    assert all(check(v) for v in good) and not any(check(v) for v in bad)


def test_a_malformed_or_stray_declaration_is_refused_at_registration():
    for constraints, words in (({"lr": "tiny"}, "not understood"), ({"nope": "positive"}, "not one of its params")):
        cls = type("Bad", (mfbench.Strategy,), {"name": "bad", "params": {"lr": 0.1}, "constraints": constraints})
        pm = mfbench.make_plugin_manager(entry_points=False, env=False)

        class Plugin:
            part = cls

            @mfbench.hookimpl
            def mfbench_register_strategies(self, register):
                register(self.part)

        pm.register(Plugin())
        with pytest.raises(PluginError, match=words):
            collect(pm)


def test_every_built_in_part_accepts_its_own_defaults(fresh_pm):
    registry = collect(fresh_pm)
    for table in (registry.datasets, registry.models, registry.strategies):
        for entry in table.values():
            assert violations(entry.cls, dict(entry.cls.params)) == [], entry.name


def test_planning_lists_every_violation_before_any_data(fresh_pm):
    with pytest.raises(SelectionError) as raised:
        plan(
            collect(fresh_pm),
            ["sprand[density=2]"],
            ["dot[n_factors=0]"],
            ["vectorized[batch_size=0]", "hogwild[lr=-1,workers=0]", "minibatch[optimizer=adam]"],
            ["cpu"],
            RunConfig(),
        )
    message = str(raised.value)
    for line in (
        "dataset 'sprand': density=2.0, must be in (0, 1]",
        "model 'dot': n_factors=0, must be at least 1",
        "strategy 'vectorized': batch_size=0, must be at least 1",
        "strategy 'hogwild': workers=0",
        "strategy 'hogwild': lr=-1.0, must be positive",
        "optimizer='adam', must be one of",
    ):
        assert line in message


def test_out_of_range_values_and_nan_timeout_are_usage_errors(capsys):
    assert main(["run", "-s", "reference[lr=-1]", "--device", "cpu"]) == 2
    assert "lr=-1.0, must be positive" in capsys.readouterr().err
    assert main(["run", "-s", "reference", "--device", "cpu", "--timeout", "nan"]) == 2
    assert "--case-timeout must be a positive number" in capsys.readouterr().err  # --timeout: its old name
