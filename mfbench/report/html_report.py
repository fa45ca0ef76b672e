"""``--html FILE``: a run (or two runs compared) as one self-contained page.

The page answers first — per workload (data set and model), the strategy fastest
to the target RMSE, and the profile score once a run carries one — then shows the
table (a click on a row opens the case's parameters), per workload the held-out
RMSE against training time and the throughput, time-to-target, scaling where
measured, the cases that failed or were skipped with their reasons, and the
machine, versions and configuration. Colours are the strategies' own
(``mfbench.report.colors``), the same in every chart of every page.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from .._version import __version__
from ..results.revision import describe as describe_revision
from ..run.selection import format_selection
from ..stats.overall import overall
from ..stats.seeds import case_over_seeds, several_seeds, workload_verdicts
from ..stats.summary import (
    as_number,
    case_throughput,
    case_time_to_target,
    run_key,
    scaling_efficiencies,
    unreached_trend,
)
from .answer import SEEDS_LEGEND, answers_of, overall_lines
from .colors import device_dash, strategy_color
from .html_page import data_table, facts, legend, page, section, write_page
from .plot import rmse_curve, seed_curve
from .rows import TREND_WORDS, case_target
from .svgcharts import Bar, Series, bar_chart, esc, line_chart, rank_diagram
from .tablefit import collapse_skipped
from .tables import results_table, table_rows, table_shape


def part_label(record: dict[str, Any]) -> str:
    return record.get("label") or format_selection(record["name"], record.get("params", {}))


def workload(case: dict[str, Any]) -> str:
    """What a strategy is measured on: the data set and the model."""
    return f"{part_label(case['dataset'])} / {part_label(case['model'])}"


def case_name(case: dict[str, Any], devices: bool) -> str:
    """The strategy's label (its non-default parameters), and its device when the run used several."""
    name = part_label(case["strategy"])
    return f"{name} @ {case['device']}" if devices else name


