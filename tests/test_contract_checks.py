"""The contract checks themselves can fail: each rejects a strategy that breaks its rule."""

from __future__ import annotations

import os

import pytest
import torch

import mfbench
from mfbench.plugin import contract_checks as testing


class DoesNothing(testing.Idle):
    name = "does-nothing"


class AlmostReference(testing.Idle):
    """Per-rating SGD with the wrong constant: it drops MSELoss's factor 2."""

    name = "almost"
    params = {"lr": 0.01, "reg": 0.0}
    exact = True

    @torch.no_grad()
    def run_epoch(self, epoch):
        P, Q = self.model.user_factors.weight, self.model.item_factors.weight
        for k in mfbench.epoch_permutation(len(self.train), self.seed, epoch).tolist():
            u, i, r = self.train.users[k], self.train.items[k], self.train.values[k]
            err = (P[u] * Q[i]).sum() - r
            p = P[u].clone()
            P[u] -= self.params["lr"] * err * Q[i]
            Q[i] -= self.params["lr"] * err * p


class Noisy(testing.Idle):
    name = "noisy"

    @torch.no_grad()
    def run_epoch(self, epoch):
        weight = self.model.user_factors.weight
        generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        weight.add_(torch.randn(weight.shape, generator=generator) * 1e-3)


def test_learning_check_rejects_a_strategy_that_does_not_learn():
    with pytest.raises(AssertionError, match="held-out RMSE"):
        testing.assert_learns(DoesNothing, max_epochs=2)


def test_exactness_check_rejects_a_near_miss():
    with pytest.raises(AssertionError):
        testing.assert_exact(AlmostReference, "dot")


def test_determinism_check_rejects_randomness():
    with pytest.raises(AssertionError, match="differs"):
        testing.assert_deterministic(Noisy, "dot", epochs=1)


def test_the_reference_passes_exactness_and_determinism():
    reference = testing.builtin_registry().strategies["reference"].cls
    testing.assert_exact(reference, "dot")
    testing.assert_exact(reference, "biased")
    testing.assert_deterministic(reference, "dot", epochs=1)


def test_planted_data_has_the_stated_noise():
    train, test = testing.planted_split()
    assert len(train) == 90_000 and len(test) == 10_000
