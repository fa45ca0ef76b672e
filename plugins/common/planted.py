"""What the planted datasets (lowrank, zipf) share: their parameters, their checks and their rating count.

Not a plugin: :class:`Planted` is a base class, registered by no one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mfbench
from mfbench.data import too_big

#: The values planted data's parameters may take (zipf adds its exponents).
PLANTED_CONSTRAINTS: dict[str, Any] = {
    "n_users": ">= 1",
    "n_items": ">= 1",
    "nnz": ">= 0",
    "density": "(0, 1]",
    "rank": ">= 1",
    "noise": "non-negative",
}

#: The shape and noise shared by the planted generators (zipf adds popularity exponents).
PLANTED_PARAMS: dict[str, Any] = {
    "n_users": 2000,
    "n_items": 1000,
    "nnz": 100_000,
    "density": None,
    "rank": 5,
    "noise": 0.5,
    "mean": 3.0,
}


def planted_problems(prefix: str, params: Mapping[str, Any]) -> list[str]:
    """The rule between ``nnz`` and ``density`` that per-parameter constraints cannot state: one, not both.

    Giving both is refused rather than one silently winning.
    """
    nnz, density = params["nnz"], params["density"]
    if density is None and not nnz:
        return [f"{prefix}needs nnz > 0 (a count of ratings), or nnz=0 and density="]
    if density is not None and nnz:
        return [f"{prefix}give nnz or density, not both; set nnz=0 to use density={density}"]
    return []


def ratings_count(params: Mapping[str, Any]) -> int:
    """How many ratings to plant: ``nnz``, or ``density`` of the matrix when nnz is 0 (or None)."""
    if params["density"] is None:
        return int(params["nnz"])
    return max(1, round(float(params["density"]) * params["n_users"] * params["n_items"]))


class Planted(mfbench.Dataset):
    """What the planted datasets share (not registered itself): their parameters and their checks."""

    params = dict(PLANTED_PARAMS)
    constraints = dict(PLANTED_CONSTRAINTS)

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        problems = super().check_params(params) + planted_problems(cls.problem_prefix(), params)
        if problems:
            return problems
        return too_big(cls.problem_prefix(), ratings_count(params))
