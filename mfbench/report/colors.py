"""One colour per strategy, the same in every panel, plot, page and run.

Colours drawn in case order make a strategy change colour between data sets and
between runs; a reader then compares legends instead of curves. Built-in
strategies get fixed colours of a categorical palette, in the order they are
listed here; any other strategy gets one from its name's CRC-32, stable across
runs and machines (two unknown names may share one, told apart by the legend).
"""

from __future__ import annotations

import zlib

#: Tableau's ten categorical colours, then ten darker and lighter ones distinct from them.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#e6550d",
    "#31a354",
    "#843c39",
    "#7b4173",
    "#637939",
    "#3182bd",
    "#8c6d31",
    "#636363",
    "#de9ed6",
)
#: Strategies shipped with mfbench (and the ones planned beside them), in palette order.
KNOWN = (
    "reference",
    "scripted",
    "vectorized",
    "minibatch",
    "hogwild",
    "sharded",
    "ddp",
    "numba",
    "als",
    "surprise-svd",
    "libmf",
    "implicit-als",
    "compiled",
    "native-sgd",
    "triton",
)
#: Dash patterns (SVG ``stroke-dasharray`` and matplotlib's) for the devices a strategy ran on.
DEVICE_DASHES = {"cpu": "", "cuda": "6,3"}


def strategy_color(name: str) -> str:
    """The hex colour of strategy ``name``."""
    if name in KNOWN:
        return PALETTE[KNOWN.index(name)]
    return PALETTE[len(KNOWN) + zlib.crc32(name.encode("utf-8")) % (len(PALETTE) - len(KNOWN))]


def device_dash(device: str) -> str:
    """``""`` (solid) on CPU; dashed on any CUDA device, so one strategy on two devices stays one colour."""
    return DEVICE_DASHES.get(str(device).split(":")[0], "2,2")
