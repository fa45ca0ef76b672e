"""Work per update, and how close a case came to the machine's memory and compute ceilings.

A strategy states what one update (one rating processed) costs: the bytes it moves
between memory and the core and the floating-point operations it does
(``Strategy.work_per_update``). The runner records it with each repeat; the summary
multiplies it by the measured updates/s and divides by the machine's measured memory
bandwidth and compute peak (``mfbench.run.calibration``). A fraction near 1 of either
says the strategy is at that ceiling; both far below 1 say the time goes elsewhere
(latency of dependent loads, synchronization, interpreter overhead).

The bytes are an upper bound on memory traffic (every byte the update touches, as if
nothing stayed in cache): a strategy that keeps rows in cache moves fewer, so its
bandwidth fraction can exceed what DRAM alone could give.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Bytes of one stored rating: user id and item id (int32) and the rating (float32).
RATING_BYTES = 4 + 4 + 4


def per_rating_sgd(k: int, element_bytes: int, biased: bool = False, rating_bytes: int = RATING_BYTES) -> dict[str, Any]:
    """Bytes and flops of one per-rating SGD step on ``k``-wide factor rows.

    Bytes: the rating record, read once; both factor rows (and both biases) read and
    written back. Flops: the dot product (``2k``), the error, and the two row updates
    ``p * decay - g * q`` (``2k`` each), plus the bias steps.
    """
    rows = 2 * k + (2 if biased else 0)
    return {
        "bytes_per_update": rating_bytes + 2 * rows * element_bytes,
        "flops_per_update": 6 * k + 2 + (8 if biased else 0),
        "work_model": f"per-rating SGD, k={k}, {element_bytes}-byte floats{', biased' if biased else ''}",
    }


def fractions(updates_per_s: float, work: Mapping[str, Any] | None, peaks: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary's roofline fields for a case that ran at ``updates_per_s``; empty without ``work``."""
    if not work or not updates_per_s or updates_per_s != updates_per_s or updates_per_s == float("inf"):
        return {}
    out: dict[str, Any] = {
        "bytes_per_update": work["bytes_per_update"],
        "flops_per_update": work["flops_per_update"],
        "achieved_bytes_per_s": updates_per_s * work["bytes_per_update"],
        "achieved_flops_per_s": updates_per_s * work["flops_per_update"],
    }
    bandwidth = (peaks or {}).get("memory_bytes_per_s")
    compute = (peaks or {}).get("peak_flops_per_s")
    if bandwidth:
        out["bandwidth_fraction"] = out["achieved_bytes_per_s"] / bandwidth
    if compute:
        out["compute_fraction"] = out["achieved_flops_per_s"] / compute
    return out
