"""Tables that fit a terminal: default columns, chosen columns, shortened labels, collapsed skipped rows.

A results table has more columns than a terminal has room for, and on a machine
without a GPU half its rows are ``cuda skipped`` with one reason. This module
turns the full table (every column, every row, as ``--format`` exports it) into
what a person reads at a terminal:

* a default set of columns that answers the run's question, ``--columns`` to
  choose others, ``--wide`` for every column and row;
* rows skipped for the same reason collapsed into one line below the table
  ("cuda: 20 cases skipped — CUDA is not available");
* long labels shortened in the middle (``lowrank[n_us…rank=10]``: both the name
  and the last parameters stay readable) until the table fits the width, and,
  only when that is not enough, the least needed columns left out, said below.

It knows nothing of results files: ``report`` and ``compare`` hand it headers,
cells and which rows are skipped cases. Export formats (github, latex, tsv...)
keep every column and row unless ``--columns`` is given, so an exported table
is never silently narrowed.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from ..errors import SelectionError, unknown_name
from . import escape

#: Formats drawn for a person at a terminal; every other tabulate format is an export.
TERMINAL_FORMATS = frozenset(
    {
        "simple",
        "plain",
        "grid",
        "simple_grid",
        "rounded_grid",
        "heavy_grid",
        "mixed_grid",
        "double_grid",
        "fancy_grid",
        "outline",
        "simple_outline",
        "rounded_outline",
        "heavy_outline",
        "mixed_outline",
        "double_outline",
        "fancy_outline",
        "psql",
        "presto",
        "pretty",
    }
)
ELLIPSIS = "…"
#: A shortened label keeps at least this many characters (or its header's width, if wider).
MIN_LABEL = 9


@dataclass(frozen=True)
class View:
    """How to show a table: which columns (``--columns``/``--wide``) and in how many characters.

    :param columns: column keys or headers to show, in this order; None for the table's default set.
    :param wide: every column and every row, labels in full (the view of the export formats).
    :param width: characters a line may take; None for no limit (output that is not a terminal).
    """

    columns: tuple[str, ...] | None = None
    wide: bool = False
    width: int | None = None


#: Every column, every row, no width limit: what the export formats and the library functions show.
WIDE = View(wide=True)


@dataclass
class Table:
    """A table in full, and what a narrower view may do with it.

    :param skipped: per row, the reason when the row is a skipped case (None otherwise); rows
        sharing a reason collapse into one line.
    :param groups: per row, the word that prefixes its collapsed line (the device), if any.
    :param default: the columns shown by default; None for all but ``detail``.
    :param detail: columns left out of the default view when ``default`` is None.
    :param shorten: columns that may be shortened to fit: "middle" (labels, shortened in the middle),
        "footnote" (prose, replaced by a number and written out below the table) or "brief" (cells
        found in ``brief`` take their brief form, and ``brief_legend`` is said below the table).
    :param expendable: columns to leave out, first to last, when shortening is not enough.
    :param known: every column a table of this kind can have (``column_key`` names): ``--columns``
        naming one this table lacks (no scaling runs, no seeds) leaves it out rather than failing.
    """

    headers: list[str]
    rows: list[list[str]]
    skipped: list[str | None] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    default: Sequence[str] | None = None
    detail: Sequence[str] = ()
    shorten: Mapping[str, str] = field(default_factory=dict)
    expendable: Sequence[str] = ()
    known: Sequence[str] = ()
    brief: Mapping[str, str] = field(default_factory=dict)
    brief_legend: str = ""


def check_columns(names: Sequence[str] | None, known: Sequence[str]) -> None:
    """Refuse, before any work, a ``--columns`` name no table of this kind has."""
    for name in names or ():
        if column_key(name) not in known:
            raise unknown_column(name, known)


def unknown_column(name: str, known: Sequence[str]) -> SelectionError:
    return SelectionError(unknown_name("column", name, known) + " (--wide shows every column)")


def column_key(header: str) -> str:
    """The name ``--columns`` takes for a header: lower case, dashes for spaces ("time to 0.5" -> time-to-target)."""
    if header.startswith("time to "):
        return "time-to-target"
    return header.lower().replace(" ", "-")


def terminal_width(stream: TextIO) -> int | None:
    """$COLUMNS when set, else the terminal's width when ``stream`` is one; None (no limit) otherwise."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """``--columns a,b,c`` as a tuple (None when not given); names are checked against the table later."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise SelectionError("--columns takes a comma-separated list of column names, e.g. --columns dataset,strategy,updates/s")
    return names


