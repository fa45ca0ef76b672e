"""Errors that mean "the user can fix this": the CLI prints them without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MfbenchError(Exception):
    """An error whose message tells the user what went wrong and what to do next."""


class PluginError(MfbenchError):
    """A plugin could not be loaded, or registered something invalid."""


class SelectionError(MfbenchError):
    """A command-line selection names something unknown or is malformed."""


class ResultsWriteError(MfbenchError):
    """The results file could not be saved (a full disk, a folder turned read-only): the run stops,
    and the message says where the finished cases were kept instead."""


class CaseTimeout(Exception):
    """Raised by a strategy whose own watchdog gave up waiting (workers that hang):
    the runner ends the case with status ``timeout`` instead of ``error``."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """Message for an unknown name: the closest match first, then every known one."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(known) if known else "(none registered)"
    return f"unknown {kind} {name!r}.{hint} Known {plural(kind)}: {listing}."


def plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
