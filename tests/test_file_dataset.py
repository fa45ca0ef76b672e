"""The ``file`` dataset: your own ratings from delimited text or .npz, and its errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse
import torch

import mfbench
from mfbench.plugin import registry
from mfbench.plugins.common import ratings_files
from mfbench.plugins.common.ratings_files import dense_ids, read_delimited
from mfbench.plugins.datasets.file import RatingsFile


def write(tmp_path, name: str, text: str, newline: str = "\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def triples(ratings: mfbench.Ratings):
    return list(zip(ratings.users.tolist(), ratings.items.tolist(), ratings.values.tolist(), strict=True))


def test_registered_as_file():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.datasets.file"], defaults=False, entry_points=False, env=False)
    assert registry.collect(pm).get(mfbench.Dataset, "file").cls is RatingsFile


def test_csv_with_header_and_columns_by_name(tmp_path):
    path = write(tmp_path, "r.csv", "when,item,score,who\n1,20,4.5,7\n2,10,3,5\n3,20,1,5\n")
    ratings = RatingsFile(path=str(path), user="who", item="item", rating="score").load(0)
    # Raw ids become dense in sorted raw-id order: users 5 -> 0, 7 -> 1; items 10 -> 0, 20 -> 1.
    assert triples(ratings) == [(1, 1, 4.5), (0, 0, 3.0), (0, 1, 1.0)]
    assert (ratings.n_users, ratings.n_items) == (2, 2)
    assert ratings.users.dtype == ratings.items.dtype == torch.int64 and ratings.values.dtype == torch.float32


@pytest.mark.parametrize(
    "delimiter, given",
    [
        ("\t", "auto"),
        ("\t", "tab"),
        (";", "semicolon"),
        (";", "auto"),
        ("|", "pipe"),
        (" ", "space"),
        ("::", "colons"),
        ("::", "auto"),
        (",", ","),
        (",", "comma"),
    ],
)
def test_delimiters_named_given_or_sniffed(tmp_path, delimiter, given):
    text = "".join(delimiter.join(row) + "\n" for row in (["1", "2", "5"], ["1", "3", "4"], ["9", "2", "2.5"]))
    path = write(tmp_path, "r.txt", text)
    ratings = RatingsFile(path=str(path), delimiter=given).load(0)
    assert triples(ratings) == [(0, 0, 5.0), (0, 1, 4.0), (1, 0, 2.5)]


def test_columns_by_position_and_header_auto(tmp_path):
    path = write(tmp_path, "r.tsv", "x\t10\t3.5\t100\nx\t11\t2\t200\n")  # no header: line 1 is numeric where read
    ratings = RatingsFile(path=str(path), user="3", item="1", rating="2").load(0)
    assert triples(ratings) == [(0, 0, 3.5), (1, 1, 2.0)]
    headed = write(tmp_path, "h.tsv", "a\tb\tc\tu\nx\t10\t3.5\t100\n")
    assert len(RatingsFile(path=str(headed), user="3", item="1", rating="2").load(0)) == 1


def test_header_yes_no(tmp_path):
    path = write(tmp_path, "r.csv", "1,2,3\n4,5,6\n")
    assert len(RatingsFile(path=str(path), header="yes").load(0)) == 1
    assert len(RatingsFile(path=str(path), header="no").load(0)) == 2
    with pytest.raises(mfbench.MfbenchError, match="header="):
        RatingsFile(path=str(path), header="maybe").load(0)
    with pytest.raises(mfbench.MfbenchError, match="by name but header=no"):
        RatingsFile(path=str(path), header="no", user="userId").load(0)


def test_text_ids_are_kept_and_ordered(tmp_path):
    path = write(tmp_path, "r.csv", "user,item,r\nbob,B0001,5\nalice,A77,3\nbob,A77,1\n")
    ratings = RatingsFile(path=str(path)).load(0)
    assert triples(ratings) == [(1, 1, 5.0), (0, 0, 3.0), (1, 0, 1.0)]


def test_text_ids_without_a_header_are_not_taken_for_one(tmp_path):
    path = write(tmp_path, "r.tsv", "bob\tB0001\t5\nalice\tA77\t3\n")
    assert triples(RatingsFile(path=str(path), delimiter="\\t").load(0)) == [(1, 1, 5.0), (0, 0, 3.0)]


def test_quotes_blank_lines_crlf_and_odd_numbers(tmp_path):
    text = 'u,i,r\n"1","2",4\n\n1,3, 2.5\n2,2,+1e0\n2,3,-0.5\n2,4,.5\n'
    path = write(tmp_path, "r.csv", text, newline="\r\n")
    ratings = RatingsFile(path=str(path)).load(0)
    assert triples(ratings) == [(0, 0, 4.0), (0, 1, 2.5), (1, 0, 1.0), (1, 1, -0.5), (1, 2, 0.5)]


def test_no_trailing_newline_and_byte_order_mark(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbfuserId,itemId,rating\n1,1,2\n1,2,3")
    ratings = RatingsFile(path=str(path), user="userId").load(0)
    assert triples(ratings) == [(0, 0, 2.0), (0, 1, 3.0)]


def test_fast_and_line_readers_agree_across_chunks(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 3000
    users = rng.integers(-50, 10**6, n)
    items = rng.integers(0, 400, n)
    cents = rng.integers(-1000, 1000, n)
    lines = [f"{u},{i},{c / 100:.2f},{rng.integers(10**9)}" for u, i, c in zip(users, items, cents, strict=True)]
    u, i, r, t = lines[1700].split(",")
    lines[1700] = f'"{u}",{i}, {r},"{t}"'  # quoted and spaced: only the line reader takes it
    path = write(tmp_path, "r.csv", "\n".join(lines) + "\n")
    monkeypatch.setattr(ratings_files, "CHUNK_BYTES", 1000)  # many chunks, one of them read line by line
    raw = read_delimited(path)
    expect_users = [int(line.split(",")[0].strip(' "')) for line in lines]
    np.testing.assert_array_equal(raw.users, expect_users)
    np.testing.assert_array_equal(raw.items, items)
    np.testing.assert_array_equal(raw.values, (cents / 100).astype(np.float32))


def test_dense_ids_sorted_by_raw_id():
    index, n = dense_ids(np.array([30, 10, 30, 99, 10], dtype=np.int64))
    assert n == 3 and index.tolist() == [1, 0, 1, 2, 0]
    index, n = dense_ids(np.array([2**62, -(2**62), 5], dtype=np.int64))  # too sparse for a lookup table
    assert n == 3 and index.tolist() == [2, 0, 1]
    index, n = dense_ids(np.array(["b", "a", "b"]))
    assert n == 2 and index.tolist() == [1, 0, 1]


def test_npz_coo_arrays_under_either_naming(tmp_path):
    for names in (("users", "items", "values"), ("row", "col", "data")):
        path = tmp_path / f"{names[0]}.npz"
        np.savez(path, **dict(zip(names, ([7, 3, 7], [100, 100, 5], [1.0, 2.0, 3.0]), strict=True)))
        ratings = RatingsFile(path=str(path)).load(0)
        assert triples(ratings) == [(1, 1, 1.0), (0, 1, 2.0), (1, 0, 3.0)]


def test_npz_scipy_sparse_matrix_keeps_its_shape_and_indices(tmp_path):
    matrix = scipy.sparse.csr_matrix(([4.0, 2.0], ([1, 3], [0, 6])), shape=(5, 8))
    path = tmp_path / "m.npz"
    scipy.sparse.save_npz(path, matrix)
    ratings = RatingsFile(path=str(path)).load(0)
    assert (ratings.n_users, ratings.n_items) == (5, 8)
    assert sorted(triples(ratings)) == [(1, 0, 4.0), (3, 6, 2.0)]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"a": [1], "b": [2]}, "expected users/items/values"),
        ({"users": [1, 2], "items": [1], "values": [1.0]}, "1-D arrays of one length"),
        ({"users": [1], "items": [1], "values": [np.nan]}, "finite"),
        ({"users": [], "items": [], "values": []}, "no ratings"),
        ({"users": [1.5], "items": [1], "values": [1.0]}, "integers or strings"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(mfbench.MfbenchError, match=message):
        RatingsFile(path=str(path)).load(0)


def test_npz_that_is_not_an_archive(tmp_path):
    path = write(tmp_path, "x.npz", "not a zip")
    with pytest.raises(mfbench.MfbenchError, match="cannot read .* as a .npz"):
        RatingsFile(path=str(path)).load(0)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("u,i,r\n1,2,3\n1,3,four\n", 3, "'four' is not a number"),
        ("u,i,r\n1,2,3\n1,3\n", 3, "expected 3 fields"),
        ("u,i,r\n1,2,3\n1,3,4,5\n2,2,2\n", 3, "expected 3 fields"),
        ("u,i,r\n1,2,3\n,3,4\n", 3, "is empty"),
        ("u,i,r\n1,2,3\n2,3,nan\n", 3, "not a finite number"),
    ],
)
def test_malformed_text_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(mfbench.MfbenchError, match=rf"bad\.csv line {line}: .*{re.escape(message)}"):
        RatingsFile(path=str(path)).load(0)


def test_malformed_line_deep_in_a_big_file_is_found(tmp_path, monkeypatch):
    lines = [f"{k},{k % 7},{k % 5}" for k in range(5000)]
    lines[4321] = "4321,1,3.5.1"
    path = write(tmp_path, "big.csv", "user,item,rating\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(ratings_files, "CHUNK_BYTES", 4096)
    with pytest.raises(mfbench.MfbenchError, match=r"big\.csv line 4323: rating '3\.5\.1' is not a number"):
        RatingsFile(path=str(path)).load(0)


def test_missing_file_empty_file_and_bad_columns(tmp_path):
    with pytest.raises(mfbench.MfbenchError, match="no such file: .*nothing.csv"):
        RatingsFile(path=str(tmp_path / "nothing.csv")).load(0)
    assert any("needs path=" in line for line in RatingsFile.check_params(RatingsFile.resolve_params({})))
    planned = RatingsFile.check_params(RatingsFile.resolve_params({"path": "x.csv", "header": "maybe"}))
    assert planned == ["dataset 'file': header='maybe': use one of auto, yes, true, no, false"]
    only_header = write(tmp_path, "h.csv", "userId,movieId,rating\n")
    with pytest.raises(mfbench.MfbenchError, match="holds no ratings"):
        RatingsFile(path=str(only_header)).load(0)
    with pytest.raises(mfbench.MfbenchError, match="no column named 'who'"):
        RatingsFile(path=str(only_header), user="who").load(0)
    narrow = write(tmp_path, "n.csv", "1,2,3\n")
    with pytest.raises(mfbench.MfbenchError, match="column 7 does not exist"):
        RatingsFile(path=str(narrow), rating="7").load(0)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01\n")
    with pytest.raises(mfbench.MfbenchError, match="not UTF-8"):
        RatingsFile(path=str(binary)).load(0)


DUPLICATED = "user,item,rating\n1,10,4\n2,10,3\n1,10,2\n3,11,5\n1,10,1\n2,12,3\n"


@pytest.mark.parametrize(
    ("policy", "rating_of_1_10"),
    [("last", 1.0), ("first", 4.0), ("mean", 7.0 / 3.0)],
)
def test_a_repeated_pair_is_kept_once_as_the_policy_says(tmp_path, policy, rating_of_1_10):
    dataset = RatingsFile(path=str(write(tmp_path, "r.csv", DUPLICATED)), duplicates=policy)
    ratings = dataset.load(0)
    assert ratings.nnz == 4 and dataset.facts["duplicate_rows"] == 2
    (value,) = [v for u, i, v in triples(ratings) if (u, i) == (0, 0)]  # user 1, item 10 as dense ids
    assert value == pytest.approx(rating_of_1_10)
    assert "2 row(s) repeated an earlier (user, item) pair" in dataset.facts["notes"][0]


def test_duplicates_error_names_the_pair_and_its_rows(tmp_path):
    dataset = RatingsFile(path=str(write(tmp_path, "r.csv", DUPLICATED)), duplicates="error")
    with pytest.raises(mfbench.MfbenchError, match=r"2 row\(s\) repeat .* \(user 1, item 10 on data rows 1, 3, 5"):
        dataset.load(0)


def test_an_unknown_duplicates_policy_is_refused_before_loading():
    problems = RatingsFile.check_params({**RatingsFile.params, "path": "x.csv", "duplicates": "sum"})
    assert any("duplicates='sum'" in p for p in problems)


def test_no_pair_is_on_both_sides_of_the_split(tmp_path):
    """Half the rows repeat a pair: before, copies landed in training and in the held-out sets."""
    rng = np.random.default_rng(0)
    pairs = [(int(u), int(i)) for u, i in zip(rng.integers(0, 200, 3000), rng.integers(0, 100, 3000), strict=True)]
    rows = pairs + pairs[:1500]
    text = "".join(f"{u},{i},{rng.integers(1, 6)}\n" for u, i in rows)
    ratings = RatingsFile(path=str(write(tmp_path, "r.csv", text)), header="no").load(0)
    split = ratings.split_three(0.1, 0.1, seed=0)
    sides = [set(zip(s.users.tolist(), s.items.tolist(), strict=True)) for s in (split.train, split.valid, split.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sum(len(s) for s in sides) == ratings.nnz == len(set(pairs))


def test_the_merged_rows_reach_the_results_and_the_warnings(tmp_path, fresh_pm, run_cases):
    path = write(tmp_path, "r.csv", "".join(f"{u},{i},{(u + i) % 5 + 1}\n" for u in range(30) for i in range(20)) + "0,0,5\n")
    (record,) = run_cases(fresh_pm, ["vectorized"], datasets=[f"file[path={path},header=no]"])
    assert record["dataset"]["facts"]["duplicate_rows"] == 1 and record["dataset"]["nnz"] == 600
    assert any("1 row(s) repeated an earlier (user, item) pair" in w for w in record["warnings"])


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ("path={missing}", "no such file"),
        ("path={tsv},user=customer,item=nosuch,rating=stars", "has no column named 'nosuch'"),
    ],
)
def test_a_missing_file_or_column_is_refused_before_the_run(tmp_path, capsys, params, says):
    """Before: an error row for every case, after the run had started."""
    from mfbench.cli import main

    tsv = write(tmp_path, "mine.tsv", "customer\tproduct\tstars\nc1\tp1\t4\n")
    selection = "file[" + params.format(missing=tmp_path / "nope.csv", tsv=tsv) + "]"
    out = tmp_path / "r.json"
    assert main(["run", "-d", selection, "-s", "vectorized", "-q", "--no-calibration", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing has started" in err and says in err and not out.exists()


def test_a_timestamp_column_is_read_by_name_by_position_or_found_by_itself(tmp_path):
    path = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n1,20,4.5,964982703\n2,10,3,964981247\n")
    assert RatingsFile(path=str(path)).load(0).times.tolist() == [964982703, 964981247]
    assert RatingsFile(path=str(path), time="none").load(0).times is None
    headless = write(tmp_path, "h.tsv", "1\t20\t4.5\t30\n2\t10\t3\t10\n")
    assert RatingsFile(path=str(headless)).load(0).times is None  # nothing names a timestamp
    assert RatingsFile(path=str(headless), time="3").load(0).times.tolist() == [30, 10]
    inter = write(tmp_path, "x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t5\t3\t881250949.0\n")
    assert RatingsFile(path=str(inter)).load(0).times.tolist() == [881250949]  # RecBole's atomic file
    problems = RatingsFile.check_params({**RatingsFile.params, "path": str(path), "time": "when"})
    assert any("no column named 'when'" in p for p in problems)


def test_timestamps_agree_between_the_fast_and_line_readers(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    times = rng.integers(-(10**12), 10**12, 2000)
    lines = [f"{k % 37},{k % 11},{k % 5},{t}" for k, t in enumerate(times)]
    lines[900] = f'"{900 % 37}",{900 % 11},{900 % 5},{times[900]}.0'  # quoted: only the line reader takes it
    lines[1500] = f"{1500 % 37},{1500 % 11},{1500 % 5},{times[1500]}.000"  # a whole number, written as a decimal
    path = write(tmp_path, "r.csv", "u,i,r,timestamp\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(ratings_files, "CHUNK_BYTES", 1000)
    np.testing.assert_array_equal(read_delimited(path).times, times)
    fractional = write(tmp_path, "f.csv", "u,i,r,timestamp\n1,1,1,5\n1,2,1,5.5\n")
    with pytest.raises(mfbench.MfbenchError, match=r"f\.csv line 3: timestamp '5\.5' is not a whole number.*time=none"):
        read_delimited(fractional)


@pytest.mark.parametrize(("policy", "time_of_1_10"), [("last", 30), ("first", 10), ("mean", 50)])
def test_a_repeated_pair_keeps_its_kept_rows_time(tmp_path, policy, time_of_1_10):
    """Last and first are by row, as for ratings, and keep that row's time; a mean keeps the latest."""
    text = "user,item,rating,timestamp\n1,10,4,10\n2,10,3,20\n1,10,2,50\n1,10,1,30\n"
    ratings = RatingsFile(path=str(write(tmp_path, "r.csv", text)), duplicates=policy).load(0)
    times = {(u, i): t for u, i, t in zip(ratings.users.tolist(), ratings.items.tolist(), ratings.times.tolist(), strict=True)}
    assert times == {(0, 0): time_of_1_10, (1, 0): 20}


def test_npz_times_beside_the_arrays(tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, users=[7, 3], items=[1, 1], values=[1.0, 2.0], times=[9, 4])
    assert RatingsFile(path=str(path)).load(0).times.tolist() == [9, 4]
