"""The A/B mode: BASE and NEW measured in one process, in alternating short blocks.

Two results files made minutes apart on a shared machine differ by the load each
one met (34-54% between identical runs here); no statistic on them can recover a
10-25% change from that. Interleaving removes the problem at its source: BASE and
NEW take turns in blocks of a fraction of a second each, so both see the same load,
and each *pair* of neighbouring blocks gives one ratio in which the load cancels.
The order alternates (BASE then NEW, then NEW then BASE, ...), so a load that grows
or fades during a pair favours neither side.

The verdict comes from the median of the per-pair ratios and its distribution-free
confidence interval (:func:`mfbench.stats.verdict.median_interval`), decided as everywhere
in mfbench (:func:`mfbench.stats.verdict.decide`).

Each block is an ordinary case run by mfbench's own :class:`~mfbench.run.runner.Runner`
(fresh model, setup, warm-up epochs, timed epochs with the device synchronized), so
an A/B figure is the same measurement as ``mfbench run``'s. BASE and NEW are each
planned in their own plugin manager, so the same strategy name can come from two
plugin sources (two module paths, or two installed distributions with one blocked on
each side).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..errors import MfbenchError, SelectionError
from ..plugin.registry import collect

# Block statuses whose timed epochs still count (speed is compared here; quality is compare's job).
from ..results.statuses import TIMED_STATUSES
from ..stats.summary import epoch_seconds, timed_epochs
from ..stats.verdict import CONFIDENCE, Interval, median_interval
from .plan import Case, RunConfig, plan
from .runner import Runner
from .timing import Clock

SCHEMA = "mfbench.ab"
#: Block pairs by default: 10 pairs give a 97.9% interval between the 2nd and 9th ratio.
BLOCKS = 10
#: Seconds of timed epochs per block, by default: short, so both sides see the same load.
BLOCK_SECONDS = 0.25
#: Bounds on the epochs per block derived from the pilot measurement.
MIN_EPOCHS, MAX_EPOCHS = 2, 10_000
#: The fewest pairs for which a 95% interval of the median exists.
MIN_BLOCKS = 6


@dataclass
class Side:
    """BASE or NEW: its planned case and where its strategy came from."""

    name: str
    case: Case
    runner: Runner | None = None
    seconds: list[list[float]] = field(default_factory=list)  # timed epoch seconds, one list per block
    notes: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None  # the first block's record (dataset info, strategy info)

    @property
    def label(self) -> str:
        return self.case.strategy.label

    @property
    def plugin(self) -> str:
        return self.case.strategy.entry.plugin

    def median_epoch_s(self) -> float:
        values = [s for block in self.seconds for s in block]
        return statistics.median(values) if values else math.nan


@dataclass
class AbResult:
    base: Side
    new: Side
    epochs_per_block: int
    ratios: list[float]
    orders: list[str]
    interval: Interval
    seconds: float

    def document(self, header: dict[str, Any]) -> dict[str, Any]:
        """A results file of its own (``schema`` ``mfbench.run.ab``): the blocks and the interval."""

        def side(s: Side) -> dict[str, Any]:
            record = s.record or {}
            return {
                "case": s.case.id,
                "strategy": record.get("strategy"),
                "model": record.get("model"),
                "dataset": record.get("dataset"),
                "device": str(s.case.device),
                "median_epoch_s": s.median_epoch_s(),
                "block_seconds": s.seconds,
                "notes": s.notes,
            }

        return {
            "schema": SCHEMA,
            "schema_version": 1,
            **header,
            "epochs_per_block": self.epochs_per_block,
            "base": side(self.base),
            "new": side(self.new),
            "blocks": [{"order": o, "ratio": r} for o, r in zip(self.orders, self.ratios, strict=True)],
            "ratio": {
                "estimate": self.interval.estimate,
                "low": self.interval.low,
                "high": self.interval.high,
                "confidence": CONFIDENCE,
                "method": self.interval.method,
                "meaning": "NEW updates/s over BASE updates/s: median over block pairs",
            },
            "seconds": self.seconds,
        }


def plan_side(
    name: str,
    pm: pluggy.PluginManager,
    dataset: str,
    model: str,
    strategy: str,
    device: str,
    config: RunConfig,
) -> Side:
    """The one case a side measures; a grid (several cases) is refused."""
    cases = plan(collect(pm), [dataset], [model], [strategy], [device], config)
    if len(cases) != 1:
        raise SelectionError(
            f"the {name} side must be one case, but {strategy!r} on {dataset!r} x {model!r} gives {len(cases)}: "
            "give single values, not grids"
        )
    return Side(name, cases[0])


def _timed(record: dict[str, Any]) -> list[float]:
    return [epoch_seconds(e) for e in timed_epochs(record)]


def _block(side: Side) -> list[float]:
    assert side.runner is not None
    record = side.runner.run_case(side.case)
    if side.record is None:
        side.record = record
    if record["status"] not in TIMED_STATUSES or not _timed(record):
        raise MfbenchError(
            f"the {side.name} side ({side.case.id}) ended {record['status']}: {record['reason'] or 'no timed epoch'}. "
            "A/B needs both sides to train; run it with `mfbench run` to see why"
        )
    if record["status"] != "ok" and not side.notes:
        side.notes.append(f"{record['status']}: {record['reason']}")
    return _timed(record)


def epochs_for(epoch_s: float, block_seconds: float) -> int:
    """Epochs per block so that the slower side's block lasts about ``block_seconds``."""
    if not epoch_s > 0:
        return MAX_EPOCHS
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(block_seconds / epoch_s)))


