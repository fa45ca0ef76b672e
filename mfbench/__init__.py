"""mfbench: which matrix-factorization training strategy is fastest to a given quality?

The names a plugin author needs are all here: ``hookimpl`` to mark hook
functions, the part base classes (``DistributedStrategy`` for a strategy whose epochs
run on several ranks), ``Ratings``, ``epoch_permutation`` and the search-space
dimensions strategies declare for tuning.
"""

from .errors import CaseTimeout, MfbenchError, PluginError, SelectionError
from .hookspecs import hookimpl, hookspec
from .parts import Dataset, Model, Part, Strategy, epoch_permutation
from .manager import make_plugin_manager
from .ratings import Ratings
from .search_space import Categorical, IntRange, LogUniform, Uniform
from .executors.distributed import DistributedStrategy, RankStrategy

__version__ = "0.1.0"

__all__ = [
    "CaseTimeout",
    "Categorical",
    "Dataset",
    "DistributedStrategy",
    "IntRange",
    "LogUniform",
    "MfbenchError",
    "Model",
    "Part",
    "PluginError",
    "RankStrategy",
    "Ratings",
    "SelectionError",
    "Strategy",
    "Uniform",
    "__version__",
    "epoch_permutation",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
]
