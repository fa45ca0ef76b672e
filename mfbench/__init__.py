"""mfbench: which matrix-factorization training strategy is fastest to a given quality?

The names a plugin author needs are all here: ``hookimpl`` to mark hook
functions, the part base classes (``DistributedStrategy`` for a strategy whose epochs
run on several ranks), ``Ratings``, ``epoch_permutation``, the model layout contract
(``find_tables``, ``Tables``), the search-space dimensions strategies
declare for tuning, ``missing_library`` for an optional library, ``cache_dir`` for
downloaded data, and for executors ``Executor``, ``Job``, ``Case``, ``RunOptions`` and the
worker side of running cases elsewhere (``probe_host``, ``run_case_spec``, ``merge_hosts``).
Two modules are public too: ``mfbench.testing`` (the contract checks a strategy's own tests
run) and ``mfbench.roofline`` (the work a strategy states per update).

The core behind these names is laid out in folders by concern, each importing only the
ones before it: ``errors`` -> ``data`` -> ``plugin`` -> ``results`` -> ``stats`` -> ``run``
-> ``tuning`` -> ``report`` -> ``cli`` (tests/test_layers.py holds the order). A folder's
``__init__`` names its public surface; the files behind it may move.
"""

import sys

from ._version import __version__
from .data.cache import cache_dir
from .data.ratings import Ratings
from .errors import CaseTimeout, MfbenchError, PluginError, SelectionError
from .plugin import contract_checks as testing, model_layout as _model_layout
from .plugin.hookspecs import hookimpl, hookspec
from .plugin.manager import make_plugin_manager
from .plugin.model_layout import LayoutError, Tables, find_tables, layout_problem
from .plugin.optional import missing_library
from .plugin.options import RunOptions
from .plugin.parts import Dataset, Metric, Model, Part, SplitProtocol, Strategy, epoch_permutation
from .plugin.search_space import Categorical, IntRange, LogUniform, Uniform
from .run import executors
from .run.executors import (
    Executor,
    Job,
    base as _base,
    distributed as _distributed,
    merge_hosts,
    pool as _pool,
    probe_host,
    process as _process,
    run_case_spec,
)
from .run.executors.distributed import DistributedStrategy, RankStrategy
from .run.plan import Case
from .stats import roofline

# Plugin authors use mfbench.testing and mfbench.roofline by these names, and plugins written before
# the core was laid out in folders import mfbench.executors(.pool, ...) and mfbench.layout: those
# paths name the modules that moved, not copies of them (one class, one identity, whichever path).
for _old, _module in {
    "testing": testing,
    "roofline": roofline,
    "layout": _model_layout,
    "executors": executors,
    "executors.base": _base,
    "executors.distributed": _distributed,
    "executors.pool": _pool,
    "executors.process": _process,
}.items():
    sys.modules.setdefault(f"{__name__}.{_old}", _module)

__all__ = [
    "Case",
    "CaseTimeout",
    "Categorical",
    "Dataset",
    "DistributedStrategy",
    "Executor",
    "IntRange",
    "Job",
    "LayoutError",
    "LogUniform",
    "Metric",
    "MfbenchError",
    "Model",
    "Part",
    "PluginError",
    "RankStrategy",
    "Ratings",
    "RunOptions",
    "SelectionError",
    "SplitProtocol",
    "Strategy",
    "Tables",
    "Uniform",
    "__version__",
    "cache_dir",
    "epoch_permutation",
    "executors",
    "find_tables",
    "hookimpl",
    "hookspec",
    "layout_problem",
    "make_plugin_manager",
    "merge_hosts",
    "missing_library",
    "probe_host",
    "roofline",
    "run_case_spec",
    "testing",
]
