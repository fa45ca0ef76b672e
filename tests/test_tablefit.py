"""Tables that fit a terminal: default columns, --columns, --wide, shortened labels, collapsed skipped rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mfbench.cli import main
from mfbench.errors import SelectionError
from mfbench.report.compare import compare_documents
from mfbench.report.comparison import render_comparison
from mfbench.report.tablefit import WIDE, Table, View, render, shorten_middle
from mfbench.report.tables import render_csv, render_table

ROOT = Path(__file__).resolve().parents[1]
# A run written by an earlier mfbench (two-way split, a suite-wide target): the page must read it,
# and its ALS and hogwild reached the target, which the assertions below rely on.
QUICK = ROOT / "tests" / "fixtures" / "quick-2026-11-28.json"


@pytest.fixture(scope="module")
def quick() -> dict:
    return json.loads(QUICK.read_text())


def widths(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_shorten_middle_keeps_the_name_and_the_last_parameters():
    label = "lowrank[n_users=100000,n_items=10000,nnz=1000000,rank=20]"
    short = shorten_middle(label, 24)
    assert len(short) == 24 and short.startswith("lowrank[n_") and short.endswith("rank=20]") and "…" in short
    assert shorten_middle("sprand", 24) == "sprand"
    assert len(shorten_middle("averyveryverylongname", 9)) == 9


def test_skipped_rows_with_one_reason_collapse_into_a_line_per_reason():
    table = Table(
        headers=["strategy", "device", "status"],
        rows=[["a", "cpu", "ok"], ["a", "cuda", "skipped"], ["b", "cuda", "skipped"], ["c", "cpu", "skipped"]],
        skipped=[None, "no GPU", "no GPU", "install c"],
        groups=["cpu", "cuda", "cuda", "cpu"],
    )
    text = render(table, "simple", View())
    assert "cuda: 2 cases skipped — no GPU" in text
    assert "install c" not in text and text.count("skipped") == 2  # a lone skipped row stays a row
    assert render(table, "simple", WIDE).count("skipped") == 3


def test_default_columns_fit_a_110_column_terminal(quick):
    wide = render_table(quick["cases"])
    fitted = render_table(quick["cases"], view=View(width=110))
    assert widths(wide) > 200 and widths(fitted) <= 110
    assert len(fitted.splitlines()) < 32 < len(wide.splitlines()) + 5
    assert "cuda: 20 cases skipped — CUDA is not available" in fitted
    header = fitted.splitlines()[0].split()
    assert header[:3] == ["dataset", "model", "strategy"] and "s/epoch" not in header and "peak" not in header
    assert "left out to fit 110 characters: spread" in fitted  # said, not silently dropped
    assert "[1] train RMSE grew from 5.287" in fitted  # notes become footnotes


def test_a_wide_terminal_shows_the_default_columns_without_shortening(quick):
    text = render_table(quick["cases"], view=View(width=400))
    header = text.splitlines()[0].split()
    assert "spread" in header and "note" in header and "device" in header and "setup" not in header
    assert "biased[n_factors=5]" in text and "left out" not in text


@pytest.mark.parametrize("width", [80, 120])
def test_every_line_of_the_table_fits_the_width(quick, width):
    text = render_table(quick["cases"], view=View(width=width))
    table = text.split("\n\n")[0]
    assert widths(table) <= width
    assert all(len(line) <= width for line in text.splitlines())


def test_columns_are_chosen_by_key_or_header_and_checked(quick):
    text = render_table(quick["cases"], view=View(columns=("strategy", "time-to-target", "setup s")))
    assert text.splitlines()[0].split() == ["strategy", "time", "to", "0.575", "setup", "s"]
    with pytest.raises(SelectionError, match="unknown column 'updates'.*Did you mean 'updates/s'"):
        render_table(quick["cases"], view=View(columns=("updates",)))


def test_export_formats_keep_every_column_and_row(quick):
    text = render_table(quick["cases"], "github", view=View(width=80))
    assert len(text.splitlines()) == 2 + len(quick["cases"])
    assert "peak MB" in text.splitlines()[0] and "biased\\[n\\_factors=5\\]" in text  # escaped as Markdown text


def test_spread_is_one_quantity_in_the_table_and_the_csv(quick):
    case = next(c for c in quick["cases"] if c["status"] == "ok")
    row = next(csv.DictReader(io.StringIO(render_csv([case]))))
    assert float(row["spread"]) == pytest.approx(case["summary"]["relative_iqr"] / 2)
    shown = render_table([case]).splitlines()[2]
    assert f"±{float(row['spread']) * 100:.0f}%" in shown


def test_compare_fits_and_collapses_too(quick):
    comparison = compare_documents(quick, quick)
    text = render_comparison(comparison, view=View(width=100))
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "cuda: 20 cases skipped" in text
    assert "base upd/s" not in text and "base upd/s" in render_comparison(comparison)


def test_cli_takes_columns_and_wide(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    assert main(["report", str(QUICK), "--columns", "strategy,status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["strategy", "status"]
    assert main(["report", str(QUICK), "--wide"]) == 0
    out = capsys.readouterr().out.split("\n\nanswer:")[0]  # the table, then the answer lines
    assert len(out.splitlines()) == 2 + 40 and widths(out) > 200
    assert main(["report", str(QUICK), "--columns", "nope"]) == 2
    assert "unknown column 'nope'" in capsys.readouterr().err
