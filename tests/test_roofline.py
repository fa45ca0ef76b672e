"""Roofline fields: work per update stated by strategies, ceilings measured by calibration, fractions in the summary."""

from __future__ import annotations

import pytest

import mfbench
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.plugin.registry import collect
from mfbench.report.tables import render_csv
from mfbench.run import calibration
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner
from mfbench.stats import roofline

CEILINGS = {"memory_bytes_per_s": 1e10, "peak_flops_per_s": 1e11}


def test_per_rating_sgd_counts_the_rating_both_rows_read_and_written_and_the_step():
    work = roofline.per_rating_sgd(20, 4)
    assert work["bytes_per_update"] == 12 + 2 * 2 * 20 * 4
    assert work["flops_per_update"] == 2 * 20 + 2 + 2 * 2 * 20
    biased = roofline.per_rating_sgd(20, 8, biased=True)
    assert biased["bytes_per_update"] == 12 + 2 * (2 * 20 + 2) * 8 and biased["flops_per_update"] == 130


def test_fractions_divide_the_achieved_rates_by_the_ceilings():
    work = {"bytes_per_update": 100, "flops_per_update": 50}
    out = roofline.fractions(1e7, work, CEILINGS)
    assert out["achieved_bytes_per_s"] == 1e9 and out["bandwidth_fraction"] == pytest.approx(0.1)
    assert out["achieved_flops_per_s"] == 5e8 and out["compute_fraction"] == pytest.approx(0.005)
    assert "bandwidth_fraction" not in roofline.fractions(1e7, work, None), "no ceilings, no fractions"
    assert roofline.fractions(1e7, None, CEILINGS) == {}, "no stated work, no fields"


def test_calibration_measures_both_ceilings(monkeypatch):
    monkeypatch.setattr(calibration, "STREAM_ELEMENTS", 2**20)
    monkeypatch.setattr(calibration, "MATMUL_SIDE", 128)
    assert calibration.memory_bandwidth(repeats=1) > 1e8  # any machine copies more than 100 MB/s
    assert calibration.compute_peak(repeats=1) > 1e8


def run_one(pm, strategy: str, ceilings=CEILINGS):
    config = RunConfig(epochs=2, repeats=1, warmup=0)
    cases = plan(collect(pm), [TINY], ["dot"], [strategy], ["cpu"], config)
    runner = Runner(config)
    runner.ceilings = ceilings
    return runner.run(cases)[0]


def test_a_stated_work_lands_in_the_repeats_and_the_summary(fresh_pm):
    record = run_one(fresh_pm, "numba")
    if record["status"] == "skipped":
        pytest.skip(record["reason"])
    assert record["repeats"][0]["work_per_update"]["bytes_per_update"] == 12 + 2 * 2 * 20 * 4
    summary = record["summary"]
    assert summary["bytes_per_update"] == 332 and summary["flops_per_update"] == 122
    assert summary["bandwidth_fraction"] == pytest.approx(summary["median_updates_per_s"] * 332 / 1e10)
    assert "bandwidth_fraction" in render_csv([record]).splitlines()[0]


def test_strategies_that_state_nothing_have_no_roofline_fields(fresh_pm):
    record = run_one(fresh_pm, "vectorized")
    assert "work_per_update" not in record["repeats"][0]
    assert "bytes_per_update" not in record["summary"]
    assert "bandwidth_fraction" not in render_csv([record]).splitlines()[0]


def test_a_failing_statement_is_recorded_and_the_case_still_ends_ok(fresh_pm):
    class Broken(mfbench.Strategy):
        name = "broken-work"

        def setup(self, model, train, device, seed):
            pass

        def run_epoch(self, epoch):
            return None

        def work_per_update(self, model):
            raise ValueError("cannot say")

    class Parts:
        @mfbench.hookimpl
        def mfbench_register_strategies(self, register):
            register(Broken)

    fresh_pm.register(Parts(), name="parts")
    record = run_one(fresh_pm, "broken-work")
    assert record["status"] == "ok"
    assert record["repeats"][0]["work_per_update"] == {"error": "ValueError: cannot say"}
    assert "bytes_per_update" not in record["summary"]
