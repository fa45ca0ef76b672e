"""Which source a run measured: the git commit mfbench runs from, and whether the tree was dirty.

Two results files from the same version string can come from different code (an
editable install on a branch), so every results file records the revision too. It
is a fact about the checkout, never a requirement: without git, outside a checkout
(installed from a wheel), or when git is slow or refuses, it is None.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

#: Seconds git may take; a run never waits longer for this fact.
GIT_TIMEOUT_S = 2.0
PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def source_revision() -> dict[str, Any] | None:
    """``{"commit": SHA, "dirty": bool}`` of the checkout this mfbench is imported from, or None.

    One ``git status`` call (its branch header carries the commit), cached for the process.
    Dirty means tracked files differ from the commit; untracked files are not looked at.
    """
    if any(part in ("site-packages", "dist-packages") for part in PACKAGE_DIR.parts):
        return None  # an installed copy: a checkout around the environment says nothing about it
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    if done.returncode != 0:  # not a checkout (or git refuses it)
        return None
    return parse_status(done.stdout)


def parse_status(text: str) -> dict[str, Any] | None:
    """The revision in ``git status --porcelain=v2 --branch`` output; None before the first commit."""
    lines = text.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":
        return None
    return {"commit": commit, "dirty": any(line and not line.startswith("#") for line in lines)}


def describe(revision: Any) -> str:
    """``1a2b3c4d5e6f`` or ``1a2b3c4d5e6f+dirty``, for headers; ``unknown`` where a file has none."""
    if not isinstance(revision, dict) or not revision.get("commit"):
        return "unknown"
    return str(revision["commit"])[:12] + ("+dirty" if revision.get("dirty") else "")
