"""The pytest-benchmark suite and the CI speed gate in benchmarks/.

The gate's comparison is checked on hand-made numbers (no timing); the suite's
collection is checked against the registry, including a strategy plugin loaded
from the environment, which must get benchmarks with no edit to benchmarks/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mfbench
from mfbench.registry import collect

ROOT = Path(__file__).resolve().parents[1]
ADAGRAD_DIR = ROOT / "tests" / "fixtures" / "mfbench-adagrad"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gate = load(ROOT / "benchmarks" / "gate.py", "mfbench_gate_under_test")
bench_conftest = load(ROOT / "benchmarks" / "conftest.py", "mfbench_bench_conftest_under_test")


# -- the gate's comparison ----------------------------------------------------


def verdicts(rows):
    return {row.key: row.verdict for row in rows}


def test_a_drop_past_the_threshold_trips_and_a_smaller_one_passes():
    base = {"biased/fast": 100.0, "biased/steady": 100.0, "biased/faster": 100.0}
    new = {"biased/fast": 49.0, "biased/steady": 51.0, "biased/faster": 300.0}
    rows = gate.compare_ratios(base, new, {}, threshold=0.5)
    assert verdicts(rows) == {"biased/fast": "SLOWER", "biased/steady": "ok", "biased/faster": "ok"}
    assert [row.key for row in rows if row.failed] == ["biased/fast"]
    assert {row.key: round(row.change, 2) for row in rows} == {"biased/fast": -0.51, "biased/steady": -0.49, "biased/faster": 2.0}


def test_the_threshold_decides_what_trips():
    base, new = {"dot/s": 10.0}, {"dot/s": 8.0}
    assert verdicts(gate.compare_ratios(base, new, {}, threshold=0.3)) == {"dot/s": "ok"}
    assert verdicts(gate.compare_ratios(base, new, {}, threshold=0.1)) == {"dot/s": "SLOWER"}


def test_new_and_missing_strategies_never_fail_but_a_failed_case_with_a_baseline_does():
    base = {"dot/gone": 5.0, "dot/broken": 5.0}
    new = {"dot/added": 7.0}
    failures = {"dot/broken": "error: boom", "dot/added-broken": "diverged: nan"}
    rows = gate.compare_ratios(base, new, failures, threshold=0.5)
    assert verdicts(rows) == {
        "dot/added": "new",
        "dot/added-broken": "new, failed",
        "dot/broken": "FAILED",
        "dot/gone": "missing",
    }
    assert [row.key for row in rows if row.failed] == ["dot/broken"]


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 5])
def test_a_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(ValueError, match="between 0 and 1"):
        gate.compare_ratios({}, {}, {}, threshold)


def record(model, strategy, status="ok", per_s=None, reason=""):
    return {
        "model": {"label": model},
        "strategy": {"label": strategy},
        "dataset": {"fingerprint": "abc"},
        "status": status,
        "reason": reason,
        "summary": {"median_updates_per_s": per_s} if per_s is not None else {},
    }


def test_ratios_are_relative_to_the_reference_on_the_same_model():
    records = [
        record("biased", "reference", per_s=1000.0),
        record("biased", "fast", per_s=500_000.0),
        record("dot", "reference", per_s=2000.0),
        record("dot", "fast", per_s=500_000.0),
        record("dot", "cuda-only", status="skipped", reason="cpu only"),
        record("dot", "broken", status="error", reason="ValueError: x"),
    ]
    run = gate.ratios_from_records(records)
    assert run["ratios"] == {"biased/fast": 500.0, "dot/fast": 250.0}
    assert run["failures"] == {"dot/broken": "error: ValueError: x"}
    assert run["fingerprint"] == "abc"


def test_without_a_reference_a_model_has_no_ratios_and_its_cases_fail():
    records = [record("biased", "reference", status="error", reason="boom"), record("biased", "fast", per_s=5.0)]
    run = gate.ratios_from_records(records)
    assert run["ratios"] == {}
    assert run["failures"]["biased/fast"] == "the reference did not finish on this model"


def test_a_diverged_case_keeps_its_speed_with_a_note():
    records = [record("biased", "reference", per_s=1000.0), record("biased", "wild", "diverged", 4000.0, "nan")]
    run = gate.ratios_from_records(records)
    assert run["ratios"] == {"biased/wild": 4.0}
    assert run["notes"] == {"biased/wild": "diverged: nan"} and run["failures"] == {}


def test_blocks_combine_by_median_and_a_failure_in_any_block_counts():
    def block(ratios, failures=()):
        return {"ratios": ratios, "failures": dict.fromkeys(failures, "error: x"), "updates_per_s": {}, "fingerprint": "f"}

    runs = [
        block({"m/a": 10.0, "m/b": 1.0}),
        block({"m/a": 30.0}, failures=["m/b"]),
        block({"m/a": 20.0, "m/b": 1.0}),
    ]
    combined = gate.combine_blocks(runs)
    assert combined["ratios"] == {"m/a": 20.0}
    assert combined["failures"] == {"m/b": "error: x"}
    assert combined["block_ratios"] == {"m/a": [10.0, 30.0, 20.0]}
    assert combined["fingerprint"] == "f"


def test_a_baseline_from_several_runs_keeps_the_median_and_the_worst_drop():
    runs = [
        {"ratios": {"m/a": 100.0, "m/b": 2.0}, "failures": {}, "fingerprint": "f", "seconds": 30.0},
        {"ratios": {"m/a": 80.0, "m/b": 2.0}, "failures": {}, "fingerprint": "f", "seconds": 31.0},
        {"ratios": {"m/a": 60.0, "m/b": 2.0}, "failures": {}, "fingerprint": "f", "seconds": 32.0},
    ]
    document = gate.baseline_from_runs(runs, threshold=0.5)
    assert document["ratios"] == {"m/a": 80.0, "m/b": 2.0}
    assert document["spread"]["worst_drop"] == pytest.approx(0.4)
    assert document["spread"]["ratios_per_run"]["m/a"] == [100.0, 80.0, 60.0]
    with pytest.raises(mfbench.MfbenchError, match="different data"):
        gate.baseline_from_runs([*runs, {**runs[0], "fingerprint": "g"}], threshold=0.5)


def test_update_from_saved_runs_warns_when_the_threshold_would_have_tripped(tmp_path, capsys):
    paths = []
    for i, value in enumerate((10.0, 4.0)):
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps({"ratios": {"m/a": value}, "failures": {}, "fingerprint": "f"}))
        paths.append(str(path))
    out = tmp_path / "base.json"
    assert gate.main(["--update", "--from", *paths, "--threshold", "0.5", "--baseline", str(out)]) == 0
    assert "would have tripped" in capsys.readouterr().err
    assert json.loads(out.read_text())["ratios"] == {"m/a": 7.0}


def fake_measure(ratios):
    def measure(registry, device="cpu"):
        return {"ratios": dict(ratios), "failures": {}, "updates_per_s": {}, "fingerprint": "f1"}

    return measure


def test_main_writes_a_baseline_then_passes_and_trips_on_it(tmp_path, monkeypatch, capsys):
    baseline = tmp_path / "base.json"
    monkeypatch.setattr(gate.torch, "set_num_threads", lambda n: None)  # keep the test process as it was
    monkeypatch.setattr(gate, "measure", fake_measure({"biased/a": 100.0, "biased/b": 10.0}))
    assert gate.main(["--update", "--baseline", str(baseline), "--threshold", "0.4"]) == 0
    written = json.loads(baseline.read_text())
    assert written["schema"] == gate.SCHEMA and written["threshold"] == 0.4
    assert written["ratios"] == {"biased/a": 100.0, "biased/b": 10.0}

    monkeypatch.setattr(gate, "measure", fake_measure({"biased/a": 70.0, "biased/b": 10.0}))
    assert gate.main(["--baseline", str(baseline)]) == 0
    monkeypatch.setattr(gate, "measure", fake_measure({"biased/a": 50.0, "biased/b": 10.0}))
    assert gate.main(["--baseline", str(baseline)]) == 1
    table = capsys.readouterr().out
    assert "SLOWER" in table and "-50%" in table and "1 failure(s)" in table


def test_main_refuses_a_missing_baseline_or_other_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gate.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(gate, "measure", fake_measure({"biased/a": 1.0}))
    assert gate.main(["--baseline", str(tmp_path / "none.json")]) == 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": gate.SCHEMA, "dataset": gate.DATASET, "fingerprint": "f0", "ratios": {}}))
    assert gate.main(["--baseline", str(other)]) == 2
    assert "other data" in capsys.readouterr().err


def test_the_committed_baseline_matches_the_gate():
    baseline = json.loads((ROOT / "results" / "gate-baseline.json").read_text())
    assert baseline["schema"] == gate.SCHEMA and baseline["dataset"] == gate.DATASET
    assert 0.0 < baseline["threshold"] < 1.0
    assert baseline["ratios"] and not baseline["failures"]


# -- the benchmark suite ---------------------------------------------------------


def test_one_case_per_strategy_model_and_device():
    registry = collect(mfbench.make_plugin_manager(entry_points=False, env=False))
    cases = bench_conftest.benchmark_cases(registry, ["cpu", "cuda"])
    expected = {(m, s, d) for m in registry.models for s in registry.strategies for d in ("cpu", "cuda")}
    assert {(c.model.name, c.strategy.name, c.device) for c in cases} == expected
    assert len({c.id for c in cases}) == len(cases) == len(expected)
    assert {c.group for c in cases} == {f"{bench_conftest.DATASET} / {m}" for m in registry.models}
    assert {c.rounds for c in cases if c.strategy.name == "reference"} == {bench_conftest.SLOW_ROUNDS["reference"]}


def pytest_in_subprocess(*args, extra_env=None):
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_collection_follows_the_registry_including_a_plugin_from_the_environment():
    extra = {"MFBENCH_PLUGINS": "mfbench_adagrad", "PYTHONPATH": str(ADAGRAD_DIR)}
    result = pytest_in_subprocess("--collect-only", "-q", "benchmarks/", extra_env=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = {line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "test_epoch[" in line}
    registry = collect(mfbench.make_plugin_manager(env=False))
    devices = ["cpu", "cuda"] if bench_conftest.torch.cuda.is_available() else ["cpu"]
    expected = {f"{m}-{s}-{d}" for m in registry.models for s in [*registry.strategies, "my-adagrad"] for d in devices}
    assert collected == expected


def test_the_benchmark_runs_once_under_benchmark_disable():
    result = pytest_in_subprocess("benchmarks/", "--benchmark-disable", "-q", "-k", "biased-minibatch-cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_rounds_cover_the_minimum_time_within_the_setup_budget():
    registry = collect(mfbench.make_plugin_manager(entry_points=False, env=False))
    case = next(c for c in bench_conftest.benchmark_cases(registry, ["cpu"]) if c.strategy.name == "vectorized")
    minimum = bench_conftest.MIN_TIME
    assert case.rounds_for(epoch_s=minimum / 100, setup_s=0.0) == 100
    assert case.rounds_for(epoch_s=minimum * 10, setup_s=0.0) == case.rounds  # never fewer than the floor
    assert case.rounds_for(epoch_s=1e-9, setup_s=0.0) == bench_conftest.MAX_ROUNDS
    assert case.rounds_for(epoch_s=minimum / 100, setup_s=bench_conftest.MAX_SETUP_TIME / 20) == 20


def test_a_saved_run_with_a_declined_case_is_written_and_readable_by_pytest_benchmark(tmp_path):
    """biased-libmf: libmf's skip() declines the biased model; the JSON must still be written."""
    saved = tmp_path / "run.json"
    result = pytest_in_subprocess(
        "benchmarks/", "-q", "-k", "biased-vectorized-cpu or biased-libmf-cpu", f"--benchmark-json={saved}",
        extra_env={"MFBENCH_BENCH_MIN_TIME": "0.005"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    document = json.loads(saved.read_text())
    (bench,) = document["benchmarks"]
    assert bench["name"] == "test_epoch[biased-vectorized-cpu]"
    assert bench["extra_info"]["torch_threads"] == 1 == document["machine_info"]["torch_threads"]
    assert bench["extra_info"]["rounds"] == bench["stats"]["rounds"] >= bench_conftest.ROUNDS
    assert document["machine_info"]["mfbench"]["calibration"]["score"] > 0
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "compare", str(saved)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "test_epoch[biased-vectorized-cpu]" in shown.stdout
