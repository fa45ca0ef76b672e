"""The runner: one status per case, failures contained, results kept as they finish."""

from __future__ import annotations

import json

import pytest
import torch

import mfbench
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.plugin.registry import collect
from mfbench.report.tables import render_table
from mfbench.results.files import ResultsFile, load_results
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import STATUSES, Runner


class Raising(testing.Idle):
    name = "raising"

    def run_epoch(self, epoch):
        raise ValueError("this strategy is broken on purpose")


class Exploding(mfbench.Strategy):
    name = "exploding"
    params = {"how": "nan"}

    def setup(self, model, train, device, seed):
        self.model = model

    def run_epoch(self, epoch):
        with torch.no_grad():
            if self.params["how"] == "nan":
                self.model.user_factors.weight.fill_(float("nan"))
            else:
                self.model.user_factors.weight.mul_(1e4)
        return None


class Counting(mfbench.Strategy):
    """Does no training; records calls so the runner's protocol can be checked."""

    name = "counting"
    calls: list = []

    def skip(self, model, device):
        return "no biased models, please" if hasattr(model, "user_bias") else None

    def setup(self, model, train, device, seed):
        Counting.calls.append(("setup", len(train)))

    def run_epoch(self, epoch):
        Counting.calls.append(("epoch", epoch))
        return 1.0

    def teardown(self):
        Counting.calls.append(("teardown",))


@pytest.fixture
def pm(fresh_pm, register_strategies):
    return register_strategies(fresh_pm, Raising, Exploding, Counting, name="test-parts")


def test_a_raising_strategy_is_an_error_row_and_the_run_goes_on(pm, run_cases):
    records = run_cases(pm, ["raising", "counting"])
    assert [r["status"] for r in records] == ["error", "ok"]
    assert "ValueError: this strategy is broken on purpose" in records[0]["reason"]
    assert "Traceback" in records[0]["traceback"]


def test_unavailable_device_is_skipped_with_the_reason(pm, run_cases):
    records = run_cases(pm, ["counting"], devices=("cpu", "cuda:99"))
    assert [r["status"] for r in records] == ["ok", "skipped"]
    assert "CUDA is not available" in records[1]["reason"]


def test_strategy_device_support_and_skip_hook(pm, run_cases, register_strategies):
    class CpuOnly(Counting):
        name = "cpu-only"
        devices = ("cpu",)

    register_strategies(pm, CpuOnly)
    if torch.cuda.is_available():
        records = run_cases(pm, ["cpu-only"], devices=("cuda",))
        assert records[0]["status"] == "skipped" and "supports cpu only" in records[0]["reason"]
    records = run_cases(pm, ["counting"], models=("biased",))
    assert records[0]["status"] == "skipped" and records[0]["reason"] == "no biased models, please"


@pytest.mark.parametrize("how, phrase", [("nan", "became nan"), ("grow", "grew from")])
def test_divergence_ends_a_case_as_diverged(pm, run_cases, how, phrase):
    records = run_cases(pm, [f"exploding[how={how}]"], epochs=3)
    assert records[0]["status"] == "diverged"
    assert phrase in records[0]["reason"]
    assert len(records[0]["repeats"][0]["epochs"]) == 1  # the measured epoch is kept


def test_protocol_setup_epochs_teardown_and_summary(pm, run_cases):
    Counting.calls.clear()
    records = run_cases(pm, ["counting"], epochs=2, repeats=2)
    assert Counting.calls == [("setup", 192), ("epoch", 0), ("epoch", 1), ("teardown",)] * 2
    record = records[0]
    assert record["status"] == "ok"
    assert len(record["repeats"]) == 2 and all(len(r["epochs"]) == 2 for r in record["repeats"])
    summary = record["summary"]
    assert summary["epochs_timed"] == 4 and summary["updates_per_epoch"] == 192
    assert summary["median_updates_per_s"] == pytest.approx(192 / summary["median_epoch_s"])
    assert record["dataset"]["nnz"] == 240 and len(record["dataset"]["fingerprint"]) == 16


def test_teardown_runs_after_an_error(pm, run_cases, register_strategies):
    class Failing(Counting):
        name = "failing"

        def run_epoch(self, epoch):
            raise RuntimeError("nope")

    register_strategies(pm, Failing)
    Counting.calls.clear()
    records = run_cases(pm, ["failing"])
    assert records[0]["status"] == "error" and Counting.calls[-1] == ("teardown",)


def test_timeout_is_checked_between_epochs(pm, register_strategies):
    now = [0.0]

    class Slow(Counting):
        name = "slow"

        def run_epoch(self, epoch):
            now[0] += 10.0
            return None

    register_strategies(pm, Slow)
    config = RunConfig(epochs=5, repeats=1, case_timeout=25.0)
    cases = plan(collect(pm), [TINY], ["dot"], ["slow"], ["cpu"], config)
    record = Runner(config, clock=lambda: now[0]).run(cases)[0]
    assert record["status"] == "timeout" and "25 s limit" in record["reason"]
    assert len(record["repeats"][0]["epochs"]) == 3


def test_each_status_is_from_the_fixed_set(pm, run_cases):
    records = run_cases(pm, ["raising", "exploding", "counting"], devices=("cpu", "cuda:99"))
    assert {r["status"] for r in records} <= set(STATUSES)


def test_results_file_is_valid_json_after_every_case_and_report_reproduces_the_table(pm, tmp_path):
    path = tmp_path / "out" / "results.json"
    results = ResultsFile(path, {"selections": []})
    seen = []

    def on_case(record):
        results.add(record)
        json.loads(path.read_text())  # the document is valid JSON after every single case
        document = load_results(path)  # and with its journal, holds every finished case
        seen.append(len(document["cases"]))
        assert document["complete"] is False

    config = RunConfig(epochs=1, repeats=1)
    cases = plan(collect(pm), [TINY], ["dot"], ["counting", "raising", "exploding"], ["cpu", "cuda:99"], config)
    records = Runner(config, on_case=on_case).run(cases)
    results.finish()
    assert seen == [1, 2, 3, 4, 5, 6]
    document = load_results(path)
    assert document["complete"] is True
    assert render_table(document["cases"]) == render_table(records)
    assert not list(path.parent.glob("*.tmp")) and not list(path.parent.glob("*.journal"))


def test_a_dataset_that_fails_to_load_is_an_error_for_its_cases(fresh_pm, run_cases, tmp_path):
    # (an out-of-range parameter, a missing file or column is refused while planning; a bad row
    # past the first lines is found only when loading)
    path = tmp_path / "r.csv"
    path.write_text("".join(f"{u},{i},3\n" for u in range(40) for i in range(30)) + "7,8,three\n")
    records = run_cases(fresh_pm, ["reference"], datasets=(f"file[path={path}]",))
    assert records[0]["status"] == "error" and "'three' is not a number" in records[0]["reason"]
