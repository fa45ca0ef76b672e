"""Per-rating SGD as a Triton GPU kernel: each program streams its own slice of the ratings, lock-free.

cuMF_SGD's scheme (Xie et al. 2017) in Triton: the ratings are laid out in a shuffled
order, the order is cut into ``programs`` contiguous slices, and each program (one warp)
walks its slice one rating at a time, loading both factor rows, taking the step and
storing them back with no lock (Hogwild, Niu et al. 2011). Two programs that step the
same row at once may overwrite each other's update; with millions of rows that is rare
and SGD absorbs it. The factor rows are padded to a power of two (Triton's blocks are
power-of-two wide; the padding columns start at zero and stay zero, since their
gradient is zero), fp32.

The arithmetic is the reference's (error ``e = pred - r``, the MSE gradient's factor 2,
both rows stepped from their pre-step values, L2 ``reg`` on the touched rows), so with
``programs=1`` and ``order="epoch"`` it is the exact reference per-rating SGD in
``mfbench.epoch_permutation`` order; with many programs it is approximate.

``order``: ``"once"`` (default) shuffles the ratings once in setup (epoch 0's
permutation) and every epoch streams that layout, as cuMF_SGD does: nothing but the
kernel is timed. ``"epoch"`` takes ``mfbench.epoch_permutation`` each epoch (drawn on
the CPU and gathered on the device inside the timed epoch): the reference's order.

It declares ``cuda`` only: that is where it is timed. Its correctness is checked on the
CPU through Triton's interpreter (``TRITON_INTERPRET=1``, which runs the kernel on CPU
tensors, ~1 ms a rating): there ``skip`` lets it run on ``cpu``, for tiny data only.

The model's factor tables become views of the padded tables (``weight.data``
rebound in setup, no copy per epoch), so the runner evaluates what the kernel trained.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

import mfbench
from mfbench import LayoutError, roofline
from mfbench.plugins.common.compiled_sgd import STEP_CONSTRAINTS, STEP_PARAMS, CompiledSGD

INSTALL = "pip install 'mfbench[triton]'"
UNAVAILABLE = mfbench.missing_library("triton", install=INSTALL, load=False)  # imported where a kernel runs
INTERPRET_ENV = "TRITON_INTERPRET"
ORDERS = ("once", "epoch")
#: Programs per streaming multiprocessor when ``programs=0`` (resident warps hide the loads' latency).
PROGRAMS_PER_SM = 32
#: Programs when ``programs=0`` under the interpreter (it runs them one after another).
INTERPRETER_PROGRAMS = 4


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get(INTERPRET_ENV, "0") not in ("", "0")


def padded_width(k: int) -> int:
    """The power of two at least ``k`` (Triton's ``tl.arange`` needs one)."""
    return 1 << max(0, (k - 1).bit_length())


_KERNEL_MODE: bool | None = None


def sgd_kernel() -> Callable[..., Any]:
    """The jitted kernel for the current mode: compiled, or interpreted under ``TRITON_INTERPRET=1``.

    Its module is imported on first use and reloaded when the mode changed since (Triton decides
    compiled or interpreted when it decorates).
    """
    global _KERNEL_MODE
    import importlib

    from mfbench.plugins.common import triton_kernel

    if _KERNEL_MODE is not None and _KERNEL_MODE != interpreting():
        triton_kernel = importlib.reload(triton_kernel)
    _KERNEL_MODE = interpreting()
    return triton_kernel.per_rating_sgd


def pad_in_place(weight: torch.Tensor, width: int) -> torch.Tensor:
    """A zero-padded ``(rows, width)`` copy of ``weight``, which becomes a view of its first columns."""
    if weight.shape[1] == width:
        return weight.data
    padded = torch.zeros(weight.shape[0], width, dtype=weight.dtype, device=weight.device)
    padded[:, : weight.shape[1]] = weight.data
    weight.data = padded[:, : weight.shape[1]]
    return padded


class TritonSGD(CompiledSGD):
    """Per-rating SGD as a Triton kernel: programs stream slices of a shuffled order, lock-free (cuMF_SGD's scheme)."""

    name = "triton-sgd"
    params = {
        **STEP_PARAMS,
        # concurrent programs (one warp each); 0 picks 32 per multiprocessor (4 under the interpreter).
        "programs": 0,
        # "once": shuffled once in setup (nothing but the kernel is timed); "epoch": epoch_permutation each epoch.
        "order": "once",
    }
    constraints = {**STEP_CONSTRAINTS, "programs": ">= 0", "order": ORDERS}
    devices = ("cuda",)
    exact = False
    deterministic = False
    unavailable = UNAVAILABLE
    #: The kernel computes in fp32.
    table_dtypes = (torch.float32,)
    #: The tables are copied into padded ones in setup, whatever their strides.
    in_place = False

    def device_problem(self, device: torch.device) -> str | None:
        if device.type == "cuda" or (device.type == "cpu" and interpreting()):
            return None
        return f"{self.name} runs on cuda (on cpu only through Triton's interpreter, {INTERPRET_ENV}=1, for tests)"

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables = self.setup_tables(model, train, device)
        self.device, self.seed, self.n = torch.device(device), int(seed), len(train)
        self.k = tables.user_factors.shape[1]
        self.width = padded_width(self.k)
        self.P = pad_in_place(model.user_factors.weight, self.width)
        self.Q = pad_in_place(model.item_factors.weight, self.width)
        self.biased = tables.user_bias is not None
        if self.biased:
            self.bu, self.bi = tables.user_bias.view(-1), tables.item_bias.view(-1)
        else:
            self.bu = self.bi = torch.zeros(1, dtype=torch.float32, device=self.device)
        self.mean = float(tables.global_mean)
        self.users = train.users.to(self.device, torch.int32)
        self.items = train.items.to(self.device, torch.int32)
        self.values = train.values.to(self.device, torch.float32)
        if self.params["order"] == "once":
            self.users, self.items, self.values = self.gathered(0)
        self.programs = max(1, min(self.params["programs"] or self.auto_programs(), max(self.n, 1)))
        self.per_program = -(-self.n // self.programs)
        self.sse = torch.zeros(self.programs, dtype=torch.float32, device=self.device)
        self.kernel = sgd_kernel()
        self.warm_up()

    def auto_programs(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.get_device_properties(self.device).multi_processor_count * PROGRAMS_PER_SM
        return INTERPRETER_PROGRAMS

    def gathered(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ratings in ``epoch_permutation(n, seed, epoch)`` order, on the device."""
        order = mfbench.epoch_permutation(self.n, self.seed, epoch).to(self.device)
        return self.users[order], self.items[order], self.values[order]

    def warm_up(self) -> None:
        """Compile the kernel for this case's constants on scratch tables, outside the timed epochs."""
        scratch = lambda t: torch.zeros_like(t[:1]) if t.dim() == 1 else torch.zeros(1, self.width, device=self.device)  # noqa: E731
        one = lambda t: t[:1].clone()  # noqa: E731
        self.kernel[(1,)](
            scratch(self.P),
            scratch(self.Q),
            torch.zeros(1, device=self.device),
            torch.zeros(1, device=self.device),
            torch.zeros_like(one(self.users)),
            torch.zeros_like(one(self.items)),
            torch.zeros_like(one(self.values)),
            torch.zeros(1, device=self.device),
            min(self.n, 1),
            1,
            0.0,
            0.0,
            1.0,
            BIASED=self.biased,
            WIDTH=self.width,
            num_warps=1,
        )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run_epoch(self, epoch: int) -> float | None:
        """One pass; returns the mean squared error of the ratings, each taken before its step."""
        if self.n == 0:
            return None
        users, items, values = (self.users, self.items, self.values) if self.params["order"] == "once" else self.gathered(epoch)
        lr = self.epoch_lr(epoch)
        self.kernel[(self.programs,)](
            self.P,
            self.Q,
            self.bu,
            self.bi,
            users,
            items,
            values,
            self.sse,
            self.n,
            self.per_program,
            self.mean,
            2.0 * lr,
            1.0 - 2.0 * lr * self.params["reg"],
            BIASED=self.biased,
            WIDTH=self.width,
            num_warps=1,
        )
        return float(self.sse.sum().item()) / self.n

    def work_per_update(self, model: nn.Module) -> Mapping[str, Any] | None:
        """Padded rows move whole: the bytes are the padded width's."""
        try:
            tables = self.tables_of(model)
        except LayoutError:
            return None
        return roofline.per_rating_sgd(padded_width(tables.n_factors), 4, tables.biased)

    def info(self) -> Mapping[str, Any] | None:
        import triton

        return {
            "triton": triton.__version__,
            "programs": getattr(self, "programs", None),
            "padded_width": getattr(self, "width", None),
            "interpreted": interpreting(),
        }

    def teardown(self) -> None:
        self.users = self.items = self.values = self.sse = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(TritonSGD)
