"""Executing ``mfbench run``: suite + command-line overrides -> cases -> results file."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pluggy
import torch

from . import __version__
from .calibration import calibrate
from .devices import DEFAULT_DEVICES
from .plan import Case, RunConfig, plan
from .progress import Progress
from .registry import Registry
from .results import ResultsFile
from .runner import Runner
from .suite import ALL, Suite


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


def effective_groups(suite: Suite, overrides: Overrides) -> list[dict[str, list[str]]]:
    """The suite's groups, or one group when the command line selects parts (see mfbench.suite)."""
    given = {"datasets": overrides.datasets, "models": overrides.models, "strategies": overrides.strategies}
    if any(given.values()):
        group = {key: list(value or suite.base.get(key) or FALLBACK[key]) for key, value in given.items()}
        if "devices" in suite.base:
            group["devices"] = suite.base["devices"]
        return [group]
    return suite.groups


def plan_suite(registry: Registry, suite: Suite, overrides: Overrides, config: RunConfig) -> tuple[list[Case], list[dict]]:
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
        groups.append(chosen)
        for case in plan(registry, chosen["datasets"], chosen["models"], chosen["strategies"], chosen["devices"], config):
            if case.id not in seen:
                seen.add(case.id)
                cases.append(case)
    return cases, groups


def machine_info(pm: pluggy.PluginManager) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for part in reversed(pm.hook.mfbench_machine_info()):
        if part:
            info.update(part)
    return info


def execute(
    pm: pluggy.PluginManager,
    registry: Registry,
    suite: Suite,
    overrides: Overrides,
    output: Path,
    *,
    calibration: bool = True,
    quiet: bool = False,
) -> tuple[ResultsFile, bool]:
    """Run everything; returns the results file and whether the run was interrupted."""
    config = config_for(suite, overrides)
    cases, groups = plan_suite(registry, suite, overrides, config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)  # before machine_info, which records the count
    machine = machine_info(pm)
    progress = Progress(len(cases), config.repeats, config.warmup + config.epochs, quiet=quiet)
    if calibration:
        progress.say("mfbench: timing the calibration workload...")
        machine["calibration"] = calibrate()
    header = {
        "mfbench_version": __version__,
        "command": ["mfbench", *sys.argv[1:]],
        "suite": {"name": suite.name, "path": suite.path, "description": suite.description},
        "machine": machine,
        "plugins": sorted({e.origin for e in registry}),
        "selections": groups,
        "config": {k: getattr(config, k) for k in RunConfig.__dataclass_fields__},
    }
    results = ResultsFile(output, header)
    progress.say(f"mfbench: suite {suite.name!r}, {len(cases)} case(s); results go to {output} as each finishes")

    def on_case(record: dict[str, Any]) -> None:
        results.add(record)
        pm.hook.mfbench_case_finished(case=record)
        progress.case(record)

    runner = Runner(config, on_case=on_case, on_epoch=lambda case, r, e, entry: progress.epoch(case.id, r, e, entry))
    if calibration:
        runner.calibration_score = machine["calibration"]["score"]
    try:
        runner.run(cases)
    except KeyboardInterrupt:
        progress.close()
        return results, True
    progress.close()
    results.finish()
    return results, False
