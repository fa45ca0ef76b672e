"""Two results files side by side: what got faster, slower, better or worse.

Cases are matched by identity: dataset (name + params), model (name + params),
strategy (name + params) and device. A case present in one file only is listed,
not an error. A matched case whose data fingerprints differ is refused: the same
name and parameters gave different ratings (a changed data file, another seed or
test fraction), so no figure of the two runs can be compared.

Significance, throughput. Each case's counted epochs give epoch seconds,
grouped by repeat. The speed ratio NEW/BASE (updates/s) is the ratio of the
median epoch seconds, and its 95% confidence interval comes from a two-level
bootstrap (repeats, then epochs within them: :func:`mfbench.stats.verdict.bootstrap_ratio`),
widened by the machine's drift that the calibration workload saw -- before the
run and after every case, in both files (:func:`mfbench.stats.verdict.drift_factor`).
The interval decides the verdict (:func:`mfbench.stats.verdict.decide`): ``slower``,
``faster``, ``no change`` (the interval within +-margin) or ``too noisy to
tell``. Why: on a shared machine two separate runs meet different loads; a rule
that reads only the spread within each run (as the interquartile-overlap rule
used before did) calls that difference a change. A case with one counted epoch
has no spread: too noisy to tell. Interleaved A/B measurement (``mfbench ab``)
is the way to resolve small changes on such a machine.

Significance, quality. The final held-out RMSE (median over repeats of each
repeat's last epoch) changes significantly when the difference exceeds the
larger of ``RMSE_TOLERANCE`` (1 %) of the base value and the spread across
repeats (max - min) of either file. Repeats start from the same seed, so for a
deterministic strategy that spread is zero and the 1 % floor decides.

Seeds. Files run with several seeds hold one record per case and seed. A case is compared
on the seeds both files ran it with (the paired seeds; the others are named in its notes; with
no seed in common, only where the first records' data are the same, else it is refused):
its epochs over those seeds feed the speed bootstrap (a seed's repeat is one group), its
time-to-target is the median over them, and with two or more paired seeds the quality
verdict needs a paired test of the per-seed final RMSE (:func:`mfbench.stats.paired.paired_test`,
p < 0.05) as well as the 1 % floor. Files with no seed in common are compared unpaired.

Fail threshold ``PCT``: ``Comparison.exit_code`` is 1 when a case is
``slower`` by more than PCT percent of the base's updates/s, when the held-out
RMSE is significantly worse by more than PCT percent, when a case that ended
ok in the base ended in error, diverged or timed out in the new file (it has no
figures left to compare, which is the largest regression of all), or -- unless
``allow_missing`` -- when a case of the base is missing from the new file (or
was skipped there, or the new file is from a run that did not finish): a gate
must not pass because the cases it guards stopped running. Otherwise it is 3
(:data:`EXIT_NOISY`) when some case is too noisy to rule out a slowdown beyond
PCT, and 0. Cases only in the new file never trip it. The verdict's margin is
PCT, unless ``margin`` is given (default without a threshold:
:data:`mfbench.stats.verdict.DEFAULT_MARGIN`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import MfbenchError
from ..results.revision import describe as describe_revision
from ..results.statuses import FAILED_STATUSES
from ..run.selection import format_selection
from ..stats.paired import paired_test
from ..stats.seeds import record_seed
from ..stats.summary import (
    UNSTABLE_SPREAD,
    FinalRmse,
    Throughput,
    as_number as _number,
    case_throughput,
    case_time_to_target,
    epoch_seconds,
    final_test_rmse,
)
from ..stats.verdict import (
    DEFAULT_MARGIN,
    NOISY,
    SLOWER,
    Interval,
    advice,
    bootstrap_ratio,
    calibration_scores,
    could_be_slower_than,
    decide,
    drift_factor,
    widen,
)

#: Relative change of held-out RMSE below which quality counts as unchanged.
RMSE_TOLERANCE = 0.01
#: Exit status when nothing tripped the threshold but some case is too noisy to rule it out.
EXIT_NOISY = 3

CaseKey = tuple


def _canonical(value: Any) -> tuple:
    """A parameter value in a form where 1 and 1.0 match but True and 1 do not."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if value is None:
        return ("none",)
    if isinstance(value, str):
        return ("str", value)
    return ("json", json.dumps(value, sort_keys=True))


