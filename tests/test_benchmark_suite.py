"""The pytest-benchmark suite and the CI speed gate in benchmarks/.

The gate's plumbing (the base ref's plugins as a package, which modules changed) is
checked without timing; the A/B measurement under it is tested in test_ab.py. The
suite's collection is checked against the registry, including a strategy plugin loaded
from the environment, which must get benchmarks with no edit to benchmarks/; its saving
path is run as users run it.
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
from mfbench.plugin.registry import collect

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


# -- the gate -----------------------------------------------------------------


def test_the_gate_unpacks_plugins_at_a_ref_as_an_importable_package(tmp_path, monkeypatch):
    gate.unpack_base("HEAD", tmp_path)
    assert (tmp_path / gate.BASE_PACKAGE / "strategies" / "vectorized.py").exists()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gate.strategies_of(f"{gate.BASE_PACKAGE}.strategies.vectorized") == ["vectorized"]
    assert gate.strategies_of(f"{gate.BASE_PACKAGE}.no_such_module") == []
    assert gate.module_of("vectorized") == "mfbench.plugins.strategies.vectorized"


def test_the_gate_lists_only_changed_builtin_strategy_modules(monkeypatch):
    listing = (
        "plugins/strategies/vectorized.py\nplugins/README.md\nplugins/strategies/not_a_default.py\nplugins/common/peers.py\n"
    )
    monkeypatch.setattr(gate, "git", lambda *args: listing.encode())
    assert gate.changed_modules("HEAD") == ["mfbench.plugins.strategies.vectorized"]


def test_the_gate_refuses_an_unknown_ref(capsys, monkeypatch):
    monkeypatch.setattr(gate.torch, "set_num_threads", lambda n: None)  # keep the test process as it was
    assert gate.main(["--base-ref", "no-such-ref-anywhere"]) == 2
    assert "cannot resolve git ref" in capsys.readouterr().err


def test_a_base_module_that_does_not_load_is_not_a_pass():
    outcome = gate.measure(
        "vectorized", ["no:mfbench.plugins.strategies.vectorized", "mfbench_gate_base_missing.vectorized"], 10.0, 6
    )
    assert outcome.verdict == "not measured" and outcome.undecided and not outcome.failed


def test_a_strategy_that_declines_the_biased_model_is_measured_on_dot_not_failed():
    pytest.importorskip("libmf")
    outcome = gate.measure("libmf", [], 1000.0, 6)  # both sides this checkout's code; no threshold can trip
    assert not outcome.failed, outcome.note
    assert outcome.ratio and ", on dot (biased: libmf has no user or item biases to train" in outcome.note


def test_a_strategy_the_base_cannot_plan_fails_the_gate_with_the_reason():
    outcome = gate.measure("no-such-strategy", [], 10.0, 6)
    assert outcome.failed and "no-such-strategy" in outcome.note


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
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
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
        "benchmarks/",
        "-q",
        "-k",
        "biased-vectorized-cpu or biased-libmf-cpu",
        f"--benchmark-json={saved}",
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
        [str(Path(sys.executable).with_name("pytest-benchmark")), "compare", str(saved)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "test_epoch[biased-vectorized-cpu]" in shown.stdout


def test_the_gate_refuses_an_unknown_strategy_by_name(capsys, monkeypatch):
    monkeypatch.setattr(gate.torch, "set_num_threads", lambda n: None)
    assert gate.main(["--base-ref", "HEAD", "--strategies", "vectorised"]) == 2
    assert "Did you mean 'vectorized'?" in capsys.readouterr().err
