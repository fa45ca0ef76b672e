"""The scripted strategy computes the reference's per-rating SGD, only compiled."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import mfbench
from mfbench.data.metrics import rmse
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import (
    assert_same_state,
    hand_written_sgd,
    model_off_zero as make_model,
    revisited_ratings as small_ratings,
)
from mfbench.plugin.model_layout import find_tables
from mfbench.plugin.registry import collect
from mfbench.plugins.models.biased import BiasedDotProduct
from mfbench.plugins.models.dot import DotProduct
from mfbench.plugins.strategies.reference import Reference
from mfbench.plugins.strategies.scripted import ScriptedSGD, pair_sgd_epoch, scripted_kernel, stacked

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_equals_the_reference_strategy(kind, dtype, atol):
    ratings = small_ratings()
    start = make_model(kind, ratings).to(dtype)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(Reference(lr=0.01), expected, ratings, epochs=2, seed=5)
    testing.fit(ScriptedSGD(lr=0.01, reg=0.0), actual, ratings, epochs=2, seed=5)
    assert_same_state(actual, expected, start, atol)


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_the_contract_exactness_check_passes(kind):
    testing.assert_exact(ScriptedSGD, kind)


@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_regularized_step_equals_a_hand_written_loop(kind, dtype, atol):
    ratings = small_ratings(seed=1)
    start = make_model(kind, ratings, seed=1).to(dtype)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    hand_written_sgd(expected, ratings, epochs=3, seed=2, lr=0.03, reg=0.1)
    testing.fit(ScriptedSGD(lr=0.03, reg=0.1), actual, ratings, epochs=3, seed=2)
    assert_same_state(actual, expected, start, atol)


def test_regularization_changes_the_result():
    ratings = small_ratings()
    start = make_model("biased", ratings)
    plain, shrunk = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(ScriptedSGD(lr=0.03, reg=0.0), plain, ratings, epochs=1, seed=5)
    testing.fit(ScriptedSGD(lr=0.03, reg=0.2), shrunk, ratings, epochs=1, seed=5)
    assert shrunk.user_factors.weight.norm() < plain.user_factors.weight.norm()
    assert shrunk.user_bias.weight.norm() < plain.user_bias.weight.norm()


def test_returned_loss_is_the_mean_squared_error_before_each_step():
    ratings = small_ratings()
    model = make_model("biased", ratings)
    before = rmse(model, ratings) ** 2
    # With a vanishing step the model does not move, so every error is the starting model's.
    (loss,) = testing.fit(ScriptedSGD(lr=1e-30, reg=0.0), model, ratings, epochs=1, seed=5).losses
    assert loss == pytest.approx(before, rel=1e-5)


def test_same_seed_gives_the_same_model_bit_for_bit():
    testing.assert_deterministic(ScriptedSGD, "biased")
    testing.assert_deterministic(ScriptedSGD, "dot")


def test_trains_the_models_own_tensors_and_setup_leaves_them_alone():
    ratings = small_ratings()
    model = make_model("biased", ratings)
    weights = {name: p for name, p in model.named_parameters()}
    before = copy.deepcopy(model.state_dict())
    strategy = ScriptedSGD()
    strategy.setup(model, ratings, CPU, 0)
    for name, value in before.items():  # compiling and warming up touched a scratch copy only
        assert torch.equal(model.state_dict()[name], value), name
    strategy.run_epoch(0)
    strategy.teardown()
    assert all(p is weights[name] for name, p in model.named_parameters())
    assert not torch.equal(model.user_factors.weight, before["user_factors.weight"])
    assert torch.equal(model.global_mean, before["global_mean"])


def test_an_empty_training_set_is_a_no_op():
    empty = mfbench.Ratings.from_arrays([], [], [], 4, 3)
    model = DotProduct(4, 3, 2)
    before = copy.deepcopy(model.state_dict())
    assert testing.fit(ScriptedSGD(), model, empty, epochs=1, seed=5).losses == [None]
    assert torch.equal(model.user_factors.weight, before["user_factors.weight"])


class WithExtraLayer(DotProduct):
    def __init__(self):
        super().__init__(4, 3, 2)
        self.scale = nn.Parameter(torch.ones(()))


class BiasWithoutMean(DotProduct):
    def __init__(self):
        super().__init__(4, 3, 2)
        self.user_bias = nn.Embedding(4, 1)
        self.item_bias = nn.Embedding(3, 1)


class NotEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.user_factors = nn.Linear(2, 2)
        self.item_factors = nn.Linear(2, 2)


@pytest.mark.parametrize(
    "model, words",
    [
        (WithExtraLayer(), "does not train: ['scale']"),
        (BiasWithoutMean(), "global_mean"),
        (NotEmbeddings(), "nn.Embedding 'user_factors'"),
        (nn.Linear(2, 2), "dot and biased layouts only"),
        (BiasedDotProduct(4, 3, 2, 1.0).to(torch.float64), None),
    ],
)
def test_skip_names_what_does_not_fit(model, words):
    reason = ScriptedSGD().skip(model, CPU)
    if words is None:
        assert reason is None
    else:
        assert reason is not None and words in reason


def test_skip_accepts_the_builtin_models_and_planning_refuses_bad_params():
    assert ScriptedSGD().skip(DotProduct(4, 3, 2), CPU) is None
    assert ScriptedSGD().skip(BiasedDotProduct(4, 3, 2, 2.5), CPU) is None
    assert ScriptedSGD.check_params(ScriptedSGD.resolve_params({"lr": 0.0, "reg": -1.0})) == [
        "strategy 'scripted': lr=0.0, must be positive",
        "strategy 'scripted': reg=-1.0, must be non-negative",
    ]


def test_mixed_dtypes_are_refused():
    model = BiasedDotProduct(4, 3, 2, 1.0)
    model.user_bias.double()
    assert "one floating dtype" in ScriptedSGD().skip(model, CPU)


def test_the_kernel_runs_as_plain_python_too():
    """The TorchScript source is ordinary torch code: uncompiled, it gives the same steps."""
    ratings = small_ratings()
    model = make_model("biased", ratings)
    tables = find_tables(model, "scripted")
    W_python, W_script = stacked(tables), stacked(tables)
    args = (tables.n_users, 1, ratings.users, ratings.items, ratings.values, tables.global_mean, 0.02, 0.05)
    loss_python = pair_sgd_epoch(W_python, *args)
    loss_script = scripted_kernel()(W_script, *args)
    torch.testing.assert_close(W_script, W_python, atol=1e-6, rtol=0)
    assert loss_script == pytest.approx(loss_python, rel=1e-6)


def test_registers_through_the_plugin_manager():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.strategies.scripted"], entry_points=False, env=False)
    entry = collect(pm).strategies["scripted"]
    assert entry.cls is ScriptedSGD
    assert ScriptedSGD.exact and ScriptedSGD.deterministic
    assert set(ScriptedSGD.params) == {"lr", "reg", "lr_decay"}


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_cuda_matches_cpu(kind):
    ratings = small_ratings()
    start = make_model(kind, ratings).double()
    on_cpu, on_gpu = copy.deepcopy(start), copy.deepcopy(start).cuda()
    testing.fit(ScriptedSGD(lr=0.02, reg=0.05), on_cpu, ratings, epochs=2, seed=5)
    testing.fit(ScriptedSGD(lr=0.02, reg=0.05), on_gpu, ratings, epochs=2, device=torch.device("cuda"), seed=5)
    assert_same_state(on_gpu, on_cpu, start, atol=1e-10)
