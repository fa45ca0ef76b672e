"""Executors: the hook, the in-process default, and the Dask executor on a loopback LocalCluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import types

import pytest

import executor_plugins
import mfbench
from mfbench.cli import main
from mfbench.errors import PluginError
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.run.executors import DEFAULT_EXECUTOR, Executor, InProcessExecutor, collect_executors, make_executor, merge_hosts

DASK = "mfbench.plugins.executors.dask"
SUITE = [
    "-d",
    TINY,
    "-m",
    "dot",
    "-s",
    "vectorized",
    "-s",
    "reference",
    "-s",
    "always-fails",
    "--device",
    "cpu",
    "--device",
    "cuda:99",
    "--epochs",
    "1",
    "--repeats",
    "1",
    "--warmup",
    "0",
]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("MFBENCH_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(executor_plugins, "INTERRUPT_AFTER", None)
    monkeypatch.setattr(executor_plugins, "finished", [])


def run_cli(tmp_path, *args, name="r.json"):
    out = tmp_path / name
    code = main(["run", "-p", "executor_plugins", "-p", DASK, *args, "-o", str(out), "-q"])
    return code, json.loads(out.read_text()) if out.exists() else None


def outcomes(document):
    return sorted((c["id"], c["status"]) for c in document["cases"])


def plugin_module(name, **functions):
    module = types.ModuleType(name)
    for key, value in functions.items():
        setattr(module, key, value)
    return module


# --- the hook and the registry of executors ---


def test_process_and_inprocess_are_built_in_and_plugins_add_theirs():
    from mfbench.run.executors.process import ProcessExecutor

    pm = mfbench.make_plugin_manager([DASK], entry_points=False, env=False)
    available, aside = collect_executors(pm)
    assert available[DEFAULT_EXECUTOR].cls is ProcessExecutor
    assert available["inprocess"].cls is InProcessExecutor
    assert available["dask"].plugin == DASK and not aside
    assert isinstance(make_executor(pm, "dask", {"scheduler": "tcp://h:1"}), Executor)


def test_a_duplicate_or_invalid_executor_names_its_plugin():
    class Again(InProcessExecutor):
        name = "inprocess"

    @mfbench.hookimpl
    def mfbench_register_executors(register):
        register(Again)

    pm = mfbench.make_plugin_manager(entry_points=False, env=False)
    pm.register(plugin_module("dup_plugin", mfbench_register_executors=mfbench_register_executors), name="dup_plugin")
    with pytest.raises(PluginError, match=r"registered twice: by plugin 'mfbench.executors' and by plugin 'dup_plugin'"):
        collect_executors(pm)

    @mfbench.hookimpl
    def mfbench_register_executors(register):  # noqa: F811 - a second, different plugin
        register(dict)

    pm = mfbench.make_plugin_manager(entry_points=False, env=False)
    pm.register(plugin_module("bad_plugin", mfbench_register_executors=mfbench_register_executors), name="bad_plugin")
    with pytest.raises(PluginError, match="plugin 'bad_plugin' registered .*not a subclass of mfbench.Executor"):
        collect_executors(pm)


def test_unknown_executor_and_options_are_usage_errors_that_list_what_exists(tmp_path, capsys):
    code, _ = run_cli(tmp_path, "-s", "reference", "--executor", "ray")
    err = capsys.readouterr().err
    assert code == 2 and "unknown executor 'ray'" in err and "Known executors: dask, inprocess, process." in err
    code, _ = run_cli(tmp_path, "-s", "reference", "--scheduler", "tcp://127.0.0.1:8786")
    err = capsys.readouterr().err
    assert code == 2 and "executor 'process' has no option 'scheduler'; it takes start_timeout (default 120.0), grace" in err
    code, _ = run_cli(tmp_path, "-s", "reference", "--executor", "dask", "--executor-option", "timeout")
    assert code == 2 and "--executor-option takes KEY=VALUE" in capsys.readouterr().err


def test_without_dask_the_executor_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an environment without it looks like to find_spec
    code, document = run_cli(tmp_path, "-s", "reference", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786")
    err = capsys.readouterr().err
    assert code == 2 and document is None
    assert "executor 'dask'" in err and "is unavailable" in err and "pip install 'mfbench[dask]'" in err
    assert "Traceback" not in err


def test_local_runs_record_their_executor(tmp_path):
    code, document = run_cli(
        tmp_path,
        "-d",
        TINY,
        "-s",
        "reference",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--repeats",
        "1",
        "--no-calibration",
        "--executor",
        "inprocess",
    )
    assert code == 0
    assert document["executor"] == {"name": "inprocess", "options": {}}
    assert [c["host"] for c in document["cases"]] == [socket.gethostname()]
    (tmp_path / "r.json").unlink()
    code, document = run_cli(
        tmp_path, "-d", TINY, "-s", "reference", "--device", "cpu", "--epochs", "1", "--repeats", "1", "--no-calibration"
    )
    assert code == 0
    assert document["executor"]["name"] == "process" and document["executor"]["workers_started"] == 1
    assert [c["host"] for c in document["cases"]] == [socket.gethostname()]


def test_dask_needs_a_scheduler_it_can_reach(tmp_path, capsys):
    code, _ = run_cli(tmp_path, "-s", "reference", "--executor", "dask")
    assert code == 2 and "needs --scheduler ADDRESS_OR_FILE" in capsys.readouterr().err
    code, _ = run_cli(tmp_path, "-s", "reference", "--executor", "dask", "--scheduler", "no-such-file.json")
    assert code == 2 and "neither a scheduler address" in capsys.readouterr().err
    code, _ = run_cli(
        tmp_path,
        "-s",
        "reference",
        "--executor",
        "dask",
        "--scheduler",
        "tcp://127.0.0.1:1",
        "--executor-option",
        "connect_timeout=1",
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err and "Traceback" not in err


ECHO_PLUGIN = """
import mfbench


