"""Tuning: a budgeted search over each strategy's declared search space, in an Optuna study.

Strategies are compared after the same tuning effort, as AlgoPerf's external-tuning
ruleset compares training algorithms: each (dataset, model, strategy, device) gets a
study of ``trials`` trials; each trial trains one fresh model for the epoch budget with
mfbench's own runner and is judged on the *validation* ratings only (the test ratings
are never looked at while tuning). The objective is the training time until the
validation RMSE first reaches the target when one is given, else the best validation
RMSE within the budget. A trial that errors, diverges or times out is a failed trial.

Studies live in an Optuna storage (a SQLite file by default; any Optuna storage URL),
one study per case, named by the case's identity, so an interrupted ``mfbench tune``
resumes with the trials it had, and several processes (on one or several machines
sharing a database server) can work on one study: each asks for trials until the study
holds the budget.

The first trial of a study is the strategy's defaults (when they lie inside the space),
so a tuned result is never worse than the defaults on validation; the others come from
the sampler: quasi-random (scrambled Sobol, AlgoPerf's choice: it covers the space
evenly and does not depend on the order results arrive in, which suits parallel
workers) by default, TPE or random on request.

The best of many trials is biased low: part of its score is the luck of the split, start and
order it was measured with (the winner's curse). So the chosen parameters are trained again on
fresh seeds the search never saw (``FRESH_SEED_OFFSET`` above the search's seed), on the same data,
and the study keeps that fresh score beside the search score; the gap between them is the curse.
"""

from __future__ import annotations

import math
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import MfbenchError
from ..plugin.search_space import Categorical, Dimension, IntRange, LogUniform
from ..run.executors import Job
from ..run.executors.process import ProcessExecutor
from ..run.plan import Case, RunConfig
from ..run.runner import Runner
from ..stats.intervals import bootstrap_ci, mean_ci
from ..stats.summary import as_number, best_epoch, decision_rmse, time_to_target
from .studies import (
    HEARTBEAT,
    MODEL_PREFIX,
    finite_sum,
    fresh_text,
    json_number,
    open_storage,
    optuna_module,
    storage_url,
    summarize_study,
    with_params,
)

SAMPLERS = ("qmc", "tpe", "gp", "random")
PRUNERS = ("median", "halving", "hyperband", "none")
#: Epochs without a better validation RMSE after which a trial stops (early stopping): its best epoch is
#: what it reports, so more epochs would only cost time.
DEFAULT_PATIENCE = 3


class Pruned(BaseException):
    """Raised from the per-epoch observer to stop a trial the pruner judged behind.

    A BaseException, so that the runner's own error handling (which turns exceptions
    into ``error`` rows) lets it through after the strategy's teardown.
    """


class Stopped(BaseException):
    """Raised from the per-epoch observer when validation RMSE has not improved for ``patience``
    epochs: the trial completes with the epochs it ran (early stopping)."""


def startup_trials(trials: int) -> int:
    """Trials a model-based sampler (tpe, gp) draws at random before it models the results: Optuna's 10,
    or a third of a smaller budget (at least 4), so that a 16-trial study still models 11 of them."""
    return max(4, min(10, trials // 3))


def make_sampler(name: str, seed: int, trials: int = 20):
    """``qmc``: scrambled Sobol points; ``tpe``: Optuna's tree-structured Parzen estimator; ``gp``:
    Bayesian optimization with a Gaussian process (Optuna's GPSampler), built for small budgets;
    ``random``."""
    optuna = optuna_module()
    if name == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)
    if name == "tpe":
        # group: the joint model is fit per set of dimensions that appear together, so a conditional
        # dimension is modelled with the ones it appears with instead of falling back to independent draws.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials), multivariate=True, group=True)
    if name == "gp":
        if not hasattr(optuna.samplers, "GPSampler"):
            raise MfbenchError(f"--sampler gp needs Optuna 3.6 or later, found {optuna.__version__}")
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(trials))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise MfbenchError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int):
    """How a study stops trials early, the epoch being the unit of budget.

    ``median``: a trial whose validation RMSE after an epoch is worse than the median of earlier
    trials at that epoch (after 5 finished trials, from the third epoch on). ``halving``: successive
    halving (Optuna's asynchronous variant): rungs at 1, 3, 9... epochs, and at each rung only the best
    third of the trials that reached it go on. ``hyperband``: several successive-halving brackets of
    different aggressiveness, from one epoch up to the trials' ``epochs``. ``none``: every trial runs
    its epochs (early stopping on patience still applies).
    """
    optuna = optuna_module()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise MfbenchError(f"unknown pruner {name!r}; known: {', '.join(PRUNERS)}")


