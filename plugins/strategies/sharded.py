"""sharded: model-parallel SGD where each rank owns a slice of the factor tables (DSGD's blocked schedule).

The rows of both tables are cut into ``world_size`` contiguous blocks. Rank r
owns block r of the larger table (its "fixed" side, users unless there are more
items) for good, and holds one block of the smaller ("moving") table at a time.
The ratings are routed once: rank r keeps the ratings of its fixed rows, grouped
by the moving block they touch. An epoch has ``world_size`` strata: in each, rank
r trains on the ratings of (its fixed block, the moving block it holds), then
passes that moving block to rank r-1 and receives the next from rank r+1 (one
``batch_isend_irecv`` per rank). The blocks trained at the same time share no
row, so every update reads and writes rows only its own rank has, with no
locking and no stale values: this is distributed SGD (DSGD, Gemulla et al.,
2011). No rank ever holds more than 1/world_size of the fixed table plus one
block of the moving one, which is what lets a table larger than one machine's
memory train across several.

Communication per epoch: ``world_size - 1`` rotations, each sending one
moving block (its factors and bias, float32) from every rank, i.e. ``(world_size
- 1) x n_moving x (k [+ 1]) x 4`` bytes in all, whatever the number of
ratings. ``info()`` reports what was actually sent.

Within a block the update is the hand-written minibatch SGD step ``vectorized``
takes (``plugins.common.sgd.sgd_batch``): per-rating objective ``(pred - r)**2 +
reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])``, a batch gives each row the sum
of its ratings' steps from pre-batch values, divided as ``vectorized`` divides it
(``row_step``), and the step of epoch e is ``lr / (1 + lr_decay * e)``. Each block is visited in a fresh order every epoch
(:func:`mfbench.epoch_permutation` of seed and epoch, in the block's own stream); at
world_size=1 the one block is visited in the default order, so sharded
with ``lr_decay=0`` takes exactly ``vectorized``'s steps (tested).

The parent's model holds the trained values after each epoch: in a single-host
job the ranks write their fixed slice and the moving block they hold into the
model's shared-memory tables (disjoint rows, in parallel); under torchrun every
rank gathers the whole tables into its model (``all_gather``; reported apart
as ``gather_bytes_per_epoch``, since it serves evaluation, not training).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import mfbench
from mfbench import find_tables, layout_problem
from mfbench.plugins.common.batching import ROW_STEPS, RowCounts, batch_slices, row_weights
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr, sgd_batch
from mfbench.run.executors import distributed


def block_bounds(n: int, world: int, block: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``block`` when ``n`` rows are cut into ``world`` near-equal blocks."""
    return n * block // world, n * (block + 1) // world


def block_of(index: torch.Tensor, n: int, world: int) -> torch.Tensor:
    """The block of every row index in ``index``."""
    starts = torch.tensor([block_bounds(n, world, b)[0] for b in range(1, world)], dtype=index.dtype)
    return torch.bucketize(index, starts.to(index.device), right=True)


def block_stream(fixed: int, moving: int, world: int) -> tuple[int, ...]:
    """The ``epoch_permutation`` stream of block (fixed, moving); at world_size 1 none, the order
    every single-process strategy uses."""
    return () if world == 1 else (fixed, moving, world)


