"""What survives what: every way a plugin can fail, in one suite with a normal strategy after the faults.

The fault strategies live in tests/fault_plugins.py; the default ``process`` executor
runs each case in a worker process, so a fault ends its own case only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfbench.cli import main
from mfbench.errors import MfbenchError
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.results.files import load_results

#: Signals, timeouts and worker processes: outcomes that depend on timing by nature. Each bound below
#: says its margin; CI runs these twice more under a full CPU load (benchmarks/flake_hunt.py -m timing).
pytestmark = pytest.mark.timing

TESTS = Path(__file__).parent
FAULTS = ["raise", "segfault", "abort", "exit", "sigkill", "hang", "memory", "info"]


def mfbench_run(tmp_path, *args, name="r.json", env=None):
    """``mfbench run`` in a subprocess (signals and exit codes as a user sees them)."""
    out = tmp_path / name
    command = [
        sys.executable,
        "-m",
        "mfbench",
        "run",
        "-p",
        "fault_plugins",
        "-d",
        TINY,
        "--device",
        "cpu",
        "--no-calibration",
        "-q",
        "-o",
        str(out),
        *args,
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "MFBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
        **(env or {}),
    }
    return command, environment, out


def test_each_fault_is_one_row_and_the_suite_goes_on(tmp_path):
    command, env, out = mfbench_run(
        tmp_path,
        *(arg for fault in FAULTS for arg in ("-s", f"fault-{fault}")),
        "-s",
        "vectorized",
        "--epochs",
        "2",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--timeout",
        "8",  # generous: the machine may be loaded
        env={"MFBENCH_TEST_BROKEN_OBSERVERS": "1"},
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr  # some cases ended in error
    assert "Traceback" not in done.stderr
    document = json.loads(out.read_text())
    assert document["complete"] is True
    rows = {c["strategy"]["name"]: c for c in document["cases"]}
    assert list(rows) == [f"fault-{f}" for f in FAULTS] + ["vectorized"]
    where = "during epoch 2 of repeat 1 (1 finished)"
    expected = {
        "fault-raise": ("error", "ValueError: injected failure"),
        "fault-segfault": ("error", f"worker died: killed by signal 11 (SIGSEGV) {where}"),
        "fault-abort": ("error", f"worker died: killed by signal 6 (SIGABRT) {where}"),
        "fault-exit": ("error", f"worker died: exited with code 3 {where}"),
        "fault-sigkill": ("error", f"worker died: killed by signal 9 (SIGKILL) (out of memory? killed from outside?) {where}"),
        "fault-hang": ("timeout", "over the 8 s limit, " + where),
        "fault-memory": ("error", "MemoryError"),
        "fault-info": ("ok", ""),
        "vectorized": ("ok", ""),
    }
    for name, (status, reason) in expected.items():
        assert rows[name]["status"] == status, (name, rows[name]["reason"])
        assert reason in rows[name]["reason"], (name, rows[name]["reason"])
    for name in ("fault-segfault", "fault-abort", "fault-exit", "fault-sigkill", "fault-hang"):
        assert len(rows[name]["repeats"][0]["epochs"]) == 1, name  # the epoch that finished is kept
        assert rows[name]["dataset"]["fingerprint"] == rows["vectorized"]["dataset"]["fingerprint"]
    assert "Segmentation fault" in rows["fault-segfault"]["traceback"]  # where the Python code was
    assert "fault_plugins.py" in rows["fault-segfault"]["traceback"]
    assert rows["fault-info"]["repeats"][0]["info"]["error"].startswith("TypeError: returned a value that is not JSON")
    assert "info() failed" in rows["fault-info"]["warnings"][0]
    warnings = document["warnings"]
    assert any("plugin 'fault_plugins': mfbench_machine_info raised RuntimeError" in w for w in warnings)
    assert sum("mfbench_case_finished raised RuntimeError: observer failed" in w for w in warnings) == len(rows)
    assert "mfbench: warning: plugin 'fault_plugins'" in done.stderr
    assert document["executor"]["workers_crashed"] == 4 and document["executor"]["workers_killed"] == 1
    assert rows["vectorized"]["repeats"][0]["memory"]["peak_bytes"] > 0  # measured in its worker


def test_a_strategy_with_worker_processes_of_its_own_runs_in_a_case_worker(tmp_path):
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "-d",
            TINY,
            "-s",
            "hogwild[workers=1,lr=0.001]",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--no-calibration",
            "-q",
            "-o",
            str(out),
        ]
    )
    [case] = json.loads(out.read_text())["cases"]
    assert code == 0 and case["status"] == "ok", case["reason"]


def test_inprocess_executor_runs_in_this_process(tmp_path):
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "-d",
            TINY,
            "-s",
            "vectorized",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--no-calibration",
            "-q",
            "-o",
            str(out),
            "--executor",
            "inprocess",
        ]
    )
    assert code == 0
    assert json.loads(out.read_text())["executor"]["name"] == "inprocess"


def wait_for_cases(path: Path, count: int, process: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it was interrupted"
        try:  # the file and its journal, as every mfbench command reads them
            if len(load_results(path)["cases"]) >= count:
                return
        except MfbenchError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {count} case(s) in {limit} s")


def test_sigterm_keeps_the_finished_cases_and_exits_143(tmp_path):
    command, env, out = mfbench_run(
        tmp_path, "-s", "vectorized", "-s", "fault-hang", "--epochs", "2", "--warmup", "0", "--repeats", "1"
    )
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_cases(out, 1, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "terminated; the 1 finished case(s) are in" in err and "Traceback" not in err
    document = load_results(out)
    assert document["complete"] is False and len(document["cases"]) == 1


def test_resume_after_sigkill_runs_only_what_is_missing(tmp_path, capsys):
    args = [
        "-s",
        "vectorized",
        "-s",
        "vectorized[batch_size=64]",
        "-s",
        "reference",
        "-s",
        "fault-hang",
        "--epochs",
        "2",
        "--warmup",
        "0",
        "--repeats",
        "1",
    ]
    command, env, out = mfbench_run(tmp_path, *args)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_cases(out, 2, process)
    process.kill()  # no handler runs: what the file holds is what survives
    process.wait(30)
    first = load_results(out)  # the document and its journal: every case finished before the kill
    assert first["complete"] is False and len(first["cases"]) in (2, 3)

    in_process = command[command.index("run") :]  # the refusals come before anything runs
    assert main(in_process) == 2
    err = capsys.readouterr().err
    assert f"{out} exists: add --resume" in err and "or --force to overwrite it" in err
    assert load_results(out) == first  # refused: the file is untouched
    assert main([*in_process, "--resume", "--timeout", "2"]) == 2
    assert "another configuration (case_timeout None there, 2.0 here)" in capsys.readouterr().err

    resumed = subprocess.Popen([*command, "--resume"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_cases(out, 3, resumed)  # what was kept, then reference; the hang is running
    resumed.kill()
    resumed.wait(30)
    document = load_results(out)
    kept = len(first["cases"])
    assert document["resumed"]["kept"] == kept
    assert [c["id"] for c in document["cases"][:kept]] == [c["id"] for c in first["cases"]]
    assert [c["strategy"]["name"] for c in document["cases"]] == ["vectorized", "vectorized", "reference"]
    assert [bool(c.get("resumed")) for c in document["cases"]] == [True] * kept + [False] * (3 - kept)
    assert document["cases"][0]["repeats"] == first["cases"][0]["repeats"]  # kept, not measured again


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "cannot create the folder"),
    ],
)
def test_output_paths_are_checked_before_the_run(tmp_path, capsys, make, message):
    target = tmp_path / "out.json"
    make(target)
    if message.startswith("cannot create"):
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "out.json"
    code = main(["run", "-d", TINY, "-s", "vectorized", "--device", "cpu", "-o", str(target), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_resume_and_force_need_an_output(capsys):
    assert main(["run", "-s", "vectorized", "--resume"]) == 2
    assert "--resume and --force need -o FILE" in capsys.readouterr().err


def test_ctrl_c_during_calibration_is_a_message(monkeypatch, tmp_path, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("mfbench.run.executors.base.calibrate", interrupted)  # where every executor times it
    code = main(["run", "-d", TINY, "-s", "vectorized", "--device", "cpu", "-o", str(tmp_path / "r.json"), "-q"])
    err = capsys.readouterr().err
    assert code == 130 and "mfbench: interrupted" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "source, words",
    [("def broken(:\n", "has a syntax error"), ("raise RuntimeError('at import')\n", "failed while importing: RuntimeError")],
)
def test_a_plugin_module_that_cannot_import_is_a_message(tmp_path, monkeypatch, capsys, source, words):
    (tmp_path / "broken_plugin_module.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "-p", "broken_plugin_module", "-s", "reference", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    monkeypatch.delitem(sys.modules, "broken_plugin_module", raising=False)
