"""Results files: the published schema, the loader's one-line errors, and the files' mode."""

from __future__ import annotations

import json
import os
import stat
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from mfbench.cli import main
from mfbench.errors import MfbenchError
from mfbench.results.files import ResultsFile, load_results
from mfbench.results.schema import results_schema

RESULTS = Path(__file__).parent.parent / "results"


def committed_results() -> list[Path]:
    return [p for p in sorted(RESULTS.glob("*.json")) if json.loads(p.read_text()).get("schema") == "mfbench.results"]


def test_the_schema_ships_in_the_package_and_is_a_valid_schema():
    text = (resources.files("mfbench.results") / "results.schema.json").read_text(encoding="utf-8")
    jsonschema.Draft202012Validator.check_schema(json.loads(text))
    assert results_schema()["properties"]["schema"] == {"const": "mfbench.results"}


def test_the_schema_allows_exactly_the_statuses_mfbench_defines():
    from mfbench.results.statuses import FAILED_STATUSES, STATUSES, TIMED_STATUSES

    assert tuple(results_schema()["$defs"]["case"]["properties"]["status"]["enum"]) == STATUSES
    assert set(FAILED_STATUSES) < set(STATUSES) and set(TIMED_STATUSES) < set(STATUSES)


@pytest.mark.parametrize("path", committed_results(), ids=lambda p: p.name)
def test_results_files_written_before_still_load(path):
    assert load_results(path)["cases"]


