"""The hooks a run calls: machine facts and finished cases."""

from __future__ import annotations

import json
import sys
import types

import pytest

import mfbench
from mfbench.cli import main
from mfbench.plugin.contract_checks import TINY_DATASET as TINY


@pytest.fixture
def observer_module(monkeypatch):
    """A plugin module, importable by name, that records what the hooks receive."""
    module = types.ModuleType("observer_plugin")
    module.seen = []

    @mfbench.hookimpl
    def mfbench_machine_info():
        return {"observer": "was here", "hostname": "overridden-by-a-plugin"}

    @mfbench.hookimpl
    def mfbench_case_finished(case):
        module.seen.append((case["strategy"]["name"], case["device"], case["status"]))

    module.mfbench_machine_info = mfbench_machine_info
    module.mfbench_case_finished = mfbench_case_finished
    monkeypatch.setitem(sys.modules, "observer_plugin", module)
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    return module


def test_case_finished_sees_every_case_and_machine_info_is_merged(observer_module, tmp_path, capsys):
    out = tmp_path / "r.json"
    # The module lives only in this process's sys.modules: worker processes could not import it.
    code = main(
        [
            "run",
            "-p",
            "observer_plugin",
            "-d",
            TINY,
            "-s",
            "reference",
            "--device",
            "cpu",
            "--device",
            "cuda:99",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "-o",
            str(out),
            "-q",
            "--executor",
            "inprocess",
        ]
    )
    assert code == 0
    assert observer_module.seen == [("reference", "cpu", "ok"), ("reference", "cuda:99", "skipped")]
    machine = json.loads(out.read_text())["machine"]
    assert machine["observer"] == "was here"
    assert machine["hostname"] == "overridden-by-a-plugin"  # a plugin's facts win over the built-in ones
    assert machine["torch"] and machine["cpu_count"] >= 1
