"""Regenerate the example outputs of the README and the documentation pages from the tool itself,
so they never drift from it.

    python benchmarks/readme_outputs.py            # rewrite every marked block of README.md and docs/
    python benchmarks/readme_outputs.py --check    # exit 1 naming each block that differs
    python benchmarks/readme_outputs.py --images   # also redraw the docs' plot and report screenshot

A block is marked by the comment that names the command printing it, on the line
before its fence:

    <!-- output of: mfbench report results/quick-cpu-2core.json -->
    ```text
    ...
    ```

Commands are ``mfbench`` commands over committed results files, run in this
process at a terminal width of ``WIDTH`` columns (the examples are what a
100-column terminal shows). The pages are README.md and every Markdown file under
docs/ (``pages()``). tests/test_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
WIDTH = 100
MARKED = re.compile(r"(<!-- output of: (?P<command>[^>]*?) -->\n```text\n)(?P<body>.*?)(```)", re.S)
#: The pictures the docs show (docs/reports.md), drawn by --images.
PLOT = ROOT / "results" / "quick-cpu-2core.png"
SCREENSHOT = ROOT / "results" / "quick-cpu-2core-report.png"
QUICK = ROOT / "results" / "quick-cpu-2core.json"
RUN = "python benchmarks/readme_outputs.py"


def command_output(command: str) -> str:
    """What ``command`` (an mfbench command line) prints to stdout at ``WIDTH`` columns."""
    from mfbench.cli import main

    argv = shlex.split(command)
    if argv[:1] != ["mfbench"]:
        raise SystemExit(f"readme_outputs: only mfbench commands can be regenerated, not {command!r}")
    buffer = io.StringIO()
    previous, cwd = os.environ.get("COLUMNS"), os.getcwd()
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv[1:])
    finally:
        os.chdir(cwd)
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    if code not in (0, 1):
        raise SystemExit(f"readme_outputs: {command!r} exited {code}")
    return buffer.getvalue().rstrip("\n") + "\n"


def pages() -> list[Path]:
    """Every page that may carry marked blocks: the README, then the documentation's Markdown."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def regenerate(text: str) -> tuple[str, list[str]]:
    """``text`` with every marked block replaced by its command's output, and the commands whose block changed."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        output = command_output(match["command"])
        if output != match["body"]:
            changed.append(match["command"])
        return match.group(1) + output + match.group(4)

    return MARKED.sub(replace, text), changed


def draw_images() -> None:
    """The docs' plot (mfbench plot) and the screenshot of the HTML report (headless Chromium)."""
    import json

    from mfbench.report.html_report import write_report
    from mfbench.report.plot import plot_results

    document = json.loads(QUICK.read_text())
    plot_results(document, PLOT)
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if browser is None:
        raise SystemExit("readme_outputs: the screenshot needs headless Chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder:
        page = write_report(document, Path(folder) / "report.html")
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1280,1900",
                f"--screenshot={SCREENSHOT}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, "HOME": folder},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block differs")
    parser.add_argument("--images", action="store_true", help="also redraw the plot and the report screenshot")
    args = parser.parse_args(argv)
    differs = False
    for page in pages():
        text = page.read_text(encoding="utf-8")
        if not MARKED.search(text):
            continue
        name = page.relative_to(ROOT)
        updated, changed = regenerate(text)
        differs = differs or bool(changed)
        if args.check:
            for command in changed:
                print(f"{name}: the output of `{command}` differs from what the tool prints; run {RUN}")
            continue
        if changed:
            page.write_text(updated, encoding="utf-8")
        print(f"{name}: {len(changed)} block(s) rewritten" + (f": {', '.join(changed)}" if changed else ""))
    if args.check:
        return 1 if differs else 0
    if args.images:
        draw_images()
        print(f"drew {PLOT.relative_to(ROOT)} and {SCREENSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
