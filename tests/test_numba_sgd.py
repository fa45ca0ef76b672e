"""The numba strategy: the reference's per-rating SGD compiled, in place on the model's weights."""

from __future__ import annotations

import copy
import functools
import importlib.util
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

import mfbench
from mfbench.data.metrics import rmse
from mfbench.data.planted import planted
from mfbench.errors import SelectionError
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import assert_same_state, hand_written_sgd, revisited_ratings as small_ratings
from mfbench.plugin.registry import collect
from mfbench.plugins.models.biased import BiasedDotProduct
from mfbench.plugins.models.dot import DotProduct
from mfbench.plugins.strategies.reference import Reference

numba = pytest.importorskip("numba")

from mfbench.plugins.common.blocks import block_layout, stratum_plan  # noqa: E402
from mfbench.plugins.strategies import numba as numba_sgd  # noqa: E402
from mfbench.plugins.strategies.numba import NumbaSGD  # noqa: E402

CPU = torch.device("cpu")
two_numba_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has a single thread here")


#: The kit's exactness model (biases off zero too), five factors wide unless told.
make_model = functools.partial(testing.model_off_zero, k=5)


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(a.state_dict()[key], value) for key, value in b.state_dict().items())


# --- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_the_contract_exactness_check_passes(kind):
    assert NumbaSGD.exact
    testing.assert_exact(NumbaSGD, kind)


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_equals_the_reference_strategy_in_float64(kind):
    ratings = small_ratings()
    start = make_model(kind, ratings).double()
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(Reference(lr=0.01), expected, ratings, epochs=3, seed=5)
    testing.fit(NumbaSGD(lr=0.01, reg=0.0), actual, ratings, epochs=3, seed=5)
    assert actual.user_factors.weight.dtype == torch.float64
    assert_same_state(actual, expected, start, atol=1e-12)


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_regularized_step_equals_a_hand_written_loop(kind):
    ratings = small_ratings(seed=1)
    start = make_model(kind, ratings, seed=1).double()
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    hand_written_sgd(expected, ratings, epochs=3, seed=2, lr=0.03, reg=0.1)
    testing.fit(NumbaSGD(lr=0.03, reg=0.1), actual, ratings, epochs=3, seed=2)
    assert_same_state(actual, expected, start, atol=1e-12)


def test_factor_width_not_a_multiple_of_four_is_handled():
    """The dot product runs four partial sums plus a tail: widths 1, 6 and 7 exercise the tail."""
    ratings = small_ratings()
    for k in (1, 6, 7):
        start = make_model("biased", ratings, k=k).double()
        expected, actual = copy.deepcopy(start), copy.deepcopy(start)
        testing.fit(Reference(lr=0.02), expected, ratings, epochs=1, seed=5)
        testing.fit(NumbaSGD(lr=0.02, reg=0.0), actual, ratings, epochs=1, seed=5)
        assert_same_state(actual, expected, start, atol=1e-12)


def test_lr_decay_divides_the_step_per_epoch():
    ratings = small_ratings()
    start = make_model("biased", ratings).double()
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    # Epoch 1 at lr / (1 + 0.5 * 1): the same as two hand-written epochs at those rates.
    hand_written_sgd(expected, ratings, epochs=1, seed=5, lr=0.03, reg=0.05)
    strategy = NumbaSGD(lr=0.03, reg=0.05, lr_decay=0.5)
    strategy.setup(actual, ratings, CPU, 5)
    strategy.run_epoch(0)
    assert_same_state(actual, expected, start, atol=1e-12)
    strategy.run_epoch(1)
    strategy.teardown()
    P, Q = expected.user_factors.weight.detach(), expected.item_factors.weight.detach()
    bu, bi = expected.user_bias.weight.detach(), expected.item_bias.weight.detach()
    lr, reg = 0.03 / 1.5, 0.05
    for k in mfbench.epoch_permutation(len(ratings), 5, 1).tolist():
        u, i, r = int(ratings.users[k]), int(ratings.items[k]), float(ratings.values[k])
        p, q = P[u].clone(), Q[i].clone()
        err = float(p @ q) + expected.global_mean.item() + float(bu[u, 0]) + float(bi[i, 0]) - r
        P[u] = p - lr * (2 * err * q + 2 * reg * p)
        Q[i] = q - lr * (2 * err * p + 2 * reg * q)
        bu[u, 0] = bu[u, 0] - lr * (2 * err + 2 * reg * bu[u, 0])
        bi[i, 0] = bi[i, 0] - lr * (2 * err + 2 * reg * bi[i, 0])
    assert_same_state(actual, expected, start, atol=1e-12)