def declared_space(case: Case) -> dict[str, tuple[Dimension, bool]]:
    """Every dimension the case's strategy and model declare (the model's as ``model.<param>``), each
    with whether the selection fixed it (set it away from its default: ``numba[threads=2]``,
    ``biased[n_factors=64]``, ``--factors 64``)."""
    space = {}
    for prefix, choice in (("", case.strategy), (MODEL_PREFIX, case.model)):
        defaults = choice.entry.cls.params
        for key, dim in getattr(choice.entry.cls, "search_space", {}).items():
            space[prefix + key] = (dim, choice.params.get(key) != defaults.get(key))
    return space


def tuned_space(case: Case, only: set[str] | None = None) -> dict[str, Dimension]:
    """The dimensions to search: the strategy's space and the model's (``model.<param>``), less what
    the selection fixed, and less a conditional dimension whose condition is on a parameter left out
    of the search that does not meet it (``lr_decay`` when ``minibatch[optimizer=adagrad]``);
    ``only`` restricts the search to the parameters named (``lr``, ``model.n_factors``)."""
    space = {name: dim for name, (dim, fixed) in declared_space(case).items() if not fixed and (only is None or name in only)}
    values = selected_values(case)
    return {
        name: dim
        for name, dim in space.items()
        if all(other in space or values.get(other) in allowed for other, allowed in conditions_of(name, dim))
    }


def selected_values(case: Case) -> dict[str, Any]:
    """The case's strategy and model parameters as a study names them (the model's as ``model.<param>``)."""
    return {**{MODEL_PREFIX + k: v for k, v in case.model.params.items()}, **case.strategy.params}


def conditions_of(name: str, dim: Dimension) -> list[tuple[str, tuple]]:
    """``dim``'s conditions with the parameters named as in the study: a model dimension's conditions
    are on the model's own parameters (``model.<param>``)."""
    prefix = MODEL_PREFIX if name.startswith(MODEL_PREFIX) else ""
    return [(prefix + other, allowed) for other, allowed in dim.conditions()]


def active(name: str, dim: Dimension, values: Mapping[str, Any]) -> bool:
    """Whether ``dim`` is searched in a trial whose parameters so far are ``values``."""
    return all(values.get(other) in allowed for other, allowed in conditions_of(name, dim))


