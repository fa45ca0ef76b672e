"""Rows of similar degree gathered together for batched solves (not a plugin): shared by ``als`` and
``ials``, whose half-steps solve one small linear system per user or item. How and why the groups
are cut is in ``mfbench.plugins.strategies.als``'s docstring."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RowGroup:
    """Rows of similar degree, solved together: the other side's index and the target per padded slot."""

    other: torch.Tensor  # (B * L,) index of the other side per padded slot; the zero row at pads
    target: torch.Tensor  # (B, L) rating minus global mean; 0 at pads
    length: int  # L, the longest row in the group
    start: int  # offset of this group's first row in the side's solve order
    size: int  # B, its number of rows


class Side:
    """Everything to re-solve one side (users or items) against the other side's fixed factors."""

    def __init__(
        self, rows: torch.Tensor, other: torch.Tensor, targets: torch.Tensor, n_rows: int, n_other: int, chunk: int
    ) -> None:
        device = rows.device
        degree = torch.bincount(rows, minlength=n_rows)
        by_row = torch.argsort(rows, stable=True)
        other_sorted = other.index_select(0, by_row)
        target_sorted = targets.index_select(0, by_row)
        first = torch.zeros(n_rows + 1, dtype=torch.int64, device=device)
        first[1:] = degree.cumsum(0)
        order = torch.argsort(degree, stable=True)
        degree_sorted = degree.index_select(0, order)
        n_empty = int((degree_sorted == 0).sum())
        self.empty = order[:n_empty]
        self.solve_rows = order[n_empty:]
        self.degree = degree_sorted[n_empty:]
        self.groups: list[RowGroup] = []
        # Cut the degree-sorted rows into groups of at most `chunk` padded slots (a row longer
        # than `chunk` gets a group of its own). Decided on the host: it is setup, done once.
        degrees = self.degree.tolist()
        start, n = 0, len(degrees)
        largest = 0
        while start < n:
            stop = start + 1
            while stop < n and degrees[stop] * (stop + 1 - start) <= chunk:
                stop += 1
            length = degrees[stop - 1]
            rows_g = self.solve_rows[start:stop]
            slots = torch.arange(length, device=device)
            position = first.index_select(0, rows_g).unsqueeze(1) + slots
            valid = slots < degree.index_select(0, rows_g).unsqueeze(1)
            position = torch.where(valid, position, torch.zeros_like(position))
            flat = position.reshape(-1)
            other_g = torch.where(valid, other_sorted.index_select(0, flat).view_as(position), n_other)
            target_g = torch.where(valid, target_sorted.index_select(0, flat).view_as(position), 0.0)
            self.groups.append(RowGroup(other_g.reshape(-1), target_g.contiguous(), length, start, len(rows_g)))
            largest = max(largest, len(rows_g) * length)
            start = stop
        self.largest = largest
