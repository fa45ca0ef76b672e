"""Executing ``mfbench run``: suite + command-line overrides -> cases -> results file.

What the layers above add to a run is handed in by the command that starts it: the progress
display (``mfbench.report.progress``) as a ``DisplayFactory`` and tuned parameters
(``mfbench.tuning.studies``) as ``TunedParameters``, so running a suite needs neither.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pluggy

from .._version import __version__
from ..errors import ResultsWriteError
from ..plugin.registry import Registry
from ..results.files import ResultsFile
from ..results.revision import source_revision
from ..stats.performance_profile import performance_profile
from ..stats.summary import set_scaling_efficiencies
from ..stats.targets import apply_targets, derive_targets
from .devices import DEFAULT_DEVICES
from .executors import DEFAULT_EXECUTOR, INPROCESS, Job, call_observers, distributed, make_executor
from .plan import AUTO_TARGET, Case, RunConfig, plan, seed_runs
from .resume import kept_cases
from .suite import ALL, Suite


class Display(Protocol):
    """What a run shows while it runs (``mfbench.report.progress.Progress`` is the one ``mfbench run`` uses)."""

    def say(self, text: str) -> None: ...
    def epoch(self, case_id: str, repeat: int, epoch: int, entry: dict[str, Any]) -> None: ...
    def case(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


#: Makes the display once the cases are planned: (cases to run, the run's settings, quiet).
DisplayFactory = Callable[[int, RunConfig, bool], Display]


class Silent:
    """A display that shows nothing: runs started from code, and torchrun ranks other than 0."""

    def say(self, text: str) -> None:
        pass

    def epoch(self, case_id: str, repeat: int, epoch: int, entry: dict[str, Any]) -> None:
        pass

    def case(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def silent(total: int, config: RunConfig, quiet: bool) -> Display:
    return Silent()


@dataclass(frozen=True)
class TunedParameters:
    """Where a race's tuned parameters come from (``mfbench.tuning.studies`` makes these).

    ``apply`` turns the planned cases into tuned ones and returns them with each tuned case's
    tuning facts (by case id) and notes to show; ``storage`` is what the results file records.
    """

    storage: str
    apply: Callable[[list[Case]], tuple[list[Case], dict[str, dict[str, Any]], list[str]]]


@dataclass
class Overrides:
    """What the command line said; None means "not given": the suite or the default decides."""

    datasets: Sequence[str] | None = None
    models: Sequence[str] | None = None
    strategies: Sequence[str] | None = None
    devices: Sequence[str] | None = None
    settings: Mapping[str, Any] | None = None


def config_for(suite: Suite, overrides: Overrides) -> RunConfig:
    values = {**suite.settings, **{k: v for k, v in (overrides.settings or {}).items() if v is not None}}
    return RunConfig(**values)


FALLBACK = {"datasets": ["sprand"], "models": ["dot"], "strategies": [ALL]}


def setting_sources(suite: Suite, overrides: Overrides) -> dict[str, str]:
    """Where each run setting's value came from: ``command line``, ``suite NAME`` or ``default``."""
    given = {k for k, v in (overrides.settings or {}).items() if v is not None}
    return {
        name: "command line" if name in given else f"suite {suite.name!r}" if name in suite.settings else "default"
        for name in RunConfig.__dataclass_fields__
    }


def settings_line(config: RunConfig, sources: Mapping[str, str]) -> str:
    """The settings that did not come from the defaults, with where each came from (said before a run)."""
    by_source: dict[str, list[str]] = {}
    for name, source in sources.items():
        if source != "default":
            by_source.setdefault(source, []).append(f"{name}={getattr(config, name)}")
    parts = [f"{', '.join(values)} ({source})" for source, values in by_source.items()]
    return "settings: " + ("; ".join(parts) + "; the rest default" if parts else "every one default") + " (mfbench run --help)"


