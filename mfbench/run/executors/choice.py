"""Choosing an executor: the built-in ones and every plugin's, and the one ``--executor`` names.

Apart from ``base`` because the built-in list names the process executor, which is built on
``base``: collecting them here keeps the two modules from importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy

from ...errors import SelectionError, unknown_name
from ...plugin.registry import Entry, collect_kind
from .base import BUILTIN_PLUGIN, HOOK, Executor, InProcessExecutor
from .process import ProcessExecutor


def collect_executors(pm: pluggy.PluginManager) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """(available, unavailable) executors by name: the built-in ones, then each plugin's, one plugin at a time."""
    return collect_kind(pm, Executor, HOOK, builtins=(BUILTIN_PLUGIN, (ProcessExecutor, InProcessExecutor)))


def make_executor(pm: pluggy.PluginManager, name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """The executor ``name`` with ``options``; unknown names, unavailable engines and bad options are errors."""
    available, aside = collect_executors(pm)
    if name not in available:
        if name in aside:
            entry = aside[name]
            raise SelectionError(f"executor {name!r} (plugin {entry.plugin!r}) is unavailable: {entry.cls.unavailable}")
        raise SelectionError(unknown_name("executor", name, [*available, *aside]))
    cls = available[name].cls
    options = dict(options or {})
    unknown = [key for key in options if key not in cls.params]
    if unknown:
        takes = ", ".join(f"{k} (default {v!r})" for k, v in cls.params.items()) or "no options"
        raise SelectionError(f"executor {name!r} has no option {unknown[0]!r}; it takes {takes}")
    return cls(**options)
