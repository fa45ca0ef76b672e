"""The hooks mfbench calls, grouped by when it calls them.

Plugins implement any of them with ``@mfbench.hookimpl`` on a function of the
same name. Registration hooks hand the plugin a ``register`` callback rather
than collecting return values, so a plugin can register any number of parts
and mfbench can tell the user which plugin each part came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("mfbench")
hookimpl = pluggy.HookimplMarker("mfbench")


# --- registration: called once per plugin manager, when parts are collected ---


@hookspec
def mfbench_register_datasets(register: Callable[[type], None]) -> None:
    """Register data generators and loaders.

    :param register: call it with each :class:`mfbench.Dataset` subclass the plugin provides.
        It raises :class:`mfbench.PluginError` for an invalid class or a name another plugin
        already registered.
    """


@hookspec
def mfbench_register_models(register: Callable[[type], None]) -> None:
    """Register model variants.

    :param register: call it with each :class:`mfbench.Model` subclass the plugin provides.
    """


@hookspec
def mfbench_register_strategies(register: Callable[[type], None]) -> None:
    """Register training strategies.

    :param register: call it with each :class:`mfbench.Strategy` subclass the plugin provides.
    """


@hookspec
def mfbench_register_executors(register: Callable[[type], None]) -> None:
    """Register executors: engines that run a suite's cases (in this process, on a Dask cluster...).

    The command line picks one with ``mfbench run --executor NAME``; the built-in
    ``inprocess`` executor is the default. Collected only when a run starts.

    :param register: call it with each :class:`mfbench.executors.Executor` subclass the plugin
        provides. It raises :class:`mfbench.PluginError` for an invalid class or a name another
        plugin already registered.
    """


# --- a run: called by the runner ---


@hookspec
def mfbench_machine_info() -> dict[str, Any] | None:
    """Add facts to the ``machine`` section of a results file.

    :return: a JSON-serializable dict merged into ``machine`` (a peer library's version,
        a GPU clock setting...), or None.
    """


@hookspec
def mfbench_case_finished(case: dict[str, Any]) -> None:
    """Observe a case right after it finished and was written to the results file.

    :param case: the case's JSON record, as documented in the README (do not modify it).
    """
