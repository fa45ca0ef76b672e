"""Optuna studies as mfbench keeps them: the optional import, their storage, and a study
read back: its summary for results files, its best trial, and the tuned cases a race runs.

Running trials into a study is :mod:`mfbench.tuning.tuner`'s job; this module is what both the
tuner and ``mfbench run --tuned`` need.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import MfbenchError
from ..run.execute import TunedParameters
from ..run.plan import Case, Choice
from ..stats.summary import as_number

INSTALL = "pip install 'mfbench[tune]'"
#: Tuned float values are rounded to this many significant digits before a race uses
#: them, so labels stay readable (a 0.05% change of a step size is far below the noise).
SIGNIFICANT = 3
#: Seconds between a running trial's heartbeats; a trial silent for GRACE seconds is
#: taken as dead (its process was killed) and marked failed by the next tuner.
HEARTBEAT, GRACE = 10, 60


def optuna_module():
    """Optuna, or an error saying how to install it (it is an optional extra)."""
    try:
        import optuna
    except ImportError:
        raise MfbenchError(f"tuning needs Optuna, which is not installed: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # QMCSampler and fail_stale_trials are marked experimental; heartbeats are recorded by
    # mfbench itself (trials are asked and told, not run by Study.optimize). Neither
    # warning is news to a user.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def storage_url(text: str) -> str:
    """A bare path means a SQLite file; anything with ``://`` is an Optuna/SQLAlchemy URL."""
    return text if "://" in text else f"sqlite:///{text}"


def open_storage(url: str, attempts: int = 5):
    """The RDB storage at ``url``.

    Two tuners starting together on a new database both try to create Optuna's tables,
    and one loses the race (a unique-constraint error on the schema version): opening
    again then finds the tables made, so a failed open is retried a few times.
    """
    optuna = optuna_module()
    url = storage_url(url)
    # A generous lock timeout: several tuners may share one SQLite file.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT, grace_period=GRACE)
        except Exception as exc:  # SQLAlchemy's errors for bad URLs, unreachable servers, missing folders
            if attempt == attempts - 1:
                raise MfbenchError(f"cannot open the study storage {url!r}: {exc}") from exc
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def round_value(value: Any) -> Any:
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        return float(f"{value:.{SIGNIFICANT}g}")
    return value


#: How a study names the model's parameters beside the strategy's: ``model.n_factors``.
MODEL_PREFIX = "model."


def with_params(case: Case, params: Mapping[str, Any]) -> Case:
    """The case with its strategy's parameters, and its model's (``model.<param>``), overridden
    (types checked as for a selection)."""
    model = {k.removeprefix(MODEL_PREFIX): v for k, v in params.items() if k.startswith(MODEL_PREFIX)}
    own = {k: v for k, v in params.items() if not k.startswith(MODEL_PREFIX)}
    entry = case.strategy.entry
    case = replace(case, strategy=Choice(entry, entry.cls.resolve_params({**case.strategy.params, **own})))
    if model:
        model_entry = case.model.entry
        case = replace(case, model=Choice(model_entry, model_entry.cls.resolve_params({**case.model.params, **model})))
    return case


