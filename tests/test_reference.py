"""The reference strategy is the notebook's per-rating SGD, exactly."""

from __future__ import annotations

import copy

import torch

import mfbench
from mfbench.plugins.models.dot import DotProduct
from mfbench.plugins.strategies.reference import Reference


def hand_written_sgd(P, Q, ratings, order, lr):
    """Per-rating SGD on (p.q - r)^2, updating both rows from their pre-step values."""
    P, Q = P.clone(), Q.clone()
    for k in order.tolist():
        u, i, r = int(ratings.users[k]), int(ratings.items[k]), float(ratings.values[k])
        p, q = P[u].clone(), Q[i].clone()
        err = float(p @ q) - r
        P[u] = p - lr * 2 * err * q
        Q[i] = q - lr * 2 * err * p
    return P, Q


def test_reference_equals_hand_written_sgd_in_float64():
    torch.manual_seed(0)
    ratings = mfbench.Ratings.from_arrays(
        torch.randint(0, 6, (40,)), torch.randint(0, 5, (40,)), torch.randint(1, 5, (40,)).float(), 6, 5
    )
    model = DotProduct(6, 5, 3).double()
    P0 = model.user_factors.weight.detach().clone()
    Q0 = model.item_factors.weight.detach().clone()
    lr, seed = 0.01, 7
    strategy = Reference(lr=lr)
    strategy.setup(model, ratings, torch.device("cpu"), seed)
    for epoch in range(2):
        strategy.run_epoch(epoch)
    P, Q = P0, Q0
    for epoch in range(2):
        P, Q = hand_written_sgd(P, Q, ratings, mfbench.epoch_permutation(len(ratings), seed, epoch), lr)
    torch.testing.assert_close(model.user_factors.weight.detach(), P, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.item_factors.weight.detach(), Q, rtol=1e-12, atol=1e-12)
    assert not torch.equal(P, P0)  # the comparison is not vacuous


def test_reference_uses_the_notebook_defaults():
    assert Reference.params == {"lr": 1e-6}
    assert Reference.exact and Reference.deterministic


def test_reference_trains_any_autograd_model_like_the_biased_one():
    from mfbench.plugins.models.biased import BiasedDotProduct

    ratings = mfbench.Ratings.from_arrays([0, 1, 2, 0], [1, 0, 2, 2], [4.0, 1.0, 3.0, 5.0], 3, 3)
    model = BiasedDotProduct(3, 3, 2, ratings.mean())
    before = copy.deepcopy(model.state_dict())
    strategy = Reference(lr=0.05)
    strategy.setup(model, ratings, torch.device("cpu"), 0)
    strategy.run_epoch(0)
    assert not torch.equal(before["user_bias.weight"], model.user_bias.weight)
    assert torch.equal(before["global_mean"], model.global_mean)
