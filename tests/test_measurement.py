"""Measurement: warm-up, spreads, time-to-target, memory, and waiting for asynchronous devices."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
import torch

from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner
from mfbench.run.timing import timed
from mfbench.stats.summary import case_time_to_target, quantile, spread, time_to_target


class AsyncDevice:
    """A test double of an asynchronous device: launches return at once, work finishes later."""

    def __init__(self) -> None:
        self.pending: list[threading.Thread] = []

    def launch(self, seconds: float) -> None:
        worker = threading.Thread(target=time.sleep, args=(seconds,))
        worker.start()
        self.pending.append(worker)

    def synchronize(self, device) -> None:
        for worker in self.pending:
            worker.join()
        self.pending.clear()


@pytest.mark.timing
def test_timer_waits_for_the_devices_work():
    device = AsyncDevice()
    _, unsynced = timed(lambda: device.launch(0.3), torch.device("cpu"), sync=lambda d: None)
    assert unsynced < 0.2  # the double really is asynchronous: launching takes no time
    device.synchronize(None)
    _, synced = timed(lambda: device.launch(0.3), torch.device("cpu"), sync=device.synchronize)
    assert synced >= 0.3


def test_runner_epochs_include_the_devices_work(fresh_pm, register_strategies):
    device = AsyncDevice()

    class Launching(testing.Idle):
        name = "launching"

        def run_epoch(self, epoch):
            device.launch(0.25)

    register_strategies(fresh_pm, Launching)
    config = RunConfig(epochs=2, repeats=1, warmup=0)
    cases = plan(collect(fresh_pm), [TINY], ["dot"], ["launching"], ["cpu"], config)
    record = Runner(config, sync=device.synchronize).run(cases)[0]
    assert [e["seconds"] >= 0.25 for e in record["repeats"][0]["epochs"]] == [True, True]


def test_warmup_epochs_are_recorded_but_not_counted(fresh_pm, run_cases):
    records = run_cases(fresh_pm, ["reference"], epochs=2, repeats=2, warmup=1)
    record = records[0]
    for repeat in record["repeats"]:
        assert [e.get("warmup", False) for e in repeat["epochs"]] == [True, False, False]
    assert record["summary"]["epochs_timed"] == 4
    counted = [e["seconds"] for r in record["repeats"] for e in r["epochs"] if not e.get("warmup")]
    assert record["summary"]["median_epoch_s"] == pytest.approx(statistics.median(counted))


def test_summary_has_spread_memory_and_relative_throughput(fresh_pm):
    config = RunConfig(epochs=3, repeats=1, warmup=0, target_rmse=100.0)
    cases = plan(collect(fresh_pm), [TINY], ["dot"], ["reference"], ["cpu"], config)
    runner = Runner(config)
    runner.calibration_score = 1000.0
    summary = runner.run(cases)[0]["summary"]
    rates = summary["updates_per_s"]
    assert rates["min"] <= rates["q1"] <= rates["median"] <= rates["q3"] <= rates["max"]
    assert isinstance(summary["unstable"], bool) and summary["relative_iqr"] >= 0
    assert summary["peak_memory_bytes"] > 10_000_000  # torch alone makes the process larger than this
    assert summary["relative_updates_per_s"] == pytest.approx(summary["median_updates_per_s"] / 1000.0)
    assert summary["time_to_target_s"] is not None  # an RMSE of 100 is reached in the first epoch


def test_unstable_flag_follows_the_spread():
    assert spread([1.0, 1.0, 1.0, 1.0])["relative_iqr"] == 0
    assert spread([1.0, 2.0, 3.0, 4.0])["relative_iqr"] == pytest.approx(1.5 / 2.5)
    assert quantile([1, 2, 3, 4], 0.25) == pytest.approx(1.75)


def test_time_to_target_sums_epochs_until_first_reached():
    epochs = [
        {"seconds": 1.0, "test_rmse": 2.0, "warmup": True},
        {"seconds": 2.0, "test_rmse": 1.2},
        {"seconds": 3.0, "test_rmse": 0.9},
        {"seconds": 4.0, "test_rmse": 0.8},
    ]
    assert time_to_target(epochs, 1.0) == 6.0
    assert time_to_target(epochs, 2.0) == 1.0
    assert time_to_target(epochs, 0.5) is None
    case = {"repeats": [{"epochs": epochs}, {"epochs": [{"seconds": 1.0, "test_rmse": 0.9}]}, {"epochs": []}]}
    assert case_time_to_target(case, 1.0) == pytest.approx(3.5)
    assert case_time_to_target(case, 0.85) is None  # one repeat of three reached it: not enough


def test_cuda_memory_and_sync_are_guarded_on_cpu():
    from mfbench.run.memory import PeakMemory

    with PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(5_000_000)
        del block
    assert memory.record()["peak_bytes"] > 20_000_000


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_case_records_device_memory(fresh_pm, run_cases):
    records = run_cases(fresh_pm, ["reference"], devices=("cuda",))
    assert records[0]["status"] == "ok"
    assert records[0]["repeats"][0]["memory"]["method"] == "torch.cuda.max_memory_allocated"