def test_returned_loss_is_the_mean_squared_error_before_each_step():
    ratings = small_ratings()
    model = make_model("biased", ratings)
    before = rmse(model, ratings) ** 2
    # With a vanishing step the model does not move, so every error is the starting model's.
    (loss,) = testing.fit(NumbaSGD(lr=1e-30, reg=0.0), model, ratings, epochs=1, seed=5).losses
    assert loss == pytest.approx(before, rel=1e-5)


# --- learning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["biased", "dot"])
def test_defaults_learn_at_the_planted_l2(kind):
    """The default step at the planted problem's L2 (test_strategy_contract.PLANTED_L2)."""
    assert testing.assert_learns(NumbaSGD, kind, max_epochs=30, params={"reg": 0.02}) <= 30


@pytest.mark.parametrize(
    "params",
    [
        {"threads": 2},
        {"schedule": "blocked", "blocks": 3},
        {"schedule": "blocked", "threads": 2, "cell_order": "shuffled"},
    ],
    ids=["hogwild", "blocked-by-user", "blocked-shuffled-2-threads"],
)
def test_parallel_and_blocked_schedules_learn(params):
    if params.get("threads", 1) > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba has fewer threads here")
    testing.assert_learns(NumbaSGD, "biased", max_epochs=30, params={**params, "reg": 0.02})


def test_decaying_step_learns_in_fewer_epochs():
    # Measured: 13 epochs on biased, 12 on dot; the constant default step takes 21 and 24.
    assert testing.assert_learns(NumbaSGD, "biased", max_epochs=16, params={"lr": 0.05, "lr_decay": 0.3, "reg": 0.02}) <= 16


def test_a_diverging_run_reports_a_non_finite_loss_instead_of_crashing():
    ratings = small_ratings()
    model = make_model("dot", ratings)
    losses = testing.fit(NumbaSGD(lr=1e3), model, ratings, epochs=3, seed=5).losses
    assert not math.isfinite(losses[-1])


# --- determinism and schedules ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["biased", "dot"])
def test_same_seed_gives_the_same_model_bit_for_bit(kind):
    testing.assert_deterministic(NumbaSGD, kind)


def test_blocked_schedule_is_reproducible_and_seeded():
    ratings = small_ratings()
    start = make_model("biased", ratings)
    runs = []
    for seed in (5, 5, 6):
        model = copy.deepcopy(start)
        testing.fit(NumbaSGD(schedule="blocked", blocks=3), model, ratings, epochs=2, seed=seed)
        runs.append(model)
    assert states_equal(runs[0], runs[1])
    assert not states_equal(runs[0], runs[2])


@two_numba_threads
def test_blocked_schedule_gives_the_same_model_on_any_thread_count():
    """Cells of a stratum share no rows, so running them at once changes nothing, bit for bit."""
    train_set, _ = testing.planted_split(n_users=300, n_items=200, nnz=6000)
    start = make_model("biased", train_set)
    one, two = copy.deepcopy(start), copy.deepcopy(start)
    loss_one = testing.fit(NumbaSGD(schedule="blocked", blocks=4), one, train_set, epochs=2, seed=5).losses
    loss_two = testing.fit(NumbaSGD(schedule="blocked", blocks=4, threads=2), two, train_set, epochs=2, seed=5).losses
    assert states_equal(one, two)
    assert loss_one == loss_two
    assert not states_equal(one, start)


