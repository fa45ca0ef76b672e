"""The ``mfbench`` command line: one module per command, each with its options beside its work.

The top floor: it may import every other folder, and nothing imports it.
"""

from .entry import main

__all__ = ["main"]
