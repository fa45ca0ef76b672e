"""Strategies that are not plain per-epoch rating trainers: whole fits, implicit objectives,
parallel knobs, facts recorded per repeat, and parts whose library is missing."""

from __future__ import annotations

import socket

import pytest
import torch

import mfbench
from mfbench.cli import main
from mfbench.errors import PluginError, SelectionError
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.registry import collect
from mfbench.report.tables import render_csv, render_table
from mfbench.results.files import ResultsFile
from mfbench.stats.summary import case_throughput, run_key, scaling_efficiencies, set_scaling_efficiencies


class WholeFit(mfbench.Strategy):
    """Trains only whole fits, like a library without an epoch step."""

    name = "whole-fit"
    stepwise = False
    calls: list = []

    def setup(self, model, train, device, seed):
        self.model, self.train = model, train

    def fit(self, epochs):
        WholeFit.calls.append(epochs)
        with torch.no_grad():  # a fake "fit": shrink the factors towards zero
            self.model.user_factors.weight.mul_(0.5**epochs)
        return 0.25

    def info(self):
        return {"library": "fake-lib 1.0", "epochs_asked": WholeFit.calls[-1]}


class Implicit(testing.Idle):
    name = "implicit-thing"
    objective = "implicit"


class Threaded(testing.Idle):
    """Pretends to scale: each extra worker gives 1.5x, so efficiency is 1.5/w."""

    name = "threaded"
    params = {"threads": 1, "lr": 0.1}
    scales_with = "threads"


class BrokenInfo(Implicit):
    name = "broken-info"
    objective = "rating"

    def info(self):
        raise RuntimeError("cannot say")


class Missing(mfbench.Strategy):
    name = "needs-lib"
    unavailable = "fakelib is not installed (pip install 'mfbench[fake]')"


KINDS = (WholeFit, Implicit, Threaded, BrokenInfo, Missing)


@pytest.fixture
def pm(fresh_pm, register_strategies):
    return register_strategies(fresh_pm, *KINDS, name="kinds")


def test_a_whole_fit_is_one_timed_call_covering_every_epoch(pm, run_cases):
    WholeFit.calls.clear()
    [case] = run_cases(pm, ["whole-fit"], epochs=3, warmup=1, repeats=2)
    assert case["status"] == "ok", case["reason"]
    assert WholeFit.calls == [4, 4]  # warm-up + counted epochs, once per repeat
    for repeat in case["repeats"]:
        [entry] = repeat["epochs"]
        assert entry["epochs_covered"] == 4 and "warmup" not in entry
        assert entry["loss"] == 0.25
        assert repeat["info"] == {"library": "fake-lib 1.0", "epochs_asked": 4}
    summary = case["summary"]
    assert summary["whole_fit"] is True
    seconds = sorted(r["epochs"][0]["seconds"] for r in case["repeats"])
    assert summary["median_epoch_s"] == pytest.approx(sum(seconds) / 2 / 4)  # per epoch, not per call
    assert case_throughput(case).median == pytest.approx(summary["median_updates_per_s"])
    assert case["strategy"]["stepwise"] is False
    assert "whole fit of 4 epochs" in render_table([case])


def test_info_that_fails_is_recorded_without_hiding_the_outcome(pm, run_cases):
    [case] = run_cases(pm, ["broken-info"])
    assert case["status"] == "ok"
    assert case["repeats"][0]["info"] == {"error": "RuntimeError: cannot say"}


def test_an_implicit_objective_is_marked_and_has_no_time_to_target(pm, run_cases):
    [case, plain] = run_cases(pm, ["implicit-thing", "broken-info"], target_rmse=1e6)
    assert case["strategy"]["objective"] == "implicit"
    assert case["summary"]["time_to_target_s"] is None
    assert plain["summary"]["time_to_target_s"] is not None  # the same target is reached by a rating strategy
    table = render_table([case, plain])
    row = next(line for line in table.splitlines() if "implicit-thing" in line)
    assert "n/a" in row and "implicit-feedback objective" in row and "(" in row


def test_cases_record_their_host(pm, run_cases):
    [case] = run_cases(pm, ["implicit-thing"])
    assert case["host"] == socket.gethostname()
    other = {**case, "id": case["id"] + "@elsewhere", "host": "elsewhere"}
    assert "host" not in render_table([case]).splitlines()[0]
    assert "elsewhere" in render_table([case, other])
    assert "host" in render_table([case], hosts=True).splitlines()[0]


