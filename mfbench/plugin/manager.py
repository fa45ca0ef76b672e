"""Building the plugin manager: built-in plugins, installed ones, and ``-p`` modules.

There is no import-time global manager: every caller (the CLI, a test, the
pytest kit) makes its own with :func:`make_plugin_manager`, so a test can
register a throwaway plugin without leaking it into the next test.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence

import pluggy

from .._version import __version__
from ..errors import PluginError
from . import hookspecs

#: The only place the core names built-in plugin modules.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "mfbench.plugins.datasets.sprand",
    "mfbench.plugins.datasets.lowrank",
    "mfbench.plugins.datasets.zipf",
    "mfbench.plugins.datasets.movielens",
    "mfbench.plugins.datasets.file",
    "mfbench.plugins.datasets.implicit",
    "mfbench.plugins.models.dot",
    "mfbench.plugins.models.biased",
    "mfbench.plugins.strategies.reference",
    "mfbench.plugins.strategies.scripted",
    "mfbench.plugins.strategies.minibatch",
    "mfbench.plugins.strategies.vectorized",
    "mfbench.plugins.strategies.als",
    "mfbench.plugins.strategies.hogwild",
    "mfbench.plugins.strategies.numba",
    "mfbench.plugins.strategies.native_sgd",
    "mfbench.plugins.strategies.triton_sgd",
    "mfbench.plugins.strategies.ddp",
    "mfbench.plugins.strategies.sharded",
    "mfbench.plugins.peers.surprise_svd",
    "mfbench.plugins.peers.libmf",
    "mfbench.plugins.peers.implicit_als",
    "mfbench.plugins.strategies.bpr",
    "mfbench.plugins.strategies.ials",
    "mfbench.plugins.strategies.popularity",
    "mfbench.plugins.metrics.rating",
    "mfbench.plugins.metrics.ranking",
    "mfbench.plugins.splits.protocols",
    "mfbench.plugins.executors.dask",
    "mfbench.plugins.observers.machine",
)

ENTRY_POINT_GROUP = "mfbench"
#: Comma-separated module paths to load, like PYTEST_PLUGINS.
PLUGINS_ENV = "MFBENCH_PLUGINS"
#: Set to any non-empty value to skip plugins installed through entry points.
DISABLE_AUTOLOAD_ENV = "MFBENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_PREFIX = "no:"


def split_plugin_args(args: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``-p`` values into (modules to load, names to block); ``no:NAME`` blocks."""
    load, block = [], []
    for arg in args:
        for item in (part.strip() for part in arg.split(",")):
            if not item:
                continue
            if item.startswith(BLOCK_PREFIX):
                block.append(item[len(BLOCK_PREFIX) :])
            else:
                load.append(item)
    return load, block


BUILTIN_PREFIX = "mfbench.plugins."


def check_builtin_name(name: str) -> None:
    """A ``no:`` name under ``mfbench.plugins.`` must be a built-in plugin, or blocking it would
    silently block nothing (names from before the plugins were grouped by kind, for one)."""
    if not name.startswith(BUILTIN_PREFIX) or name in DEFAULT_PLUGINS:
        return
    leaf = name.rsplit(".", 1)[-1]
    renamed = {"compiled": "scripted", "numba_sgd": "numba", "libmf_peer": "libmf", "dask_executor": "dask"}.get(leaf, leaf)
    close = [p for p in DEFAULT_PLUGINS if p.rsplit(".", 1)[-1] == renamed]
    hint = f"; did you mean no:{close[0]}?" if close else f"; built-in plugins: {', '.join(DEFAULT_PLUGINS)}"
    raise PluginError(f"cannot block {name!r}: there is no built-in plugin of that name{hint}")


def import_plugin(pm: pluggy.PluginManager, module_name: str) -> None:
    """Import ``module_name`` and register it under that name (once)."""
    if pm.is_blocked(module_name) or pm.get_plugin(module_name) is not None:
        return
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(
            f"cannot import plugin module {module_name!r}: {exc}. Check the name and that its folder is on PYTHONPATH."
        ) from exc
    except SyntaxError as exc:
        raise PluginError(
            f"plugin module {module_name!r} has a syntax error: {exc.filename} line {exc.lineno}: {exc.msg}"
        ) from None
    except Exception as exc:  # the module raised while it was imported
        raise PluginError(f"plugin module {module_name!r} failed while importing: {type(exc).__name__}: {exc}") from None
    pm.register(module, name=module_name)


def make_plugin_manager(
    plugins: Sequence[str] = (),
    *,
    defaults: bool = True,
    entry_points: bool | None = None,
    env: bool = True,
) -> pluggy.PluginManager:
    """A fresh, fully loaded plugin manager.

    :param plugins: ``-p`` style arguments: module paths to load, or ``no:NAME`` to block
        the plugin registered as NAME (a built-in module path or an entry-point name).
    :param defaults: register the built-in plugins.
    :param entry_points: load installed plugins from the ``mfbench`` entry-point group;
        None means "unless MFBENCH_DISABLE_PLUGIN_AUTOLOAD is set".
    :param env: also load the modules named in ``MFBENCH_PLUGINS``.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    args = list(plugins)
    if env and os.environ.get(PLUGINS_ENV):
        args.append(os.environ[PLUGINS_ENV])
    load, block = split_plugin_args(args)
    for name in block:
        check_builtin_name(name)
        pm.set_blocked(name)
    if defaults:
        for name in DEFAULT_PLUGINS:
            import_plugin(pm, name)
    if entry_points is None:
        entry_points = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken installed plugin must say which one it is
            raise PluginError(f"an installed mfbench plugin failed to load: {exc!r}") from exc
    for name in load:
        import_plugin(pm, name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        *others, last = hookspecs.hook_names()
        raise PluginError(f"{exc}. mfbench hooks are named {', '.join(others)} and {last}.") from exc
    return pm


def plugin_origin(pm: pluggy.PluginManager, plugin: object) -> str:
    """Where a plugin comes from, for ``mfbench list``: distribution and version where known."""
    name = pm.get_name(plugin) or repr(plugin)
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return f"{name} ({dist.metadata['name']} {dist.version})"
    if name in DEFAULT_PLUGINS:
        return builtin_origin(name)
    return name


def builtin_origin(name: str) -> str:
    """``mfbench list``'s plugin column for a part mfbench itself provides."""
    return f"{name} (mfbench {__version__}, built-in)"
