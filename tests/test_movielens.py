"""The MovieLens loader: its three file formats, the real ml-latest-small file, and downloads."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mfbench
from mfbench.plugin import registry
from mfbench.plugins.datasets import movielens
from mfbench.plugins.datasets.movielens import ARCHIVES, Archive, MovieLens

SHARED_SMALL = Path(__file__).parents[1].parent / "shared/data/ml-latest-small"

# Four ratings by raw users 7, 3, 7, 12 of raw movies 50, 50, 9, 1000.
# Dense ids follow raw-id order: users 3 -> 0, 7 -> 1, 12 -> 2; movies 9 -> 0, 50 -> 1, 1000 -> 2.
ROWS = [(7, 50, 4.0, 881250949), (3, 50, 3.0, 891717742), (7, 9, 1.0, 878887116), (12, 1000, 5.0, 880606923)]
EXPECTED = [(1, 1, 4.0), (0, 1, 3.0), (1, 0, 1.0), (2, 2, 5.0)]


def u_data(rows=ROWS) -> str:
    return "".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows)


def ratings_dat(rows=ROWS) -> str:
    return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in rows)


def ratings_csv(rows=ROWS) -> str:
    return "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in rows)


FORMATS = {"u.data": u_data, "ratings.dat": ratings_dat, "ratings.csv": ratings_csv}


def triples(ratings):
    return list(zip(ratings.users.tolist(), ratings.items.tolist(), ratings.values.tolist(), strict=True))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty mfbench cache; the network is off unless a test turns it on."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MFBENCH_CACHE", str(root))
    monkeypatch.delenv(movielens.ALLOW_UNVERIFIED_ENV, raising=False)

    def offline(url):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(movielens, "open_url", offline)
    return root


def make_zip(path: Path, members: dict[str, str]) -> Archive:
    """Write a zip and return an Archive entry that pins its real checksums."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, text in members.items():
            zipped.writestr(name, text)
    data = buffer.getvalue()
    path.write_bytes(data)
    return Archive("u.data", "fake", len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())


def serve_from(monkeypatch, folder: Path):
    """Point the download URL at local files (file:// through the real urllib opener)."""
    monkeypatch.setattr(movielens, "open_url", lambda url: movielens.urllib.request.urlopen(url, timeout=5))
    monkeypatch.setattr(movielens, "URL", folder.as_uri() + "/{name}.zip")


