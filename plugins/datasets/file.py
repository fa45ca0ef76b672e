"""Ratings from your own files: delimited text (CSV, TSV, ...) or a numpy ``.npz`` archive.

The reading itself (delimiters, headers, columns by name or position, the fast numeric
path) is :mod:`mfbench.plugins.common.ratings_files`, which the MovieLens loader shares.

``time=`` names the timestamp column the temporal split protocols cut by; by default a header
column named ``timestamp`` (or RecBole's ``timestamp:float``) is taken when there is one, and
``time=none`` loads the ratings without timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mfbench
from mfbench.plugins.common.ratings_files import (
    DELIMITER_NAMES,
    DUPLICATE_POLICIES,
    check_file,
    header_problem,
    layout,
    read_delimited,
    read_npz,
)


class RatingsFile(mfbench.Dataset):
    """Your own ratings: CSV/TSV (any delimiter, header or not, columns by name or position) or .npz."""

    name = "file"
    params = {
        "path": "",
        "delimiter": "auto",
        "header": "auto",
        "user": "0",
        "item": "1",
        "rating": "2",
        "time": "auto",
        "duplicates": "last",
    }

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
        if params.get("duplicates", "last") not in DUPLICATE_POLICIES:
            problems.append(f"{prefix}duplicates={params.get('duplicates')!r}: choose one of {', '.join(DUPLICATE_POLICIES)}")
        if params.get("delimiter") == "":
            problems.append(f"{prefix}delimiter= is empty; use auto, one of {', '.join(DELIMITER_NAMES)}, or a string")
        if problems:
            return problems
        # The file itself, as far as its first lines tell: it exists, and has the columns named.
        path = Path(str(params["path"])).expanduser()
        columns = tuple(str(params[key]).strip() for key in ("user", "item", "rating"))
        try:
            if path.suffix.lower() == ".npz":
                check_file(path)
            else:
                layout(path, str(params["delimiter"]), str(params["header"]), columns, str(params["time"]))  # type: ignore[arg-type]
        except mfbench.MfbenchError as exc:
            problems.append(f"{prefix}{exc}")
        return problems

    def load(self, seed: int) -> mfbench.Ratings:
        """The file's ratings, each (user, item) pair once (``duplicates=``: the last row's rating, the
        first's, their mean, or an error), so that no pair is on both sides of the split; with the
        timestamps of ``time=`` when there are any (a pair kept as a mean: its latest row's time)."""
        path = Path(self.params["path"]).expanduser()
        if path.suffix.lower() == ".npz":
            return read_npz(path)
        columns = tuple(str(self.params[key]).strip() for key in ("user", "item", "rating"))
        raw = read_delimited(path, self.params["delimiter"], self.params["header"], columns, time=str(self.params["time"]))
        policy = self.params["duplicates"]
        ratings, repeated = raw.to_ratings_counted(policy, str(path))
        self.facts = {"duplicate_rows": repeated, "duplicates": policy, "timestamps": ratings.has_times}
        if repeated:
            kept = {
                "last": "the last row's rating",
                "first": "the first row's rating",
                "mean": "the mean rating (and the latest row's time)" if ratings.has_times else "the mean rating",
            }[policy]
            self.facts["notes"] = [
                f"{path}: {repeated} row(s) repeated an earlier (user, item) pair; each pair kept once, with {kept} "
                f"(duplicates={policy}; duplicates=error refuses such a file)"
            ]
        return ratings


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(RatingsFile)
