"""triton-sgd: the kernel's correctness through Triton's CPU interpreter, its timing on CUDA.

The interpreter (TRITON_INTERPRET=1) runs the kernel on CPU tensors at ~1 ms a rating, so
these checks use tiny data. The kernel is decorated on first use in the current mode, so
setting the variable inside a test switches it to the interpreter.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from mfbench.data.planted import planted
from mfbench.plugin import contract_checks as testing
from mfbench.plugins.strategies import triton_sgd
from mfbench.plugins.strategies.reference import Reference
from mfbench.plugins.strategies.triton_sgd import TritonSGD, padded_width

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed (pip install 'mfbench[triton]')"
)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def test_padded_width_is_the_next_power_of_two():
    assert [padded_width(k) for k in (1, 2, 3, 5, 8, 20, 32, 33)] == [1, 2, 4, 8, 8, 32, 32, 64]


def test_on_cpu_without_the_interpreter_it_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ratings = testing.tiny_ratings()
    reason = TritonSGD().skip(testing.build_model("dot", ratings), torch.device("cpu"))
    assert "runs on cuda" in reason and "TRITON_INTERPRET=1" in reason
    assert TritonSGD.devices == ("cuda",), "it is timed on cuda only"


def test_without_triton_it_is_unavailable_with_the_install_command(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "triton" else object())
    reloaded = importlib.reload(triton_sgd)
    try:
        assert "pip install 'mfbench[triton]'" in reloaded.TritonSGD.unavailable
    finally:
        monkeypatch.undo()
        importlib.reload(triton_sgd)


@needs_triton
@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_one_program_is_the_exact_reference_sgd_in_its_order(interpreter, kind):
    """programs=1, order=epoch: the reference's per-rating SGD, rating by rating (k=5 runs padded to 8)."""
    ratings = testing.tiny_ratings()
    start = (
        testing.build_model(kind, ratings, n_factors=5, init_std=0.3)
        if kind == "dot"
        else testing.build_model(kind, ratings, n_factors=5)
    )
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(Reference, expected, ratings, 2, params={"lr": 0.05}, seed=3)
    result = testing.fit(TritonSGD, actual, ratings, 2, params={"lr": 0.05, "reg": 0.0, "programs": 1, "order": "epoch"}, seed=3)
    assert result.skipped is None
    moved = False
    for name, want in expected.state_dict().items():
        got = actual.state_dict()[name]
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0, msg=lambda m, name=name: f"{name}: {m}")
        moved |= not torch.equal(want, start.state_dict()[name])
    assert moved
    assert actual.user_factors.weight.shape == start.user_factors.weight.shape, "the model keeps its width"


@needs_triton
def test_many_programs_learn(interpreter):
    """Five programs bring held-out RMSE on tiny planted data from 8.5x its noise to under 2.5x in 4 epochs."""
    noise = 0.1
    train, test = planted(16, 10, 120, rank=1, noise=noise, seed=3).split(0.1, 3)
    start = testing.build_model("biased", train, n_factors=1)
    before = testing.rmse(start, test)
    result = testing.fit(TritonSGD, start, train, 4, test=test, params={"lr": 0.1, "reg": 0.01, "programs": 5})
    assert before > 8 * noise and result.test_rmse[-1] <= 2.5 * noise, (before, result.test_rmse)


@needs_triton
def test_program_slices_cover_every_rating_once_in_order(interpreter):
    """The interpreter runs programs one after another, so slices cut right make 4 programs the exact order.

    (On a GPU the programs run at once: the races are Hogwild's, which the CUDA learning check covers.)
    """
    ratings = testing.tiny_ratings()  # 60 ratings, not a multiple of 4 programs: the last slice is short
    start = testing.build_model("biased", ratings, n_factors=5)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(Reference, expected, ratings, 1, params={"lr": 0.05}, seed=3)
    testing.fit(TritonSGD, actual, ratings, 1, params={"lr": 0.05, "reg": 0.0, "programs": 7, "order": "epoch"}, seed=3)
    for name, want in expected.state_dict().items():
        torch.testing.assert_close(actual.state_dict()[name], want, atol=1e-6, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


@needs_triton
def test_returned_loss_is_the_mean_squared_error_before_each_step(interpreter):
    ratings = planted(10, 8, 40, rank=2, noise=0.1, seed=0)
    model = testing.build_model("dot", ratings, n_factors=3, init_std=0.3)
    before = testing.rmse(model, ratings) ** 2
    strategy = TritonSGD(lr=1e-30, reg=0.0, programs=3)
    strategy.setup(model, ratings, torch.device("cpu"), 0)
    try:
        loss = strategy.run_epoch(0)
    finally:
        strategy.teardown()
    assert loss == pytest.approx(before, rel=1e-5)


@needs_triton
def test_refuses_what_does_not_fit(interpreter):
    ratings = testing.tiny_ratings()
    model = testing.build_model("dot", ratings)
    assert "trains float32 tables" in TritonSGD().skip(model.double(), torch.device("cpu"))


def test_planning_refuses_bad_params():
    problems = TritonSGD.check_params(TritonSGD.resolve_params({"order": "random", "programs": -1, "lr_decay": -1.0}))
    assert problems == [
        "strategy 'triton-sgd': lr_decay=-1.0, must be non-negative",
        "strategy 'triton-sgd': programs=-1, must be at least 0",
        "strategy 'triton-sgd': order='random', must be one of 'once', 'epoch'",
    ]


@pytest.mark.cuda
@CUDA
@needs_triton
def test_on_cuda_many_programs_learn_planted_data():
    epochs = testing.assert_learns(TritonSGD, "biased", max_epochs=30, device="cuda")
    assert epochs <= 30


@pytest.mark.cuda
@CUDA
@needs_triton
def test_on_cuda_one_program_is_the_exact_reference():
    ratings = testing.tiny_ratings()
    start = testing.build_model("biased", ratings, n_factors=5)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    testing.fit(Reference, expected, ratings, 2, params={"lr": 0.05}, seed=3)
    testing.fit(
        TritonSGD, actual, ratings, 2, params={"lr": 0.05, "reg": 0.0, "programs": 1, "order": "epoch"}, seed=3, device="cuda"
    )
    for name, want in expected.state_dict().items():
        torch.testing.assert_close(actual.state_dict()[name].cpu(), want, atol=1e-5, rtol=0)


@needs_triton
def test_the_interpreter_works_when_triton_was_imported_without_it():
    """torch and other tests may import triton before TRITON_INTERPRET is set; the kernel must still run."""
    import subprocess
    import sys

    script = (
        "import os, copy, triton.language\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "from mfbench import testing\n"
        "from mfbench.plugins.strategies.triton_sgd import TritonSGD\n"
        "r = testing.tiny_ratings()\n"
        "m = testing.build_model('biased', r, n_factors=3)\n"
        "f = testing.fit(TritonSGD, m, r, 1, params={'programs': 2})\n"
        "assert f.skipped is None and f.train_rmse\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
