"""plot: the two-panel PNG, which repeat is drawn, what is left out, and the optional matplotlib."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from mfbench import MfbenchError
from mfbench.report.colors import strategy_color
from mfbench.report.plot import (
    build_figure,
    case_labels,
    median_repeat,
    plot_results,
    rmse_curve,
    throughput_scale,
    wrap_label,
    wrap_title,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib (pip install 'mfbench[plot]')")


def make_case(strategy="sgd", params=None, *, status="ok", seconds=((1.0, 1.0),), rmse=None, dataset="planted", device="cpu"):
    rmse = rmse or [[1.0 - 0.1 * e for e in range(len(s))] for s in seconds]
    repeats = [
        {
            "repeat": r,
            "epochs": [
                {"epoch": e, "seconds": t, "test_rmse": v, "train_rmse": v}
                for e, (t, v) in enumerate(zip(times, values, strict=True))
            ],
        }
        for r, (times, values) in enumerate(zip(seconds, rmse, strict=True))
    ]
    return {
        "id": f"{dataset} / dot / {strategy} / {device}",
        "dataset": {"name": dataset, "label": dataset, "params": {}, "train_nnz": 1000},
        "model": {"name": "dot", "label": "dot", "params": {}},
        "strategy": {"name": strategy, "params": params if params is not None else {"lr": 0.1}},
        "device": device,
        "status": status,
        "reason": "",
        "repeats": repeats if status == "ok" else [],
    }


def make_doc(*cases, target_rmse=None):
    return {
        "schema": "mfbench.results",
        "schema_version": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "machine": {"cpu_model": "test cpu"},
        "config": {"target_rmse": target_rmse},
        "cases": list(cases),
    }


@needs_matplotlib
def test_writes_a_png_and_returns_its_path(tmp_path):
    doc = make_doc(make_case("a"), make_case("b", seconds=((0.5, 0.5),)))
    path = plot_results(doc, tmp_path / "deeper" / "plot.png", target=0.95)
    assert path == tmp_path / "deeper" / "plot.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


@needs_matplotlib
def test_panels_curves_target_and_left_out_cases():
    doc = make_doc(
        make_case("a"),
        make_case("b"),
        make_case("c", status="skipped"),
        make_case("d", status="error"),
        make_case("e", status="skipped"),
    )
    figure = build_figure(doc, target=0.95)
    curves, bars = figure.axes[0], figure.axes[1]
    labels = [line.get_label() for line in curves.get_lines()]
    assert labels == ["a[lr=0.1] @ cpu", "b[lr=0.1] @ cpu", "target 0.95"]
    assert curves.get_xscale() == "log"
    assert len(bars.patches) == 2  # one bar per plotted case
    title = figure.get_suptitle()
    assert "2 case(s) plotted; 3 left out (1 error, 2 skipped)" in title


@needs_matplotlib
def test_target_defaults_to_the_files_target():
    figure = build_figure(make_doc(make_case(), target_rmse=0.9))
    assert "target 0.9" in [line.get_label() for line in figure.axes[0].get_lines()]
    figure = build_figure(make_doc(make_case()))
    assert not any(line.get_label().startswith("target") for line in figure.axes[0].get_lines())


@needs_matplotlib
def test_throughput_axis_turns_logarithmic_for_a_wide_range():
    assert throughput_scale([1000.0, 5000.0]) == "linear"
    assert throughput_scale([1000.0, 1_000_000.0]) == "log"
    doc = make_doc(make_case("slow", seconds=((10.0, 10.0),)), make_case("fast", seconds=((0.001, 0.001),)))
    assert build_figure(doc).axes[1].get_xscale() == "log"


def test_the_median_repeat_by_training_time_is_drawn():
    case = make_case(seconds=((3.0, 3.0), (1.0, 1.0), (2.0, 2.0)), rmse=[[0.3, 0.3], [0.1, 0.1], [0.2, 0.2]])
    assert median_repeat(case)["repeat"] == 2
    assert rmse_curve(case) == ([2.0, 4.0], [0.2, 0.2])


def test_curves_accumulate_time_and_skip_non_finite_values():
    case = make_case(seconds=((1.0, 2.0, 3.0),), rmse=[[0.9, "nan", 0.7]])
    assert rmse_curve(case) == ([1.0, 6.0], [0.9, 0.7])


def test_labels_name_dataset_and_model_only_where_they_vary():
    same = [make_case("a"), make_case("b", device="cuda")]
    assert case_labels(same) == ["a[lr=0.1] @ cpu", "b[lr=0.1] @ cuda"]
    mixed = [make_case("a", dataset="one"), make_case("a", dataset="two")]
    assert case_labels(mixed) == ["one / a[lr=0.1] @ cpu", "two / a[lr=0.1] @ cpu"]


def test_long_labels_break_between_parameters_only():
    label = "minibatch[optimizer=sgd,batch_size=4096,lr=0.015,reg=0.02] @ cpu"
    lines = wrap_label(label, 25).split("\n")
    assert len(lines) > 1
    assert "".join(lines) == label
    assert all(line.endswith(("[", ",")) for line in lines[:-1])


def test_nothing_to_plot_is_an_error():
    with pytest.raises(MfbenchError, match=r"no case ended ok \(1 error, 1 skipped\)"):
        build_figure(make_doc(make_case(status="skipped"), make_case(status="error")))


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    if HAVE_MATPLOTLIB:
        build_figure(make_doc(make_case()))  # matplotlib and its submodules are now cached
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MfbenchError, match=r"plotting needs matplotlib: pip install 'mfbench\[plot\]'"):
        plot_results(make_doc(make_case()), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@needs_matplotlib
def test_plots_a_real_run(fresh_pm, run_cases, tmp_path):
    records = run_cases(fresh_pm, ["reference"], epochs=2, repeats=2)
    doc = make_doc(*records)
    curves = build_figure(doc).axes[0]
    assert [len(line.get_xdata()) for line in curves.get_lines()] == [2]
    path = plot_results(doc, tmp_path / "run.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


@needs_matplotlib
def test_one_row_of_panels_per_workload_and_one_colour_per_strategy():
    doc = make_doc(
        make_case("als", dataset="one"),
        make_case("numba", dataset="one"),
        make_case("numba", dataset="two"),
        make_case("als", dataset="two"),
    )
    figure = build_figure(doc, target=0.95)
    assert len(figure.axes) == 4  # per workload: curves, then throughput
    colors = {}
    for curves in (figure.axes[0], figure.axes[2]):
        for line in curves.get_lines():
            if not line.get_label().startswith("target"):
                colors.setdefault(line.get_label(), set()).add(line.get_color())
    assert colors == {"als[lr=0.1] @ cpu": {strategy_color("als")}, "numba[lr=0.1] @ cpu": {strategy_color("numba")}}
    assert "target 0.95" in [line.get_label() for line in figure.axes[2].get_lines()]  # drawn in every panel


@needs_matplotlib
def test_implicit_objectives_stay_out_of_the_rmse_panel():
    implicit = make_case("implicit-als")
    implicit["strategy"]["objective"] = "implicit"
    figure = build_figure(make_doc(make_case("als"), implicit))
    curves, bars = figure.axes[0], figure.axes[1]
    assert [line.get_label() for line in curves.get_lines()] == ["als[lr=0.1] @ cpu"]
    assert "left out (implicit objective" in curves.get_title()
    assert len(bars.patches) == 2  # its throughput is still comparable


@needs_matplotlib
def test_value_labels_sit_inside_the_axes():
    doc = make_doc(make_case("slow", seconds=((10.0, 10.0),)), make_case("fast", seconds=((0.001, 0.002),)))
    bars = build_figure(doc).axes[1]
    low, high = bars.get_xlim()
    assert bars.texts and all(low <= text.get_position()[0] and text.get_position()[0] * 2 < high for text in bars.texts)


def test_strategy_colours_are_fixed_for_built_ins_and_stable_for_others():
    from mfbench.report.colors import KNOWN, PALETTE

    assert len({strategy_color(name) for name in KNOWN}) == len(KNOWN)
    assert strategy_color("a-third-party-one") == strategy_color("a-third-party-one") in PALETTE
    assert strategy_color("reference") == PALETTE[0]


@needs_matplotlib
def test_each_workload_draws_its_own_target_when_the_run_has_none_single():
    one, two = make_case("a", dataset="one"), make_case("a", dataset="two")
    one["summary"], two["summary"] = {"target_rmse": 0.9}, {"target_rmse": 0.8}
    figure = build_figure(make_doc(one, two, target_rmse="auto"))
    assert "target 0.9" in [line.get_label() for line in figure.axes[0].get_lines()]
    assert "target 0.8" in [line.get_label() for line in figure.axes[2].get_lines()]


def test_titles_wrap_so_no_line_runs_off_the_figure():
    name = "file[path=/data/exports/" + "x" * 80 + "/ratings.tsv,user=customer,item=product] / biased / cpu"
    lines = wrap_title(name, 52).split("\n")
    assert all(len(line) <= 52 for line in lines) and "".join(lines) == name
    assert wrap_title("short: one line", 52) == "short: one line"
    two = wrap_title("first line\nsecond; line", 52)
    assert two == "first line\nsecond; line"


@needs_matplotlib
def test_a_long_workload_name_is_whole_in_the_panel_titles():
    dataset = "file[path=/data/exports/" + "x" * 80 + "/ratings.tsv,user=customer,item=product]"
    figure = build_figure(make_doc(make_case("als", dataset=dataset)))
    title = figure.axes[0].get_title()
    assert all(len(line) <= 52 for line in title.split("\n")[:-1])
    assert "".join(title.split("\n")[:-1]).startswith(dataset)
