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

DEFAULT_SUITE = "quick"
ALL = "*"
SETTINGS = {
    "epochs": int,
    "repeats": int,
    "warmup": int,
    "seed": int,
    "test_fraction": float,
    "valid_fraction": float,
    "factors": int,
    "timeout": float,
    "target_rmse": float,
    "target_slack": float,
    "threads": int,
}
LISTS = ("datasets", "models", "strategies", "devices")
TOP_KEYS = {"description", "group", "tune_trials", *SETTINGS, *LISTS}
#: A group may set its own target: a threshold meant for one kind of data must not be
#: printed for another group's data.
GROUP_KEYS = (*LISTS, "target_rmse")


@dataclass
class Suite:
    name: str
    path: str
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    #: The top-level lists: what fills a list the command line does not give.
    base: dict[str, list[str]] = field(default_factory=dict)
    #: Trials per study when the suite tunes its strategies before racing them (``tune_trials``).
    tune_trials: int | None = None


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


def _target(value: Any, where: str) -> float | str:
    if value == "auto":
        return value
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
        raise MfbenchError(f"{where}: 'target_rmse' must be a positive number or \"auto\", got {value!r}")
    return float(value)


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
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise MfbenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TOP_KEYS))}")
    settings = {}
    for key, kind in SETTINGS.items():
        if key in data:
            value = data[key]
            if key == "target_rmse":
                settings[key] = _target(value, where)
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or (kind is int and not isinstance(value, int)):
                raise MfbenchError(f"{where}: {key!r} must be a{'n integer' if kind is int else ' number'}")
            if kind is float and value != value:
                raise MfbenchError(f"{where}: {key!r} must be a number, not nan")
            settings[key] = kind(value)
    base = {key: _string_list(data[key], key, where) for key in LISTS if key in data}
    raw_groups = data.get("group", [{}])
    if not isinstance(raw_groups, list):
        raise MfbenchError(f"{where}: use [[group]] tables for groups")
    groups = []
    for index, raw in enumerate(raw_groups, 1):
        if not isinstance(raw, dict):
            raise MfbenchError(f"{where}: group {index} is {raw!r}, not a table: use [[group]] tables for groups")
        extra = set(raw) - set(GROUP_KEYS)
        if extra:
            raise MfbenchError(
                f"{where}: group {index} has unknown key(s) {', '.join(sorted(extra))}; known: {', '.join(GROUP_KEYS)}"
            )
        group: dict[str, Any] = dict(base)
        group.update({key: _string_list(raw[key], key, f"{where} group {index}") for key in LISTS if key in raw})
        if "target_rmse" in raw:
            group["target_rmse"] = _target(raw["target_rmse"], f"{where} group {index}")
        missing = [key for key in ("datasets", "models", "strategies") if key not in group]
        if missing:
            raise MfbenchError(f"{where}: group {index} names no {', '.join(missing)}")
        groups.append(group)
    trials = data.get("tune_trials")
    if trials is not None and (not isinstance(trials, int) or isinstance(trials, bool) or trials < 1):
        raise MfbenchError(f"{where}: 'tune_trials' must be a positive integer")
    return Suite(path.stem, str(path), str(data.get("description", "")), settings, groups, base, trials)
