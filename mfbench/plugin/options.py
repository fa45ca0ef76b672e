"""Command-line options that plugins add to ``mfbench run`` (the ``mfbench_add_run_options`` hook).

The core's command line knows no particular executor: an executor plugin adds the
flags its users type (Dask's ``--scheduler``) and the paragraph of ``run --help``
that explains it, and gets the values in its options mapping, exactly as if they had
been given as ``--executor-option KEY=VALUE``. The plugin manager is made from the
``-p`` arguments before the command line is parsed, so a plugin blocked with
``-p no:NAME`` adds nothing, and its flags are then unknown.
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..errors import PluginError

HOOK = "mfbench_add_run_options"


@dataclass
class RunOptions:
    """What ``mfbench_add_run_options`` hands each plugin: a way to add ``mfbench run`` options.

    Collected before the parser is built; :meth:`install` then adds every option to it.
    """

    #: (plugin, flag, executor option key, help, metavar), in the order plugins added them.
    options: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)
    #: (plugin, paragraph) for the epilog of ``mfbench run --help``.
    paragraphs: list[tuple[str, str]] = field(default_factory=list)
    plugin: str = ""

    def add_executor_option(self, flag: str, key: str, *, help: str, metavar: str | None = None) -> None:
        """Add ``flag`` (``--scheduler``) to ``mfbench run``: its value becomes executor option ``key``.

        The value is passed as the string typed, and wins over ``--executor-option KEY=VALUE``.
        """
        if not flag.startswith("--") or len(flag) < 3:
            raise PluginError(f"plugin {self.plugin!r}: run option {flag!r} must be a long option such as --scheduler")
        taken = {existing[1]: existing[0] for existing in self.options}
        if flag in taken:
            raise PluginError(f"run option {flag} is added twice: by plugin {taken[flag]!r} and by plugin {self.plugin!r}")
        self.options.append((self.plugin, flag, key, help, metavar))

    def add_help(self, text: str) -> None:
        """Add a paragraph to ``mfbench run --help`` (after the executors paragraph); laid out as given."""
        self.paragraphs.append((self.plugin, textwrap.dedent(text).strip("\n")))

    def epilog(self) -> str:
        """The plugins' paragraphs, indented as the help's own sections are."""
        return "".join(textwrap.indent(text, "  ") + "\n" for _, text in self.paragraphs)

    def install(self, parser: argparse.ArgumentParser) -> None:
        """Add every collected option to the ``run`` parser, each with a ``dest`` of its own."""
        for index, (plugin, flag, _, help, metavar) in enumerate(self.options):
            try:
                parser.add_argument(flag, dest=self.dest(index), metavar=metavar, help=help)
            except argparse.ArgumentError as exc:
                raise PluginError(f"plugin {plugin!r} cannot add run option {flag}: {exc}") from None

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """The executor options given through plugins' flags: option key -> the value typed."""
        given = {}
        for index, (_, _, key, _, _) in enumerate(self.options):
            value = getattr(args, self.dest(index), None)
            if value is not None:
                given[key] = value
        return given

    @staticmethod
    def dest(index: int) -> str:
        return f"plugin_run_option_{index}"


def collect_run_options(pm: pluggy.PluginManager | None) -> RunOptions:
    """Every plugin's run options, first-registered plugin first (the order of ``run --help``)."""
    options = RunOptions()
    if pm is None:
        return options
    for impl in getattr(pm.hook, HOOK).get_hookimpls():
        options.plugin = impl.plugin_name
        try:
            impl.function(*({"options": options}[arg] for arg in impl.argnames))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in {HOOK}: {exc!r}") from exc
    options.plugin = ""
    return options