class Echo(mfbench.Executor):
    \"\"\"Runs nothing: every case comes back skipped, and its options are in the results header.\"\"\"

    name = "echo"
    params = {"url": None, "retries": 0}

    def start(self, job):
        return {}

    def run(self, job, on_case, on_epoch=None):
        for case in job.cases:
            on_case(job.lost_case(case, f"echo at {self.params['url']}", host=None) | {"status": "skipped"})


@mfbench.hookimpl
def mfbench_add_run_options(options):
    options.add_executor_option("--echo-url", "url", metavar="URL", help="for --executor echo: where it echoes")
    options.add_help("echo runs nothing at all:\\n  every case comes back skipped.")


@mfbench.hookimpl
def mfbench_register_executors(register):
    register(Echo)
"""


def test_a_plugin_adds_run_options_whose_values_reach_its_executor(tmp_path, capsys, monkeypatch):
    (tmp_path / "echo_executor.py").write_text(ECHO_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit):
        main(["run", "-p", "echo_executor", "--help"])
    out = capsys.readouterr().out
    assert "--echo-url URL" in out and "for --executor echo: where it echoes" in out
    assert "  echo runs nothing at all:\n    every case comes back skipped.\n" in out  # laid out as given
    code = main(
        [
            "run",
            "-p",
            "echo_executor",
            "-d",
            TINY,
            "-s",
            "reference",
            "--device",
            "cpu",
            "--no-calibration",
            "--executor",
            "echo",
            "--echo-url",
            "tcp://here:1",
            "--executor-option",
            "url=ignored",
            "--executor-option",
            "retries=2",
            "-o",
            str(tmp_path / "r.json"),
            "-q",
        ]
    )
    assert code == 0
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["executor"]["options"] == {"url": "tcp://here:1", "retries": 2}  # the flag wins
    assert document["cases"][0]["reason"] == "echo at tcp://here:1"
    capsys.readouterr()
    # Blocked, the plugin adds nothing: its flag is unknown and its paragraph gone.
    with pytest.raises(SystemExit):
        main(["run", "-p", "echo_executor", "-p", "no:echo_executor", "--help"])
    out = capsys.readouterr().out
    assert "--echo-url" not in out and "echo runs nothing" not in out
    with pytest.raises(SystemExit):
        main(["run", "-p", "echo_executor", "-p", "no:echo_executor", "--echo-url", "x"])
    assert "unrecognized arguments: --echo-url x" in capsys.readouterr().err


def test_dask_options_show_in_run_help_only_while_its_plugin_is_loaded(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--scheduler ADDRESS_OR_FILE" in out and "dask runs each case on a Dask worker" in out
    with pytest.raises(SystemExit):
        main(["run", "-p", f"no:{DASK}", "--help"])
    out = capsys.readouterr().out
    assert "--scheduler" not in out and "Dask" not in out and "Exit status:" in out


def test_a_run_option_two_plugins_add_names_both(tmp_path, monkeypatch, capsys):
    for module in ("first_flag", "second_flag"):
        (tmp_path / f"{module}.py").write_text(
            "import mfbench\n\n@mfbench.hookimpl\ndef mfbench_add_run_options(options):\n"
            "    options.add_executor_option('--where', 'where', help='somewhere')\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "-p", "first_flag", "-p", "second_flag", "--help"]) == 2
    err = capsys.readouterr().err
    assert "run option --where is added twice: by plugin 'first_flag' and by plugin 'second_flag'" in err
    (tmp_path / "core_flag.py").write_text(
        "import mfbench\n\n@mfbench.hookimpl\ndef mfbench_add_run_options(options):\n"
        "    options.add_executor_option('--executor', 'executor', help='taken')\n"
    )
    assert main(["run", "-p", "core_flag", "--help"]) == 2
    assert "plugin 'core_flag' cannot add run option --executor" in capsys.readouterr().err


def test_machine_section_keeps_what_hosts_share_and_each_host_apart():
    probes = [
        {"host": "a", "machine": {"torch": "2", "cpu_model": "x"}, "calibration": {"score": 1.0}},
        {"host": "b", "machine": {"torch": "2", "cpu_model": "y"}, "calibration": {"score": 2.0}},
    ]
    machine = merge_hosts(probes, {"a": ["tcp://a:1"], "b": ["tcp://b:1", "tcp://b:2"]})
    assert machine["torch"] == "2" and "cpu_model" not in machine and "calibration" not in machine
    assert machine["hosts"]["b"] == {
        "torch": "2",
        "cpu_model": "y",
        "calibration": {"score": 2.0},
        "workers": ["tcp://b:1", "tcp://b:2"],
    }
    one = merge_hosts(probes[:1], {"a": ["tcp://a:1"]})
    assert one["cpu_model"] == "x" and one["calibration"] == {"score": 1.0}


def test_host_notes_warn_of_shared_hosts_and_of_the_nannys_allocator_setting():
    pytest.importorskip("distributed")
    from mfbench.plugins.executors.dask import host_notes

    probe = {"host": "h", "machine": {"cpu_count": 2, "torch_threads": 2, "environment": {"MALLOC_TRIM_THRESHOLD_": "65536"}}}
    shared, trim = host_notes(probe, 2)
    assert shared.startswith("2 Dask workers share host h (2 cores)") and "oversubscribe" in shared
    assert "MALLOC_TRIM_THRESHOLD_=65536" in trim and "--no-nanny" in trim
    probe["machine"]["environment"] = {"OMP_NUM_THREADS": "1"}
    assert host_notes(probe, 1) == []


# --- Dask, on a LocalCluster over loopback: worker processes with one thread each ---


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    environment = dict(os.environ)  # the nannies, here in this process, export their workers' variables
    try:
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as local:
            yield local
    finally:
        os.environ.clear()
        os.environ.update(environment)


@pytest.fixture
def cluster(local_cluster):
    """The cluster, and a deadline: a run that waits forever on a lost worker fails instead of hanging."""

    def expired(signum, frame):
        raise TimeoutError("the Dask run took over 90 s: is it waiting for a worker that is gone?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(90)
    try:
        yield local_cluster
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.timing
def test_dask_gives_the_same_cases_and_statuses_as_in_process(cluster, tmp_path):
    code_here, here = run_cli(tmp_path, *SUITE, "--no-calibration", name="here.json")
    code_dask, there = run_cli(tmp_path, *SUITE, "--executor", "dask", "--scheduler", cluster.scheduler_address, name="dask.json")
    assert code_here == code_dask == 1  # always-fails is an error row on both
    assert outcomes(there) == outcomes(here)
    assert {status for _, status in outcomes(there)} == {"ok", "skipped", "error"}
    assert there["complete"] is True
    executor = there["executor"]
    workers = {w["address"] for w in executor["workers"]}
    assert executor["name"] == "dask" and executor["scheduler"] == cluster.scheduler_address and len(workers) == 2
    for case in there["cases"]:
        assert case["host"] == socket.gethostname() and case["worker"] in workers
    assert set(executor["workers_used"]) <= workers
    # calibrated once on the one host, and each ok case divided by its host's score
    host = there["machine"]["hosts"][socket.gethostname()]
    assert sorted(host["workers"]) == sorted(workers) and host["calibration"]["score"] > 0
    assert isinstance(host["environment"], dict)  # the worker's allocator and thread-pool variables
    assert there["machine"]["calibration"] == host["calibration"]
    for case in there["cases"]:
        if case["status"] == "ok":
            summary = case["summary"]
            assert summary["relative_updates_per_s"] == pytest.approx(
                summary["median_updates_per_s"] / host["calibration"]["score"]
            )
    failed = next(c for c in there["cases"] if c["status"] == "error")
    assert "this strategy always fails" in failed["reason"] and "Traceback" in failed["traceback"]


def test_a_scheduler_file_works_and_ctrl_c_keeps_finished_cases(cluster, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": cluster.scheduler_address}))
    executor_plugins.INTERRUPT_AFTER = 1
    code, document = run_cli(tmp_path, *SUITE, "--executor", "dask", "--scheduler", str(scheduler_file), "--no-calibration")
    assert code == 130
    assert len(document["cases"]) == 1 and document["complete"] is False
    assert document["executor"]["scheduler"] == cluster.scheduler_address


@pytest.mark.timing
def test_a_worker_lost_mid_case_is_one_error_row_and_the_others_finish(cluster, tmp_path):
    # Planned last, so no case is left to hand out when its worker dies: only the periodic liveness check sees it.
    code, document = run_cli(
        tmp_path,
        "-d",
        TINY,
        "-s",
        "reference",
        "-s",
        "vectorized",
        "-s",
        "reference[lr=0.001]",
        "-s",
        "ends-its-process",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--repeats",
        "1",
        "--executor",
        "dask",
        "--scheduler",
        cluster.scheduler_address,
        "--no-calibration",
    )
    assert code == 1
    statuses = {c["strategy"]["label"]: c["status"] for c in document["cases"]}
    assert statuses == {"ends-its-process": "error", "reference": "ok", "vectorized": "ok", "reference[lr=0.001]": "ok"}
    lost = next(c for c in document["cases"] if c["status"] == "error")
    assert lost["reason"].startswith("worker lost: the Dask worker tcp://127.0.0.1:")
    assert lost["worker"] in lost["reason"] and document["complete"] is True


def test_a_killed_worker_or_a_failed_task_becomes_an_error_row_naming_the_worker(fresh_pm):
    pytest.importorskip("distributed")
    from distributed.scheduler import KilledWorker

    from mfbench.plugin.registry import collect
    from mfbench.plugins.executors.dask import DaskExecutor
    from mfbench.run.plan import RunConfig, plan

    config = RunConfig(epochs=1, repeats=1)
    case = plan(collect(fresh_pm), [TINY], ["dot"], ["reference"], ["cpu"], config)[0]
    job = mfbench.Job(fresh_pm, [case], config)
    executor = DaskExecutor(scheduler="tcp://127.0.0.1:1")
    executor.hostnames["tcp://10.0.0.7:4000"] = "node7"

    def future(status, exc=None):
        return types.SimpleNamespace(status=status, exception=lambda: exc, traceback=lambda: None)

    killed = KilledWorker("k", types.SimpleNamespace(address="tcp://10.0.0.7:4000"), 3)
    record = executor._record(future("error", killed), case, "tcp://10.0.0.7:4000", job)
    assert record["status"] == "error" and record["host"] == "node7" and record["worker"] == "tcp://10.0.0.7:4000"
    assert record["reason"].startswith("worker lost: the Dask worker tcp://10.0.0.7:4000 on node7 died")
    assert "KilledWorker" in record["reason"] and record["id"] == case.id and record["summary"] == {}

    record = executor._record(future("error", ImportError("no module named x")), case, "tcp://10.0.0.7:4000", job)
    assert record["reason"] == "ImportError on the Dask worker: no module named x" and "ImportError" in record["traceback"]
    assert executor._record(future("cancelled"), case, "tcp://10.0.0.7:4000", job)["reason"].endswith("cancelled")
