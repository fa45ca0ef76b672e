"""Labels, reasons and paths are data wherever they are written: Markdown renders them as written
(no column, link, image, HTML or mention of their own), a terminal gets no control sequence.

The Markdown is rendered by a real CommonMark renderer with GitHub's tables (markdown-it-py), and
hypothesis looks for a string that gets through.
"""

from __future__ import annotations

import html
import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from markdown_it import MarkdownIt

from mfbench.cli import main
from mfbench.report import escape

RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

HOSTILE = [
    "a|b",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "![i](http://e.example/i.png)",
    "<script>alert(1)</script>",
    "**bold** _it_ ~~gone~~ `code` $x$",
    "@someone please look",
    "\\|escaped already\\",
    "&lt;entity&gt; &amp;",
    "\x1b[2J\x1b]0;title\x07",
    "right\u202eto left",
]

#: Text made mostly of what Markdown, HTML and terminals treat specially.
hostile_text = st.lists(
    st.one_of(
        st.sampled_from([*"|<>[]()!*_~`$@&#\\:;/=-+. \t\n\"'", "javascript:", "<img ", "](", "\x1b", "\u202e", "\x07", "1."]),
        st.sampled_from(list(string.ascii_letters + string.digits)),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=30,
).map("".join)

TAG = re.compile(r"<[^>]*>")


def rendered_cells(markdown_text: str) -> tuple[list[str], list[list[str]]]:
    """The HTML of a Markdown table, as (tag names used, the text of each row's cells)."""
    page = RENDERER.render(markdown_text)
    tags = sorted({t.strip("</>").split()[0] for t in TAG.findall(page)})
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        rows.append([html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row, flags=re.S)])
    return tags, rows


def shown(text: str) -> str:
    """What Markdown should show for ``text``: each run of whitespace as one space, control
    characters as their escapes."""
    return escape.printable(" ".join(text.split()))


def visible(rendered: str) -> str:
    """Rendered text without the zero-width space put after each ``@``."""
    return rendered.replace("@\u200b", "@")


@pytest.mark.parametrize("text", HOSTILE)
def test_known_attacks_render_as_text_in_a_github_table(text):
    tags, rows = rendered_cells(escape.table([[text, "second"]], ["label", "other"], "github"))
    assert tags == ["table", "tbody", "td", "th", "thead", "tr"]
    assert [[visible(c) for c in row] for row in rows] == [["label", "other"], [shown(text), "second"]]


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_text, min_size=1, max_size=3))
def test_any_text_renders_as_itself_in_its_own_cell(cells):
    tags, rows = rendered_cells(escape.table([[*cells, "end"]], [f"h{i}" for i in range(len(cells) + 1)], "github"))
    assert set(tags) <= {"table", "tbody", "td", "th", "thead", "tr"}, tags
    assert [visible(c) for c in rows[1]] == [shown(c) for c in cells] + ["end"]


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_any_text_is_one_plain_line_of_markdown(text):
    page = RENDERER.render("- " + escape.markdown(text) + "\n")
    tags = {t.strip("</>").split()[0] for t in TAG.findall(page)}
    assert tags <= {"ul", "li"}, page
    assert "@" not in escape.markdown(text).replace("@\u200b", ""), "a mention could notify someone"
    assert visible(html.unescape(TAG.sub("", page)).strip()) == shown(text)


@settings(max_examples=200, deadline=None)
@given(hostile_text)
def test_terminal_text_holds_no_control_sequence(text):
    out = escape.printable(text)
    assert not any(c in escape.BIDI_CONTROLS or (ord(c) < 32 and c not in "\n\t") or 127 <= ord(c) < 160 for c in out)


def hostile_results(source: Path, target: Path) -> Path:
    """``source`` with hostile text in every label, a parameter and every reason."""
    document = json.loads(source.read_text())
    attack = " ".join(HOSTILE[:7])
    for case in document["cases"]:
        case["id"] = case["id"].replace(case["dataset"]["name"], case["dataset"]["name"] + attack, 1)
        case["dataset"]["label"] = case["dataset"]["label"] + attack
        case["dataset"]["params"]["attack"] = attack
        if "reason" in case:
            case["reason"] = case["reason"] + attack
    target.write_text(json.dumps(document))
    return target


@pytest.mark.parametrize(
    "command",
    [
        ["report", "{f}", "--format", "github"],
        ["compare", "{f}", "{f}", "--format", "github"],
        ["compare", "{f}", "{f}", "--format", "github", "--fail-threshold", "1"],
    ],
)
def test_a_hostile_results_file_writes_no_markdown_of_its_own(command, tmp_path, capsys, matrix_files):
    path = hostile_results(matrix_files["every status"], tmp_path / "hostile.json")
    main([part.replace("{f}", str(path)) for part in command])
    out = capsys.readouterr().out
    page = RENDERER.render(out)
    tags = {t.strip("</>").split()[0] for t in TAG.findall(page)}
    assert tags <= {"table", "tbody", "td", "th", "thead", "tr", "p", "strong", "ul", "li", "details", "summary"}, tags
    assert "<img" not in page and "<script" not in page and 'href="javascript' not in page
    widths = {len(re.findall(r"<t[hd]>", row)) for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)}
    assert len(widths) == 1, "a pipe in a label added a column"


@pytest.mark.parametrize("options", [[], ["--profile", "--target-rmse", "1.5"]], ids=["plot", "plot --profile"])
def test_a_dollar_in_a_label_is_text_in_a_plot(options, tmp_path, capsys, matrix_files):
    """matplotlib reads $...$ as mathtext: '$\\frac{1}{$' raised ParseSyntaxException (a traceback)."""
    document = json.loads(matrix_files["every status"].read_text())
    for case in document["cases"]:
        hostile = case["dataset"]["name"] + " $\\frac{1}{$ cost"
        case["id"] = case["id"].replace(case["dataset"]["label"], case["dataset"]["label"] + hostile, 1)
        case["dataset"]["label"] += hostile
    path = tmp_path / "dollars.json"
    path.write_text(json.dumps(document))
    assert main(["plot", str(path), "-o", str(tmp_path / "p.png"), *options]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0
