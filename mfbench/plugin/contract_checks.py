"""The strategy contract, as checks any test suite can run on any strategy.

mfbench's own tests run these over every registered strategy; a plugin author
runs the same checks on theirs::

    from mfbench import testing


    def test_my_strategy_learns():
        testing.assert_learns(MyStrategy, model="biased", max_epochs=20)

The checks train through the same protocol as the runner (build, setup,
run_epoch, teardown) and judge quality with the runner's own RMSE.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
import torch
from torch import nn

from ..data.metrics import rmse
from ..data.planted import planted
from ..data.ratings import Ratings
from .manager import make_plugin_manager
from .parts import Model, Strategy, epoch_permutation
from .registry import Registry, collect

#: The planted data the learning check uses: best achievable held-out RMSE is NOISE.
NOISE = 0.5
PLANTED = {"n_users": 2000, "n_items": 1000, "nnz": 100_000, "rank": 5, "noise": NOISE}
#: "Learns" means held-out RMSE within this factor of the noise.
LEARN_RATIO = 1.15
#: Models of the learning check. Widths match the planted rank (the dot model gets one
#: more column to carry the mean of 3): at the default 20 factors every L2-regularized
#: per-rating SGD tried overfits these 90k ratings (best held-out RMSE 0.63-0.66, measured
#: over step sizes and L2 on this data), which would test the model's width, not the strategy.
#: The dot model starts from N(0, 0.1): the notebook's N(0, 1) is too far from
#: unit-variance planted data for any SGD to be fair to.
LEARNING_MODELS: dict[str, dict[str, Any]] = {
    "dot": {"n_factors": 6, "init_std": 0.1},
    "biased": {"n_factors": 5},
}


#: A dataset selection small enough that a whole case runs in milliseconds: the notebook's
#: generator at 40 x 30 and 20% density (240 ratings), for tests of the harness rather than of learning.
TINY_DATASET = "sprand[n_users=40,n_items=30,density=0.2]"


class Idle(Strategy):
    """A strategy that trains nothing: every epoch returns at once and leaves the model as it was.

    For tests of what surrounds training (the runner's bookkeeping, executors, observers,
    reports, a contract check that must fail): subclass it, give it a ``name``, and override
    only what the test is about. ``setup`` keeps what it is given as ``self.model``,
    ``self.train``, ``self.device`` and ``self.seed``.
    """

    name = "idle"

    def setup(self, model: nn.Module, train: Ratings, device: torch.device, seed: int) -> None:
        self.model, self.train, self.device, self.seed = model, train, device, seed

    def run_epoch(self, epoch: int) -> float | None:
        return None


def builtin_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    """The parts of ``pm``, or of a fresh manager with built-in plugins only."""
    return collect(pm or make_plugin_manager(entry_points=False, env=False))


def planted_split(seed: int = 0, **overrides: Any) -> tuple[Ratings, Ratings]:
    """The contract's planted low-rank data, split 90/10 with ``seed``."""
    spec = {**PLANTED, **overrides}
    return planted(seed=seed, **spec).split(0.1, seed)


def build_model(
    model: str | type[Model], train: Ratings, seed: int = 0, registry: Registry | None = None, **params: Any
) -> nn.Module:
    """A seeded model of the given registered name (or Model class) for ``train``."""
    cls = (registry or builtin_registry()).models[model].cls if isinstance(model, str) else model
    torch.manual_seed(seed)
    return cls(**params).build(train)


@dataclass
class Fit:
    """What a contract training run produced."""

    model: nn.Module
    train_rmse: list[float] = field(default_factory=list)
    test_rmse: list[float] = field(default_factory=list)
    skipped: str | None = None
    #: What each ``run_epoch`` returned (the strategy's training loss, or None); one entry for a whole fit.
    losses: list[float | None] = field(default_factory=list)
    #: The strategy's ``info()`` after the last epoch, before teardown (``{"error": ...}`` if it raised).
    info: Mapping[str, Any] | None = None


