"""Data files at the edges: ratings float32 cannot hold, first lines that are not headers, folders."""

from __future__ import annotations

import numpy as np
import pytest

import mfbench
from mfbench.plugins.common.ratings_files import read_delimited, read_npz


def write(tmp_path, text, name="r.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_rating_beyond_float32_names_file_and_line(tmp_path):
    path = write(tmp_path, "1,1,4\n2,1,1e39\n")
    with pytest.raises(mfbench.MfbenchError, match=r"r.csv line 2: column 2 '1e39' is beyond float32's range"):
        read_delimited(path)


def test_a_value_beyond_float32_in_npz_is_refused(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, users=np.array([0, 1]), items=np.array([0, 0]), values=np.array([1.0, 1e300]))
    with pytest.raises(mfbench.MfbenchError, match="at index 1 is beyond float32's range"):
        read_npz(path)


def test_a_first_row_with_numbers_is_data_not_a_header(tmp_path):
    path = write(tmp_path, "1,2,abc\n3,4,5\n")
    with pytest.raises(mfbench.MfbenchError, match=r"line 1: rating 'abc' is not a number.*header=yes"):
        read_delimited(path)
    assert read_delimited(path, header="yes").header == ("1", "2", "abc")  # said so: a header it is


def test_a_first_row_of_names_is_a_header(tmp_path):
    raw = read_delimited(write(tmp_path, "user,item,rating\n1,2,5\n"))
    assert raw.header == ("user", "item", "rating") and raw.values.tolist() == [5.0]


def test_text_ids_still_allow_a_header(tmp_path):
    raw = read_delimited(write(tmp_path, "u1,i1,4\nu2,i1,3\n"))
    assert raw.header is None and len(raw.values) == 2


@pytest.mark.parametrize("reader", [read_delimited, read_npz])
def test_a_folder_given_as_the_data_path_says_so(tmp_path, reader):
    with pytest.raises(mfbench.MfbenchError, match="is a folder, not a ratings file"):
        reader(tmp_path)
