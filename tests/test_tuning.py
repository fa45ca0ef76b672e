"""Tuning: search spaces, the validation split, studies that resume and prune, and tuned races."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import mfbench
from mfbench.cli import main
from mfbench.data.ratings import Ratings, split_positions
from mfbench.errors import MfbenchError, PluginError
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan

optuna = pytest.importorskip("optuna", reason="the tune extra (optuna) is not installed")

from mfbench.tuning.studies import load_tuning  # noqa: E402
from mfbench.tuning.tuner import Tuner  # noqa: E402

PLANTED = "lowrank[n_users=120,n_items=80,nnz=3000,rank=3]"
FAST = "vectorized[batch_size=256]"
#: The selection both race tests train: the fast strategy and numba on PLANTED, 3 epochs on cpu.
RACE = ["-d", PLANTED, "-m", "biased[n_factors=3]", "-s", FAST, "-s", "numba", "--device", "cpu", "--epochs", "3"]


def register(pm, *parts, name="throwaway"):
    module = types.ModuleType(name)

    @mfbench.hookimpl
    def mfbench_register_strategies(register):
        for part in parts:
            if issubclass(part, mfbench.Strategy):
                register(part)

    @mfbench.hookimpl
    def mfbench_register_datasets(register):
        for part in parts:
            if issubclass(part, mfbench.Dataset):
                register(part)

    module.mfbench_register_strategies = mfbench_register_strategies
    module.mfbench_register_datasets = mfbench_register_datasets
    pm.register(module, name=name)
    return pm


def strategy_with(space, params=None):
    base = collect(mfbench.make_plugin_manager(entry_points=False, env=False)).strategies["vectorized"].cls
    return type("Spaced", (base,), {"name": "spaced", "params": params or dict(base.params), "search_space": space})


@pytest.mark.parametrize(
    "space, message",
    [
        ({"momentum": mfbench.LogUniform(0.1, 1.0)}, "'momentum', which is not one of its params"),
        ({"lr": mfbench.LogUniform(0.1, 0.1)}, "0 < low < high"),
        ({"lr": mfbench.LogUniform(-1.0, 0.1)}, "0 < low < high"),
        ({"lr": mfbench.Uniform(0.5, 0.1)}, "low < high"),
        ({"batch_size": mfbench.LogUniform(1.0, 10.0)}, "needs a float parameter"),
        ({"lr": mfbench.IntRange(1, 10)}, "needs an int parameter"),
        ({"batch_size": mfbench.IntRange(0, 10, log=True)}, "1 <= low < high"),
        ({"lr": mfbench.Categorical((0.1,))}, "at least two choices"),
        ({"lr": mfbench.Categorical((0.1, "x"))}, "must all have the parameter's type"),
        ({"lr": (0.001, 0.1)}, "use mfbench.LogUniform"),
        ([("lr", 1)], "must be a dict"),
    ],
)
def test_a_bad_search_space_is_refused_at_registration_naming_the_plugin(fresh_pm, space, message):
    register(fresh_pm, strategy_with(space), name="my-plugin")
    with pytest.raises(PluginError) as error:
        collect(fresh_pm)
    assert "plugin 'my-plugin'" in str(error.value) and "'spaced'" in str(error.value)
    assert message in str(error.value)


def test_every_built_in_rating_strategy_declares_a_search_space(fresh_pm):
    for name, entry in collect(fresh_pm).strategies.items():
        if not entry.cls.params:  # popularity: a count, with no parameter at all
            continue
        assert entry.cls.search_space, f"{name} declares nothing to tune"
        for key, dim in entry.cls.search_space.items():
            default = entry.cls.params[key]
            assert dim.check(default) is None
            inside = default in dim.choices if isinstance(dim, mfbench.Categorical) else 0.0 <= dim.unit(default) <= 1.0
            assert inside, f"{name}: default {key}={default} outside {dim.describe()}"


def test_three_way_split_is_disjoint_seeded_and_keeps_the_two_way_test_set():
    ratings = Ratings.from_arrays(torch.arange(1000) % 50, torch.arange(1000) // 50, torch.rand(1000), 50, 20)
    split = ratings.split_three(0.15, 0.1, seed=3)
    assert (split.train.nnz, split.valid.nnz, split.test.nnz) == (750, 150, 100)
    cells = [set(zip(p.users.tolist(), p.items.tolist(), strict=True)) for p in (split.train, split.valid, split.test)]
    assert not (cells[0] & cells[1] or cells[0] & cells[2] or cells[1] & cells[2])
    _, test = ratings.split(0.1, seed=3)
    assert torch.equal(test.values, split.test.values)  # old results' test sets stay the test sets
    again = ratings.split_three(0.15, 0.1, seed=3)
    assert again.fingerprints() == split.fingerprints()
    assert ratings.split_three(0.15, 0.1, seed=4).fingerprint() != split.fingerprint()


def test_an_empty_validation_split_is_a_data_error_naming_the_split(fresh_pm, run_cases):
    records = run_cases(fresh_pm, ["vectorized"], datasets=["sprand[n_users=5,n_items=5,density=0.2]"], valid_fraction=0.01)
    assert records[0]["status"] == "error"
    assert "validation split is empty" in records[0]["reason"] and "validation fraction 0.01" in records[0]["reason"]


def tune(pm, storage, strategies=(FAST,), datasets=(PLANTED,), trials=6, epochs=3, isolated=False, **kw):
    """Tune the cases; ``isolated`` runs each trial in a worker process (the CLI's default), else here."""
    config = RunConfig(epochs=epochs, warmup=0, repeats=1, seed=0, target_rmse=kw.pop("target", None))
    cases = plan(collect(pm), list(datasets), ["biased[n_factors=3]"], list(strategies), ["cpu"], config)
    kw.setdefault("fresh", 0)  # the fresh-seed evaluation has a test of its own
    tuner = Tuner(str(storage), config, trials=trials, say=lambda _: None, pm=pm if isolated else None, **kw)
    return [tuner.tune(case) for case in cases], cases


class Poisoned(mfbench.Dataset):
    """The planted data with every rating the run will hold out as test set to NaN."""

    name = "poisoned"
    params = {}

    def load(self, seed):
        pm = mfbench.make_plugin_manager(entry_points=False, env=False)
        lowrank = collect(pm).datasets["lowrank"].cls
        ratings = lowrank(n_users=120, n_items=80, nnz=3000, rank=3).load(seed)
        test, _, _ = split_positions(ratings.nnz, 0.1, 0.1, seed)
        values = ratings.values.clone()
        values[test] = math.nan
        return Ratings(ratings.users, ratings.items, values, ratings.n_users, ratings.n_items)


def test_a_study_never_sees_the_test_ratings(fresh_pm, tmp_path):
    register(fresh_pm, Poisoned)
    (intact,), _ = tune(fresh_pm, tmp_path / "a.db", pruner="none")
    (poisoned,), _ = tune(fresh_pm, tmp_path / "b.db", datasets=["poisoned"], pruner="none")
    assert poisoned["chosen"] == intact["chosen"]
    assert [t["valid_curve"] for t in poisoned["trials"]] == [t["valid_curve"] for t in intact["trials"]]
    assert all(t["state"] == "complete" for t in poisoned["trials"])


def test_the_first_trial_is_the_defaults_and_the_rest_are_quasi_random(fresh_pm, tmp_path):
    (summary,), _ = tune(fresh_pm, tmp_path / "s.db", strategies=["vectorized"], trials=4)
    first = summary["trials"][0]
    assert first["defaults"] and first["params"] == {
        "lr": 0.01,
        "reg": 0.05,
        "batch_size": 1024,
        "lr_decay": 0.0,
        "model.init_std": 0.1,
    }
    assert summary["n_trials"] == 4 and len({json.dumps(t["params"], sort_keys=True) for t in summary["trials"]}) == 4
    assert summary["sampler"] == "qmc"


def test_the_choice_is_trained_again_on_fresh_seeds_and_the_gap_is_kept(fresh_pm, tmp_path, monkeypatch):
    (summary,), cases = tune(fresh_pm, tmp_path / "s.db", trials=3, fresh=2)
    fresh = summary["fresh"]
    assert fresh["seeds"] == [1000, 1001] and fresh["params"] == summary["chosen"]
    assert all(0 < value < 5 for value in fresh["values"]) and fresh["statistic"] == "mean"
    assert fresh["gap"] == pytest.approx(fresh["estimate"] - summary["best"]["value"])
    assert fresh["low"] <= fresh["estimate"] <= fresh["high"]
    assert load_tuning(str(tmp_path / "s.db"), cases[0])["fresh"] == fresh  # kept in the study
    runs = []
    monkeypatch.setattr(Tuner, "run_trial", lambda self, case, on_epoch: runs.append(case))
    (again,), _ = tune(fresh_pm, tmp_path / "s.db", trials=3, fresh=2)
    assert again["fresh"] == fresh and runs == []  # a resumed tune does not train the same choice again
    from mfbench.report.tuning import render_tuning

    table = render_tuning([summary])
    assert "on 2 fresh seeds" in table and "on the search" in table


def test_a_parameter_the_selection_sets_is_held_fixed(fresh_pm, tmp_path):
    (summary,), _ = tune(fresh_pm, tmp_path / "s.db", trials=2)
    assert summary["fixed_params"] == {"batch_size": 256, "row_step": "expected"}  # not in the search space
    # the model's space is searched with the strategy's, less n_factors, which the selection set (biased[n_factors=3])
    assert summary["fixed_model_params"] == {"n_factors": 3}
    assert set(summary["search_space"]) == {"lr", "reg", "lr_decay", "model.init_std"}
    assert all(set(t["params"]) == {"lr", "reg", "lr_decay", "model.init_std"} for t in summary["trials"])


def test_an_interrupted_study_resumes_with_the_trials_it_had(fresh_pm, tmp_path, monkeypatch):
    storage = tmp_path / "s.db"
    calls = {"n": 0}
    from mfbench.run.runner import Runner

    real = Runner.run_case

    def interrupt_on_third(self, case):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, case)

    monkeypatch.setattr(Runner, "run_case", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        tune(fresh_pm, storage, trials=5, pruner="none")
    monkeypatch.setattr(Runner, "run_case", real)
    (summary,), cases = tune(fresh_pm, storage, trials=5, pruner="none")
    trials = summary["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4, 5]
    assert trials[2].get("interrupted") and trials[2]["state"] == "fail"
    assert sum(t["state"] == "complete" for t in trials) == 5  # the interrupted one is not counted
    before = load_tuning(str(storage), cases[0])
    assert before["trials"][:2] == trials[:2]


def test_pruning_stops_trials_that_are_clearly_behind(fresh_pm, tmp_path):
    (summary,), _ = tune(fresh_pm, tmp_path / "s.db", trials=14, epochs=6, pruner="median")
    pruned = [t for t in summary["trials"] if t["state"] == "pruned"]
    assert pruned, "no trial was pruned"
    assert all(len(t["valid_curve"]) < 6 for t in pruned)
    (unpruned,), _ = tune(fresh_pm, tmp_path / "n.db", trials=14, epochs=6, pruner="none")
    assert not any(t["state"] == "pruned" for t in unpruned["trials"])


def test_pruning_stops_a_trial_running_in_its_worker_process(fresh_pm, tmp_path):
    (summary,), _ = tune(fresh_pm, tmp_path / "s.db", trials=14, epochs=6, pruner="median", isolated=True)
    pruned = [t for t in summary["trials"] if t["state"] == "pruned"]
    assert pruned, "no trial was pruned"
    assert all(len(t["valid_curve"]) < 6 for t in pruned)


def test_a_trial_that_crashes_its_worker_fails_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # tests/fault_plugins.py, imported by the workers too
    pm = mfbench.make_plugin_manager(["fault_plugins"], entry_points=False, env=False)
    (summary,), _ = tune(pm, tmp_path / "s.db", strategies=["fault-segfault-fast"], trials=6, pruner="none", isolated=True)
    crashed = [t for t in summary["trials"] if t["params"]["lr"] > 0.1]
    assert crashed and len(crashed) < 6, summary["trials"]
    for trial in crashed:
        assert trial["state"] == "fail" and "worker died" in trial["reason"] and "SIGSEGV" in trial["reason"], trial
    assert all(t["state"] == "complete" for t in summary["trials"] if t["params"]["lr"] <= 0.1)
    assert summary["chosen"]["lr"] <= 0.1


def test_a_tuner_refuses_an_executor_it_cannot_run_trials_on(tmp_path):
    with pytest.raises(mfbench.MfbenchError, match="not 'dask'"):
        Tuner(str(tmp_path / "s.db"), RunConfig(), trials=1, executor="dask")


class Diverging(mfbench.Strategy):
    """Blows up when lr is large: the study must record failed trials and go on."""

    name = "diverging"
    params = {"lr": 0.01}
    search_space = {"lr": mfbench.LogUniform(1e-3, 10.0)}

    def setup(self, model, train, device, seed):
        self.model = model

    def run_epoch(self, epoch):
        if self.params["lr"] > 0.1:
            return math.nan
        return 1.0


def test_failed_trials_are_failures_not_crashes(fresh_pm, tmp_path):
    register(fresh_pm, Diverging)
    (summary,), _ = tune(fresh_pm, tmp_path / "s.db", strategies=["diverging"], trials=6, pruner="none")
    states = {t["state"] for t in summary["trials"]}
    assert "fail" in states and "complete" in states
    assert all(t["status"] == "diverged" for t in summary["trials"] if t["state"] == "fail")
    assert summary["chosen"]["lr"] <= 0.1


def test_tune_then_race_with_the_tuned_parameters(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    storage = tmp_path / "studies.db"
    common = [*RACE, "--warmup", "0"]
    assert main(["tune", *common, "--trials", "3", "--storage", str(storage)]) == 0
    tuned_out = capsys.readouterr().out
    assert "3 trials" in tuned_out and "chosen parameters" in tuned_out
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                *common,
                "--repeats",
                "1",
                "--tuned",
                str(storage),
                "--target-rmse",
                "auto",
                "-o",
                str(out),
                "-q",
                "--no-calibration",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    document = json.loads(out.read_text())
    for case in document["cases"]:
        tuning = case["tuning"]
        assert tuning["status"] == "ok" and tuning["n_trials"] == 3
        chosen = {k: v for k, v in tuning["chosen"].items() if not k.startswith("model.")}
        assert case["strategy"]["params"] | chosen == case["strategy"]["params"]
        model = {k.removeprefix("model."): v for k, v in tuning["chosen"].items() if k.startswith("model.")}
        assert model and case["model"]["params"] | model == case["model"]["params"]  # the model tuned with it
        assert case["counted_epochs"] == tuning["chosen_epochs"]  # the race trains the epochs the study chose
        assert len(tuning["trials"]) == 3 and tuning["trials"][0]["valid_curve"]
        assert case["summary"]["target_rule"] == "auto"
    (target,) = document["targets"]
    assert target["from_tuned"] and target["target_rmse"] == pytest.approx(target["median_best_valid_rmse"] * 1.02)
    assert "tuning" in printed and "3 trials" in printed and "target " in printed


def test_auto_targets_are_deterministic_for_a_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    targets = []
    for run in range(2):
        out = tmp_path / f"r{run}.json"
        assert (
            main(
                [
                    "run",
                    *RACE,
                    "--repeats",
                    "1",
                    "--target-rmse",
                    "auto",
                    "-o",
                    str(out),
                    "-q",
                    "--no-calibration",
                ]
            )
            == 0
        )
        targets.append(json.loads(out.read_text())["targets"])
    assert targets[0] == targets[1]
    assert not targets[0][0]["from_tuned"]


@pytest.mark.timing
def test_two_processes_share_one_sqlite_study(tmp_path):
    """Two tuners on one study both train trials and share its numbering. Their first trials meet
    (tests/rendezvous_plugins.py), so both are at work however slowly a loaded machine starts them."""
    storage, meeting = tmp_path / "shared.db", tmp_path / "meeting"
    meeting.mkdir()
    tests = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, MFBENCH_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=path, MFBENCH_RENDEZVOUS=str(meeting))
    data = "lowrank[n_users=300,n_items=200,nnz=20000,rank=3]"
    strategy = "rendezvous[batch_size=256]"
    command = [sys.executable, "-m", "mfbench", "tune", "-p", "rendezvous_plugins", "-d", data, "-m", "biased[n_factors=3]"]
    command += ["-s", strategy, "--device", "cpu", "--epochs", "4", "--warmup", "0", "--trials", "10"]
    command += ["--storage", str(storage), "--pruner", "none", "--fresh-seeds", "0"]
    workers = [
        subprocess.Popen(
            command, env={**env, "MFBENCH_RENDEZVOUS_AS": name}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name in ("a", "b")
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n---\n".join(outputs)  # a str: shown whole
    study = optuna.load_study(study_name=f"{data} / biased[n_factors=3] / {strategy} / cpu", storage=f"sqlite:///{storage}")
    trials = study.get_trials()
    # Each process stops once the study holds the budget; they may both ask for the last one.
    assert 10 <= len(trials) <= 11
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)  # large steps diverge: failed trials
    assert all(t.state in finished for t in trials) and sum(t.state == finished[0] for t in trials) >= 5, outputs
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "one process did every trial"


def test_tune_without_optuna_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    from mfbench.tuning.studies import optuna_module

    with pytest.raises(MfbenchError, match=r"pip install 'mfbench\[tune\]'"):
        optuna_module()


def test_a_trial_another_tuner_finished_first_is_dropped_not_a_crash(fresh_pm, tmp_path, monkeypatch):
    """Two tuners on one SQLite study can both take its one waiting trial (the enqueued defaults:
    SQLite has no row lock for Optuna's pop). Here the other tuner records that trial while this one
    trains it: this tuner drops its copy and goes on to the budget (before: UpdateFinishedTrialError,
    a traceback, exit 1)."""
    storage = tmp_path / "s.db"
    finished_by_other = []
    real_run_trial = Tuner.run_trial

    def run_trial(self, case, on_epoch):
        record = real_run_trial(self, case, on_epoch)
        if not finished_by_other:  # the first trial: the twin tuner, on its own handle, tells it first
            twin = optuna.load_study(study_name=_study_name(storage), storage=f"sqlite:///{storage}")
            running = twin.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            twin.tell(running[0].number, 1.0)
            finished_by_other.append(running[0].number)
        return record

    monkeypatch.setattr(Tuner, "run_trial", run_trial)
    summaries, _ = tune(fresh_pm, storage, trials=3)
    assert finished_by_other == [0]
    study = optuna.load_study(study_name=_study_name(storage), storage=f"sqlite:///{storage}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 3 and trials[0].value == 1.0  # the twin's record of trial 0 stands
    assert summaries[0]["status"] == "ok"


def _study_name(storage) -> str:
    return optuna.get_all_study_summaries(storage=f"sqlite:///{storage}")[0].study_name
