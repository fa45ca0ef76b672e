"""The one-line answer: who wins a workload, by how much, and whether seed noise can tell them apart.

Words for a :class:`mfbench.stats.paired.Comparison`: "numba and native-sgd tie (p = 0.41); both
faster than vectorized by 4.1x [3.2x, 5.3x]". The p-values shown are the adjusted ones that decided.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..stats.intervals import Interval
from ..stats.overall import Overall, overall
from ..stats.paired import Comparison, PairComparison
from ..stats.seeds import WorkloadVerdict, by_case, unstable_share, workload_verdicts
from ..stats.summary import UNSTABLE_SPREAD

#: What a reader is told to do when one seed cannot say which differences are real.
MORE_SEEDS = "run with --seeds 5 to tell which differences are real"


def render_answer(cases: Sequence[dict[str, Any]], target: float | None = None) -> str:
    """The answer lines a terminal prints under the table (empty when no case ended ok)."""
    verdicts = workload_verdicts([c for c in cases if c.get("status") == "ok"], target)
    lines = workload_answers(verdicts)
    across = overall(verdicts)
    if across is not None:
        lines += overall_lines(across)
    timing = timing_line(cases)
    if timing:
        lines.append(timing)
    text = "\n".join(f"- {line}" for line in lines)
    if any(len(v.seeds) > 1 for v in verdicts):
        text = SEEDS_LEGEND + "\n" + text
    return text


def timing_line(cases: Sequence[dict[str, Any]]) -> str:
    """What share of the table's rows had unstable epoch times (``unstable`` in their spread), named."""
    unstable, timed = unstable_share(cases)
    if not timed:
        return ""
    text = (
        f"timing: {len(unstable)} of {timed} rows unstable "
        f"(epoch times' interquartile range over {UNSTABLE_SPREAD:.0%} of their median"
    )
    text += ", on most seeds)" if any(len(records) > 1 for records in by_case(cases).values()) else ")"
    if unstable:
        text += f": {', '.join(unstable)}; their throughput is a rough figure (larger data, with longer epochs, steadies it)"
    return text


#: What the cells and sentences of a run over several seeds mean.
SEEDS_LEGEND = (
    "over seeds: time to target = median of epochs to target x the case's median epoch [95% bootstrap interval] "
    "(wall-clock seconds in --csv and the HTML page); reached = seeds that reached it; test RMSE = mean ±half its "
    "95% t-interval; pairs compared on shared seeds (paired test or paired bootstrap, Holm-corrected). Intervals "
    "cover seed and timing variation on this machine, not other hardware."
)


def overall_lines(across: Overall) -> list[str]:
    """Across workloads: interquartile mean of relative speed, who beats whom how often, average ranks."""

    def interval(value: Interval, spec: str = ".2f") -> str:
        if value.estimate is None:
            return value.reason or "n/a"
        bounds = f" [{value.low:{spec}}, {value.high:{spec}}]" if value.low is not None and value.high is not None else ""
        return f"{value.estimate:{spec}}{bounds}"

    where = f"across {len(across.workloads)} workloads"
    lines = [
        f"{where}, relative speed to target (1 = the workload's fastest typical seed; interquartile mean over "
        "workloads and seeds, 95% stratified bootstrap): "
        + ", ".join(f"{s} {interval(across.iqm[s])}" for s in across.strategies)
    ]
    if across.improvement:
        lines.append(
            f"{where}, probability of being faster on a random workload and seed: "
            + "; ".join(f"{a} over {b} {interval(p)}" for a, b, p in across.improvement)
        )
    ranking = across.ranking
    if ranking.strategies and ranking.p is not None:
        ranks = ", ".join(f"{s} {r:.2f}" for s, r in zip(ranking.strategies, ranking.average_ranks, strict=True))
        verdict = "the ranks differ" if ranking.significant else "the ranks do not differ significantly"
        text = f"{where}, average rank (Friedman {_fmt_p(ranking.p)}: {verdict}): {ranks}"
        if ranking.significant and ranking.critical_difference is not None:
            text += f"; within the critical difference {ranking.critical_difference:.2f}: "
            text += "; ".join(" ~ ".join(group) for group in ranking.cliques) or "none"
        lines.append(text)
    if across.left_out:
        lines.append(f"{where}: left out (not measured on every workload): {', '.join(across.left_out)}")
    return lines


@dataclass(frozen=True)
class Answer:
    """One answer of a run: a workload, the question ("time to 0.575", "held-out RMSE", "throughput")
    and the sentence; the terminal prints it as a line, the HTML page as a list item."""

    workload: str
    seeds: int
    question: str
    sentence: str

    @property
    def where(self) -> str:
        return f"{self.workload} ({self.seeds} seeds)" if self.seeds > 1 else self.workload


