"""Progress output: a live bar on a terminal, plain lines elsewhere, nothing with --quiet."""

from __future__ import annotations

import io

from mfbench.progress import Progress

CASE = {"id": "sprand / dot / reference / cpu", "status": "ok", "summary": {"median_updates_per_s": 1234.0,
        "final_test_rmse": 1.5}, "reason": ""}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(total=2, repeats=1, epochs_per_repeat=2, stream=stream)
    progress.epoch(CASE["id"], 0, 0, {"seconds": 1.0, "test_rmse": 2.0})
    progress.case(CASE)
    progress.close()
    assert stream.getvalue() == "[1/2] sprand / dot / reference / cpu: ok  1,234 updates/s  test RMSE 1.5000\n"


def test_live_bar_on_a_terminal():
    stream = Terminal()
    progress = Progress(total=2, repeats=2, epochs_per_repeat=2, stream=stream)
    progress.epoch(CASE["id"], 1, 1, {"seconds": 1.0, "test_rmse": 2.0})
    out = stream.getvalue()
    assert out.startswith("\r[") and "0/2 cases" in out and "r2 e2" in out
    assert "#" * 12 in out  # one of two cases fully done: half the bar


def test_quiet_prints_nothing():
    stream = Terminal()
    progress = Progress(total=1, repeats=1, epochs_per_repeat=1, stream=stream, quiet=True)
    progress.say("hello")
    progress.epoch(CASE["id"], 0, 0, {"seconds": 1.0, "test_rmse": 2.0})
    progress.case(CASE)
    assert stream.getvalue() == ""
