"""Popularity: rank every item by its number of training interactions, the same list for every user.

The baseline every implicit-feedback ranking table starts with: a personalized model that
does not beat it has learned nothing beyond what is popular. It trains nothing; it counts.
The count of item ``i`` is the number of training entries naming ``i`` (a pair listed twice
counts twice; the values are not read), and the model's tables are written so that its
ranking score ``<p_u, q_i> + b_i`` is ``count_i / max_count``:

``biased``
    ``item_bias = count / max_count``, every factor zero; the user bias and the global mean
    are left as they are (they shift all of a user's scores alike).
``dot``
    column 0 of the user factors is 1 and column 0 of the item factors ``count / max_count``;
    every other column is zero.

With no training entries every score is 0. The counting happens in the first ``run_epoch``,
so its time is on the clock like any strategy's training; later epochs return at once. It
runs wherever the tables are (CPU or CUDA) and has nothing to tune.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import mfbench
from mfbench import find_tables, layout_problem


def item_counts(items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Training entries per item (int64, on ``items``' device)."""
    return torch.bincount(items, minlength=n_items)


class Popularity(mfbench.Strategy):
    """Popularity baseline: every user's ranking is the items' training interaction counts (implicit feedback)."""

    name = "popularity"
    params = {}
    exact = False
    deterministic = True
    objective = "implicit"

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        return layout_problem(model, self.name)

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        self.tables = find_tables(model, self.name, ratings=train)
        self.items = train.items
        self.n_items = train.n_items
        self.done = False

    def run_epoch(self, epoch: int) -> float | None:
        """Count and write the scores the first time; later epochs have nothing to do."""
        if self.done:
            return None
        t = self.tables
        counts = item_counts(self.items, self.n_items).to(torch.float64)
        score = counts.div_(counts.max().clamp(min=1.0)).to(t.dtype)
        with torch.no_grad():
            t.user_factors.zero_()
            t.item_factors.zero_()
            if t.item_bias is not None:
                t.item_bias.copy_(score.unsqueeze(1))
            else:
                t.user_factors[:, 0] = 1
                t.item_factors[:, 0] = score
        self.done = True
        return None

    def info(self) -> Mapping[str, Any] | None:
        return {"score": "training interactions per item / the most of any item"}

    def teardown(self) -> None:
        self.__dict__.pop("tables", None)
        self.__dict__.pop("items", None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Popularity)
