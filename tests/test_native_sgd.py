"""native-sgd: the C/OpenMP per-rating SGD in numba's blocked order, built at setup and cached."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from mfbench.data.planted import planted
from mfbench.errors import MfbenchError
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import assert_same_state
from mfbench.plugins.common import native_build
from mfbench.plugins.common.blocks import block_layout, stratum_plan
from mfbench.plugins.models.biased import BiasedDotProduct
from mfbench.plugins.models.dot import DotProduct
from mfbench.plugins.strategies.native_sgd import NativeSGD

pytestmark = pytest.mark.skipif(NativeSGD.unavailable is not None, reason=str(NativeSGD.unavailable))

CPU = torch.device("cpu")


def small_ratings(seed: int = 0):
    """Small, with rows revisited in every cell of a 3 x 3 grid."""
    return planted(24, 18, 200, rank=3, noise=0.1, seed=seed)


def make_model(kind: str, ratings, k: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "dot":
        return DotProduct(ratings.n_users, ratings.n_items, k, init_std=0.3)
    model = BiasedDotProduct(ratings.n_users, ratings.n_items, k, ratings.mean(), init_std=0.3)
    with torch.no_grad():  # biases away from zero, so a wrong bias step cannot hide
        model.user_bias.weight.normal_(0.0, 0.2)
        model.item_bias.weight.normal_(0.0, 0.2)
    return model


def hand_written_blocked_sgd(
    model: nn.Module, ratings, epochs: int, seed: int, lr: float, reg: float, blocks: int
) -> list[float]:
    """numba's blocked schedule written out in Python: the grid layout, then strata in each epoch's plan."""
    P, Q = model.user_factors.weight.detach(), model.item_factors.weight.detach()
    biased = hasattr(model, "user_bias")
    users, items, values, offsets = block_layout(
        ratings.users.numpy(),
        ratings.items.numpy(),
        ratings.values.numpy().astype(np.float64),
        ratings.n_users,
        ratings.n_items,
        blocks,
        seed,
        True,
    )
    losses = []
    for epoch in range(epochs):
        rows, cols, strata = stratum_plan(blocks, seed, epoch)
        total = 0.0
        for s in range(blocks):
            for j in range(blocks):
                cell = rows[j] * blocks + cols[(j + strata[s]) % blocks]
                for t in range(offsets[cell], offsets[cell + 1]):
                    u, i, r = int(users[t]), int(items[t]), float(values[t])
                    p, q = P[u].clone(), Q[i].clone()
                    err = float(p @ q) - r
                    if biased:
                        err += (
                            model.global_mean.item() + float(model.user_bias.weight[u, 0]) + float(model.item_bias.weight[i, 0])
                        )
                    total += err * err
                    P[u] = p - lr * (2 * err * q + 2 * reg * p)
                    Q[i] = q - lr * (2 * err * p + 2 * reg * q)
                    if biased:
                        for table, row in ((model.user_bias.weight, u), (model.item_bias.weight, i)):
                            table.data[row, 0] = table[row, 0] - lr * (2 * err + 2 * reg * table[row, 0])
        losses.append(total / len(ratings))
    return losses


# --- same order, same arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("threads", [1, 2])
def test_equals_the_blocked_schedule_written_out_in_float64(kind, threads):
    ratings = small_ratings()
    start = make_model(kind, ratings).double()
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    with torch.no_grad():
        want = hand_written_blocked_sgd(expected, ratings, epochs=2, seed=4, lr=0.03, reg=0.05, blocks=3)
    got = testing.fit(NativeSGD(lr=0.03, reg=0.05, blocks=3, threads=threads), actual, ratings, epochs=2, seed=4).losses
    assert_same_state(actual, expected, start, atol=1e-12)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed (pip install 'mfbench[numba]')")
@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_trains_the_same_model_as_numba_blocked(kind, dtype, atol):
    from mfbench.plugins.strategies.numba import NumbaSGD

    ratings = small_ratings(seed=1)
    start = make_model(kind, ratings, k=7, seed=1).to(dtype)  # k=7: the vector loops' tails run too
    native, numba_model = copy.deepcopy(start), copy.deepcopy(start)
    common = dict(lr=0.03, reg=0.05, lr_decay=0.5, blocks=4, cell_order="shuffled")
    native_losses = testing.fit(NativeSGD(threads=2, **common), native, ratings, epochs=3, seed=2).losses
    numba_losses = testing.fit(NumbaSGD(schedule="blocked", **common), numba_model, ratings, epochs=3, seed=2).losses
    assert_same_state(native, numba_model, start, atol=atol)
    assert native_losses == pytest.approx(numba_losses, rel=1e-5)


def test_any_thread_count_gives_the_same_model_bit_for_bit():
    train_set, _ = testing.planted_split(n_users=300, n_items=200, nnz=6000)
    start = make_model("biased", train_set)
    one, three = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(NativeSGD(blocks=6), one, train_set, epochs=2, seed=5)
    testing.fit(NativeSGD(blocks=6, threads=3), three, train_set, epochs=2, seed=5)
    for key, value in one.state_dict().items():
        assert torch.equal(value, three.state_dict()[key]), key


def test_two_threads_on_shuffled_cells_learn():
    """The defaults' learning check is the contract's (tests/test_strategy_contract.py); this is the other cell order,
    at the planted models' L2 (the contract's too: the default 0.05 is sized for real ratings)."""
    params = {"threads": 2, "cell_order": "shuffled", "reg": 0.02}
    assert testing.assert_learns(NativeSGD, "dot", max_epochs=30, params=params) <= 30


def test_a_diverging_run_reports_a_non_finite_loss():
    ratings = small_ratings()
    losses = testing.fit(NativeSGD(lr=5.0, reg=0.0), make_model("dot", ratings), ratings, epochs=6, seed=5).losses
    assert not np.isfinite(losses[-1])


def test_an_empty_training_set_is_a_no_op():
    ratings = small_ratings()
    empty = ratings.subset(torch.zeros(0, dtype=torch.long))
    model = make_model("dot", ratings)
    before = copy.deepcopy(model.state_dict())
    assert testing.fit(NativeSGD(), model, empty, epochs=1, seed=5).losses == [None]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- refusing what does not fit ------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, words",
    [
        ({"threads": 0}, "threads=0, must be at least 1"),
        ({"blocks": -1}, "blocks=-1, must be at least 0"),
        ({"cell_order": "zigzag"}, "cell_order='zigzag', must be one of"),
        ({"lr": 0.0}, "lr=0.0, must be positive"),
        ({"reg": -1.0}, "reg=-1.0, must be non-negative"),
        ({"lr_decay": -1.0}, "lr_decay=-1.0, must be non-negative"),
    ],
)
def test_planning_refuses_bad_params(params, words):
    problems = NativeSGD.check_params(NativeSGD.resolve_params(params))
    assert len(problems) == 1 and problems[0].startswith(f"strategy 'native-sgd': {words}"), problems


def test_skips_cuda_and_other_dtypes_with_a_reason():
    ratings = small_ratings()
    assert "runs on cpu, not cuda" in NativeSGD().skip(make_model("dot", ratings), torch.device("cuda"))
    assert "float32 or float64" in NativeSGD().skip(make_model("dot", ratings).half(), CPU)
    with pytest.raises(MfbenchError, match="float32 or float64"):
        NativeSGD().setup(make_model("dot", ratings).half(), ratings, CPU, 0)


def test_registered_with_the_roofline_work_of_per_rating_sgd():
    registry = testing.builtin_registry()
    assert registry.strategies["native-sgd"].cls is NativeSGD
    ratings = small_ratings()
    work = NativeSGD().work_per_update(make_model("biased", ratings, k=20))
    assert work["bytes_per_update"] == 12 + 2 * (2 * 20 + 2) * 4
    assert work["flops_per_update"] == 6 * 20 + 2 + 8


# --- building ----------------------------------------------------------------------------------


def test_without_a_compiler_the_strategy_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CC", raising=False)
    reason = native_build.no_compiler_reason()
    assert reason and "no C compiler" in reason and "apt-get install gcc" in reason
    with pytest.raises(MfbenchError, match="no C compiler"):
        native_build.build(native_build.Path(__file__), "scratch")


def test_the_build_is_cached_by_source_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("MFBENCH_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "probe.c"
    source.write_text("int probe(void) { return 41; }\n")
    first = native_build.build(source, "probe")
    stamp = first.stat().st_mtime_ns
    assert native_build.build(source, "probe") == first and first.stat().st_mtime_ns == stamp
    source.write_text("int probe(void) { return 42; }\n")
    second = native_build.build(source, "probe")
    assert second != first and native_build.load(source, "probe").probe() == 42
    assert not [p for p in second.parent.iterdir() if p.name.startswith(".")], "no scratch file is left behind"


def test_a_failing_compile_says_which_command_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("MFBENCH_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "broken.c"
    source.write_text("this is not C\n")
    with pytest.raises(MfbenchError, match=r"compiling broken\.c failed .*-fopenmp"):
        native_build.build(source, "broken")