def _part_key(part: dict[str, Any]) -> tuple:
    params = part.get("params") or {}
    return (part["name"], tuple(sorted((k, _canonical(v)) for k, v in params.items())))


def case_key(case: dict[str, Any]) -> CaseKey:
    """The identity two files' cases are matched by."""
    return (_part_key(case["dataset"]), _part_key(case["model"]), _part_key(case["strategy"]), str(case["device"]))


def calibration_factor(case: dict[str, Any], side: str) -> float:
    """The machine score the runner divided this case's updates/s by (recovered from its summary)."""
    summary = case.get("summary") or {}
    relative, absolute = summary.get("relative_updates_per_s"), summary.get("median_updates_per_s")
    if relative is None or absolute is None or not _number(relative) > 0:
        raise MfbenchError(
            f"cannot normalize case {case.get('id', '?')!r}: the {side} file has no relative_updates_per_s for it "
            "(run with --no-calibration, or by an mfbench without it). Compare raw updates/s, without normalizing."
        )
    return _number(absolute) / _number(relative)


def epoch_groups(case: dict[str, Any]) -> list[list[float]]:
    """Counted epoch seconds of a case, one list per repeat (what the bootstrap resamples)."""
    groups = []
    for repeat in case.get("repeats", []):
        seconds = [epoch_seconds(e) for e in repeat.get("epochs", []) if not e.get("warmup")]
        seconds = [t for t in seconds if t > 0 and math.isfinite(t)]
        if seconds:
            groups.append(seconds)
    return groups


def speed_interval(base: dict[str, Any], new: dict[str, Any], scale: float = 1.0, drift: float = 1.0) -> Interval:
    """NEW/BASE updates/s with its 95% interval, times ``scale`` (normalization), widened by ``drift``."""
    interval = bootstrap_ratio(epoch_groups(base), epoch_groups(new))
    if scale != 1.0:
        interval = Interval(interval.estimate * scale, interval.low * scale, interval.high * scale, interval.method)
    return widen(interval, drift)


def quality_verdict(base: FinalRmse, new: FinalRmse, pairs: tuple[list[float], list[float]] | None = None) -> str:
    """ "better"/"worse" when the RMSE moved by more than 1 % of the base and more than either file's spread,
    and, given per-seed values on paired seeds, when a paired test says it is not seed noise (p < 0.05)."""
    if not (math.isfinite(base.median) and math.isfinite(new.median)):
        if math.isfinite(base.median) != math.isfinite(new.median):
            return "better" if math.isfinite(new.median) else "worse"
        return "~"
    tolerance = RMSE_TOLERANCE * abs(base.median)
    if pairs is None:
        tolerance = max(tolerance, base.high - base.low, new.high - new.low)
    else:
        test = paired_test(*pairs)
        if test.p is None or test.p >= 0.05:
            return "~"
    difference = new.median - base.median
    if difference > tolerance:
        return "worse"
    if difference < -tolerance:
        return "better"
    return "~"


def _ratio(new: float | None, base: float | None) -> float | None:
    if new is None or base is None or not base > 0 or math.isnan(new):
        return None
    return new / base


