"""The selection grammar: ``NAME`` or ``NAME[param=value,...]``, a list of values making a grid.

    selection  := NAME [ "[" assignment ("," assignment)* "]" ]
    assignment := KEY "=" value | KEY "=" "[" value ("," value)* "]"
    value      := integer | float | true | false | none | 'quoted' | "quoted" | bare-word

Examples: ``reference``, ``minibatch[lr=0.1,batch_size=[1024,4096]]`` (two cases),
``movielens[path=~/data/ml-1m]``. A bare word is a string; quote a string that
looks like a number or contains ``,``, ``[`` or ``]``. This is benchopt's grammar,
so a list means "try each value" and several lists multiply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ..errors import SelectionError

GRAMMAR_HELP = (
    "Each selection is NAME or NAME[param=value,...]; a value in brackets, e.g. "
    "lr=[0.01,0.1], is a grid: one case per value, and several grids multiply. "
    "Values are numbers, true/false, none, or strings (quote them to keep a number a string)."
)


@dataclass(frozen=True)
class Selection:
    """A part name and, per parameter, the list of values to try."""

    name: str
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def expand(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in a stable order."""
        keys = list(self.grid)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(self.grid[k] for k in keys))]


def parse_value(text: str) -> Any:
    """A single value: number, boolean, none, or string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _split_top(text: str, source: str) -> list[str]:
    """Split on commas that are outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for pos, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise SelectionError(f"unbalanced ']' in selection {source!r}")
        elif char == "," and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
    if quote:
        raise SelectionError(f"unclosed quote in selection {source!r}")
    if depth:
        raise SelectionError(f"unclosed '[' in selection {source!r}")
    parts.append(text[start:])
    return parts


def parse_selection(text: str) -> Selection:
    """Parse one selection string; errors quote it and show the grammar."""
    source = text
    text = text.strip()
    if not text:
        raise SelectionError("empty selection. " + GRAMMAR_HELP)
    if "[" not in text:
        if "]" in text or "=" in text or "," in text:
            raise SelectionError(f"malformed selection {source!r}. " + GRAMMAR_HELP)
        return Selection(text)
    name, _, rest = text.partition("[")
    name = name.strip()
    if not name or not rest.endswith("]"):
        raise SelectionError(f"malformed selection {source!r}. " + GRAMMAR_HELP)
    body = rest[:-1]
    grid: dict[str, list[Any]] = {}
    if body.strip():
        for assignment in _split_top(body, source):
            key, eq, raw = assignment.partition("=")
            key = key.strip()
            if not eq or not key:
                raise SelectionError(f"expected param=value, got {assignment.strip()!r} in {source!r}. " + GRAMMAR_HELP)
            if key in grid:
                raise SelectionError(f"parameter {key!r} given twice in {source!r}")
            raw = raw.strip()
            quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            if not quoted and raw.startswith("[") and raw.endswith("]"):
                values = [parse_value(v) for v in _split_top(raw[1:-1], source)]
                if not values or any(v == "" for v in values):
                    raise SelectionError(f"empty value in the list for {key!r} in {source!r}")
            else:
                if not quoted and ("[" in raw or "]" in raw):
                    raise SelectionError(f"malformed value {raw!r} for {key!r} in {source!r}. " + GRAMMAR_HELP)
                values = [parse_value(raw)]
            grid[key] = values
    return Selection(name, grid)


def format_value(value: Any) -> str:
    """The inverse of parse_value, for case names and tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        needs_quotes = (
            not value
            or value != value.strip()  # parsing strips a bare word
            or any(c in value for c in ",[]'\"= ")
            or not isinstance(parse_value(value), str)  # "1", "true", "none" stay strings
        )
        if not needs_quotes:
            return value
        if "'" not in value:
            return f"'{value}'"  # no escapes in the grammar: the value between the quotes is taken as it is
        if '"' not in value:
            return f'"{value}"'
        return repr(value)  # both quote kinds: no selection can give this value, so none need read it back
    return repr(value)


def format_params(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={format_value(v)}" for k, v in params.items())


def format_selection(name: str, params: dict[str, Any]) -> str:
    """``name[k=v,...]``, or just ``name`` when there are no parameters to show (``name[]`` if it would not parse back)."""
    if params:
        return f"{name}[{format_params(params)}]"
    return f"{name}[]" if any(c in name for c in "]=,") else name
