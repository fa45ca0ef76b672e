"""The als strategy: exact ridge solves checked against numpy, learning on planted data, and its contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mfbench
from mfbench.data.planted import planted
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.model_layout import find_tables
from mfbench.plugin.registry import collect
from mfbench.plugins.models.biased import Biased
from mfbench.plugins.models.dot import Dot
from mfbench.plugins.strategies.als import ALS

CPU = torch.device("cpu")
TARGET = 0.575  # 15% above the planted noise 0.5


def tiny_ratings() -> mfbench.Ratings:
    """8 users x 7 items; user 7 and item 6 have no ratings, user 0 fewer ratings than factors."""
    rng = np.random.default_rng(3)
    pairs = {(0, 1), (0, 4)}
    while len(pairs) < 30:
        pairs.add((int(rng.integers(1, 7)), int(rng.integers(0, 6))))
    users, items = np.array(sorted(pairs)).T
    values = rng.integers(1, 6, size=len(users)).astype(np.float32)
    return mfbench.Ratings.from_arrays(users, items, values, n_users=8, n_items=7)


def ridge_rows(
    fixed: np.ndarray,
    fixed_bias: np.ndarray | None,
    rows: np.ndarray,
    others: np.ndarray,
    values: np.ndarray,
    n_rows: int,
    reg: float,
    mean: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Solve each row's weighted-lambda ridge regression directly, as a stacked least-squares problem."""
    k = fixed.shape[1]
    biased = fixed_bias is not None
    width = k + 1 if biased else k
    out = np.zeros((n_rows, width))
    for row in range(n_rows):
        mine = rows == row
        n = int(mine.sum())
        if n == 0:
            continue  # no data: ALS sets the row to zero
        features = fixed[others[mine]]
        target = values[mine] - mean
        if biased:
            features = np.hstack([features, np.ones((n, 1))])
            target = target - fixed_bias[others[mine]]
        # min ||F x - t||^2 + reg * n * ||x||^2  ==  min || [F; sqrt(reg n) I] x - [t; 0] ||^2
        stacked = np.vstack([features, np.sqrt(reg * n) * np.eye(width)])
        rhs = np.concatenate([target, np.zeros(width)])
        out[row] = np.linalg.lstsq(stacked, rhs, rcond=None)[0]
    return out[:, :k], (out[:, k] if biased else None)


def numpy_als_epoch(P, Q, bu, bi, train: mfbench.Ratings, reg: float, mean: float):
    u, i, v = train.users.numpy(), train.items.numpy(), train.values.numpy().astype(np.float64)
    P, bu = ridge_rows(Q, bi, u, i, v, train.n_users, reg, mean)
    Q, bi = ridge_rows(P, bu, i, u, v, train.n_items, reg, mean)
    return P, Q, bu, bi


def build(kind: str, train: mfbench.Ratings, dtype=torch.float64, **model_params) -> nn.Module:
    torch.manual_seed(0)
    part = Biased(**model_params) if kind == "biased" else Dot(**model_params)
    return part.build(train).to(dtype)


def rmse(model: nn.Module, data: mfbench.Ratings) -> float:
    with torch.no_grad():
        return float((model(data.users, data.items) - data.values).square().mean().sqrt())


def test_registered_through_the_plugin_manager():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.strategies.als"], entry_points=False, env=False)
    entry = collect(pm).strategies["als"]
    assert entry.cls is ALS and entry.plugin == "mfbench.plugins.strategies.als"
    assert ALS.exact is False and ALS.deterministic is True
    assert set(ALS.devices) == {"cpu", "cuda"}