def sample() -> dict:
    document = json.loads((RESULTS / "quick-cpu-2core.json").read_text())
    document["cases"] = [c for c in document["cases"] if c["repeats"]][:2]
    return document


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["cases"][1]["repeats"][0]["epochs"][2].pop("seconds"), "cases[1].repeats[0].epochs[2].seconds: missing"),
        (
            lambda d: d["cases"][0]["repeats"][0]["epochs"][0].update(test_rmse="low"),
            'cases[0].repeats[0].epochs[0].test_rmse: "low" is not a number',
        ),
        (lambda d: d["cases"][0].update(status="fine"), "cases[0].status: \"fine\" is not one of 'ok'"),
        (lambda d: d["cases"][0]["summary"].update(updates_per_s=[1]), "cases[0].summary.updates_per_s: [1] is not of type"),
        (lambda d: d["cases"].append(7), "cases[2]: 7 is not of type"),
    ],
)
def test_a_malformed_file_is_one_line_naming_the_file_and_the_place(tmp_path, capsys, mutate, message):
    document = sample()
    mutate(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(MfbenchError, match="bad.json is not a valid results file: ") as raised:
        load_results(path)
    assert message in str(raised.value)
    for command in (["report", str(path)], ["compare", str(path), str(path)], ["plot", str(path), "-o", str(tmp_path / "p.png")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_other_properties_are_allowed_for_later_versions(tmp_path):
    document = sample()
    document["tuning"] = {"trials": 3}
    document["cases"][0]["tuning"] = {}
    document["cases"][0]["repeats"][0]["epochs"][0]["valid_rmse"] = 0.9
    document["cases"][0]["dataset"]["valid_nnz"] = 10
    path = tmp_path / "later.json"
    path.write_text(json.dumps(document))
    assert load_results(path)["tuning"] == {"trials": 3}


@pytest.mark.parametrize(
    "content, words",
    [
        (b'{"schema": "mfbench.results", "\xff": 1}', r"is not UTF-8 text \(byte 31\)"),
        (b"[" * 100_000, "nested too deeply"),
        (
            json.dumps({"schema": "mfbench.results", "schema_version": 1, "cases": [], "machine": {"x": [[[[[]]]]] * 1}})
            .replace("[[[[[]]]]]", "[" * 70 + "]" * 70)
            .encode(),
            "nested more than 64 levels deep",
        ),
    ],
)
def test_non_utf8_and_deep_nesting_are_messages(tmp_path, content, words):
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    with pytest.raises(MfbenchError, match=words):
        load_results(path)


def test_a_folder_is_not_a_results_file(tmp_path):
    with pytest.raises(MfbenchError, match="is a folder"):
        load_results(tmp_path)


def test_plot_output_is_checked_before_plotting(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(sample()))
    (tmp_path / "out.png").mkdir()
    assert main(["plot", str(path), "-o", str(tmp_path / "out.png")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_results_files_are_created_with_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        ResultsFile(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640
    old = os.umask(0o002)
    try:
        ResultsFile(tmp_path / "s.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o664


# --- the source revision ---


def test_the_revision_is_read_from_git_status_and_dirty_means_tracked_changes():
    from mfbench.results.revision import describe, parse_status

    clean = "# branch.oid 0123456789abcdef0123456789abcdef01234567\n# branch.head main\n"
    assert parse_status(clean) == {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False}
    dirty = parse_status(clean + "1 .M N... 100644 100644 100644 a b mfbench/cli.py\n")
    assert dirty["dirty"] is True and describe(dirty) == "0123456789ab+dirty"
    assert parse_status("# branch.oid (initial)\n# branch.head main\n") is None
    assert describe(None) == "unknown"


@pytest.mark.parametrize("failure", ["no git", "hangs", "not a checkout", "installed"])
def test_without_a_usable_checkout_the_revision_is_null_never_an_error(monkeypatch, failure):
    import subprocess

    from mfbench.results import revision

    def run(*args, **kwargs):
        if failure == "no git":
            raise FileNotFoundError("git")
        if failure == "hangs":
            raise subprocess.TimeoutExpired("git", kwargs["timeout"])
        return subprocess.CompletedProcess(args, 128, "", "fatal: not a git repository")

    monkeypatch.setattr(revision.subprocess, "run", run)
    if failure == "installed":
        monkeypatch.setattr(revision, "PACKAGE_DIR", Path("/usr/lib/python3/site-packages/mfbench"))
    revision.source_revision.cache_clear()
    try:
        assert revision.source_revision() is None
    finally:
        revision.source_revision.cache_clear()


def test_results_record_the_revision_and_compare_shows_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setattr("mfbench.run.execute.source_revision", lambda: {"commit": "a" * 40, "dirty": True})
    path = tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                "-d",
                "sprand[n_users=30,n_items=20,density=0.2]",
                "-s",
                "reference",
                "--device",
                "cpu",
                "--epochs",
                "1",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--no-calibration",
                "--executor",
                "inprocess",
                "-o",
                str(path),
                "-q",
            ]
        )
        == 0
    )
    document = load_results(path)
    assert document["source_revision"] == {"commit": "a" * 40, "dirty": True}
    old = sample()
    old.pop("source_revision", None)  # as written before the field existed: still valid, shown as unknown
    (tmp_path / "old.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "old.json"), str(path)]) == 0
    assert "source: base mfbench 0.1.0 at unknown, new mfbench 0.1.0 at aaaaaaaaaaaa+dirty" in capsys.readouterr().out
    document["source_revision"] = None  # outside a checkout
    (tmp_path / "none.json").write_text(json.dumps(document))
    assert load_results(tmp_path / "none.json")["source_revision"] is None


@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_a_results_file_that_cannot_be_saved_stops_the_run_and_loses_nothing(executor, tmp_path, monkeypatch, capsys):
    """The disk fills after two cases (a fake: the write raises ENOSPC from then on, as a full disk
    or a folder turned read-only does): the run stops with one error line, the file keeps the cases
    saved before, and every finished case is in the fallback file the message names."""
    import errno
    import re

    import mfbench.results.files as files

    real_write, real_append = files.atomic_write_json, files.ResultsFile._append
    out = tmp_path / "r.json"
    full = errno.ENOSPC, "No space left on device"

    def write(path, document):  # the whole document: fails once it would hold a third case
        if Path(path) == out and len(document["cases"]) > 2:
            raise OSError(*full)
        return real_write(path, document)

    def append(self, case, index):  # the journal: fails from the third case on
        if index >= 2:
            raise OSError(*full)
        return real_append(self, case, index)

    monkeypatch.setattr(files, "atomic_write_json", write)
    monkeypatch.setattr(files.ResultsFile, "_append", append)
    monkeypatch.setattr(files, "RETRY_AFTER_S", 0.0)
    strategies = ["vectorized", "als", "vectorized[lr=0.02]", "als[reg=0.5]"]
    argv = ["run", "-d", "sprand[n_users=40,n_items=30,density=0.2]", *(a for s in strategies for a in ("-s", s))]
    argv += ["--epochs", "1", "--repeats", "1", "--warmup", "0", "--no-calibration", "-q", "-o", str(out), "--executor", executor]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot save the results file" in err and "No space left on device" in err, err
    saved = load_results(out)
    assert len(saved["cases"]) == 2 and saved["complete"] is False  # the file as it was before the failed write
    rescued = Path(re.search(r"The 3 finished case\(s\) are in (\S+);", err).group(1))
    try:
        kept = load_results(rescued)
        assert [c["id"] for c in kept["cases"][:2]] == [c["id"] for c in saved["cases"]] and len(kept["cases"]) == 3
    finally:
        rescued.unlink()


def journal_run(tmp_path, count):
    """A ResultsFile that got ``count`` cases and was then killed (never finished)."""
    template = json.loads((RESULTS / "quick-cpu-2core.json").read_text())["cases"][0]
    path = tmp_path / "r.json"
    results = ResultsFile(path, {"selections": []})
    for index in range(count):
        results.add({**template, "id": f"case {index}"})
    return path, results


def test_a_killed_run_leaves_every_case_in_the_file_or_its_journal(tmp_path):
    path, _ = journal_run(tmp_path, 21)
    in_document = len(json.loads(path.read_text())["cases"])
    assert 0 < in_document < 21 and (tmp_path / "r.json.journal").exists()  # the journal holds the rest
    assert [c["id"] for c in load_results(path)["cases"]] == [f"case {i}" for i in range(21)]


def test_a_line_cut_short_by_the_kill_is_left_out(tmp_path):
    path, _ = journal_run(tmp_path, 21)
    journal = tmp_path / "r.json.journal"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    assert [c["id"] for c in load_results(path)["cases"]] == [f"case {i}" for i in range(20)]


def test_a_kill_between_writing_the_file_and_emptying_the_journal_counts_no_case_twice(tmp_path):
    path, results = journal_run(tmp_path, 21)
    stale = (tmp_path / "r.json.journal").read_text()
    results.save()  # the document catches up and the journal is emptied ...
    (tmp_path / "r.json.journal").write_text(stale)  # ... unless the kill came between the two
    assert [c["id"] for c in load_results(path)["cases"]] == [f"case {i}" for i in range(21)]


def test_the_bytes_written_grow_with_the_cases_not_their_square(tmp_path, monkeypatch):
    """Before, every case rewrote the whole file: 400 cases wrote ~200x the final file's size."""
    import mfbench.results.files as files

    written = []
    real = files.atomic_write_json

    def counting(path, document):
        real(path, document)
        written.append(Path(path).stat().st_size)

    monkeypatch.setattr(files, "atomic_write_json", counting)
    path, results = journal_run(tmp_path, 400)
    results.finish()
    final = path.stat().st_size
    assert sum(written) < 5 * final, (sum(written) / final, len(written))
    assert not (tmp_path / "r.json.journal").exists() and len(load_results(path)["cases"]) == 400