class BlockRank:
    """One rank of DSGD: its fixed rows, the moving block it holds, its ratings by moving block."""

    def __init__(
        self,
        context: distributed.RankContext,
        tables: dict[str, torch.Tensor],
        fixed: torch.Tensor,
        moving: torch.Tensor,
        targets: torch.Tensor,
        config: dict[str, Any],
    ) -> None:
        self.rank, self.world, self.launcher = context.rank, context.world_size, context.launcher
        device = self.device = context.device
        self.tables = tables  # the model's full tables: written at the end of each epoch
        self.n_fixed, self.n_moving = int(config["n_fixed"]), int(config["n_moving"])
        self.biased = "fixed_bias" in tables
        self.batch_size, self.seed = int(config["batch_size"]), int(config["seed"])
        self.lr, self.reg, self.lr_decay = float(config["lr"]), float(config["reg"]), float(config["lr_decay"])
        self.lo, self.hi = block_bounds(self.n_fixed, self.world, self.rank)
        # Private working copies: the fixed slice for good, the first moving block (this rank's own).
        self.F = tables["fixed_factors"][self.lo : self.hi].to(device, copy=True)
        self.fb = tables["fixed_bias"][self.lo : self.hi].reshape(-1).to(device, copy=True) if self.biased else None
        self.holding = self.rank
        lo, hi = block_bounds(self.n_moving, self.world, self.holding)
        self.M = tables["moving_factors"][lo:hi].to(device, copy=True)
        self.mb = tables["moving_bias"][lo:hi].reshape(-1).to(device, copy=True) if self.biased else None
        # This rank's ratings by moving block, each group in its given order (a stable sort).
        fixed, moving = fixed.to(device), moving.to(device)
        if len(fixed) and (int(fixed.min()) < self.lo or int(fixed.max()) >= self.hi):
            raise mfbench.MfbenchError(f"rank {self.rank} was given ratings outside its rows [{self.lo}, {self.hi})")
        group = block_of(moving, self.n_moving, self.world)
        _, by_block = torch.sort(group, stable=True)
        counts = torch.bincount(group, minlength=self.world).tolist()
        self.blocks = []
        at = 0
        for b, count in enumerate(counts):
            pick = by_block[at : at + count]
            at += count
            mlo = block_bounds(self.n_moving, self.world, b)[0]
            self.blocks.append(
                (
                    fixed.index_select(0, pick) - self.lo,
                    moving.index_select(0, pick) - mlo,
                    targets.to(device).index_select(0, pick),
                )
            )
        self.gathered = 0
        # What a row's summed step in a batch is divided by (batching.ExpectedCounts, RowCounts), per block:
        # expected counts are those of the block's own ratings, the ones its batches are drawn from.
        row_step, dtype = config["row_step"], self.F.dtype
        self.block_counts: list[tuple[Any, Any] | None] = [None] * self.world
        if row_step == "mean":
            largest = max(hi - lo for lo, hi in (block_bounds(self.n_moving, self.world, b) for b in range(self.world)))
            shared = (RowCounts(self.hi - self.lo, dtype, device), RowCounts(largest, dtype, device))
            self.block_counts = [shared] * self.world
        elif row_step == "expected":
            for b, (a_b, b_b, _) in enumerate(self.blocks):
                mlo, mhi = block_bounds(self.n_moving, self.world, b)
                self.block_counts[b] = (
                    row_weights(row_step, a_b, self.hi - self.lo, self.batch_size, dtype),
                    row_weights(row_step, b_b, mhi - mlo, self.batch_size, dtype),
                )

    def train_block(self, block: int, epoch: int) -> torch.Tensor:
        """Minibatch SGD over this rank's ratings of moving block ``block``; returns the sum of squared errors."""
        a_all, b_all, t_all = self.blocks[block]
        stream = block_stream(self.rank, block, self.world)
        order = mfbench.epoch_permutation(len(t_all), self.seed, epoch, stream=stream).to(t_all.device)
        a_all, b_all, t_all = (x.index_select(0, order) for x in (a_all, b_all, t_all))
        biases = (self.fb, self.mb) if self.biased else None
        step = -2.0 * epoch_lr(self.lr, self.lr_decay, epoch)
        decay = step * self.reg
        squared = torch.zeros((), dtype=torch.float64, device=t_all.device)
        for part in batch_slices(len(t_all), self.batch_size):
            squared += sgd_batch(
                self.F, self.M, biases, a_all[part], b_all[part], t_all[part], step, decay, self.block_counts[block]
            ).double()
        return squared

    def pass_block(self) -> int:
        """Send the held moving block to rank-1, take the next from rank+1; returns the bytes sent."""
        incoming = (self.holding + 1) % self.world
        lo, hi = block_bounds(self.n_moving, self.world, incoming)
        width = self.M.shape[1] + (1 if self.biased else 0)
        send = torch.cat([self.M, self.mb.unsqueeze(1)], 1) if self.biased else self.M.contiguous()
        receive = torch.empty((hi - lo, width), dtype=self.M.dtype, device=self.M.device)
        ops = [
            dist.P2POp(dist.isend, send, (self.rank - 1) % self.world),
            dist.P2POp(dist.irecv, receive, (self.rank + 1) % self.world),
        ]
        for request in dist.batch_isend_irecv(ops):
            request.wait()
        k = self.M.shape[1]
        self.M = receive[:, :k].contiguous()
        self.mb = receive[:, k].contiguous() if self.biased else None
        self.holding = incoming
        return send.numel() * send.element_size()

    @torch.no_grad()
    def run_epoch(self, epoch: int) -> tuple[float, int, int]:
        squared = torch.zeros((), dtype=torch.float64, device=self.F.device)
        sent = 0
        for stratum in range(self.world):
            squared += self.train_block(self.holding, epoch)
            if stratum < self.world - 1:
                sent += self.pass_block()
        self.publish()
        return float(squared), sum(len(t) for _, _, t in self.blocks), sent

    def publish(self) -> None:
        """Put this rank's rows into the model's tables (spawned: its own rows; torchrun: everyone's)."""
        lo, hi = block_bounds(self.n_moving, self.world, self.holding)
        local = [("fixed_factors", self.F, self.lo, self.hi), ("moving_factors", self.M, lo, hi)]
        if self.biased:
            local += [("fixed_bias", self.fb.unsqueeze(1), self.lo, self.hi), ("moving_bias", self.mb.unsqueeze(1), lo, hi)]
        if self.launcher == "spawn":
            for name, rows, start, stop in local:
                self.tables[name][start:stop].copy_(rows)
            return
        self.gathered = 0
        for name, rows, _, _ in local:
            fixed = name.startswith("fixed")
            n = self.n_fixed if fixed else self.n_moving
            shift = 0 if fixed else (self.holding - self.rank)  # every rank is as far along the rotation
            bounds = [block_bounds(n, self.world, (r + shift) % self.world) for r in range(self.world)]
            padded = torch.zeros(
                (max(stop - start for start, stop in bounds), rows.shape[1]), dtype=rows.dtype, device=rows.device
            )
            padded[: len(rows)] = rows
            parts = [torch.empty_like(padded) for _ in range(self.world)]
            dist.all_gather(parts, padded)
            self.gathered += padded.numel() * padded.element_size() * self.world
            for part, (start, stop) in zip(parts, bounds, strict=True):
                self.tables[name][start:stop].copy_(part[: stop - start])

    def info(self) -> tuple[float, ...]:
        return (float(self.gathered),)