@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("chunk", [1, 7, 262144])
def test_epochs_equal_direct_least_squares(kind, chunk):
    train = tiny_ratings()
    model = build(kind, train, n_factors=3, init_std=0.5)
    tables = find_tables(model, "als").weights()
    P, Q = tables["user_factors"].detach().numpy().copy(), tables["item_factors"].detach().numpy().copy()
    biased = kind == "biased"
    bu = tables["user_bias"].detach().numpy()[:, 0].copy() if biased else None
    bi = tables["item_bias"].detach().numpy()[:, 0].copy() if biased else None
    mean = float(model.global_mean) if biased else 0.0
    strategy = ALS(reg=0.3, chunk=chunk)
    strategy.setup(model, train, CPU, seed=0)
    try:
        for epoch in range(2):
            loss = strategy.run_epoch(epoch)
            P, Q, bu, bi = numpy_als_epoch(P, Q, bu, bi, train, 0.3, mean)
            np.testing.assert_allclose(model.user_factors.weight.detach().numpy(), P, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(model.item_factors.weight.detach().numpy(), Q, rtol=1e-9, atol=1e-10)
            if biased:
                np.testing.assert_allclose(model.user_bias.weight.detach().numpy()[:, 0], bu, rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(model.item_bias.weight.detach().numpy()[:, 0], bi, rtol=1e-9, atol=1e-10)
            # The loss read off the Gram matrices is the training MSE of the model as it stands.
            assert loss == pytest.approx(rmse(model, train.to(CPU)) ** 2, rel=1e-9)
    finally:
        strategy.teardown()
    # Rows without ratings are zeroed, so an unseen user predicts the global mean plus the item bias.
    assert not model.user_factors.weight[7].any() and not model.item_factors.weight[6].any()
    assert model.user_factors.weight[:7].abs().sum(1).gt(0).all()


def test_float32_agrees_with_float64():
    train = tiny_ratings()
    results = []
    for dtype in (torch.float32, torch.float64):
        model = build("biased", train, dtype=dtype, n_factors=3, init_std=0.5)
        strategy = ALS(reg=0.3)
        strategy.setup(model, train, CPU, seed=0)
        for epoch in range(3):
            strategy.run_epoch(epoch)
        results.append(model.user_factors.weight.detach().double())
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)


def planted_split():
    ratings = planted(n_users=2000, n_items=1000, nnz=100_000, rank=5, noise=0.5, seed=0)
    return ratings.split(0.1, seed=0)


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_deterministic(kind):
    testing.assert_deterministic(ALS, kind)


class WithExtraLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.user_factors = nn.Embedding(4, 2)
        self.item_factors = nn.Embedding(3, 2)
        self.head = nn.Linear(2, 1)


class BiasesWithoutMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.user_factors = nn.Embedding(4, 2)
        self.item_factors = nn.Embedding(3, 2)
        self.user_bias = nn.Embedding(4, 1)
        self.item_bias = nn.Embedding(3, 1)


@pytest.mark.parametrize(
    "model, words",
    [
        (WithExtraLayer(), "head.weight"),
        (BiasesWithoutMean(), "global_mean"),
        (nn.Linear(3, 1), "user_factors"),
    ],
)
def test_skips_models_it_cannot_solve(model, words):
    reason = ALS().skip(model, CPU)
    assert reason and words in reason
    with pytest.raises(mfbench.MfbenchError, match="als cannot train"):
        ALS().setup(model, tiny_ratings(), CPU, seed=0)


def test_runs_the_dot_and_biased_models():
    train = tiny_ratings()
    for kind in ("dot", "biased"):
        assert ALS().skip(build(kind, train), CPU) is None


@pytest.mark.parametrize(
    "params, words", [({"reg": 0.0}, "reg=0.0, must be positive"), ({"chunk": 0}, "chunk=0, must be at least 1")]
)
def test_bad_params_are_refused_while_planning(params, words):
    assert [f"strategy 'als': {words}"] == ALS.check_params(ALS.resolve_params(params))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    train = tiny_ratings()
    results = []
    for device in (CPU, torch.device("cuda")):
        model = build("biased", train, n_factors=3, init_std=0.5).to(device)
        strategy = ALS(reg=0.3, chunk=5)
        strategy.setup(model, train.to(device), device, seed=0)
        strategy.run_epoch(0)
        strategy.run_epoch(1)
        results.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
