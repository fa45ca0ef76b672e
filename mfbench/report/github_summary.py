"""Markdown for GitHub: a comparison's outcome as a job summary or a pull-request comment.

``mfbench compare --format github`` prints it; in a workflow, append it to
``$GITHUB_STEP_SUMMARY`` or post it as a comment. The headline comes first, so the
outcome reads in the notification; the full table and notes follow, the table
folded when it is long.
"""

from __future__ import annotations

from .compare import EXIT_NOISY, Comparison
from .escape import markdown

#: Tables with more rows than this are folded in a <details> block.
FOLD_ROWS = 12


def headline(comparison: Comparison, counts: str) -> str:
    """One line: the gate's outcome (with a threshold) or what changed (``counts``: the speed verdicts, counted)."""
    if comparison.fail_threshold is None:
        return f"**mfbench compare**: {counts}"
    code = comparison.exit_code
    threshold = f"{comparison.fail_threshold:g}%"
    if code == 1:
        failed = len(comparison.tripped) + len(comparison.trips)
        return f"**mfbench compare: FAILED** ({failed} failure(s) over the {threshold} threshold): {counts}"
    if code == EXIT_NOISY:
        return (
            f"**mfbench compare: TOO NOISY TO TELL** ({len(comparison.undecided)} case(s) could be slower than "
            f"{threshold}): {counts}"
        )
    return f"**mfbench compare: passed** (threshold {threshold}): {counts}"


def markdown_comparison(comparison: Comparison, table: str, notes: list[str], counts: str) -> str:
    """Headline, table (folded when long) and notes as a Markdown list."""
    parts = [headline(comparison, counts), ""]
    if len(comparison.rows) > FOLD_ROWS:
        parts += ["<details><summary>every case</summary>", "", table, "", "</details>"]
    else:
        parts.append(table)
    if notes:
        parts.append("")
        parts += [("  - " if line.startswith("  ") else "- ") + markdown(line.strip()) for line in notes]
    return "\n".join(parts)
