"""``mfbench data``: managing data sets (download and cache a public one a plugin offers)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data.cache import cache_dir
from ..errors import SelectionError, unknown_name
from ..plugin.parts import Dataset
from .common import Shared, load_registry


def add_parser(sub: Any, shared: Shared) -> None:
    data = sub.add_parser("data", help="manage data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    download = data_sub.add_parser("download", parents=[shared.plugin_opts], help="download and cache a public data set")
    download.add_argument("name", help="a download name, e.g. ml-100k (see mfbench list)")
    download.add_argument("--cache", type=Path, help="cache folder (default: $MFBENCH_CACHE or ~/.cache/mfbench)")
    data.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if args.data_command != "download":
        raise SelectionError("use: mfbench data download NAME")
    _, registry = load_registry(args.plugins)
    offers = {name: entry.cls for entry in registry.datasets.values() for name in getattr(entry.cls, "downloads", {})}
    if args.name not in offers:
        raise SelectionError(unknown_name("download", args.name, offers))
    dataset: type[Dataset] = offers[args.name]
    path = dataset.download(args.name, args.cache or cache_dir())
    print(f"{args.name}: {path}")
    return 0
