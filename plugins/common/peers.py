"""What the peer-library strategies (surprise-svd, libmf, implicit-als) share.

A peer trains with a library's own data structures and its own factor arrays;
mfbench only judges the model. So each peer finds the model's tables (the
``dot`` or ``biased`` layout, told by attribute as every raw-weight strategy
does), builds the library's input in ``setup``, and after each epoch or whole
fit copies the library's factors back into those tables: held-out RMSE is then
computed by ``model(users, items)``, the same way as for every other strategy.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench import LayoutError, Tables, find_tables

#: The extra that installs every peer library.
EXTRA = "peers"
INSTALL = f"pip install 'mfbench[{EXTRA}]'"


def missing(distribution: str, *modules: str) -> str | None:
    """The ``unavailable`` reason of a peer whose library (``modules`` of ``distribution``) cannot be imported."""
    return mfbench.missing_library(*modules, install=INSTALL, what=distribution)


def version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (as its metadata says), or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def model_tables(
    strategy: mfbench.Strategy, model: nn.Module, device: torch.device, *, biases: bool
) -> tuple[Tables | None, str]:
    """The model's tables, or None and why ``strategy`` cannot train this model on ``device``.

    ``biases`` says whether the library has user and item biases (then it trains
    ``biased`` and ``dot``); without them only ``dot`` fits.
    """
    device = torch.device(device)
    if device.type not in strategy.devices:
        return None, f"{strategy.name} trains with a CPU library; it runs on cpu, not {device.type}"
    try:
        tables = find_tables(model, strategy.name)
    except LayoutError as exc:
        return None, str(exc)
    if tables.user_bias is not None and not biases:
        return None, (
            f"{strategy.name} has no user or item biases to train: it runs the dot model only, not {type(model).__name__}"
        )
    return tables, ""


def setup_tables(
    strategy: mfbench.Strategy, model: nn.Module, train: mfbench.Ratings, device: torch.device, *, biases: bool
) -> Tables:
    """``setup``'s checks, shared by every peer: the library is there, the model fits, the shapes agree."""
    if strategy.unavailable:
        raise mfbench.MfbenchError(strategy.unavailable)
    tables, reason = model_tables(strategy, model, device, biases=biases)
    if tables is None:
        raise mfbench.MfbenchError(reason)
    if tables.n_users != train.n_users or tables.item_factors.shape[0] != train.n_items:
        raise mfbench.MfbenchError(
            f"model tables are {tables.n_users} x {tables.item_factors.shape[0]} "
            f"but the ratings are {train.n_users} x {train.n_items}"
        )
    return tables


def coo_arrays(train: mfbench.Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, values) of ``train`` as CPU numpy arrays (int64, int64, float32)."""
    return (
        train.users.cpu().numpy(),
        train.items.cpu().numpy(),
        train.values.cpu().numpy().astype(np.float32, copy=False),
    )


@torch.no_grad()
def copy_rows(table: torch.Tensor, values: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Copy a library's array into a model table (converting dtype), all rows or the ``rows`` given.

    ``table`` is a detached view of the parameter (as :func:`find_tables` returns),
    so the copy lands in the model's own storage.
    """
    source = torch.from_numpy(np.ascontiguousarray(values))
    target = table.view(table.shape[0], -1)
    source = source.view(source.shape[0], -1)
    if rows is None:
        if source.shape != target.shape:
            raise mfbench.MfbenchError(
                f"library array of shape {tuple(source.shape)} does not fit a table of shape {tuple(target.shape)}"
            )
        target.copy_(source)
        return
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    target.index_copy_(0, index.to(target.device), source.index_select(0, index).to(target.dtype))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building millions of small objects.

    Building a Surprise trainset makes two tuples per rating; each allocation burst
    otherwise triggers full collections that walk every tuple made so far (half the
    build time at 10M ratings). The collector's previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
