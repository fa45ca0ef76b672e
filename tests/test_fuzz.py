"""Fuzzing with hypothesis: no input gives a traceback, only a result or a one-line MfbenchError.

Bounded so the suite stays fast; MFBENCH_FUZZ_EXAMPLES=N runs N examples per test instead.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from mfbench.errors import MfbenchError
from mfbench.plugins.common.ratings_files import read_delimited, read_npz
from mfbench.report.compare import compare_documents
from mfbench.report.comparison import render_comparison
from mfbench.report.tables import render_csv, render_table
from mfbench.results.files import load_results
from mfbench.run.selection import format_selection, parse_selection
from mfbench.run.suite import load_suite

RESULTS = Path(__file__).parent.parent / "results"


def examples(default: int) -> settings:
    count = int(os.environ.get("MFBENCH_FUZZ_EXAMPLES", default))
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=count == default,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a NaN parameter value round-trips as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# --- the selection grammar ------------------------------------------------------

SELECTION_CHARS = "ab_.-=[],'\" 1.0e-+xtruefalsenoeinf\\\t"


def round_trips(name: str, params: dict[str, Any]) -> None:
    text = format_selection(name, params)
    again = parse_selection(text)
    assert again.name == name, text
    [combo] = again.expand()
    assert list(combo) == list(params) and all(same(combo[k], params[k]) for k in params), (text, combo, params)


@examples(400)
@given(st.text(alphabet=SELECTION_CHARS, max_size=30))
def test_every_parsed_selection_formats_back_to_itself(text):
    try:
        selection = parse_selection(text)
    except MfbenchError:
        return
    for combo in selection.expand():
        round_trips(selection.name, combo)


values = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(alphabet="ab 1.,[]='\"-\t\\", max_size=8).filter(lambda s: not ("'" in s and '"' in s)),
)


@examples(300)
@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,8}", fullmatch=True),
    st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), values, max_size=4),
)
def test_every_part_label_parses_back(name, params):
    round_trips(name, params)


# --- results files, and what reads them ------------------------------------------


def sample() -> dict[str, Any]:
    document = json.loads((RESULTS / "quick-cpu-2core.json").read_text())
    ran = [c for c in document["cases"] if c["repeats"]][:2]
    skipped = [c for c in document["cases"] if not c["repeats"]][:1]
    document["cases"] = ran + skipped
    document["config"]["target_rmse"] = 0.9
    return document


SAMPLE = sample()
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 10**6),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["nan", "inf", "-inf", "", "ok", "error", "cpu"]),
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "name", "epochs", "seconds"]), children, max_size=3)
    ),
    max_leaves=6,
)


def nodes(value: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += nodes(child, (*path, index))
    return found


@st.composite
def mutated(draw) -> dict[str, Any]:
    document = copy.deepcopy(SAMPLE)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in nodes(document) if p]
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


def read_everything(document: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.json"
    path.write_text(json.dumps(document))
    try:
        loaded = load_results(path)
    except MfbenchError as exc:
        assert "\n" not in str(exc)
        event("refused by the loader")
        return
    event("loaded, then reported and compared")
    render_table(loaded["cases"], "simple")
    render_csv(loaded["cases"], None)
    for base, new in ((loaded, SAMPLE), (SAMPLE, loaded), (loaded, loaded)):
        try:
            render_comparison(compare_documents(base, new, target=None, normalize=True, fail_threshold=5.0))
        except MfbenchError:
            pass  # e.g. the same case on different data: a usage error, said in words


@examples(150)
@given(mutated())
def test_mutated_results_files_load_or_say_why(tmp_path, document):
    read_everything(document, tmp_path)


@examples(150)
@given(
    st.dictionaries(
        st.sampled_from(["schema", "schema_version", "cases", "config", "machine", "complete"]), json_values, max_size=6
    )
)
def test_generated_documents_load_or_say_why(tmp_path, document):
    document.setdefault("schema", "mfbench.results")
    document.setdefault("schema_version", 1)
    read_everything(document, tmp_path)


@examples(6)
@given(mutated())
def test_mutated_results_files_plot_or_say_why(tmp_path, document):
    pytest.importorskip("matplotlib")
    from mfbench.report.plot import plot_results

    path = tmp_path / "fuzzed.json"
    path.write_text(json.dumps(document))
    try:
        loaded = load_results(path)
    except MfbenchError:
        return
    try:
        plot_results(loaded, tmp_path / "fuzzed.png", target=0.9)
    except MfbenchError:
        pass


# --- data and suite files ----------------------------------------------------------

ratings_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [
                b"1",
                b"2",
                b"-3",
                b"4.5",
                b"1e39",
                b"nan",
                b"x",
                b"",
                b",",
                b"\t",
                b"\n",
                b"\r\n",
                b'"',
                b"::",
                b" ",
                b"\xff",
                b"user,item,rating\n",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@examples(300)
@given(ratings_bytes, st.sampled_from(["r.csv", "r.tsv", "r.dat"]), st.sampled_from(["auto", "yes", "no"]))
def test_data_files_of_random_bytes_load_or_say_why(tmp_path, content, name, header):
    path = tmp_path / name
    path.write_bytes(content)
    try:
        raw = read_delimited(path, header=header)
    except MfbenchError:
        return
    assert len(raw.values) > 0 and raw.values.dtype.name == "float32"
    ratings = raw.to_ratings()
    assert ratings.nnz == len(raw.values)


@examples(100)
@given(st.binary(max_size=300))
def test_npz_files_of_random_bytes_load_or_say_why(tmp_path, content):
    path = tmp_path / "r.npz"
    path.write_bytes(b"PK\x03\x04" + content if content[:1] == b"P" else content)
    try:
        read_npz(path)
    except MfbenchError:
        pass


suite_text = st.lists(
    st.sampled_from(
        [
            "epochs = 2\n",
            "epochs = 'x'\n",
            "timeout = nan\n",
            "datasets = ['sprand']\n",
            "models = [1]\n",
            "strategies = '*'\n",
            "group = [5]\n",
            "[[group]]\n",
            "devices = []\n",
            "description = 3\n",
            "[x]\n",
            "test_fraction = inf\n",
            "\xff\n",
            "= = =\n",
            "strategies = ['reference']\n",
        ]
    ),
    max_size=8,
).map("".join)


@examples(200)
@given(st.one_of(suite_text.map(lambda t: t.encode("utf-8", "surrogateescape")), st.binary(max_size=80)))
def test_suite_files_load_or_say_why(tmp_path, content):
    path = tmp_path / "s.toml"
    path.write_bytes(content)
    try:
        load_suite(str(path))
    except MfbenchError as exc:
        assert str(path) in str(exc)