def effective_groups(suite: Suite, overrides: Overrides) -> list[dict[str, Any]]:
    """The suite's groups, or one group when the command line selects parts (see mfbench.run.suite)."""
    given = {"datasets": overrides.datasets, "models": overrides.models, "strategies": overrides.strategies}
    if any(given.values()):
        group = {key: list(value or suite.base.get(key) or FALLBACK[key]) for key, value in given.items()}
        if "devices" in suite.base:
            group["devices"] = suite.base["devices"]
        return [group]
    return suite.groups


def plan_suite(
    registry: Registry, suite: Suite, overrides: Overrides, config: RunConfig
) -> tuple[list[Case], list[dict[str, Any]]]:
    """Cases of every group, in order; a case in two groups runs once."""
    cases: list[Case] = []
    seen: set[str] = set()
    groups = []
    for group in effective_groups(suite, overrides):
        chosen = {
            "datasets": list(group["datasets"]),
            "models": list(group["models"]),
            "strategies": list(group["strategies"]),
            "devices": list(overrides.devices or group.get("devices") or DEFAULT_DEVICES),
        }
        if chosen["strategies"] == [ALL]:
            chosen["strategies"] = sorted(registry.strategies)
        given = overrides.settings or {}
        target = given["target_rmse"] if given.get("target_rmse") is not None else group.get("target_rmse")
        if target is not None:
            chosen["target_rmse"] = target
        seeds = None if given.get("seeds") is not None or "seeds" not in group else config.seed_list(group["seeds"])
        if seeds is not None:
            chosen["seeds"] = seeds
        groups.append(chosen)
        parts = (chosen["datasets"], chosen["models"], chosen["strategies"], chosen["devices"])
        for case in plan(registry, *parts, config, target, seeds):
            if case.id not in seen:
                seen.add(case.id)
                cases.append(case)
    return cases, groups