@dataclass
class Row:
    """One case of either file; figures are None where a side is missing or did not end ok."""

    key: CaseKey
    dataset: str
    model: str
    strategy: str
    device: str
    base: dict[str, Any] | None
    new: dict[str, Any] | None
    speed_base: Throughput | None = None
    speed_new: Throughput | None = None
    speed_ratio: float | None = None
    speed_interval: Interval | None = None
    speed: str = ""
    ttt_base: float | None = None
    ttt_new: float | None = None
    ttt_ratio: float | None = None
    rmse_base: FinalRmse | None = None
    rmse_new: FinalRmse | None = None
    rmse_ratio: float | None = None
    quality: str = ""
    #: Per-seed final test RMSE of base and new on their paired seeds (two or more), for the paired test.
    rmse_pairs: tuple[list[float], list[float]] | None = None
    notes: list[str] = field(default_factory=list)
    trips: list[str] = field(default_factory=list)
    #: Too noisy to rule out a slowdown beyond the fail threshold.
    undecided: bool = False

    @property
    def where(self) -> str:
        if self.base is None:
            return "only in new"
        if self.new is None:
            return "only in base"
        return "both"

    @property
    def id(self) -> str:
        return " / ".join((self.dataset, self.model, self.strategy, self.device))

    @property
    def status(self) -> str:
        base = self.base["status"] if self.base else "-"
        new = self.new["status"] if self.new else "-"
        return base if base == new else f"{base} -> {new}"


#: ``Comparison.target_source`` where both runs derived their targets (``--target-rmse auto``).
PER_CASE = "the target each case derived (--target-rmse auto), where base and new agree"


@dataclass
class Comparison:
    rows: list[Row]
    target: float | None
    target_source: str
    normalize: bool
    fail_threshold: float | None
    notes: list[str] = field(default_factory=list)
    margin: float = DEFAULT_MARGIN
    drift: float = 1.0
    allow_missing: bool = False
    #: Why the comparison as a whole fails (the new run did not finish...), besides its rows.
    trips: list[str] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Whether the rows carry time-to-target: one target for all, or each pair's derived one."""
        return self.target is not None or self.target_source == PER_CASE

    @property
    def tripped(self) -> list[Row]:
        """Rows that exceeded the fail threshold (empty without one)."""
        return [row for row in self.rows if row.trips]

    @property
    def undecided(self) -> list[Row]:
        """Rows too noisy to rule out a slowdown beyond the fail threshold (empty without one)."""
        return [row for row in self.rows if row.undecided]

    @property
    def exit_code(self) -> int:
        """0 when fine; with a fail threshold, 1 when something tripped it, else 3 when some row is too noisy."""
        if self.fail_threshold is None:
            return 0
        if self.tripped or self.trips:
            return 1
        return EXIT_NOISY if self.undecided else 0

    def count_speed(self, verdict: str) -> int:
        return sum(1 for row in self.rows if row.speed == verdict)

    def count(self, where: str) -> int:
        return sum(1 for row in self.rows if row.where == where)


def _index(document: dict[str, Any], side: str) -> dict[CaseKey, dict[Any, dict[str, Any]]]:
    """Each case's records by seed (a file from before seeds were an axis: one record, seed None)."""
    cases: dict[CaseKey, dict[Any, dict[str, Any]]] = {}
    for case in document.get("cases", []):
        key, seed = case_key(case), record_seed(case)
        if seed in cases.get(key, {}):
            raise MfbenchError(
                f"the {side} file holds case {case.get('id', '?')!r} twice"
                + (f" for seed {seed}" if seed is not None else "")
                + "; compare needs each case once per seed (split the file, or re-run it)"
            )
        cases.setdefault(key, {})[seed] = case
    return cases


