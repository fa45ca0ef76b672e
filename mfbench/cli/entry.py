"""``main``: the parser made of every command's options, and running the command asked for."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import pluggy

from .._version import __version__
from ..errors import MfbenchError
from ..plugin.manager import make_plugin_manager
from ..plugin.options import RunOptions, collect_run_options
from ..run.suite import DEFAULT_SUITE, Suite, load_suite
from . import ab, compare, data, listing, plot, report, run, tune
from .common import Terminated, shared_options

DESCRIPTION = "mfbench: which matrix-factorization training strategy is fastest to a given quality, on your data and hardware?"

#: The commands, in the order ``mfbench --help`` lists them; each module has ``add_parser(sub, shared)``
#: (its options, help and handler) and its ``main(args)``.
COMMANDS = (run, tune, listing, report, compare, ab, plot, data)


def build_parser(suite: Suite | None = None, run_options: RunOptions | None = None) -> argparse.ArgumentParser:
    """The parser; ``suite`` (the one a ``run --help`` would run) makes the help state its defaults,
    ``run_options`` are the loaded plugins' own ``run`` options and help paragraphs."""
    shared = shared_options(suite, run_options)
    parser = argparse.ArgumentParser(prog="mfbench", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, shared)
    return parser


def help_suite(argv: Sequence[str]) -> Suite | None:
    """For ``mfbench run --help`` (and tune's): the suite it would run (--suite, else the
    default), so help states its settings."""
    if not argv or argv[0] not in ("run", "tune") or not {"-h", "--help"} & set(argv):
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--suite", default=DEFAULT_SUITE)
    known, _ = pre.parse_known_args(argv[1:])
    try:
        return load_suite(known.suite)
    except MfbenchError:
        return None


def run_plugin_manager(argv: Sequence[str]) -> pluggy.PluginManager | None:
    """For ``mfbench run``: its plugin manager, made from the ``-p`` arguments before the whole
    command line is parsed, so the plugins loaded can add their own options (and blocked ones cannot)."""
    if not argv or argv[0] != "run":
        return None
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("-p", dest="plugins", action="append", default=[])
    known, _ = pre.parse_known_args(argv[1:])
    return make_plugin_manager(known.plugins)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        pm = run_plugin_manager(argv)
        run_options = collect_run_options(pm)
        parser = build_parser(help_suite(argv), run_options)
    except MfbenchError as exc:  # a plugin that fails to load, or whose options clash
        print(f"mfbench: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if pm is not None:
        args.plugin_manager, args.run_options = pm, run_options
    if args.command is None:
        parser.print_help()
        return 2
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        return args.handler(args)
    except MfbenchError as exc:
        print(f"mfbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (mfbench report ... | head): stop quietly, as a SIGPIPE would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not raise again
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM before the run began or outside one
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"\nmfbench: {how}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