def fit(
    strategy: type[Strategy] | Strategy,
    model: nn.Module,
    train: Ratings,
    epochs: int,
    *,
    test: Ratings | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    stop_below: float | None = None,
) -> Fit:
    """Train ``model`` with ``strategy`` through the runner's protocol; RMSE after each epoch.

    ``strategy`` is a class, made with ``params``, or a strategy already made (then ``params``
    must be None), for a test that looks at its state afterwards. ``stop_below`` ends training
    once held-out RMSE is at or below it. A strategy that trains whole fits only (``stepwise``
    False) trains all ``epochs`` and gives one point.
    """
    if isinstance(strategy, Strategy):
        if params is not None:
            raise TypeError("fit() takes params with a strategy class, not with a strategy already made")
        instance = strategy
    else:
        instance = strategy(**dict(params or {}))
    device = torch.device(device)
    model = model.to(device)
    train_d = train.to(device)
    test_d = test.to(device) if test is not None else None
    result = Fit(model)
    reason = instance.skip(model, device)
    if reason:
        result.skipped = reason
        return result
    instance.setup(model, train_d, device, seed)
    try:
        if not instance.stepwise:  # a whole fit: one curve point, after every epoch
            result.losses.append(instance.fit(epochs))
            result.train_rmse.append(rmse(model, train_d))
            if test_d is not None:
                result.test_rmse.append(rmse(model, test_d))
        else:
            for epoch in range(epochs):
                result.losses.append(instance.run_epoch(epoch))
                result.train_rmse.append(rmse(model, train_d))
                if test_d is not None:
                    result.test_rmse.append(rmse(model, test_d))
                    if stop_below is not None and result.test_rmse[-1] <= stop_below:
                        break
        try:
            result.info = instance.info()
        except Exception as exc:  # as the runner records it: a failing info() does not fail training
            result.info = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        instance.teardown()
    return result


def model_params_for_learning(model: str) -> dict[str, Any]:
    """Model parameters of the contract's checks for a built-in model (none for others)."""
    return dict(LEARNING_MODELS.get(model, {}))


def assert_learns(
    strategy: type[Strategy],
    model: str = "biased",
    max_epochs: int = 30,
    *,
    params: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    device: str = "cpu",
) -> int:
    """With its defaults (or ``params``), ``strategy`` brings held-out RMSE on planted data within
    ``LEARN_RATIO`` of the noise in at most ``max_epochs``. Returns the epochs it took."""
    train, test = planted_split()
    net = build_model(model, train, registry=registry, **model_params_for_learning(model))
    target = LEARN_RATIO * NOISE
    result = fit(strategy, net, train, max_epochs, test=test, params=params, device=device, stop_below=target)
    if result.skipped:
        raise AssertionError(f"{strategy.name} skipped model {model!r}: {result.skipped}")
    best = min(result.test_rmse, default=math.inf)
    assert best <= target, (
        f"{strategy.name} on {model}: held-out RMSE {best:.4f} after {len(result.test_rmse)} epochs, "
        f"target {target:.4f} (noise {NOISE}); curve {[round(x, 4) for x in result.test_rmse]}"
    )
    return len(result.test_rmse)


def tiny_ratings(seed: int = 0, n_users: int = 12, n_items: int = 9, nnz: int = 60) -> Ratings:
    """A small planted matrix for exactness checks: every update is visible, nothing is slow."""
    return planted(n_users, n_items, nnz, rank=3, noise=0.1, seed=seed)


def assert_exact(
    strategy: type[Strategy],
    model: str = "dot",
    *,
    lr: float = 0.01,
    epochs: int = 2,
    atol: float = 1e-5,
    registry: Registry | None = None,
    device: str = "cpu",
    seed: int = 3,
) -> None:
    """An exact strategy equals the reference per-rating SGD from the same start and order.

    Both train copies of one model; the strategy gets ``lr`` and, if it declares one, ``reg=0``
    (the reference has no regularization). Every parameter must agree to ``atol``.
    """
    registry = registry or builtin_registry()
    reference = registry.strategies["reference"].cls
    ratings = tiny_ratings()
    start = build_model(model, ratings, registry=registry, **model_params_for_learning(model))
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    fit(reference, expected, ratings, epochs, params={"lr": lr}, seed=seed)
    params = {"lr": lr, **({"reg": 0.0} if "reg" in strategy.params else {})}
    result = fit(strategy, actual, ratings, epochs, params=params, seed=seed, device=device)
    if result.skipped:
        raise AssertionError(f"{strategy.name} skipped model {model!r}: {result.skipped}")
    moved = False
    for (name, want), (_, got) in zip(expected.state_dict().items(), result.model.state_dict().items(), strict=True):
        torch.testing.assert_close(
            got.cpu(), want, atol=atol, rtol=0, msg=functools.partial("{} {}: {}".format, strategy.name, name)
        )
        moved |= not torch.equal(want, start.state_dict()[name])
    assert moved, "the reference did not change the model: the comparison would prove nothing"