def by_workload(cases: list[dict[str, Any]]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        groups.setdefault(workload(case), []).append(index)
    return groups


def numeric_target(value: Any) -> float | None:
    """A target RMSE given as a number; None for none, or for a word such as ``auto`` (each case then has its own)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def workload_target(cases: list[dict[str, Any]], target: float | None) -> float | None:
    """The target of one workload: the one given, else the one its cases raced to (``summary.target_rmse``)."""
    if target is not None:
        return target
    found = {numeric_target((c.get("summary") or {}).get("target_rmse")) for c in cases} - {None}
    return found.pop() if len(found) == 1 else None


def rating_objective(case: dict[str, Any]) -> bool:
    return case["strategy"].get("objective", "rating") == "rating"


# -- the answer -------------------------------------------------------------------


def answers(cases: list[dict[str, Any]], target: float | None) -> list[str]:
    """One or two sentences per workload, the terminal's answer lines (mfbench.report.answer): who reaches
    the target first, with tied groups and intervals over several seeds, and who reaches the lowest
    held-out RMSE against the baselines; where there is no target, who is fastest."""
    lines = []
    for name, indices in by_workload(cases).items():
        if not any(cases[i]["status"] == "ok" for i in indices):
            statuses = Counter(cases[i]["status"] for i in indices)
            lines.append(f"<b>{esc(name)}</b>: no case ended ok ({esc(', '.join(f'{n} {s}' for s, n in statuses.items()))}).")
    for answer in answers_of(workload_verdicts([c for c in cases if c["status"] == "ok"], target)):
        seeds = f" ({answer.seeds} seeds)" if answer.seeds > 1 else ""
        lines.append(f"<b>{esc(answer.workload)}</b>{seeds}, {esc(answer.question)}: {esc(answer.sentence)}.")
    return lines


def profile_section(profile: Any) -> str:
    """The run's performance-profile score (``mfbench.stats.performance_profile``) when the results carry a ``profile``.

    The profile lists ``strategies`` as ``{strategy, score, ratios: {workload: r}, reached}`` with
    ``tau_max`` and ``workloads``: drawn as score bars, rho(tau) step curves and a table of
    ratios. A plain ``{strategy: score}`` mapping (or ``{"scores": {...}}``) is drawn as bars.
    """
    if not isinstance(profile, dict):
        return section("profile-score", "Profile score", f"<pre>{esc(profile)}</pre>")
    entries = profile.get("strategies")
    if isinstance(entries, list):
        return section("profile-score", "Profile score", _profile_body(profile, [e for e in entries if isinstance(e, dict)]))
    source = profile["scores"] if isinstance(profile.get("scores"), dict) else profile
    scores = {str(k): as_number(v.get("score") if isinstance(v, dict) else v) for k, v in source.items()}
    scores = {k: v for k, v in scores.items() if math.isfinite(v)}
    bars = [
        Bar(name, value, strategy_color(name.split("[")[0]), text=f"{value:.3g}")
        for name, value in sorted(scores.items(), key=lambda p: -p[1])
    ]
    others = {k: v for k, v in profile.items() if k != "scores" and k not in scores}
    return section(
        "profile-score", "Profile score", (bar_chart(bars, x_label="score", log=False) if bars else "") + facts(others)
    )


def _profile_body(profile: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    tau_max = as_number(profile.get("tau_max"))
    tau_max = tau_max if math.isfinite(tau_max) and tau_max > 1 else 4.0
    workloads = [str(w) for w in profile.get("workloads") or []]
    bars, curves = [], []
    rows = []
    for entry in entries:
        name = str(entry.get("strategy", "?"))
        color = strategy_color(name.split("[")[0])
        value = as_number(entry.get("score"))
        ratios = {w: as_number((entry.get("ratios") or {}).get(w)) for w in workloads}
        if math.isfinite(value):
            bars.append(Bar(name, max(value, 1e-9), color, text=f"{value:.3f}"))
        if workloads:
            steps = [1.0 + i * (tau_max - 1.0) / 200 for i in range(201)]
            points = [(tau, sum(r <= tau for r in ratios.values()) / len(workloads)) for tau in steps]
            curves.append(Series(f"{name} ({value:.2f})", color, points, "", -1))
        rows.append(
            [name, f"{value:.3f}", f"{entry.get('reached', '')}/{len(workloads)}"]
            + [("not reached" if not math.isfinite(ratios[w]) else f"{ratios[w]:.3g}") for w in workloads]
        )
    panels = []
    if bars:
        panels.append(bar_chart(bars, x_label=f"score (1: fastest everywhere; 0: never within {tau_max:g}×)", log=False))
    if curves:
        panels.append(
            line_chart(
                curves,
                x_label="tau: time-to-target within tau × the fastest",
                y_label="rho(tau): share of workloads",
                log_x=False,
                height=280,
            )
            + legend((s.label, s.color, s.dash, s.case) for s in curves)
        )
    body = '<div class="workloads">' + "".join(f'<div class="panel">{p}</div>' for p in panels) + "</div>"
    body += data_table(["strategy", "score", "reached"] + [f"ratio on {w}" for w in workloads], rows)
    notes = [profile.get("rule")]
    if profile.get("left_out"):
        notes.append(f"left out (no strategy reached the target): {', '.join(map(str, profile['left_out']))}")
    return body + "".join(f'<p class="note">{esc(n)}</p>' for n in notes if n)


# -- the run page -------------------------------------------------------------------


def case_detail(case: dict[str, Any]) -> str:
    summary = case.get("summary") or {}
    items = [
        ("case", case["id"]),
        ("dataset parameters", case["dataset"].get("params")),
        ("data", {k: case["dataset"].get(k) for k in ("n_users", "n_items", "nnz", "train_nnz", "test_nnz", "fingerprint")}),
        ("model parameters", case["model"].get("params")),
        ("strategy parameters", case["strategy"].get("params")),
        ("strategy", {k: case["strategy"].get(k) for k in ("plugin", "exact", "stepwise", "objective", "scales_with")}),
        ("reason", case.get("reason")),
        ("summary", {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}),
    ]
    return facts(items)


def table_section(cases: list[dict[str, Any]], target: float | None) -> str:
    shape = table_shape(cases, target, None)
    rows = table_rows(cases, shape)
    table = results_table(cases, shape, rows)
    keep, lines = collapse_skipped(table)
    sources = [rows[i].source for i in keep]
    details = [case_detail(cases[s]) if s is not None else "" for s in sources]
    body = data_table(table.headers, [table.rows[i] for i in keep], details=details, cases=sources)
    if lines:
        body += "".join(f'<p class="note">{esc(line)}</p>' for line in lines)
    if several_seeds(cases):
        legend_text = f"{SEEDS_LEGEND} spread: ± half the range over seeds of the median updates/s."
        body += f'<p class="note">Click a row for its first seed\'s parameters. {esc(legend_text)}</p>'
    else:
        body += (
            '<p class="note">Click a row for its parameters. '
            "spread: ± half the interquartile range of epoch times, relative to their median.</p>"
        )
    return section("table", "Results", body)


def workload_panels(cases: list[dict[str, Any]], target: float | None) -> str:
    """Per workload: held-out RMSE against training time, throughput, and time-to-target.

    Over several seeds a case is one curve, the median over its seeds with the band from the lowest
    to the highest seed, one throughput bar (median over seeds, whiskers from the slowest to the
    fastest seed), and one time-to-target bar (median over seeds with its 95% bootstrap interval).
    """
    devices = len({c["device"] for c in cases if c["status"] == "ok"}) > 1
    over_seeds = several_seeds(cases)
    panels = []
    given = target
    for name, indices in by_workload(cases).items():
        ok = [i for i in indices if cases[i]["status"] == "ok"]
        if not ok:
            continue
        target = workload_target([cases[i] for i in ok], given)
        groups: dict[str, list[int]] = {}
        for i in ok:
            groups.setdefault(cases[i]["id"], []).append(i)
        curves, implicit, bars, reached, missed = [], [], [], [], []
        for members in groups.values():
            first = members[0]
            case, records = cases[first], [cases[i] for i in members]
            label = case_name(case, devices)
            color, dash = strategy_color(case["strategy"]["name"]), device_dash(case["device"])
            if not rating_objective(case):
                implicit.append(label)
            elif over_seeds:
                points, band = seed_curve(records)
                curves.append(Series(f"{label} ({len(records)} seeds)", color, points, dash, first, band))
            else:
                times, values = rmse_curve(case)
                curves.append(Series(label, color, list(zip(times, values, strict=True)), dash, first))
            figures = case_over_seeds(records, target)
            rate = figures.updates_per_s.estimate
            if rate:
                low, high = figures.updates_range or (None, None)
                if not over_seeds:
                    speed = case_throughput(case)
                    low, high = (speed.min, speed.max) if speed is not None else (None, None)
                bars.append(Bar(label, rate, color, low, high, f"{rate:,.0f}", first, dash))
            if target is None or not rating_objective(case):
                continue
            time = figures.time_to_target if over_seeds else None
            seconds = time.estimate if time is not None else case_time_to_target(case, target)
            if seconds is None or not math.isfinite(seconds):
                trend = unreached_trend(records, target)
                missed.append(f"{label} ({TREND_WORDS[trend]})" if trend else label)
                continue
            low, high = (time.low, time.high) if time is not None else (None, None)
            high = high if high is not None and math.isfinite(high) else None
            text = f"{seconds:.3g} s" + (
                f" ({figures.success.reached}/{figures.success.total})" if over_seeds and figures.success else ""
            )
            reached.append(Bar(label, seconds, color, low, high, text, first))
        html = f'<div class="panel"><h3>{esc(name)}</h3>'
        if curves:
            x_label = "training seconds (log; warm-up included)"
            if over_seeds:
                x_label += "; median seed, band: lowest to highest"
            html += line_chart(curves, x_label=x_label, y_label="held-out RMSE", target=target)
            html += legend((s.label, s.color, s.dash, s.case) for s in curves)
        if implicit:
            html += (
                '<p class="note">Left out of the RMSE chart (implicit-feedback objective, RMSE not comparable): '
                f"{esc(', '.join(implicit))}.</p>"
            )
        bars.sort(key=lambda b: -b.value)
        spread = "min-max over seeds" if over_seeds else "min-max over counted epochs"
        html += bar_chart(bars, x_label=f"median updates/s, whiskers {spread}")
        if reached:
            reached.sort(key=lambda b: b.value)
            how = "median over seeds of epochs to target x median epoch, 95% interval" if over_seeds else "training seconds"
            html += bar_chart(reached, x_label=f"{how} to held-out RMSE {target:g} (shorter is better)")
        if missed:
            html += (
                f'<p class="note">Did not reach {target:g}{" on most seeds" if over_seeds else ""}: {esc(", ".join(missed))}.</p>'
            )
        panels.append(html + "</div>")
    body = '<div class="workloads">' + "".join(panels) + "</div>" if panels else '<p class="empty">No case ended ok.</p>'
    return section("charts", "Quality against time, throughput and time-to-target, per workload", body)


def overall_section(cases: list[dict[str, Any]], target: float | None) -> str:
    """Across workloads (when two or more raced to a target): each strategy's interquartile mean of
    relative speed with its stratified-bootstrap interval, who beats whom how often, and the
    critical-difference diagram of average ranks (mfbench.stats.overall)."""
    across = overall(workload_verdicts([c for c in cases if c["status"] == "ok"], target))
    if across is None:
        return ""
    bars = []
    for name in across.strategies:
        found = across.iqm[name]
        if found.estimate is not None:
            text = f"{found.estimate:.2f}" + (f" [{found.low:.2f}, {found.high:.2f}]" if found.low is not None else "")
            bars.append(Bar(name, max(found.estimate, 1e-3), strategy_color(name), found.low, found.high, text))
    body = bar_chart(bars, x_label="relative speed to target: interquartile mean, 95% interval", log=False)
    ranking = across.ranking
    if ranking.strategies:
        body += rank_diagram(ranking.strategies, ranking.average_ranks, ranking.critical_difference, ranking.cliques)
    items = "".join(f"<li>{esc(line)}</li>" for line in overall_lines(across))
    body += f'<ul class="note">{items}</ul>'
    return section("overall", f"Across {len(across.workloads)} workloads", body)


def scaling_section(cases: list[dict[str, Any]]) -> str:
    """updates/s against workers, one curve per strategy and workload, where a run measured several worker counts."""
    found = scaling_efficiencies(cases)
    if not found:
        return ""
    groups: dict[tuple[str, str, str], list[tuple[float, float, int]]] = {}
    for index, case in enumerate(cases):
        if run_key(case) not in found:
            continue
        knob = case["strategy"]["scales_with"]
        workers = case["strategy"]["params"][knob]
        rate = as_number(case["summary"]["median_updates_per_s"])
        key = (workload(case), case["strategy"]["name"], f"{knob}, {case['device']}")
        groups.setdefault(key, []).append((float(workers), rate, index))
    series = [
        Series(f"{name} ({knob}) on {load}", strategy_color(name), sorted((w, r) for w, r, _ in points), "", points[0][2])
        for (load, name, knob), points in groups.items()
    ]
    chart = line_chart(series, x_label="workers", y_label="median updates/s", log_x=False)
    bars = [
        Bar(
            f"{case_name(cases[i], True)} on {workload(cases[i])}",
            found[run_key(cases[i])] * 100,
            strategy_color(cases[i]["strategy"]["name"]),
            text=f"{found[run_key(cases[i])] * 100:.0f}%",
            case=i,
        )
        for i in range(len(cases))
        if run_key(cases[i]) in found
    ]
    body = chart + legend((s.label, s.color, s.dash, s.case) for s in series)
    body += bar_chart(bars, x_label="scaling efficiency, % (updates/s over workers × one worker's)", log=False)
    return section("scaling", "Scaling", body)


def problems_section(cases: list[dict[str, Any]]) -> str:
    problems = [c for c in cases if c["status"] != "ok"]
    if not problems:
        return section("problems", "Failed and skipped cases", '<p class="empty">None: every case ended ok.</p>')
    skipped: dict[str, list[str]] = {}
    items = []
    for case in problems:
        if case["status"] == "skipped":
            skipped.setdefault(case.get("reason") or "no reason given", []).append(case["id"])
        else:
            items.append(
                f"<li><b>{esc(case['status'])}</b> {esc(case['id'])}: {esc(case.get('reason') or 'no reason given')}</li>"
            )
    for reason, ids in skipped.items():
        items.append(
            f"<li><b>skipped</b> ({len(ids)}) — {esc(reason)}<details><summary>which cases</summary>"
            + "".join(f"<div><code>{esc(i)}</code></div>" for i in ids)
            + "</details></li>"
        )
    return section("problems", "Failed and skipped cases", "<ul>" + "".join(items) + "</ul>")


def machine_section(document: dict[str, Any]) -> str:
    machine = dict(document.get("machine") or {})
    calibration = machine.pop("calibration", None)
    versions = {k: machine.pop(k) for k in ("python", "torch", "numpy", "scipy", "mfbench") if k in machine}
    if document.get("source_revision"):
        versions["mfbench source"] = describe_revision(document["source_revision"])
    if calibration:
        machine["calibration score"] = f"{as_number(calibration.get('score')):,.0f} ({calibration.get('workload', '')})"
    run = {
        "command": " ".join(document.get("command") or []),
        "what ran": run_title(document),
        "created": document.get("created"),
        "finished": document.get("finished"),
        "complete": str(document.get("complete")),
        "executor": (document.get("executor") or {}).get("name"),
    }
    body = (
        '<div class="columns">'
        f"<div><h3>Machine</h3>{facts(machine)}</div>"
        f"<div><h3>Versions</h3>{facts({**versions, 'plugins': ', '.join(document.get('plugins') or [])})}</div>"
        f"<div><h3>Run</h3>{facts(run)}</div>"
        f"<div><h3>Configuration</h3>{facts(document.get('config') or {})}</div>"
        "</div>"
    )
    return section("machine", "Machine, versions and configuration", body)


#: The options that choose what runs instead of a suite's groups (files written before ``suite.selection``).
SELECTING = {"-d", "--dataset", "-m", "--model", "-s", "--strategy"}


def is_selection(document: dict[str, Any]) -> bool:
    """True when -d/-m/-s chose what ran, so the suite named in the file gave its settings only."""
    suite = document.get("suite") or {}
    if "selection" in suite:
        return bool(suite["selection"])
    words = [str(word) for word in document.get("command") or []]
    return any(w.split("=")[0] in SELECTING or (w[:2] in SELECTING and not w.startswith("--")) for w in words)


def run_title(document: dict[str, Any]) -> str:
    """``suite quick``, or ``your selection, with the settings of suite quick``."""
    name = (document.get("suite") or {}).get("name", "?")
    return f"a selection, with the settings of suite {name}" if is_selection(document) else f"suite {name}"


def header(document: dict[str, Any], title: str) -> str:
    suite = document.get("suite") or {}
    if is_selection(document):  # the suite's description is of its groups, which did not run
        suite = {}
    machine = document.get("machine") or {}
    bits = [document.get("created"), machine.get("cpu_model"), f"{len(document.get('cases', []))} cases"]
    if not document.get("complete", True):
        bits.append("incomplete run: the cases that finished")
    description = f"<p>{esc(suite.get('description'))}</p>" if suite.get("description") else ""
    return f'<header><h1>{esc(title)}</h1>{description}<p class="meta">{esc(" · ".join(str(b) for b in bits if b))}</p></header>'


def render_report(document: dict[str, Any], target: float | None = None) -> str:
    """The page for one results document, as a string."""
    cases = list(document.get("cases", []))
    given = numeric_target(target if target is not None else (document.get("config") or {}).get("target_rmse"))
    target = numeric_target(case_target(cases, given))
    if given is None and any(c.get("summary") and "target_rmse" not in c["summary"] for c in cases):
        target = None  # a suite group's target: each workload answers to its own, or to none
    per_workload = target is None and any(workload_target([c], None) is not None for c in cases)
    question = (
        f"Which strategy is fastest to a held-out RMSE of {target:g}?"
        if target is not None
        else "Which strategy is fastest to each workload's target RMSE?"
        if per_workload
        else "Which strategy is fastest, at what quality?"
    )
    items = "".join(f"<li>{line}</li>" for line in answers(cases, target)) or "<li>No case ended ok.</li>"
    sections = [
        header(document, f"mfbench: {run_title(document)}"),
        section("answer", "The answer", f'<div class="answer"><p><b>{esc(question)}</b></p><ul>{items}</ul></div>'),
        # The profile score (per strategy, from tuning): shown when the results carry one.
        profile_section(document["profile"]) if "profile" in document else "",
        table_section(cases, target) if cases else "",
        workload_panels(cases, target),
        overall_section(cases, target),
        scaling_section(cases),
        problems_section(cases),
        machine_section(document),
        f'<footer class="note">Written by mfbench {esc(__version__)}; this page fetches nothing.</footer>',
    ]
    return page(f"mfbench: {run_title(document)} {document.get('created', '')}", [s for s in sections if s])


def write_report(document: dict[str, Any], path: Path, target: float | None = None) -> Path:
    """Write the page for ``document`` to ``path``; returns the path."""
    return write_page(render_report(document, target), path)