def answers_of(verdicts: Sequence[WorkloadVerdict]) -> list[Answer]:
    """Per workload: which strategies reach the target fastest (tied groups and ratios with their
    intervals; where there is no target, which is fastest), which reach the lowest held-out RMSE, and
    how that compares with the baselines; a quality that a constant beats is never called the best."""
    found = []
    for verdict in verdicts:
        seeds = len(verdict.seeds)
        if verdict.time is not None and verdict.target is not None:
            found.append(Answer(verdict.workload, seeds, f"time to {verdict.target:.4g}", time_sentence(verdict)))
        else:
            fastest = max(verdict.cases, key=lambda f: f.updates_per_s.estimate or 0.0)
            rate = fastest.updates_per_s.estimate
            if rate:
                found.append(
                    Answer(verdict.workload, seeds, "throughput", f"fastest {fastest.strategy} at {rate:,.0f} updates/s")
                )
        quality = quality_sentence(verdict)
        if quality:
            found.append(Answer(verdict.workload, seeds, "held-out RMSE", quality))
    return found


def workload_answers(verdicts: Sequence[WorkloadVerdict]) -> list[str]:
    """The answers as the lines a terminal prints."""
    return [f"{answer.where}, {answer.question}: {answer.sentence}" for answer in answers_of(verdicts)]


def time_sentence(verdict: WorkloadVerdict) -> str:
    """Who reaches the target first. Over seeds: tied groups and ratios with their intervals, and where a
    strategy did not reach the target on most seeds, how often each did instead of an infinite ratio."""
    comparison = verdict.time
    assert comparison is not None
    if comparison.n_seeds < 2:
        return one_seed_time(comparison)
    reached = {f.strategy: f.success for f in verdict.cases if f.success is not None}

    def share(name: str) -> str:
        found = reached.get(name)
        return f"{found.reached}/{found.total}" if found else "?"

    lead = comparison.groups[0]
    rest = [s for s in comparison.order if s not in lead]
    if not any(math.isfinite(comparison.median(s)) for s in lead):
        return f"no strategy reached it on most seeds (reached on {', '.join(f'{s} {share(s)}' for s in comparison.order)})"
    unreached = [s for s in rest if math.isinf(comparison.median(s))]
    if not unreached or rest[0] not in unreached:
        text = answer_sentence(comparison, unit="s")
    elif len(lead) == 1:
        pc = comparison.pair(lead[0], rest[0])
        p = _fmt_p(pc.p_adjusted if pc else None)
        text = f"{lead[0]} is faster than {rest[0]} ({p}), which did not reach it on most seeds"
    else:
        text = f"{_join(lead)} tie ({_tie_p(comparison, lead)}); {rest[0]} did not reach it on most seeds"
    if len(comparison.groups) > 2:
        text += f"; {groups_text(comparison)}"
    if len({share(s) for s in comparison.order}) > 1:
        text += f"; reached on {', '.join(f'{s} {share(s)}' for s in comparison.order)} seeds"
    return text


def groups_text(comparison: Comparison) -> str:
    """Every tied group, best first: ``groups, best first: numba | hogwild, vectorized, als | surprise-svd``."""
    return "groups, best first: " + " | ".join(", ".join(group) for group in comparison.groups)


def one_seed_time(comparison: Comparison) -> str:
    reached = [s for s in comparison.order if math.isfinite(comparison.median(s))]
    if not reached:
        return f"no strategy reached it; one seed, so no uncertainty estimate ({MORE_SEEDS})"
    first = reached[0]
    text = f"{first} reached it first ({_fmt_value(comparison.median(first), 's', 'time')})"
    if len(reached) > 1:
        text += f", next {reached[1]} at {comparison.median(reached[1]) / comparison.median(first):.2f}x as long"
    missed = len(comparison.order) - len(reached)
    if missed:
        text += f"; {missed} of {len(comparison.order)} did not reach it"
    return text + f"; one seed, so no uncertainty estimate ({MORE_SEEDS})"


def quality_sentence(verdict: WorkloadVerdict) -> str:
    """Who reaches the lowest held-out RMSE, against the baselines of the data."""
    comparison = verdict.quality
    mean = verdict.baselines.get("global_mean")
    constant = f"{mean.estimate:.4f}" if mean is not None and mean.estimate is not None else None
    if comparison is None or not comparison.order:
        return ""
    if constant is not None and set(comparison.order) <= set(verdict.worse_than_mean):
        return (
            f"no strategy beats predicting the global mean ({constant}): none learned more than a constant knows, "
            "so none is the best"
        )
    if comparison.n_seeds >= 2:
        text = answer_sentence(comparison, unit="", metric=None)
        if len(comparison.groups) > 2:
            text += f"; {groups_text(comparison)}"
    else:
        best = comparison.order[0]
        text = f"lowest {best} ({comparison.median(best):.4f}); one seed, so no uncertainty estimate ({MORE_SEEDS})"
    if constant is not None:
        biases = verdict.baselines.get("biases")
        text += f"; baselines: global mean {constant}"
        if biases is not None and biases.estimate is not None:
            text += f", biases {biases.estimate:.4f}"
        worse = [s for s in comparison.order if s in verdict.worse_than_mean]
        if worse:
            text += f"; not better than the global mean: {', '.join(worse)}"
        if biases is not None and biases.estimate is not None:
            above = [s for s in comparison.order if s not in worse and comparison.median(s) >= biases.estimate]
            if above:
                text += f"; not better than the biases: {', '.join(above)}"
    return text


