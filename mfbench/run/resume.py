"""``mfbench run -o FILE --resume``: keep what an earlier run of the same command finished.

A results file is never overwritten by accident: without ``--resume`` or ``--force``
an existing file is refused before anything runs. With ``--resume`` the earlier
file is read (and validated like any results file), its configuration must be
this run's, and each of its cases is kept when this run plans the same case (same
identity) on the same data (same fingerprint of the split). Cases that ended in
``error`` run again: the fault may be fixed. Everything else runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MfbenchError
from ..results.files import load_results
from .plan import Case, RunConfig
from .runner import Runner
from .settings import recorded


def previous_run(output: Path, *, resume: bool, force: bool) -> dict[str, Any] | None:
    """The document to resume from (None for a fresh run); refuses to overwrite without --resume or --force."""
    if resume and force:
        raise MfbenchError("--resume and --force contradict each other: --resume keeps the file's cases, --force discards them")
    if not output.exists():
        return None
    if force:
        return None
    if not resume:
        raise MfbenchError(
            f"{output} exists: add --resume to keep its finished cases and run only the rest, "
            f"or --force to overwrite it (or choose another -o)"
        )
    return load_results(output)


def config_differences(previous: dict[str, Any], config: RunConfig) -> list[str]:
    """The settings the earlier run had otherwise (read under today's names; one it did not
    record is taken as its default, which is what that version did)."""
    return [
        f"{name} {value!r} there, {getattr(config, name)!r} here"
        for name, value in recorded(previous.get("config") or {})
        if value != getattr(config, name)
    ]


def kept_cases(
    previous: dict[str, Any], path: Path, cases: list[Case], config: RunConfig
) -> dict[tuple[str, int | None], dict[str, Any]]:
    """The earlier records to keep, by case and seed (``Case.key``); their data are loaded here to compare
    fingerprints. ``cases`` are the runs of this run: each case once per seed."""
    differences = config_differences(previous, config)
    if differences:
        raise MfbenchError(
            f"cannot resume {path}: it was run with another configuration ({'; '.join(differences)}); "
            f"resume with the same options, or --force to overwrite it"
        )
    seed = dict(recorded(previous.get("config") or {}))["seed"]  # a file from before seeds ran each case once
    earlier = {
        (record["id"], record.get("seed", seed)): record
        for record in previous["cases"]
        if record.get("status") != "error" and (record.get("dataset") or {}).get("fingerprint")
    }
    loader = Runner(config)
    kept: dict[tuple[str, int | None], dict[str, Any]] = {}
    for case in cases:
        record = earlier.get(case.key)
        if record is None:
            continue
        try:
            fingerprint = loader.load_data(case).info["fingerprint"]
        except Exception:  # the case will report it when it runs
            continue
        if fingerprint == record["dataset"]["fingerprint"]:
            kept[case.key] = dict(record, resumed=True)
    return kept
