"""Run settings, each declared once: its name, type, default, help, range check and where it may be set.

A setting is a field of :class:`RunConfig` made with :func:`setting`. Everything that reads
settings reads these declarations: the suite loader (which keys a suite and its groups may
set, and their types and ranges), the planner (:meth:`RunConfig.validate`), the command-line
options of ``mfbench run`` and ``mfbench tune`` and the text of their ``--help``
(``mfbench.cli.common.add_setting_options``), the overrides a command line gives, and
``--resume``'s comparison of an earlier file's settings. Adding a setting is one field here
plus the code that uses it.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from ..errors import SelectionError

AUTO_TARGET = "auto"
#: ``--implicit all``: every rating is a positive interaction.
IMPLICIT_ALL = "all"

#: Checks return what is wrong with a value (a phrase after the setting's name), or None.
Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Setting:
    """How one run setting is set and checked; the field it describes gives its name, type and default."""

    #: What it is, for ``--help`` and the reference (the default is added there, suite-aware).
    help: str
    check: Check | None = None
    #: A suite file may set it at its top level; ``group``: in a ``[[group]]`` table too.
    suite: bool = True
    group: bool = False
    #: The commands that take it as an option.
    commands: tuple[str, ...] = ("run", "tune")
    metavar: str | None = None
    #: How ``--help`` names the default where the default is None ("none", "each model its own").
    shown_default: str | None = None
    #: Command-line text to value, where the field's type is not enough (a number or a word).
    parse: Callable[[str], Any] | None = None
    #: Names it had before: accepted as flags and suite keys, and read from older results files.
    old_names: tuple[str, ...] = ()

    def flags(self, name: str) -> list[str]:
        return ["--" + n.replace("_", "-") for n in (name, *self.old_names)]


def setting(default: Any, help: str, **how: Any) -> Any:
    """A :class:`RunConfig` field that is a run setting (see :class:`Setting` for ``how``); a list
    default is copied for each config."""
    metadata = {"setting": Setting(help=help, **how)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# -- range checks ------------------------------------------------------------------------


def at_least(low: int) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None or value >= low else f"must be at least {low}, got {value}"

    return check


def fraction(value: Any) -> str | None:
    return None if 0.0 < value < 1.0 else f"must be between 0 and 1, got {value}"  # false for nan too


def positive_seconds(value: Any) -> str | None:
    if value is None or (value > 0 and math.isfinite(value)):
        return None
    return f"must be a positive number of seconds, got {value}"


def slack(value: Any) -> str | None:
    return None if 0 <= value < 1 else f"must be in [0, 1), got {value}"


def target_problem(value: Any) -> str | None:
    """A target is a positive finite number, "auto" or absent."""
    if value is None or value == AUTO_TARGET:
        return None
    if isinstance(value, (str, bool)) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        return f"must be a positive number or {AUTO_TARGET!r}, got {value!r}"
    return None


def parse_target(text: str) -> float | str:
    """The command line's --target-rmse: a number or "auto"."""
    if text.strip().lower() == AUTO_TARGET:
        return AUTO_TARGET
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a positive number or {AUTO_TARGET!r}, got {text!r}") from None


def parse_seeds(text: str) -> int | list[int]:
    """The command line's --seeds: a count N, or a comma-separated list of seeds (``0,1,2``; ``7,``
    is the one seed 7)."""
    text = text.strip()
    if "," not in text:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a count N or a list such as 0,1,2; got {text!r}") from None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a count N or a list of integer seeds such as 0,1,2; got {text!r}") from None


def seeds_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return f"must be a count or a list of seeds, got {value!r}"
    if isinstance(value, int):
        return None if value >= 1 else f"must be a count of at least 1 or a list of seeds, got {value}"
    if not isinstance(value, (list, tuple)) or not value:
        return f"must be a count or a non-empty list of seeds, got {value!r}"
    if not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in value):
        return f"must list integer seeds of 0 or more, got {list(value)!r}"
    twice = sorted({seed for seed in value if list(value).count(seed) > 1})
    return f"lists seed {', '.join(map(str, twice))} more than once" if twice else None


def split_top_level(text: str) -> list[str]:
    """``ndcg[k=10],recall[k=20]`` as its two selections: commas inside brackets stay."""
    parts, depth, start = [], 0, 0
    for at, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:at])
            start = at + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_metrics(text: str) -> list[str]:
    """The command line's --metric: one or more metric selections, comma-separated (``ndcg[k=10],recall``)."""
    found = split_top_level(text)
    if not found:
        raise argparse.ArgumentTypeError(f"takes metric selections such as ndcg[k=10],recall[k=20]; got {text!r}")
    return found