def answer_sentence(comparison: Comparison, unit: str = "s", metric: str | None = None) -> str:
    """The one line a reader wants: who wins, by how much, and whether it is distinguishable from seed noise.

    ``unit`` is used only where raw values are printed (one seed, one strategy); ``metric`` (e.g.
    "held-out RMSE") is inserted as "tie on <metric>".  p-values shown are the adjusted ones that decided.
    """
    c = comparison
    if not c.order:
        return "No strategies to compare"
    if c.n_seeds < 2:
        listed = ", ".join(f"{s} {_fmt_value(c.median(s), unit, c.kind)}" for s in c.order)
        return f"One seed only ({listed}): there is no uncertainty estimate from one seed; run with --seeds 5 to get one"
    if len(c.order) == 1:
        return f"Only {c.order[0]} was measured: median {_fmt_value(c.medians[0], unit, c.kind)}"
    lead_group = c.groups[0]
    rest = [s for s in c.order if s not in lead_group]
    on = f" on {metric}" if metric else ""
    if len(lead_group) == 1:
        pc = c.pair(lead_group[0], rest[0])
        assert pc is not None
        return (
            f"{lead_group[0]} is {_better_word(c)} than {rest[0]}{on} by {_fmt_effect(c, pc, lead_group[0])} "
            f"({_fmt_p(pc.p_adjusted)})"
        )
    text = f"{_join(lead_group)} tie{on} ({_tie_p(c, lead_group)})"
    if rest:
        text += "; " + _beats_clause(c, lead_group, rest[0])
    return text


def _beats_clause(c: Comparison, group: tuple[str, ...], other: str) -> str:
    """'both/all' only when every group member is itself significantly better than ``other``."""
    all_sig = all((pc := c.pair(m, other)) is not None and pc.significant for m in group)
    who = ("both" if len(group) == 2 else "all") if all_sig else group[0]
    pc = c.pair(group[0], other)
    assert pc is not None
    return f"{who} {_better_word(c)} than {other} by {_fmt_effect(c, pc, group[0])}"


def _tie_p(c: Comparison, group: tuple[str, ...]) -> str:
    ps = [pc.p_adjusted for m in group[1:] if (pc := c.pair(group[0], m)) is not None]
    known = [p for p in ps if p is not None]
    if not known:
        return "no test possible"
    if len(group) == 2:
        return _fmt_p(known[0])
    return _fmt_p(min(known)).replace("p = ", "p >= ")


def _better_word(c: Comparison) -> str:
    if c.kind == "time":
        return "faster" if c.lower_is_better else "higher"
    return "lower" if c.lower_is_better else "higher"


def _fmt_effect(c: Comparison, pc: PairComparison, winner: str) -> str:
    """Effects are printed as a positive 'by how much the winner is better' with its interval."""
    if pc.effect is None:
        return "an undefined amount"
    flip = pc.a != winner
    if c.kind == "time":

        def factor(r: float) -> float:
            r = 1 / r if flip else r
            return _safe_inv(r) if c.lower_is_better else r

        lo, hi = (None, None) if pc.low is None or pc.high is None else sorted((factor(pc.low), factor(pc.high)))
        return _fmt_with_ci(factor(pc.effect), lo, hi, _fmt_ratio)
    s = (-1.0 if c.lower_is_better else 1.0) * (-1.0 if flip else 1.0)
    lo, hi = (None, None) if pc.low is None or pc.high is None else sorted((s * pc.low, s * pc.high))
    return _fmt_with_ci(s * pc.effect, lo, hi, _fmt_num)


def _safe_inv(r: float) -> float:
    return math.inf if r == 0 else 1 / r


def _fmt_with_ci(x: float, lo: float | None, hi: float | None, fmt: Callable[[float], str]) -> str:
    if lo is None or hi is None:
        return f"{fmt(x)} (no interval)"
    return f"{fmt(x)} [{fmt(lo)}, {fmt(hi)}]"


def _fmt_ratio(r: float) -> str:
    if math.isinf(r):
        return "∞×"
    return f"{r:.1f}×" if r < 10 else f"{r:.0f}×"


def _fmt_num(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 1 else f"{x:.3g}"


def _fmt_value(x: float, unit: str, kind: str) -> str:
    if math.isinf(x) and kind == "time":
        return "never reached"
    return f"{x:.3g} {unit}".rstrip()


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "no test possible"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
