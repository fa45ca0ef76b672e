"""The hogwild strategy: its update rule, learning on planted data, and worker life and death."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import mfbench
from mfbench.data.planted import planted
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import assert_processes_gone as assert_all_gone, process_gone as gone
from mfbench.plugin.registry import collect
from mfbench.plugins.models.biased import Biased
from mfbench.plugins.models.dot import Dot
from mfbench.plugins.strategies.hogwild import Hogwild, HogwildWorkerError, ShardTrainer, shard_bounds
from mfbench.run.executors.pool import WorkerGroup

#: Signals, timeouts and worker processes: outcomes that depend on timing by nature. Each bound below
#: says its margin; CI runs these twice more under a full CPU load (benchmarks/flake_hunt.py -m timing).
pytestmark = pytest.mark.timing

CPU = torch.device("cpu")
TARGET = 0.575  # 15% above the planted noise 0.5


def small_ratings(nnz: int = 3000, seed: int = 0) -> mfbench.Ratings:
    return planted(n_users=300, n_items=200, nnz=nnz, rank=3, noise=0.5, seed=seed)


def build(kind: str, train: mfbench.Ratings, **model_params) -> nn.Module:
    torch.manual_seed(0)
    return (Biased(**model_params) if kind == "biased" else Dot(**model_params)).build(train)


def rmse(model: nn.Module, data: mfbench.Ratings) -> float:
    with torch.no_grad():
        return float((model(data.users, data.items) - data.values).square().mean().sqrt())


@pytest.fixture
def started():
    """Set up hogwild strategies on small data; tear down and check every worker is gone afterwards."""
    strategies = []

    def start(kind: str = "dot", train: mfbench.Ratings | None = None, **params) -> tuple[Hogwild, nn.Module]:
        train = train if train is not None else small_ratings()
        model = build(kind, train, n_factors=4, init_std=0.1)
        strategy = Hogwild(**params)
        strategies.append(strategy)
        strategy.setup(model, train, CPU, seed=0)
        strategy.pids = [process.pid for process in strategy.processes]
        return strategy, model

    yield start
    for strategy in strategies:
        strategy.teardown()
        assert strategy.processes == []
        assert_all_gone(getattr(strategy, "pids", []))


def test_registered_through_the_plugin_manager():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.strategies.hogwild"], entry_points=False, env=False)
    entry = collect(pm).strategies["hogwild"]
    assert entry.cls is Hogwild and entry.plugin == "mfbench.plugins.strategies.hogwild"
    assert Hogwild.devices == ("cpu",) and Hogwild.exact is False and Hogwild.deterministic is False


def test_shards_cover_every_rating_once():
    for n, workers in [(10, 3), (7, 7), (1000, 2), (5, 1)]:
        bounds = [shard_bounds(n, workers, rank) for rank in range(workers)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    # Each worker visits its shard in its own stream of the one seeded order: fixed by seed, epoch and worker.
    order = mfbench.epoch_permutation(50, 1, 2, stream=1)
    assert torch.equal(order, mfbench.epoch_permutation(50, 1, 2, stream=1))
    assert not torch.equal(order, mfbench.epoch_permutation(50, 1, 3, stream=1))
    assert not torch.equal(order, mfbench.epoch_permutation(50, 1, 2, stream=2))


@pytest.mark.parametrize("kind", ["dot", "biased"])
@pytest.mark.parametrize("reg", [0.0, 0.1])
@pytest.mark.parametrize("row_step", ["sum", "mean", "expected"])
def test_one_batch_combines_per_rating_steps_from_pre_batch_values(kind, reg, row_step):
    """In-process check of the worker's update against numpy, in float64, with repeated rows in the batch:
    a row moves by the sum (row_step=sum) or the mean (mean; and expected, since in one batch of all
    ratings a row's expected count is its count) of its ratings' per-rating steps."""
    train = small_ratings(nnz=60)
    model = build(kind, train, n_factors=3, init_std=0.3).double()
    names = ["user_factors", "item_factors"] + (["user_bias", "item_bias"] if kind == "biased" else [])
    tables = {name: getattr(model, name).weight.detach() for name in names}
    before = {name: t.numpy().copy() for name, t in tables.items()}
    lr, decay, epoch = 0.05, 0.5, 2
    mean = float(model.global_mean) if kind == "biased" else 0.0
    config = dict(global_mean=mean, lr=lr, reg=reg, lr_decay=decay, batch_size=len(train), seed=0, workers=1, row_step=row_step)
    trainer = ShardTrainer(tables, (train.users, train.items, train.values), 0, config)
    sse, count = trainer.run_epoch(epoch)

    step = lr / (1 + decay * epoch)
    delta = {name: np.zeros_like(t) for name, t in before.items()}
    want_sse = 0.0
    P, Q = before["user_factors"], before["item_factors"]
    for u, i, r in zip(train.users.tolist(), train.items.tolist(), train.values.double().tolist(), strict=True):
        pred = P[u] @ Q[i] + mean
        if kind == "biased":
            pred += before["user_bias"][u, 0] + before["item_bias"][i, 0]
        err = pred - r
        want_sse += err * err
        delta["user_factors"][u] -= step * 2 * (err * Q[i] + reg * P[u])
        delta["item_factors"][i] -= step * 2 * (err * P[u] + reg * Q[i])
        if kind == "biased":
            delta["user_bias"][u] -= step * 2 * (err + reg * before["user_bias"][u])
            delta["item_bias"][i] -= step * 2 * (err + reg * before["item_bias"][i])
    counts = {
        side: np.maximum(np.bincount(rows.numpy(), minlength=len(before[f"{side}_factors"])), 1)[:, None]
        for side, rows in (("user", train.users), ("item", train.items))
    }
    assert len(set(train.items.tolist())) < len(train), "the batch should repeat some rows"
    assert count == len(train) and sse == pytest.approx(want_sse, rel=1e-12)
    for name in names:
        moved = delta[name] / counts[name.split("_")[0]] if row_step != "sum" else delta[name]
        np.testing.assert_allclose(tables[name].numpy(), before[name] + moved, rtol=1e-12, atol=1e-13)


def planted_split():
    ratings = planted(n_users=2000, n_items=1000, nnz=100_000, rank=5, noise=0.5, seed=0)
    return ratings.split(0.1, seed=0)


# Rank-matched models (see test_als.py: with 20 factors no L2-regularized factorization gets near
# the target on this data), at this problem's L2 (see test_strategy_contract.PLANTED_L2: the default
# reg is sized for real ratings). Hogwild is not deterministic: typical runs need 21 (biased) and 28
# (dot) epochs; the bounds leave room for scheduling noise.
@pytest.mark.parametrize(
    "kind, model_params, epochs",
    [("biased", {"n_factors": 5}, 26), ("dot", {"n_factors": 6, "init_std": 0.1}, 40)],
)
def test_defaults_learn_planted_data_at_its_l2(kind, model_params, epochs):
    train, test = planted_split()
    model = build(kind, train, **model_params)
    result = testing.fit(Hogwild(reg=0.02), model, train, epochs, test=test, stop_below=TARGET)
    # The model's own parameters are the shared tables the workers wrote into.
    assert all(p.is_shared() for p in model.parameters())
    history, losses = result.test_rmse, result.losses
    assert history[-1] <= TARGET, history
    assert history[0] > TARGET
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_worker_killed_between_epochs_makes_run_epoch_raise(started):
    strategy, _ = started(workers=2)
    assert strategy.run_epoch(0) > 0
    victim = strategy.processes[1].pid
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(HogwildWorkerError, match=rf"worker 1 \(pid {victim}\) was killed by signal 9"):
        strategy.run_epoch(1)
    assert time.monotonic() - t0 < 5


def test_worker_killed_mid_epoch_makes_run_epoch_raise(started):
    # batch_size=1 makes an epoch long enough (seconds) to be interrupted.
    strategy, _ = started(train=small_ratings(nnz=20_000), workers=2, batch_size=1)
    victim = strategy.processes[0].pid
    started_at = time.monotonic()
    timer = threading.Timer(0.2, os.kill, (victim, signal.SIGKILL))
    timer.start()
    try:
        with pytest.raises(HogwildWorkerError, match=r"worker 0 .* was killed by signal 9 \(SIGKILL\) during epoch 0"):
            strategy.run_epoch(0)
    finally:
        timer.join()
    assert time.monotonic() - started_at < 5


def test_worker_exception_is_reported_with_its_traceback(started):
    strategy, _ = started(workers=2)
    users, items, values = strategy.data
    items[-1] = 10_000  # shared memory: the last worker reads an item index past its table
    with pytest.raises(HogwildWorkerError, match=r"(?s)worker 1 .*failed during epoch 0.*IndexError"):
        strategy.run_epoch(0)


def test_stuck_worker_times_out_and_teardown_kills_it(started):
    strategy, _ = started(workers=2, call_timeout=1.0)
    os.kill(strategy.processes[0].pid, signal.SIGSTOP)  # alive but never answers
    t0 = time.monotonic()
    with pytest.raises(mfbench.CaseTimeout, match=r"epoch 0: hogwild workers 0 \(pid \d+\) did not answer within timeout=1 s"):
        strategy.run_epoch(0)  # a CaseTimeout: the runner reports the case as timeout, not error
    assert time.monotonic() - t0 < 3
    pids = strategy.pids
    t0 = time.monotonic()
    strategy.teardown()  # asks, waits 0.5 s (a worker owes an answer), SIGTERM (held while stopped), then SIGKILL
    assert time.monotonic() - t0 < 5
    assert_all_gone(pids)
    with pytest.raises(HogwildWorkerError, match="no running workers"):
        strategy.run_epoch(1)


def test_a_late_reply_is_not_counted_for_the_next_epoch(started):
    strategy, _ = started(workers=2, call_timeout=1.0)
    late = strategy.processes[0].pid
    os.kill(late, signal.SIGSTOP)
    with pytest.raises(HogwildWorkerError, match="did not answer"):
        strategy.run_epoch(0)
    os.kill(late, signal.SIGCONT)  # it finishes epoch 0 and answers for it, late
    loss = strategy.run_epoch(1)  # independent workers: a timeout does not end the group
    assert np.isfinite(loss) and loss > 0
    conn = strategy.group.conns[0]
    conn.send(("call", 99, "run_epoch", (2,)))  # one reply in flight per worker now, for call 99 only
    assert conn.poll(5.0)
    assert conn.recv()[:2] == ("done", 99)
    assert not conn.poll(0.2)


def test_failed_setup_leaves_no_worker_behind(monkeypatch):
    pids = []
    collect = WorkerGroup._collect

    def noting_pids(group, *args):  # the worker pids once they are started, before anything can fail
        pids.extend(group.pids)
        return collect(group, *args)

    monkeypatch.setattr(WorkerGroup, "_collect", noting_pids)
    train = small_ratings()
    strategy = Hogwild(workers=2, call_timeout=1e-6)  # start-up cannot finish in time
    with pytest.raises(HogwildWorkerError, match="start-up"):
        strategy.setup(build("dot", train), train, CPU, seed=0)
    assert strategy.processes == [] and len(pids) == 2
    assert_all_gone(pids)


ORPHAN_SCRIPT = """
import os, signal, sys, torch
from mfbench.data.planted import planted
from mfbench.plugins.strategies.hogwild import Hogwild
from mfbench.plugins.models.dot import Dot
if __name__ == "__main__":
    ratings = planted(n_users=300, n_items=200, nnz=3000, rank=3, noise=0.5, seed=0)
    strategy = Hogwild(workers=2, start_method=sys.argv[1])
    strategy.setup(Dot(init_std=0.1).build(ratings), ratings, torch.device("cpu"), 0)
    strategy.run_epoch(0)
    print(" ".join(str(process.pid) for process in strategy.processes), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no teardown, no atexit: the workers must notice alone
"""


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_workers_exit_when_the_parent_is_killed(tmp_path, start_method):
    script, out, err = tmp_path / "orphan.py", tmp_path / "pids.txt", tmp_path / "stderr.txt"
    script.write_text(ORPHAN_SCRIPT)
    # Output to files, not pipes: a surviving worker would hold a pipe open and stall run().
    with open(out, "w") as stdout, open(err, "w") as stderr:
        done = subprocess.run([sys.executable, str(script), start_method], stdout=stdout, stderr=stderr, timeout=120)
    assert done.returncode == -signal.SIGKILL, err.read_text()
    pids = [int(pid) for pid in out.read_text().split()]
    assert len(pids) == 2
    try:
        assert_all_gone(pids)
    finally:
        for pid in pids:  # never leave an orphan behind, even when the check fails
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_other_start_methods(started, start_method):
    strategy, model = started("biased", workers=1, start_method=start_method)
    before = model.user_factors.weight.detach().clone()
    assert np.isfinite(strategy.run_epoch(0))
    assert not torch.equal(before, model.user_factors.weight.detach())


def test_skips_other_devices_and_models():
    train = small_ratings()
    assert "cpu only" in Hogwild().skip(build("dot", train), torch.device("cuda"))
    assert "user_factors" in Hogwild().skip(nn.Linear(2, 1), CPU)
    assert Hogwild().skip(build("biased", train), CPU) is None


@pytest.mark.parametrize(
    "params, words",
    [
        ({"workers": 0}, "workers"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"reg": -1.0}, "reg"),
        ({"lr_decay": -0.1}, "lr_decay"),
        ({"start_method": "thread"}, "start_method"),
        ({"call_timeout": 0.0}, "call_timeout"),
    ],
)
def test_rejects_bad_params_while_planning(params, words):
    problems = Hogwild.check_params(Hogwild.resolve_params(params))
    assert len(problems) == 1 and problems[0].startswith(f"strategy 'hogwild': {words}="), problems
