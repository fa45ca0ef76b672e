"""Planning a run: selections resolved against the registry into a list of cases.

Everything a user can get wrong (unknown names, unknown parameters, values of
the wrong type, bad devices) is found here, before a single case runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic

import torch

from ..errors import SelectionError
from ..plugin.parts import Dataset, Metric, Model, Part, SplitProtocol, Strategy
from ..plugin.registry import Entry, P, Registry
from ..stats.criterion import Criterion
from .devices import parse_device
from .selection import Selection, format_selection, parse_selection
from .settings import AUTO_TARGET, RunConfig, parse_target_text

__all__ = ["AUTO_TARGET", "Case", "Choice", "RunConfig", "plan", "resolve"]

FACTORS_PARAM = "n_factors"


@dataclass(frozen=True)
class Choice(Generic[P]):
    """One registered part with fully resolved parameters."""

    entry: Entry[P]
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def full_label(self) -> str:
        """The name with every parameter (``ndcg[k=10]``): how results files key a metric's values."""
        return format_selection(self.name, self.params)

    @property
    def label(self) -> str:
        """The name with the parameters that differ from the defaults: short, and enough to tell cases apart."""
        defaults = self.entry.cls.params
        changed = {k: v for k, v in self.params.items() if k not in defaults or defaults[k] != v}
        return format_selection(self.name, changed)

    def make(self) -> P:
        return self.entry.cls(**self.params)


@dataclass(frozen=True)
class Case:
    """One combination the runner measures."""

    dataset: Choice[Dataset]
    model: Choice[Model]
    strategy: Choice[Strategy]
    device: torch.device
    #: The time-to-target threshold of this case's suite group ("auto": derived after the
    #: run from its tuned cases, see mfbench.stats.targets); None: the run's.
    target_rmse: float | str | None = None
    #: The seed of this run of the case (split, initialization, order); None: the run's ``seed``.
    seed: int | None = None
    #: The seeds of this case's suite group (``seeds`` in a ``[[group]]``); None: the run's.
    seeds: tuple[int, ...] | None = None
    #: Counted epochs of this case (a tuned race: what its study's best trial trained to its best
    #: validation epoch, less the warm-up); None: the run's ``epochs``.
    epochs: int | None = None
    #: How the ratings are split (``--split``); None: the random split.
    split: Choice[SplitProtocol] | None = None
    #: Metrics evaluated after every epoch beside RMSE (``--metric``, and the one ``--target`` is in).
    metrics: tuple[Choice[Metric], ...] = ()
    #: Time-to-target in a metric (``--target``); None: ``target_rmse`` (or no target).
    criterion: Criterion | None = None

    def counted_epochs(self, config: RunConfig) -> int:
        return self.epochs if self.epochs is not None else config.epochs

    @property
    def id(self) -> str:
        """The case's identity, the same for every seed it runs with."""
        return " / ".join((self.dataset.label, self.model.label, self.strategy.label, str(self.device)))

    @property
    def key(self) -> tuple[str, int | None]:
        """What tells one run of a case from another: the case and its seed."""
        return self.id, self.seed

    def with_seeds(self, seeds: Sequence[int]) -> list[Case]:
        return [replace(self, seed=seed) for seed in seeds]


def seed_runs(cases: Sequence[Case], seeds: Sequence[int]) -> list[Case]:
    """Every case once per seed (its group's seeds, else ``seeds``), seed by seed: after the first seed
    the whole suite has one result each, and a case's seeds are spread over the run rather than
    measured back to back."""
    order = list(dict.fromkeys(seed for case in cases for seed in (case.seeds or seeds)))
    return [run for seed in order for case in cases if seed in (case.seeds or seeds) for run in case.with_seeds([seed])]


def resolve(registry: Registry, base: type[Part], texts: Sequence[str], extra: dict[str, Any] | None = None) -> list[Choice]:
    """Each selection string expanded over its grid; ``extra`` fills declared params not given explicitly."""
    choices: list[Choice] = []
    for text in texts:
        selection: Selection = parse_selection(text)
        entry = registry.get(base, selection.name, unavailable_ok=True)  # the runner skips it, saying why
        for given in selection.expand():
            merged = {k: v for k, v in (extra or {}).items() if k in entry.cls.params and k not in given}
            merged.update(given)
            choice = Choice(entry, entry.cls.resolve_params(merged))
            if choice not in choices:
                choices.append(choice)
    return choices


