"""The performance-profile score and auto targets, on hand-made results."""

from __future__ import annotations

import json
import math

import pytest

from mfbench.cli import main
from mfbench.stats.performance_profile import performance_profile, rho, score
from mfbench.stats.targets import apply_targets, derive_targets, describe_target


def case(workload: str, strategy: str, seconds: float | None, status: str = "ok", curve=(1.0,), base=None, objective="rating"):
    record = {
        "id": f"{workload} / m / {strategy} / cpu",
        "dataset": {"name": workload, "label": workload},
        "model": {"name": "m", "label": "m"},
        "strategy": {"name": strategy.split("[")[0], "label": strategy, "objective": objective},
        "device": "cpu",
        "status": status,
        "repeats": [
            {
                "repeat": 0,
                "epochs": [
                    {"epoch": e, "seconds": 1.0, "train_rmse": 1.0, "valid_rmse": v, "test_rmse": 9.0}
                    for e, v in enumerate(curve)
                ],
            }
        ],
        "summary": {"target_rmse": 0.9, "time_to_target_s": seconds} if status == "ok" else {},
    }
    if base:
        record["tuning"] = {"status": "ok", "base_label": base}
    return record


CASES = [
    case("A", "x", 10.0),
    case("A", "y", 20.0),
    case("A", "z", None),
    case("B", "x", 30.0),
    case("B", "y", 10.0),
    case("B", "z", 50.0),
    case("C", "x", None),
    case("C", "y", None, status="error"),  # nobody reached C's target
    case("A", "implicit", 1.0, objective="implicit"),
]


def test_ratios_rho_and_the_normalized_area():
    profile = performance_profile(CASES)
    assert profile["workloads"] == ["A / m / cpu", "B / m / cpu"]
    assert profile["left_out"] == ["C / m / cpu"]
    by = {s["strategy"]: s for s in profile["strategies"]}
    assert set(by) == {"x", "y", "z"}  # the implicit objective is not scored
    assert by["x"]["ratios"] == {"A / m / cpu": 1.0, "B / m / cpu": 3.0}
    assert by["y"]["ratios"] == {"A / m / cpu": 2.0, "B / m / cpu": 1.0}
    assert math.isinf(by["z"]["ratios"]["A / m / cpu"]) and by["z"]["ratios"]["B / m / cpu"] == 5.0
    assert by["x"]["score"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert by["y"]["score"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert by["z"]["score"] == 0.0
    assert [s["strategy"] for s in profile["strategies"]] == ["y", "x", "z"]
    workloads = profile["workloads"]
    assert rho(by["x"]["ratios"], workloads, 2.5) == 0.5 and rho(by["x"]["ratios"], workloads, 3.0) == 1.0


def test_the_score_is_the_integral_of_rho():
    ratios = {"a": 1.0, "b": 1.7, "c": 3.2, "d": math.inf}
    steps = 20000
    area = sum(rho(ratios, list(ratios), 1 + 3 * (i + 0.5) / steps) for i in range(steps)) * 3 / steps
    assert score(ratios, list(ratios)) == pytest.approx(area / 3, abs=1e-3)


def test_tuned_cases_are_matched_by_their_label_before_tuning():
    cases = [
        case("A", "x[lr=0.1]", 10.0, base="x"),
        case("B", "x[lr=0.3]", 10.0, base="x"),
        case("A", "y", 20.0),
        case("B", "y", 5.0),
    ]
    by = {s["strategy"]: s for s in performance_profile(cases)["strategies"]}
    assert set(by) == {"x", "y"} and by["x"]["ratios"]["B / m / cpu"] == 2.0


def test_auto_target_is_above_the_median_of_the_cases_bests_so_no_case_sets_it_alone():
    cases = [
        case("A", "x", None, curve=(1.0, 0.8, 0.85)),
        case("A", "y", None, curve=(0.95, 0.9)),
        case("A", "w", None, curve=(0.99, 0.97, 0.96)),
        case("A", "z", None, status="diverged", curve=(0.1,)),
    ]
    cases[0]["repeats"].append(
        {"repeat": 1, "epochs": [{"epoch": 0, "seconds": 1.0, "valid_rmse": 0.9}]}
    )  # x: median of 0.8 and 0.9
    (target,) = derive_targets(cases, slack=0.01)
    # bests: x 0.85, y 0.9, w 0.96 (z diverged: not a participant); their median is y's
    assert target["median_best_valid_rmse"] == pytest.approx(0.9) and target["target_rmse"] == pytest.approx(0.909)
    assert list(target["case_bests"]) == [cases[0]["id"], cases[1]["id"], cases[2]["id"]]
    assert not target["from_tuned"]
    apply_targets(cases, [target])
    assert cases[0]["summary"]["time_to_target_s"] == 1.5  # x: its repeats reach it after 2 s and 1 s
    assert cases[1]["summary"]["time_to_target_s"] == 2.0  # y: the median case reaches it at its best epoch
    assert cases[2]["summary"]["time_to_target_s"] is None  # w: its best 0.96 misses 0.909
    assert derive_targets(cases) == derive_targets(cases)


def test_auto_target_of_two_cases_is_their_midpoint_and_both_rules_describe_themselves():
    cases = [case("A", "x", None, curve=(0.9, 0.8)), case("A", "y", None, curve=(0.95, 0.9))]
    (target,) = derive_targets(cases, slack=0.0)
    assert target["target_rmse"] == pytest.approx(0.85)
    assert "median best validation RMSE 0.8500 of its 2 untuned case(s)" in describe_target(target)
    old = {"target_rmse": 0.816, "best_valid_rmse": 0.8, "slack": 0.02, "from_case": "c1", "from_tuned": True}
    assert "best validation RMSE 0.8000 of tuned case c1" in describe_target(old)


def test_report_and_plot_profile(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": "mfbench.results", "schema_version": 1, "complete": True, "cases": CASES}))
    assert main(["report", "--profile", str(path)]) == 0
    out = capsys.readouterr().out
    assert "score (tau<=4)" in out and "left out" in out and "C / m / cpu" in out
    assert main(["plot", "--profile", str(path), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 5000