def execute(
    pm: pluggy.PluginManager,
    registry: Registry,
    suite: Suite,
    overrides: Overrides,
    output: Path,
    *,
    calibration: bool = True,
    quiet: bool = False,
    executor: str = DEFAULT_EXECUTOR,
    executor_options: Mapping[str, Any] | None = None,
    tuned: TunedParameters | None = None,
    previous: Mapping[str, Any] | None = None,
    display: DisplayFactory = silent,
) -> tuple[ResultsFile | None, KeyboardInterrupt | None]:
    """Run everything through ``executor``; returns the results file and the interruption that stopped it, if any.

    Whichever executor runs the cases, each finished case is handled here, as it comes
    back: added to the results file (rewritten atomically), passed to the
    ``mfbench_case_finished`` hook, and shown by the progress display. ``previous`` is
    the document of an earlier run to resume (see mfbench.run.resume). The results file is
    None when the run was interrupted before it began (during the calibration, say).
    """
    config = config_for(suite, overrides)
    sources = setting_sources(suite, overrides)
    cases, groups = plan_suite(registry, suite, overrides, config)
    primary = distributed.is_primary()
    if distributed.launched_by_torchrun():
        cases = torchrun_cases(cases, say=print if primary and not quiet else None)
        quiet = quiet or not primary
    if distributed.launched_by_torchrun() and executor == DEFAULT_EXECUTOR:
        executor = INPROCESS  # each rank is a process torchrun started and watches: its cases join its group
    engine = make_executor(pm, executor, executor_options)  # a bad name or option fails before anything runs
    tuning: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if tuned is not None:
        cases, tuning, notes = tuned.apply(cases)
        cases, trained = tuned_epochs(cases, tuning, config)
        if trained:
            notes.append(
                f"{trained} tuned case(s) train the epochs their study's best trial needed to its best validation "
                "score (warm-up included), not --epochs: a fixed budget that suits one strategy would punish another"
            )
    auto_ids = {c.id for c in cases if (c.target_rmse if c.target_rmse is not None else config.target_rmse) == AUTO_TARGET}
    runs = seed_runs(cases, config.seed_list())
    kept = kept_cases(dict(previous), output, runs, config) if previous is not None else {}
    to_run = [run for run in runs if run.key not in kept]
    progress = display(len(to_run), config, quiet)
    for note in [*notes, *budget_notes(registry, suite, config, len(runs)), *grid_notes(len(to_run), executor)]:
        progress.say(f"mfbench: {note}")
    job = Job(pm, to_run, config, calibration=calibration, say=progress.say)
    selected = any((overrides.datasets, overrides.models, overrides.strategies))
    try:
        try:
            machine = engine.start(job)
        except KeyboardInterrupt as stop:
            progress.close()
            return None, stop
        header = {
            "mfbench_version": __version__,
            "source_revision": source_revision(),
            "command": ["mfbench", *sys.argv[1:]],
            # selection: -d/-m/-s chose what ran, so the suite gave its settings only, not its groups.
            "suite": {"name": suite.name, "path": suite.path, "description": suite.description, "selection": selected},
            "machine": machine,
            "executor": engine.describe(),
            "plugins": sorted({e.origin for e in registry}),
            "selections": groups,
            "config": {k: getattr(config, k) for k in RunConfig.__dataclass_fields__},
            "config_sources": sources,
            "tuning": {"storage": tuned.storage} if tuned is not None else None,
            "warnings": job.warnings,
        }
        if previous is not None:
            header["resumed"] = {"from_created": previous.get("created"), "kept": len(kept)}
        # Under torchrun, rank 0 writes. Kept cases go into the first write, so no moment loses them.
        results = ResultsFile(
            output if primary else None,
            header,
            derive=set_scaling_efficiencies,
            cases=[kept[run.key] for run in runs if run.key in kept],
        )
        resumed = f" ({len(kept)} kept from the earlier run)" if previous is not None else ""
        runs_text = f"{len(to_run)} case(s) to run"
        if len(runs) > len(cases):
            runs_text = f"{len(to_run)} runs ({len(cases)} cases, each once per seed) to run"
        what = f"your selection with the settings of suite {suite.name!r}" if selected else f"suite {suite.name!r}"
        progress.say(f"mfbench: {what}, {runs_text}{resumed}; results go to {output} as each finishes")
        progress.say(f"mfbench: {settings_line(config, sources)}")

        def on_case(record: dict[str, Any]) -> None:
            if record["id"] in tuning:
                record["tuning"] = tuning[record["id"]]
                base = record["tuning"].get("base_model_label")
                if base and base != record["model"].get("label"):
                    # A study that tuned the model (model.n_factors...) changed its label; the workload
                    # the strategies race on is still the model as selected, so the label stays that.
                    record["model"]["tuned_label"] = record["model"]["label"]
                    record["model"]["label"] = base
            results.add(record)
            if primary:
                before = len(job.warnings)
                call_observers(pm, "mfbench_case_finished", job.warnings, case=record)
                if len(job.warnings) > before:
                    job.warnings[before:] = [f"{w} (case {record['id']!r})" for w in job.warnings[before:]]
                    results.save()
            progress.case(record)

        try:
            engine.run(job, on_case, lambda case, r, e, entry: progress.epoch(case.id, r, e, entry))
        except KeyboardInterrupt as stop:
            progress.close()
            results.save()  # the file whole again (its journal emptied): a stopped run's file needs no journal
            return results, stop
        except ResultsWriteError:  # the file cannot be saved: stop, the message says where the cases went
            progress.close()
            raise
        results.document["executor"] = engine.describe()  # what it saw by the end (workers that joined...)
    finally:
        engine.close()
    progress.close()
    distributed.barrier()  # every rank is done before rank 0 calls the file complete
    finish_scores(results.document, auto_ids, config.target_slack)
    results.finish()
    distributed.finish()
    return results, None


