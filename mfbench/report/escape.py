"""Text from results files and command lines, made safe for where it is written.

A label, a parameter value, an error reason or a path comes from whoever wrote the results file
or named the data, so it is data, never markup:

* **Markdown** (``--format github`` or ``pipe``, for a job summary or a pull-request comment): a
  pipe would add a column, ``<img onerror=...>`` or ``[x](javascript:...)`` would reach the page,
  ``@name`` would notify someone. Every character Markdown or GitHub reads as syntax is escaped
  (HTML's three as entities, the rest with a backslash; ``@`` gets a zero-width space after it),
  so the text shows as written and nothing else.
* **A terminal**: control characters (an escape sequence can move the cursor, clear the screen
  or retitle the window) and the bidirectional overrides (which reorder what is shown) print as
  their ``\\x..``/``\\u....`` escapes.

The HTML report escapes with ``html.escape`` (``mfbench.report.svgcharts.esc``); LaTeX and HTML
table formats are escaped by tabulate itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

#: The tabulate formats whose output is Markdown.
MARKDOWN_FORMATS = frozenset({"github", "pipe"})

#: Characters that reorder the text shown around them (Unicode bidirectional embeddings, overrides, isolates).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

#: Punctuation that may start syntax inside a line of Markdown (CommonMark, and GitHub's tables,
#: strikethrough and math); a link or an image needs ``[``, so parentheses and ``!`` can stay.
MARKDOWN_PUNCTUATION = frozenset("\\`*_[]|~$")

#: Characters that open a block (heading, quote, list, setext underline) at the start of a line.
BLOCK_STARTS = frozenset("#>-+=")

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters and bidirectional overrides shown as escapes (newlines and
    tabs kept where ``newlines``)."""
    out = []
    for char in text:
        if char in "\n\t" and newlines:
            out.append(char)
        elif char in BIDI_CONTROLS or unicodedata.category(char) == "Cc":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def markdown(text: str) -> str:
    """``text`` as literal Markdown on one line: it renders as written (each run of whitespace as one
    space, control characters as escapes), with no markup, link, HTML, table cell break or mention
    of its own, in a table cell or as a list item's text."""
    out = []
    for char in printable(" ".join(text.split())):
        if char in _HTML:
            out.append(_HTML[char])
        elif char in MARKDOWN_PUNCTUATION:
            out.append("\\" + char)
        elif char == "@":
            out.append("@\u200b")
        else:
            out.append(char)
    line = "".join(out)
    # At the start of a list item's text, "#", ">", "-", "+", "=" or "1." / "1)" would open a block.
    if line[:1] in BLOCK_STARTS:
        line = "\\" + line
    ordered = re.match(r"\d+[.)]", line)
    if ordered:
        line = line[: ordered.end() - 1] + "\\" + line[ordered.end() - 1 :]
    return line


def for_format(text: str, fmt: str) -> str:
    """``text`` escaped for a table cell or a line in tabulate format ``fmt``."""
    return markdown(text) if fmt in MARKDOWN_FORMATS else printable(text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str) -> str:
    """``tabulate`` with every text cell and header escaped for ``fmt``; numbers are left as they are."""

    def cell(value: Any) -> Any:
        return for_format(value, fmt) if isinstance(value, str) else value

    return tabulate(
        [[cell(value) for value in row] for row in rows],
        headers=[cell(h) for h in headers],
        tablefmt=fmt,
        disable_numparse=True,
    )
