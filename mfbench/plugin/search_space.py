"""Search spaces: which parameters of a strategy are tuned, and over what range.

A strategy declares ``search_space = {"lr": LogUniform(1e-4, 0.3), ...}`` beside its
``params``. The dimensions are plain values (not an optimizer library's objects), so
``mfbench list`` can show them, the registry can check them when the plugin registers,
and the tuner (``mfbench.tune``, Optuna behind it) can turn them into suggestions.

Step sizes and regularization are searched on a log scale, as AlgoPerf's search spaces
and Optuna's examples do: their useful values span decades.

A dimension may be *conditional*: ``when={"optimizer": ("sgd",)}`` searches it only in
trials where the parameter ``optimizer`` takes one of those values (a step schedule that
only plain SGD has, say). The parameter it depends on is a categorical dimension declared
before it in the same space, or a parameter the search leaves alone; in trials where the
condition does not hold the parameter keeps its selected value and the trial does not
record it. The tuner asks for the dimensions in declaration order (define-by-run), so a
condition is always decided before the dimension it guards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PluginError


class Conditional:
    """What every dimension shares: an optional condition on other parameters (``when``).

    ``when`` maps a parameter name to the values under which the dimension is searched
    (``{"optimizer": ("sgd",)}``; one value may be given bare). It is kept as a tuple of
    ``(name, values)`` pairs, so dimensions stay hashable and compare by value.
    """

    when: Any

    def __post_init__(self) -> None:
        if self.when is None:
            return
        if not isinstance(self.when, Mapping) or not self.when:
            raise PluginError(f"when= takes a non-empty dict of parameter -> allowed values, got {self.when!r}")
        pairs = tuple(
            (key, tuple(values) if isinstance(values, (tuple, list, set, frozenset)) else (values,))
            for key, values in self.when.items()
        )
        object.__setattr__(self, "when", pairs)

    def conditions(self) -> tuple[tuple[str, tuple], ...]:
        """The ``(parameter, allowed values)`` pairs that must all hold; empty for a dimension always searched."""
        return self.when or ()

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the dimension is searched when the other parameters take ``values``."""
        return all(values.get(key) in allowed for key, allowed in self.conditions())

    def describe_when(self) -> str:
        return "".join(
            f" if {key} in {{{', '.join(map(str, allowed))}}}" if len(allowed) > 1 else f" if {key}={allowed[0]}"
            for key, allowed in self.conditions()
        )


@dataclass(frozen=True)
class LogUniform(Conditional):
    """A float drawn uniformly in log space from [low, high] (both positive)."""

    low: float
    high: float
    when: Any = field(default=None, kw_only=True)

    def describe(self) -> str:
        return f"log[{self.low:g}, {self.high:g}]" + self.describe_when()

    def check(self, default: Any) -> str | None:
        if not isinstance(default, float):
            return "a log-uniform range needs a float parameter"
        if not (_finite(self.low) and _finite(self.high)) or not 0 < self.low < self.high:
            return f"needs 0 < low < high, got low={self.low!r}, high={self.high!r}"
        return None

    def unit(self, value: float) -> float:
        """Where ``value`` lies in the range, from 0 to 1 (on the log scale)."""
        return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))


@dataclass(frozen=True)
class Uniform(Conditional):
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float
    when: Any = field(default=None, kw_only=True)

    def describe(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + self.describe_when()

    def check(self, default: Any) -> str | None:
        if not isinstance(default, float):
            return "a uniform range needs a float parameter"
        if not (_finite(self.low) and _finite(self.high)) or not self.low < self.high:
            return f"needs low < high, got low={self.low!r}, high={self.high!r}"
        return None

    def unit(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class IntRange(Conditional):
    """An integer from [low, high], inclusive; ``log`` draws it on a log scale (batch sizes)."""

    low: int
    high: int
    log: bool = False
    when: Any = field(default=None, kw_only=True)

    def describe(self) -> str:
        return f"{'log-' if self.log else ''}int[{self.low}, {self.high}]" + self.describe_when()

    def check(self, default: Any) -> str | None:
        if not isinstance(default, int) or isinstance(default, bool):
            return "an integer range needs an int parameter"
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)):
            return f"bounds must be integers, got low={self.low!r}, high={self.high!r}"
        if not self.low < self.high or (self.log and self.low < 1):
            return f"needs {'1 <= ' if self.log else ''}low < high, got low={self.low}, high={self.high}"
        return None

    def unit(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Categorical(Conditional):
    """One of a fixed set of values (an optimizer's name, a schedule)."""

    choices: tuple
    when: Any = field(default=None, kw_only=True)

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}" + self.describe_when()

    def check(self, default: Any) -> str | None:
        if not isinstance(self.choices, tuple) or len(self.choices) < 2:
            return f"needs a tuple of at least two choices, got {self.choices!r}"
        if default is not None and not all(type(c) is type(default) for c in self.choices):
            return f"choices {self.choices!r} must all have the parameter's type ({type(default).__name__})"
        return None


Dimension = LogUniform | Uniform | IntRange | Categorical
DIMENSIONS = (LogUniform, Uniform, IntRange, Categorical)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_search_space(space: Any, params: Mapping[str, Any], where: str) -> None:
    """Refuse a search space the tuner could not use; ``where`` names the plugin and part."""
    if not isinstance(space, Mapping):
        raise PluginError(f"{where}: search_space must be a dict of parameter -> range, got {type(space).__name__}")
    for key, dim in space.items():
        if key not in params:
            raise PluginError(
                f"{where}: search_space names {key!r}, which is not one of its params ({', '.join(sorted(params))})"
            )
        if not isinstance(dim, DIMENSIONS):
            raise PluginError(
                f"{where}: search_space[{key!r}] is {dim!r}; use mfbench.LogUniform, Uniform, IntRange or Categorical"
            )
        problem = dim.check(params[key]) or condition_problem(space, params, key, dim)
        if problem:
            raise PluginError(f"{where}: search_space[{key!r}] = {dim.describe()}: {problem}")


def condition_problem(space: Mapping[str, Any], params: Mapping[str, Any], key: str, dim: Dimension) -> str | None:
    """Why ``dim``'s condition cannot be decided when the tuner reaches it, or None."""
    earlier = list(space)[: list(space).index(key)]
    for name, allowed in dim.conditions():
        if name == key:
            return "its condition names the parameter itself"
        if name not in params:
            return f"its condition names {name!r}, which is not one of the params ({', '.join(sorted(params))})"
        if name in space and name not in earlier:
            return f"its condition names {name!r}, which must be declared before it (the tuner asks in order)"
        other = space.get(name)
        if other is not None and not isinstance(other, Categorical):
            return f"its condition names {name!r}, which is searched as {other.describe()}: a condition needs a categorical"
        known = other.choices if isinstance(other, Categorical) else None
        wrong = [value for value in allowed if known is not None and value not in known]
        if wrong:
            return f"its condition allows {name}={wrong[0]!r}, which is not among {name}'s choices {known!r}"
    return None


def describe_space(space: Mapping[str, Dimension]) -> str:
    """One line for ``mfbench list``: ``lr log[0.0001, 0.3], reg log[...]``."""
    return ", ".join(f"{key} {dim.describe()}" for key, dim in space.items())