#: The split protocol a run uses unless ``--split`` names another (cases then record no split choice).
DEFAULT_SPLIT = "random"


def evaluation(
    registry: Registry, config: RunConfig, strategies: Sequence[Choice[Strategy]]
) -> tuple[Choice[SplitProtocol], tuple[Choice[Metric], ...], Criterion | None]:
    """The run's split protocol, the metrics every epoch evaluates, and the ``--target`` criterion."""
    (split,) = one_choice(registry, SplitProtocol, config.split, "--split")
    metrics = resolve(registry, Metric, list(config.metrics or []))
    criterion = None
    if config.target is not None:
        text, op, value = parse_target_text(config.target)
        (metric,) = one_choice(registry, Metric, text, "--target")
        cls, higher = metric.entry.cls, op == ">="
        if higher != (cls.direction == "higher"):
            raise SelectionError(
                f"--target {config.target!r}: {cls.name} is {cls.direction}-is-better, so its target reads "
                f"{text}{'>=' if cls.direction == 'higher' else '<='}X"
            )
        if not cls.ranking:
            implicit = [s.name for s in strategies if s.entry.cls.objective != "rating"]
            if implicit:
                raise SelectionError(
                    f"--target {config.target!r}: {', '.join(implicit)} train(s) an implicit-feedback objective, "
                    f"whose {cls.name} says nothing about it; give a ranking target such as 'ndcg[k=10]>=0.3'"
                )
        criterion = Criterion(metric.full_label, metric.make().title(), higher, value)
        if metric not in metrics:
            metrics.append(metric)
    if config.implicit is not None and not any(m.entry.cls.ranking for m in metrics):
        raise SelectionError(
            "--implicit turns ratings into positives (value 1), on which RMSE says nothing: name a ranking metric "
            "with --metric or --target, such as --target 'ndcg[k=10]>=0.3'"
        )
    return split, tuple(metrics), criterion


def one_choice(registry: Registry, base: type[Part], text: str, option: str) -> list[Choice]:
    """The one part a single-valued option selects; a grid there is a usage error."""
    choices = resolve(registry, base, [text])
    if len(choices) != 1:
        raise SelectionError(f"{option} takes one {base.kind}, got {len(choices)} from the grid {text!r}")
    return choices


def plan(
    registry: Registry,
    datasets: Sequence[str],
    models: Sequence[str],
    strategies: Sequence[str],
    devices: Sequence[str],
    config: RunConfig,
    target_rmse: float | str | None = None,
    seeds: Sequence[int] | None = None,
) -> list[Case]:
    """The cross product dataset x model x strategy (x grid) x device, in that nesting order; ``target_rmse``
    and ``seeds`` are a suite group's own (None: the run's)."""
    config.validate()
    extra_model = {FACTORS_PARAM: config.factors} if config.factors is not None else None
    data_choices = resolve(registry, Dataset, datasets)
    model_choices = resolve(registry, Model, models, extra_model)
    strategy_choices = resolve(registry, Strategy, strategies)
    device_list: list[torch.device] = []
    for text in devices:
        device = parse_device(text)
        if device not in device_list:
            device_list.append(device)
    for kind, chosen in (("dataset", data_choices), ("model", model_choices), ("strategy", strategy_choices)):
        if not chosen:
            raise SelectionError(f"no {kind} selected")
    problems = [
        line
        for choice in (*data_choices, *model_choices, *strategy_choices)
        for line in choice.entry.cls.check_params(choice.params)
    ]
    split, metrics, criterion = evaluation(registry, config, strategy_choices)
    evaluated: list[Choice[Any]] = [split, *metrics]
    problems += [line for choice in evaluated for line in choice.entry.cls.check_params(choice.params)]
    if problems:
        raise SelectionError("the selection cannot run (nothing has started):\n  " + "\n  ".join(dict.fromkeys(problems)))
    if not device_list:
        raise SelectionError("no device selected")
    return [
        Case(
            d,
            m,
            s,
            dev,
            target_rmse,
            seeds=tuple(seeds) if seeds is not None else None,
            split=split if split.name != DEFAULT_SPLIT else None,
            metrics=metrics,
            criterion=criterion,
        )
        for d in data_choices
        for m in model_choices
        for s in strategy_choices
        for dev in device_list
    ]
