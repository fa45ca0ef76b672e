"""What a run shows while it runs: a live bar on a terminal, one plain line per case otherwise.

The live bar is tqdm's. Measured side by side on a shared 2-core machine
(median of 15 interleaved runs for imports, 3 runs of 2,000 redrawn updates):
importing tqdm took ~50 ms and rich.progress ~54 ms, but torch (``torch.hub``)
imports tqdm already, so tqdm adds nothing to mfbench's start-up; an update cost
~55 us with tqdm and ~550 us with rich. The bar
is redrawn at the terminal's current width (one column spare) every update and tqdm
cuts the line to that width, so it never wraps: a wrapped line is one that a
carriage return cannot take back. Its unit is the epoch: the estimate of the time
left is elapsed time over the epochs done, times the epochs left; a case that ends
without running its epochs (skipped) takes its epochs out of the total instead of
counting them as done. Without tqdm, or when the stream is not a terminal, cases
are reported as plain lines.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .tablefit import shorten_middle
from .tables import case_line


def _tqdm() -> Any:
    """tqdm's bar class, imported only when a live bar is drawn, or None where tqdm is missing."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency; without it the output is plain lines
        return None
    return tqdm


#: The bar is 12 characters wide whatever the terminal: the rest of the line names the case and epoch.
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar:12}| {elapsed}<{remaining}{postfix}"
#: Characters of a drawn bar besides its description and postfix (hours in the times included).
BAR_OVERHEAD = 36


def short_case_id(case_id: str, width: int) -> str:
    """A case id in ``width`` characters: the longest of its parts (dataset, model...) shortened first."""
    parts = case_id.split(" / ")
    lengths = [len(p) for p in parts]
    excess = len(case_id) - width
    while excess > 0 and max(lengths) > 6:
        lengths[lengths.index(max(lengths))] -= 1
        excess -= 1
    return shorten_middle(" / ".join(shorten_middle(p, n) for p, n in zip(parts, lengths, strict=True)), width)


def stream_size(stream: TextIO) -> tuple[int, int]:
    """Columns and lines of the terminal ``stream`` writes to ($COLUMNS first, as shutil does).

    A terminal that reports no size (0 x 0: a pseudo-terminal nobody sized) counts as 80 x 24.
    """
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        size = shutil.get_terminal_size()
    columns, lines = size.columns or 80, size.lines or 24
    given = os.environ.get("COLUMNS", "")
    return (int(given) if given.isdigit() and int(given) > 0 else columns), lines


class Progress:
    """Reports cases and epochs to ``stream``: live bar when it is a terminal, plain lines when not."""

    def __init__(
        self,
        total: int,
        repeats: int,
        epochs_per_repeat: int,
        stream: TextIO | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.total = total
        self.per_case = max(1, repeats * max(1, epochs_per_repeat))
        self.quiet = quiet
        bar_class = _tqdm() if not quiet and self.stream.isatty() else None
        self.live = bar_class is not None
        self.done = 0
        self.epochs_seen = 0  # of the case running now
        self.bar: Any = None
        if bar_class is not None:
            self.bar = bar_class(
                total=max(1, total * self.per_case),
                file=self.stream,
                bar_format=BAR_FORMAT,
                ncols=self._width(),
                nrows=stream_size(self.stream)[1],
                mininterval=0.1,
                smoothing=0,
                leave=False,
                unit="epoch",
                desc=f"0/{total} cases",
            )

    def _width(self) -> int:
        return max(20, stream_size(self.stream)[0] - 1)

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.clear()
        print(text, file=self.stream, flush=True)
        if self.bar is not None:
            self.bar.refresh()

    def epoch(self, case_id: str, repeat: int, epoch: int, entry: dict[str, Any]) -> None:
        if self.bar is None:
            return
        self.epochs_seen += 1
        self.bar.ncols = self._width()
        rmse = entry.get("test_rmse")
        quality = f" RMSE {rmse:.4f}" if isinstance(rmse, (int, float)) else ""
        where = f" r{repeat + 1} e{epoch + 1}{quality}"
        room = self.bar.ncols - len(self.bar.desc) - BAR_OVERHEAD - len(where)
        self.bar.set_postfix_str(short_case_id(case_id, max(room, 20)) + where, refresh=False)
        if self.epochs_seen <= self.per_case:
            self.bar.update(1)  # redraws at most every 0.1 s (epochs can take a millisecond)
        if self.epochs_seen == 1:  # a new case: show its name now
            self.bar.refresh()

    def case(self, record: dict[str, Any]) -> None:
        self.done += 1
        if self.bar is not None:
            if self.epochs_seen == 0:  # nothing ran: its epochs leave the total, so the estimate stays honest
                self.bar.total = max(self.bar.n, self.bar.total - self.per_case, 1)
            elif self.epochs_seen < self.per_case:  # ended early (diverged, timeout): the rest of it is done
                self.bar.update(self.per_case - self.epochs_seen)
            self.epochs_seen = 0
            self.bar.set_description_str(f"{self.done}/{self.total} cases", refresh=False)
        line = case_line(self.done, self.total, record)
        self.say(line if self.bar is not None else line + self.time_left())

    def time_left(self) -> str:
        """For plain lines (the bar shows its own): the time left at the mean pace of the cases done so
        far, once three are done and when it is a minute or more."""
        if self.done < 3 or self.done >= self.total:
            return ""
        left = (self.clock() - self.started) / self.done * (self.total - self.done)
        if left < 60:
            return ""
        return f"  (about {left / 3600:.1f} h left)" if left >= 3600 else f"  (about {left / 60:.0f} min left)"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
