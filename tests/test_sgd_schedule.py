"""The SGD family's one step schedule: epoch e steps with lr / (1 + lr_decay * e), in every SGD strategy."""

from __future__ import annotations

import pytest

from mfbench.plugin.registry import collect
from mfbench.plugins.common.sgd import SCHEDULE_SPACE, epoch_lr

#: The SGD strategies that train in this process (hogwild, sharded and ddp take the same schedule in
#: their workers: plugins.common.sgd; their own tests cover the workers).
IN_PROCESS = ("vectorized", "minibatch", "scripted", "numba")


def test_epoch_lr_is_inverse_time_decay():
    assert epoch_lr(0.1, 0.0, 7) == 0.1
    assert epoch_lr(0.1, 0.5, 0) == 0.1 and epoch_lr(0.1, 0.5, 2) == pytest.approx(0.05)


def test_every_sgd_strategy_declares_the_schedule_and_searches_it(fresh_pm):
    strategies = collect(fresh_pm).strategies
    family = ("numba", "native-sgd", "scripted", "vectorized", "minibatch", "hogwild", "sharded", "ddp")
    sgd = [n for n in family if n in strategies]
    for name in sgd:
        cls = strategies[name].cls
        assert cls.params["lr_decay"] == 0.0, name  # the default: a constant step, as before the schedule
        searched = cls.search_space["lr_decay"]
        # the same range everywhere; minibatch searches it only in trials that draw plain SGD
        assert (searched.low, searched.high) == (SCHEDULE_SPACE["lr_decay"].low, SCHEDULE_SPACE["lr_decay"].high), name
        assert searched.conditions() == ((("optimizer", ("sgd",)),) if name == "minibatch" else ()), name
    assert "lr_decay" not in strategies["reference"].cls.params  # the notebook's loop stays the notebook's


@pytest.mark.parametrize("name", IN_PROCESS)
def test_the_decay_leaves_the_first_epoch_alone_and_shrinks_the_later_ones(fresh_pm, run_cases, name):
    if name not in collect(fresh_pm).strategies:
        pytest.skip(f"{name} is not available here")

    def curve(decay, epochs):
        (record,) = run_cases(fresh_pm, [f"{name}[lr_decay={decay}]"], models=("biased",), epochs=epochs)
        assert record["status"] == "ok", record.get("reason")
        return [e["train_rmse"] for e in record["repeats"][0]["epochs"]]

    assert curve(0.0, 1) == pytest.approx(curve(5.0, 1), rel=1e-6)  # epoch 0 steps with lr either way
    constant, decayed = curve(0.0, 3), curve(5.0, 3)
    assert constant[-1] != pytest.approx(decayed[-1], rel=1e-4)  # epochs 1 and 2 step with lr/6 and lr/11
