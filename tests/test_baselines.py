"""The baselines every quality figure is read against: the global mean and the damped bias model."""

from __future__ import annotations

import math

import pytest
import torch

from mfbench.data import plant
from mfbench.data.baselines import baselines, fit_biases
from mfbench.data.ratings import Ratings


def small() -> Ratings:
    ratings, _ = plant(120, 80, 3000, rank=3, noise=0.5, seed=4)
    return ratings


def test_the_global_mean_scores_the_ratings_spread():
    ratings = small()
    split = ratings.split_three(0.1, 0.1, 0)
    found = baselines(split.train, {"test": split.test})
    mean = float(split.train.values.double().mean())
    expected = math.sqrt(float(((split.test.values.double() - mean) ** 2).mean()))
    assert found["global_mean"]["test_rmse"] == pytest.approx(expected, rel=1e-12)
    assert found["biases"]["test_rmse"] < found["global_mean"]["test_rmse"]  # planted user/item effects exist


def test_biases_match_surprise_baseline_only(tmp_path):
    surprise = pytest.importorskip("surprise")
    ratings = small()
    split = ratings.split_three(0.1, 0.1, 0)
    train = split.train
    rows = zip(train.users.tolist(), train.items.tolist(), train.values.tolist(), strict=True)
    (tmp_path / "r.csv").write_text("".join(f"{u},{i},{r!r}\n" for u, i, r in rows))
    reader = surprise.Reader(line_format="user item rating", sep=",", rating_scale=(0, 10))
    data = surprise.Dataset.load_from_file(str(tmp_path / "r.csv"), reader)
    algo = surprise.BaselineOnly(bsl_options={"method": "als", "n_epochs": 10, "reg_i": 10, "reg_u": 15}, verbose=False)
    algo.fit(data.build_full_trainset())
    mean, user_bias, item_bias = fit_biases(train)
    trainset = algo.trainset
    assert mean == pytest.approx(trainset.global_mean, rel=1e-12)
    for raw_user in range(0, 120, 17):
        inner = trainset.to_inner_uid(str(raw_user))
        assert float(user_bias[raw_user]) == pytest.approx(algo.bu[inner], abs=1e-9)
    for raw_item in range(0, 80, 13):
        inner = trainset.to_inner_iid(str(raw_item))
        assert float(item_bias[raw_item]) == pytest.approx(algo.bi[inner], abs=1e-9)


def test_users_and_items_without_training_ratings_get_no_bias():
    train = Ratings(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), torch.tensor([4.0, 2.0, 3.0]), 3, 3)
    held = Ratings(torch.tensor([2]), torch.tensor([2]), torch.tensor([5.0]), 3, 3)
    found = baselines(train, {"test": held})
    assert found["biases"]["test_rmse"] == pytest.approx(found["global_mean"]["test_rmse"]) == pytest.approx(2.0)


def test_on_ratings_with_nothing_to_learn_no_strategy_is_crowned(tmp_path, capsys, monkeypatch):
    """The notebook's uniform random ratings: a constant beats every model, and the answer says so."""
    from mfbench.cli import main

    monkeypatch.setenv("MFBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    argv = ["run", "-d", "sprand[n_users=200,n_items=200,density=0.05]", "-m", "dot", "-s", "vectorized", "-s", "minibatch"]
    argv += ["--device", "cpu", "--epochs", "2", "--repeats", "1", "--no-calibration", "--executor", "inprocess"]
    assert main([*argv, "-o", str(tmp_path / "r.json"), "--wide"]) == 0
    out = capsys.readouterr().out
    assert "(global mean)" in out and "(biases)" in out
    assert "no strategy beats predicting the global mean" in out and "lowest" not in out
    assert out.count("held-out RMSE no better than the global mean's") == 2  # each row says so
