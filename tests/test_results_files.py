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
from mfbench.results import ResultsFile, load_results
from mfbench.schema import results_schema

RESULTS = Path(__file__).parent.parent / "results"


def committed_results() -> list[Path]:
    return [p for p in sorted(RESULTS.glob("*.json")) if json.loads(p.read_text()).get("schema") == "mfbench.results"]


def test_the_schema_ships_in_the_package_and_is_a_valid_schema():
    text = (resources.files("mfbench") / "results.schema.json").read_text(encoding="utf-8")
    jsonschema.Draft202012Validator.check_schema(json.loads(text))
    assert results_schema()["properties"]["schema"] == {"const": "mfbench.results"}


@pytest.mark.parametrize("path", committed_results(), ids=lambda p: p.name)
def test_results_files_written_before_still_load(path):
    assert load_results(path)["cases"]


def sample() -> dict:
    document = json.loads((RESULTS / "quick-cpu-2core.json").read_text())
    document["cases"] = [c for c in document["cases"] if c["repeats"]][:2]
    return document


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["cases"][1]["repeats"][0]["epochs"][2].pop("seconds"), "cases[1].repeats[0].epochs[2].seconds: missing"),
    (lambda d: d["cases"][0]["repeats"][0]["epochs"][0].update(test_rmse="low"),
     'cases[0].repeats[0].epochs[0].test_rmse: "low" is not a number'),
    (lambda d: d["cases"][0].update(status="fine"), "cases[0].status: \"fine\" is not one of 'ok'"),
    (lambda d: d["cases"][0]["summary"].update(updates_per_s=[1]), "cases[0].summary.updates_per_s: [1] is not of type"),
    (lambda d: d["cases"].append(7), "cases[2]: 7 is not of type"),
])
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


@pytest.mark.parametrize("content, words", [
    (b'{"schema": "mfbench.results", "\xff": 1}', r"is not UTF-8 text \(byte 31\)"),
    (b"[" * 100_000, "nested too deeply"),
    (json.dumps({"schema": "mfbench.results", "schema_version": 1, "cases": [], "machine": {"x": [[[[[]]]]] * 1}}).replace(
        "[[[[[]]]]]", "[" * 70 + "]" * 70).encode(), "nested more than 64 levels deep"),
])
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
