"""The wheel holds every package, suite, schema and C source, under the names it installs them as.

pyproject.toml lists the packages one by one (the top-level plugins/ folder installs as
mfbench.plugins), so a new package folder left off that list would be missing from every
install while the tests, run from the source tree, still pass. Building the wheel is what
finds that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> where its files land in the wheel.
INSTALLED_AS = {ROOT / "mfbench": "mfbench", ROOT / "plugins": "mfbench/plugins"}


#: What building needs from the checkout; copied without build leftovers.
BUILD_INPUTS = ("pyproject.toml", "README.md", "mfbench", "plugins")
LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.so")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """The file names in a wheel built from a clean copy of this checkout (no dependencies, no isolated build env).

    A copy, because setuptools also packs the files an old ``*.egg-info/SOURCES.txt`` lists (an
    editable install leaves one): built in place, a package missing from pyproject.toml can
    still reach the wheel here, and then not on a fresh clone.
    """
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=LEFTOVERS)
        else:
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(source)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, f"{' '.join(command)} failed:\n{built.stdout}\n{built.stderr}"
    [wheel] = out.glob("mfbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def installed_name(path: Path) -> str:
    for source, target in INSTALLED_AS.items():
        if path.is_relative_to(source):
            return f"{target}/{path.relative_to(source).as_posix()}"
    raise AssertionError(f"{path} is outside the packaged folders")


def package_files() -> list[Path]:
    """Every module of every package folder (a folder with an __init__.py) under mfbench/ and plugins/."""
    files = []
    for source in INSTALLED_AS:
        for init in source.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                files += sorted(init.parent.glob("*.py"))
    return files


def test_the_source_tree_has_what_this_test_looks_for():
    names = {installed_name(path) for path in package_files()}
    assert {"mfbench/__init__.py", "mfbench/run/executors/base.py", "mfbench/plugins/strategies/reference.py"} <= names
    assert list((ROOT / "mfbench" / "run" / "suites").glob("*.toml"))


def test_every_package_module_is_in_the_wheel_under_its_installed_name(wheel_files):
    missing = sorted(installed_name(path) for path in package_files() if installed_name(path) not in wheel_files)
    assert not missing, f"not in the wheel (is the package listed in pyproject.toml [tool.setuptools] packages?): {missing}"
    assert not any(name.startswith("plugins/") for name in wheel_files), "built-in plugins must install as mfbench.plugins"


def test_suites_schema_and_c_source_are_in_the_wheel(wheel_files):
    data = [
        *sorted((ROOT / "mfbench" / "run" / "suites").glob("*.toml")),
        ROOT / "mfbench" / "results" / "results.schema.json",
        ROOT / "plugins" / "strategies" / "native_sgd.c",
    ]
    missing = sorted(installed_name(path) for path in data if installed_name(path) not in wheel_files)
    assert not missing, f"not in the wheel (see pyproject.toml [tool.setuptools.package-data]): {missing}"
