"""The hooks mfbench calls, grouped by when it calls them.

Plugins implement any of them with ``@mfbench.hookimpl`` on a function of the
same name. Registration hooks hand the plugin a ``register`` callback rather
than collecting return values, so a plugin can register any number of parts
and mfbench can tell the user which plugin each part came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .options import RunOptions

PROJECT = "mfbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


def hook_names() -> list[str]:
    """Every hook declared below, in the order declared: error messages and docs list them from here."""
    marker = f"{PROJECT}_spec"  # the attribute pluggy's HookspecMarker sets on each spec
    return [name for name, value in globals().items() if callable(value) and hasattr(value, marker)]


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
def mfbench_register_metrics(register: Callable[[type], None]) -> None:
    """Register quality metrics (RMSE, NDCG@k...), selected with ``--metric`` and ``--target``.

    :param register: call it with each :class:`mfbench.Metric` subclass the plugin provides.
    """


@hookspec
def mfbench_register_splits(register: Callable[[type], None]) -> None:
    """Register split protocols (random, per user, temporal...), selected with ``--split``.

    :param register: call it with each :class:`mfbench.SplitProtocol` subclass the plugin provides.
    """


@hookspec
def mfbench_register_executors(register: Callable[[type], None]) -> None:
    """Register executors: engines that run a suite's cases (in this process, on a Dask cluster...).

    The command line picks one with ``mfbench run --executor NAME``; the built-in
    ``inprocess`` executor is the default. Collected only when a run starts.

    :param register: call it with each :class:`mfbench.Executor` subclass the plugin
        provides. It raises :class:`mfbench.PluginError` for an invalid class or a name another
        plugin already registered.
    """


# --- the command line: called before ``mfbench run`` parses its arguments ---


@hookspec
def mfbench_add_run_options(options: RunOptions) -> None:
    """Add options of the plugin's own to ``mfbench run`` (an executor's ``--scheduler``...).

    Called once the plugins named with ``-p`` are loaded and before the arguments are parsed,
    so ``mfbench run --help`` shows the options of the plugins loaded, and not of blocked ones.

    :param options: a :class:`mfbench.RunOptions`: ``options.add_executor_option(flag, key,
        help=...)`` adds ``flag``, whose value reaches the executor as its option ``key`` (as
        ``--executor-option KEY=VALUE`` would); ``options.add_help(text)`` adds a paragraph to
        ``mfbench run --help``.
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

    :param case: the case's JSON record, as docs/results.md documents it (do not modify it).
    """