def run_ab(
    base: Side,
    new: Side,
    *,
    blocks: int = BLOCKS,
    block_seconds: float = BLOCK_SECONDS,
    warmup: int = 1,
    seed: int = 0,
    epochs: int | None = None,
    say: Callable[[str], None] = lambda text: None,
    clock: Clock = time.perf_counter,
) -> AbResult:
    """Measure ``blocks`` pairs of blocks, alternating the order, and the ratio's interval.

    :param epochs: timed epochs per block; by default from a pilot block of each side,
        so that the slower side's block lasts about ``block_seconds``.
    :param clock: the runners' clock (tests give a fake one).
    """
    if blocks < MIN_BLOCKS:
        raise SelectionError(f"--blocks must be at least {MIN_BLOCKS} (fewer pairs give no 95% interval), got {blocks}")
    if not block_seconds > 0:
        raise SelectionError(f"--block-seconds must be positive, got {block_seconds}")
    started = time.perf_counter()
    if epochs is None:
        pilot = RunConfig(epochs=MIN_EPOCHS + 1, repeats=1, warmup=warmup, seed=seed)
        slowest = 0.0
        for side in (base, new):
            side.runner = Runner(pilot, clock=clock)
            slowest = max(
                slowest, min(_block(side))
            )  # the quiet machine's speed: a stalled pilot epoch must not shrink every block
        epochs = epochs_for(slowest, block_seconds)
    config = RunConfig(epochs=epochs, repeats=1, warmup=warmup, seed=seed)
    for side in (base, new):
        side.runner = Runner(config, clock=clock)
    say(f"mfbench ab: {blocks} block pairs of {epochs} timed epoch(s) each")
    fingerprints = set()
    ratios, orders = [], []
    for pair in range(blocks):
        first, second = (base, new) if pair % 2 == 0 else (new, base)
        times = {first.name: _block(first), second.name: _block(second)}
        for side in (base, new):
            side.seconds.append(times[side.name])
        ratios.append(statistics.median(times[base.name]) / statistics.median(times[new.name]))
        orders.append(f"{first.name},{second.name}")
        say(f"  pair {pair + 1}/{blocks} ({orders[-1]}): NEW/BASE speed {ratios[-1]:.3f}")
    for side in (base, new):
        fingerprints.add(((side.record or {}).get("dataset") or {}).get("fingerprint"))
    if len(fingerprints) > 1:
        raise MfbenchError(f"BASE and NEW trained on different data (fingerprints {sorted(map(str, fingerprints))})")
    estimate, low, high = median_interval(ratios)
    interval = Interval(estimate, low, high, f"order statistics of the median of {blocks} block-pair ratios")
    return AbResult(base, new, epochs, ratios, orders, interval, time.perf_counter() - started)


def same_strategy_sides(strategies: Sequence[str], base_plugins: Sequence[str], new_plugins: Sequence[str]) -> tuple[str, str]:
    """BASE's and NEW's strategy selections from ``-s`` given once (two plugin sources) or twice."""
    if len(strategies) == 2:
        return strategies[0], strategies[1]
    if len(strategies) == 1:
        if not base_plugins and not new_plugins:
            raise SelectionError(
                "one -s compares a strategy with itself from two plugin sources: give --base-plugin and/or "
                "--new-plugin, or give -s twice (BASE first, then NEW)"
            )
        return strategies[0], strategies[0]
    raise SelectionError(f"give -s once or twice (BASE, then NEW), got {len(strategies)}")
