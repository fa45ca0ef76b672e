"""MovieLens ratings (GroupLens Research), read from local files or from the download cache.

Reads the three formats GroupLens has published: ``u.data`` (ml-100k: tab-separated,
no header), ``ratings.dat`` (ml-1m, ml-10m: ``::``-separated, no header) and
``ratings.csv`` (ml-20m, ml-25m, ml-latest*: ``userId,movieId,rating,timestamp``).
Raw user and movie ids become dense indices in sorted raw-id order; each rating keeps its
timestamp (seconds since 1970, the fourth column of every format), which the temporal split
protocols cut by.

Downloads are verified against checksums published by others before they are kept:
SHA-256 and sizes from TensorFlow Datasets (tensorflow/datasets,
tensorflow_datasets/url_checksums/movielens.txt), MD5s as in GroupLens's ``.zip.md5``
files and as pinned by e.g. eli-osherovich/papers_with_code (datasets/movielens/dl_config.py).
``ml-latest`` is updated in place by GroupLens, so no checksum can be pinned for it:
it is accepted only with MFBENCH_ALLOW_UNVERIFIED=1.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mfbench
from mfbench import cache_dir
from mfbench.errors import unknown_name
from mfbench.plugins.common.ratings_files import layout, read_delimited

URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
ALLOW_UNVERIFIED_ENV = "MFBENCH_ALLOW_UNVERIFIED"
TIMEOUT_S = 60
#: The ratings file of each format: (delimiter, has a header).
FORMATS = {"u.data": ("\t", False), "ratings.dat": ("::", False), "ratings.csv": (",", True)}
CSV_HEADER = ("userId", "movieId", "rating")
#: Where every format keeps the timestamp: the fourth column (``timestamp`` in ratings.csv's header).
TIME_COLUMN = "3"


@dataclass(frozen=True)
class Archive:
    """An official GroupLens zip and what is known about it."""

    ratings: str  # the ratings file inside the archive (in its top folder)
    description: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    @property
    def verifiable(self) -> bool:
        return bool(self.sha256 or self.md5)


ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive(
        ratings="u.data",
        description="MovieLens 100K: 100,000 ratings (1-5 stars) by 943 users on 1,682 movies; 4.9 MB zip",
        size=4924029,
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        md5="0e33842e24a9c977be4e0107933c0723",
    ),
    "ml-1m": Archive(
        ratings="ratings.dat",
        description="MovieLens 1M: 1,000,209 ratings (1-5 stars) by 6,040 users; 5.9 MB zip",
        size=5917549,
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        md5="c4d9eecfca2ab87c1945afe126590906",
    ),
    "ml-10m": Archive(
        ratings="ratings.dat",
        description="MovieLens 10M: 10,000,054 ratings (0.5-5 stars); 66 MB zip",
        md5="ce571fd55effeba0271552578f2648bd",
    ),
    "ml-20m": Archive(
        ratings="ratings.csv",
        description="MovieLens 20M: 20,000,263 ratings (0.5-5 stars) by 138,493 users; 199 MB zip",
        size=198702078,
        sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        md5="cd245b17a1ae2cc31bb14903e1204af3",
    ),
    "ml-25m": Archive(
        ratings="ratings.csv",
        description="MovieLens 25M: 25,000,095 ratings (0.5-5 stars) by 162,541 users; 262 MB zip",
        size=261978986,
        sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        md5="6b51fb2759a8657d3bfcbfc42b592ada",
    ),
    "ml-latest-small": Archive(
        ratings="ratings.csv",
        description="MovieLens latest-small (2018): 100,836 ratings (0.5-5 stars) by 610 users; 1 MB zip",
        size=978202,
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
    "ml-latest": Archive(
        ratings="ratings.csv",
        description="MovieLens latest, full (changes over time, so unverifiable: needs MFBENCH_ALLOW_UNVERIFIED=1)",
    ),
}


def open_url(url: str):
    """The one place that touches the network (tests replace it)."""
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)


def _archive(name: str) -> Archive:
    if name not in ARCHIVES:
        raise mfbench.MfbenchError(unknown_name("MovieLens download", name, ARCHIVES))
    return ARCHIVES[name]


def _allowed_unverified(allow: bool | None) -> bool:
    if allow is not None:
        return allow
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip().lower() not in ("", "0", "no", "false")


def _check(name: str, archive: Archive, size: int, sha256: str, md5: str, where: str, remedy: str) -> None:
    problems = []
    if archive.size is not None and size != archive.size:
        problems.append(f"{size:,} bytes instead of {archive.size:,}")
    if archive.sha256 and sha256 != archive.sha256:
        problems.append(f"SHA-256 {sha256} instead of {archive.sha256}")
    if archive.md5 and md5 != archive.md5:
        problems.append(f"MD5 {md5} instead of {archive.md5}")
    if problems:
        raise mfbench.MfbenchError(
            f"{name}.zip from {where} does not match the published checksum ({'; '.join(problems)}): "
            f"it is damaged or not the official archive. {remedy}"
        )


def _digest_file(path: Path) -> tuple[int, str, str]:
    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(block)
            md5.update(block)
            size += len(block)
    return size, sha256.hexdigest(), md5.hexdigest()


#: What a failed download looks like, as opposed to a local disk error.
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError)


def _fetch(name: str, archive: Archive, zip_path: Path) -> None:
    """Download to a temporary file beside ``zip_path``, verify, then rename it into place."""
    url = URL.format(name=name)
    handle, partial = tempfile.mkstemp(dir=zip_path.parent, prefix=f".{name}.", suffix=".part")
    try:
        sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
        with os.fdopen(handle, "wb") as out:
            try:
                with open_url(url) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        sha256.update(block)
                        md5.update(block)
                        size += len(block)
            except NETWORK_ERRORS as exc:
                raise mfbench.MfbenchError(
                    f"could not reach {url} ({getattr(exc, 'reason', None) or exc}); download {name}.zip by hand "
                    f"and put it in {zip_path.parent}, or pass path= to an extracted copy"
                ) from None
        _check(
            name,
            archive,
            size,
            sha256.hexdigest(),
            md5.hexdigest(),
            url,
            remedy=f"Nothing was kept; try again later, or download it by hand into {zip_path.parent}.",
        )
        os.replace(partial, zip_path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _extract(name: str, archive: Archive, zip_path: Path, target: Path) -> None:
    """Unpack into a temporary folder, then move the folder holding the ratings file to ``target``."""
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zipped:
                members = zipped.namelist()
                for member in members:
                    parts = Path(member).parts
                    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                        raise mfbench.MfbenchError(f"{zip_path} holds an unsafe path {member!r}; not extracting it")
                zipped.extractall(scratch)
        except zipfile.BadZipFile as exc:
            raise mfbench.MfbenchError(f"{zip_path} is not a readable zip ({exc}); delete it and download again") from None
        found = sorted((m for m in members if Path(m).name == archive.ratings), key=lambda m: len(Path(m).parts))
        if not found:
            raise mfbench.MfbenchError(f"{zip_path} holds no {archive.ratings}; is it the {name} archive?")
        folder = (scratch / found[0]).parent
        if target.exists():
            shutil.rmtree(target)  # an earlier, incomplete extraction: ours to replace
        os.replace(folder, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch(name: str, cache: Path, allow_unverified: bool | None = None) -> Path:
    """The folder holding archive ``name``'s files under ``cache``, downloading and extracting it if needed."""
    archive = _archive(name)
    root = Path(cache) / "movielens"
    target = root / name
    if (target / archive.ratings).is_file():
        return target
    if not archive.verifiable and not _allowed_unverified(allow_unverified):
        raise mfbench.MfbenchError(
            f"{name}.zip changes over time, so mfbench has no published checksum to verify it against; set "
            f"{ALLOW_UNVERIFIED_ENV}=1 to accept it unverified, or pass path= to a copy you trust"
        )
    root.mkdir(parents=True, exist_ok=True)
    zip_path = root / f"{name}.zip"
    if zip_path.is_file():  # put there by hand (or by an earlier download): verify it all the same
        remedy = f"Delete {zip_path} and download again."
        _check(name, archive, *_digest_file(zip_path), where=str(zip_path), remedy=remedy)
    else:
        _fetch(name, archive, zip_path)
    _extract(name, archive, zip_path, target)
    return target


