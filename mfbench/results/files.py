"""Results files: one JSON document per run, rewritten atomically after every case.

An interrupted run therefore leaves a valid file holding every case it
finished (``complete`` stays false). The schema is documented in docs/results.md and docs/reference/results-format.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import MfbenchError, ResultsWriteError
from .schema import schema_problem

SCHEMA = "mfbench.results"
SCHEMA_VERSION = 1


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """NaN and infinities are not JSON: store them as strings ("nan", "inf", "-inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def current_umask() -> int:
    """The process's umask (Linux reads it without changing it; elsewhere set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, document: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide results from the user's group
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(_jsonable(document), handle, indent=1, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


#: Seconds before the one retry of a failed write.
RETRY_AFTER_S = 0.5

#: The document is rewritten once its journal holds this many cases, or half as many as it does.
COMPACT_AFTER = 8


def journal_path(path: Path) -> Path:
    """Where the cases not yet in the document ``path`` are appended during a run."""
    return path.with_name(path.name + ".journal")


def journal_cases(path: Path, held: int) -> list[dict[str, Any]]:
    """The cases in ``path``'s journal beyond the ``held`` its document holds, in order. A line cut
    short by a kill mid-write, and anything after it, is left out."""
    journal = journal_path(path)
    try:
        text = journal.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    cases: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            index, case = entry["index"], entry["case"]
        except (ValueError, TypeError, KeyError):
            break
        if not isinstance(index, int) or not isinstance(case, dict):
            break
        if index == held + len(cases):
            cases.append(case)
    return cases


def rescue(path: Path, document: dict[str, Any]) -> Path | None:
    """Write ``document`` where it still fits: the system's temporary folder, else the home folder.
    None when neither takes it."""
    name = f"mfbench-rescued-{path.stem}-{os.getpid()}.json"
    for folder in (Path(tempfile.gettempdir()), Path.home()):
        try:
            atomic_write_json(folder / name, document)
        except OSError:
            continue
        return folder / name
    return None


class ResultsFile:
    """The results document of one run, kept on disk as it grows.

    Each finished case is appended to a **journal** beside the document (``r.json.journal``: one
    JSON line per case, flushed to disk), which costs the same at case 10 and case 100,000; the
    document itself is rewritten (atomically) only when the journal holds half as many cases as it
    does, at :meth:`save` and at :meth:`finish`, which deletes the journal. So the bytes written
    grow with the number of cases, not with its square, and a run killed at any moment leaves every
    finished case in the document or its journal: :func:`load_results` (report, compare, plot,
    ``--resume``) reads both.
    """

    def __init__(
        self,
        path: Path | None,
        header: dict[str, Any],
        derive: Callable[[list[dict[str, Any]]], None] | None = None,
        cases: Sequence[dict[str, Any]] = (),
    ) -> None:
        """``path`` None keeps the document in memory only (a torchrun rank other than 0).

        ``derive`` updates the cases' summaries from one another each time a case arrives (a new
        case may be an earlier one's partner, as in scaling efficiency): the file stores what the
        statistics layer derived without knowing how. ``cases``: those the document starts with
        (kept by ``--resume``), written with it in one step.
        """
        self.path = Path(path) if path is not None else None
        self.derive = derive
        self.document: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": now_iso(),
            "finished": None,
            "complete": False,
            **header,
            "cases": list(cases),
        }
        if self.derive is not None and self.document["cases"]:
            self.derive(self.document["cases"])
        self.journaled = 0
        self.save()

    @property
    def journal(self) -> Path | None:
        return journal_path(self.path) if self.path is not None else None

    def save(self) -> None:
        """Write the document over the file (atomically: the previous version stays valid until the
        new one is whole). A write that fails twice is a :class:`ResultsWriteError` naming where the
        document was kept instead (:func:`rescue`)."""
        if self.path is None:
            return
        try:
            self._write()
        except OSError:
            time.sleep(RETRY_AFTER_S)  # a moment's contention (a network mount, a cleaner freeing space)
            try:
                self._write()
            except OSError as exc:
                kept = rescue(self.path, self.document)
                finished = len(self.document["cases"])
                where = f"The {finished} finished case(s) are in {kept}" if kept else "No fallback file could be written either"
                raise ResultsWriteError(
                    f"cannot save the results file {self.path} ({exc.strerror or exc}); the run stops. {where}; "
                    f"{self.path} still holds the cases saved before"
                ) from None

    def _write(self) -> None:
        """The document, whole, over the file; then an empty journal (it holds nothing the file lacks)."""
        assert self.path is not None and self.journal is not None
        self.document["journal_from"] = len(self.document["cases"])
        atomic_write_json(self.path, self.document)
        if self.document["complete"]:
            self.journal.unlink(missing_ok=True)
        else:
            with open(self.journal, "w", encoding="utf-8"):
                pass
        self.journaled = 0

    def add(self, case: dict[str, Any]) -> None:
        self.document["cases"].append(case)
        if self.derive is not None:
            self.derive(self.document["cases"])
        if self.path is None:
            return
        if self.journaled + 1 >= max(COMPACT_AFTER, len(self.document["cases"]) // 2):
            self.save()  # the document catches up: every case in one file again
            return
        try:
            self._append(case, len(self.document["cases"]) - 1)
        except OSError:
            self.save()  # the journal cannot grow: the whole document, retried, or rescued with the message

    def _append(self, case: dict[str, Any], index: int) -> None:
        assert self.journal is not None
        line = json.dumps({"index": index, "case": _jsonable(case)}, allow_nan=False) + "\n"
        with open(self.journal, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.journaled += 1

    def finish(self) -> None:
        self.document["finished"] = now_iso()
        self.document["complete"] = True
        self.save()


def load_results(path: Path | str) -> dict[str, Any]:
    """Read and check a results file; problems become messages, not tracebacks.

    Everything ``report``, ``compare``, ``plot`` and ``--resume`` read goes through here,
    and the whole document is checked against the published schema, so what they
    read has the types they expect (see mfbench.results.schema).
    """
    path = Path(path)
    if path.is_dir():
        raise MfbenchError(f"{path} is a folder, not a results file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MfbenchError(f"cannot read results file {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MfbenchError(f"{path} is not UTF-8 text (byte {exc.start}): not a results file") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MfbenchError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    except RecursionError:
        raise MfbenchError(f"{path} is nested too deeply to be a results file") from None
    except ValueError as exc:  # an integer past Python's digit limit (4,300): no results file holds one
        why = str(exc).split(":")[0].lower()
        raise MfbenchError(f"{path} holds a number too long to read ({why}): not a results file") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise MfbenchError(f'{path} is not an mfbench results file (no "schema": "{SCHEMA}")')
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MfbenchError(f"{path} has results schema version {version}; this mfbench reads version {SCHEMA_VERSION}")
    if not isinstance(document.get("cases"), list):
        raise MfbenchError(f"{path} has no list of cases")
    if document.get("complete") is False:  # a run still going, or stopped: its last cases may be in the journal
        document["cases"].extend(journal_cases(path, len(document["cases"])))
    problem = schema_problem(document)
    if problem:
        raise MfbenchError(f"{path} is not a valid results file: {problem}")
    return document


def default_results_path(directory: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = directory / f"run-{stamp}.json"
    counter = 1
    while path.exists():
        counter += 1
        path = directory / f"run-{stamp}-{counter}.json"
    return path
