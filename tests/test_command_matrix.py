"""Every command that reads results files, with every documented option, on every committed file
under results/ and on files this suite writes itself (tests/conftest.py ``matrix_files``: two seeds,
auto targets, every status, a partial run, hostile labels): each ends with a documented exit code and
an error line, never a traceback.

``main`` runs in this process, so an exception that would print a traceback fails the test with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfbench.cli import main
from mfbench.results.statuses import STATUSES

RESULTS = Path(__file__).parent.parent / "results"
COMMITTED = sorted(RESULTS.glob("*.json"))

#: Each command's documented options, one combination each ({out}: a path in the test's folder).
OPTIONS = {
    "report": [
        [],
        ["--wide"],
        ["--csv"],
        ["--format", "github"],
        ["--format", "latex"],
        ["--format", "tsv"],
        ["--profile"],
        ["--profile", "--format", "github"],
        ["--target-rmse", "0.9"],
        ["--html", "{out}/report.html"],
        ["--columns", "dataset,strategy,status,test-rmse"],
    ],
    "compare": [
        [],
        ["--wide"],
        ["--format", "github"],
        ["--normalize"],
        ["--fail-threshold", "10"],
        ["--fail-threshold", "10", "--allow-missing"],
        ["--min-change", "3"],
        ["--target-rmse", "0.9"],
        ["--html", "{out}/compare.html"],
        ["--columns", "dataset,strategy,speed"],
    ],
    "plot": [["-o", "{out}/plot.png"], ["--profile", "-o", "{out}/profile.png"], ["--target-rmse", "0.9", "-o", "{out}/t.png"]],
}

#: On every committed file: each command once, the paths that read the most of a file.
ON_COMMITTED = [
    ["report"],
    ["report", "--csv"],
    ["report", "--profile"],
    ["compare", "--fail-threshold", "10", "--format", "github"],
    ["plot", "--profile", "-o", "{out}/profile.png"],
]

#: Exit codes each command documents: compare's gate 1 (tripped) and 3 (too noisy to tell); 2 for an
#: error said in one line (not a results file, nothing to score).
EXITS = {"report": {0, 2}, "compare": {0, 1, 2, 3}, "plot": {0, 2}}


def command_line(command: str, path: Path, options: list[str], out: Path) -> list[str]:
    files = [str(path), str(path)] if command == "compare" else [str(path)]
    return [command, *files, *(o.replace("{out}", str(out)) for o in options)]


def check(argv: list[str], capsys) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code in EXITS[argv[0]], (argv, code, captured.err)
    if code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mfbench: error: "), (argv, captured.err)
    assert "Traceback" not in captured.out + captured.err


MATRIX = [(command, options) for command, combos in OPTIONS.items() for options in combos]


@pytest.mark.parametrize("which", ["every status", "partial"])
@pytest.mark.parametrize(("command", "options"), MATRIX, ids=[" ".join([c, *o]) for c, o in MATRIX])
def test_every_option_on_files_the_suite_writes(which, command, options, matrix_files, tmp_path, capsys):
    check(command_line(command, matrix_files[which], options, tmp_path), capsys)


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_every_command_on_every_committed_file(path, tmp_path, capsys):
    for command in ON_COMMITTED:
        check(command_line(command[0], path, command[1:], tmp_path), capsys)


def test_the_written_files_hold_every_status(matrix_files):
    import torch

    statuses = {case["status"] for case in json.loads(matrix_files["every status"].read_text())["cases"]}
    expected = set(STATUSES) - ({"skipped"} if torch.cuda.is_available() else set())
    assert statuses >= expected


def test_the_committed_files_are_found():
    """An empty glob would leave the matrix above with nothing to walk, silently."""
    assert RESULTS / "quick-cpu-2core.json" in COMMITTED and len(COMMITTED) >= 20


UNWRITABLE = [
    ("a folder", lambda tmp: tmp, "is a folder"),
    ("under a file", lambda tmp: (tmp / "file").touch() or tmp / "file" / "out.x", "cannot create the folder"),
]
if Path("/proc/self").is_dir():  # a folder nobody can create files in, root included
    UNWRITABLE.append(("in /proc", lambda tmp: Path("/proc/mfbench-out.x"), "cannot be written"))


@pytest.mark.parametrize(("where", "make", "says"), UNWRITABLE, ids=[u[0] for u in UNWRITABLE])
@pytest.mark.parametrize(
    "command",
    [
        ["run", "-d", "sprand[n_users=40,n_items=30,density=0.2]", "-s", "vectorized", "-o", "{out}", "--no-calibration", "-q"],
        ["run", "-d", "sprand[n_users=40,n_items=30,density=0.2]", "-s", "vectorized", "-o", "{tmp}/r.json", "--html", "{out}"],
        ["report", "{every}", "--html", "{out}"],
        ["compare", "{every}", "{every}", "--html", "{out}"],
        ["plot", "{every}", "-o", "{out}"],
        ["plot", "{every}", "--profile", "--target-rmse", "1.5", "-o", "{out}"],
    ],
    ids=["run -o", "run --html", "report --html", "compare --html", "plot -o", "plot --profile -o"],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_work(command, where, make, says, matrix_files, tmp_path, capsys):
    out = make(tmp_path)
    argv = [
        a.replace("{out}", str(out)).replace("{tmp}", str(tmp_path)).replace("{every}", str(matrix_files["every status"]))
        for a in command
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not (tmp_path / "r.json").exists(), "the run started"


@pytest.mark.parametrize("command", [["report"], ["compare"], ["plot"], ["run", "--resume", "-s", "vectorized", "-o"]])
def test_a_number_past_pythons_digit_limit_is_an_error_line(command, matrix_files, tmp_path, capsys):
    """json.loads refuses an integer of over 4,300 digits with a ValueError of its own."""
    path = tmp_path / "digits.json"
    path.write_text(matrix_files["every status"].read_text().replace('"repeats": 1', '"repeats": ' + "9" * 5000, 1))
    assert "9" * 5000 in path.read_text()
    argv = [*command, str(path)] + ([str(path)] if command == ["compare"] else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mfbench: error: {path} holds a number too long to read") and err.count("\n") == 1, err


def test_every_results_table_column_is_one_columns_knows(matrix_files):
    """``run --columns`` is checked against RESULT_COLUMNS before the run: it must name them all."""
    from mfbench.report.tablefit import column_key
    from mfbench.report.tables import RESULT_COLUMNS, results_table, table_shape
    from mfbench.results.files import load_results

    seen = set()
    for path in [*COMMITTED, *matrix_files.values()]:
        document = json.loads(path.read_text())
        if document.get("schema") != "mfbench.results":
            continue
        cases = load_results(path)["cases"]
        for hosts in (False, True):
            seen |= {column_key(h) for h in results_table(cases, table_shape(cases, None, hosts)).headers}
    # a metric the run named adds its own "test <metric>" column (test-ndcg@10), named after the run's metrics
    seen = {key for key in seen if not (key.startswith("test-") and key != "test-rmse")}
    assert seen <= set(RESULT_COLUMNS), seen - set(RESULT_COLUMNS)
    assert {"time-to-target", "seeds", "group", "reached", "scaling"} <= seen  # the files cover the optional ones


def test_an_unknown_column_is_refused_before_the_run_and_a_missing_one_left_out(tmp_path, capsys):
    data = [
        "run",
        "-d",
        "sprand[n_users=40,n_items=30,density=0.2]",
        "-s",
        "vectorized",
        "--epochs",
        "1",
        "--no-calibration",
        "-q",
    ]
    assert main([*data, "--columns", "strategy,nosuch", "-o", str(tmp_path / "a.json")]) == 2
    assert "unknown column 'nosuch'" in capsys.readouterr().err and not (tmp_path / "a.json").exists()
    assert main([*data, "--columns", "strategy,scaling,test-rmse", "-o", str(tmp_path / "b.json")]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["strategy", "test", "RMSE"]  # no scaling runs here: that column is left out