def budget_notes(registry: Registry, suite: Suite, config: RunConfig, runs: int) -> list[str]:
    """Said before a run that will take much longer than its suite was sized for (``budget_s``):
    the suite's time, scaled by the runs (cases x seeds), epochs and repeats against the suite's own."""
    if suite.budget_s is None:
        return []
    own = config_for(suite, Overrides())
    own_cases, _ = plan_suite(registry, suite, Overrides(), own)
    own_runs = len(seed_runs(own_cases, own.seed_list()))

    def work(c: RunConfig, count: int) -> int:
        return count * (c.warmup + c.epochs) * c.repeats

    factor = work(config, runs) / work(own, own_runs)
    if factor < 1.5:
        return []
    return [
        f"suite {suite.name!r} is sized for about {suite.budget_s:g} s: {own_runs} runs (cases once per seed) of "
        f"{own.warmup + own.epochs} epochs, {own.repeats} repeat(s); this run asks for {runs} runs of "
        f"{config.warmup + config.epochs} epochs, {config.repeats} repeat(s), about {factor * suite.budget_s / 60:.0f} min"
    ]


def tuned_epochs(cases: list[Case], tuning: Mapping[str, Mapping[str, Any]], config: RunConfig) -> tuple[list[Case], int]:
    """Each tuned case with the epochs its study chose (``chosen_epochs``: trained from the start, so
    the race's warm-up epochs count toward them), and how many cases got one."""
    out, count = [], 0
    for case in cases:
        chosen = (tuning.get(case.id) or {}).get("chosen_epochs")
        if isinstance(chosen, int) and chosen > 0:
            case, count = replace(case, epochs=max(1, chosen - config.warmup)), count + 1
        out.append(case)
    return out, count


#: From this many runs on, a run says how large it is before it starts.
LARGE_GRID = 1000
#: Seconds a case's worker process costs under the process executor before it trains (starting it,
#: importing torch there): 1.27 s per trivial case against 0.21 s in-process, median of 3 runs of 20
#: cases on the project's 2-core machine (benchmarks/case_overhead.py).
PROCESS_CASE_START_S = 1.0


def grid_notes(runs: int, executor: str) -> list[str]:
    """Said before a grid of ``LARGE_GRID`` runs or more: how many, and the least it can take."""
    if runs < LARGE_GRID:
        return []
    text = f"a large grid: {runs:,} runs (cases once per seed)"
    if executor == DEFAULT_EXECUTOR:
        hours = runs * PROCESS_CASE_START_S / 3600
        text += (
            f"; each starts a worker process (about {PROCESS_CASE_START_S:g} s here before it trains), so at least "
            f"{hours:.1f} h before any training time"
        )
    return [text + "; the results file takes each case at the same cost, and the progress estimates the time left"]


def finish_scores(document: dict[str, Any], auto_ids: set[str], slack: float) -> None:
    """Once every case is in: derive the ``auto`` targets, then the performance profile."""
    cases = document["cases"]
    if auto_ids:
        targets = derive_targets([c for c in cases if c["id"] in auto_ids], slack)
        apply_targets(cases, targets, auto_ids)
        document["targets"] = targets
    if any("target_rmse" in (c.get("summary") or {}) for c in cases):
        profile = performance_profile(cases)
        if profile["strategies"]:  # some strategy reached some target: there is something to score
            document["profile"] = profile


def torchrun_cases(cases: list[Case], say: Any = None) -> list[Case]:
    """Under torchrun every rank runs the same cases in step; only distributed strategies take part.

    A single-process strategy would run once per rank, side by side on the same cores, and
    every rank would time the others' interference: those cases are left out, and said so.
    """
    kept = [c for c in cases if issubclass(c.strategy.entry.cls, distributed.RankStrategy)]
    if say is not None and len(kept) < len(cases):
        left = sorted({c.strategy.name for c in cases} - {c.strategy.name for c in kept})
        say(f"mfbench: under torchrun only distributed strategies run; left out: {', '.join(left)}")
    return kept
