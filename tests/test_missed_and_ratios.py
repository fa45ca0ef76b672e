"""Why a case missed its target (still improving or levelled off), and by how much the others were slower."""

from __future__ import annotations

import pytest

from mfbench.report.tablefit import View
from mfbench.report.tables import render_csv, render_table
from mfbench.stats.summary import IMPROVING, LEVELLED, is_reference, repeat_trend, unreached_trend


def epochs(*values, seconds=1.0):
    return [{"epoch": i, "seconds": seconds, "valid_rmse": v, "test_rmse": v} for i, v in enumerate(values)]


def record(strategy, curves, reference=False, dataset="d", seconds=1.0):
    return {
        "id": f"{dataset} / m / {strategy} / cpu",
        "dataset": {"name": dataset, "label": dataset},
        "model": {"name": "m", "label": "m"},
        "strategy": {"name": strategy, "label": strategy, "objective": "rating", "reference": reference},
        "device": "cpu",
        "status": "ok",
        "repeats": [{"repeat": r, "epochs": epochs(*curve, seconds=seconds)} for r, curve in enumerate(curves)],
        "summary": {"median_updates_per_s": 1000.0},
    }


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ((1.0, 0.9, 0.7), IMPROVING),  # 0.2 per epoch; 0.2 short of 0.5: one more epoch, three ran
        ((1.0, 0.9, 0.85, 0.84), LEVELLED),  # 0.01 per epoch; 0.34 short: 34 more epochs
        ((1.0, 0.8, 0.82), LEVELLED),  # got worse at the end
        ((1.0, 0.8, 0.8), LEVELLED),  # flat
        ((0.9,), None),  # one point: no trend
        ((float("nan"), 0.9), None),
    ],
)
def test_a_missed_target_is_improving_only_when_its_last_gain_gets_there_in_as_many_epochs_again(curve, expected):
    assert repeat_trend(epochs(*curve), 0.5) == expected


def test_over_repeats_and_seeds_half_still_improving_counts_as_improving():
    improving, flat = (1.0, 0.9, 0.7), (1.0, 0.8, 0.8)
    assert unreached_trend([record("x", [improving, flat])], 0.5) == IMPROVING
    assert unreached_trend([record("x", [improving, flat]), record("x", [flat])], 0.5) == LEVELLED
    # repeats that reached the target say nothing about why the others missed it
    assert unreached_trend([record("x", [(1.0, 0.4), flat])], 0.5) == LEVELLED
    assert unreached_trend([record("x", [(1.0, 0.4)])], 0.5) is None


def test_the_table_says_why_and_a_narrow_one_says_it_with_a_mark_and_a_legend():
    cases = [record("fast", [(1.0, 0.45)]), record("slow", [(1.0, 0.9, 0.7)]), record("flat", [(1.0, 0.7, 0.7)])]
    wide = render_table(cases, target=0.5)
    assert "not reached (improving)" in wide and "not reached (levelled)" in wide
    narrow = render_table(cases, target=0.5, view=View(width=60))
    assert "not reached ↘" in narrow and "not reached →" in narrow
    assert "↘: still improving when its epochs ran out; →: levelled off above the target" in " ".join(narrow.split())


def test_ratios_to_the_fastest_and_to_the_reference_per_workload():
    cases = [
        record("a", [(1.0, 0.45)]),  # 2 s
        record("ref", [(1.0, 0.9, 0.8, 0.6, 0.45)], reference=True),  # 5 s
        record("b", [(0.4,)]),  # 1 s
        record("c", [(0.9, 0.9)]),  # missed
        record("a", [(0.45,)], dataset="e", seconds=3.0),  # another workload: its own fastest, no reference
    ]
    text = render_table(cases, target=0.5)
    header, _, *lines = text.splitlines()
    assert "vs fastest" in header and "vs reference" in header
    row = {line.split()[2]: line for line in lines if line.startswith("d ")}
    assert "2.00×" in row["a"] and "0.40×" in row["a"]  # 2 s: twice b's 1 s, 0.4 of the reference's 5 s
    assert "1.00×" in row["b"] and "0.20×" in row["b"]
    assert "5.00×" in row["ref"] and "1.00×" in row["ref"]
    assert "×" not in row["c"]
    other = next(line for line in lines if line.startswith("e "))
    assert other.count("×") == 1 and "1.00×" in other  # fastest on its own workload; no reference ran there
    csv = render_csv(cases, target=0.5).splitlines()
    assert "vs fastest" in csv[0] and csv[1].split(",")[csv[0].split(",").index("vs fastest")] == "2.0"


def test_without_a_reference_case_there_is_no_reference_column():
    text = render_table([record("a", [(0.4,)]), record("b", [(0.9, 0.4)])], target=0.5)
    assert "vs fastest" in text and "vs reference" not in text


def test_files_before_the_flag_know_the_built_in_reference_by_name():
    assert is_reference({"name": "reference", "exact": True})
    assert not is_reference({"name": "reference", "exact": True, "reference": False})
    assert not is_reference({"name": "mine", "exact": True})


def test_a_tuned_case_shows_its_time_with_what_tuning_cost():
    tuned = record("a", [(1.0, 0.45)])  # 2 s to the target
    tuned["tuning"] = {"status": "ok", "cost_s": 40.0, "n_trials": 8, "counts": {}}
    untuned = record("b", [(0.4,)])
    header, _, *lines = render_table([tuned, untuned], target=0.5).splitlines()
    assert "time with tuning" in header
    row = next(line for line in lines if " a " in line)
    assert "42" in row.split()  # 2 s to the target + 40 s of tuning
    assert render_csv([tuned, untuned], target=0.5).splitlines()[1].split(",").count("42.0") == 1


def test_the_profile_can_charge_tuning_to_the_strategy():
    from mfbench.stats.performance_profile import performance_profile

    fast, slow = record("fast", [(0.4,)]), record("slow", [(1.0, 0.45)])  # 1 s and 2 s to the target
    for case, seconds, cost in ((fast, 1.0, 100.0), (slow, 2.0, 10.0)):
        case["summary"].update(target_rmse=0.5, time_to_target_s=seconds)
        case["tuning"] = {"status": "ok", "cost_s": cost}
    plain = {s["strategy"]: s for s in performance_profile([fast, slow])["strategies"]}
    charged = performance_profile([fast, slow], with_tuning=True)
    assert plain["fast"]["score"] == 1.0 and plain["slow"]["ratios"]["d / m / cpu"] == 2.0
    by = {s["strategy"]: s for s in charged["strategies"]}
    assert by["slow"]["score"] == 1.0 and by["fast"]["ratios"]["d / m / cpu"] == pytest.approx(101 / 12)
    assert "tuning cost" in charged["rule"] and charged["with_tuning"]
