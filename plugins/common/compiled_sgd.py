"""What the compiled per-rating SGD strategies share (``numba``, ``native-sgd``, ``triton-sgd``).

The three run the reference's step (error ``e = pred - r``, the MSE gradient's factor 2,
both rows stepped from their pre-step values, L2 ``reg`` on the rows a rating touches)
in a kernel of their own on the model's tables. So they take the same step parameters
with the same rules, find the tables the same way, refuse the same models and state the
same work per update; each adds its own schedule and kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

import mfbench
from mfbench import roofline
from mfbench.plugin import DEFAULT_DTYPES, LayoutError, Tables, find_tables
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr as scheduled_lr

STEP_PARAMS: dict[str, Any] = {
    # per-rating step on (pred - r)^2 (the gradient carries the factor 2), as every mfbench SGD.
    "lr": 0.01,
    # L2 on the rows a rating touches, per rating.
    "reg": 0.05,
    # epoch e steps with lr / (1 + lr_decay * e); 0 keeps the reference's constant step.
    **SCHEDULE_PARAMS,
}
STEP_CONSTRAINTS: dict[str, Any] = {"lr": "positive", "reg": "non-negative", **SCHEDULE_CONSTRAINTS}
#: What mfbench tune searches for a per-rating SGD: the step and the L2 on log scales, and the step's
#: decay (plugins.common.sgd's schedule).
SGD_SPACE: dict[str, Any] = {
    "lr": mfbench.LogUniform(1e-3, 0.2),
    "reg": mfbench.LogUniform(1e-3, 0.3),
    **SCHEDULE_SPACE,
}


class CompiledSGD(mfbench.Strategy):
    """A per-rating SGD kernel on the model's own tables (a base class: it registers nothing)."""

    params = STEP_PARAMS
    constraints = STEP_CONSTRAINTS
    #: What mfbench tune searches (validation RMSE decides).
    search_space = SGD_SPACE
    #: The dtypes the kernel computes in.
    table_dtypes: ClassVar[tuple[torch.dtype, ...]] = DEFAULT_DTYPES
    #: True when the kernel writes through views of the tables' memory, which must then be contiguous.
    in_place: ClassVar[bool] = True

    def device_problem(self, device: torch.device) -> str | None:
        """Why the kernel cannot run on ``device``, or None."""
        if device.type in self.devices:
            return None
        return f"{self.name} runs on {', '.join(self.devices)}, not {device.type}"

    def tables_of(self, model: nn.Module, ratings: mfbench.Ratings | None = None) -> Tables:
        """The model's tables as this kernel needs them; a :class:`mfbench.LayoutError` saying why not."""
        tables = find_tables(model, self.name, dtypes=self.table_dtypes, ratings=ratings)
        if self.in_place and not all(w.is_contiguous() for w in tables.weights().values()):
            raise LayoutError(f"{self.name} works in place on contiguous weight tables; this model's are not contiguous")
        return tables

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        reason = self.device_problem(torch.device(device))
        if reason:
            return reason
        try:
            self.tables_of(model)
        except LayoutError as exc:
            return str(exc)
        return None

    def setup_tables(self, model: nn.Module, train: mfbench.Ratings, device: torch.device) -> Tables:
        """``setup``'s checks: the library is there, the device and the model fit, the tables match ``train``."""
        if self.unavailable:
            raise mfbench.MfbenchError(self.unavailable)
        reason = self.device_problem(torch.device(device))
        if reason:
            raise mfbench.MfbenchError(reason)
        return self.tables_of(model, train)

    def epoch_lr(self, epoch: int) -> float:
        """The step size of ``epoch`` (the SGD family's schedule: plugins.common.sgd.epoch_lr)."""
        return scheduled_lr(self.params["lr"], self.params["lr_decay"], epoch)

    def work_per_update(self, model: nn.Module) -> Mapping[str, Any] | None:
        try:
            tables = self.tables_of(model)
        except LayoutError:
            return None
        return roofline.per_rating_sgd(tables.n_factors, tables.user_factors.element_size(), tables.biased)
