"""Run settings: one declaration each, read by the suite loader, the planner, the command line and --resume."""

from __future__ import annotations

import dataclasses

import pytest

from mfbench.cli import main
from mfbench.cli.entry import build_parser
from mfbench.errors import MfbenchError, SelectionError
from mfbench.run.resume import config_differences
from mfbench.run.settings import RunConfig, declarations, defaults, recorded, value_type
from mfbench.run.suite import group_settings, load_suite, suite_settings


def subcommand(command: str):
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[command]


def test_every_setting_is_a_declared_field_with_help_and_a_default():
    declared = declarations()
    assert set(declared) == {f.name for f in dataclasses.fields(RunConfig)}
    for name, setting in declared.items():
        assert setting.help and setting.commands, name
    assert RunConfig() == RunConfig(**defaults())


@pytest.mark.parametrize("command", ["run", "tune"])
def test_the_command_line_options_are_the_declarations(command):
    parser = subcommand(command)
    options = {action.dest: action for action in parser._actions}
    text = " ".join(parser.format_help().split())
    for name, setting in declarations().items():
        assert (name in options) == (command in setting.commands), (command, name)
        if name in options:
            switch = [f"--no-{name.replace('_', '-')}"] if value_type(name) is bool else []
            assert options[name].option_strings == [*setting.flags(name), *switch]
            assert setting.help.split(";")[0][:30] in text, (command, name)


def test_suites_may_set_what_the_declarations_allow(tmp_path):
    assert "epochs" in suite_settings() and group_settings() == ["seeds", "target_rmse"]
    path = tmp_path / "s.toml"
    lists = 'datasets = ["sprand"]\nmodels = ["dot"]\nstrategies = ["reference"]\n'
    path.write_text("epochs = 4\ntune_trials = 2\ntimeout = 9\n" + lists)
    suite = load_suite(str(path))
    assert suite.settings == {"epochs": 4, "tune_trials": 2, "case_timeout": 9.0}  # timeout: the old name of case_timeout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("epochs = 0", "'epochs' must be at least 1, got 0"),
        ("seed = -1", "'seed' must be at least 0, got -1"),
        ("test_fraction = 1.5", "'test_fraction' must be between 0 and 1"),
        ("epochs = 2.5", "'epochs' must be an integer"),
        ('target_rmse = "soon"', "'target_rmse' must be a positive number or 'auto'"),
        ("timeout = 1\ncase_timeout = 2", "sets 'case_timeout' a second time"),
        ("nosuch = 1", "unknown key(s) nosuch"),
    ],
)
def test_a_suite_value_out_of_range_names_the_file(tmp_path, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(line + '\ndatasets = ["sprand"]\nmodels = ["dot"]\nstrategies = ["reference"]\n')
    with pytest.raises(MfbenchError) as info:
        load_suite(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_a_negative_seed_is_a_usage_error_before_any_case_runs(capsys):
    assert main(["run", "-s", "reference", "--device", "cpu", "--seed", "-1", "--no-calibration"]) == 2
    assert "--seed must be at least 0, got -1" in capsys.readouterr().err


def test_validate_names_the_option():
    with pytest.raises(SelectionError, match="--warmup must be at least 0"):
        RunConfig(warmup=-1).validate()
    with pytest.raises(SelectionError, match="--test-fraction and --valid-fraction must sum below 1"):
        RunConfig(test_fraction=0.5, valid_fraction=0.5).validate()


def test_an_older_results_file_reads_under_todays_names():
    old = {"epochs": 3, "repeats": 3, "warmup": 1, "seed": 0, "test_fraction": 0.1, "factors": None, "timeout": 5.0}
    values = dict(recorded(old))
    assert values["case_timeout"] == 5.0 and values["valid_fraction"] == 0.1 and values["tune_trials"] is None
    assert config_differences({"config": old}, RunConfig(case_timeout=5.0)) == []
    assert config_differences({"config": old}, RunConfig()) == ["case_timeout 5.0 there, None here"]


def test_a_run_says_which_settings_it_used_and_where_each_came_from(tmp_path, capsys):
    """Before: -d/-m/-s without --suite said only "suite 'quick'", and took its settings silently."""
    from mfbench.cli import main
    from mfbench.results.files import load_results

    out = tmp_path / "r.json"
    argv = ["run", "-d", "sprand[n_users=40,n_items=30,density=0.2]", "-s", "vectorized", "--device", "cpu"]
    assert main([*argv, "--epochs", "2", "--no-calibration", "-o", str(out)]) == 0
    said = capsys.readouterr()
    text = said.out + said.err
    assert "your selection with the settings of suite 'quick'" in text
    assert "settings: epochs=2 (command line); repeats=1, warmup=1 (suite 'quick'); the rest default" in text
    sources = load_results(out)["config_sources"]
    assert sources["epochs"] == "command line" and sources["repeats"] == "suite 'quick'" and sources["seed"] == "default"