def choose_columns(table: Table, view: View, export: bool) -> list[int]:
    """Indices of the columns to show, in order."""
    keys = [column_key(h) for h in table.headers]
    if view.columns:
        chosen = []
        for name in view.columns:
            if name in table.headers:
                chosen.append(table.headers.index(name))
            elif column_key(name) in keys:
                chosen.append(keys.index(column_key(name)))
            elif column_key(name) in table.known:
                continue  # a column this table happens not to have
            else:
                raise unknown_column(name, keys)
        return chosen
    if view.wide or export:
        return list(range(len(table.headers)))
    if table.default is not None:
        wanted = {column_key(name) for name in table.default}
        return [i for i, key in enumerate(keys) if key in wanted]
    hidden = {column_key(name) for name in table.detail}
    return [i for i, key in enumerate(keys) if key not in hidden]


def collapse_skipped(table: Table) -> tuple[list[int], list[str]]:
    """Rows to keep, and one line per reason shared by two or more skipped rows."""
    by_reason: dict[str, list[int]] = {}
    for index, reason in enumerate(table.skipped):
        if reason is not None:
            by_reason.setdefault(reason, []).append(index)
    collapsed: set[int] = set()
    lines = []
    for reason, indices in by_reason.items():
        if len(indices) < 2:
            continue
        collapsed.update(indices)
        groups = {table.groups[i] for i in indices} if table.groups else set()
        prefix = f"{groups.pop()}: " if len(groups) == 1 and "" not in groups else ""
        lines.append(f"{prefix}{len(indices)} cases skipped — {' '.join(reason.split()) or 'no reason given'}")
    return [i for i in range(len(table.rows)) if i not in collapsed], lines


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, the middle replaced by an ellipsis.

    A selection label keeps its name whole where it can and loses the middle of its
    parameters: ``lowrank[n_users=…rank=20]``.
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    name, bracket, inner = text.partition("[")
    if bracket and inner.endswith("]") and width >= len(name) + 4:
        return name + "[" + shorten_middle(inner[:-1], width - len(name) - 2) + "]"
    keep = width - 1
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


def _render(headers: list[str], rows: list[list[str]], fmt: str) -> str:
    return escape.table(rows, headers, fmt)


def _line_width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@dataclass
class _Fitted:
    """A table on its way to fitting: what is left of it, and what was said below it."""

    headers: list[str]
    rows: list[list[str]]
    lines: list[str] = field(default_factory=list)

    def drop(self, index: int) -> None:
        self.headers.pop(index)
        for row in self.rows:
            row.pop(index)


def _footnote(fitted: _Fitted, shorten: Mapping[str, str]) -> None:
    """Prose columns become numbers, their texts lines below the table (one number per distinct text)."""
    for index, header in enumerate(fitted.headers):
        if shorten.get(header) != "footnote":
            continue
        numbers: dict[str, int] = {}
        for row in fitted.rows:
            if row[index]:
                number = numbers.setdefault(row[index], len(numbers) + 1)
                row[index] = f"[{number}]"
        fitted.lines += [f"[{n}] {text}" for text, n in numbers.items()]


def _brief(fitted: _Fitted, table: Table) -> None:
    """Cells of "brief" columns in their brief form, the legend said once below the table."""
    changed = False
    for index, header in enumerate(fitted.headers):
        if table.shorten.get(header) != "brief":
            continue
        for row in fitted.rows:
            if row[index] in table.brief:
                row[index], changed = table.brief[row[index]], True
    if changed and table.brief_legend:
        fitted.lines.append(table.brief_legend)


