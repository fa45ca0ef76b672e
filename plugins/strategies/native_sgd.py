"""The speed-of-light row: per-rating SGD as a plain C/OpenMP loop, built for this machine.

What a plain compiled loop reaches on the machine, so every run shows how far each
strategy is from it. It does exactly what ``numba[schedule=blocked]`` does (the
same block layout, the same strata drawn from the same seed, the same step; see
``plugins/common/blocks.py``), written in C (``native_sgd.c``) and compiled with the
system compiler at ``-O3 -march=native -fopenmp``. Same order, same arithmetic: with
the same ``blocks`` the two strategies train the same model up to float rounding
(the compilers may sum the dot product in different orders).

The library is built in ``setup`` (outside the timed epochs) and cached by a hash
of its source, compiler, flags and CPU (``mfbench.plugins.common.native_build``): the first
case on a machine pays ~1 s of compiling, later ones a load. Where no C compiler is
on the PATH the strategy is unavailable, with what to install.

It works in place on numpy views of the model's CPU tables, as ``numba`` does, and
calls the kernel through ctypes once per epoch (the GIL is released for the call).
It is not ``exact`` in the contract's sense: its order is the block grid's, not
``mfbench.epoch_permutation``; the tests compare it with numba's blocked schedule.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench import LayoutError, Tables
from mfbench.plugins.common import native_build
from mfbench.plugins.common.blocks import BLOCK_CONSTRAINTS, BLOCK_PARAMS, block_layout, grid_size, stratum_plan
from mfbench.plugins.common.compiled_sgd import STEP_CONSTRAINTS, STEP_PARAMS, CompiledSGD

SOURCE = Path(__file__).with_name("native_sgd.c")
LIBRARY = "mfbench_native_sgd"
ABI_VERSION = 1
KERNELS = {np.dtype(np.float32): ("mf_blocked_f32", ctypes.c_float), np.dtype(np.float64): ("mf_blocked_f64", ctypes.c_double)}
#: The C kernel takes int32 ids.
MAX_ROWS = 2**31 - 1

_POINTER = ctypes.c_void_p
_I64 = ctypes.c_int64


def kernel_signature(real: type) -> list[type]:
    """ctypes argument types of ``mf_blocked_*`` (see native_sgd.c), ``real`` being the float type."""
    return [
        _POINTER,
        _POINTER,
        _POINTER,
        _POINTER,
        ctypes.c_int,
        _I64,
        _POINTER,
        _POINTER,
        _POINTER,
        _POINTER,
        _I64,
        _POINTER,
        _POINTER,
        _POINTER,
        real,
        real,
        real,
        _POINTER,
        ctypes.c_int,
    ]


_LIBRARY: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The built kernel library of this process (built or taken from the cache on first use)."""
    global _LIBRARY
    if _LIBRARY is None:
        lib = native_build.load(SOURCE, LIBRARY)
        lib.mf_abi_version.restype = ctypes.c_int
        if lib.mf_abi_version() != ABI_VERSION:
            raise mfbench.MfbenchError(f"{SOURCE.name}: built library has ABI {lib.mf_abi_version()}, expected {ABI_VERSION}")
        for symbol, real in KERNELS.values():
            function = getattr(lib, symbol)
            function.argtypes = kernel_signature(real)
            function.restype = None
        _LIBRARY = lib
    return _LIBRARY


def address(array: np.ndarray) -> int:
    return array.ctypes.data


class NativeSGD(CompiledSGD):
    """Per-rating SGD in plain C/OpenMP, numba's blocked schedule: what a compiled loop reaches here."""

    name = "native-sgd"
    params = {
        # the same step as numba's.
        **STEP_PARAMS,
        "threads": 1,
        # the same grid as numba's blocked schedule: blocks per side (0 picks it as numba does), order inside a cell.
        **BLOCK_PARAMS,
    }
    constraints = {**STEP_CONSTRAINTS, "threads": ">= 1", **BLOCK_CONSTRAINTS}
    devices = ("cpu",)
    exact = False
    deterministic = True
    scales_with = "threads"
    unavailable = native_build.no_compiler_reason()

    def device_problem(self, device: torch.device) -> str | None:
        if device.type == "cpu":
            return None
        return f"{self.name} is a C loop over CPU tables; it runs on cpu, not {device.type}"

    def tables_of(self, model: nn.Module, ratings: mfbench.Ratings | None = None) -> Tables:
        tables = super().tables_of(model, ratings)
        if max(tables.n_users, tables.n_items) > MAX_ROWS:
            raise LayoutError(f"{self.name} takes int32 ids: at most {MAX_ROWS} users and items")
        return tables

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables = self.setup_tables(model, train, device)
        symbol, _ = KERNELS[np.dtype(tables.user_factors.numpy().dtype)]
        self.kernel = getattr(library(), symbol)
        self.seed, self.n = int(seed), len(train)
        self.P = tables.user_factors.numpy()
        self.Q = tables.item_factors.numpy()
        self.biased = tables.user_bias is not None
        dtype = self.P.dtype
        if self.biased:
            self.bu, self.bi = tables.user_bias.view(-1).numpy(), tables.item_bias.view(-1).numpy()
        else:
            self.bu, self.bi = np.zeros(1, dtype), np.zeros(1, dtype)
        self.scalar = dtype.type
        self.mean = self.scalar(tables.global_mean)
        self.k = self.P.shape[1]
        self.element_bytes = dtype.itemsize
        self.blocks = grid_size(self.params["blocks"], tables, self.params["threads"])
        users = train.users.cpu().numpy().astype(np.int32)
        items = train.items.cpu().numpy().astype(np.int32)
        values = train.values.cpu().numpy().astype(dtype)
        self.users, self.items, self.values, self.offsets = (
            np.ascontiguousarray(a)
            for a in block_layout(
                users,
                items,
                values,
                train.n_users,
                train.n_items,
                self.blocks,
                self.seed,
                self.params["cell_order"] == "user",
            )
        )
        self.sse = np.zeros(self.blocks * self.blocks, dtype=np.float64)

    def run_epoch(self, epoch: int) -> float | None:
        """One pass over the grid; returns the mean squared error, each error taken before its step."""
        if self.n == 0:
            return None
        row_perm, col_perm, strata = stratum_plan(self.blocks, self.seed, epoch)
        lr = self.epoch_lr(epoch)
        self.kernel(
            address(self.P),
            address(self.Q),
            address(self.bu),
            address(self.bi),
            int(self.biased),
            self.k,
            address(self.users),
            address(self.items),
            address(self.values),
            address(self.offsets),
            self.blocks,
            address(row_perm),
            address(col_perm),
            address(strata),
            self.scalar(self.mean),
            self.scalar(2.0 * lr),
            self.scalar(1.0 - 2.0 * lr * self.params["reg"]),
            address(self.sse),
            self.params["threads"],
        )
        return float(self.sse.sum()) / self.n

    def info(self) -> Mapping[str, Any] | None:
        return {
            "threads": self.params["threads"],
            "blocks": getattr(self, "blocks", None),
            "compiler": native_build.compiler(),
            "flags": " ".join(native_build.FLAGS),
        }

    def teardown(self) -> None:
        self.P = self.Q = self.bu = self.bi = None
        self.users = self.items = self.values = self.offsets = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(NativeSGD)