def fake_threaded(run, threads, rate):
    case = {**run, "strategy": {**run["strategy"], "params": {"threads": threads, "lr": 0.1}}}
    return {**case, "id": f"{run['id']}-{threads}", "summary": {**run["summary"], "median_updates_per_s": rate}}


def test_scaling_efficiency_pairs_cases_that_differ_only_in_the_knob(pm, run_cases, tmp_path):
    [run] = run_cases(pm, ["threaded"])
    assert run["strategy"]["scales_with"] == "threads"
    one, two, four = fake_threaded(run, 1, 100.0), fake_threaded(run, 2, 150.0), fake_threaded(run, 4, 200.0)
    other_lr = {**fake_threaded(run, 2, 150.0), "id": "other-lr"}
    other_lr["strategy"] = {**other_lr["strategy"], "params": {"threads": 2, "lr": 0.5}}
    found = scaling_efficiencies([one, two, four, other_lr])
    assert found == {run_key(one): 1.0, run_key(two): 0.75, run_key(four): 0.5}  # no one-thread partner at lr 0.5
    results = ResultsFile(tmp_path / "r.json", {}, derive=set_scaling_efficiencies)
    for case in (two, one):  # the partner arrives after the case it scales
        results.add(case)
    assert results.document["cases"][0]["summary"]["scaling_efficiency"] == 0.75
    assert "75%" in render_table([one, two])
    assert "scaling" in render_csv([one, two]).splitlines()[0]


def test_scales_with_must_name_a_parameter(fresh_pm, register_strategies):
    class Bad(Threaded):
        name = "bad-knob"
        scales_with = "workers"

    register_strategies(fresh_pm, Bad)
    with pytest.raises(PluginError, match="scales_with 'workers'"):
        collect(fresh_pm)


def test_an_unavailable_part_is_set_aside_and_its_cases_are_skipped_saying_why(pm, run_cases):
    registry = collect(pm)
    assert "needs-lib" not in registry.strategies
    assert registry.unavailable["strategy"]["needs-lib"].plugin == "kinds"
    with pytest.raises(SelectionError, match=r"'needs-lib' \(plugin 'kinds'\) is unavailable: fakelib is not installed"):
        registry.get(mfbench.Strategy, "needs-lib")
    # A suite naming it still runs: the case is a skipped row that says what to install.
    [case, other] = run_cases(pm, ["needs-lib", "implicit-thing"])
    assert case["status"] == "skipped" and case["repeats"] == []
    assert case["reason"] == "strategy 'needs-lib' is unavailable here: fakelib is not installed (pip install 'mfbench[fake]')"
    assert other["status"] == "ok"
    with pytest.raises(SelectionError, match="parameter 'typo'"):  # its parameters are still checked
        run_cases(pm, ["needs-lib[typo=1]"])


def test_list_shows_unavailable_parts(monkeypatch, capsys, register_strategies):
    def with_kinds(plugins):
        return register_strategies(mfbench.make_plugin_manager(entry_points=False, env=False), *KINDS, name="kinds")

    monkeypatch.setattr("mfbench.cli.common.make_plugin_manager", with_kinds)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("unavailable here") :]
    assert "needs-lib" in section and "pip install 'mfbench[fake]'" in section
    assert "whole fits" in out and "implicit objective" in out


def test_the_contract_trains_a_whole_fit_strategy_through_fit():
    WholeFit.calls.clear()
    train, test = testing.planted_split(n_users=30, n_items=20, nnz=200)
    net = testing.build_model("dot", train)
    result = testing.fit(WholeFit, net, train, 5, test=test)
    assert WholeFit.calls == [5]
    assert len(result.train_rmse) == len(result.test_rmse) == 1


class Hanging(Implicit):
    name = "hanging"
    objective = "rating"

    def run_epoch(self, epoch):
        raise mfbench.CaseTimeout("workers 1 did not answer within 2 s")


def test_a_strategy_watchdog_ends_the_case_as_timeout(fresh_pm, run_cases, register_strategies):
    register_strategies(fresh_pm, Hanging)
    [case] = run_cases(fresh_pm, ["hanging"])
    assert case["status"] == "timeout"
    assert case["reason"] == "CaseTimeout: workers 1 did not answer within 2 s"


def test_a_lone_one_worker_case_has_no_scaling_efficiency(pm, run_cases):
    [run] = run_cases(pm, ["threaded"])
    assert scaling_efficiencies([run]) == {}
    assert "scaling" not in render_table([run]).splitlines()[0]
