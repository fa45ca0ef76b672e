"""Suites: built-in TOML files and the rule that the command line overrides them."""

from __future__ import annotations

import pytest

from mfbench.errors import MfbenchError
from mfbench.plugin.registry import collect
from mfbench.run.execute import Overrides, config_for, plan_suite
from mfbench.run.suite import builtin_suites, load_suite


def test_builtin_suites_exist_and_load():
    suites = builtin_suites()
    assert {"quick", "full", "scaling"} <= set(suites)
    for name in suites:
        suite = load_suite(name)
        assert suite.description and suite.groups


def test_every_builtin_suite_plans_against_the_builtin_registry(fresh_pm):
    registry = collect(fresh_pm)
    for name in builtin_suites():
        suite = load_suite(name)
        cases, _ = plan_suite(registry, suite, Overrides(), config_for(suite, Overrides()))
        assert cases, name


def write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return str(path)


def test_groups_and_overrides(tmp_path, fresh_pm):
    registry = collect(fresh_pm)
    suite = load_suite(
        write(
            tmp_path,
            """
description = "two groups"
epochs = 4
datasets = ["sprand"]
models = ["dot"]
strategies = ["reference"]
[[group]]
[[group]]
datasets = ["sprand[density=0.02]"]
models = ["biased"]
devices = ["cpu"]
""",
        )
    )
    config = config_for(suite, Overrides())
    assert config.epochs == 4
    cases, groups = plan_suite(registry, suite, Overrides(), config)
    assert [c.id for c in cases] == [
        "sprand / dot / reference / cpu",
        "sprand / dot / reference / cuda",
        "sprand[density=0.02] / biased / reference / cpu",
    ]
    # A selection on the command line replaces the groups with one group; settings override too.
    overrides = Overrides(models=["biased"], devices=["cpu"], settings={"epochs": 1, "repeats": None})
    cases, _ = plan_suite(registry, suite, overrides, config_for(suite, overrides))
    assert [c.id for c in cases] == ["sprand / biased / reference / cpu"]
    assert config_for(suite, overrides).epochs == 1 and config_for(suite, overrides).repeats == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs = 'three'\ndatasets=['a']\nmodels=['b']\nstrategies=['c']", "'epochs' must be an integer"),
        ("colour = 1\ndatasets=['a']\nmodels=['b']\nstrategies=['c']", "unknown key(s) colour"),
        ("datasets = ['a']", "names no models, strategies"),
        ("datasets = [", "not valid TOML"),
        ("datasets = []\nmodels=['b']\nstrategies=['c']", "non-empty list"),
    ],
)
def test_bad_suites_name_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(MfbenchError) as info:
        load_suite(path)
    assert message in str(info.value) and "mine.toml" in str(info.value)


def test_unknown_suite_name_lists_the_known_ones():
    with pytest.raises(MfbenchError, match="unknown suite 'quik'. Did you mean 'quick'"):
        load_suite("quik")
