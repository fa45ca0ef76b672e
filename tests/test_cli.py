"""The command line, driven in-process through mfbench.cli.main."""

from __future__ import annotations

import csv
import io
import json

import pytest

from mfbench.cli import main
from mfbench.plugin.contract_checks import TINY_DATASET as TINY

#: One epoch of one repeat of the reference on TINY, on cpu.
REFERENCE_ONCE = ["-d", TINY, "-s", "reference", "--epochs", "1", "--repeats", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("MFBENCH_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)


def test_list_shows_parts_params_and_plugins(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "sprand" in out and "n_users=1000,n_items=1000,density=0.01" in out
    assert "reference" in out and "lr=1e-06" in out and "exact" in out
    assert "mfbench.plugins.strategies.reference (mfbench" in out


def test_run_prints_lines_then_a_table_and_writes_results(capsys, tmp_path):
    out_path = tmp_path / "r.json"
    code = main(
        [
            "run",
            *REFERENCE_ONCE,
            "--device",
            "cuda:99",
            "-o",
            str(out_path),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "[1/2]" in captured.err and "[2/2]" in captured.err
    for column in ("dataset", "model", "strategy", "device", "status", "updates/s", "spread", "test RMSE"):
        assert column in captured.out
    assert "s/epoch" not in captured.out  # the default columns; --wide shows every one
    assert f"results: {out_path}" in captured.out
    document = json.loads(out_path.read_text())
    assert [c["status"] for c in document["cases"]] == ["ok", "skipped"]
    assert document["machine"]["torch"] and document["config"]["epochs"] == 1

    assert main(["report", str(out_path)]) == 0
    report_out = capsys.readouterr().out
    table = captured.out.split("\nresults:")[0].strip()
    assert report_out.strip() == table
    assert main(["report", str(out_path), "--wide"]) == 0
    wide = capsys.readouterr().out
    for column in ("params", "s/epoch", "setup s", "train RMSE", "peak MB", "note"):
        assert column in wide


def test_default_output_goes_under_dot_mfbench(capsys, tmp_path):
    assert main(["run", *REFERENCE_ONCE, "-q"]) == 0
    files = list((tmp_path / ".mfbench" / "runs").glob("run-*.json"))
    assert len(files) == 1
    assert capsys.readouterr().err == ""


def test_format_option_accepts_tabulate_formats(capsys):
    assert (
        main(
            [
                "run",
                *REFERENCE_ONCE,
                "--format",
                "github",
                "-q",
            ]
        )
        == 0
    )
    assert "| dataset" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "-s", "refrence"], "unknown strategy 'refrence'. Did you mean 'reference'?"),
        (["run", "-m", "dott"], "unknown model 'dott'. Did you mean 'dot'?"),
        (["run", "-d", "nope"], "unknown dataset 'nope'"),
        (["run", "-s", "reference[lx=1]"], "unknown parameter 'lx'"),
        (["run", "-s", "reference[lr=fast]"], "takes a float"),
        (["run", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--epochs", "0"], "--epochs must be at least 1"),
        (["run", "--format", "fancy"], "unknown table format 'fancy'"),
        (["run", "-p", "no_such_plugin_module"], "cannot import plugin module"),
        (["report", "missing.json"], "cannot read results file"),
        (["data", "download", "nothing-like-this"], "unknown download 'nothing-like-this'"),
    ],
)
def test_usage_errors_are_messages_not_tracebacks(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_refuses_a_file_that_is_not_results(capsys, tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert main(["report", str(tmp_path / "x.json")]) == 2
    assert "not an mfbench results file" in capsys.readouterr().err
    (tmp_path / "y.json").write_text("{")
    assert main(["report", str(tmp_path / "y.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_run_exits_1_when_a_case_errors(capsys, tmp_path, monkeypatch):
    (tmp_path / "bad_plugin.py").write_text(
        "import mfbench\n"
        "class Bad(mfbench.Strategy):\n"
        "    name = 'bad'\n"
        "    def setup(self, model, train, device, seed): raise RuntimeError('kaputt')\n"
        "@mfbench.hookimpl\n"
        "def mfbench_register_strategies(register): register(Bad)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(
        [
            "run",
            "-p",
            "bad_plugin",
            "-d",
            TINY,
            "-s",
            "bad",
            "-s",
            "reference",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--repeats",
            "1",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "RuntimeError: kaputt" in captured.err and "1 case(s) ended in error" in captured.err
    assert "reference" in captured.out  # the other case still ran and is in the table


def test_p_module_appears_in_list_and_run(capsys, tmp_path, monkeypatch, write_plugin_module):
    write_plugin_module(tmp_path, "cli_plugin", "from-cli")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "-p", "cli_plugin"]) == 0
    assert "from-cli" in capsys.readouterr().out
    assert (
        main(
            ["run", "-p", "cli_plugin", "-d", TINY, "-s", "from-cli", "--device", "cpu", "--epochs", "1", "--repeats", "1", "-q"]
        )
        == 0
    )
    assert "from-cli" in capsys.readouterr().out


def test_help_documents_the_grammar(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "NAME[param=value,...]" in out and "grid" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


def small_run(tmp_path, name, *extra):
    path = tmp_path / name
    argv = [
        "run",
        "-d",
        TINY,
        "-s",
        "reference",
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--repeats",
        "1",
        "--no-calibration",
        "-q",
        "-o",
        str(path),
        *extra,
    ]
    assert main(argv) == 0
    return path


def test_report_csv_has_raw_numbers_and_target_column(capsys, tmp_path):
    path = small_run(tmp_path, "a.json", "--target-rmse", "100")
    capsys.readouterr()
    assert main(["report", str(path), "--csv"]) == 0
    header, values, *baselines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert "time to 100" in header and "updates/s" in header
    assert [line[header.index("strategy")] for line in baselines] == ["(global mean)", "(biases)"]
    assert all(float(line[header.index("test RMSE")]) > 0 for line in baselines)
    row = dict(zip(header, values, strict=True))
    assert row["dataset"] == TINY
    assert float(row["updates/s"]) > 0 and float(row["time to 100"]) > 0


def test_compare_cli_and_its_gate(capsys, tmp_path):
    base = small_run(tmp_path, "base.json")
    new = small_run(tmp_path, "new.json")
    capsys.readouterr()
    assert main(["compare", str(base), str(new)]) == 0
    assert "reference" in capsys.readouterr().out
    other = small_run(tmp_path, "other.json", "--seed", "5")
    capsys.readouterr()
    assert main(["compare", str(base), str(other)]) == 2  # different data: refused, with the reason
    assert "fingerprint" in capsys.readouterr().err


def test_plot_cli_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="plotting needs the optional matplotlib")
    path = small_run(tmp_path, "p.json")
    assert main(["plot", str(path)]) == 0
    png = path.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_help_states_the_defaults_of_the_suite_it_would_run(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    quick = " ".join(capsys.readouterr().out.split())
    assert "counted epochs per repeat (default 6, the quick suite's; 3 where a suite sets none)" in quick
    assert "default: 0.575 in the quick suite's group(s) that set it, none elsewhere" in quick
    with pytest.raises(SystemExit):
        main(["run", "--suite", "speed", "--help"])
    speed = " ".join(capsys.readouterr().out.split())
    assert "(default 1, the speed suite's; 3 where a suite sets none)" in speed and "default cpu, the speed suite's" in speed


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """``mfbench report FILE | head -1``: the pipe closes under the writer; it stops quietly, as on SIGPIPE.

    The table is made longer than a pipe holds (64 KiB), so the writer is still writing when the
    reader leaves, whatever the scheduling.
    """
    import subprocess
    import sys
    from pathlib import Path

    document = json.loads((Path(__file__).parent / "fixtures" / "quick-2026-11-28.json").read_text())
    document["cases"] = [
        {**case, "id": f"{case['id']} #{n}", "dataset": {**case["dataset"], "label": f"{case['dataset'].get('label')}{n}"}}
        for n in range(40)
        for case in document["cases"]
    ]
    path = tmp_path / "long.json"
    path.write_text(json.dumps(document))
    script = f"{sys.executable} -m mfbench report {path} --wide | head -1"
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {script}"], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("dataset") and done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and done.returncode == 141
