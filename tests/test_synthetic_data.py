"""The planted generators: deterministic, well-formed, with the noise level and skew they promise."""

from __future__ import annotations

import numpy as np
import pytest

import mfbench
from mfbench.data.planted import plant, planted, power_law, sample_keys
from mfbench.plugin import registry
from mfbench.plugins.datasets.lowrank import LowRank
from mfbench.plugins.datasets.zipf import Zipf


def arrays(ratings: mfbench.Ratings):
    return ratings.users.numpy(), ratings.items.numpy(), ratings.values.numpy()


def top_share(index: np.ndarray, n: int, fraction: float = 0.1) -> float:
    """Share of the ratings held by the most-rated ``fraction`` of ids."""
    counts = np.sort(np.bincount(index, minlength=n))
    return counts[-max(1, int(n * fraction)) :].sum() / len(index)


def test_plugins_register_lowrank_and_zipf():
    pm = mfbench.make_plugin_manager(
        ["mfbench.plugins.datasets.lowrank", "mfbench.plugins.datasets.zipf"], defaults=False, entry_points=False, env=False
    )
    reg = registry.collect(pm)
    assert reg.get(mfbench.Dataset, "lowrank").cls is LowRank
    assert reg.get(mfbench.Dataset, "zipf").cls is Zipf


@pytest.mark.parametrize("cls", [LowRank, Zipf])
def test_defaults_are_wellformed_and_deterministic(cls):
    a = cls().load(seed=3)
    b = cls().load(seed=3)
    c = cls().load(seed=4)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    users, items, values = arrays(a)
    assert (a.n_users, a.n_items, len(a)) == (2000, 1000, 100_000)
    assert users.dtype == items.dtype == np.int64 and values.dtype == np.float32
    assert users.min() >= 0 and users.max() < a.n_users and items.min() >= 0 and items.max() < a.n_items
    assert np.isfinite(values).all()
    assert len(np.unique(users * a.n_items + items)) == len(a), "a (user, item) pair is rated twice"
    assert abs(a.mean() - 3.0) < 0.05


def test_residual_against_the_planted_model_is_the_noise():
    ratings, truth = plant(3000, 1500, 200_000, rank=8, noise=0.7, seed=1)
    users, items, values = arrays(ratings)
    residual = values - truth.signal(users, items)
    assert abs(residual.mean()) < 0.01
    assert abs(residual.std() - 0.7) < 0.01  # sd of a sample sd here: 0.7 / sqrt(2 * 200k) = 0.001
    signal = truth.signal(users, items) - truth.mean
    assert abs(signal.var() - 1.0) < 0.05, "the planted signal should have unit variance"


def test_noiseless_ratings_are_exactly_rank_r():
    rank = 4
    ratings, truth = plant(60, 50, 60 * 50, rank=rank, noise=0.0, seed=2, mean=1.5)
    users, items, values = arrays(ratings)
    assert len(ratings) == 60 * 50  # every pair, since nnz covers the whole matrix
    np.testing.assert_array_equal(values, truth.signal(users, items))
    full = np.zeros((60, 50))  # a dense 60 x 50 matrix, in the test only
    full[users, items] = values - 1.5
    assert np.linalg.matrix_rank(full, tol=1e-3) == rank


def test_planted_keeps_its_signature_and_matches_plant():
    ratings = planted(500, 400, 5000, 3, 0.5, 9)
    assert ratings.fingerprint() == plant(500, 400, 5000, 3, 0.5, 9)[0].fingerprint()
    assert isinstance(ratings, mfbench.Ratings)


def test_mean_parameter_shifts_the_ratings():
    ratings = LowRank(mean=-2.0, noise=0.1).load(0)
    assert abs(ratings.mean() + 2.0) < 0.05


def test_density_is_used_when_nnz_is_zero():
    ratings = LowRank(n_users=300, n_items=200, nnz=0, density=0.05).load(0)
    assert len(ratings) == 3000
    assert len(LowRank(n_users=300, n_items=200, nnz=None, density=0.05).load(0)) == 3000


