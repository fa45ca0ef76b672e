"""Runs judged on ranking metrics: --metric, --target in any metric, --split, --implicit, end to end."""

from __future__ import annotations

import json

import pytest

from mfbench.cli import main

PLANTED = "implicit-planted[n_users=300,n_items=120,interactions=15]"
BASE = ["run", "--device", "cpu", "--no-calibration", "--repeats", "1", "--warmup", "0", "-q"]


def run(tmp_path, *words):
    out = tmp_path / "r.json"
    try:
        code = main([*BASE, "-o", str(out), "--force", *words])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, (json.loads(out.read_text()) if out.exists() else None)


def test_a_ranking_target_times_every_strategy_beside_the_popularity_baseline(tmp_path, capsys):
    code, results = run(
        tmp_path, "-d", PLANTED, "-m", "dot[n_factors=8]", "-s", "popularity", "-s", "ials", "--epochs", "4",
        "--split", "leave-last-out", "--target", "ndcg[k=10]>=0.15", "--metric", "recall[k=5]",
    )  # fmt: skip
    assert code == 0
    by_name = {c["strategy"]["name"]: c for c in results["cases"]}
    ials, popularity = by_name["ials"], by_name["popularity"]
    assert ials["dataset"]["split"] == "leave-last-out"
    floor = ials["dataset"]["baselines"]["popularity"]["test"]
    assert set(floor) == {"ndcg[k=10]", "recall[k=5]"}
    # the popularity strategy and the popularity baseline rank the same way
    assert popularity["summary"]["final_metrics"]["test"]["ndcg[k=10]"] == pytest.approx(floor["ndcg[k=10]"])
    finals = ials["summary"]["final_metrics"]
    assert finals["test"]["ndcg[k=10]"] > floor["ndcg[k=10]"]  # the planted signal is learnable
    assert ials["summary"]["target"] == {"metric": "ndcg[k=10]", "title": "NDCG@10", "higher": True, "value": 0.15}
    epochs = ials["repeats"][0]["epochs"]
    reached = next(i for i, e in enumerate(epochs) if e["metrics"]["valid"]["ndcg[k=10]"] >= 0.15)
    assert ials["summary"]["time_to_target_s"] == pytest.approx(sum(e["seconds"] for e in epochs[: reached + 1]))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "time to NDCG@10 >= 0.15" in table and "test NDCG@10" in table and "test Recall@5" in table


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--metric", "ndcg[k=0]"], "metric 'ndcg': k=0, must be at least 1"),
        (["--metric", "ndgc"], "Did you mean 'ndcg'"),
        (["--target", "ndcg[k=10]<=0.3"], "ndcg is higher-is-better, so its target reads ndcg[k=10]>=X"),
        (["--target", "ndcg>0.3"], "takes METRIC<=X or METRIC>=X"),
        (["--target", "rmse<=0.9", "-s", "bpr"], "bpr train(s) an implicit-feedback objective"),
        (["--implicit", "4"], "--implicit turns ratings into positives"),
        (["--implicit", "often"], "rating threshold"),
        (["--split", "leave-first-out"], "Did you mean 'leave-last-out'"),
    ],
)
def test_bad_metrics_targets_and_splits_are_usage_errors_before_anything_runs(tmp_path, capsys, words, message):
    code, results = run(tmp_path, "-d", "sprand", "-m", "dot", "-s", "als", *words)
    assert code == 2 and results is None
    assert message in capsys.readouterr().err


def test_time_based_splits_and_thresholds_that_leave_nothing_say_why_in_the_row(tmp_path):
    code, results = run(tmp_path, "-d", "sprand", "-m", "dot", "-s", "als", "--split", "temporal", "--epochs", "1")
    (case,) = results["cases"]
    assert case["status"] == "error" and "timestamps" in case["reason"]
    code, results = run(
        tmp_path, "-d", "lowrank[n_users=50,n_items=40,nnz=400]", "-m", "dot", "-s", "ials", "--implicit", "100",
        "--metric", "ndcg", "--epochs", "1",
    )  # fmt: skip
    (case,) = results["cases"]
    assert case["status"] == "error" and "threshold" in case["reason"]


def test_a_plugin_registers_its_own_metric_and_split_protocol():
    import types

    import mfbench
    from mfbench.plugin.registry import collect
    from mfbench.run.plan import RunConfig, plan

    class Covered(mfbench.Metric):
        """Share of held-out ratings whose item the model saw in training (higher is better)."""

        name = "covered"
        direction = "higher"

        def compute(self, model, heldout, seen):
            known = set(seen[0].items.tolist())
            return sum(i in known for i in heldout.items.tolist()) / max(1, len(heldout))

    class FirstHalf(mfbench.SplitProtocol):
        """The first ratings train, the last ones are held out (by position)."""

        name = "by-position"

        def split(self, ratings, valid_fraction, test_fraction, seed):
            import torch

            n = len(ratings)
            cut_valid, cut_test = int(n * (1 - valid_fraction - test_fraction)), int(n * (1 - test_fraction))
            parts = torch.arange(n).split([cut_valid, cut_test - cut_valid, n - cut_test])
            return mfbench.data.ratings.Split(*(ratings.subset(p) for p in parts))

    module = types.ModuleType("own_parts")

    @mfbench.hookimpl
    def mfbench_register_metrics(register):
        register(Covered)

    @mfbench.hookimpl
    def mfbench_register_splits(register):
        register(FirstHalf)

    module.mfbench_register_metrics = mfbench_register_metrics
    module.mfbench_register_splits = mfbench_register_splits
    pm = mfbench.make_plugin_manager(entry_points=False, env=False)
    pm.register(module, name="own-parts")
    config = RunConfig(epochs=1, warmup=0, repeats=1, metrics=["covered"], split="by-position", target="covered>=0.5")
    (case,) = plan(collect(pm), ["sprand"], ["dot"], ["als"], ["cpu"], config)
    assert case.split.name == "by-position" and [m.name for m in case.metrics] == ["covered"]
    record = mfbench.run.runner.Runner(config).run_case(case)
    assert record["status"] == "ok" and record["dataset"]["split"] == "by-position"
    value = record["summary"]["final_metrics"]["test"]["covered"]
    assert 0.0 < value <= 1.0 and record["summary"]["time_to_target_s"] is not None
