"""Tables for tuning: what ``mfbench tune`` found, and the performance-profile score."""

from __future__ import annotations

import math
from typing import Any

from ..run.selection import format_params
from ..stats.summary import as_number
from ..tuning.studies import fresh_text
from . import escape


def _num(value: Any, spec: str) -> str:
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "not reached" if number > 0 else str(number)
    return format(number, spec)


def tuning_cost(tuning: dict[str, Any] | None) -> str:
    """``20 trials, 143 s`` (with how many were pruned or failed), or why there was none."""
    if not tuning:
        return "defaults"
    if tuning.get("status") != "ok":
        return f"untuned ({tuning.get('reason', '')})"
    counts = tuning.get("counts", {})
    extra = [f"{counts[k]} {k}" for k in ("pruned", "fail") if counts.get(k)]
    counted = f" ({', '.join(extra)})" if extra else ""
    gap = as_number((tuning.get("fresh") or {}).get("gap"))
    fresh = f"; fresh seeds {gap:+.3g}" if math.isfinite(gap) else ""
    epochs = f", {tuning['epochs_trained']} epochs" if tuning.get("epochs_trained") else ""
    cpu = f" ({_num(tuning.get('cpu_s'), '.0f')} s CPU)" if tuning.get("cpu_s") else ""
    return f"{tuning.get('n_trials', 0)} trials{counted}{epochs}, {_num(tuning.get('cost_s'), '.0f')} s{cpu}{fresh}"


def chosen_text(summary: dict[str, Any]) -> str:
    """The chosen parameters, and the epochs the best trial trained to its best validation score."""
    if not summary.get("chosen"):
        return ""
    epochs = summary.get("chosen_epochs")
    return format_params(summary["chosen"]) + (f", {epochs} epochs" if epochs else "")


def render_tuning(summaries: list[dict[str, Any]], fmt: str = "simple") -> str:
    """One row per tuned case: the chosen parameters, what they reached, what tuning cost."""
    rows = []
    for s in summaries:
        if s["status"] == "skipped":
            rows.append([s["id"], "skipped", "", "", "", "", s["reason"]])
            continue
        best = s.get("best") or {}
        objective = s.get("objective") or ""
        rows.append(
            [
                s["id"],
                s["status"],
                chosen_text(s),
                _num(best.get("best_valid_rmse"), ".4f"),
                _num(best.get("value"), ".4g")
                + (" s" if "seconds" in objective and math.isfinite(as_number(best.get("value"))) else ""),
                fresh_text(s.get("fresh")),
                tuning_cost(s) + ("" if s["status"] == "ok" else f"; {s.get('reason', '')}"),
            ]
        )
    seeds = next((len(s["fresh"]["seeds"]) for s in summaries if s.get("fresh")), 0)
    headers = ["case", "status", "chosen parameters", "best valid RMSE", "objective", f"on {seeds} fresh seeds", "tuning"]
    return escape.table(rows, headers, fmt)


def render_profile(profile: dict[str, Any], fmt: str = "simple") -> str:
    """Strategies by score, with each workload's ratio to the fastest."""
    workloads = profile["workloads"]
    headers = ["strategy", f"score (tau<={profile['tau_max']:g})", *workloads]
    rows = []
    for entry in profile["strategies"]:
        rows.append(
            [
                entry["strategy"],
                f"{entry['score']:.3f}"
                + (f" [{entry['score_range'][0]:.3f}, {entry['score_range'][1]:.3f}]" if "score_range" in entry else ""),
                *(("-" if not math.isfinite(entry["ratios"][w]) else f"{entry['ratios'][w]:.2f}x") for w in workloads),
            ]
        )
    text = escape.table(rows, headers, fmt)
    notes = [f"ratio to the fastest time-to-target per workload ('-': not reached); {profile['rule']}"]
    if profile.get("left_out"):
        notes.append("left out (no strategy reached the target): " + "; ".join(profile["left_out"]))
    return text + "\n" + "\n".join(notes)
