"""Ratings and what is computed from them alone: the ``Ratings`` type (COO tensors, splits,
fingerprints), planted and power-law data, quality metrics, and the cache folder.

Imports only ``mfbench.errors``. Plugins use the names below (``from mfbench.data import plant``).
"""

from .cache import cache_dir
from .memory import too_big
from .metrics import rmse
from .planted import plant, power_law
from .ratings import Ratings

__all__ = ["Ratings", "cache_dir", "plant", "power_law", "rmse", "too_big"]