def json_number(value: Any) -> Any:
    """Optuna stores user attributes as JSON, which has no NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [json_number(v) for v in value]
    return value


def fresh_text(fresh: dict[str, Any] | None) -> str:
    """``0.9123 [0.9101, 0.9145], +0.0061 on the search``: the chosen parameters on fresh seeds, and the gap."""
    if not fresh:
        return ""
    estimate, low, high, gap = (as_number(fresh.get(k)) for k in ("estimate", "low", "high", "gap"))
    if not math.isfinite(estimate):
        return f"{fresh.get('estimate')} over {len(fresh.get('seeds', []))} seeds"
    text = f"{estimate:.4g}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.4g}, {high:.4g}]"
    return text + (f", {gap:+.3g} on the search" if math.isfinite(gap) else "")


def summarize_study(study, case_id: str) -> dict[str, Any]:
    """The study as a results file keeps it: every trial, the choice, and the cost."""
    trials = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        trials.append(
            {
                "number": t.number,
                "params": dict(t.params),
                "state": t.state.name.lower(),
                "status": attrs.get("status", t.state.name.lower()),
                "reason": attrs.get("reason", ""),
                "value": t.value,
                "best_valid_rmse": as_number(attrs.get("best_valid_rmse")),
                "valid_curve": [as_number(v) for v in attrs.get("valid_curve", [])],
                "epoch_seconds": [as_number(v) for v in attrs.get("epoch_seconds", [])],
                "wall_s": as_number(attrs.get("wall_s")),
                "cpu_s": as_number(attrs.get("cpu_s")),
                "best_epoch": attrs.get("best_epoch"),
                "defaults": bool(attrs.get("defaults")),
                "worker": attrs.get("worker"),
                **({"interrupted": True} if attrs.get("interrupted") else {}),
            }
        )
    best = choose_best(trials)
    counts = {state: sum(t["state"] == state for t in trials) for state in ("complete", "pruned", "fail", "running")}
    attrs = study.user_attrs
    return {
        "id": case_id,
        "status": "ok" if best is not None else "failed",
        "reason": "" if best is not None else "no trial completed",
        "study": study.study_name,
        "objective": attrs.get("objective"),
        "target_rmse": attrs.get("target_rmse"),
        "epochs": attrs.get("epochs"),
        "sampler": attrs.get("sampler"),
        "pruner": attrs.get("pruner"),
        "search_space": attrs.get("search_space", {}),
        "fixed_params": attrs.get("fixed_params", {}),
        "fixed_model_params": attrs.get("fixed_model_params", {}),
        "trials": trials,
        "n_trials": len(trials),
        "counts": counts,
        "cost_s": finite_sum(t["wall_s"] for t in trials),
        "cpu_s": finite_sum(t["cpu_s"] for t in trials),
        "epochs_trained": sum(len(t["valid_curve"]) for t in trials),
        "best": best,
        "chosen": chosen_params(best),
        "chosen_epochs": chosen_epochs(best, attrs.get("fresh")),
        **({"fresh": attrs["fresh"]} if "fresh" in attrs else {}),
    }


def chosen_params(best: dict[str, Any] | None) -> dict[str, Any] | None:
    """The best trial's parameters as a race takes them (floats rounded: ``round_value``)."""
    return {k: round_value(v) for k, v in best["params"].items()} if best else None


def chosen_epochs(best: dict[str, Any] | None, fresh: dict[str, Any] | None) -> int | None:
    """The epochs a tuned race trains: the median of the epochs of best validation RMSE of the best
    trial and of its choice's fresh-seed runs (validation only). Measured on ML-100K (numba, TPE, 16
    trials): the search seed's best epoch alone was 9, while two of three race seeds still improved
    there, and their test RMSE with it (0.9158, 0.9115) was above the search seed's (0.9102)."""
    if not best or not isinstance(best.get("best_epoch"), int):
        return None
    epochs = [best["best_epoch"]]
    if fresh and fresh.get("params") == chosen_params(best):
        epochs += [e for e in fresh.get("best_epochs", []) if isinstance(e, int)]
    return int(round(statistics.median(epochs)))


def finite_sum(values: Any) -> float:
    return sum(v for v in values if isinstance(v, (int, float)) and math.isfinite(v))


def choose_best(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial with the lowest objective; ties (every trial missed the target:
    all infinite) go to the lowest best validation RMSE."""
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    if not done:
        return None
    return min(done, key=lambda t: (as_number(t["value"]), t["best_valid_rmse"]))


def load_tuning(storage_text: str, case: Case) -> dict[str, Any] | None:
    """The summary of the case's study in the storage, or None when it has none."""
    optuna = optuna_module()
    storage = open_storage(storage_text)
    try:
        study = optuna.load_study(study_name=case.id, storage=storage)
    except KeyError:
        return None
    return summarize_study(study, case.id)


def tuned_cases(cases: list[Case], storage_text: str) -> tuple[list[Case], dict[str, dict[str, Any]], list[str]]:
    """Cases with their studies' chosen parameters; tuning facts by the tuned case's id; notes.

    A case without a study (or whose study has no completed trial) runs as selected, and
    its tuning entry says so: a defaults row is never passed off as a tuned one.
    """
    out: list[Case] = []
    facts: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for case in cases:
        summary = load_tuning(storage_text, case)
        if summary is None or summary["chosen"] is None:
            why = "no study" if summary is None else "no completed trial in its study"
            notes.append(f"{case.id}: {why} in {storage_url(storage_text)}; runs with its selected parameters")
            out.append(case)
            facts[case.id] = {"status": "untuned", "reason": why, "base_label": case.strategy.label}
            continue
        tuned = with_params(case, summary["chosen"])
        summary["base_label"] = case.strategy.label
        summary["base_model_label"] = case.model.label
        summary["tuned_params"] = sorted(summary["chosen"])
        summary["storage"] = storage_url(storage_text)
        out.append(tuned)
        facts[tuned.id] = summary
    return out, facts, notes


def tuned_parameters(storage_text: str) -> TunedParameters:
    """What ``mfbench run --tuned STORAGE`` hands the run: its cases' studies in ``storage_text``."""
    return TunedParameters(storage_url(storage_text), functools.partial(tuned_cases, storage_text=storage_text))