def test_block_layout_stores_every_rating_once_cell_by_cell():
    ratings = planted(40, 30, 500, rank=2, noise=0.1, seed=3)
    users, items, values = ratings.users.numpy(), ratings.items.numpy(), ratings.values.numpy()
    for by_user in (False, True):
        u, i, v, offsets = block_layout(users, items, values, 40, 30, 4, seed=1, by_user=by_user)
        assert offsets[0] == 0 and offsets[-1] == len(users) and np.all(np.diff(offsets) >= 0)
        stored = sorted(zip(u.tolist(), i.tolist(), v.tolist(), strict=True))
        assert stored == sorted(zip(users.tolist(), items.tolist(), values.tolist(), strict=True))
        for cell in range(16):
            rows, cols = divmod(cell, 4)
            lo, hi = offsets[cell], offsets[cell + 1]
            assert np.all(u[lo:hi] * 4 // 40 == rows) and np.all(i[lo:hi] * 4 // 30 == cols)
            if by_user:
                assert np.all(np.diff(u[lo:hi]) >= 0)
        again = block_layout(users, items, values, 40, 30, 4, seed=1, by_user=by_user)
        assert all(np.array_equal(a, b) for a, b in zip((u, i, v, offsets), again, strict=True))


def test_every_stratum_is_conflict_free_and_the_epoch_covers_the_grid():
    blocks = 5
    row_perm, col_perm, strata = stratum_plan(blocks, seed=2, epoch=7)
    seen = set()
    for shift in strata:
        cells = [(row_perm[j], col_perm[(j + shift) % blocks]) for j in range(blocks)]
        assert len({r for r, _ in cells}) == blocks and len({c for _, c in cells}) == blocks
        seen.update(cells)
    assert len(seen) == blocks * blocks
    assert [p.tolist() for p in stratum_plan(blocks, 2, 7)] == [row_perm.tolist(), col_perm.tolist(), strata.tolist()]
    assert [p.tolist() for p in stratum_plan(blocks, 2, 8)] != [row_perm.tolist(), col_perm.tolist(), strata.tolist()]


@two_numba_threads
def test_info_records_threads_layer_and_blocks():
    ratings = small_ratings()
    strategy = NumbaSGD(threads=2, schedule="blocked", blocks=2)
    strategy.setup(make_model("dot", ratings), ratings, CPU, 0)
    strategy.run_epoch(0)
    facts = strategy.info()
    strategy.teardown()
    assert facts["threads"] == 2 and facts["blocks"] == 2 and facts["schedule"] == "blocked"
    assert facts["threading_layer"] in ("tbb", "omp", "workqueue")
    assert facts["numba"] == numba.__version__
    assert NumbaSGD.scales_with == "threads" and "threads" in NumbaSGD.params


def test_numba_threads_are_restored_and_torch_threads_untouched():
    ratings = small_ratings()
    numba_before, torch_before = numba.get_num_threads(), torch.get_num_threads()
    testing.fit(NumbaSGD(threads=min(2, numba.config.NUMBA_NUM_THREADS)), make_model("dot", ratings), ratings, epochs=1, seed=5)
    assert numba.get_num_threads() == numba_before
    assert torch.get_num_threads() == torch_before


# --- in place on the model's own weights ---------------------------------------------------------


def test_trains_the_models_own_tensors_and_setup_leaves_them_alone():
    ratings = small_ratings()
    model = make_model("biased", ratings)
    weights = {name: p for name, p in model.named_parameters()}
    before = copy.deepcopy(model.state_dict())
    strategy = NumbaSGD(lr=0.05)
    strategy.setup(model, ratings, CPU, 0)
    for name, value in before.items():  # compiling and warming up touched a scratch problem only
        assert torch.equal(model.state_dict()[name], value), name
    views = strategy.arrays[:4]
    for view, tensor in zip(views, weights.values(), strict=True):
        assert np.shares_memory(view, tensor.detach().numpy()), "a kernel array is a copy, not a view"
    loss = strategy.run_epoch(0)
    after_one = rmse(model, ratings)
    strategy.run_epoch(1)
    strategy.teardown()
    assert all(p is weights[name] for name, p in model.named_parameters())
    for name in ("user_factors.weight", "item_factors.weight", "user_bias.weight", "item_bias.weight"):
        assert not torch.equal(model.state_dict()[name], before[name]), f"{name} did not change"
    assert torch.equal(model.global_mean, before["global_mean"])
    # Seen through the model after each epoch: training moved its predictions, no copy went stale.
    assert rmse(model, ratings) < after_one < math.sqrt(loss) * 1.5


def test_an_empty_training_set_is_a_no_op():
    empty = mfbench.Ratings.from_arrays([], [], [], 4, 3)
    model = DotProduct(4, 3, 2)
    before = copy.deepcopy(model.state_dict())
    assert testing.fit(NumbaSGD(), model, empty, epochs=1, seed=5).losses == [None]
    assert torch.equal(model.user_factors.weight, before["user_factors.weight"])


# --- skip reasons and parameters ------------------------------------------------------------------


class WithExtraLayer(DotProduct):
    def __init__(self):
        super().__init__(4, 3, 2)
        self.scale = nn.Parameter(torch.ones(()))


class NotEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.user_factors = nn.Linear(2, 2)
        self.item_factors = nn.Linear(2, 2)


@pytest.mark.parametrize(
    "model, words",
    [
        (WithExtraLayer(), "does not train: ['scale']"),
        (NotEmbeddings(), "nn.Embedding 'user_factors'"),
        (nn.Linear(2, 2), "dot and biased layouts only"),
        (DotProduct(4, 3, 2).half(), "float32 or float64"),
        (DotProduct(4, 3, 2), None),
        (BiasedDotProduct(4, 3, 2, 1.0).double(), None),
    ],
)
def test_skip_names_what_does_not_fit(model, words):
    reason = NumbaSGD().skip(model, CPU)
    if words is None:
        assert reason is None
    else:
        assert reason is not None and words in reason


@pytest.mark.parametrize(
    "params, words",
    [
        ({"lr": 0.0}, "lr=0.0, must be positive"),
        ({"reg": -1.0}, "reg=-1.0, must be non-negative"),
        ({"lr_decay": -1.0}, "lr_decay=-1.0, must be non-negative"),
        ({"schedule": "zigzag"}, "schedule='zigzag', must be one of 'epoch', 'blocked'"),
        ({"threads": 0}, "threads=0, must be at least 1"),
        ({"blocks": -1}, "blocks=-1, must be at least 0"),
        ({"cell_order": "random"}, "cell_order='random', must be one of 'shuffled', 'user'"),
    ],
)
def test_planning_refuses_bad_params(params, words):
    problems = NumbaSGD.check_params(NumbaSGD.resolve_params(params))
    assert len(problems) == 1 and problems[0].startswith(f"strategy 'numba': {words}"), problems


def test_more_threads_than_numbas_pool_is_this_machines_limit_a_skip_not_a_bad_value():
    assert NumbaSGD.check_params(NumbaSGD.resolve_params({"threads": 10_000})) == []
    reason = NumbaSGD(threads=10_000).skip(DotProduct(4, 3, 2), CPU)
    assert reason is not None and "NUMBA_NUM_THREADS" in reason


def test_skips_cuda_with_a_reason_and_setup_refuses_what_skip_refuses():
    assert "cpu" in NumbaSGD().skip(DotProduct(4, 3, 2), torch.device("cuda"))
    with pytest.raises(mfbench.MfbenchError, match="nn.Embedding"):
        NumbaSGD().setup(NotEmbeddings(), small_ratings(), CPU, 0)


# --- registration and the missing-numba path -----------------------------------------------------


def test_registers_through_the_plugin_manager():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.strategies.numba"], entry_points=False, env=False)
    entry = collect(pm).strategies["numba"]
    assert entry.cls is NumbaSGD and NumbaSGD.unavailable is None
    assert NumbaSGD.devices == ("cpu",) and NumbaSGD.exact and NumbaSGD.deterministic


def test_without_numba_the_module_imports_and_registers_an_unavailable_class(monkeypatch):
    """A fresh copy of the module, imported while ``import numba`` fails; the real module is untouched."""
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    spec = importlib.util.spec_from_file_location("numba_sgd_without_numba", numba_sgd.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = module.NumbaSGD
    assert cls.unavailable and "pip install 'mfbench[numba]'" in cls.unavailable
    pm = mfbench.make_plugin_manager(defaults=False, entry_points=False, env=False)
    pm.register(module, name="numba_sgd_without_numba")
    registry = collect(pm)
    assert "numba" not in registry.strategies
    assert registry.unavailable["strategy"]["numba"].cls is cls
    with pytest.raises(SelectionError, match=r"mfbench\[numba\]"):
        registry.get(mfbench.Strategy, "numba")
    with pytest.raises(mfbench.MfbenchError, match="numba is not installed"):
        cls().setup(DotProduct(4, 3, 2), mfbench.Ratings.from_arrays([0], [0], [1.0], 4, 3), CPU, 0)
    assert NumbaSGD.unavailable is None  # the module the rest of the suite uses still has numba
