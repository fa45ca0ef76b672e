"""mfbench: which matrix-factorization training strategy is fastest to a given quality?

The names a plugin author needs are all here: ``hookimpl`` to mark hook
functions, the part base classes, ``Ratings``, ``epoch_permutation`` and the
search-space dimensions strategies declare for tuning.
"""

from .errors import CaseTimeout, MfbenchError, PluginError, SelectionError
from .hookspecs import hookimpl, hookspec
from .manager import make_plugin_manager
from .parts import Dataset, Model, Part, Strategy, epoch_permutation
from .ratings import Ratings
from .search_space import Categorical, IntRange, LogUniform, Uniform

__version__ = "0.1.0"

__all__ = [
    "CaseTimeout",
    "Categorical",
    "Dataset",
    "IntRange",
    "LogUniform",
    "MfbenchError",
    "Model",
    "Part",
    "PluginError",
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
