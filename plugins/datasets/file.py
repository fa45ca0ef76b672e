"""Ratings from your own files: delimited text (CSV, TSV, ...) or a numpy ``.npz`` archive.

The reading itself (delimiters, headers, columns by name or position, the fast numeric
path) is :mod:`mfbench.plugins.common.ratings_files`, which the MovieLens loader shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mfbench
from mfbench.plugins.common.ratings_files import DELIMITER_NAMES, header_problem, read_delimited, read_npz


class RatingsFile(mfbench.Dataset):
    """Your own ratings: CSV/TSV (any delimiter, header or not, columns by name or position) or .npz."""

    name = "file"
    params = {"path": "", "delimiter": "auto", "header": "auto", "user": "0", "item": "1", "rating": "2"}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        """What can be told wrong before the file is opened: no path, an unknown header=, an empty delimiter=."""
        problems = super().check_params(params)
        prefix = cls.problem_prefix()
        if not params.get("path"):
            problems.append(f"{prefix}needs path=: a .csv/.tsv/.txt ratings file or a .npz archive")
        problem = header_problem(str(params.get("header")))
        if problem:
            problems.append(prefix + problem)
        if params.get("delimiter") == "":
            problems.append(f"{prefix}delimiter= is empty; use auto, one of {', '.join(DELIMITER_NAMES)}, or a string")
        return problems

    def load(self, seed: int) -> mfbench.Ratings:
        path = Path(self.params["path"]).expanduser()
        if path.suffix.lower() == ".npz":
            return read_npz(path)
        columns = tuple(str(self.params[key]).strip() for key in ("user", "item", "rating"))
        return read_delimited(path, self.params["delimiter"], self.params["header"], columns).to_ratings()


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(RatingsFile)
