"""The contracts of the kinds of parts plugins contribute: datasets, models, strategies, metrics, splits.

Each part is a class with a ``name``, a ``params`` dict of defaults (every
parameter a plugin accepts must be declared here, so selections can be checked
and grids built before anything runs) and one job. The runner makes a fresh
instance per case with the resolved parameters in ``self.params``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.ratings import Ratings
from ..errors import SelectionError, unknown_name
from .constraints import violations

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
PARAM_TYPES = (bool, int, float, str, type(None))
DEVICE_TYPES = ("cpu", "cuda")
OBJECTIVES = ("rating", "implicit")
#: Which way a metric is better.
DIRECTIONS = ("lower", "higher")


def coerce_param(part: str, key: str, default: Any, value: Any) -> Any:
    """Convert ``value`` to the type of the declared ``default`` or explain why not."""
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise SelectionError(f"{part}: parameter {key!r} takes a {kind.__name__} (default {default!r}), got {value!r}")


class Part:
    """What datasets, models and strategies have in common."""

    kind: ClassVar[str] = "part"
    #: Unique name within its kind, used on the command line and in results.
    name: ClassVar[str] = ""
    #: Declared parameters and their defaults (bool, int, float, str or None). Not a ClassVar:
    #: an instance's ``params`` are its resolved values, the defaults overridden by what it was given.
    params: Mapping[str, Any] = {}
    #: What values parameters may take, checked while planning (see mfbench.plugin.constraints):
    #: ``{"lr": "positive", "density": "(0, 1]", "batch_size": ">= 1", "optimizer": ("sgd", "adam")}``.
    constraints: ClassVar[Mapping[str, Any]] = {}
    #: One line for ``mfbench list``; defaults to the docstring's first line.
    description: ClassVar[str] = ""
    #: Why this part cannot be used on this machine (typically an optional library that
    #: is not installed, with the command that installs it), or None. A plugin whose
    #: library is missing still registers the class with this set: the registry keeps
    #: it aside, ``mfbench list`` shows the reason, and selecting it is an error that says it.
    unavailable: ClassVar[str | None] = None

    def __init__(self, **params: Any) -> None:
        self.params = self.resolve_params(params)

    @classmethod
    def resolve_params(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``given``; unknown names and wrong types are errors."""
        resolved = dict(cls.params)
        for key, value in given.items():
            if key not in cls.params:
                raise SelectionError(f"{cls.kind} {cls.name!r}: " + unknown_name("parameter", key, cls.params))
            resolved[key] = coerce_param(f"{cls.kind} {cls.name!r}", key, cls.params[key], value)
        return resolved

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        """Every problem with resolved ``params``, one line each; empty when they are usable.

        The one place a part's parameter values are validated: the planner calls it for
        every selected part before any data is loaded, so a bad value is always a usage
        error that lists every problem, never an error or a skip when the case runs. The
        default checks the declared ``constraints``; override it (calling ``super()``) for
        rules that span parameters, and prefix each line with ``problem_prefix()``.
        """
        return violations(cls, params)

    @classmethod
    def problem_prefix(cls) -> str:
        """How a problem line names this part: ``strategy 'numba': ``."""
        return f"{cls.kind} {cls.name!r}: "

    @classmethod
    def summary(cls) -> str:
        if cls.description:
            return cls.description
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Dataset(Part):
    """A data generator or loader: produces the full set of ratings from a seed."""

    kind = "dataset"
    #: Archives this dataset can fetch with ``mfbench data download NAME``: name -> one-line description.
    downloads: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def download(cls, name: str, cache_dir: Path) -> Path:
        """Fetch archive ``name`` (a key of ``downloads``) into ``cache_dir``, verify it, return its path."""
        raise NotImplementedError

    def load(self, seed: int) -> Ratings:
        """Return every rating, each (user, item) pair once (copies of a pair could be split apart,
        one trained on and one held out); the runner splits train and held-out itself.

        ``load`` may set ``self.facts``, a JSON-able dict of what loading found, kept in the results
        as the dataset's ``facts``; its ``notes`` (a list of strings) are also each case's warnings.
        """
        raise NotImplementedError


