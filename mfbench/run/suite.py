"""Named suites: TOML files that say what ``mfbench run`` crosses and how.

A suite has run settings at the top level and one or more ``[[group]]`` tables,
each a cross product of its own datasets, models, strategies (and optionally
devices); a suite without groups is one group made of its top-level lists.
Groups let one suite put the slow reference on small data beside fast
strategies on large data. ``strategies = ["*"]`` means every registered one.

    description = "..."
    epochs = 3
    repeats = 3
    target_rmse = 0.55

    [[group]]
    datasets = ["sprand"]
    models = ["dot"]
    strategies = ["reference"]

When the command line selects datasets, models or strategies, the groups give
way: the run is one group of the lists given and, for those not given, the
suite's top-level lists (else ``sprand``, ``dot`` and every strategy).

The built-in suites live in ``mfbench/run/suites/`` (the package ``mfbench.run.suites``); ``--suite NAME``
finds them, ``--suite PATH.toml`` reads any file.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ..errors import MfbenchError, unknown_name
from .settings import current_name, declarations, suite_value

DEFAULT_SUITE = "quick"
ALL = "*"
LISTS = ("datasets", "models", "strategies", "devices")


def suite_settings() -> list[str]:
    """The run settings a suite may set at its top level (mfbench.run.settings declares them)."""
    return [name for name, declared in declarations().items() if declared.suite]


def group_settings() -> list[str]:
    """The settings a ``[[group]]`` may set for its own cases: a target meant for one kind of data
    must not be printed for another group's data."""
    return [name for name, declared in declarations().items() if declared.group]


@dataclass
class Suite:
    name: str
    path: str
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    #: The top-level lists: what fills a list the command line does not give.
    base: dict[str, list[str]] = field(default_factory=dict)
    #: About how many seconds the suite takes at its own settings on a 2-core machine (``budget_s``):
    #: a run asking for much more work is told so before it starts.
    budget_s: float | None = None


def builtin_suites() -> dict[str, Path]:
    folder = resources.files("mfbench.run.suites")
    return {entry.name[: -len(".toml")]: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml")}


def find_suite(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise MfbenchError(f"suite file {path} does not exist")
        return path
    known = builtin_suites()
    if name_or_path not in known:
        raise MfbenchError(unknown_name("suite", name_or_path, known) + " Or give a path to a .toml file.")
    return known[name_or_path]


def _string_list(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise MfbenchError(f"{where}: {key!r} must be a non-empty list of strings")
    return value


def load_suite(name_or_path: str) -> Suite:
    """Read and check a suite; every problem names the file."""
    path = find_suite(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MfbenchError(f"suite {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise MfbenchError(f"suite {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except RecursionError:
        raise MfbenchError(f"suite {path} is nested too deeply to be a suite") from None
    except OSError as exc:
        raise MfbenchError(f"cannot read suite {path}: {exc}") from exc
    where = f"suite {path}"
    top_keys = {"description", "group", "budget_s", *LISTS, *suite_settings()}
    settings = {}
    unknown = []
    for key, value in data.items():
        name = current_name(key)
        if name in suite_settings():
            if name in settings:
                raise MfbenchError(f"{where}: {key!r} sets {name!r} a second time")
            settings[name] = suite_value(name, value, where)
        elif key not in top_keys:
            unknown.append(key)
    if unknown:
        raise MfbenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(top_keys))}")
    base = {key: _string_list(data[key], key, where) for key in LISTS if key in data}
    raw_groups = data.get("group", [{}])
    if not isinstance(raw_groups, list):
        raise MfbenchError(f"{where}: use [[group]] tables for groups")
    group_keys = (*LISTS, *group_settings())
    groups = []
    for index, raw in enumerate(raw_groups, 1):
        if not isinstance(raw, dict):
            raise MfbenchError(f"{where}: group {index} is {raw!r}, not a table: use [[group]] tables for groups")
        extra = set(raw) - set(group_keys)
        if extra:
            raise MfbenchError(
                f"{where}: group {index} has unknown key(s) {', '.join(sorted(extra))}; known: {', '.join(group_keys)}"
            )
        group: dict[str, Any] = dict(base)
        group.update({key: _string_list(raw[key], key, f"{where} group {index}") for key in LISTS if key in raw})
        for name in group_settings():
            if name in raw:
                group[name] = suite_value(name, raw[name], f"{where} group {index}")
        missing = [key for key in ("datasets", "models", "strategies") if key not in group]
        if missing:
            raise MfbenchError(f"{where}: group {index} names no {', '.join(missing)}")
        groups.append(group)
    budget = data.get("budget_s")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < math.inf):
        raise MfbenchError(f"{where}: 'budget_s' must be a positive number of seconds, got {budget!r}")
    return Suite(path.stem, str(path), str(data.get("description", "")), settings, groups, base, budget)
