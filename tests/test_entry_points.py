"""A pip-installed package with an ``mfbench`` entry point is found with no change to mfbench."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "mfbench-adagrad"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build and install the fixture package into a private folder with pip."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.fail("setuptools is needed to build the fixture plugin: pip install -e '.[test]'")
    source = tmp_path_factory.mktemp("src") / "mfbench-adagrad"
    shutil.copytree(FIXTURE, source)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


def mfbench_cli(args, site, tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MFBENCH_")}
    environment.update(PYTHONPATH=str(site), **env)
    return subprocess.run(
        [sys.executable, "-m", "mfbench", *args], capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300
    )


def test_installed_plugin_is_listed_with_its_distribution(installed, tmp_path):
    result = mfbench_cli(["list"], installed, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "my-adagrad" in result.stdout
    assert "adagrad (mfbench-adagrad 0.1.0)" in result.stdout


def test_installed_plugin_runs(installed, tmp_path):
    result = mfbench_cli(
        [
            "run",
            "-d",
            "sprand[n_users=40,n_items=30,density=0.2]",
            "-s",
            "my-adagrad",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "-q",
        ],
        installed,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "my-adagrad" in result.stdout and " ok " in result.stdout


def test_installed_plugin_can_be_blocked_by_entry_point_name(installed, tmp_path):
    result = mfbench_cli(["list", "-p", "no:adagrad"], installed, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "my-adagrad" not in result.stdout


def test_autoload_can_be_disabled(installed, tmp_path):
    result = mfbench_cli(["list"], installed, tmp_path, MFBENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "my-adagrad" not in result.stdout


def test_installed_plugin_joins_the_benchmark_suite(installed, tmp_path):
    root = Path(__file__).resolve().parents[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MFBENCH_")}
    environment["PYTHONPATH"] = str(installed)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(root / "benchmarks")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "my-adagrad" in result.stdout
