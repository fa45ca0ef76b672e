"""ddp and sharded on torch.distributed: same steps as their single-process peers, learning, life and death of ranks.

Two ranks over loopback on gloo. Rank start-up is cheap once the fork server runs
(~0.2 s; its first start imports torch and torch._dynamo, a few seconds).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import mfbench
from mfbench.data.metrics import rmse
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import assert_processes_gone as assert_all_gone, process_gone as gone
from mfbench.plugin.registry import collect
from mfbench.plugins.strategies.ddp import DDP, rank_share
from mfbench.plugins.strategies.minibatch import Minibatch
from mfbench.plugins.strategies.sharded import Sharded, block_bounds, block_of
from mfbench.plugins.strategies.vectorized import Vectorized
from mfbench.run.executors import distributed, pool
from mfbench.run.plan import RunConfig, plan

#: Signals, timeouts and worker processes: outcomes that depend on timing by nature. Each bound below
#: says its margin; CI runs these twice more under a full CPU load (benchmarks/flake_hunt.py -m timing).
pytestmark = pytest.mark.timing

CPU = torch.device("cpu")
TARGET = testing.LEARN_RATIO * testing.NOISE


def small(nnz: int = 3000) -> mfbench.Ratings:
    return testing.planted_split(n_users=300, n_items=200, nnz=nnz)[0]


def model_for(kind: str, train: mfbench.Ratings) -> nn.Module:
    return testing.build_model(kind, train, **testing.model_params_for_learning(kind))


def train_epochs(strategy, model, train, epochs, test=None, stop_below=None):
    result = testing.fit(strategy, model, train, epochs, test=test, stop_below=stop_below)
    assert result.skipped is None, result.skipped
    return result.test_rmse, result.info


def max_difference(a: nn.Module, b: nn.Module) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_registered_through_the_plugin_manager():
    pm = mfbench.make_plugin_manager(
        ["mfbench.plugins.strategies.ddp", "mfbench.plugins.strategies.sharded"], entry_points=False, env=False
    )
    strategies = collect(pm).strategies
    assert strategies["ddp"].cls is DDP and strategies["sharded"].cls is Sharded
    for cls in (DDP, Sharded):
        assert cls.scales_with == "world_size" and cls.params["world_size"] == 2 and "reg" in cls.params


def test_batches_and_blocks_cover_everything_once():
    for n, batch, world in [(10, 4, 2), (10, 4, 3), (7, 100, 2), (5, 1, 3)]:
        shares = [rank_share(n, batch, r, world) for r in range(world)]
        positions = torch.cat([p for p, _ in shares])
        assert sorted(positions.tolist()) == list(range(n))
        assert all(len(b) == len(shares[0][1]) for _, b in shares)  # every rank steps equally often
    assert torch.equal(block_of(torch.arange(10), 10, 3), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]))
    assert [block_bounds(10, 3, b) for b in range(3)] == [(0, 3), (3, 6), (6, 10)]


@pytest.mark.parametrize(
    "comm, row_step", [("ddp", "expected"), ("sparse", "expected"), ("dense", "expected"), ("dense", "mean"), ("sparse", "sum")]
)
def test_ddp_takes_minibatchs_steps_at_two_ranks(comm, row_step):
    train = small()
    start = model_for("biased", train)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    params = dict(batch_size=512, lr=0.02, row_step=row_step)
    train_epochs(Minibatch(**params), expected, train, 2)
    _, info = train_epochs(DDP(world_size=2, comm=comm, **params), actual, train, 2)
    assert max_difference(start, expected) > 1e-2  # training moved the model: the comparison means something
    assert max_difference(actual, expected) < 1e-5  # the same steps, summed in another order
    assert info["world_size"] == 2 and info["backend"] == "gloo" and info["launcher"] == "spawn"
    assert info["bytes_per_epoch"] > 0 and info["startup_s"]["total_s"] > 0
    if comm == "dense":  # one flat buffer of every table per step from each rank, and row_step=mean's counts
        tables = sum(p.numel() for p in start.parameters()) * 4
        counts = sum(p.shape[0] for p in start.parameters()) * 4 if row_step == "mean" else 0
        assert info["bytes_per_epoch"] == 2 * (tables + counts) * len(range(0, len(train), 512))


def test_sharded_at_one_rank_is_vectorized():
    train = small()
    start = model_for("biased", train)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    train_epochs(Vectorized(batch_size=256, lr=0.05, reg=0.02), expected, train, 2)
    _, info = train_epochs(Sharded(world_size=1, batch_size=256, lr=0.05, reg=0.02, lr_decay=0.0), actual, train, 2)
    assert max_difference(start, expected) > 1e-2
    assert max_difference(actual, expected) == 0.0
    assert info["bytes_per_epoch"] == 0


@pytest.fixture(scope="module")
def planted():
    return testing.planted_split()


@pytest.mark.parametrize("kind, epochs", [("biased", 25), ("dot", 28)])
def test_sharded_defaults_learn_and_match_one_rank(planted, kind, epochs):
    """Measured: 22 (biased) and 25 (dot) epochs to the target at two ranks, at the planted problem's
    L2 (test_strategy_contract.PLANTED_L2; the default reg is sized for real ratings)."""
    train, test = planted
    start = model_for(kind, train)
    history, info = train_epochs(Sharded(reg=0.02), copy.deepcopy(start), train, epochs, test, stop_below=TARGET)
    assert history[-1] <= TARGET, history
    single, _ = train_epochs(Sharded(world_size=1, reg=0.02), copy.deepcopy(start), train, len(history), test)
    assert abs(single[-1] - history[-1]) < 0.02, (single, history)
    # Exactly the moving table (items here), once around the ring minus the last hop.
    width = start.item_factors.weight.shape[1] + (1 if kind == "biased" else 0)
    assert info["bytes_per_epoch"] == (2 - 1) * train.n_items * width * 4


@pytest.mark.parametrize("method", ["kill", "stop"])
def test_a_dead_or_hung_rank_ends_the_epoch_and_leaves_nothing(method):
    strategy = DDP(world_size=2, call_timeout=30.0) if method == "stop" else Sharded(world_size=2, call_timeout=30.0)
    train = small()
    strategy.setup(model_for("dot", train), train, CPU, seed=0)
    pids = strategy.group.pids
    try:
        assert strategy.run_epoch(0) > 0
        if method == "stop":
            # Start-up and the first epoch had a loaded machine's allowance; the hung rank gets 2 s.
            strategy.group.timeout = 2.0
        victim = pids[1]
        os.kill(victim, signal.SIGKILL if method == "kill" else signal.SIGSTOP)
        started = time.monotonic()
        if method == "kill":
            with pytest.raises(pool.WorkerError, match=rf"rank 1 \(pid {victim}\) was killed by signal 9"):
                strategy.run_epoch(1)
            assert time.monotonic() - started < 5
        else:
            with pytest.raises(pool.WorkerTimeout, match=r"ranks .*1 \(pid \d+\) did not answer within timeout=2 s"):
                strategy.run_epoch(1)
            assert time.monotonic() - started < 6
        with pytest.raises(pool.WorkerError, match="cannot continue"):
            strategy.run_epoch(2)
    finally:
        started = time.monotonic()
        strategy.teardown()
        assert time.monotonic() - started < 10
    assert_all_gone(pids)


def test_failed_start_up_leaves_nothing():
    class Broken(DDP):
        def payloads(self, model, train, device, seed):
            return [dict(p, config=dict(p["config"], optimizer="nope")) for p in super().payloads(model, train, device, seed)]

    group_pids = []
    strategy = Broken(world_size=2)
    original = pool.WorkerGroup._collect

    def spy(self, *args):
        group_pids.extend(self.pids)
        return original(self, *args)

    train = small()
    pool.WorkerGroup._collect = spy
    try:
        with pytest.raises(pool.WorkerError, match="(?s)failed during start-up.*KeyError: 'nope'"):
            strategy.setup(model_for("dot", train), train, CPU, seed=0)
    finally:
        pool.WorkerGroup._collect = original
        strategy.teardown()
    assert len(group_pids) == 2
    assert_all_gone(group_pids)


ORPHAN_SCRIPT = """
import os, signal, torch
from mfbench import testing
from mfbench.plugins.strategies.sharded import Sharded
if __name__ == "__main__":
    train = testing.planted_split(n_users=300, n_items=200, nnz=3000)[0]
    strategy = Sharded(world_size=2)
    strategy.setup(testing.build_model("dot", train), train, torch.device("cpu"), 0)
    strategy.run_epoch(0)
    print(" ".join(map(str, strategy.group.pids)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no teardown, no atexit: the ranks must notice alone
"""


def test_ranks_exit_when_the_parent_is_killed(tmp_path):
    script, out, err = tmp_path / "orphan.py", tmp_path / "pids.txt", tmp_path / "stderr.txt"
    script.write_text(ORPHAN_SCRIPT)
    with open(out, "w") as stdout, open(err, "w") as stderr:  # files: a survivor holding a pipe would stall run()
        done = subprocess.run([sys.executable, str(script)], stdout=stdout, stderr=stderr, timeout=120)
    assert done.returncode == -signal.SIGKILL, err.read_text()
    pids = [int(pid) for pid in out.read_text().split()]
    assert len(pids) == 2
    try:
        assert_all_gone(pids)
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


TORCHRUN_SCRIPT = """
import copy, json, sys, torch
from mfbench import testing
from mfbench.run.executors import distributed
from mfbench.data.metrics import rmse
from mfbench.plugins.strategies.ddp import DDP
from mfbench.plugins.strategies.sharded import Sharded
assert distributed.launched_by_torchrun() and distributed.world_size() == 2
train, test = testing.planted_split(n_users=300, n_items=200, nnz=3000)
out = {}
for cls in (DDP, Sharded):
    model = testing.build_model("biased", train)
    strategy = cls(world_size=2)
    assert strategy.skip(model, torch.device("cpu")) is None
    assert "world_size=2" in cls(world_size=3).skip(model, torch.device("cpu"))
    strategy.setup(model, train, torch.device("cpu"), 0)
    losses = [strategy.run_epoch(epoch) for epoch in range(2)]
    info = strategy.info()
    strategy.teardown()
    out[cls.name] = {"rmse": rmse(model, test), "losses": losses, "info": info,
                     "state": [p.detach().sum().item() for p in model.parameters()]}
distributed.barrier()
# One file per rank: two ranks printing long lines to one pipe may interleave them.
with open(sys.argv[1] + f".rank{distributed.rank()}", "w") as f:
    json.dump({"primary": distributed.is_primary(), **out}, f)
distributed.finish()
"""


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_under_torchrun_every_rank_joins_and_holds_the_trained_model(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(TORCHRUN_SCRIPT)
    done = subprocess.run(
        ["torchrun", "--standalone", "--nproc-per-node", "2", str(script), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    primary = json.loads((tmp_path / "out.rank0").read_text())
    other = json.loads((tmp_path / "out.rank1").read_text())
    assert primary["primary"] and not other["primary"]
    for name in ("ddp", "sharded"):
        assert primary[name]["state"] == pytest.approx(other[name]["state"], rel=1e-6)  # both ranks hold one model
        assert primary[name]["info"]["launcher"] == "torchrun" and primary[name]["info"]["world_size"] == 2
        assert primary[name]["losses"][1] < primary[name]["losses"][0]
    # Same steps as the spawned job.
    train, test = testing.planted_split(n_users=300, n_items=200, nnz=3000)
    model = testing.build_model("biased", train)
    train_epochs(Sharded(world_size=2), model, train, 2)
    assert rmse(model, test) == pytest.approx(primary["sharded"]["rmse"], rel=1e-5)


def test_skips_with_reasons(monkeypatch):
    train = small()
    dot = model_for("dot", train)
    assert "NCCL" in DDP(comm="ddp").skip(dot, torch.device("cuda"))
    assert DDP().skip(dot, torch.device("cuda")) is None  # dense, the default, works on NCCL
    assert DDP(comm="dense").skip(dot, torch.device("cuda")) is None
    assert "user_factors" in Sharded().skip(nn.Linear(2, 1), CPU)
    for key, value in {"RANK": "0", "WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    assert distributed.launched_by_torchrun() and distributed.world_size() == 4
    assert "world_size=4" in Sharded(world_size=2).skip(dot, CPU)


@pytest.mark.parametrize(
    "selection, words",
    [
        ("ddp[comm=mpi]", "comm='mpi', must be one of"),
        ("ddp[optimizer=adam]", "optimizer='adam', must be one of"),
        ("ddp[batch_size=0]", "batch_size=0, must be at least 1"),
        ("ddp[comm=dense,optimizer=sparseadam]", "comm='dense' all-reduces dense gradients and optimizer='sparseadam'"),
        ("ddp[world_size=0]", "world_size=0, must be at least 1"),
        ("ddp[call_timeout=0]", "call_timeout=0.0, must be positive"),
        ("sharded[lr=0]", "lr=0.0, must be positive"),
        ("sharded[lr_decay=-1]", "lr_decay=-1.0, must be non-negative"),
        ("sharded[row_step=median]", "row_step='median', must be one of"),
        ("sharded[world_size=0]", "world_size=0, must be at least 1"),
        ("sharded[call_timeout=0]", "call_timeout=0.0, must be positive"),
    ],
)
def test_bad_values_are_refused_while_planning(fresh_pm, selection, words):
    """A bad value is a usage error before any data is loaded or any rank starts, never a skip or a runtime error."""
    with pytest.raises(mfbench.SelectionError, match=r"strategy '\w+': " + re.escape(words)):
        plan(collect(fresh_pm), ["lowrank"], ["dot"], [selection], ["cpu"], RunConfig())
    assert DDP.check_params(DDP.resolve_params({"comm": "sparse", "optimizer": "sparseadam"})) == []


def test_mfbench_run_under_torchrun_writes_one_results_file_from_rank_0(tmp_path):
    out = tmp_path / "run.json"
    done = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "mfbench",
            "run",
            "--no-calibration",
            "-d",
            "lowrank[n_users=300,n_items=200,nnz=3000]",
            "-m",
            "biased",
            "-s",
            "sharded",
            "-s",
            "vectorized",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("results: ") == 1  # rank 1 prints nothing
    assert "left out: vectorized" in done.stdout
    document = json.loads(out.read_text())
    assert document["complete"] and [c["strategy"]["name"] for c in document["cases"]] == ["sharded"]
    [case] = document["cases"]
    assert case["status"] == "ok" and case["repeats"][0]["info"]["launcher"] == "torchrun"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == ["run.json"]