def test_registered_with_downloads():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.datasets.movielens"], defaults=False, entry_points=False, env=False)
    cls = registry.collect(pm).get(mfbench.Dataset, "movielens").cls
    assert cls is MovieLens
    assert {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small", "ml-latest"} <= set(cls.downloads)


@pytest.mark.parametrize("file_name", list(FORMATS))
def test_each_format_from_file_and_from_folder(tmp_path, file_name):
    (tmp_path / file_name).write_text(FORMATS[file_name]())
    for path in (tmp_path / file_name, tmp_path):
        ratings = MovieLens(path=str(path)).load(0)
        assert triples(ratings) == EXPECTED
        assert (ratings.n_users, ratings.n_items) == (3, 3)


def test_half_star_ratings_dat_as_in_ml_10m(tmp_path):
    rows = [(1, 122, 5.0, 838985046), (1, 185, 4.5, 838983525), (2, 122, 0.5, 838983421)]
    (tmp_path / "ratings.dat").write_text(ratings_dat(rows))
    assert triples(MovieLens(path=str(tmp_path)).load(0)) == [(0, 0, 5.0), (0, 1, 4.5), (1, 0, 0.5)]


@pytest.mark.parametrize("file_name", list(FORMATS))
def test_renamed_files_are_recognised_by_content(tmp_path, file_name):
    path = tmp_path / "my-ratings.txt"
    path.write_text(FORMATS[file_name]())
    assert triples(MovieLens(path=str(path)).load(0)) == EXPECTED


def test_windows_line_endings_and_no_final_newline(tmp_path):
    (tmp_path / "ratings.csv").write_bytes(ratings_csv().rstrip("\n").replace("\n", "\r\n").encode())
    assert triples(MovieLens(path=str(tmp_path)).load(0)) == EXPECTED


def test_unexpected_csv_header_is_refused(tmp_path):
    (tmp_path / "ratings.csv").write_text("movieId,userId,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(mfbench.MfbenchError, match="expected a MovieLens header starting userId,movieId,rating"):
        MovieLens(path=str(tmp_path)).load(0)


@pytest.mark.parametrize(
    "file_name, text, line, message",
    [
        ("u.data", "1\t2\t3\t4\n1\tx9\t3\t4\n", 2, "'x9' is not an integer id"),
        ("ratings.dat", "1::2::3::4\n1::3::4\n", 2, "expected 4 fields separated by '::'"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,3,3..5,4\n", 3, "'3..5' is not a number"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, file_name, text, line, message):
    (tmp_path / file_name).write_text(text)
    with pytest.raises(mfbench.MfbenchError, match=rf"{file_name} line {line}: .*{message}"):
        MovieLens(path=str(tmp_path)).load(0)


def test_paths_that_lead_nowhere(tmp_path, cache):
    with pytest.raises(mfbench.MfbenchError, match="no such file or folder: .*nowhere"):
        MovieLens(path=str(tmp_path / "nowhere")).load(0)
    with pytest.raises(mfbench.MfbenchError, match="holds none of u.data, ratings.dat, ratings.csv"):
        MovieLens(path=str(tmp_path)).load(0)
    with pytest.raises(mfbench.MfbenchError, match=r"ml-100k is not downloaded: run `mfbench data download ml-100k`"):
        MovieLens().load(0)


@pytest.mark.skipif(not (SHARED_SMALL / "ratings.csv").is_file(), reason="../shared/data/ml-latest-small is absent")
def test_real_ml_latest_small():
    ratings = MovieLens(path=str(SHARED_SMALL / "ratings.csv")).load(0)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_836, 610, 9_724)
    values = ratings.values.numpy()
    assert values.min() == 0.5 and values.max() == 5.0
    assert set(np.unique(values * 2).tolist()) <= set(range(1, 11))
    assert abs(ratings.mean() - 3.501557) < 1e-5
    # The first line is "1,1,4.0,...": raw user 1 and raw movie 1 are the smallest ids.
    assert triples(ratings)[0] == (0, 0, 4.0)
    assert ratings.fingerprint() == MovieLens(path=str(SHARED_SMALL)).load(1).fingerprint()


def test_download_failure_says_what_to_do_and_leaves_nothing(cache):
    with pytest.raises(mfbench.MfbenchError) as caught:
        MovieLens.download("ml-100k", cache)
    message = str(caught.value)
    assert "could not reach https://files.grouplens.org/datasets/movielens/ml-100k.zip" in message
    assert f"download ml-100k.zip by hand and put it in {cache / 'movielens'}" in message
    assert "path=" in message
    assert sorted(p.name for p in (cache / "movielens").iterdir()) == []


def test_unknown_download_name(cache):
    with pytest.raises(mfbench.MfbenchError, match="Did you mean 'ml-1m'"):
        MovieLens.download("ml-1M", cache)


def test_download_verifies_extracts_and_caches(tmp_path, cache, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    fake = make_zip(served / "ml-100k.zip", {"ml-100k/u.data": u_data(), "ml-100k/README": "fake"})
    monkeypatch.setitem(ARCHIVES, "ml-100k", fake)
    serve_from(monkeypatch, served)
    folder = MovieLens.download("ml-100k", cache)
    assert folder == cache / "movielens" / "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["README", "u.data"]
    assert sorted(p.name for p in (cache / "movielens").iterdir()) == ["ml-100k", "ml-100k.zip"]  # no leftovers
    assert triples(MovieLens(path="ml-100k").load(0)) == EXPECTED  # found in the cache by name
    (served / "ml-100k.zip").unlink()
    assert MovieLens.download("ml-100k", cache) == folder  # cached: no second fetch


def test_checksum_mismatch_is_refused_and_not_kept(tmp_path, cache, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    make_zip(served / "ml-100k.zip", {"ml-100k/u.data": u_data()})
    serve_from(monkeypatch, served)  # the real pinned checksums of ml-100k.zip stay in force
    with pytest.raises(mfbench.MfbenchError, match="does not match the published checksum .*SHA-256"):
        MovieLens.download("ml-100k", cache)
    assert list((cache / "movielens").iterdir()) == []


def test_zip_put_in_the_cache_by_hand_is_verified_then_used(tmp_path, cache, monkeypatch):
    root = cache / "movielens"
    root.mkdir(parents=True)
    fake = make_zip(root / "ml-1m.zip", {"ml-1m/ratings.dat": ratings_dat(), "ml-1m/users.dat": ""})
    with pytest.raises(mfbench.MfbenchError, match="ml-1m.zip from .* does not match"):
        MovieLens(path="ml-1m").load(0)
    monkeypatch.setitem(ARCHIVES, "ml-1m", Archive("ratings.dat", "fake", fake.size, fake.sha256, fake.md5))
    assert triples(MovieLens(path="ml-1m").load(0)) == EXPECTED  # offline: the network is never needed


def test_archive_without_checksum_needs_explicit_consent(tmp_path, cache, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    make_zip(served / "ml-latest.zip", {"ml-latest/ratings.csv": ratings_csv(), "ml-latest/movies.csv": ""})
    serve_from(monkeypatch, served)
    with pytest.raises(mfbench.MfbenchError, match="no published checksum .*MFBENCH_ALLOW_UNVERIFIED=1"):
        MovieLens.download("ml-latest", cache)
    assert not (cache / "movielens" / "ml-latest.zip").exists()
    monkeypatch.setenv(movielens.ALLOW_UNVERIFIED_ENV, "1")
    folder = MovieLens.download("ml-latest", cache)
    assert triples(MovieLens(path=str(folder)).load(0)) == EXPECTED


def test_unverified_consent_as_an_argument(tmp_path, cache, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    make_zip(served / "ml-latest.zip", {"ml-latest/ratings.csv": ratings_csv()})
    serve_from(monkeypatch, served)
    assert (MovieLens.download("ml-latest", cache, allow_unverified=True) / "ratings.csv").is_file()


def test_every_known_archive_is_pinned_except_the_rolling_one():
    for name, archive in ARCHIVES.items():
        assert archive.verifiable == (name != "ml-latest"), name
        assert archive.sha256 is None or len(archive.sha256) == 64
        assert archive.md5 is None or len(archive.md5) == 32


def test_unsafe_member_paths_are_not_extracted(tmp_path, cache, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    fake = make_zip(served / "ml-100k.zip", {"ml-100k/u.data": u_data(), "../../escaped": "x"})
    monkeypatch.setitem(ARCHIVES, "ml-100k", fake)
    serve_from(monkeypatch, served)
    with pytest.raises(mfbench.MfbenchError, match="unsafe path '../../escaped'"):
        MovieLens.download("ml-100k", cache)
    assert not (tmp_path / "escaped").exists() and not (cache / "escaped").exists()
    assert not (cache / "movielens" / "ml-100k").exists()


def test_archive_without_the_ratings_file(tmp_path, cache, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    fake = make_zip(served / "ml-100k.zip", {"ml-100k/u.item": "x"})
    monkeypatch.setitem(ARCHIVES, "ml-100k", fake)
    serve_from(monkeypatch, served)
    with pytest.raises(mfbench.MfbenchError, match="holds no u.data"):
        MovieLens.download("ml-100k", cache)


@pytest.mark.parametrize("file_name", list(FORMATS))
def test_each_format_keeps_its_timestamps(tmp_path, file_name):
    (tmp_path / file_name).write_text(FORMATS[file_name]())
    renamed = tmp_path / "renamed.txt"
    renamed.write_text(FORMATS[file_name]())
    for path in (tmp_path, renamed):
        assert MovieLens(path=str(path)).load(0).times.tolist() == [t for *_, t in ROWS]
