"""The plugin system and the contracts of the parts plugins contribute.

Here: the hook specifications, the plugin manager (built-in, entry-point, ``-p`` and
``MFBENCH_PLUGINS`` plugins), the registry of parts, the part base classes (``Dataset``,
``Model``, ``Strategy``), the model layout contract raw-weight strategies rely on, the
declarations parts make (parameter constraints, tuning search spaces, optional libraries,
command-line options), and the contract checks a strategy's tests run.

Imports only ``mfbench.errors`` and ``mfbench.data``. The names plugin authors use are
re-exported by ``mfbench`` itself; the rest of this folder's surface is below.
"""

from . import contract_checks
from .hookspecs import hookimpl, hookspec
from .manager import make_plugin_manager
from .model_layout import DEFAULT_DTYPES, LayoutError, Tables, find_tables, layout_problem
from .optional import missing_library
from .options import RunOptions
from .parts import Dataset, Metric, Model, Part, SplitProtocol, Strategy, epoch_permutation
from .registry import Entry, Registry, collect
from .search_space import Categorical, IntRange, LogUniform, Uniform

__all__ = [
    "DEFAULT_DTYPES",
    "Categorical",
    "Dataset",
    "Entry",
    "IntRange",
    "LayoutError",
    "LogUniform",
    "Metric",
    "Model",
    "Part",
    "Registry",
    "RunOptions",
    "SplitProtocol",
    "Strategy",
    "Tables",
    "Uniform",
    "collect",
    "contract_checks",
    "epoch_permutation",
    "find_tables",
    "hookimpl",
    "hookspec",
    "layout_problem",
    "make_plugin_manager",
    "missing_library",
]