def merged(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record standing for a case over several seeds: every seed's repeats, the worst status."""
    if len(records) == 1:
        return records[0]
    statuses = [r.get("status") for r in records]
    status = next((s for s in ("error", "timeout", "diverged", "skipped") if s in statuses), "ok")
    reasons = dict.fromkeys(r.get("reason") or "" for r in records)
    return {
        **records[0],
        "status": status,
        "reason": "; ".join(r for r in reasons if r),
        "repeats": [repeat for r in records for repeat in r.get("repeats", [])],
    }


def paired_records(
    base: dict[Any, dict[str, Any]], new: dict[Any, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The records of the seeds both files ran (all of them where the files share none), and notes on the rest."""
    shared = [seed for seed in base if seed in new]
    if not shared:  # one seed each, but not the same one: the same data only if the fingerprints say so
        _check_same_data(next(iter(base.values())), next(iter(new.values())))
        return list(base.values()), list(new.values()), ["no seed in common: compared unpaired"]
    notes = []
    for side, seeds in (("base", base), ("new", new)):
        extra = [seed for seed in seeds if seed not in shared]
        if extra:
            notes.append(f"seeds only in {side}: {', '.join(map(str, extra))}")
    if len(shared) > 1:
        notes.insert(0, f"{len(shared)} paired seeds")
    return [base[seed] for seed in shared], [new[seed] for seed in shared], notes


def seed_finals(records: list[dict[str, Any]]) -> list[float]:
    return [_number((r.get("summary") or {}).get("final_test_rmse")) if r.get("status") == "ok" else math.nan for r in records]


def _check_same_data(base: dict[str, Any], new: dict[str, Any]) -> None:
    old_print, new_print = base["dataset"].get("fingerprint"), new["dataset"].get("fingerprint")
    if old_print is None or new_print is None or old_print == new_print:
        return
    causes = []
    for key, what in (("split_seed", "seed"), ("test_fraction", "test fraction")):
        a, b = base["dataset"].get(key), new["dataset"].get(key)
        if a != b:
            causes.append(f"{what} {a} in base, {b} in new")
    why = "; ".join(causes) if causes else "the data behind the same name and parameters changed"
    raise MfbenchError(
        f"refusing to compare case {base.get('id', '?')!r}: its data differ (fingerprint {old_print} in base, "
        f"{new_print} in new: {why}). Run both sides on the same data."
    )


def _resolve_target(base: dict[str, Any], new: dict[str, Any], target: float | None) -> tuple[float | None, str, list[str]]:
    """The one time-to-target threshold of the comparison; None with :data:`PER_CASE` as its source
    where both runs derived their targets (``--target-rmse auto``): each pair of cases then uses the
    target both its sides derived."""
    if target is not None:
        return float(target), "given", []
    old_target = (base.get("config") or {}).get("target_rmse")
    new_target = (new.get("config") or {}).get("target_rmse")
    if old_target is not None and old_target == new_target:
        if math.isfinite(_number(old_target)):
            return _number(old_target), "config.target_rmse of both files", []
        return None, PER_CASE, []
    if old_target != new_target:
        return (
            None,
            "",
            [
                f"the files have different target RMSEs ({old_target} in base, {new_target} in new): "
                "give a target to compare time-to-target"
            ],
        )
    return None, "", []


def _case_target(case: dict[str, Any]) -> float | None:
    value = _number((case.get("summary") or {}).get("target_rmse"))
    return value if math.isfinite(value) else None


def _pair_target(row: Row) -> float | None:
    """For runs with derived targets: the target both sides of a row derived (None when they differ)."""
    sides = [_case_target(case) for case in (row.base, row.new) if case is not None]
    if not sides or None in sides:
        return None
    if len(set(sides)) > 1:
        row.notes.append(f"the runs derived different targets ({sides[0]:.4g} in base, {sides[1]:.4g} in new): no TTT")
        return None
    return sides[0]


def _machine_note(base: dict[str, Any], new: dict[str, Any], normalize: bool) -> list[str]:
    old_cpu = (base.get("machine") or {}).get("cpu_model")
    new_cpu = (new.get("machine") or {}).get("cpu_model")
    if normalize or old_cpu == new_cpu or old_cpu is None or new_cpu is None:
        return []
    return [
        f"the machines differ ({old_cpu} vs {new_cpu}): raw updates/s compare the hardware too; "
        "normalize to divide by each machine's calibration score"
    ]


def _source_note(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Which mfbench each file came from, where either recorded its source revision (older files did not)."""
    if not (base.get("source_revision") or new.get("source_revision")):
        return []
    sides = [
        f"{name} mfbench {doc.get('mfbench_version', '?')} at {describe_revision(doc.get('source_revision'))}"
        for name, doc in (("base", base), ("new", new))
    ]
    return ["source: " + ", ".join(sides)]


def _fill_side(row: Row, side: str, case: dict[str, Any], target: float | None, normalize: bool) -> None:
    if case["status"] != "ok":
        return
    speed = case_throughput(case)
    if speed is not None and normalize:
        speed = speed.scaled(calibration_factor(case, side))
    setattr(row, f"speed_{side}", speed)
    setattr(row, f"rmse_{side}", final_test_rmse(case))
    if target is not None:
        setattr(row, f"ttt_{side}", case_time_to_target(case, target))
    if speed is not None and speed.relative_iqr > UNSTABLE_SPREAD:
        row.notes.append(f"{side} noisy (IQR {speed.relative_iqr:.0%})")
    if speed is not None and speed.n < 2:
        row.notes.append(f"{side}: one epoch, no spread")


def _compare_row(row: Row, threshold: float | None, margin: float, drift: float, scale: float) -> None:
    base, new = row.base, row.new
    assert base is not None and new is not None
    if base["status"] == "ok" and new["status"] in FAILED_STATUSES and threshold is not None:
        row.trips.append(f"ended {new['status']} (ok in base)")
    if row.speed_base is not None and row.speed_new is not None:
        row.speed_ratio = _ratio(row.speed_new.median, row.speed_base.median)
        row.speed_interval = speed_interval(base, new, scale, drift)
        row.speed = decide(row.speed_interval, margin)
        loss = -row.speed_interval.change_pct() if row.speed_interval.known else 0.0
        if threshold is not None and row.speed == SLOWER and loss > threshold:
            row.trips.append(f"{loss:.1f}% slower > {threshold:g}%")
        elif threshold is not None and row.speed == NOISY and could_be_slower_than(row.speed_interval, threshold):
            row.undecided = True
        if row.speed == NOISY:
            row.notes.append(advice(NOISY))
    row.ttt_ratio = _ratio(row.ttt_new, row.ttt_base)
    if row.rmse_base is not None and row.rmse_new is not None:
        row.rmse_ratio = _ratio(row.rmse_new.median, row.rmse_base.median)
        row.quality = quality_verdict(row.rmse_base, row.rmse_new, row.rmse_pairs)
        worse = (row.rmse_ratio - 1.0) * 100.0 if row.rmse_ratio is not None else math.inf
        if threshold is not None and row.quality == "worse" and worse > threshold:
            row.trips.append(f"RMSE {worse:.1f}% worse > {threshold:g}%")


def _missing_trips(row: Row, threshold: float | None, allow_missing: bool) -> None:
    """A base case that has no figures in the new file fails a gate, unless missing cases are allowed."""
    if threshold is None or allow_missing or row.base is None or row.base["status"] != "ok":
        return
    if row.new is None:
        row.trips.append("missing in new (give --allow-missing to accept)")
    elif row.new["status"] == "skipped":
        row.trips.append("skipped in new, ok in base (give --allow-missing to accept)")


def _scale(base: dict[str, Any], new: dict[str, Any], normalize: bool) -> float:
    """What multiplies a raw NEW/BASE ratio of updates/s into the normalized one."""
    if not normalize:
        return 1.0
    return calibration_factor(base, "base") / calibration_factor(new, "new")


def _new_row(key: CaseKey, case: dict[str, Any], base: dict[str, Any] | None, new: dict[str, Any] | None) -> Row:
    dataset, model, strategy = case["dataset"], case["model"], case["strategy"]
    return Row(
        key=key,
        dataset=dataset.get("label") or format_selection(dataset["name"], dataset.get("params", {})),
        model=model.get("label") or format_selection(model["name"], model.get("params", {})),
        strategy=format_selection(strategy["name"], strategy.get("params", {})),
        device=str(case["device"]),
        base=base,
        new=new,
    )


def compare_documents(
    base: dict[str, Any],
    new: dict[str, Any],
    *,
    target: float | None = None,
    normalize: bool = False,
    fail_threshold: float | None = None,
    margin: float | None = None,
    allow_missing: bool = False,
) -> Comparison:
    """Match the cases of two results documents and compare speed, time-to-target and held-out RMSE.

    :param target: held-out RMSE for time-to-target; by default both files' ``config.target_rmse`` when equal.
    :param normalize: compare updates/s divided by each machine's calibration score (an error where absent).
    :param fail_threshold: percent; see the module docstring for what trips it.
    :param margin: percent: the smallest speed change reported as one (default: the fail
        threshold, else :data:`mfbench.stats.verdict.DEFAULT_MARGIN`).
    :param allow_missing: base cases missing from (or skipped in) the new file do not trip the threshold.
    """
    if fail_threshold is not None and not fail_threshold >= 0:
        raise MfbenchError(f"the fail threshold is a percentage, 0 or more; got {fail_threshold}")
    if margin is not None and not margin >= 0:
        raise MfbenchError(f"the margin is a percentage, 0 or more; got {margin}")
    margin = margin if margin is not None else (fail_threshold if fail_threshold is not None else DEFAULT_MARGIN)
    old_seeds, new_seeds = _index(base, "base"), _index(new, "new")
    old_cases: dict[CaseKey, dict[str, Any]] = {}
    new_cases: dict[CaseKey, dict[str, Any]] = {}
    seed_notes: dict[CaseKey, list[str]] = {}
    pairs: dict[CaseKey, tuple[list[float], list[float]]] = {}
    for key, by_seed in old_seeds.items():
        if key in new_seeds:
            old_records, new_records, seed_notes[key] = paired_records(by_seed, new_seeds[key])
            if [record_seed(r) for r in old_records] == [record_seed(r) for r in new_records]:
                for old_record, new_record in zip(old_records, new_records, strict=True):
                    _check_same_data(old_record, new_record)
                if len(old_records) > 1:
                    pairs[key] = (seed_finals(old_records), seed_finals(new_records))
            old_cases[key], new_cases[key] = merged(old_records), merged(new_records)
        else:
            old_cases[key] = merged(list(by_seed.values()))
    for key, by_seed in new_seeds.items():
        if key not in old_seeds:
            new_cases[key] = merged(list(by_seed.values()))
    target_value, source, notes = _resolve_target(base, new, target)
    notes += _machine_note(base, new, normalize)
    notes += _source_note(base, new)
    base_scores, new_scores = calibration_scores(base), calibration_scores(new)
    drift = drift_factor(base_scores, new_scores, normalized=normalize)
    if not base_scores or not new_scores:
        notes.append("a file has no calibration: the intervals assume the machine's speed did not change between the runs")
    per_case = source == PER_CASE
    rows = []
    for key, case in old_cases.items():
        row = _new_row(key, case, case, new_cases.get(key))
        row.notes.extend(seed_notes.get(key, []))
        row.rmse_pairs = pairs.get(key)
        row_target = _pair_target(row) if per_case else target_value
        _fill_side(row, "base", case, row_target, normalize)
        if row.new is None:
            row.notes.insert(0, "only in base")
        else:
            _fill_side(row, "new", row.new, row_target, normalize)
            scale = _scale(case, row.new, normalize) if row.speed_base is not None and row.speed_new is not None else 1.0
            _compare_row(row, fail_threshold, margin, drift, scale)
        _missing_trips(row, fail_threshold, allow_missing)
        rows.append(row)
    for key, case in new_cases.items():
        if key not in old_cases:
            row = _new_row(key, case, None, case)
            _fill_side(row, "new", case, _pair_target(row) if per_case else target_value, normalize)
            row.notes.insert(0, "only in new")
            rows.append(row)
    comparison = Comparison(rows, target_value, source, normalize, fail_threshold, notes, margin, drift, allow_missing)
    if fail_threshold is not None and not allow_missing and new.get("complete") is False:
        comparison.trips.append("the new file is from a run that did not finish (give --allow-missing to accept)")
    return comparison


# -- rendering ----------------------------------------------------------------