def suggest(trial, space: Mapping[str, Dimension], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters, asked define-by-run in declaration order: a conditional dimension is asked
    only when its condition holds on the values drawn before it (or, for a parameter outside the
    search, on its selected value in ``fixed``)."""
    values, params = dict(fixed), {}
    for name, dim in space.items():
        if not active(name, dim, values):
            continue
        if isinstance(dim, Categorical):
            value = trial.suggest_categorical(name, list(dim.choices))
        elif isinstance(dim, IntRange):
            value = trial.suggest_int(name, dim.low, dim.high, log=dim.log)
        else:
            value = trial.suggest_float(name, dim.low, dim.high, log=isinstance(dim, LogUniform))
        params[name] = values[name] = value
    return params


@dataclass
class TrialOutcome:
    """What one trial did, as stored in the study (``user_attrs``) and in results files."""

    number: int
    params: dict[str, Any]
    state: str  # complete, pruned, fail; taken: another tuner sharing the study recorded it first
    status: str  # the runner's status, or "pruned"
    reason: str
    value: float | None
    valid_curve: list[float]
    epoch_seconds: list[float]
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": self.params,
            "state": self.state,
            "status": self.status,
            "reason": self.reason,
            "value": self.value,
            "valid_curve": self.valid_curve,
            "epoch_seconds": self.epoch_seconds,
            "wall_s": self.wall_s,
        }


#: Fresh seeds start this far above the search's seed: far from it and from the seeds races usually run (0, 1, ...).
FRESH_SEED_OFFSET = 1000


def fresh_seeds(config: RunConfig, count: int) -> list[int]:
    return [config.seed + FRESH_SEED_OFFSET + i for i in range(count)]


def trial_config(config: RunConfig) -> RunConfig:
    """One repeat, no uncounted epochs: a trial trains warm-up + counted epochs, all judged."""
    target = config.target_rmse if isinstance(config.target_rmse, float) else None
    return replace(config, epochs=config.epochs + config.warmup, warmup=0, repeats=1, target_rmse=target)


def objective_value(epochs: list[dict[str, Any]], target: float | None) -> tuple[float, float]:
    """(objective, best validation RMSE): time to the validation target (inf when not
    reached) with a target, else the best validation RMSE itself."""
    curve = [decision_rmse(e) for e in epochs]
    best = min((v for v in curve if math.isfinite(v)), default=math.inf)
    if target is None:
        return best, best
    reached = time_to_target(epochs, target)
    return (reached if reached is not None else math.inf), best


@contextmanager
def heartbeat(storage, trial_id: int) -> Iterator[None]:
    """Beat while a trial runs, so a tuner killed mid-trial leaves a trial others can fail."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT):
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # a busy database: the next beat will do
                pass

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name="mfbench-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Tuner:
    """Runs the trials of one study per case; ``say`` shows progress."""

    def __init__(
        self,
        storage_text: str,
        config: RunConfig,
        *,
        trials: int,
        sampler: str = "qmc",
        pruner: str = "none",
        only: set[str] | None = None,
        say: Callable[[str], None] = print,
        pm: Any = None,
        executor: str = "process",
        fresh: int = 3,
        time_budget: float | None = None,
        patience: int | None = DEFAULT_PATIENCE,
    ) -> None:
        if trials < 1:
            raise MfbenchError(f"--trials must be at least 1, got {trials}")
        if time_budget is not None and not (math.isfinite(time_budget) and time_budget > 0):
            raise MfbenchError(f"--time-budget must be a positive duration, got {time_budget!r} seconds")
        if patience is not None and patience < 1:
            raise MfbenchError(f"--patience must be at least 1 epoch (or none), got {patience}")
        self.time_budget, self.patience = time_budget, patience
        if fresh < 0:
            raise MfbenchError(f"--fresh-seeds must be 0 or more, got {fresh}")
        self.fresh = fresh
        for name, known in ((sampler, SAMPLERS), (pruner, PRUNERS)):
            if name not in known:
                raise MfbenchError(f"unknown choice {name!r}; known: {', '.join(known)}")
        if sampler == "gp" and pruner != "none":
            # Measured on ML-100K (numba, 16 trials): with the median pruner, 5 of its 11 modelled trials
            # proposed one pruned point again and again, for GPSampler learns from completed trials only.
            raise MfbenchError(
                f"--sampler gp learns from completed trials only, so it proposes a pruned point again: use it with "
                f"--pruner none (early stopping on --patience still shortens trials), not --pruner {pruner}"
            )
        self.optuna = optuna_module()
        self.storage_text = storage_url(storage_text)
        self.storage = open_storage(storage_text)
        self.config = config
        self.trials = trials
        self.sampler_name, self.pruner_name = sampler, pruner
        self.only = only
        self.say = say
        self.runner = Runner(trial_config(config))
        if executor not in ("process", "inprocess"):
            raise MfbenchError(f"trials run in a worker process (process) or in this one (inprocess), not {executor!r}")
        # A trial's worker process: a strategy that crashes (a segfault in native code, the OOM
        # killer) or hangs past --timeout fails its trial, not the study. Without the plugin
        # manager (a caller that registered plugins in memory) trials run in this process.
        self.pm = pm
        self.process = None
        if pm is not None and executor == "process":
            self.process = ProcessExecutor()
            self.process.start(Job(pm, [], self.runner.config, calibration=False))

    def study(self, case: Case):
        return self.optuna.create_study(
            storage=self.storage,
            study_name=case.id,
            direction="minimize",
            sampler=make_sampler(self.sampler_name, self.config.seed, self.trials),
            pruner=make_pruner(self.pruner_name, self.runner.config.epochs),
            load_if_exists=True,
        )

    def tune(self, case: Case) -> dict[str, Any]:
        """Run trials until the case's study holds the budget; return its summary."""
        space = tuned_space(case, self.only)
        if not space:
            return {
                "id": case.id,
                "status": "skipped",
                "reason": "nothing to tune: the strategy declares no search space (or the selection fixes every parameter in it)",
            }
        if getattr(case.strategy.entry.cls, "objective", "rating") != "rating":
            return {
                "id": case.id,
                "status": "skipped",
                "reason": "implicit-feedback objective: validation RMSE does not judge it, so it is not tuned on it",
            }
        skip = self.runner.skip_reason(case)
        if skip:
            return {"id": case.id, "status": "skipped", "reason": skip}
        study = self.study(case)
        self.optuna.storages.fail_stale_trials(study)
        self._describe(study, case, space)
        TrialState = self.optuna.trial.TrialState
        # Not WAITING: an enqueued trial nobody has taken yet (the defaults) is still to run, within the budget.
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
        if not study.get_trials(deepcopy=False):
            selected = selected_values(case)
            asked = {k: dim for k, dim in space.items() if active(k, dim, selected)}
            defaults = {k: selected[k] for k in asked if _inside(asked[k], selected[k])}
            if len(defaults) == len(asked):
                study.enqueue_trial(defaults, user_attrs={"defaults": True}, skip_if_exists=True)
        while self.spent(study, counted) < self.trials and not self.out_of_time(study):
            outcome = self._trial(study, case, space)
            if isinstance(outcome, str):  # the strategy declined the model: nothing to tune
                return {"id": case.id, "status": "skipped", "reason": outcome}
            if outcome.state == "pruned":
                value = f" at validation RMSE {outcome.valid_curve[-1]:.4g}, epoch {len(outcome.valid_curve)}"
            else:
                value = "" if outcome.value is None else f", objective {outcome.value:.4g}"
            self.say(
                f"  trial {outcome.number}: {outcome.state}{value} "
                f"({', '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}' for k, v in outcome.params.items())})"
                + (f": {outcome.reason}" if outcome.reason and outcome.state != "complete" else "")
            )
        summary = summarize_study(study, case.id)
        if self.fresh and summary["chosen"] is not None:
            summary["fresh"] = self.evaluate_fresh(study, case, summary)
        return summary

    def evaluate_fresh(self, study, case: Case, summary: dict[str, Any]) -> dict[str, Any]:
        """Train the chosen parameters on fresh seeds and keep their objective beside the search's."""
        seeds = fresh_seeds(self.config, self.fresh)
        kept = study.user_attrs.get("fresh")
        if kept and kept.get("seeds") == seeds and kept.get("params") == summary["chosen"]:
            return kept  # a resumed tune: the same choice was evaluated on the same seeds already
        target = self.runner.config.target_rmse if isinstance(self.runner.config.target_rmse, float) else None
        values, best_epochs = [], []
        for seed in seeds:
            status, epochs = self.train_patiently(replace(with_params(case, summary["chosen"]), seed=seed))
            values.append(objective_value(epochs, target)[0] if status == "ok" else math.nan)
            if status == "ok" and epochs:
                best_epochs.append(best_epoch(epochs) + 1)
        search = as_number((summary.get("best") or {}).get("value"))
        found = mean_ci(values) if target is None else bootstrap_ci(values)
        fresh = {
            "seeds": seeds,
            "params": summary["chosen"],
            "values": [json_number(v) for v in values],
            "estimate": json_number(found.estimate),
            "low": json_number(found.low),
            "high": json_number(found.high),
            "statistic": found.statistic,
            "search_value": json_number(search),
            "gap": json_number(found.estimate - search if found.estimate is not None else math.nan),
            # Each fresh seed's epoch of best validation RMSE: with the search's, they set the epochs a
            # tuned race trains (one seed's best epoch undertrains another's: measured on ML-100K).
            "best_epochs": best_epochs,
        }
        study.set_user_attr("fresh", fresh)
        self.say(f"  fresh seeds {', '.join(map(str, seeds))}: {fresh_text(fresh)}")
        return fresh

    def out_of_patience(self, epochs: list[dict[str, Any]]) -> bool:
        """``patience`` epochs have passed since the best validation RMSE so far (early stopping)."""
        return self.patience is not None and len(epochs) - 1 - best_epoch(epochs) >= self.patience

    def out_of_time(self, study) -> bool:
        """The study's trials have used its ``--time-budget`` (their wall time, kept in the study, so a
        resumed tune counts what the earlier one spent); a trial that starts is finished."""
        if self.time_budget is None:
            return False
        return study_cost(study) >= self.time_budget

    @staticmethod
    def spent(study, states) -> int:
        """Trials that count toward the budget: finished or running (perhaps in another
        process), but not one a Ctrl-C interrupted: the resumed tuner runs it again."""
        return sum(not t.user_attrs.get("interrupted") for t in study.get_trials(deepcopy=False, states=states))

    def _describe(self, study, case: Case, space: Mapping[str, Dimension]) -> None:
        """What a later ``run --tuned`` and a reader of the database must know about the study."""
        attrs = study.user_attrs
        config = trial_config(self.config)
        facts = {
            "mfbench_study": 1,
            "case": case.id,
            "strategy": case.strategy.name,
            "fixed_params": {k: v for k, v in case.strategy.params.items() if k not in space},
            "model": case.model.name,
            "fixed_model_params": {k: v for k, v in case.model.params.items() if MODEL_PREFIX + k not in space},
            "search_space": {k: d.describe() for k, d in space.items()},
            "epochs": config.epochs,
            "seed": config.seed,
            "valid_fraction": config.valid_fraction,
            "test_fraction": config.test_fraction,
            "target_rmse": config.target_rmse,
            "objective": "seconds to validation target" if config.target_rmse else "best validation RMSE",
            "sampler": self.sampler_name,
            "pruner": self.pruner_name,
        }
        if "mfbench_study" not in attrs:
            # The marker goes last: a tuner starting beside this one on the same study sees either
            # no marker (and writes the same facts) or every fact.
            for key, value in facts.items():
                if key != "mfbench_study":
                    study.set_user_attr(key, value)
            study.set_user_attr("mfbench_study", facts["mfbench_study"])
            return
        for key in ("epochs", "seed", "valid_fraction", "test_fraction", "target_rmse", "search_space"):
            if attrs.get(key) != facts[key]:
                raise MfbenchError(
                    f"study {case.id!r} in {self.storage_text} was made with {key}={attrs.get(key)!r}, not "
                    f"{facts[key]!r}: rerun with the study's settings, or use another --storage"
                )

    def train_patiently(self, case: Case) -> tuple[str, list[dict[str, Any]]]:
        """Train ``case`` as a trial trains, stopping after ``patience`` epochs without a better validation
        RMSE (a fresh seed's run costs what a trial costs, not the whole epoch budget); (status, epochs)."""
        epochs: list[dict[str, Any]] = []

        def on_epoch(_case, _repeat, _epoch, entry) -> None:
            epochs.append(entry)
            if self.out_of_patience(epochs):
                raise Stopped()

        try:
            record = self.run_trial(case, on_epoch)
        except Stopped:
            return "ok", epochs
        return record["status"], epochs or [e for r in record.get("repeats", []) for e in r.get("epochs", [])]

    def run_trial(self, case: Case, on_epoch: Callable[..., None]) -> dict[str, Any]:
        """Train one trial's case, in its worker process or here; ``on_epoch`` may raise Pruned or
        Stopped, which stops the worker at once."""
        if self.process is None:
            previous, self.runner.on_epoch = self.runner.on_epoch, on_epoch
            try:
                return self.runner.run_case(case)
            finally:
                self.runner.on_epoch = previous
        records: list[dict[str, Any]] = []
        job = Job(self.pm, [case], self.runner.config, calibration=False)
        self.process.run(job, records.append, on_epoch)
        return records[0]

    def _trial(self, study, case: Case, space: Mapping[str, Dimension]) -> TrialOutcome | str:
        trial = study.ask()
        params = suggest(trial, space, selected_values(case))
        try:
            return self._run_asked(study, trial, case, params)
        except self.optuna.exceptions.UpdateFinishedTrialError:
            # Two tuners can both take the one waiting trial (the enqueued defaults): SQLite has no
            # row lock for Optuna's "pop", so both see it waiting. The first to finish records it;
            # the other learns here, and drops its copy of the work.
            why = "another tuner sharing the study finished this trial first; this copy's result is dropped"
            return TrialOutcome(trial.number, params, "taken", "taken", why, None, [], [], 0.0)

    def _run_asked(self, study, trial, case: Case, params: dict[str, Any]) -> TrialOutcome | str:
        optuna = self.optuna
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial_case = with_params(case, params)
        epochs: list[dict[str, Any]] = []

        def on_epoch(_case, _repeat, epoch, entry) -> None:
            epochs.append(entry)
            value = decision_rmse(entry)
            if math.isfinite(value):
                try:
                    trial.report(value, epoch)
                except optuna.exceptions.UpdateFinishedTrialError:
                    raise Pruned() from None  # taken by another tuner (see _trial): stop the worker now
                if trial.should_prune():
                    raise Pruned()
            if self.out_of_patience(epochs):
                raise Stopped()

        started, cpu_started = time.perf_counter(), cpu_seconds()
        status, reason = "ok", ""
        try:
            with heartbeat(self.storage, trial._trial_id):
                record = self.run_trial(trial_case, on_epoch)
            status, reason = record["status"], record.get("reason", "")
        except Pruned:
            status = "pruned"
        except Stopped:
            status, reason = "ok", f"stopped early: no better validation RMSE in {self.patience} epochs"
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        if status == "skipped":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return reason
        target = self.runner.config.target_rmse
        value, best = objective_value(epochs, target)  # type: ignore[arg-type]
        curve = [decision_rmse(e) for e in epochs]
        seconds = [as_number(e.get("seconds")) for e in epochs]
        for key, item in (
            ("status", status),
            ("reason", reason),
            ("valid_curve", curve),
            ("epoch_seconds", seconds),
            ("wall_s", wall),
            ("best_valid_rmse", best),
            ("best_epoch", best_epoch(epochs) + 1 if epochs else None),
            ("cpu_s", cpu),
        ):
            trial.set_user_attr(key, json_number(item))
        if status == "pruned":
            state, told = "pruned", study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif status == "ok" and not math.isnan(value):
            state, told = "complete", study.tell(trial, value)
        else:
            state, told = "fail", study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return TrialOutcome(told.number, params, state, status, reason, told.value, curve, seconds, wall)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have finished and been waited for, plus
    its live workers' (a trial's worker process lives on between trials: see ProcessExecutor)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + live_children_cpu()


def live_children_cpu() -> float:
    """CPU seconds of this process's running children, from /proc (0 where /proc is not there)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    except OSError:
        return 0.0
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: counted in RUSAGE_CHILDREN once waited for
        total += sum(int(f) for f in fields[11:15]) / ticks  # utime, stime, and its waited-for children's
    return total


def study_cost(study) -> float:
    """Wall seconds the study's finished trials took (kept in each trial), over every tuner that worked on it."""
    return finite_sum(as_number(t.user_attrs.get("wall_s")) for t in study.get_trials(deepcopy=False))


def _inside(dim: Dimension, value: Any) -> bool:
    if isinstance(dim, Categorical):
        return value in dim.choices
    return isinstance(value, (int, float)) and dim.low <= value <= dim.high
