"""Parameter constraints: the values a part's parameters may take, checked while planning.

A part declares them beside its defaults, so a bad value is a usage error listing
every violation before any data is loaded, the same way for every part, instead
of an error or a skip that each strategy words its own way when its case runs::

    params = {"batch_size": 4096, "lr": 0.01, "reg": 0.01, "optimizer": "sgd"}
    constraints = {"batch_size": ">= 1", "lr": "positive", "reg": ">= 0", "optimizer": ("sgd", "adagrad")}

A constraint is ``"positive"`` (> 0), ``"non-negative"`` (>= 0), a comparison with a
number (``">= 1"``, ``"> 0"``, ``"<= 1"``, ``"< 10"``), an interval (``"(0, 1]"``,
``"[0, 1)"``...), or a tuple of the allowed values. NaN satisfies no numeric
constraint. A None value (a parameter whose None means "pick one") is never checked.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import PluginError

COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    ">=": (operator.ge, "at least"),
    ">": (operator.gt, "greater than"),
    "<=": (operator.le, "at most"),
    "<": (operator.lt, "less than"),
}
NAMED = {"positive": "> 0", "non-negative": ">= 0"}
COMPARISON = re.compile(r"^\s*(>=|>|<=|<)\s*(\S+)\s*$")
INTERVAL = re.compile(r"^\s*([\[(])\s*(\S+?)\s*,\s*(\S+?)\s*([\])])\s*$")

Check = Callable[[Any], bool]


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PluginError(f"constraint {spec!r}: {text!r} is not a number") from None


def compile_constraint(spec: Any) -> tuple[Check, str]:
    """(check, what it requires in words) for one declared constraint; a malformed one is a PluginError."""
    if isinstance(spec, (tuple, list, frozenset, set)):
        allowed = tuple(spec)
        return (lambda value: value in allowed), "one of " + ", ".join(repr(v) for v in allowed)
    if not isinstance(spec, str):
        raise PluginError(f"constraint {spec!r} is neither a string nor a tuple of allowed values")
    text = NAMED.get(spec.strip(), spec)
    match = COMPARISON.match(text)
    if match:
        compare, words = COMPARISONS[match.group(1)]
        bound = _number(match.group(2), spec)
        shown = spec.strip() if spec.strip() in NAMED else f"{words} {bound:g}"
        return (lambda value: _numeric(value) and compare(value, bound)), shown
    match = INTERVAL.match(text)
    if match:
        low_open, high_open = match.group(1) == "(", match.group(4) == ")"
        low, high = _number(match.group(2), spec), _number(match.group(3), spec)

        def inside(value: Any) -> bool:
            if not _numeric(value):
                return False
            above = value > low if low_open else value >= low
            below = value < high if high_open else value <= high
            return above and below

        return inside, f"in {text.strip()}"
    raise PluginError(
        f"constraint {spec!r} is not understood: use 'positive', 'non-negative', '>= N', '> N', '<= N', "
        f"'< N', an interval such as '(0, 1]', or a tuple of the allowed values"
    )


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def check_declaration(cls: type) -> None:
    """A part's ``constraints`` must name declared parameters and be understood (called at registration)."""
    constraints: Mapping[str, Any] = getattr(cls, "constraints", {}) or {}
    if not isinstance(constraints, Mapping):
        raise PluginError(f"{cls.__name__}.constraints must be a dict of parameter name -> constraint")
    for key, spec in constraints.items():
        if key not in cls.params:  # type: ignore[attr-defined]
            raise PluginError(f"{cls.__name__}.constraints names {key!r}, which is not one of its params")
        try:
            compile_constraint(spec)
        except PluginError as exc:
            raise PluginError(f"{cls.__name__}.constraints[{key!r}]: {exc}") from None


def violations(cls: type, params: Mapping[str, Any]) -> list[str]:
    """Every way ``params`` break ``cls``'s declared constraints, one line each."""
    found = []
    for key, spec in (getattr(cls, "constraints", {}) or {}).items():
        value = params.get(key)
        if value is None:
            continue
        check, requirement = compile_constraint(spec)
        if not check(value):
            found.append(f"{cls.problem_prefix()}{key}={value!r}, must be {requirement}")  # type: ignore[attr-defined]
    return found
