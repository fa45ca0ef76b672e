"""The minibatch (autograd) and vectorized (hand-written gradient) strategies.

The key check: both compute the same SGD steps given the same batches, so the
fast one can be trusted as far as the plain-PyTorch one is.
"""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from torch import nn

import mfbench
from mfbench.data.planted import planted
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.registry import collect
from mfbench.plugins.common.batching import ExpectedCounts, batch_slices, shuffled
from mfbench.plugins.models.biased import BiasedDotProduct
from mfbench.plugins.models.dot import DotProduct
from mfbench.plugins.strategies.minibatch import Minibatch
from mfbench.plugins.strategies.reference import Reference
from mfbench.plugins.strategies.vectorized import Vectorized
from mfbench.run.plan import RunConfig, plan

CPU = torch.device("cpu")
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
#: Held-out RMSE within 15% of the planted noise (0.5).
TARGET = 0.575


def make_model(kind: str, ratings: mfbench.Ratings, k: int, seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "dot":
        model = DotProduct(ratings.n_users, ratings.n_items, k, init_std=0.1)
    else:
        model = BiasedDotProduct(ratings.n_users, ratings.n_items, k, ratings.mean(), init_std=0.1)
    return model.to(dtype)


def train(
    strategy: mfbench.Strategy,
    model: nn.Module,
    ratings: mfbench.Ratings,
    epochs: int,
    seed: int = 0,
    test: mfbench.Ratings | None = None,
    stop_below: float | None = None,
) -> list[float]:
    """Run the runner's protocol (mfbench.plugin.contract_checks.fit); held-out RMSE after each epoch when ``test`` is given."""
    result = testing.fit(strategy, model, ratings, epochs, test=test, seed=seed, stop_below=stop_below)
    assert result.skipped is None, result.skipped
    assert all(loss is None or math.isfinite(loss) for loss in result.losses), result.losses
    return result.test_rmse


@pytest.fixture(scope="module")
def small():
    return planted(n_users=60, n_items=40, nnz=900, rank=3, noise=0.3, seed=1)


@pytest.fixture
def one_thread():
    """One intra-op thread for a test (steadier on a shared machine), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def contract_split():
    data = planted(n_users=2000, n_items=1000, nnz=100_000, rank=5, noise=0.5, seed=0)
    return data.split(0.1, seed=0)


def test_both_register_through_their_plugins():
    pm = mfbench.make_plugin_manager(
        ["mfbench.plugins.strategies.minibatch", "mfbench.plugins.strategies.vectorized"],
        defaults=False,
        entry_points=False,
        env=False,
    )
    strategies = collect(pm).strategies
    assert strategies["minibatch"].cls is Minibatch
    assert strategies["vectorized"].cls is Vectorized
    assert strategies["minibatch"].plugin == "mfbench.plugins.strategies.minibatch"
    for cls in (Minibatch, Vectorized):
        assert not cls.exact
        assert {"batch_size", "lr", "reg"} <= set(cls.params)
        assert cls.devices == ("cpu", "cuda")


def test_batches_cover_every_rating_once_in_the_epoch_order(small):
    slices = batch_slices(len(small), 128)
    assert [s.stop - s.start for s in slices] == [128] * 7 + [len(small) - 7 * 128]
    u0, i0, v0 = shuffled(small.users, small.items, small.values, seed=5, epoch=0)
    u1, _, _ = shuffled(small.users, small.items, small.values, seed=5, epoch=1)
    order = mfbench.epoch_permutation(len(small), 5, 0)
    assert torch.equal(u0, small.users[order]) and torch.equal(i0, small.items[order])
    assert torch.equal(v0, small.values[order])
    assert not torch.equal(u0, u1), "each epoch must be reshuffled"


@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("reg", [0.0, 0.05])
@pytest.mark.parametrize("row_step", ["expected", "mean", "sum"])
def test_vectorized_takes_the_same_steps_as_minibatch_sgd(small, kind, reg, row_step):
    start = make_model(kind, small, k=4, dtype=torch.float64)
    by_autograd, by_hand = copy.deepcopy(start), copy.deepcopy(start)
    # 9 batches per epoch, rows repeat within a batch (and some are expected more than once per batch).
    params = {"batch_size": 100, "lr": 0.02, "reg": reg, "row_step": row_step}
    train(Minibatch(optimizer="sgd", **params), by_autograd, small, epochs=3, seed=7)
    train(Vectorized(**params), by_hand, small, epochs=3, seed=7)
    for name, expected in by_autograd.state_dict().items():
        torch.testing.assert_close(by_hand.state_dict()[name], expected, rtol=1e-12, atol=1e-12, msg=name)
        if name != "global_mean":
            assert not torch.equal(expected, start.state_dict()[name]), f"{name} was not trained"


@pytest.mark.parametrize("row_step", ["sum", "mean", "expected"])
def test_reg_shrinks_rows_by_the_per_rating_convention(small, row_step):
    """One batch, lr small: the reg part of a factor row's step is -2*lr*reg*p per rating,
    summed over the row's ratings in the batch (row_step=sum) or averaged over them (mean, and
    expected: in a batch of all ratings a row's expected count is its count)."""
    model = make_model("dot", small, k=3, dtype=torch.float64)
    no_reg, with_reg = copy.deepcopy(model), copy.deepcopy(model)
    params = {"batch_size": len(small), "lr": 1e-3, "row_step": row_step}
    train(Vectorized(reg=0.0, **params), no_reg, small, epochs=1)
    train(Vectorized(reg=0.5, **params), with_reg, small, epochs=1)
    count = torch.bincount(small.users, minlength=small.n_users).double().unsqueeze(1)
    if row_step != "sum":
        count = count.clamp(max=1)  # rated users step once; unrated ones not at all
    p = model.user_factors.weight.detach()
    difference = with_reg.user_factors.weight.detach() - no_reg.user_factors.weight.detach()
    torch.testing.assert_close(difference, -2 * 1e-3 * 0.5 * count * p)


@pytest.mark.parametrize("cls", [Minibatch, Vectorized])
def test_row_mean_steps_a_row_by_the_mean_of_its_ratings_steps(cls):
    """One user rated 40 times in one batch moves by the mean of its 40 per-rating steps,
    where row_step=sum moves it by their sum (40x as far)."""
    users = torch.zeros(40, dtype=torch.int64)
    items = torch.arange(40)
    ratings = mfbench.Ratings(users, items, torch.linspace(1.0, 4.0, 40), n_users=1, n_items=40)
    start = make_model("biased", ratings, k=2, dtype=torch.float64)
    moved, items_after = {}, {}
    for row_step in ("sum", "mean", "expected"):
        model = copy.deepcopy(start)
        train(cls(batch_size=40, lr=0.01, reg=0.1, row_step=row_step), model, ratings, epochs=1)
        moved[row_step] = model.user_bias.weight.detach() - start.user_bias.weight.detach()
        items_after[row_step] = model.item_factors.weight.detach()
    for row_step in ("mean", "expected"):  # items occur once each: the same step under every convention
        torch.testing.assert_close(items_after[row_step], items_after["sum"], rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        errors = start(users, items) - ratings.values.double()
    torch.testing.assert_close(moved["mean"], (-2 * 0.01 * errors.mean()).view(1, 1))
    torch.testing.assert_close(moved["sum"], 40 * moved["mean"])
    torch.testing.assert_close(moved["expected"], moved["mean"])  # one batch of everything: expected = actual


def test_expected_counts_divide_only_rows_expected_more_than_once_per_batch():
    """A row with n of N ratings is expected n * B / N times in a batch of B; below 1 it is not divided."""
    index = torch.tensor([0] * 8 + [1])
    weights = ExpectedCounts(index, n_rows=3, batch_size=3, dtype=torch.float64)
    torch.testing.assert_close(
        weights.inverse(torch.tensor([1, 0, 2, 0])), torch.tensor([1.0, 9 / 24, 1.0, 9 / 24], dtype=torch.float64)
    )
    # A batch larger than the data holds every rating once: the expected count is the count.
    whole = ExpectedCounts(index, n_rows=3, batch_size=100, dtype=torch.float64)
    torch.testing.assert_close(whole.inverse(torch.tensor([0, 1])), torch.tensor([1 / 8, 1.0], dtype=torch.float64))


def test_row_steps_keep_a_popular_row_stable_where_the_sum_diverges():
    """One user holds half the ratings: summed steps blow up at lr 0.05, divided ones learn."""
    generator = torch.Generator().manual_seed(0)
    n = 2000
    users = torch.cat([torch.zeros(n // 2, dtype=torch.int64), torch.randint(1, 200, (n // 2,), generator=generator)])
    items = torch.randint(0, 100, (n,), generator=generator)
    ratings = mfbench.Ratings(users, items, torch.rand(n, generator=generator) * 4 + 1, n_users=200, n_items=100)
    finals = {}
    for row_step in ("sum", "mean", "expected"):
        model = make_model("biased", ratings, k=3)
        strategy = Vectorized(batch_size=500, lr=0.05, reg=0.05, row_step=row_step)
        strategy.setup(model, ratings, CPU, 0)
        losses = [strategy.run_epoch(epoch) for epoch in range(3)]
        strategy.teardown()
        finals[row_step] = losses[-1]
    assert not finals["sum"] < 10, finals  # NaN or huge: the popular row took ~250 summed steps at once
    assert finals["mean"] < 2 and finals["expected"] < 2, finals


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_one_rating_batches_are_the_reference_loop(kind):
    """With batch_size=1 and reg=0, the summed loss makes each step the reference's per-rating step."""
    ratings = planted(n_users=12, n_items=9, nnz=60, rank=3, noise=0.1, seed=0)
    start = make_model(kind, ratings, k=3, dtype=torch.float64)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    train(Reference(lr=0.01), expected, ratings, epochs=2, seed=3)
    train(Vectorized(batch_size=1, lr=0.01, reg=0.0), actual, ratings, epochs=2, seed=3)
    for name, want in expected.state_dict().items():
        torch.testing.assert_close(actual.state_dict()[name], want, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("cls", [Minibatch, Vectorized])
def test_steps_land_in_the_models_own_tensors_and_repeat_bit_for_bit(small, cls):
    runs = []
    for _ in range(2):
        model = make_model("biased", small, k=4)
        weight = model.user_factors.weight
        pointer, before = weight.data_ptr(), weight.detach().clone()
        train(cls(), model, small, epochs=2, seed=11)
        assert model.user_factors.weight is weight and weight.data_ptr() == pointer
        assert not torch.equal(weight.detach(), before)
        runs.append(model.state_dict())
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name


def test_run_epoch_returns_the_running_training_mse(small):
    model = make_model("biased", small, k=4)
    strategy = Vectorized(lr=1e-9)  # the model barely moves: the running MSE is the model's MSE
    strategy.setup(model, small, CPU, 0)
    with torch.no_grad():
        mse = float((model(small.users, small.items) - small.values).square().mean())
    assert strategy.run_epoch(0) == pytest.approx(mse, rel=1e-4)
    strategy.teardown()


# sgd's 0.06: on this small matrix a user is expected ~1.7 times per batch of 512, and the default
# row_step=expected divides its step by that.
@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.06), ("adagrad", 0.3), ("sparseadam", 0.03)])
def test_every_optimizer_learns(one_thread, optimizer, lr):
    """Held-out RMSE from about 1.05 to near the noise (0.3) on a small planted matrix."""
    train_part, test_part = planted(n_users=300, n_items=200, nnz=12_000, rank=3, noise=0.3, seed=2).split(0.1, 0)
    model = make_model("biased", train_part, k=3)
    curve = train(Minibatch(optimizer=optimizer, lr=lr, batch_size=512, reg=0.01), model, train_part, 12, test=test_part)
    assert curve[-1] <= 0.4, [round(x, 3) for x in curve]


def test_reg_hooks_are_removed_at_teardown(small):
    model = make_model("biased", small, k=3)
    strategy = Minibatch(reg=0.1)
    train(strategy, model, small, epochs=1)
    assert all(not m._forward_hooks for m in model.modules())


class Cubed(nn.Module):
    """A differentiable model the vectorized gradient knows nothing about."""

    def __init__(self, n_users: int, n_items: int, sparse: bool = True) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, 2, sparse=sparse)
        self.item_factors = nn.Embedding(n_items, 2, sparse=sparse)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, users, items):
        return self.scale * (self.user_factors(users) * self.item_factors(items)).sum(1) ** 3


def test_vectorized_skips_models_it_cannot_differentiate(small):
    reason = Vectorized().skip(Cubed(small.n_users, small.n_items), CPU)
    assert reason and "scale" in reason
    assert "user_factors" in Vectorized().skip(nn.Linear(2, 1), CPU)
    assert Vectorized().skip(make_model("dot", small, 3), CPU) is None
    assert Vectorized().skip(make_model("biased", small, 3), CPU) is None


def test_minibatch_trains_any_differentiable_model_and_skips_what_it_cannot(small):
    model = Cubed(small.n_users, small.n_items)
    scale = model.scale.detach().clone()
    train(Minibatch(lr=1e-4, reg=0.0), model, small, epochs=1)
    assert not torch.equal(model.scale.detach(), scale)
    assert "dense" in Minibatch(optimizer="sparseadam").skip(model, CPU)
    assert "nn.Embedding" in Minibatch(reg=0.1).skip(nn.Bilinear(1, 1, 1), CPU)
    assert Minibatch(reg=0.0).skip(nn.Bilinear(1, 1, 1), CPU) is None


@pytest.mark.parametrize(
    "selection, words",
    [
        ("minibatch[optimizer=adam]", "optimizer='adam', must be one of 'sgd', 'adagrad', 'sparseadam'"),
        ("minibatch[batch_size=0]", "batch_size=0, must be at least 1"),
        ("minibatch[row_step=median]", "row_step='median', must be one of"),
        ("vectorized[lr=0]", "lr=0.0, must be positive"),
        ("vectorized[reg=-1]", "reg=-1.0, must be non-negative"),
    ],
)
def test_bad_values_are_refused_while_planning(fresh_pm, selection, words):
    """A bad value is a usage error before any data is loaded, never an error when the case runs."""
    with pytest.raises(mfbench.SelectionError, match=r"strategy '\w+': " + re.escape(words)):
        plan(collect(fresh_pm), ["lowrank"], ["dot"], [selection], ["cpu"], RunConfig())


@pytest.mark.cuda
@NEEDS_CUDA
@pytest.mark.parametrize("cls", [Minibatch, Vectorized])
def test_cuda_takes_the_cpu_steps(small, cls):
    cuda = torch.device("cuda")
    start = make_model("biased", small, k=4, dtype=torch.float64)
    on_cpu, on_gpu = copy.deepcopy(start), copy.deepcopy(start).to(cuda)
    train(cls(batch_size=100, reg=0.05), on_cpu, small, epochs=2, seed=2)
    strategy = cls(batch_size=100, reg=0.05)
    assert strategy.skip(on_gpu, cuda) is None
    strategy.setup(on_gpu, small.to(cuda), cuda, 2)
    for epoch in range(2):
        strategy.run_epoch(epoch)
    strategy.teardown()
    for name, want in on_cpu.state_dict().items():
        torch.testing.assert_close(on_gpu.state_dict()[name].cpu(), want, rtol=1e-9, atol=1e-9, msg=name)