def assert_deterministic(
    strategy: type[Strategy],
    model: str = "biased",
    epochs: int = 2,
    *,
    registry: Registry | None = None,
    device: str = "cpu",
) -> None:
    """Same seed, same data, same start: the same trained model, bit for bit."""
    train, _ = planted_split(n_users=300, n_items=200, nnz=6000)
    states = []
    for _ in range(2):
        net = build_model(model, train, registry=registry, **model_params_for_learning(model))
        result = fit(strategy, net, train, epochs, seed=11, device=device)
        if result.skipped:
            raise AssertionError(f"{strategy.name} skipped model {model!r}: {result.skipped}")
        states.append({k: v.cpu().clone() for k, v in result.model.state_dict().items()})
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), f"{strategy.name}: {key} differs between two runs"


def revisited_ratings(seed: int = 0) -> Ratings:
    """15 x 11 planted ratings, 90 of them: small enough for the reference, dense enough that
    rows are revisited within an epoch (so a step that reads a stale row shows)."""
    return planted(15, 11, 90, rank=3, noise=0.1, seed=seed)


def model_off_zero(kind: str, ratings: Ratings, seed: int = 0, k: int = 4, registry: Registry | None = None) -> nn.Module:
    """A seeded ``dot`` or ``biased`` model with factors from N(0, 0.3) and, for ``biased``, biases
    from N(0, 0.2) instead of zero: a wrong step on any table changes the result, so an exactness
    comparison cannot pass by leaving a table where it started."""
    model = build_model(kind, ratings, seed=seed, registry=registry, n_factors=k, init_std=0.3)
    if hasattr(model, "user_bias"):
        with torch.no_grad():
            model.get_parameter("user_bias.weight").normal_(0.0, 0.2)
            model.get_parameter("item_bias.weight").normal_(0.0, 0.2)
    return model


def hand_written_sgd(model: nn.Module, ratings: Ratings, epochs: int, seed: int, lr: float, reg: float) -> None:
    """Per-rating SGD on (pred - r)^2 + reg * (squared norms of the touched rows), in plain Python,
    in place on a ``dot`` or ``biased`` model: what an exact strategy computes, with L2 (the
    reference strategy has none), visiting ratings in ``epoch_permutation`` order."""
    P, Q = model.get_parameter("user_factors.weight").detach(), model.get_parameter("item_factors.weight").detach()
    biased = hasattr(model, "user_bias")
    if biased:
        bu, bi = model.get_parameter("user_bias.weight").detach(), model.get_parameter("item_bias.weight").detach()
        mean = model.get_buffer("global_mean").item()
    for epoch in range(epochs):
        for k in epoch_permutation(len(ratings), seed, epoch).tolist():
            u, i, r = int(ratings.users[k]), int(ratings.items[k]), float(ratings.values[k])
            p, q = P[u].clone(), Q[i].clone()
            pred = float(p @ q) + (mean + float(bu[u, 0]) + float(bi[i, 0]) if biased else 0.0)
            err = pred - r
            P[u] = p - lr * (2 * err * q + 2 * reg * p)
            Q[i] = q - lr * (2 * err * p + 2 * reg * q)
            if biased:
                bu[u, 0] = bu[u, 0] - lr * (2 * err + 2 * reg * bu[u, 0])
                bi[i, 0] = bi[i, 0] - lr * (2 * err + 2 * reg * bi[i, 0])


def assert_same_state(got: nn.Module, want: nn.Module, start: nn.Module, atol: float) -> None:
    """Every tensor of ``got`` equals ``want``'s to ``atol``, and ``want`` moved from ``start``
    (else the comparison would prove nothing)."""
    moved = False
    for name, expected in want.state_dict().items():
        actual = got.state_dict()[name].cpu()
        torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=functools.partial("{}: {}".format, name))
        moved |= not torch.equal(expected, start.state_dict()[name])
    assert moved, "training did not change the model: the comparison would prove nothing"


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: no such process, or a zombie (dead, only not yet reaped;
    a fork server reaps its children in its own time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def assert_processes_gone(pids: Iterable[int], within: float = 5.0) -> None:
    """Every process in ``pids`` ends within ``within`` seconds: for a strategy that starts workers,
    what its teardown (or a failure) must leave behind is none of them."""
    pids = list(pids)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not all(process_gone(pid) for pid in pids):
        time.sleep(0.05)
    assert all(process_gone(pid) for pid in pids), [pid for pid in pids if not process_gone(pid)]
