"""Tuning's budgets: the model searched with the strategy, early stopping and the epochs it chose,
successive halving and Hyperband, a wall-clock budget per study, and what a study cost."""

from __future__ import annotations

import argparse
import json
import math

import pytest

import mfbench
from mfbench.cli import main
from mfbench.errors import SelectionError
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan

optuna = pytest.importorskip("optuna", reason="the tune extra (optuna) is not installed")

from mfbench.cli.tune import check_params, parse_duration, parse_patience  # noqa: E402
from mfbench.tuning.studies import with_params  # noqa: E402
from mfbench.tuning.tuner import PRUNERS, Tuner, best_epoch, tuned_space  # noqa: E402

PLANTED = "lowrank[n_users=120,n_items=80,nnz=3000,rank=3]"


def cases(pm, models=("biased",), strategies=("vectorized[batch_size=256]",), epochs=4, factors=None):
    config = RunConfig(epochs=epochs, warmup=0, repeats=1, seed=0, factors=factors)
    return plan(collect(pm), [PLANTED], list(models), list(strategies), ["cpu"], config), config


def test_the_model_is_searched_with_the_strategy_unless_the_selection_fixes_it(fresh_pm):
    (case,), _ = cases(fresh_pm)
    assert set(tuned_space(case)) == {"lr", "reg", "lr_decay", "model.n_factors", "model.init_std"}
    (fixed,), _ = cases(fresh_pm, models=("biased[n_factors=8]",))
    assert set(tuned_space(fixed)) == {"lr", "reg", "lr_decay", "model.init_std"}
    (by_flag,), _ = cases(fresh_pm, factors=8)  # --factors sets every model's width
    assert "model.n_factors" not in tuned_space(by_flag)
    assert set(tuned_space(case, only={"lr", "model.n_factors"})) == {"lr", "model.n_factors"}
    tuned = with_params(case, {"lr": 0.02, "model.n_factors": 48})
    assert tuned.strategy.params["lr"] == 0.02 and tuned.model.params["n_factors"] == 48
    assert tuned.model.params["init_std"] == case.model.params["init_std"]
    assert "biased[n_factors=48]" in tuned.id


def test_params_name_only_what_some_selected_space_searches(fresh_pm):
    (case,), _ = cases(fresh_pm, models=("biased[n_factors=8]",))
    check_params([case], {"lr", "model.init_std"})
    with pytest.raises(SelectionError, match="model.n_factors: the selection fixes it"):
        check_params([case], {"model.n_factors"})
    with pytest.raises(SelectionError, match=r"model.depth: no selected model \(biased\) declares it.*searchable: "):
        check_params([case], {"model.depth"})
    with pytest.raises(SelectionError, match="momentum: not in any selected search space"):
        check_params([case], {"momentum"})


def test_durations_and_patience_parse_or_refuse():
    assert parse_duration("90s") == 90 and parse_duration("5m") == 300 and parse_duration("1h") == 3600
    assert parse_duration("2.5") == 2.5 and parse_duration("3min") == 180
    for bad in ("0", "-5m", "soon", "inf", "nanm"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)
    assert parse_patience("none") is None and parse_patience("4") == 4
    with pytest.raises(argparse.ArgumentTypeError):
        parse_patience("0")


def test_bad_budgets_are_one_line_errors(tmp_path, capsys):
    for options in (["--time-budget", "0"], ["--patience", "-1"], ["--params", "nosuch"]):
        try:
            code = main(["tune", "-d", PLANTED, "-m", "biased", "-s", "vectorized", "--device", "cpu", "--storage",
                         str(tmp_path / "s.db"), *options])  # fmt: skip
        except SystemExit as exit:  # argparse's usage error
            code = exit.code
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, (options, err)
    assert not (tmp_path / "s.db").exists()  # refused before a study was made


def test_best_epoch_is_the_first_lowest_validation_rmse():
    epochs = [{"valid_rmse": v} for v in (1.0, 0.8, 0.7, 0.7, 0.9)]
    assert best_epoch(epochs) == 2
    assert best_epoch([{"valid_rmse": "nan"}]) == 0


