"""Regenerate the README's example outputs from the tool itself, so they never drift from it.

    python benchmarks/readme_outputs.py            # rewrite every marked block of README.md
    python benchmarks/readme_outputs.py --check    # exit 1 naming each block that differs
    python benchmarks/readme_outputs.py --images   # also redraw the README's plot and report screenshot

A block is marked by the comment that names the command printing it, on the line
before its fence:

    <!-- output of: mfbench report results/quick-cpu-2core.json -->
    ```text
    ...
    ```

Commands are ``mfbench`` commands over committed results files, run in this
process at a terminal width of ``WIDTH`` columns (the README's examples are what
a 100-column terminal shows). tests/test_docs.py runs the check.
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
WIDTH = 100
MARKED = re.compile(r"(<!-- output of: (?P<command>[^>]*?) -->\n```text\n)(?P<body>.*?)(```)", re.S)
#: The README's images: (path, what draws it).
PLOT = ROOT / "results" / "quick-cpu-2core.png"
SCREENSHOT = ROOT / "results" / "quick-cpu-2core-report.png"
QUICK = ROOT / "results" / "quick-cpu-2core.json"


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


def regenerate(text: str) -> tuple[str, list[str]]:
    """The README with every marked block replaced by its command's output, and the commands whose block changed."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        output = command_output(match["command"])
        if output != match["body"]:
            changed.append(match["command"])
        return match.group(1) + output + match.group(4)

    return MARKED.sub(replace, text), changed


def draw_images() -> None:
    """The README's plot (mfbench plot) and the screenshot of the HTML report (headless Chromium)."""
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
    text = README.read_text(encoding="utf-8")
    updated, changed = regenerate(text)
    if args.check:
        for command in changed:
            print(
                f"README.md: the output of `{command}` differs from what the tool prints; run python benchmarks/readme_outputs.py"
            )
        return 1 if changed else 0
    README.write_text(updated, encoding="utf-8")
    print(f"README.md: {len(changed)} block(s) rewritten" + (f": {', '.join(changed)}" if changed else ""))
    if args.images:
        draw_images()
        print(f"drew {PLOT.relative_to(ROOT)} and {SCREENSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
