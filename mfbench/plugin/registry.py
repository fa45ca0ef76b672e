"""Collecting parts from plugins through their ``register`` callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import pluggy

from ..errors import PluginError, SelectionError, unknown_name
from .constraints import check_declaration
from .manager import builtin_origin, plugin_origin
from .parts import (
    DEVICE_TYPES,
    DIRECTIONS,
    NAME_PATTERN,
    OBJECTIVES,
    PARAM_TYPES,
    Dataset,
    Metric,
    Model,
    Part,
    SplitProtocol,
    Strategy,
)
from .search_space import validate_search_space

HOOKS: dict[type[Part], str] = {
    Dataset: "mfbench_register_datasets",
    Model: "mfbench_register_models",
    Strategy: "mfbench_register_strategies",
    Metric: "mfbench_register_metrics",
    SplitProtocol: "mfbench_register_splits",
}


#: The kind of part an entry, a choice or a table holds (Dataset, Model or Strategy).
P = TypeVar("P", bound=Part)


@dataclass(frozen=True)
class Entry(Generic[P]):
    """A registered part and the plugin that provided it."""

    cls: type[P]
    plugin: str
    origin: str

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass
class Registry:
    """Every registered dataset, model, strategy, metric and split protocol, by name."""

    datasets: dict[str, Entry[Dataset]] = field(default_factory=dict)
    models: dict[str, Entry[Model]] = field(default_factory=dict)
    strategies: dict[str, Entry[Strategy]] = field(default_factory=dict)
    metrics: dict[str, Entry[Metric]] = field(default_factory=dict)
    splits: dict[str, Entry[SplitProtocol]] = field(default_factory=dict)
    #: Parts registered with ``unavailable`` set, by kind ("dataset", ...) then name.
    unavailable: dict[str, dict[str, Entry[Any]]] = field(default_factory=lambda: {b.kind: {} for b in HOOKS})

    def table(self, base: type[P]) -> dict[str, Entry[P]]:
        tables: dict[type[Part], Any] = {
            Dataset: self.datasets,
            Model: self.models,
            Strategy: self.strategies,
            Metric: self.metrics,
            SplitProtocol: self.splits,
        }
        return cast("dict[str, Entry[P]]", tables[base])

    def get(self, base: type[P], name: str, *, unavailable_ok: bool = False) -> Entry[P]:
        """The registered part ``name``; one set aside as unavailable only with ``unavailable_ok``
        (planning takes it, so that its cases become ``skipped`` rows saying what to install)."""
        table = self.table(base)
        if name not in table:
            aside = self.unavailable[base.kind].get(name)
            if aside is not None:
                if unavailable_ok:
                    return aside
                raise SelectionError(f"{base.kind} {name!r} (plugin {aside.plugin!r}) is unavailable: {aside.cls.unavailable}")
            raise SelectionError(unknown_name(base.kind, name, table))
        return table[name]

    def __iter__(self) -> Iterator[Entry[Any]]:
        for base in HOOKS:
            yield from self.table(base).values()


def validate_part(cls: Any, base: type[Part], plugin: str) -> None:
    """Refuse what the runner could not use, naming the plugin that registered it."""
    where = f"plugin {plugin!r}"
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"{where} registered {cls!r}, which is not a subclass of mfbench.{base.__name__}")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(f"{where} registered {cls.__qualname__} with invalid name {name!r}: use letters, digits, '_', '.', '-'")
    if not isinstance(cls.params, dict) and not hasattr(cls.params, "items"):
        raise PluginError(f"{where}: {base.kind} {name!r} params must be a dict of defaults")
    for key, default in cls.params.items():
        if not isinstance(key, str) or not NAME_PATTERN.match(key):
            raise PluginError(f"{where}: {base.kind} {name!r} has an invalid parameter name {key!r}")
        if not isinstance(default, PARAM_TYPES):
            raise PluginError(
                f"{where}: {base.kind} {name!r} parameter {key!r} default {default!r} must be a bool, int, float, str or None"
            )
    try:
        check_declaration(cls)
    except PluginError as exc:
        raise PluginError(f"{where}: {base.kind} {name!r}: {exc}") from None
    if base is Strategy and issubclass(cls, Strategy):
        unknown = [d for d in cls.devices if d not in DEVICE_TYPES]
        if unknown or not cls.devices:
            raise PluginError(
                f"{where}: strategy {name!r} declares devices {cls.devices!r}; use a non-empty subset of {DEVICE_TYPES}"
            )
        if cls.objective not in OBJECTIVES:
            raise PluginError(f"{where}: strategy {name!r} declares objective {cls.objective!r}; use one of {OBJECTIVES}")
        if cls.scales_with is not None and cls.scales_with not in cls.params:
            raise PluginError(f"{where}: strategy {name!r} scales_with {cls.scales_with!r}, which is not one of its params")
        validate_search_space(cls.search_space, cls.params, f"{where}: strategy {name!r}")
    if base is Metric and issubclass(cls, Metric) and cls.direction not in DIRECTIONS:
        raise PluginError(f"{where}: metric {name!r} declares direction {cls.direction!r}; use one of {DIRECTIONS}")
    if base is Model and issubclass(cls, Model):
        validate_search_space(cls.search_space, cls.params, f"{where}: model {name!r}")
    if cls.unavailable is not None and not (isinstance(cls.unavailable, str) and cls.unavailable.strip()):
        raise PluginError(f"{where}: {base.kind} {name!r} unavailable must be None or a reason (a non-empty string)")


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook, one plugin at a time, so each part knows its plugin."""
    registry = Registry()
    for base, hook_name in HOOKS.items():
        available, aside = collect_kind(pm, base, hook_name)
        registry.table(base).update(available)
        registry.unavailable[base.kind].update(aside)
    return registry


def collect_kind(
    pm: pluggy.PluginManager,
    base: type[Part],
    hook_name: str,
    builtins: tuple[str, Sequence[type[Part]]] | None = None,
) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """(available, unavailable) parts of one kind by name, through the one ``register`` callback.

    Every kind is collected here, so a name clash, an invalid class or a plugin whose hook
    raises reads the same for datasets as for executors. ``builtins`` (a plugin name and its
    classes) are registered first, by the same callback, for parts the core provides itself
    without a plugin module (the local executors).
    """
    available: dict[str, Entry] = {}
    aside: dict[str, Entry] = {}
    if builtins is not None:
        plugin, classes = builtins
        register = _register_into(available, aside, base, plugin, builtin_origin(plugin))
        for cls in classes:
            register(cls)
    hook = getattr(pm.hook, hook_name)
    # pluggy calls implementations last-registered first; keep that order.
    for impl in reversed(hook.get_hookimpls()):
        plugin_name = impl.plugin_name
        kwargs = {"register": _register_into(available, aside, base, plugin_name, plugin_origin(pm, impl.plugin))}
        try:
            impl.function(*(kwargs[arg] for arg in impl.argnames))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {exc!r}") from exc
    return available, aside


def _register_into(
    table: dict[str, Entry], aside: dict[str, Entry], base: type[Part], plugin: str, origin: str
) -> Callable[[type[Part]], None]:
    def register(cls: type[Part]) -> None:
        validate_part(cls, base, plugin)
        existing = table.get(cls.name) or aside.get(cls.name)
        if existing is not None:
            raise PluginError(
                f"{base.kind} name {cls.name!r} is registered twice: by plugin {existing.plugin!r} "
                f"and by plugin {plugin!r}. Rename one, or block one with -p no:NAME."
            )
        target = aside if cls.unavailable else table
        target[cls.name] = Entry(cls, plugin, origin)

    return register