def test_a_trial_stops_after_its_patience_and_the_race_trains_its_best_epochs(fresh_pm, tmp_path):
    # a step large enough to reach its best validation RMSE before the twelfth epoch and then lose it
    (case,), config = cases(fresh_pm, strategies=("vectorized[batch_size=256,lr=0.1]",), epochs=12)
    tuner = Tuner(str(tmp_path / "s.db"), config, trials=1, say=lambda _: None, fresh=0, patience=2, pruner="none",
                  only={"reg"})  # fmt: skip
    summary = tuner.tune(case)
    (trial,) = summary["trials"]
    curve = trial["valid_curve"]
    assert len(curve) < 12 and "stopped early" in trial["reason"]
    assert trial["best_epoch"] == min(range(len(curve)), key=curve.__getitem__) + 1
    assert len(curve) == trial["best_epoch"] + 2  # two epochs without a better score, then it stopped
    assert summary["chosen_epochs"] == trial["best_epoch"] and summary["epochs_trained"] == len(curve)


@pytest.mark.parametrize("pruner", [p for p in PRUNERS if p != "median"])
def test_every_pruner_runs_a_study(fresh_pm, tmp_path, pruner):
    (case,), config = cases(fresh_pm, epochs=3)
    tuner = Tuner(str(tmp_path / "s.db"), config, trials=4, say=lambda _: None, fresh=0, pruner=pruner)
    summary = tuner.tune(case)
    assert summary["status"] == "ok" and summary["pruner"] == pruner
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 4


def test_a_time_budget_ends_a_study_and_a_resumed_one_counts_what_it_spent(fresh_pm, tmp_path):
    (case,), config = cases(fresh_pm, epochs=2)
    storage = tmp_path / "s.db"
    # any finished trial takes longer than a microsecond: the budget is spent after the first one
    first = Tuner(str(storage), config, trials=10**9, say=lambda _: None, fresh=0, time_budget=1e-6).tune(case)
    assert first["n_trials"] == 1 and first["cost_s"] > 1e-6
    again = Tuner(str(storage), config, trials=10**9, say=lambda _: None, fresh=0, time_budget=1e-6).tune(case)
    assert again["n_trials"] == 1  # resumed: the budget was already spent, no trial started
    more = Tuner(str(storage), config, trials=3, say=lambda _: None, fresh=0, time_budget=3600).tune(case)
    assert more["n_trials"] == 3  # with --trials too, whichever ends first


