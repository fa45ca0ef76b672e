"""mfbench: which matrix-factorization training strategy is fastest to a given quality?

The names a plugin author needs are all here: ``hookimpl`` to mark hook
functions, the part base classes (``DistributedStrategy`` for a strategy whose epochs
run on several ranks), ``Ratings``, ``epoch_permutation``, the model layout contract
(``find_tables``, ``Tables``: mfbench.layout), the search-space dimensions strategies
declare for tuning, ``missing_library`` for an optional library, and for executors
``Executor``, ``Job``, ``Case``, ``RunOptions`` and the worker side of running cases
elsewhere (``probe_host``, ``run_case_spec``, ``merge_hosts``). The modules behind them
are internal and may change.
"""

from .errors import CaseTimeout, MfbenchError, PluginError, SelectionError
from .executors import Executor, Job, merge_hosts, probe_host, run_case_spec
from .executors.distributed import DistributedStrategy, RankStrategy
from .hookspecs import hookimpl, hookspec
from .layout import LayoutError, Tables, find_tables, layout_problem
from .manager import make_plugin_manager
from .optional import missing_library
from .options import RunOptions
from .parts import Dataset, Model, Part, Strategy, epoch_permutation
from .plan import Case
from .ratings import Ratings
from .search_space import Categorical, IntRange, LogUniform, Uniform

__version__ = "0.1.0"

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
    "MfbenchError",
    "Model",
    "Part",
    "PluginError",
    "RankStrategy",
    "Ratings",
    "RunOptions",
    "SelectionError",
    "Strategy",
    "Tables",
    "Uniform",
    "__version__",
    "epoch_permutation",
    "find_tables",
    "hookimpl",
    "hookspec",
    "layout_problem",
    "make_plugin_manager",
    "merge_hosts",
    "missing_library",
    "probe_host",
    "run_case_spec",
]