class Sharded(mfbench.DistributedStrategy):
    """Model-parallel DSGD over world_size ranks: each owns a row slice of the tables; blocks rotate."""

    name = "sharded"
    params = {
        "world_size": 2,
        # half of vectorized's 1024: a block holds 1/world_size of each table's rows, so a row occurs
        # world_size times as often in a block's batch; at the default world size 2 this keeps the
        # expected count of a row per batch (what row_step=expected divides by) that of vectorized.
        "batch_size": 512,
        # per-rating SGD step on (pred - r)^2, decayed as lr / (1 + lr_decay * epoch).
        "lr": 0.01,
        "reg": 0.05,
        **SCHEDULE_PARAMS,
        # what a row's summed step in a batch is divided by: "expected" (its expected count per batch
        # in its block, when above 1), "mean" (its count in the batch) or "sum" (nothing); see minibatch.
        "row_step": "expected",
        "call_timeout": 600.0,
    }
    constraints = {
        "world_size": ">= 1",
        "batch_size": ">= 1",
        "lr": "positive",
        "reg": "non-negative",
        **SCHEDULE_CONSTRAINTS,
        "call_timeout": "positive",
        "row_step": ROW_STEPS,
    }
    rank_worker = BlockRank
    info_fields = ("gather_bytes_per_epoch",)
    exact = False
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {
        "lr": mfbench.LogUniform(1e-3, 0.3),
        "reg": mfbench.LogUniform(1e-4, 0.3),
        **SCHEDULE_SPACE,
    }

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        return layout_problem(model, self.name) or super().skip(model, device)

    def payloads(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> list[dict[str, Any]]:
        tables = find_tables(model, self.name).weights()
        world = self.params["world_size"]
        if self.launcher == "spawn":
            distributed.share_model(model)  # in place: the ranks write their rows into the runner's model
        # Rotate the smaller table: it is what crosses between ranks.
        items_move = train.n_items <= train.n_users
        fixed_side, moving_side = ("user", "item") if items_move else ("item", "user")
        named = {"fixed_factors": f"{fixed_side}_factors", "moving_factors": f"{moving_side}_factors"}
        if "user_bias" in tables:
            named.update(fixed_bias=f"{fixed_side}_bias", moving_bias=f"{moving_side}_bias")
        shared = {key: tables[name].detach() for key, name in named.items()}
        fixed, moving = (train.users, train.items) if items_move else (train.items, train.users)
        dtype = shared["fixed_factors"].dtype
        targets = train.values.to(dtype)
        if "user_bias" in tables:
            targets = targets - model.global_mean.detach().to(device=targets.device, dtype=dtype)
        n_fixed = train.n_users if items_move else train.n_items
        config = dict(self.params, seed=int(seed), n_fixed=n_fixed, n_moving=train.n_users + train.n_items - n_fixed)
        owner = block_of(fixed, n_fixed, world)
        ranks = [dist.get_rank()] if self.launcher == "torchrun" else range(world)
        payloads = []
        for rank in ranks:
            # Ratings stay in their given order within a rank (so world_size 1 matches vectorized).
            mine = torch.nonzero(owner == rank).view(-1)
            data = [t.index_select(0, mine) for t in (fixed, moving, targets)]
            if self.launcher == "spawn":
                data = [distributed.shared_copy(t) for t in data]
            payloads.append(dict(tables=shared, fixed=data[0], moving=data[1], targets=data[2], config=config))
        return payloads


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Sharded)
