"""The results format as a JSON Schema (``mfbench/results/results.schema.json``), and checking documents against it.

The schema ships in the package so that other tools can validate results files
too (``importlib.resources.files("mfbench.results") / "results.schema.json"``). It names
the fields mfbench reads and their types, and allows any others: newer versions
add optional fields, and older readers must still accept the files.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

#: Deeper than any results file mfbench writes (about 8 levels); far below what would exhaust the stack.
MAX_DEPTH = 64


@functools.lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    return json.loads((resources.files("mfbench.results") / "results.schema.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(results_schema())


def place(path: Iterable[Any]) -> str:
    """``cases[3].repeats[0].epochs[2]`` for the path ("cases", 3, "repeats", 0, "epochs", 2)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the document)"


def too_deep(document: Any) -> str | None:
    """Where ``document`` nests deeper than MAX_DEPTH, or None (checked without recursion)."""
    stack: list[tuple[Any, tuple, int]] = [(document, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            where = place(path)
            return where if len(where) <= 100 else where[:97] + "..."
        if isinstance(value, dict):
            stack.extend((v, (*path, k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i), depth + 1) for i, v in enumerate(value))
    return None


def _describe(error: Any) -> str:
    where = place(error.absolute_path)
    if error.validator == "required":
        missing = next((key for key in error.validator_value if key not in error.instance), "?")
        return f"{place([*error.absolute_path, missing])}: missing"
    if error.validator == "anyOf":  # the number type: a float, or a non-finite one as a string
        nullable = any(option.get("type") == "null" for option in error.validator_value)
        words = "".join(f", {json.dumps(o['const'])}" for o in error.validator_value if "const" in o)
        expected = f'a number, "nan", "inf", "-inf"{words}' + (" or null" if nullable else "")
        return f"{where}: {_short(error.instance)} is not {expected}"
    if error.validator == "type":
        return f"{where}: {_short(error.instance)} is not of type {error.validator_value}"
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"{where}: {_short(error.instance)} is not one of {', '.join(map(repr, allowed))}"
    return f"{where}: {_short(error.message, 160)}"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) and width == 160 else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def schema_problem(document: Any) -> str | None:
    """The first place where ``document`` breaks the results schema, in words; None when it is valid."""
    deep = too_deep(document)
    if deep is not None:
        return f"{deep}: nested more than {MAX_DEPTH} levels deep"
    errors = list(_validator().iter_errors(document))
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return _describe(errors[0]) + more