class Model(Part):
    """A model variant: builds an ``nn.Module`` whose ``forward(users, items)`` predicts ratings."""

    kind = "model"
    #: The model's parameters ``mfbench tune`` searches together with the strategy's (its size, its
    #: initialization), as for :attr:`Strategy.search_space`; in a study and its results they are
    #: named ``model.<param>``. Empty: the model stays as selected.
    search_space: ClassVar[Mapping[str, Any]] = {}

    def build(self, train: Ratings) -> nn.Module:
        """Return a freshly initialized module for ``train``'s shape.

        The runner seeds torch before calling this, so initialization is
        reproducible. ``train`` is given so that a model can use statistics
        of the training ratings (a global mean, say); it must not see held-out data.
        """
        raise NotImplementedError


class Strategy(Part):
    """A training strategy: owns the optimizer loop, never the clock.

    The runner calls ``skip`` (may this strategy run this model on this
    device?), then ``setup`` once (timed as setup), then ``run_epoch`` once per
    epoch (each call timed, with the device synchronized around it). Anything
    not part of an epoch's work (building optimizers, moving or reshaping
    data, compiling) belongs in ``setup``.
    """

    kind = "strategy"
    #: Device types this strategy can run on.
    devices: ClassVar[tuple[str, ...]] = DEVICE_TYPES
    #: True when, given the same visiting order, it computes the reference
    #: per-rating SGD (checked to tolerance); False for minibatch, ALS, Hogwild...
    exact: ClassVar[bool] = False
    #: True for the strategy the others are measured against (the notebook's per-rating loop):
    #: tables add each case's time-to-target over this one's on the same workload.
    reference: ClassVar[bool] = False
    #: True when the same seed gives the same trained model.
    deterministic: ClassVar[bool] = True
    #: False when the library behind the strategy can only train a whole fit (it cannot be
    #: stepped one epoch at a time): the runner then calls ``fit(epochs)`` once per repeat
    #: and times it as one entry covering every epoch, warm-up epochs included.
    stepwise: ClassVar[bool] = True
    #: What the strategy minimizes: "rating" (squared error of predicted ratings, what
    #: held-out RMSE judges) or "implicit" (an implicit-feedback objective: its RMSE is
    #: shown marked and it has no time-to-target; compare it on time per iteration only).
    objective: ClassVar[str] = "rating"
    #: The parameter that sets how many workers run in parallel ("threads", "world_size"),
    #: or None: the report computes scaling efficiency between cases that differ only in it.
    scales_with: ClassVar[str | None] = None
    #: The parameters ``mfbench tune`` searches, and over what range: parameter name ->
    #: ``mfbench.LogUniform(low, high)``, ``Uniform``, ``IntRange`` or ``Categorical``
    #: (mfbench.plugin.search_space). Checked when the plugin registers; empty: nothing to tune.
    search_space: ClassVar[Mapping[str, Any]] = {}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        """A reason this strategy cannot train ``model`` on ``device``, or None to run it."""
        return None

    def setup(self, model: nn.Module, train: Ratings, device: torch.device, seed: int) -> None:
        """Prepare to train ``model`` (already on ``device``) on ``train`` (already on ``device``)."""
        raise NotImplementedError

    def run_epoch(self, epoch: int) -> float | None:
        """Run one pass over the training ratings; return a training loss if one is at hand.

        A returned loss that is NaN or infinite ends the case as ``diverged``.
        """
        raise NotImplementedError

    def fit(self, epochs: int) -> float | None:
        """Train ``epochs`` epochs in one call (only called when ``stepwise`` is False)."""
        raise NotImplementedError

    def work_per_update(self, model: nn.Module) -> Mapping[str, Any] | None:
        """What one update costs, for the roofline fields of the summary; None when not stated.

        A mapping with ``bytes_per_update`` (bytes moved between memory and the core) and
        ``flops_per_update`` (floating-point operations), asked after ``setup``. A per-rating
        SGD strategy can return ``mfbench.roofline.per_rating_sgd(k, element_bytes, biased)``.
        """
        return None

    def info(self) -> Mapping[str, Any] | None:
        """Facts to record with each repeat, asked after its last epoch (before ``teardown``).

        For what the timing alone does not say: the wrapped library's version, the
        world size, bytes communicated per epoch, the threading layer... JSON-able values.
        """
        return None

    def teardown(self) -> None:
        """Release what ``setup`` acquired (worker processes, files). Always called, even after an error."""