def test_a_study_says_what_it_cost(fresh_pm, tmp_path, capsys):
    code = main(["tune", "-d", PLANTED, "-m", "biased[n_factors=4]", "-s", "vectorized", "--device", "cpu",
                 "--epochs", "2", "--warmup", "0", "--trials", "2", "--fresh-seeds", "0",
                 "--storage", str(tmp_path / "s.db")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "2 trials" in out and "epochs, " in out and "s CPU)" in out and " epochs" in out
    from mfbench.tuning.studies import load_tuning

    pm = mfbench.make_plugin_manager(entry_points=False, env=False)
    (case,), _ = cases(pm, models=("biased[n_factors=4]",), strategies=("vectorized",))
    summary = load_tuning(str(tmp_path / "s.db"), case)
    assert summary["cpu_s"] > 0 and summary["epochs_trained"] >= 2
    assert all(math.isfinite(t["cpu_s"]) and t["cpu_s"] > 0 for t in summary["trials"])
    json.dumps(summary)  # stored in results files as it is


def test_the_gaussian_process_sampler_runs_without_pruning_and_refuses_it(fresh_pm, tmp_path):
    (case,), config = cases(fresh_pm, epochs=2)
    with pytest.raises(mfbench.MfbenchError, match="--sampler gp learns from completed trials only"):
        Tuner(str(tmp_path / "s.db"), config, trials=5, say=lambda _: None, sampler="gp", pruner="median")
    summary = Tuner(str(tmp_path / "s.db"), config, trials=5, say=lambda _: None, fresh=0, sampler="gp",
                    pruner="none").tune(case)  # fmt: skip
    assert summary["status"] == "ok" and summary["n_trials"] == 5 and summary["counts"]["pruned"] == 0


def test_the_race_trains_the_median_best_epoch_of_the_search_and_its_fresh_seeds():
    from mfbench.tuning.studies import chosen_epochs

    best = {"best_epoch": 9, "params": {"lr": 0.0454123}}
    assert chosen_epochs(best, None) == 9
    fresh = {"params": {"lr": 0.0454}, "best_epochs": [14, 16, 12]}
    assert chosen_epochs(best, fresh) == 13  # median of 9, 14, 16, 12
    assert chosen_epochs(best, {**fresh, "params": {"lr": 0.01}}) == 9  # fresh runs of another choice
    assert chosen_epochs({"params": {}}, fresh) is None  # a study from before epochs were recorded


def test_a_model_whose_search_space_is_reversed_is_refused_when_it_registers():
    import types

    from mfbench.errors import PluginError

    biased = collect(mfbench.make_plugin_manager(entry_points=False, env=False)).models["biased"].cls
    bad = type("Narrow", (biased,), {"name": "narrow", "search_space": {"n_factors": mfbench.IntRange(64, 8)}})
    module = types.ModuleType("bad_model")

    @mfbench.hookimpl
    def mfbench_register_models(register):
        register(bad)

    module.mfbench_register_models = mfbench_register_models
    pm = mfbench.make_plugin_manager(entry_points=False, env=False)
    pm.register(module, name="bad-model")
    with pytest.raises(PluginError, match=r"model 'narrow': search_space\['n_factors'\] = int\[64, 8\]: needs low < high"):
        collect(pm)


def test_fresh_seeds_stop_on_patience_too_and_vote_on_the_epochs(fresh_pm, tmp_path):
    (case,), config = cases(fresh_pm, strategies=("vectorized[batch_size=256,lr=0.1]",), epochs=30)
    tuner = Tuner(str(tmp_path / "s.db"), config, trials=1, say=lambda _: None, fresh=2, patience=2, only={"reg"})
    summary = tuner.tune(case)
    fresh = summary["fresh"]
    assert len(fresh["best_epochs"]) == 2 and all(e < 29 for e in fresh["best_epochs"])  # stopped, not 30 epochs
    votes = sorted([summary["trials"][0]["best_epoch"], *fresh["best_epochs"]])
    assert summary["chosen_epochs"] == votes[1]


def test_a_conditional_dimension_is_searched_only_where_its_condition_holds(fresh_pm, tmp_path):
    (case,), config = cases(fresh_pm, strategies=("minibatch[batch_size=256]",), epochs=2)
    space = tuned_space(case, only={"optimizer", "lr", "lr_decay"})
    assert space["lr_decay"].describe() == "[0, 0.5] if optimizer=sgd"
    tuner = Tuner(str(tmp_path / "s.db"), config, trials=10, say=lambda _: None, fresh=0, pruner="none", sampler="tpe",
                  only={"optimizer", "lr", "lr_decay"})  # fmt: skip
    trials = tuner.tune(case)["trials"]
    assert {t["params"]["optimizer"] for t in trials} >= {"sgd", "adagrad"}  # both sides of the condition were drawn
    for trial in trials:
        assert ("lr_decay" in trial["params"]) == (trial["params"]["optimizer"] == "sgd"), trial["params"]
    # a selection that fixes the condition's parameter away from it leaves the dimension out
    (adagrad,), _ = cases(fresh_pm, strategies=("minibatch[optimizer=adagrad]",))
    assert "lr_decay" not in tuned_space(adagrad) and "optimizer" not in tuned_space(adagrad)
    (sgd,), _ = cases(fresh_pm, strategies=("minibatch[optimizer=sgd,lr=0.02]",))
    assert "lr_decay" in tuned_space(sgd)  # the selected value meets the condition (sgd is the default)


@pytest.mark.parametrize(
    ("space", "problem"),
    [
        ({"lr_decay": mfbench.Uniform(0.0, 0.5, when={"nosuch": "x"})}, "names 'nosuch', which is not one of the params"),
        ({"lr_decay": mfbench.Uniform(0.0, 0.5, when={"lr_decay": 0.0})}, "names the parameter itself"),
        (
            {
                "lr_decay": mfbench.Uniform(0.0, 0.5, when={"optimizer": "sgd"}),
                "optimizer": mfbench.Categorical(("sgd", "adagrad")),
            },
            "must be declared before it",
        ),
        (
            {"lr": mfbench.LogUniform(1e-3, 0.1), "lr_decay": mfbench.Uniform(0.0, 0.5, when={"lr": 0.01})},
            "a condition needs a categorical",
        ),
        (
            {
                "optimizer": mfbench.Categorical(("sgd", "adagrad")),
                "lr_decay": mfbench.Uniform(0.0, 0.5, when={"optimizer": "adam"}),
            },
            "allows optimizer='adam', which is not among",
        ),
    ],
)
def test_a_condition_the_tuner_could_not_decide_is_refused_when_the_plugin_registers(space, problem):
    from mfbench.errors import PluginError
    from mfbench.plugin.search_space import validate_search_space

    params = {"optimizer": "sgd", "lr": 0.01, "lr_decay": 0.0}
    with pytest.raises(PluginError, match=problem):
        validate_search_space(space, params, "plugin 'x': strategy 'y'")
    with pytest.raises(PluginError, match="non-empty dict"):
        mfbench.Uniform(0.0, 0.5, when={})
