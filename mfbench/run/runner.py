"""The runner: measures each case the same way, whoever wrote the strategy.

Per case and repeat: seed, build the model, move model and data to the device
(timed as transfer), the strategy's setup (timed as setup), then per epoch a
timed ``run_epoch`` with the device synchronized around it, and an evaluation
of train and held-out RMSE outside the timed region. One case failing never
stops the run: it becomes a row with a status and a reason.
"""

from __future__ import annotations

import functools
import json
import math
import socket
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..data.baselines import RULE as BASELINE_RULE, baselines
from ..data.implicit import as_implicit, implicit_counts
from ..data.metrics import rmse
from ..data.ratings import Ratings, Split
from ..errors import CaseTimeout, MfbenchError
from ..metrics.evaluate import epoch_metrics, popularity_baseline
from ..plugin.parts import Dataset, Strategy
from ..results.statuses import STATUSES  # noqa: F401 - runner.STATUSES stays importable
from ..stats.criterion import Criterion, metric_value, time_to_criterion
from ..stats.roofline import fractions as roofline_fractions
from ..stats.summary import (
    UNSTABLE_SPREAD,
    best_decision_rmse,
    case_throughput,
    case_time_to_target,
    epoch_seconds,
    spread,
    test_at_best_decision,
    timed_epochs,
)
from .devices import unavailable_reason
from .memory import PeakMemory
from .plan import Case, RunConfig
from .settings import IMPLICIT_ALL
from .timing import Clock, Sync, synchronize, timed

#: A train RMSE this many times its value before training means the case diverged.
DIVERGENCE_FACTOR = 100.0

Observer = Callable[[dict[str, Any]], None]
EpochObserver = Callable[[Case, int, int, dict[str, Any]], None]


