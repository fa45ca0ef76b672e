"""The HTML report: self-contained, answers first, every section, and it renders in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mfbench.cli import main
from mfbench.report.compare import compare_documents
from mfbench.report.html_compare import render_comparison_report
from mfbench.report.html_report import answers, render_report

ROOT = Path(__file__).resolve().parents[1]
# A run written by an earlier mfbench (two-way split, a suite-wide target): the page must read it,
# and its ALS and hogwild reached the target, which the assertions below rely on.
QUICK = ROOT / "tests" / "fixtures" / "quick-2026-11-28.json"
DISTRIBUTED = ROOT / "results" / "distributed-cpu-2core.json"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def quick() -> dict:
    return json.loads(QUICK.read_text())


def test_the_page_fetches_nothing(quick):
    text = render_report(quick)
    assert not re.search(r"""(src|href)\s*=""", text)  # no scripts, styles or images from anywhere
    assert "<link" not in text and "url(" not in text and "@import" not in text
    assert "default-src 'none'" in text  # and the browser is told to refuse any fetch


def test_the_answer_comes_first_and_names_the_fastest_to_target(quick):
    text = render_report(quick)
    assert text.index('id="answer"') < text.index('id="table"') < text.index('id="charts"')
    lines = answers(quick["cases"], 0.575)
    lowrank = next(line for line in lines if "lowrank" in line)
    assert "time to 0.575: als reached it first" in lowrank and "one seed, so no uncertainty" in lowrank
    sprand = next(line for line in lines if "sprand" in line)
    assert "no strategy reached it" in sprand
    untargeted = json.loads(json.dumps(quick["cases"]))
    for case in untargeted:
        (case.get("summary") or {}).pop("target_rmse", None)
    assert any("sprand" in line and "throughput: fastest numba at" in line for line in answers(untargeted, None))


def test_every_section_is_there(quick):
    text = render_report(quick)
    for anchor in ("answer", "table", "charts", "problems", "machine"):
        assert f'id="{anchor}"' in text
    assert text.count('<svg class="chart"') == 5  # per workload: RMSE and throughput; time-to-target where reached
    assert "cuda: 20 cases skipped" in text and "train RMSE grew from 5.287" in text
    assert text.count('<tr class="detail" hidden>') == 20  # each shown case's parameters, a click away
    assert "profile-score" not in text


def test_implicit_objectives_stay_out_of_the_rmse_chart(quick):
    text = render_report(quick)
    rmse_chart = text.split('aria-label="held-out RMSE against')[1].split("</svg>")[0]
    assert "implicit-als" not in rmse_chart
    assert "Left out of the RMSE chart (implicit-feedback objective" in text


PROFILE = {
    "tau_max": 4.0,
    "workloads": ["lowrank / biased / cpu", "sprand / dot / cpu"],
    "left_out": [],
    "strategies": [
        {"strategy": "als", "score": 1.0, "ratios": {"lowrank / biased / cpu": 1.0, "sprand / dot / cpu": 1.0}, "reached": 2},
        {
            "strategy": "hogwild",
            "score": 0.31,
            "ratios": {"lowrank / biased / cpu": 2.1, "sprand / dot / cpu": "inf"},
            "reached": 1,
        },
    ],
    "rule": "ratio = time-to-target / best time-to-target on the workload",
}


def test_a_profile_score_is_shown_when_the_results_carry_one(quick):
    text = render_report({**quick, "profile": PROFILE})
    section = text.split('id="profile-score"')[1].split("</section>")[0]
    assert "hogwild" in section and "0.310" in section and "not reached" in section and "2/2" in section
    assert section.count('<svg class="chart"') == 2  # scores and rho(tau)
    assert text.index('id="answer"') < text.index('id="profile-score"') < text.index('id="table"')
    plain = render_report({**quick, "profile": {"scores": {"als": 0.9, "numba": 0.4}, "tau_max": 4}})
    section = plain.split('id="profile-score"')[1].split("</section>")[0]
    assert "als" in section and "0.9" in section and "tau_max" in section


def test_scaling_is_drawn_where_a_run_measured_it():
    text = render_report(json.loads(DISTRIBUTED.read_text()))
    assert 'id="scaling"' in text and "scaling efficiency" in text


def test_a_comparison_page(quick):
    text = render_comparison_report(quick, quick, compare_documents(quick, quick), ("a.json", "b.json"))
    assert "mfbench compare: a.json → b.json" in text and 'id="answer"' in text and '<svg class="chart"' in text


def test_the_commands_write_pages(tmp_path, capsys):
    assert main(["report", str(QUICK), "--html", str(tmp_path / "r.html")]) == 0
    assert main(["compare", str(QUICK), str(QUICK), "--html", str(tmp_path / "c.html")]) == 0
    tiny = "sprand[n_users=60,n_items=50,density=0.1]"
    assert (
        main(
            [
                "run",
                "-d",
                tiny,
                "-s",
                "vectorized",
                "--device",
                "cpu",
                "--epochs",
                "1",
                "--repeats",
                "1",
                "-q",
                "--no-calibration",
                "-o",
                str(tmp_path / "run.json"),
                "--html",
                str(tmp_path / "run.html"),
            ]
        )
        == 0
    )
    for name in ("r.html", "c.html", "run.html"):
        assert (tmp_path / name).read_text().startswith("<!DOCTYPE html>")
    assert f"html: {tmp_path / 'run.html'}" in capsys.readouterr().out


def browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def render_in_browser(page: Path, screenshot: Path) -> str:
    """The DOM after the page's scripts ran, and a screenshot of it, from headless Chromium."""
    command = [
        browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,2400",
        f"--screenshot={screenshot}",
        "--dump-dom",
        page.as_uri(),
    ]
    env = {**os.environ, "HOME": str(page.parent)}  # a profile of its own, wherever HOME is
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=True).stdout