def ratings_file(path: str) -> Path:
    """The ratings file ``path`` names: a file, a folder holding one, or a download name in the cache."""
    if not path:
        raise mfbench.MfbenchError(
            f"dataset 'movielens' needs path=: a ratings file, a folder holding one, or one of {', '.join(ARCHIVES)}"
        )
    local = Path(path).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        for file_name in FORMATS:
            if (local / file_name).is_file():
                return local / file_name
        raise mfbench.MfbenchError(f"{local} holds none of {', '.join(FORMATS)}; point path= at the ratings file")
    if path in ARCHIVES:
        cache = cache_dir()
        root = cache / "movielens"
        if (root / path / ARCHIVES[path].ratings).is_file() or (root / f"{path}.zip").is_file():
            return fetch(path, cache) / ARCHIVES[path].ratings
        raise mfbench.MfbenchError(
            f"MovieLens {path} is not downloaded: run `mfbench data download {path}`, or put {path}.zip from "
            f"{URL.format(name=path)} in {root}, or pass path= to a local copy"
        )
    raise mfbench.MfbenchError(
        f"no such file or folder: {path}; path= takes a MovieLens ratings file ({', '.join(FORMATS)}), "
        f"a folder holding one, or a download name ({', '.join(ARCHIVES)})"
    )


class MovieLens(mfbench.Dataset):
    """MovieLens ratings from u.data, ratings.dat or ratings.csv (a file, a folder, or a download name)."""

    name = "movielens"
    params = {"path": "ml-100k"}
    downloads = {name: archive.description for name, archive in ARCHIVES.items()}

    @classmethod
    def download(cls, name: str, cache_dir: Path, allow_unverified: bool | None = None) -> Path:
        """Fetch ``name`` into ``cache_dir``/movielens, verify and extract it; return the extracted folder."""
        return fetch(name, cache_dir, allow_unverified)

    def load(self, seed: int) -> mfbench.Ratings:
        path = ratings_file(self.params["path"])
        if path.name in FORMATS:
            delimiter, has_header = FORMATS[path.name]
            raw = read_delimited(path, delimiter, "yes" if has_header else "no", integer_ids=True, time=TIME_COLUMN)
        else:  # renamed: recognise the format by its content, and take a fourth column as the timestamps
            found = layout(path, "auto", "auto", ("0", "1", "2"), time="none")
            time = TIME_COLUMN if found.n_columns > int(TIME_COLUMN) else "none"
            raw = read_delimited(path, "auto", "auto", integer_ids=True, time=time)
        if raw.header is not None and raw.header[:3] != CSV_HEADER:
            raise mfbench.MfbenchError(
                f"{path} line 1: expected a MovieLens header starting {','.join(CSV_HEADER)}, got {','.join(raw.header)}"
            )
        return raw.to_ratings()


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(MovieLens)
