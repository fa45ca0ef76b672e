"""The A/B mode: interleaved blocks, the ratio's interval and the exit status.

Deterministic tests run the two sides on a fake clock that each epoch advances by
a known cost; one test times a strategy made 3x slower for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mfbench
from mfbench import MfbenchError, SelectionError
from mfbench.cli import main
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.run.ab import plan_side, run_ab, same_strategy_sides
from mfbench.run.plan import RunConfig
from mfbench.stats.verdict import NOISY, SAME, SLOWER, decide

ROOT = Path(__file__).resolve().parents[1]
#: ~0.7 ms epochs for vectorized: long enough that scheduler noise does not dominate a block
SMALL = "lowrank[n_users=300,n_items=200,nnz=6000]"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = FakeClock()


class Costly(mfbench.Strategy):
    """Trains nothing; each epoch costs ``cost`` seconds on the fake clock, +-``jitter`` on alternate calls."""

    name = "costly"
    params = {"cost": 1.0, "jitter": 0.0, "fail": False}
    calls = 0  # across instances: every block is a fresh instance

    def setup(self, model, train, device, seed):
        pass

    def run_epoch(self, epoch):
        if self.params["fail"]:
            raise RuntimeError("this side cannot train")
        Costly.calls += 1
        sign = 1.0 if Costly.calls % 3 else -1.0
        CLOCK.now += self.params["cost"] * (1.0 + sign * self.params["jitter"])


class CostlyPlugin:
    @mfbench.hookimpl
    def mfbench_register_strategies(self, register):
        register(Costly)


def pm():
    manager = mfbench.make_plugin_manager(entry_points=False, env=False)
    manager.register(CostlyPlugin(), name="costly-plugin")
    return manager


def sides(base_sel, new_sel):
    config = RunConfig(epochs=1, repeats=1, warmup=0)
    manager = pm()
    return (
        plan_side("BASE", manager, TINY, "dot", base_sel, "cpu", config),
        plan_side("NEW", manager, TINY, "dot", new_sel, "cpu", config),
    )


def test_a_known_slowdown_gives_its_ratio_and_a_slower_verdict():
    base, new = sides("costly[cost=0.01]", "costly[cost=0.0125]")
    result = run_ab(base, new, blocks=6, epochs=3, warmup=0, clock=CLOCK)
    assert result.ratios == pytest.approx([0.8] * 6)
    assert result.interval.estimate == pytest.approx(0.8)
    assert result.orders == ["BASE,NEW", "NEW,BASE"] * 3
    assert decide(result.interval, 10) == SLOWER
    assert [len(block) for block in base.seconds] == [3] * 6


def test_unchanged_code_is_no_change_and_noise_widens_the_interval():
    base, new = sides("costly[cost=0.01]", "costly[cost=0.01]")
    result = run_ab(base, new, blocks=6, epochs=2, warmup=0, clock=CLOCK)
    assert result.interval.low == pytest.approx(1.0) and result.interval.high == pytest.approx(1.0)
    assert decide(result.interval, 5) == SAME
    base, new = sides("costly[cost=0.01]", "costly[cost=0.01,jitter=0.3]")
    result = run_ab(base, new, blocks=6, epochs=1, warmup=0, clock=CLOCK)  # one epoch per block: jitter shows
    assert result.interval.low < 0.8 and result.interval.high > 1.3
    assert decide(result.interval, 5) == NOISY


def test_the_pilot_sizes_blocks_from_the_slower_side():
    base, new = sides("costly[cost=0.001]", "costly[cost=0.004]")
    result = run_ab(base, new, blocks=6, block_seconds=0.1, warmup=0, clock=CLOCK)
    assert result.epochs_per_block == 25


def test_too_few_blocks_and_grids_are_refused():
    base, new = sides("costly", "costly")
    with pytest.raises(SelectionError, match="at least 6"):
        run_ab(base, new, blocks=5)
    with pytest.raises(SelectionError, match="must be one case"):
        plan_side("NEW", pm(), TINY, "dot", "costly[cost=[1,2]]", "cpu", RunConfig())


def test_sides_from_one_or_two_selections():
    assert same_strategy_sides(["a", "b"], [], []) == ("a", "b")
    assert same_strategy_sides(["a"], ["x"], []) == ("a", "a")
    with pytest.raises(SelectionError, match="two plugin sources"):
        same_strategy_sides(["a"], [], [])


def test_a_side_that_cannot_train_is_an_error_that_says_so():
    base, new = sides("costly", "costly[fail=true]")
    with pytest.raises(MfbenchError, match="NEW side .* ended error: RuntimeError: this side cannot train"):
        run_ab(base, new, blocks=6, epochs=1, warmup=0, clock=CLOCK)


def test_the_command_times_a_strategy_made_three_times_slower(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    out = tmp_path / "ab.json"
    # 12 pairs: the interval runs from the 3rd to the 10th ratio, so two stalled pairs on a loaded machine cannot hide it
    threads = torch.get_num_threads()  # the command sets one thread (two under contention ruin timings)
    try:
        code = main(
            [
                "ab",
                "-q",
                "-p",
                "slowed",
                "-s",
                "slowed",
                "-s",
                "slowed[slowdown=3.0]",
                "-d",
                SMALL,
                "-m",
                "biased",
                "--blocks",
                "12",
                "--epochs",
                "9",
                "--fail-threshold",
                "20",
                "--format",
                "github",
                "-o",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)  # leave the test process as it was
    text = capsys.readouterr().out
    assert code == 1, text
    assert "| BASE" in text and ": slower" in text
    document = json.loads(out.read_text())
    assert document["schema"] == "mfbench.ab" and len(document["blocks"]) == 12
    assert document["ratio"]["estimate"] < 0.6  # 1/3 nominally; generous for a loaded machine
    assert document["verdict"]["verdict"] == SLOWER
    assert document["source_revision"] is None or len(document["source_revision"]["commit"]) == 40
