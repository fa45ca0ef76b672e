"""Whether data of a given size can be made on this machine at all, told before any work starts.

A generator asked for 10^11 ratings would allocate for tens of seconds and end in a MemoryError row;
its ``check_params`` asks :func:`too_big` first, and the planner refuses the selection with the
estimate.
"""

from __future__ import annotations

import os

#: Peak bytes per rating while the built-in generators make their data (int64 users and items,
#: float32 ratings, and the draws and sorts that make them), measured on 2-8 million ratings
#: (28-58 bytes; the larger, as a margin).
GENERATED_BYTES_PER_RATING = 60

GIB = 1024**3


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def too_big(prefix: str, ratings: float, bytes_per_rating: float = GENERATED_BYTES_PER_RATING) -> list[str]:
    """A problem line when ``ratings`` ratings would need more memory than the machine has."""
    total = machine_memory()
    need = ratings * bytes_per_rating
    if total is None or need <= total:
        return []
    return [
        f"{prefix}{ratings:,.0f} ratings need about {need / GIB:,.0f} GiB to make (about {bytes_per_rating:g} bytes each), "
        f"more than this machine's {total / GIB:,.0f} GiB of memory: ask for fewer ratings"
    ]
