"""compare: matching two results files, significance, ratios and the exit code, on hand-made documents."""

from __future__ import annotations

import copy
import json
import math

import pytest

from mfbench import MfbenchError, SelectionError
from mfbench.report.compare import (
    EXIT_NOISY,
    FinalRmse,
    case_throughput,
    compare_documents,
    quality_verdict,
)
from mfbench.report.comparison import render_comparison
from mfbench.stats.verdict import FASTER, NOISY, SAME, SLOWER

UPDATES = 1000


def make_case(
    strategy: str = "sgd",
    params: dict | None = None,
    *,
    device: str = "cpu",
    seconds: list[list[float]] | None = None,
    rmse: list[list[float]] | None = None,
    status: str = "ok",
    fingerprint: str | None = "fp-1",
    dataset_params: dict | None = None,
    warmup: list[float] | None = None,
    relative: float | None = None,
) -> dict:
    """A case record as the runner writes it: ``seconds[r][e]`` and ``rmse[r][e]`` per repeat and epoch."""
    seconds = seconds if seconds is not None else [[1.0, 1.0, 1.0]]
    rmse = rmse if rmse is not None else [[1.0 - 0.1 * e for e in range(len(s))] for s in seconds]
    repeats = []
    for r, (times, values) in enumerate(zip(seconds, rmse, strict=True)):
        epochs = [
            {"epoch": e, "seconds": t, "train_rmse": v, "test_rmse": v}
            for e, (t, v) in enumerate(zip(times, values, strict=True))
        ]
        if warmup:
            epochs = [{"epoch": -1, "seconds": warmup[r], "train_rmse": 9.0, "test_rmse": 9.0, "warmup": True}] + epochs
        repeats.append({"repeat": r, "setup_s": 0.01, "epochs": epochs})
    dataset = {
        "name": "planted",
        "label": "planted",
        "params": dataset_params or {"n": 10},
        "train_nnz": UPDATES,
        "split_seed": 0,
        "test_fraction": 0.1,
    }
    if fingerprint is not None:
        dataset["fingerprint"] = fingerprint
    params = params if params is not None else {"lr": 0.05}
    case = {
        "id": f"planted / dot / {strategy} / {device}",
        "dataset": dataset,
        "model": {"name": "dot", "label": "dot", "params": {"n_factors": 4}},
        "strategy": {"name": strategy, "params": params, "exact": False},
        "device": device,
        "status": status,
        "reason": "" if status == "ok" else f"it {status}",
        "repeats": repeats if status == "ok" else [],
        "summary": {},
    }
    if relative is not None:
        all_seconds = sorted(t for times in seconds for t in times)
        median = all_seconds[len(all_seconds) // 2]
        case["summary"] = {"median_updates_per_s": UPDATES / median, "relative_updates_per_s": relative}
    return case


def make_doc(*cases: dict, target_rmse: float | None = None, cpu: str = "cpu-A") -> dict:
    return {
        "schema": "mfbench.results",
        "schema_version": 1,
        "machine": {"cpu_model": cpu},
        "config": {"epochs": 3, "repeats": 1, "target_rmse": target_rmse},
        "cases": list(cases),
    }


def only_row(comparison):
    assert len(comparison.rows) == 1
    return comparison.rows[0]


# -- matching -----------------------------------------------------------------


def test_cases_match_by_identity_not_by_order():
    base = make_doc(make_case("a", seconds=[[1.0, 1.0, 1.0]]), make_case("b", seconds=[[2.0, 2.0, 2.0]]))
    new = make_doc(make_case("b", seconds=[[1.0, 1.0, 1.0]]), make_case("a", seconds=[[1.0, 1.0, 1.0]]))
    comparison = compare_documents(base, new)
    ratios = {row.strategy.split("[")[0]: row.speed_ratio for row in comparison.rows}
    assert ratios == {"a": pytest.approx(1.0), "b": pytest.approx(2.0)}
    assert all(row.where == "both" for row in comparison.rows)


def test_params_and_device_are_part_of_the_identity():
    base = make_doc(make_case(params={"lr": 0.05}), make_case(params={"lr": 0.1}), make_case(device="cuda"))
    new = make_doc(make_case(params={"lr": 0.1}), make_case(params={"lr": 0.2}))
    comparison = compare_documents(base, new)
    where = {(row.strategy, row.device): row.where for row in comparison.rows}
    assert where == {
        ("sgd[lr=0.05]", "cpu"): "only in base",
        ("sgd[lr=0.1]", "cpu"): "both",
        ("sgd[lr=0.05]", "cuda"): "only in base",
        ("sgd[lr=0.2]", "cpu"): "only in new",
    }


def test_an_int_and_an_equal_float_parameter_match_but_a_bool_does_not():
    base = make_doc(make_case(params={"lr": 1}), make_case(params={"flag": True}))
    new = make_doc(make_case(params={"lr": 1.0}), make_case(params={"flag": 1}))
    where = sorted(row.where for row in compare_documents(base, new).rows)
    assert where == ["both", "only in base", "only in new"]


def test_cases_in_one_file_only_are_listed_and_only_a_missing_base_case_fails():
    base = make_doc(make_case("gone"), make_case("kept"))
    new = make_doc(make_case("kept"), make_case("added"))
    comparison = compare_documents(base, new, fail_threshold=10.0)
    assert [row.where for row in comparison.rows] == ["only in base", "both", "only in new"]
    assert comparison.exit_code == 1
    assert [row.strategy for row in comparison.tripped] == ["gone[lr=0.05]"]
    text = render_comparison(comparison)
    assert "only in base" in text and "only in new" in text
    assert "1 case(s) matched, 1 only in base, 1 only in new" in text
    assert "FAIL: missing in new (give --allow-missing to accept)" in text
    gone = comparison.rows[0]
    assert gone.speed_base is not None and gone.speed_ratio is None  # its own figures are still shown
    assert compare_documents(base, new, fail_threshold=10.0, allow_missing=True).exit_code == 0
    assert compare_documents(base, new).exit_code == 0  # without a threshold nothing fails


def test_a_case_skipped_in_new_or_an_unfinished_new_run_fails_unless_allowed():
    base = make_doc(make_case("kept"), make_case("lost"))
    new = make_doc(make_case("kept"), make_case("lost", status="skipped"))
    comparison = compare_documents(base, new, fail_threshold=10.0)
    assert comparison.exit_code == 1 and "skipped in new, ok in base" in render_comparison(comparison)
    assert compare_documents(base, new, fail_threshold=10.0, allow_missing=True).exit_code == 0
    unfinished = {**make_doc(make_case("kept"), make_case("lost")), "complete": False}
    comparison = compare_documents(base, unfinished, fail_threshold=10.0)
    assert comparison.exit_code == 1 and comparison.tripped == []
    assert "the new file is from a run that did not finish" in render_comparison(comparison)
    assert compare_documents(base, unfinished, fail_threshold=10.0, allow_missing=True).exit_code == 0


def test_a_case_twice_in_one_file_is_refused_by_name():
    doc = make_doc(make_case("twice"), make_case("twice"))
    with pytest.raises(MfbenchError, match="twice.*compare needs each case once"):
        compare_documents(doc, make_doc(make_case("twice")))


def test_different_data_under_the_same_name_is_refused():
    base = make_doc(make_case("a", fingerprint="aaaa"))
    new = make_doc(make_case("a", fingerprint="bbbb"))
    with pytest.raises(MfbenchError) as info:
        compare_documents(base, new)
    message = str(info.value)
    assert "planted / dot / a / cpu" in message and "aaaa" in message and "bbbb" in message
    assert "data differ" in message


def test_the_refusal_names_a_different_seed_as_the_cause():
    base = make_doc(make_case(fingerprint="aaaa"))
    changed = make_case(fingerprint="bbbb")
    changed["dataset"]["split_seed"] = 1
    with pytest.raises(MfbenchError, match="seed 0 in base, 1 in new"):
        compare_documents(base, make_doc(changed))


def test_a_missing_fingerprint_is_not_a_mismatch():
    base = make_doc(make_case(status="skipped", fingerprint=None))
    new = make_doc(make_case(fingerprint="cccc"))
    assert only_row(compare_documents(base, new)).status == "skipped -> ok"


# -- figures and ratios -----------------------------------------------------------


def test_ratios_are_new_over_base():
    base = make_doc(make_case(seconds=[[2.0, 2.0, 2.0]], rmse=[[1.2, 1.1, 1.0]]))
    new = make_doc(make_case(seconds=[[1.0, 1.0, 1.0]], rmse=[[1.0, 0.9, 0.8]]))
    row = only_row(compare_documents(base, new))
    assert row.speed_base.median == pytest.approx(500.0)
    assert row.speed_new.median == pytest.approx(1000.0)
    assert row.speed_ratio == pytest.approx(2.0)
    assert row.rmse_ratio == pytest.approx(0.8)
    assert (row.speed, row.quality) == ("faster", "better")


def test_warmup_epochs_are_not_counted_in_throughput():
    case = make_case(seconds=[[1.0, 1.0, 1.0]], warmup=[50.0])
    assert case_throughput(case).median == pytest.approx(UPDATES / 1.0)
    assert case_throughput(case).n == 3


def test_time_to_target_with_a_given_target():
    base = make_doc(make_case(seconds=[[1.0, 1.0, 1.0]], rmse=[[0.9, 0.7, 0.5]]))
    new = make_doc(make_case(seconds=[[1.0, 1.0, 1.0]], rmse=[[0.9, 0.6, 0.5]]))
    comparison = compare_documents(base, new, target=0.65)
    row = only_row(comparison)
    assert (row.ttt_base, row.ttt_new) == (3.0, 2.0)
    assert row.ttt_ratio == pytest.approx(2 / 3)
    assert "TTT ratio" in render_comparison(comparison)
    assert "(given)" in render_comparison(comparison)


def test_time_to_target_comes_from_the_files_when_both_have_the_same_target():
    case = make_case(seconds=[[1.0, 1.0, 1.0]], rmse=[[0.9, 0.8, 0.7]])
    comparison = compare_documents(make_doc(case, target_rmse=0.5), make_doc(case, target_rmse=0.5))
    assert comparison.target == 0.5
    row = only_row(comparison)
    assert row.ttt_base is None and row.ttt_ratio is None
    assert "not reached" in render_comparison(comparison)


def test_no_time_to_target_when_the_files_disagree_on_the_target():
    case = make_case()
    comparison = compare_documents(make_doc(case, target_rmse=0.5), make_doc(case, target_rmse=0.6))
    assert comparison.target is None
    text = render_comparison(comparison)
    assert "TTT" not in text
    assert "different target RMSEs (0.5 in base, 0.6 in new)" in text


def test_statuses_are_shown_side_by_side_without_ratios():
    base = make_doc(make_case())
    new = make_doc(make_case(status="diverged"))
    row = only_row(compare_documents(base, new))
    assert row.status == "ok -> diverged"
    assert row.speed_ratio is None and row.rmse_ratio is None and row.speed == ""


# -- significance -----------------------------------------------------------------


def test_a_small_change_inside_wide_spreads_is_too_noisy_to_tell():
    # base per-epoch times 0.8..1.25 s, new 5% faster: the interval spans both sides of the margin
    base = make_doc(make_case(seconds=[[1.25, 1.1, 1.0, 0.9, 0.8]]))
    new = make_doc(make_case(seconds=[[1.2, 1.05, 0.95, 0.85, 0.76]]))
    row = only_row(compare_documents(base, new))
    assert row.speed_ratio > 1.04
    assert row.speed_interval.low < 0.95 and row.speed_interval.high > 1.05
    assert row.speed == NOISY
    assert "mfbench ab" in render_comparison(compare_documents(base, new))  # the note says what to do


def test_one_stalled_epoch_does_not_hide_a_clear_slowdown():
    # a stalled base epoch (10 s) does not move the medians the interval is built from
    base = make_doc(make_case(seconds=[[1.0, 1.0, 1.01, 0.99, 10.0, 1.0, 1.02, 0.98, 1.0]]))
    new = make_doc(make_case(seconds=[[1.3, 1.31, 1.29, 1.3, 1.3, 1.32, 1.28, 1.3, 1.3]]))
    row = only_row(compare_documents(base, new))
    assert row.speed_base.min < row.speed_new.median < row.speed_base.max
    assert row.speed == SLOWER and row.speed_interval.high < 1.0


def test_the_interval_is_symmetric_between_base_and_new():
    a = make_doc(make_case(seconds=[[1.0, 1.1, 0.9], [1.05, 0.95, 1.0]]))
    b = make_doc(make_case(seconds=[[1.5, 1.6, 1.4], [1.55, 1.45, 1.5]]))
    forward, backward = only_row(compare_documents(a, b)), only_row(compare_documents(b, a))
    assert forward.speed == SLOWER and backward.speed == FASTER
    assert forward.speed_interval.estimate == pytest.approx(1 / backward.speed_interval.estimate)


def test_repeats_that_disagree_widen_the_interval_even_when_their_epochs_agree():
    steady = make_doc(make_case(seconds=[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
    drifting = make_doc(make_case(seconds=[[0.8, 0.8, 0.8], [1.0, 1.0, 1.0], [1.25, 1.25, 1.25]]))
    row = only_row(compare_documents(steady, drifting))
    assert row.speed_interval.low <= 0.85 and row.speed_interval.high >= 1.2
    assert row.speed == NOISY


def with_calibration(doc: dict, scores: list[float]) -> dict:
    """``scores``: the calibration before the run (one timing) and after each case, in order."""
    doc = copy.deepcopy(doc)
    doc["machine"]["calibration"] = {"score": scores[0], "seconds": 1.0, "seconds_all": [1.0]}
    for case, score in zip(doc["cases"], scores[1:], strict=True):
        case["calibration_after"] = {"score": score}
    return doc


def test_the_machines_drift_seen_by_the_calibration_widens_the_interval():
    base, new = slower_pair(1.15)  # 13% fewer updates/s, tight spreads
    assert only_row(compare_documents(base, new, fail_threshold=10)).speed == SLOWER
    calm = compare_documents(with_calibration(base, [100.0, 100.0]), with_calibration(new, [100.0, 100.0]), fail_threshold=10)
    assert only_row(calm).speed == SLOWER and calm.drift == pytest.approx(1.0)
    # the machine ran 20% slower during the new run: the slowdown may be the machine's
    loaded = compare_documents(with_calibration(base, [100.0, 100.0]), with_calibration(new, [80.0, 80.0]), fail_threshold=10)
    row = only_row(loaded)
    assert loaded.drift == pytest.approx(1.25)
    assert row.speed == NOISY and loaded.exit_code == EXIT_NOISY
    text = render_comparison(loaded)
    assert "widened x1.250" in text and f"(exit {EXIT_NOISY})" in text


def test_rmse_within_one_percent_is_unchanged_beyond_it_is_worse():
    base = FinalRmse(1.0, 1.0, 1.0)
    assert quality_verdict(base, FinalRmse(1.009, 1.009, 1.009)) == "~"
    assert quality_verdict(base, FinalRmse(1.02, 1.02, 1.02)) == "worse"
    assert quality_verdict(base, FinalRmse(0.98, 0.98, 0.98)) == "better"
    assert quality_verdict(base, FinalRmse(math.nan, math.nan, math.nan)) == "worse"


def test_rmse_within_the_spread_across_repeats_is_unchanged():
    base = make_doc(make_case(seconds=[[1.0], [1.0], [1.0]], rmse=[[0.90], [1.00], [1.10]]))
    new = make_doc(make_case(seconds=[[1.0], [1.0], [1.0]], rmse=[[1.05], [1.05], [1.05]]))
    row = only_row(compare_documents(base, new))
    assert row.rmse_ratio == pytest.approx(1.05)
    assert row.quality == "~"


# -- exit code -----------------------------------------------------------------


def slower_pair(factor: float):
    """Base at 1 s per epoch, new at ``factor`` s: tight spreads, so the change is significant."""
    base = make_doc(make_case(seconds=[[1.0, 1.01, 0.99, 1.0, 1.0]]))
    new = make_doc(make_case(seconds=[[factor, factor * 1.01, factor * 0.99, factor, factor]]))
    return base, new


def test_without_a_threshold_the_exit_code_is_zero_whatever_happened():
    base, new = slower_pair(3.0)
    comparison = compare_documents(base, new)
    assert only_row(comparison).speed == "slower"
    assert comparison.exit_code == 0 and comparison.tripped == []
    assert "fail threshold" not in render_comparison(comparison)


def test_a_significant_slowdown_over_the_threshold_fails_and_says_which_row():
    base, new = slower_pair(2.0)  # half the updates/s: a 50% slowdown
    comparison = compare_documents(base, new, fail_threshold=10)
    assert comparison.exit_code == 1
    text = render_comparison(comparison)
    assert "FAIL: 50.0% slower > 10%" in text
    assert "fail threshold 10% tripped by 1 case(s):" in text
    assert "planted / dot / sgd[lr=0.05] / cpu: 50.0% slower > 10%" in text


def test_a_slowdown_under_the_threshold_passes():
    base, new = slower_pair(2.0)
    comparison = compare_documents(base, new, fail_threshold=60)
    assert comparison.exit_code == 0
    assert "fail threshold 60%: not tripped." in render_comparison(comparison)


def test_a_slowdown_too_noisy_to_rule_out_has_its_own_exit_code():
    base = make_doc(make_case(seconds=[[0.7, 0.9, 1.0, 1.1, 1.3]]))
    new = make_doc(make_case(seconds=[[0.8, 1.0, 1.2, 1.3, 1.5]]))
    comparison = compare_documents(base, new, fail_threshold=5)
    row = only_row(comparison)
    assert row.speed_ratio < 0.9 and row.speed == NOISY and row.trips == []
    assert comparison.exit_code == EXIT_NOISY
    assert "too noisy to rule it out" in render_comparison(comparison)
    assert compare_documents(base, new).exit_code == 0  # without a threshold, a report only


def test_no_change_when_the_interval_is_inside_the_margin():
    base, new = slower_pair(1.0)
    comparison = compare_documents(base, new, fail_threshold=5)
    assert only_row(comparison).speed == SAME and comparison.exit_code == 0


def test_a_speedup_never_fails():
    base, new = slower_pair(0.5)
    comparison = compare_documents(base, new, fail_threshold=0)
    assert only_row(comparison).speed == "faster"
    assert comparison.exit_code == 0


def test_worse_rmse_over_the_threshold_fails():
    base = make_doc(make_case(rmse=[[1.0, 0.9, 0.80]]))
    new = make_doc(make_case(rmse=[[1.0, 0.9, 0.84]]))
    assert compare_documents(base, new, fail_threshold=10).exit_code == 0
    comparison = compare_documents(base, new, fail_threshold=2)
    assert comparison.exit_code == 1
    assert "RMSE 5.0% worse > 2%" in render_comparison(comparison)


def test_a_case_that_now_fails_trips_the_threshold():
    base = make_doc(make_case())
    new = make_doc(make_case(status="error"))
    assert compare_documents(base, new).exit_code == 0
    comparison = compare_documents(base, new, fail_threshold=50)
    assert comparison.exit_code == 1
    assert "ended error (ok in base)" in render_comparison(comparison)


def test_a_negative_threshold_is_refused():
    doc = make_doc(make_case())
    with pytest.raises(MfbenchError, match="percentage"):
        compare_documents(doc, doc, fail_threshold=-1)


# -- normalize -----------------------------------------------------------------


def test_normalize_divides_by_each_machines_calibration_score():
    # the new machine is twice as fast and so is the strategy on it: relative throughput unchanged
    base = make_doc(make_case(seconds=[[2.0, 2.0, 2.0]], relative=5.0), cpu="slow cpu")
    new = make_doc(make_case(seconds=[[1.0, 1.0, 1.0]], relative=5.0), cpu="fast cpu")
    raw = compare_documents(base, new)
    assert only_row(raw).speed_ratio == pytest.approx(2.0)
    assert "machines differ (slow cpu vs fast cpu)" in render_comparison(raw)
    normalized = compare_documents(base, new, normalize=True)
    row = only_row(normalized)
    assert row.speed_ratio == pytest.approx(1.0)
    assert row.speed_base.median == pytest.approx(5.0)
    assert row.speed == SAME
    text = render_comparison(normalized)
    assert "rel. upd/s" in text and "machines differ" not in text


def test_normalize_without_relative_throughput_is_an_error_naming_the_case():
    base = make_doc(make_case(relative=1.0))
    new = make_doc(make_case())
    with pytest.raises(MfbenchError, match=r"planted / dot / sgd / cpu.*new file has no relative_updates_per_s"):
        compare_documents(base, new, normalize=True)


# -- rendering and a real run -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["simple", "github", "tsv", "html"])
def test_renders_in_tabulate_formats(fmt):
    base, new = slower_pair(2.0)
    text = render_comparison(compare_documents(base, new), fmt, footer=False)
    assert "slower" in text and "ratio" in text
    assert "matched" not in text


def test_an_unknown_format_is_refused():
    doc = make_doc(make_case())
    with pytest.raises(SelectionError, match="table format"):
        render_comparison(compare_documents(doc, doc), "no-such-format")


def test_a_real_run_compared_with_itself_is_unchanged(fresh_pm, run_cases):
    records = run_cases(fresh_pm, ["reference"], epochs=2, repeats=2)
    doc = make_doc(*records)
    comparison = compare_documents(doc, copy.deepcopy(doc), fail_threshold=50)
    row = only_row(comparison)
    assert row.where == "both" and row.status == "ok"
    # the interval holds 1 whatever the machine's noise: never slower or faster (how wide it is, is the machine's)
    assert row.speed_ratio == pytest.approx(1.0) and row.speed in (SAME, NOISY)
    assert row.speed_interval.low <= 1.0 <= row.speed_interval.high
    assert row.rmse_ratio == pytest.approx(1.0) and row.quality == "~"
    assert comparison.exit_code in (0, EXIT_NOISY) and comparison.tripped == []


def test_github_format_is_markdown_with_the_outcome_first():
    base, new = slower_pair(2.0)
    text = render_comparison(compare_documents(base, new, fail_threshold=10), "github")
    first, _, rest = text.partition("\n")
    assert first.startswith("**mfbench compare: FAILED**") and "1 slower" in first
    assert "| dataset" in rest and "|---" in rest.replace(":", "-")
    assert "- fail threshold 10% tripped by 1 case(s):" in rest
    # Labels are escaped as Markdown text: the brackets and ">" render as written.
    assert "  - planted / dot / sgd\\[lr=0.05\\] / cpu: 50.0% slower &gt; 10%" in rest
    passed = render_comparison(compare_documents(*slower_pair(1.0), fail_threshold=10), "github")
    assert passed.startswith("**mfbench compare: passed** (threshold 10%): 1 no change")


def test_the_command_line_fails_on_a_missing_case_unless_allowed(tmp_path, capsys):
    from mfbench.cli import main

    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(json.dumps(make_doc(make_case("kept"), make_case("gone"))))
    new.write_text(json.dumps(make_doc(make_case("kept"))))
    assert main(["compare", str(base), str(new), "--fail-threshold", "10"]) == 1
    assert "missing in new" in capsys.readouterr().out
    assert main(["compare", str(base), str(new), "--fail-threshold", "10", "--allow-missing"]) == 0


def test_two_runs_with_derived_targets_compare_time_to_target_per_case(matrix_files):
    """Before: config.target_rmse 'auto' was taken for a number (ValueError: could not convert 'auto')."""
    from mfbench.report.compare import PER_CASE
    from mfbench.results.files import load_results

    document = load_results(matrix_files["every status"])
    assert document["config"]["target_rmse"] == "auto"
    comparison = compare_documents(document, document)
    assert comparison.target is None and comparison.target_source == PER_CASE and comparison.timed
    timed = [row for row in comparison.rows if row.ttt_base is not None]
    assert timed and all(row.ttt_ratio in (1.0, None) for row in timed)
    assert "TTT ratio" in render_comparison(comparison)


def test_a_case_whose_other_side_derived_no_target_has_no_time_to_target(matrix_files):
    """Both runs ran with --target-rmse auto, but in one a case derived no target (none of its
    seeds ended ok): its row has no TTT, and nothing fails on formatting the missing target."""
    from mfbench.results.files import load_results

    base = load_results(matrix_files["every status"])
    new = copy.deepcopy(base)
    case_id = next(c["id"] for c in new["cases"] if (c.get("summary") or {}).get("target_rmse") is not None)
    for case in new["cases"]:
        if case["id"] == case_id:
            case["summary"].pop("target_rmse", None)
    comparison = compare_documents(base, new)
    row = next(r for r in comparison.rows if r.base is not None and r.base["id"] == case_id)
    assert row.ttt_base is None and row.ttt_new is None
    render_comparison(comparison)