@pytest.mark.parametrize(
    "params, message",
    [
        ({"density": 0.05}, "not both"),
        ({"nnz": 0}, "nnz > 0"),
        ({"nnz": 0, "density": 1.5}, "(0, 1]"),
        ({"nnz": 0, "density": "lots"}, "density='lots', must be in (0, 1]"),
        ({"n_users": 0}, "n_users=0, must be at least 1"),
        ({"rank": 0}, "rank=0, must be at least 1"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_parameters_say_what_to_fix(params, message):
    problems = LowRank.check_params(LowRank.resolve_params(params))  # what planning refuses
    assert any(message in line for line in problems), problems


def test_nnz_beyond_the_matrix_gives_every_pair_once():
    ratings = LowRank(n_users=30, n_items=20, nnz=10_000).load(0)
    users, items, _ = arrays(ratings)
    assert len(ratings) == 600
    assert len(np.unique(users * 20 + items)) == 600


def test_zipf_popularity_is_skewed_and_lowrank_is_not():
    uniform = LowRank().load(0)
    skewed = Zipf().load(0)
    assert top_share(uniform.items.numpy(), uniform.n_items) < 0.15
    assert top_share(uniform.users.numpy(), uniform.n_users) < 0.15
    assert top_share(skewed.items.numpy(), skewed.n_items) > 0.45
    assert top_share(skewed.users.numpy(), skewed.n_users) > 0.2
    steeper = Zipf(item_exponent=1.5).load(0)
    assert top_share(steeper.items.numpy(), steeper.n_items) > top_share(skewed.items.numpy(), skewed.n_items)


def test_zipf_with_zero_exponents_is_uniform():
    ratings = Zipf(user_exponent=0.0, item_exponent=0.0).load(0)
    assert top_share(ratings.items.numpy(), ratings.n_items) < 0.15


def test_zipf_popular_ids_are_scattered_not_packed_at_low_indices():
    ratings = Zipf(item_exponent=1.2).load(0)
    counts = np.bincount(ratings.items.numpy(), minlength=ratings.n_items)
    hottest = np.argsort(counts)[-50:]
    assert hottest.mean() > 200  # packed at the front they would average 25


def test_zipf_noise_level_holds_under_skew():
    user_p = power_law(2000, 0.8, np.random.default_rng(0))
    item_p = power_law(1000, 1.2, np.random.default_rng(1))
    ratings, truth = plant(2000, 1000, 100_000, 10, 0.5, 0, user_p=user_p, item_p=item_p)
    users, items, values = arrays(ratings)
    assert abs((values - truth.signal(users, items)).std() - 0.5) < 0.01


def test_power_law():
    p = power_law(100, 1.0, np.random.default_rng(0))
    assert abs(p.sum() - 1.0) < 1e-12 and p.max() / p.min() == pytest.approx(100.0)
    assert power_law(100, 0.0, np.random.default_rng(0)) is None
    with pytest.raises(mfbench.MfbenchError, match="exponent"):
        power_law(100, -1.0, np.random.default_rng(0))


def test_too_concentrated_popularity_is_an_error_not_a_hang():
    sharp = power_law(10, 30.0, np.random.default_rng(0))
    with pytest.raises(mfbench.MfbenchError, match="too concentrated"):
        sample_keys(np.random.default_rng(0), 10, 10, 100, sharp, sharp)


def test_sample_keys_are_sorted_distinct_and_in_range():
    keys = sample_keys(np.random.default_rng(5), 1000, 700, 50_000)
    assert len(keys) == 50_000
    assert (np.diff(keys) > 0).all()
    assert keys.min() >= 0 and keys.max() < 1000 * 700


def test_skewed_draws_follow_the_popularity_and_pair_independently():
    rng = np.random.default_rng(0)
    user_p = power_law(100, 1.0, rng)
    item_p = power_law(100_000, 0.3, rng)
    keys = sample_keys(np.random.default_rng(1), 100, 100_000, 50_000, user_p, item_p)
    users, items = np.divmod(keys, 100_000)
    counts = np.bincount(users, minlength=100)
    expected = 50_000 * user_p
    assert (np.abs(counts - expected) < 5 * np.sqrt(expected) + 5).all()
    # Independent sides: a user's popularity says nothing about the popularity of the items it rates.
    assert abs(np.corrcoef(user_p[users], item_p[items])[0, 1]) < 0.03


@pytest.mark.parametrize(
    "dataset",
    [
        "lowrank[nnz=100000000000]",
        "zipf[n_users=100000000,n_items=100000000,nnz=0,density=0.01]",
        "sprand[n_users=10000000,n_items=1000000,density=0.5]",
    ],
)
def test_data_larger_than_the_machine_is_refused_before_any_work(dataset, tmp_path, capsys):
    """Before: lowrank[nnz=1e11] allocated for 22 s, then ended in a MemoryError row."""
    from mfbench.cli import main
    from mfbench.data.memory import machine_memory

    if machine_memory() is None:
        pytest.skip("this system does not report its physical memory")
    out = tmp_path / "r.json"
    assert main(["run", "-d", dataset, "-s", "vectorized", "-q", "--no-calibration", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "GiB to make" in err and "more than this machine's" in err and not out.exists()


def test_the_memory_estimate_scales_with_the_ratings(monkeypatch):
    from mfbench.data import memory

    monkeypatch.setattr(memory, "machine_memory", lambda: 10 * memory.GIB)
    assert memory.too_big("x: ", 10 * memory.GIB / 60) == []
    (line,) = memory.too_big("x: ", 2 * 10 * memory.GIB / 60)
    assert line.startswith("x: 357,913,941 ratings need about 20 GiB") and "this machine's 10 GiB" in line