class Metric(Part):
    """A quality metric: how a trained model is judged on held-out ratings (RMSE, NDCG@k...).

    The runner evaluates the metrics a run names (``--metric``, or the one its ``--target`` is in)
    after every epoch, outside the timed region, on the validation ratings (what targets and
    tuning see) and on the test ratings (the final figures). RMSE is always evaluated.
    """

    kind = "metric"
    #: "lower" (RMSE, MAE) or "higher" (recall, NDCG) is better.
    direction: ClassVar[str] = "lower"
    #: True when it ranks the full item catalog for every user (top-N metrics): the cost of an
    #: evaluation is then users x items, not one pass over the held-out ratings.
    ranking: ClassVar[bool] = False
    #: For a ranking metric that the shared full-catalog pass computes
    #: (``mfbench.metrics.ranking.evaluate_ranking``): its measure there (``ndcg``, ``recall``...),
    #: with the cut-off in the parameter ``k``. Several such metrics share one ranking per evaluation.
    measure: ClassVar[str | None] = None

    def title(self) -> str:
        """How tables name it: ``NDCG@10``, ``RMSE``."""
        k = self.params.get("k")
        return f"{(self.measure or self.name).upper()}@{k}" if k is not None else self.name.upper()

    def compute(self, model: nn.Module, heldout: Ratings, seen: Sequence[Ratings]) -> float:
        """The metric of ``model`` on ``heldout``; ``seen``: the ratings the model was trained or
        decided on (a ranking metric never ranks them for their user). Not called for a metric with
        a ``measure``: the shared ranking pass computes those."""
        raise NotImplementedError


class SplitProtocol(Part):
    """How the ratings are divided into training, validation and test sets (a random split,
    the last interaction of each user...), deterministic from the seed."""

    kind = "split"
    #: True when it orders ratings by time: ratings without timestamps are refused.
    needs_times: ClassVar[bool] = False

    def split(self, ratings: Ratings, valid_fraction: float, test_fraction: float, seed: int) -> Any:
        """The three parts, a :class:`mfbench.data.ratings.Split`."""
        raise NotImplementedError


def epoch_permutation(n: int, seed: int, epoch: int, stream: int | Sequence[int] = ()) -> torch.Tensor:
    """The order in which strategies visit ``n`` training ratings in ``epoch``.

    Shared by every exact strategy and by the contract tests, so "same order"
    means the same thing everywhere. ``stream`` (an int or a tuple of ints) keys
    an independent order of the same seed and epoch, for a part of the work that
    needs its own: a worker's shard, a block of a blocked schedule. The default
    (no stream) is the order the exact strategies share; a stream of zeros
    gives that same order, since the seed's hash pads its key with zeros.
    """
    keys = (int(stream),) if isinstance(stream, int) else tuple(int(key) for key in stream)
    entropy = [int(seed) & 0xFFFFFFFF, int(epoch), *keys]
    child = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator().manual_seed(int(child) & 0x7FFFFFFFFFFFFFFF)
    return torch.randperm(n, generator=generator)