def _lift_constants(fitted: _Fitted, keep: Sequence[str]) -> None:
    """A column with one value in every row says it once, below the table."""
    if len(fitted.rows) < 2:
        return
    lifted: list[str] = []
    for index in reversed(range(len(fitted.headers))):
        values = {row[index] for row in fitted.rows}
        if len(values) == 1 and "" not in values and fitted.headers[index] not in keep:
            lifted.insert(0, f"{fitted.headers[index]} {values.pop()}")
            fitted.drop(index)
    if lifted:
        fitted.lines.insert(0, "every row: " + ", ".join(lifted))


def _shorten(fitted: _Fitted, shorten: Mapping[str, str], excess: int) -> None:
    """Take ``excess`` characters off the widest label columns, one character at a time."""
    headers, rows = fitted.headers, fitted.rows
    widths = {
        i: max([len(headers[i])] + [len(row[i]) for row in rows])
        for i, header in enumerate(headers)
        if shorten.get(header) == "middle"
    }
    floors = {i: max(len(headers[i]), MIN_LABEL) for i in widths}
    while excess > 0:
        candidates = [i for i in widths if widths[i] > floors[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    fitted.rows = [[shorten_middle(cell, widths[i]) if i in widths else cell for i, cell in enumerate(row)] for row in rows]


def fit(headers: list[str], rows: list[list[str]], fmt: str, width: int, table: Table, chosen: bool) -> _Fitted:
    """Fit to ``width``, each step only while the table is still too wide.

    Prose becomes footnotes, constant columns one line, qualified cells their brief
    form, labels are shortened in the middle; then, unless the columns were chosen by name, expendable columns are
    left out one by one, each time starting again from the full labels.
    """
    dropped: list[str] = []
    while True:
        fitted = _Fitted([h for h in headers if h not in dropped], [])
        fitted.rows = [[cell for h, cell in zip(headers, row, strict=True) if h not in dropped] for row in rows]
        steps = (
            lambda fitted=fitted: _footnote(fitted, table.shorten),
            lambda fitted=fitted: _lift_constants(fitted, keep=() if not chosen else fitted.headers),
            lambda fitted=fitted: _brief(fitted, table),
        )
        for step in steps:
            if _line_width(_render(fitted.headers, fitted.rows, fmt)) <= width:
                break
            step()
        excess = _line_width(_render(fitted.headers, fitted.rows, fmt)) - width
        if excess > 0:
            _shorten(fitted, table.shorten, excess)
        if _line_width(_render(fitted.headers, fitted.rows, fmt)) <= width or chosen:
            break
        left = [name for name in table.expendable if name in fitted.headers and name not in dropped]
        if not left or len(fitted.headers) <= 2:
            break
        dropped.append(left[0])
    if dropped:
        fitted.lines.append(
            f"left out to fit {width} characters: {', '.join(column_key(d) for d in dropped)} (--wide shows every column)"
        )
    return fitted


def render(table: Table, fmt: str = "simple", view: View = WIDE) -> str:
    """The table in ``fmt`` as ``view`` asks; what does not fit in a row is said below it."""
    export = fmt not in TERMINAL_FORMATS
    columns = choose_columns(table, view, export)
    headers = [table.headers[i] for i in columns]
    keep, lines = (list(range(len(table.rows))), []) if view.wide or export else collapse_skipped(table)
    rows = [[table.rows[r][i] for i in columns] for r in keep]
    if rows and view.width is not None and not (view.wide or export):
        fitted = fit(headers, rows, fmt, view.width, table, chosen=bool(view.columns))
        headers, rows, lines = fitted.headers, fitted.rows, fitted.lines + lines
    if not rows and not lines:
        return "(no cases)"
    if view.width is not None and not (view.wide or export):
        lines = [part for line in lines for part in textwrap.wrap(line, view.width, subsequent_indent="    ")]
    text = _render(headers, rows, fmt) if rows else ""
    lines = [escape.for_format(line, fmt) for line in lines]
    return "\n".join(([text] if rows else []) + ([""] if rows and lines else []) + lines)
