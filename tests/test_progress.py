"""Progress output: a live bar on a terminal, plain lines elsewhere, nothing with --quiet."""

from __future__ import annotations

import io
import re
import sys

import pytest

from mfbench.report.progress import Progress

CASE = {
    "id": "sprand / dot / reference / cpu",
    "status": "ok",
    "summary": {"median_updates_per_s": 1234.0, "final_test_rmse": 1.5},
    "reason": "",
}


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


LONG_ID = "lowrank[n_users=10000,n_items=5000,nnz=1000000,rank=20] / dot[init_std=0.1] / minibatch[lr=0.1] / cpu"


def drawn_lines(text: str) -> list[str]:
    """What a terminal shows after each carriage return or line feed, escape sequences removed."""
    return [part.replace("\x1b[A", "").replace("\x1b[K", "") for part in re.split(r"[\r\n]", text) if part]


def test_live_bar_shows_the_case_the_epoch_and_the_time_left(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    stream = Terminal()
    progress = Progress(total=2, repeats=2, epochs_per_repeat=2, stream=stream)
    progress.epoch(CASE["id"], 1, 1, {"seconds": 1.0, "test_rmse": 2.0})
    last = drawn_lines(stream.getvalue())[-1]
    assert "0/2 cases" in last and "r2 e2" in last and CASE["id"] in last and "RMSE 2.0000" in last
    assert "<" in last  # elapsed<remaining
    progress.close()


@pytest.mark.parametrize("columns", [60, 100])
def test_live_bar_never_wraps(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    stream = Terminal()
    progress = Progress(total=8, repeats=2, epochs_per_repeat=4, stream=stream)
    for epoch in range(4):
        progress.epoch(LONG_ID, 0, epoch, {"seconds": 12.5, "test_rmse": 1.23456})
    progress.case({**CASE, "id": LONG_ID})
    progress.close()
    lines = drawn_lines(stream.getvalue())
    bars = [line for line in lines if "cases" in line]
    assert bars and all(len(line) < columns for line in bars)


def test_a_case_that_ran_no_epoch_leaves_the_total():
    stream = Terminal()
    progress = Progress(total=3, repeats=1, epochs_per_repeat=2, stream=stream)
    assert progress.bar.total == 6
    progress.case({**CASE, "status": "skipped", "summary": {}})
    assert progress.bar.total == 4 and progress.bar.n == 0
    progress.epoch(CASE["id"], 0, 0, {"seconds": 1.0, "test_rmse": 2.0})
    progress.case({**CASE, "status": "diverged"})  # ended after one of its two epochs
    assert progress.bar.n == 2
    progress.close()
    assert "[1/3]" in stream.getvalue() and "[2/3]" in stream.getvalue()


def test_quiet_prints_nothing():
    stream = Terminal()
    progress = Progress(total=1, repeats=1, epochs_per_repeat=1, stream=stream, quiet=True)
    progress.say("hello")
    progress.epoch(CASE["id"], 0, 0, {"seconds": 1.0, "test_rmse": 2.0})
    progress.case(CASE)
    assert stream.getvalue() == ""


def test_without_tqdm_a_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = Terminal()
    progress = Progress(total=1, repeats=1, epochs_per_repeat=1, stream=stream)
    progress.epoch(CASE["id"], 0, 0, {"seconds": 1.0, "test_rmse": 2.0})
    progress.case(CASE)
    assert (
        not progress.live and stream.getvalue() == "[1/1] sprand / dot / reference / cpu: ok  1,234 updates/s  test RMSE 1.5000\n"
    )


def test_plain_lines_estimate_the_time_left_once_it_is_long_enough():
    stream, now = io.StringIO(), [0.0]
    progress = Progress(total=100, repeats=1, epochs_per_repeat=1, stream=stream, clock=lambda: now[0])
    for seconds in (1.0, 2.0, 3.0, 4.0):  # one case a second
        now[0] = seconds
        progress.case(CASE)
    lines = stream.getvalue().splitlines()
    assert "left" not in "".join(lines[:2])  # too few cases done to say
    assert lines[2].endswith("(about 2 min left)") and lines[3].endswith("(about 2 min left)")  # 97 s, 96 s
    short = io.StringIO()
    progress = Progress(total=10, repeats=1, epochs_per_repeat=1, stream=short, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 1.0
        progress.case(CASE)
    assert "left" not in short.getvalue()  # under a minute left: not worth a word


def test_a_large_grid_is_announced_with_its_count_and_least_duration():
    from mfbench.run.execute import LARGE_GRID, PROCESS_CASE_START_S, grid_notes

    assert grid_notes(LARGE_GRID - 1, "process") == []
    (note,) = grid_notes(100_000, "process")
    hours = 100_000 * PROCESS_CASE_START_S / 3600
    assert note.startswith("a large grid: 100,000 runs") and f"at least {hours:.1f} h" in note
    (note,) = grid_notes(100_000, "inprocess")
    assert "worker process" not in note
