"""ddp: data-parallel minibatch training on torch.distributed, one model replica per rank.

The same steps as ``minibatch`` (autograd through the model, torch's SGD,
Adagrad or SparseAdam, a batch loss that is the *sum* of the shared per-rating
objective ``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])``,
each row's gradient divided by its expected or actual count in the global batch
unless ``row_step=sum``),
with every batch split across ``world_size`` ranks:

- Every rank visits the epoch's order (:func:`mfbench.epoch_permutation`) and
  takes its contiguous share of each global batch of ``batch_size`` ratings (as
  torch's ``DistributedSampler`` shares a dataset: every rank can read the ratings,
  each computes on its 1/world_size of them). Global batch b is the same set of
  ratings at any world size, so ``ddp`` takes the steps ``minibatch`` takes, up to
  the order of float sums: at world_size=1 it *is* minibatch, and the test checks
  world_size=2 against minibatch too.
- Each rank's gradient of its part is summed over ranks before the step, so every
  replica takes the same step and stays identical. ``comm`` chooses how: ``dense``
  (default) scatters every gradient into one flat buffer and all-reduces it, the
  only way on NCCL, which has no sparse all-reduce; ``ddp`` wraps the model in
  ``DistributedDataParallel``, which all-reduces the sparse embedding gradients on
  gloo (the loss is scaled by world_size, since DDP averages); ``sparse``
  all-reduces each coalesced sparse gradient itself.

``dense`` is the default because it is the one that measured both safe and
quick here: ``ddp`` was faster on large tables but its gloo ranks crashed with
heap corruption in several runs (a benchmark that crashes measures nothing), and
``sparse`` was the slowest (the measurements: ``results/README.md``, "ddp").

The parent's model ends each epoch trained: rank 0 trains the parent's own
parameters, moved to shared memory (CPU), while the other ranks train private
copies. Under torchrun every rank trains the runner's model in its process.
``info()`` adds the bytes each epoch handed to the all-reduces, summed over
ranks: the gradients' indices and values for sparse and ddp (the local,
uncoalesced gradients DDP's reducer receives), whole tables for dense.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import mfbench
from mfbench.plugins.common.batching import OPTIMIZERS, ROW_STEPS, Lookups, RowStepHooks, batch_loss, model_dtype
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr, set_optimizer_lr
from mfbench.run.executors import distributed

COMMS = ("ddp", "sparse", "dense")


def rank_share(n: int, batch_size: int, rank: int, world: int) -> tuple[torch.Tensor, list[slice]]:
    """This rank's positions in the epoch's order, and its batches as slices of them.

    Global batch b covers positions ``[b * batch_size, (b + 1) * batch_size)``; rank r
    takes the r-th of ``world`` contiguous near-equal parts of it (possibly empty).
    """
    pieces, batches, at = [], [], 0
    for start in range(0, n, batch_size):
        length = min(batch_size, n - start)
        lo, hi = start + length * rank // world, start + length * (rank + 1) // world
        pieces.append(torch.arange(lo, hi))
        batches.append(slice(at, at + hi - lo))
        at += hi - lo
    positions = torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.int64)
    return positions, batches


def gradient_bytes(grad: torch.Tensor) -> int:
    if grad.is_sparse:
        return grad._indices().numel() * grad._indices().element_size() + grad._values().numel() * grad.element_size()
    return grad.numel() * grad.element_size()


class DataParallelRank:
    """One rank: a replica of the model, its share of every batch, gradients summed over ranks."""

    def __init__(
        self,
        context: distributed.RankContext,
        model: nn.Module,
        users: torch.Tensor,
        items: torch.Tensor,
        values: torch.Tensor,
        config: dict[str, Any],
    ) -> None:
        device = context.device
        own = context.launcher == "torchrun" or (context.rank == 0 and all(p.device == device for p in model.parameters()))
        self.model = distributed.replica(model, device, in_place=own)
        self.model.train()
        # Rank 0 publishes its replica into the parent's tables when it could not train them in place.
        self.publish_to = model if (context.rank == 0 and not own) else None
        self.comm, self.reg, self.seed = config["comm"], float(config["reg"]), int(config["seed"])
        self.world = context.world_size
        self.users, self.items = users.to(device), items.to(device)
        self.values = values.to(device=device, dtype=model_dtype(self.model))
        positions, self.batches = rank_share(len(values), int(config["batch_size"]), context.rank, context.world_size)
        self.positions = positions.to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.lr, self.lr_decay = float(config["lr"]), float(config["lr_decay"])
        self.optimizer = OPTIMIZERS[config["optimizer"]](self.params, lr=self.lr)
        self.handles = []
        # A row's step is divided by its count in the *global* batch, as minibatch divides it:
        # row_step=expected counts from all training ratings (every rank holds them, so no
        # communication); row_step=mean sums each step's counts over ranks (one all-reduce of
        # a count vector per table per step).
        self.row_mean = None
        if config["row_step"] != "sum":
            self.row_mean = RowStepHooks(
                self.model, config["row_step"], self.users, self.items, int(config["batch_size"]), reduce=self._sum_counts
            )
        self.lookups = Lookups(self.model, enabled=self.reg > 0)
        self.sent = 0
        self.flat: torch.Tensor | None = None
        if self.comm == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            self.handles += [p.register_hook(self._count) for p in self.params]
            with warnings.catch_warnings():  # torch 2.13 deprecates the flag but its replacement still syncs at init
                warnings.simplefilter("ignore", FutureWarning)
                self.net: nn.Module = DistributedDataParallel(
                    self.model,
                    device_ids=[device.index] if device.type == "cuda" else None,
                    broadcast_buffers=False,
                )
        else:
            self.net = self.model

    def _sum_counts(self, counts: torch.Tensor) -> None:
        dist.all_reduce(counts)
        self.sent += counts.numel() * counts.element_size()

    def _count(self, grad: torch.Tensor) -> None:
        self.sent += gradient_bytes(grad)

    def all_reduce_gradients(self) -> None:
        """Sum every gradient over the ranks (sparse or dense), in place of ``.grad``."""
        if self.comm == "dense":
            self.all_reduce_dense()
            return
        for p in self.params:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            if self.comm == "dense" or not grad.is_sparse:
                grad = grad.to_dense() if grad.is_sparse else grad
            else:
                grad = grad.coalesce()
            dist.all_reduce(grad)
            self.sent += gradient_bytes(grad)
            p.grad = grad

    def all_reduce_dense(self) -> None:
        """Every gradient scattered into one flat buffer, summed over ranks in a single all-reduce."""
        if self.flat is None:
            self.flat = torch.zeros(sum(p.numel() for p in self.params), dtype=self.params[0].dtype, device=self.params[0].device)
            self.views, at = [], 0
            for p in self.params:
                self.views.append(self.flat[at : at + p.numel()].view_as(p))
                at += p.numel()
        self.flat.zero_()
        for p, view in zip(self.params, self.views, strict=True):
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                grad = grad.coalesce()  # index_add_ needs one row index per value row
                view.index_add_(0, grad._indices()[0], grad._values())
            else:
                view.add_(grad)
        dist.all_reduce(self.flat)
        self.sent += self.flat.numel() * self.flat.element_size()
        for p, view in zip(self.params, self.views, strict=True):
            p.grad = view

    def run_epoch(self, epoch: int) -> tuple[float, int, int]:
        order = mfbench.epoch_permutation(len(self.values), self.seed, epoch).to(self.positions.device)
        mine = order.index_select(0, self.positions)
        users, items, values = (t.index_select(0, mine) for t in (self.users, self.items, self.values))
        net, optimizer, reg, lookups = self.net, self.optimizer, self.reg, self.lookups
        # DDP averages gradients over ranks; the batch loss is a sum, so undo the average.
        scale = float(self.world) if self.comm == "ddp" else 1.0
        set_optimizer_lr(optimizer, epoch_lr(self.lr, self.lr_decay, epoch))
        squared = torch.zeros((), dtype=torch.float64, device=values.device)
        self.sent = 0
        for part in self.batches:
            optimizer.zero_grad(set_to_none=True)
            loss, data_term = batch_loss(net, lookups, users[part], items[part], values[part], reg)
            (loss * scale if scale != 1.0 else loss).backward()
            if self.comm != "ddp":
                self.all_reduce_gradients()
            optimizer.step()
            squared += data_term.detach()
        lookups.rows.clear()
        if self.publish_to is not None:
            with torch.no_grad():
                for target, source in zip(self.publish_to.parameters(), self.model.parameters(), strict=True):
                    target.copy_(source)
        return float(squared), len(values), self.sent

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.lookups.remove()
        if self.row_mean is not None:
            self.row_mean.remove()


class DDP(mfbench.DistributedStrategy):
    """Data-parallel minibatch SGD over world_size ranks (torch.distributed): minibatch's steps, split."""

    name = "ddp"
    params = {
        "world_size": 2,
        "comm": "dense",
        "optimizer": "sgd",
        "batch_size": 1024,
        "lr": 0.01,
        "reg": 0.05,
        "row_step": "expected",
        "call_timeout": 600.0,
        **SCHEDULE_PARAMS,
    }
    constraints = {
        "world_size": ">= 1",
        "comm": COMMS,
        "optimizer": tuple(OPTIMIZERS),
        "batch_size": ">= 1",
        "lr": "positive",
        "reg": "non-negative",
        "call_timeout": "positive",
        "row_step": ROW_STEPS,
        **SCHEDULE_CONSTRAINTS,
    }
    rank_worker = DataParallelRank
    exact = False
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-4, 0.3), "reg": mfbench.LogUniform(1e-4, 0.3), **SCHEDULE_SPACE}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        problems = super().check_params(params)
        if params["optimizer"] == "sparseadam" and params["comm"] == "dense":
            problems.append(
                f"{cls.problem_prefix()}comm='dense' all-reduces dense gradients and optimizer='sparseadam' "
                f"takes sparse ones only; use comm=sparse or comm=ddp"
            )
        return problems

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            return f"model {type(model).__name__} has no trainable parameters"
        embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        if self.params["reg"] > 0 and not embeddings:
            return f"reg > 0 regularizes nn.Embedding lookups and model {type(model).__name__} has none; use reg=0"
        sparse = [m for m in embeddings if m.sparse]
        comm, optimizer = self.params["comm"], self.params["optimizer"]
        if optimizer == "sparseadam":
            ids = {id(m.weight) for m in sparse}
            dense = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in ids]
            if dense:
                return f"SparseAdam takes only sparse gradients and model {type(model).__name__} has dense {', '.join(dense)}"
        if torch.device(device).type == "cuda" and sparse and comm != "dense":
            return f"NCCL has no sparse all-reduce, and comm={comm} reduces the sparse embedding gradients: use comm=dense"
        return super().skip(model, device)

    def payloads(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> list[dict[str, Any]]:
        config = dict(self.params, seed=int(seed))
        if self.launcher == "torchrun":
            return [dict(model=model, users=train.users, items=train.items, values=train.values, config=config)]
        distributed.share_model(model)  # in place: the runner's model is what rank 0 trains
        data = {
            key: distributed.shared_copy(t)
            for key, t in (("users", train.users), ("items", train.items), ("values", train.values))
        }
        return [dict(model=model, config=config, **data)] * self.params["world_size"]


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(DDP)
