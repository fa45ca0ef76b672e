"""Seeds as an axis: every case once per seed, each with its own split, initialization and order;
repeats stay timing repeats within a seed; resume works per case and seed; tables show cases over seeds."""

from __future__ import annotations

import csv
import io
import json

import pytest

from mfbench.cli import main
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.results.files import load_results

RUN = ["run", "-d", TINY, "-m", "biased", "--device", "cpu", "--epochs", "2", "--repeats", "1", "--warmup", "0"]
RUN += ["--no-calibration", "-q", "--executor", "inprocess"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("MFBENCH_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)


def run(tmp_path, *extra, name="r.json"):
    path = tmp_path / name
    assert main([*RUN, "-o", str(path), *extra]) == 0
    return path


def test_each_seed_draws_its_own_split_and_start_on_the_same_data(tmp_path, capsys):
    path = run(tmp_path, "-s", "vectorized", "--seeds", "3", "--seed", "5")
    document = load_results(path)
    records = document["cases"]
    assert [r["seed"] for r in records] == [5, 6, 7] and document["config"]["seeds"] == 3
    assert len({r["id"] for r in records}) == 1
    assert {r["dataset"]["data_seed"] for r in records} == {5}  # one data set
    assert len({r["dataset"]["split_seed"] for r in records}) == 3
    assert len({r["dataset"]["fingerprint"] for r in records}) == 3  # three splits
    finals = {r["summary"]["final_test_rmse"] for r in records}
    assert len(finals) == 3  # different starts and orders train differently
    table = capsys.readouterr().out.split("\n\nanswer:")[0]
    assert "seeds" in table.splitlines()[0] and table.count("vectorized") == 1  # one row over the three seeds


def test_data_seeds_give_each_seed_its_own_data(tmp_path):
    records = load_results(run(tmp_path, "-s", "vectorized", "--seeds", "0,2", "--data-seeds"))["cases"]
    assert [(r["seed"], r["dataset"]["data_seed"]) for r in records] == [(0, 0), (2, 2)]


def test_one_seed_is_todays_run(tmp_path):
    record = load_results(run(tmp_path, "-s", "vectorized", "--seed", "3"))["cases"][0]
    assert record["seed"] == 3 and record["dataset"]["split_seed"] == 3 and record["dataset"]["data_seed"] == 3


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("0", "--seeds must be a count of at least 1"),
        ("-3", "--seeds must be a count of at least 1"),
        ("1,1,2", "--seeds lists seed 1 more than once"),
        ("0,-1", "--seeds must list integer seeds of 0 or more"),
    ],
)
def test_bad_seeds_are_usage_errors_before_anything_runs(tmp_path, capsys, seeds, message):
    assert main([*RUN, "-s", "vectorized", "-o", str(tmp_path / "x.json"), "--seeds", seeds]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_seeds_that_are_not_numbers_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        main([*RUN, "-s", "vectorized", "--seeds", "a,b"])
    assert info.value.code == 2 and "takes a count N or a list of integer seeds" in capsys.readouterr().err


def test_resume_keeps_finished_seeds_and_runs_the_missing_ones(tmp_path, capsys):
    path = run(tmp_path, "-s", "vectorized", "--seeds", "3")
    document = json.loads(path.read_text())
    kept = document["cases"][:2]
    document["cases"], document["complete"] = kept, False
    path.write_text(json.dumps(document))
    assert main([*RUN, "-s", "vectorized", "--seeds", "3", "-o", str(path), "--resume"]) == 0
    after = load_results(path)["cases"]
    assert [r["seed"] for r in after] == [0, 1, 2]
    assert [r.get("resumed", False) for r in after] == [True, True, False]
    assert after[0]["summary"] == kept[0]["summary"]


def test_a_file_with_seeds_missing_for_a_case_reports_as_partial(tmp_path, capsys):
    path = run(tmp_path, "-s", "vectorized", "-s", "minibatch", "--seeds", "3")
    document = json.loads(path.read_text())
    document["cases"] = [c for c in document["cases"] if not (c["strategy"]["name"] == "minibatch" and c["seed"] == 1)]
    path.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["report", str(path), "--wide"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "minibatch" in line and "RMSE" not in line)
    assert "2/3" in row and "partial: no record for seed(s) 1" in row


def test_the_csv_over_seeds_carries_the_interval_bounds(tmp_path, capsys):
    path = run(tmp_path, "-s", "vectorized", "--seeds", "3", "--target-rmse", "5")
    capsys.readouterr()
    assert main(["report", str(path), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    [case] = [r for r in rows if r["status"] != "baseline"]
    assert case["seeds"] == "3" and case["reached"] == "3/3"
    assert float(case["time low"]) <= float(case["time to 5"]) <= float(case["time high"])
    assert float(case["test RMSE low"]) <= float(case["test RMSE"]) <= float(case["test RMSE high"])
    assert [r["strategy"] for r in rows if r["status"] == "baseline"] == ["(global mean)", "(biases)"]


def test_a_suite_sized_for_less_says_so_before_it_starts(tmp_path, capsys):
    suite = tmp_path / "small.toml"
    lists = f'datasets = ["{TINY}"]\nmodels = ["biased"]\nstrategies = ["vectorized"]\ndevices = ["cpu"]\n'
    suite.write_text("budget_s = 10\nepochs = 1\nrepeats = 1\nwarmup = 0\n" + lists)
    argv = ["run", "--suite", str(suite), "--no-calibration", "--executor", "inprocess", "-o", str(tmp_path / "s.json")]
    assert main([*argv, "--seeds", "4"]) == 0
    assert "is sized for about 10 s: 1 runs" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert "is sized for" not in capsys.readouterr().err


def test_compare_pairs_the_seeds_two_runs_share(tmp_path, capsys):
    base = run(tmp_path, "-s", "vectorized", "--seeds", "3", name="base.json")
    new = run(tmp_path, "-s", "vectorized", "--seeds", "1,2,3", name="new.json")
    capsys.readouterr()
    assert main(["compare", str(base), str(new), "--wide"]) == 0
    out = capsys.readouterr().out
    assert "2 paired seeds" in out and "seeds only in base: 0" in out and "seeds only in new: 3" in out
    row = next(line for line in out.splitlines() if "vectorized" in line)
    assert " ~ " in f" {row} "  # the same code on the same seeds: no quality change


def test_compare_refuses_a_file_with_a_case_twice_for_one_seed(tmp_path, capsys):
    path = run(tmp_path, "-s", "vectorized", "--seeds", "2")
    document = json.loads(path.read_text())
    document["cases"].append(document["cases"][0])
    path.write_text(json.dumps(document))
    assert main(["compare", str(path), str(path)]) == 2
    err = capsys.readouterr().err
    assert "holds case" in err and "twice for seed 0" in err


def test_the_same_sgd_ties_in_quality_and_the_reference_is_significantly_slower(tmp_path, capsys):
    """scripted without regularization computes the reference's per-rating SGD in the same order: over
    five seeds their held-out RMSEs tie, and the reference's time to the target is significantly longer
    (the ratio's interval excludes 1)."""
    from mfbench.stats.seeds import workload_verdicts

    path = tmp_path / "same.json"
    argv = ["run", "-d", "lowrank[n_users=60,n_items=40,nnz=1500,rank=2]", "-m", "biased[n_factors=2]"]
    argv += ["-s", "reference[lr=0.05]", "-s", "scripted[lr=0.05,reg=0]", "--device", "cpu", "--seeds", "5"]
    argv += ["--epochs", "5", "--warmup", "0", "--repeats", "1", "--no-calibration", "--executor", "inprocess"]
    assert main([*argv, "--target-rmse", "auto", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    [verdict] = workload_verdicts(load_results(path)["cases"])
    reference, scripted = "reference[lr=0.05]", "scripted[lr=0.05,reg=0.0]"
    quality = verdict.quality.pair(reference, scripted)
    assert set(verdict.quality.groups[0]) == {reference, scripted} and not quality.significant and quality.p_adjusted > 0.5
    time = verdict.time.pair(reference, scripted)
    assert time.significant and verdict.time.groups[0] == (scripted,)
    assert time.a == scripted and time.high < 0.1  # scripted's time over the reference's: far below 1
    assert f"{scripted} is faster than {reference} by" in out and f"{scripted} and {reference} tie (p = 1.00)" in out
    capsys.readouterr()
    assert main(["report", str(path), "--columns", "strategy,group"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:5]]
    assert rows == [["reference", "2"], ["scripted", "1"], ["(global", "mean)"]]  # the table names each case's group
