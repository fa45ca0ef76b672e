"""What a run shows while it runs: a progress bar on a terminal, one line per case otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .report import case_line

BAR_WIDTH = 24


class Progress:
    """Reports cases and epochs to ``stream``: live bar when it is a terminal, plain lines when not."""

    def __init__(self, total: int, repeats: int, epochs_per_repeat: int, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.total = total
        self.epochs_per_repeat = max(1, epochs_per_repeat)
        self.per_case = max(1, repeats * epochs_per_repeat)
        self.quiet = quiet
        self.live = not quiet and self.stream.isatty()
        self.done = 0
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        if not self.quiet:
            self._clear()
            print(text, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live:
            print("\r\x1b[K", end="", file=self.stream)

    def epoch(self, case_id: str, repeat: int, epoch: int, entry: dict[str, Any]) -> None:
        if not self.live:
            return
        within = min(1.0, (repeat * self.epochs_per_repeat + epoch + 1) / self.per_case)
        fraction = (self.done + within) / max(1, self.total)
        filled = int(BAR_WIDTH * fraction)
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        print(
            f"\r[{bar}] {self.done}/{self.total} cases {elapsed:5.0f} s | {case_id[:60]} "
            f"r{repeat + 1} e{epoch + 1}: {entry['seconds']:.2f} s, test RMSE {entry['test_rmse']:.4f}\x1b[K",
            end="",
            file=self.stream,
            flush=True,
        )

    def case(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.say(case_line(self.done, self.total, record))

    def close(self) -> None:
        self._clear()
