"""A target in any metric: ``ndcg[k=10] >= 0.3``, ``rmse <= 0.9``.

``--target-rmse X`` is the classic form (validation RMSE <= X, with ``auto``); ``--target`` names any
registered metric and a direction. A criterion is judged on the validation value each epoch
recorded, as RMSE targets are: time-to-target is the training seconds until it first holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .summary import as_number, decision_rmse

#: The metric RMSE is recorded as in every epoch (``valid_rmse``), whether or not ``--metric`` names it.
RMSE = "rmse"


@dataclass(frozen=True)
class Criterion:
    """Reach ``value`` in ``metric`` (its key in the results: ``ndcg[k=10]``), from above or below."""

    metric: str
    #: How tables name the metric (``NDCG@10``).
    title: str
    higher: bool
    value: float

    @property
    def op(self) -> str:
        return ">=" if self.higher else "<="

    def text(self) -> str:
        """``NDCG@10 >= 0.3``."""
        return f"{self.title} {self.op} {self.value:g}"

    def reached(self, value: float) -> bool:
        return math.isfinite(value) and (value >= self.value if self.higher else value <= self.value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criterion:
        return cls(str(data["metric"]), str(data.get("title") or data["metric"]), bool(data["higher"]), float(data["value"]))


def metric_value(entry: dict[str, Any], metric: str, part: str = "valid") -> float:
    """The value an epoch recorded for ``metric`` on ``part`` (``valid`` or ``test``); nan when it has none."""
    if metric == RMSE:
        return decision_rmse(entry) if part == "valid" else as_number(entry.get("test_rmse"))
    return as_number(((entry.get("metrics") or {}).get(part) or {}).get(metric))


def time_to_criterion(epochs: Iterable[dict[str, Any]], criterion: Criterion) -> float | None:
    """Training seconds until the validation value first meets ``criterion``; None if never (every
    epoch that trained counts, warm-up included, as for RMSE targets)."""
    total = 0.0
    for epoch in epochs:
        total += as_number(epoch.get("seconds"))
        if criterion.reached(metric_value(epoch, criterion.metric)):
            return total
    return None