@pytest.mark.skipif(browser() is None, reason="needs headless Chromium: apt-get install chromium (.ci/run installs it)")
def test_the_page_renders_in_a_real_browser(quick, tmp_path):
    page = tmp_path / "quick.html"
    page.write_text(render_report(quick), encoding="utf-8")
    dom = render_in_browser(page, tmp_path / "quick.png")
    assert not re.search(r"<html[^>]*data-script-error", dom), dom[:300]
    assert 'data-rendered="5"' in dom  # the script ran to its end and found every chart
    assert (tmp_path / "quick.png").stat().st_size > 20_000


@pytest.mark.skipif(browser() is None, reason="needs headless Chromium: apt-get install chromium (.ci/run installs it)")
def test_the_browser_check_sees_a_script_error(quick, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(render_report(quick).replace("</body>", "<script>undefinedFunction();</script></body>"), encoding="utf-8")
    dom = render_in_browser(page, tmp_path / "broken.png")
    assert re.search(r'<html[^>]*data-script-error="[^"]*undefinedFunction', dom)


def test_each_workload_races_to_its_own_target_when_the_run_has_no_single_one(quick):
    cases = json.loads(json.dumps(quick["cases"]))
    for case in cases:
        if case["status"] == "ok" and case["dataset"]["name"] == "lowrank":
            case["summary"]["target_rmse"] = 0.6
    document = {**quick, "config": {**quick["config"], "target_rmse": "auto"}, "cases": cases}
    text = render_report(document)
    assert "fastest to each workload" in text
    assert "time to 0.6: als reached it first" in text and "target 0.6" in text


def test_the_title_says_whether_a_suite_or_a_selection_ran(quick):
    suite = json.loads(json.dumps(quick))
    suite["suite"]["selection"] = False
    text = render_report(suite)
    assert "<h1>mfbench: suite quick</h1>" in text and "The default:" in text
    selection = json.loads(json.dumps(quick))
    selection["suite"]["selection"] = True
    text = render_report(selection)
    assert "<h1>mfbench: a selection, with the settings of suite quick</h1>" in text
    assert "The default:" not in text  # the suite's description is of groups that did not run
    older = json.loads(json.dumps(quick))  # written before suite.selection: the command tells
    older["suite"].pop("selection", None)
    older["command"] = ["mfbench", "run", "-s", "numba", "-dsprand"]
    assert "a selection, with the settings of suite quick" in render_report(older)
    older["command"] = ["mfbench", "run", "--suite", "quick"]
    assert "<h1>mfbench: suite quick</h1>" in render_report(older)
