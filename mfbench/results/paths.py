"""Where run results go, and checking an output path before any work is done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import MfbenchError


def default_results_dir() -> Path:
    """Where ``mfbench run`` writes results when ``--output`` is not given."""
    return Path(".mfbench") / "runs"


def check_writable(path: Path, what: str = "output file", suffix: str = ".json") -> Path:
    """Refuse, before any work, an output path that is a folder or cannot be created.

    Creates the missing parent folders (the run would, later) so the check is the real one.
    """
    path = Path(path)
    if path.is_dir():
        raise MfbenchError(f"{what} {path} is a folder: give a file path, e.g. {path / ('results' + (path.suffix or suffix))}")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfbenchError(f"cannot create the folder of {what} {path}: {exc.strerror or exc}; choose another path") from None
    if not parent.is_dir():
        raise MfbenchError(f"{what} {path}: {parent} is not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MfbenchError(f"{what} {path} cannot be written (permission denied); choose another path")
    # Permission bits do not tell everything (root passes them; /proc, a read-only mount or a full
    # disk refuse anyway): files are written as a temporary file in the folder, then renamed, so
    # making one there is the real test.
    try:
        descriptor, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise MfbenchError(f"{what} {path} cannot be written ({exc.strerror or exc}); choose another path") from None
    os.close(descriptor)
    os.unlink(probe)
    return path