class CaseEnded(Exception):
    """Stops a case early with a status other than ok or error."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class LoadedData:
    train: Ratings
    valid: Ratings
    test: Ratings
    info: dict[str, Any]


class Runner:
    """Runs planned cases and hands each finished case record to ``on_case``."""

    def __init__(
        self,
        config: RunConfig,
        on_case: Observer | None = None,
        on_epoch: EpochObserver | None = None,
        sync: Sync = synchronize,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.config = config
        self.on_case = on_case
        self.on_epoch = on_epoch
        self.sync = sync
        self.clock = clock
        self._data_key: tuple | None = None
        self._data: LoadedData | BaseException | None = None
        #: The machine's calibration score; when set, summaries carry relative throughput.
        self.calibration_score: float | None = None
        #: The machine's measured ceilings (``memory_bytes_per_s``, ``peak_flops_per_s`` of the
        #: calibration); when set, summaries carry each case's fraction of them.
        self.ceilings: dict[str, Any] | None = None
        self._warnings: dict[str, list[str]] = {}

    def run(self, cases: list[Case]) -> list[dict[str, Any]]:
        records = []
        for case in cases:
            record = self.run_case(case)
            records.append(record)
            if self.on_case is not None:
                self.on_case(record)
        return records

    # -- data -------------------------------------------------------------

    def seed_of(self, case: Case) -> int:
        """The seed a case runs with: its own (one of the run's seeds) or the run's ``seed``."""
        return case.seed if case.seed is not None else self.config.seed

    def load_data(self, case: Case) -> LoadedData:
        """The case's data, split; reused while consecutive cases share a dataset and seed (a load error too)."""
        seed = self.seed_of(case)
        split = case.split.full_label if case.split is not None else None
        metrics = tuple(m.full_label for m in case.metrics)
        key = (case.dataset.name, tuple(sorted(case.dataset.params.items())), self.config.data_seed(seed), seed, split, metrics)
        if key != self._data_key:
            self._data_key, self._data = key, None
            try:
                self._data = self._load(case)
            except Exception as exc:  # remembered, so every case on this dataset reports it
                self._data = exc
        if isinstance(self._data, BaseException):
            raise self._data
        assert self._data is not None
        return self._data

    def _load(self, case: Case) -> LoadedData:
        dataset: Dataset = case.dataset.make()
        seed = self.seed_of(case)
        data_seed = self.config.data_seed(seed)
        start = self.clock()
        ratings = dataset.load(data_seed)
        load_s = self.clock() - start
        implicit = None
        if self.config.implicit is not None:
            threshold = None if self.config.implicit == IMPLICIT_ALL else float(self.config.implicit)
            implicit = {"threshold": self.config.implicit, **implicit_counts(ratings, threshold)}
            ratings = as_implicit(ratings, threshold)
        if case.split is not None:
            split = case.split.make().split(ratings, self.config.valid_fraction, self.config.test_fraction, seed)
        else:
            split = ratings.split_three(self.config.valid_fraction, self.config.test_fraction, seed)
        sizes = f"train {split.train.nnz}, validation {split.valid.nnz}, test {split.test.nnz} of {ratings.nnz} ratings"
        for part, fraction in (("validation", self.config.valid_fraction), ("test", self.config.test_fraction)):
            if not (split.valid if part == "validation" else split.test).nnz:
                raise MfbenchError(
                    f"dataset {case.dataset.label!r}: the {part} split is empty ({sizes}; {part} fraction "
                    f"{fraction:g}): use more ratings or a larger fraction"
                )
        if not split.train.nnz:
            raise MfbenchError(f"dataset {case.dataset.label!r}: the training split is empty ({sizes})")
        # Timestamps decide splits only: the parts drop them (training never reads them, and the
        # fingerprints stay those of the same ratings loaded without times).
        train, valid, test = split.train.without_times(), split.valid.without_times(), split.test.without_times()
        split = Split(train, valid, test)
        start = self.clock()
        reference: dict[str, Any] = baselines(train, {"valid": valid, "test": test})
        ranking = [m for m in case.metrics if m.entry.cls.ranking]
        if ranking:
            reference["popularity"] = popularity_baseline(ranking, train, valid, test)
        baselines_s = self.clock() - start
        info = {
            "name": case.dataset.name,
            "label": case.dataset.label,
            "params": case.dataset.params,
            "n_users": ratings.n_users,
            "n_items": ratings.n_items,
            "nnz": ratings.nnz,
            "train_nnz": train.nnz,
            "valid_nnz": valid.nnz,
            "test_nnz": test.nnz,
            "valid_fraction": self.config.valid_fraction,
            "test_fraction": self.config.test_fraction,
            "split": case.split.full_label if case.split is not None else "random",
            **({"implicit": implicit} if implicit is not None else {}),
            "split_seed": seed,
            "data_seed": data_seed,
            "fingerprint": split.fingerprint(),
            "fingerprints": split.fingerprints(),
            "load_s": load_s,
            "baselines": {**reference, "rule": BASELINE_RULE},
            "baselines_s": baselines_s,
        }
        facts = getattr(dataset, "facts", None)  # what loading found (duplicate rows merged...)
        if facts:
            info["facts"] = dict(facts)
        return LoadedData(train, valid, test, info)

    # -- one case ---------------------------------------------------------

    def base_record(self, case: Case) -> dict[str, Any]:
        strategy_cls = case.strategy.entry.cls
        return {
            "id": case.id,
            "dataset": {"name": case.dataset.name, "label": case.dataset.label, "params": case.dataset.params},
            "model": {
                "name": case.model.name,
                "label": case.model.label,
                "params": case.model.params,
                "plugin": case.model.entry.plugin,
            },
            "strategy": {
                "name": case.strategy.name,
                "label": case.strategy.label,
                "params": case.strategy.params,
                "plugin": case.strategy.entry.plugin,
                "exact": bool(getattr(strategy_cls, "exact", False)),
                "reference": bool(getattr(strategy_cls, "reference", False)),
                "stepwise": bool(getattr(strategy_cls, "stepwise", True)),
                "objective": getattr(strategy_cls, "objective", "rating"),
                "scales_with": getattr(strategy_cls, "scales_with", None),
            },
            "device": str(case.device),
            "seed": self.seed_of(case),
            **({"counted_epochs": case.epochs} if case.epochs is not None else {}),
            "host": socket.gethostname(),
            "status": "ok",
            "reason": "",
            "repeats": [],
            "summary": {},
        }

    @staticmethod
    def skip_reason(case: Case) -> str | None:
        """Why ``case`` cannot run here at all (a missing library, no such device), known without running it."""
        strategy_cls: type[Strategy] = case.strategy.entry.cls
        reason = next(
            (
                f"{c.entry.cls.kind} {c.name!r} is unavailable here: {c.entry.cls.unavailable}"
                for c in (case.dataset, case.model, case.strategy)
                if c.entry.cls.unavailable
            ),
            None,
        ) or unavailable_reason(case.device)
        if reason is None and case.device.type not in strategy_cls.devices:
            reason = f"strategy {strategy_cls.name!r} supports {', '.join(strategy_cls.devices)} only"
        return reason

    def skipped_record(self, case: Case, reason: str) -> dict[str, Any]:
        record = self._end(self.base_record(case), "skipped", reason)
        record["summary"] = {}
        return record

    def run_case(self, case: Case) -> dict[str, Any]:
        record = self.base_record(case)
        reason = self.skip_reason(case)
        if reason is not None:
            return self._end(record, "skipped", reason)
        started = self.clock()
        try:
            data = self.load_data(case)
            record["dataset"] = data.info
            for note in data.info.get("facts", {}).get("notes", []):
                self.warn(case, f"dataset {case.dataset.label!r}: {note}")
            for repeat in range(self.config.repeats):
                result: dict[str, Any] = {"repeat": repeat, "epochs": []}
                record["repeats"].append(result)  # filled in place: a failed repeat keeps what it measured
                self._run_repeat(case, data, repeat, started, result)
        except CaseTimeout as exc:
            self._end(record, "timeout", f"{type(exc).__name__}: {exc}")
        except CaseEnded as ended:
            self._end(record, ended.status, ended.reason)
            if ended.status == "skipped":
                record["repeats"] = []
        except Exception as exc:  # a broken strategy is a row, not a crash
            record["traceback"] = traceback.format_exc()
            self._end(record, "error", f"{type(exc).__name__}: {exc}")
        finally:
            if case.device.type == "cuda":
                torch.cuda.empty_cache()
        target = case.target_rmse if case.target_rmse is not None else self.config.target_rmse
        record["summary"] = summarize(
            record, target if isinstance(target, float) else None, self.calibration_score, self.ceilings, case.criterion
        )
        if case.metrics and record["summary"]:
            record["summary"]["metric_titles"] = {m.full_label: m.make().title() for m in case.metrics}
        warnings = self._warnings.pop(case.id, None)
        if warnings:
            record["warnings"] = warnings
        return record

    def _end(self, record: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
        record["status"], record["reason"] = status, reason
        return record

    def _run_repeat(self, case: Case, data: LoadedData, repeat: int, started: float, result: dict[str, Any]) -> None:
        config, device = self.config, case.device
        seed = self.seed_of(case)
        torch.manual_seed(seed)
        model = case.model.make().build(data.train)

        def move():
            return model.to(device), data.train.to(device), data.valid.to(device), data.test.to(device)

        (model, train, valid, test), result["transfer_s"] = timed(move, device, self.sync, self.clock)
        held_out = (valid, test)
        strategy: Strategy = case.strategy.make()
        skip = strategy.skip(model, device)
        if skip:
            raise CaseEnded("skipped", skip)
        memory = PeakMemory(device)
        try:
            with memory:
                _, result["setup_s"] = timed(lambda: strategy.setup(model, train, device, seed), device, self.sync, self.clock)
                work = work_per_update(strategy, model)
                if work:
                    result["work_per_update"] = work
                result["initial"] = evaluate(model, train, valid, test)
                baseline = result["initial"]["train_rmse"]
                total = config.warmup + case.counted_epochs(config)
                if not strategy.stepwise:  # one timed call trains every epoch
                    loss, seconds = timed(lambda: strategy.fit(total), device, self.sync, self.clock)
                    self._epoch_done(case, repeat, total - 1, loss, seconds, model, train, held_out, baseline, result)
                    result["epochs"][-1]["epochs_covered"] = total
                    return
                for epoch in range(total):
                    loss, seconds = timed(functools.partial(strategy.run_epoch, epoch), device, self.sync, self.clock)
                    self._epoch_done(case, repeat, epoch, loss, seconds, model, train, held_out, baseline, result)
                    elapsed = self.clock() - started
                    last = repeat == config.repeats - 1 and epoch == total - 1
                    if config.case_timeout is not None and elapsed > config.case_timeout and not last:
                        raise CaseEnded(
                            "timeout",
                            f"case ran {elapsed:.1f} s, over the {config.case_timeout:g} s limit, after epoch {epoch + 1} "
                            f"of repeat {repeat + 1}; finished epochs are kept",
                        )
        finally:
            result["memory"] = memory.record()
            try:
                info = strategy.info()
                if info:
                    result["info"] = json_checked(dict(info))
            except Exception as exc:  # what info() could not say must not hide the case's own outcome
                result["info"] = {"error": f"{type(exc).__name__}: {exc}"}
                self.warn(
                    case,
                    f"strategy {case.strategy.name!r} (plugin {case.strategy.entry.plugin!r}): "
                    f"info() failed, the repeat's info is left out: {type(exc).__name__}: {exc}",
                )
            strategy.teardown()

    def warn(self, case: Case, message: str) -> None:
        """Something went wrong beside the measurement: recorded with the case, never changing its status."""
        self._warnings.setdefault(case.id, [])
        if message not in self._warnings[case.id]:
            self._warnings[case.id].append(message)

    def _epoch_done(self, case, repeat, epoch, loss, seconds, model, train, held_out, baseline, result) -> None:
        """Evaluate (untimed) after a timed training call, record it, and stop a diverged case."""
        eval_start = self.clock()
        entry = {"epoch": epoch, "seconds": seconds, **evaluate(model, train, *held_out)}
        if case.metrics:
            entry["metrics"] = epoch_metrics(case.metrics, model, train, *held_out)
        entry["eval_s"] = self.clock() - eval_start
        if epoch < self.config.warmup and case.strategy.entry.cls.stepwise:
            entry["warmup"] = True
        if loss is not None:
            entry["loss"] = float(loss)
        result["epochs"].append(entry)
        if self.on_epoch is not None:
            self.on_epoch(case, repeat, epoch, entry)
        check_divergence(entry, baseline, repeat, epoch)


def evaluate(model, train: Ratings, valid: Ratings, test: Ratings) -> dict[str, float]:
    """Train, validation and test RMSE: the same code for every strategy, outside the timed region."""
    return {"train_rmse": rmse(model, train), "valid_rmse": rmse(model, valid), "test_rmse": rmse(model, test)}


def work_per_update(strategy: Strategy, model: Any) -> dict[str, Any] | None:
    """The strategy's statement of one update's bytes and flops; a failing statement is recorded, not raised."""
    try:
        work = strategy.work_per_update(model)
    except Exception as exc:  # the roofline is a by-product: it must not fail the case
        return {"error": f"{type(exc).__name__}: {exc}"}
    return dict(work) if work else None


def json_checked(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` if it can be written to a results file; otherwise a TypeError saying what cannot."""
    try:
        json.dumps(info, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"returned a value that is not JSON-serializable ({exc})") from None
    return info


def check_divergence(entry: dict[str, Any], baseline: float, repeat: int, epoch: int) -> None:
    where = f"at epoch {epoch + 1} of repeat {repeat + 1}"
    for key in ("loss", "train_rmse"):
        value = entry.get(key)
        if value is not None and not math.isfinite(value):
            raise CaseEnded("diverged", f"{key.replace('_', ' ')} became {value} {where}")
    if math.isfinite(baseline) and entry["train_rmse"] > DIVERGENCE_FACTOR * max(baseline, 1.0):
        raise CaseEnded(
            "diverged",
            f"train RMSE grew from {baseline:.4g} to {entry['train_rmse']:.4g} {where} (over {DIVERGENCE_FACTOR:g}x)",
        )


def summarize(
    record: dict[str, Any],
    target_rmse: float | None = None,
    calibration_score: float | None = None,
    ceilings: dict[str, Any] | None = None,
    criterion: Criterion | None = None,
) -> dict[str, Any]:
    """Throughput over counted (non-warm-up) epochs of every repeat, the final quality (RMSE and each
    metric the run named), time-to-target (RMSE or ``criterion``), and the roofline fields
    (``mfbench.stats.roofline.fractions``) where the strategy stated its work per update."""
    epochs = timed_epochs(record)
    if not epochs:
        return {}
    updates = record["dataset"].get("train_nnz", 0)
    seconds = spread([epoch_seconds(e) for e in epochs])
    throughput = case_throughput(record)  # the figure report and compare read back
    rates = spread([updates / epoch_seconds(e) if e["seconds"] > 0 else math.inf for e in epochs])
    finals = [r["epochs"][-1] for r in record["repeats"] if r.get("epochs")]
    setups = [r["setup_s"] for r in record["repeats"] if "setup_s" in r]
    peaks = [r["memory"]["peak_bytes"] for r in record["repeats"] if (r.get("memory") or {}).get("peak_bytes")]
    summary = {
        "updates_per_epoch": updates,
        "epochs_timed": len(epochs),
        "median_epoch_s": seconds["median"],
        "min_epoch_s": seconds["min"],
        "max_epoch_s": seconds["max"],
        "median_updates_per_s": throughput.median if throughput is not None else math.inf,
        "updates_per_s": rates,
        "relative_iqr": seconds["relative_iqr"],
        "unstable": seconds["relative_iqr"] > UNSTABLE_SPREAD,
        "median_setup_s": statistics.median(setups) if setups else None,
        "final_train_rmse": statistics.median(f["train_rmse"] for f in finals),
        "final_test_rmse": statistics.median(f["test_rmse"] for f in finals),
        "final_valid_rmse": statistics.median(f["valid_rmse"] for f in finals),
        "best_valid_rmse": best_decision_rmse(record),
        "test_rmse_at_best_valid": test_at_best_decision(record),
        "peak_memory_bytes": max(peaks) if peaks else None,
    }
    if not record["strategy"].get("stepwise", True):
        summary["whole_fit"] = True
    if calibration_score:
        summary["relative_updates_per_s"] = summary["median_updates_per_s"] / calibration_score
    work = next((r["work_per_update"] for r in record["repeats"] if "bytes_per_update" in r.get("work_per_update", {})), None)
    summary.update(roofline_fractions(summary["median_updates_per_s"], work, ceilings))
    names = list(dict.fromkeys(name for f in finals for name in (f.get("metrics") or {}).get("test", {})))
    if names:
        summary["final_metrics"] = {
            part: {name: statistics.median(metric_value(f, name, part) for f in finals) for name in names}
            for part in ("valid", "test")
        }
    if target_rmse is not None:
        summary["target_rmse"] = target_rmse
        summary["time_to_target_s"] = case_time_to_target(record, target_rmse)
    elif criterion is not None:
        summary["target"] = criterion.as_dict()
        times = [time_to_criterion(r.get("epochs", []), criterion) for r in record["repeats"]]
        reached = [t for t in times if t is not None]
        summary["time_to_target_s"] = statistics.median(reached) if reached and len(reached) * 2 >= len(times) else None
    return summary