def metrics_problem(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        return f"must be a list of metric selections such as ['ndcg[k=10]'], got {value!r}"
    return None


#: ``--target`` reads ``METRIC OP VALUE``: ``ndcg[k=10]>=0.3``, ``rmse<=0.9``.
TARGET_PATTERN = re.compile(r"^\s*(?P<metric>[^<>]+?)\s*(?P<op><=|>=)\s*(?P<value>[^<>=\s]+)\s*$")


def parse_target_text(text: str) -> tuple[str, str, float]:
    """(metric selection, ``<=`` or ``>=``, threshold) of a ``--target``; a ValueError says what is wrong."""
    match = TARGET_PATTERN.match(text)
    if not match:
        raise ValueError(f"takes METRIC<=X or METRIC>=X such as 'ndcg[k=10]>=0.3' or 'rmse<=0.9', got {text!r}")
    try:
        value = float(match["value"])
    except ValueError:
        raise ValueError(f"needs a number after {match['op']}, got {match['value']!r} in {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"needs a finite threshold, got {match['value']!r} in {text!r}")
    return match["metric"], match["op"], value


def target_text_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be text such as 'ndcg[k=10]>=0.3', got {value!r}"
    try:
        parse_target_text(value)
    except ValueError as exc:
        return str(exc)
    return None


def implicit_problem(value: Any) -> str | None:
    """``all`` or a finite threshold (as text or a number), or absent."""
    if value is None or value == IMPLICIT_ALL:
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = math.nan
    if isinstance(value, bool) or not math.isfinite(threshold):
        return f"must be a rating threshold (4: ratings >= 4 are positives) or {IMPLICIT_ALL!r}, got {value!r}"
    return None


def parse_implicit(text: str) -> str:
    problem = implicit_problem(text.strip())
    if problem:
        raise argparse.ArgumentTypeError(problem.removeprefix("must be "))
    return text.strip()


# -- the settings ------------------------------------------------------------------------


@dataclass
class RunConfig:
    """How every case of a run is run: the run settings (each field's declaration is the one source)."""

    epochs: int = setting(3, "counted epochs per repeat", check=at_least(1), metavar="N")
    repeats: int = setting(
        3, "timing repeats per case, each from a fresh model on the same seed", check=at_least(1), commands=("run",), metavar="N"
    )
    warmup: int = setting(1, "uncounted warm-up epochs at the start of each repeat", check=at_least(0), metavar="N")
    seed: int = setting(
        0,
        "seed for the data generator, and for split, init and order unless --seeds says otherwise",
        check=at_least(0),
        metavar="N",
    )
    #: How many seeds (from ``seed`` up) or which: each case runs once per seed, with its own
    #: split, initialization and visiting order; repeats stay timing repeats within a seed.
    seeds: int | list[int] = setting(
        1,
        "seeds to run every case with: a count N (--seed, --seed+1, ...) or a list 0,1,2; each draws its own "
        "split, initialization and order (--repeats repeat timing within one seed)",
        check=seeds_problem,
        group=True,
        metavar="N|LIST",
        parse=parse_seeds,
    )
    #: Each seed also generates its own data (for generated datasets); by default every seed
    #: trains on the data of ``seed``, so "other data" and "other training luck" stay apart.
    data_seeds: bool = setting(
        False, "each seed also generates its own data (generated datasets); by default all train on --seed's data"
    )
    #: Share of ratings held out as the test set: final figures only, never a decision.
    test_fraction: float = setting(0.1, "share held out as the test set, for final figures only", check=fraction, metavar="F")
    #: Share of ratings held out for validation: what tuning, targets and time-to-target see.
    valid_fraction: float = setting(
        0.1, "share held out for validation: what targets and tuning see", check=fraction, metavar="F"
    )
    factors: int | None = setting(
        None,
        "n_factors of every model that has it, unless given in -m",
        check=at_least(1),
        metavar="K",
        shown_default="each model its own",
    )
    #: Seconds one case may run (all its repeats); past it the case ends as ``timeout``.
    case_timeout: float | None = setting(
        None,
        "seconds per case: run kills a case's worker past it (the case is a timeout); tune checks each trial after every epoch",
        check=positive_seconds,
        shown_default="none",
        metavar="S",
        old_names=("timeout",),
    )
    #: A threshold, "auto" (derived per workload after the run: mfbench.stats.targets), or None.
    target_rmse: float | str | None = setting(
        None,
        "report time-to-target: training seconds until validation RMSE <= X; 'auto' derives one per workload from "
        "the run (see Targets in the docs)",
        check=target_problem,
        group=True,
        commands=("run",),
        metavar="X",
        shown_default="none",
        parse=parse_target,
    )
    #: For auto targets: how far above the median of the cases' best validation RMSE the target lies (0.02: 2%).
    target_slack: float = setting(
        0.02,
        "for --target-rmse auto: the target is (1 + S) x the median of the workload's cases' best validation RMSE",
        check=slack,
        commands=("run",),
        metavar="S",
    )
    #: Time-to-target in any metric: ``ndcg[k=10]>=0.3``; ``--target-rmse X`` is the short form of ``rmse<=X``.
    target: str | None = setting(
        None,
        "report time-to-target in any metric: training seconds until the validation value reaches it, "
        "'ndcg[k=10]>=0.3', 'rmse<=0.9' (the metric is evaluated every epoch)",
        check=target_text_problem,
        commands=("run",),
        metavar="METRIC>=X",
        shown_default="none",
    )
    #: Metrics evaluated after every epoch beside RMSE (selections of registered metrics).
    metrics: list[str] | None = setting(
        [],
        "metrics evaluated after every epoch beside RMSE, on validation and test: ndcg[k=10],recall[k=20] "
        "(mfbench list shows them)",
        check=metrics_problem,
        metavar="SEL[,SEL]",
        shown_default="RMSE only",
        parse=parse_metrics,
    )
    #: How ratings are divided into train, validation and test (a registered split protocol).
    split: str = setting(
        "random",
        "split protocol: random, per-user, temporal or leave-last-out (the time-based ones need timestamps)",
        metavar="NAME",
    )
    #: Ratings as implicit feedback: a threshold (ratings >= it are positives, the rest dropped) or "all".
    implicit: str | None = setting(
        None,
        "treat ratings as implicit feedback: a threshold X (ratings >= X become positives, value 1; the rest are "
        "dropped) or 'all' (every rating is a positive)",
        check=implicit_problem,
        metavar="X|all",
        shown_default="ratings as they are",
        parse=parse_implicit,
    )
    #: torch intra-op threads for the whole run (None: torch's default, usually one per core).
    threads: int | None = setting(
        None, "torch intra-op threads for the run", check=at_least(1), metavar="N", shown_default="torch's, one per core"
    )
    #: Trials per study when the run tunes every case before racing it (None: no tuning).
    tune_trials: int | None = setting(
        None,
        "tune every case first (N trials per study, stored in --tuned or the default studies file), then race the "
        "tuned parameters",
        check=at_least(1),
        commands=("run",),
        metavar="N",
        shown_default="no tuning; most suites do not tune",
    )

    def seed_list(self, seeds: int | list[int] | None = None) -> list[int]:
        """The seeds every case runs with, in order (``seeds``: a suite group's own count or list instead)."""
        seeds = self.seeds if seeds is None else seeds
        if isinstance(seeds, int):
            return list(range(self.seed, self.seed + seeds))
        return list(seeds)

    def data_seed(self, seed: int) -> int:
        """The seed the data generator gets for a case run with ``seed``."""
        return seed if self.data_seeds else self.seed

    def validate(self) -> None:
        """Every setting's own check, then the checks across settings: one usage error naming the option."""
        for name, declared in declarations().items():
            problem = declared.check(getattr(self, name)) if declared.check is not None else None
            if problem:
                raise SelectionError(f"{declared.flags(name)[0]} {problem}")
        if self.target is not None and self.target_rmse is not None:
            raise SelectionError("--target and --target-rmse both set a target: give one (--target-rmse X is --target 'rmse<=X')")
        if not self.test_fraction + self.valid_fraction < 1.0:
            raise SelectionError(
                f"--test-fraction and --valid-fraction must sum below 1, got {self.test_fraction} + {self.valid_fraction}"
            )


def declarations() -> dict[str, Setting]:
    """Every run setting by name, in declaration order."""
    return {f.name: f.metadata["setting"] for f in fields(RunConfig) if "setting" in f.metadata}


def defaults() -> dict[str, Any]:
    return {f.name: getattr(RunConfig(), f.name) for f in fields(RunConfig) if "setting" in f.metadata}


def value_type(name: str) -> type:
    """The type a setting's value has (``int`` for ``int | None``); ``str`` for a number-or-word,
    ``list`` for a count-or-list."""
    hint = get_type_hints(RunConfig)[name]
    kinds = [getattr(k, "__origin__", k) for k in getattr(hint, "__args__", (hint,)) if k is not type(None)]
    return next((kind for kind in (str, list) if kind in kinds), kinds[0])


def current_name(key: str) -> str | None:
    """The setting a name means now (an old name is read as its new one), or None."""
    for name, declared in declarations().items():
        if key == name or key in declared.old_names:
            return name
    return None


def suite_value(name: str, value: Any, where: str) -> Any:
    """A suite file's value for setting ``name``, type- and range-checked; the message names the file."""
    declared = declarations()[name]
    kind = value_type(name)
    if kind in (list, bool):  # a count or a list (seeds), a switch: their checks say what is wrong
        problem = declared.check(value) if declared.check else None
        if kind is bool and not isinstance(value, bool):
            problem = f"must be true or false, got {value!r}"
        if problem:
            raise SelectionError(f"{where}: {name!r} {problem}")
        return value
    if kind is str:  # a number or a word (target_rmse)
        problem = declared.check(value) if declared.check else None
        if problem:
            raise SelectionError(f"{where}: {name!r} {problem}")
        return value if isinstance(value, str) else float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (kind is int and not isinstance(value, int)):
        raise SelectionError(f"{where}: {name!r} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
    if kind is float and math.isnan(value):
        raise SelectionError(f"{where}: {name!r} must be a number, not nan")
    problem = declared.check(kind(value)) if declared.check else None
    if problem:
        raise SelectionError(f"{where}: {name!r} {problem}")
    return kind(value)


def recorded(config_document: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of each setting as a results file recorded it, read under today's names;
    a setting the file's version did not have reads as its default (what that version did)."""
    for name, declared in declarations().items():
        keys = [k for k in (name, *declared.old_names) if k in config_document]
        yield name, config_document[keys[0]] if keys else defaults()[name]
