"""Reading ratings files: delimited text (CSV, TSV, ...) and numpy ``.npz`` archives.

Not a plugin: the ``file`` dataset and the MovieLens loader both read through it. Numeric files are parsed by
a vectorized numpy path, chunk by chunk: measured here at 0.5 CPU s for 2.5M rows,
against 1.5 s for ``np.loadtxt`` and 2.4 s for ``np.fromstring`` (25M rows: ~9 s);
any chunk the fast path cannot take (quotes, blank lines, odd spellings of numbers,
a malformed row) is re-read line by line, which either parses it or names the
file and line that is wrong.

Besides user, item and rating, a file may have a timestamp column (``time=``): whole numbers, seconds
or any integer clock where later is larger, which the temporal split protocols cut by. A column
named ``timestamp`` (MovieLens) or ``timestamp:float`` (RecBole's ``.inter`` files) is read without
being asked for; a file without one gives ratings without timestamps.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

import mfbench

DELIMITER_NAMES = {"comma": ",", "tab": "\t", "semicolon": ";", "pipe": "|", "space": " ", "colons": "::"}
#: Tried in this order on the first line when the delimiter is "auto".
SNIFF_ORDER = ("\t", "::", ",", ";", "|", " ")
HEADER_CHOICES = {"auto": None, "yes": True, "true": True, "no": False, "false": False}
CHUNK_BYTES = 1 << 22
#: The largest rating a float32 holds; beyond it a rating would become inf, and the case "diverge".
FLOAT32_MAX = float(np.finfo(np.float32).max)
_POW10 = 10.0 ** np.arange(23)
_POW10_INT = 10 ** np.arange(19, dtype=np.int64)
#: ``time=`` values that turn timestamps off, and the one that looks for a column named like :func:`is_time_name`.
TIME_OFF = ("none", "")
TIME_AUTO = "auto"


@dataclass(frozen=True)
class RawRatings:
    """Ratings as read, before ids are made dense: ids are int64 or str arrays."""

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray  # float32
    header: tuple[str, ...] | None = None
    times: np.ndarray | None = None  # int64, or None when the file has no timestamps

    def to_ratings(self, duplicates: str = "last", source: str = "the file") -> mfbench.Ratings:
        """Raw ids mapped to 0..n-1 in sorted raw-id order (deterministic, whatever the row order),
        with each (user, item) pair once, as ``duplicates`` says (see :func:`one_per_pair`)."""
        return self.to_ratings_counted(duplicates, source)[0]

    def to_ratings_counted(self, duplicates: str = "last", source: str = "the file") -> tuple[mfbench.Ratings, int]:
        """:meth:`to_ratings`, and how many rows repeated an earlier row's pair."""
        users, n_users = dense_ids(self.users)
        items, n_items = dense_ids(self.items)
        keep, values, times, extra = one_per_pair(users, items, self.values, n_items, duplicates, source, self, self.times)
        return mfbench.Ratings.from_arrays(users[keep], items[keep], values, n_users, n_items, times), extra


#: What to do with a (user, item) pair that appears on several rows: the last row's rating (a
#: re-rating replaces the earlier one, as most exports mean), the first's, their mean, or an error.
#: The pair keeps the kept row's timestamp; under ``mean``, the latest of its rows' timestamps.
DUPLICATE_POLICIES = ("last", "first", "mean", "error")


def one_per_pair(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    n_items: int,
    policy: str,
    source: str,
    raw: RawRatings | None = None,
    times: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """``(rows kept, their ratings, their times, duplicate rows)`` with each (user, item) pair once, in file order.

    Copies of a pair would otherwise be split apart, one in training and one held out: the held-out
    score would then measure memory, not prediction. Each kept row keeps its time; a ``mean`` keeps the
    latest time of the pair's rows, when its last rating was made (an earlier time would let a temporal
    split train on a mean that includes a rating made after the cut). ``times`` None gives None.
    """
    if policy not in DUPLICATE_POLICIES:
        raise mfbench.MfbenchError(f"duplicates={policy!r}: choose one of {', '.join(DUPLICATE_POLICIES)}")
    keys = users * np.int64(max(n_items, 1)) + items
    unique, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    extra = len(keys) - len(unique)
    if extra == 0:
        return np.arange(len(keys)), values, times, 0
    if policy == "error":
        pair = int(np.argmax(counts > 1))
        rows = np.flatnonzero(inverse == pair)[:3]
        user, item = (raw.users[rows[0]], raw.items[rows[0]]) if raw is not None else (users[rows[0]], items[rows[0]])
        raise mfbench.MfbenchError(
            f"{source}: {extra} row(s) repeat an earlier (user, item) pair (user {user}, item {item} on data rows "
            f"{', '.join(str(r + 1) for r in rows)}...): choose duplicates=last, first or mean"
        )
    if policy == "first":
        keep = np.sort(first)
        return keep, values[keep], None if times is None else times[keep], extra
    if policy == "last":
        last = len(keys) - 1 - np.unique(keys[::-1], return_index=True)[1]
        keep = np.sort(last)
        return keep, values[keep], None if times is None else times[keep], extra
    sums = np.bincount(inverse, weights=values.astype(np.float64), minlength=len(unique))
    means = (sums / counts).astype(np.float32)
    order = np.argsort(first, kind="stable")  # each pair at its first row
    latest = None
    if times is not None:  # the latest time of each pair's rows: a maximum over the rows grouped by pair
        by_pair = np.argsort(inverse, kind="stable")
        latest = np.maximum.reduceat(times[by_pair], np.cumsum(counts) - counts)[order]
    return first[order], means[order], latest, extra


def dense_ids(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """``(index, n)``: each raw id's rank among the distinct raw ids, and how many there are."""
    if len(raw) == 0:
        return np.empty(0, dtype=np.int64), 0
    if raw.dtype.kind in "iu":
        low, high = int(raw.min()), int(raw.max())
        low = min(low, 0)  # ids from 0 or 1 (the usual case) index the table without a shifted copy
        if high - low < 4 * len(raw) + (1 << 20):  # a lookup table beats sorting
            shifted = raw - low if low else raw
            present = np.zeros(high - low + 1, dtype=bool)
            present[shifted] = True
            lookup = np.cumsum(present, dtype=np.int64) - 1
            return lookup[shifted], int(lookup[-1]) + 1
    order = np.argsort(raw, kind="stable")
    ranked = raw[order]
    new = np.empty(len(raw), dtype=bool)
    new[0] = True
    np.not_equal(ranked[1:], ranked[:-1], out=new[1:])
    index = np.empty(len(raw), dtype=np.int64)
    index[order] = np.cumsum(new) - 1
    return index, int(new.sum())


class _TextIds(Exception):
    """An id column holds something other than integers: re-read the file keeping ids as text."""


@dataclass(frozen=True)
class _Layout:
    path: Path
    delimiter: str
    n_columns: int
    header: tuple[str, ...] | None
    data_offset: int
    columns: tuple[int, int, int]
    names: tuple[str, str, str]
    time_column: int | None = None
    time_name: str | None = None


def _delimiter(path: Path, spec: str, first_line: str) -> str:
    if spec != "auto":
        sep = DELIMITER_NAMES.get(spec.lower(), "\t" if spec == "\\t" else spec)
        if not sep:
            choices = ", ".join(DELIMITER_NAMES)
            raise mfbench.MfbenchError(f"delimiter= is empty; use auto, one of {choices}, or a string")
        return sep
    if path.suffix.lower() == ".tsv":
        return "\t"
    for candidate in SNIFF_ORDER:
        if candidate in first_line:
            return candidate
    raise mfbench.MfbenchError(
        f"{path} line 1: cannot tell the delimiter of {first_line[:80]!r}; pass delimiter= one of "
        f"{', '.join(DELIMITER_NAMES)} or the character itself"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_time_name(name: str) -> bool:
    """Whether a header name says timestamps: ``timestamp``, or RecBole's ``timestamp:float`` (any case)."""
    return name.strip().lower().partition(":")[0] == "timestamp"


def check_file(path: Path) -> None:
    """A ratings path must be a file: a folder or a missing path says which, and what to give instead."""
    if path.is_dir():
        raise mfbench.MfbenchError(f"{path} is a folder, not a ratings file; give the file in it (path={path}/FILE)")
    if not path.is_file():
        raise mfbench.MfbenchError(f"no such file: {path}; check path=")


def header_problem(header: str) -> str | None:
    """What is wrong with a ``header=`` value, or None."""
    if header.lower() in HEADER_CHOICES:
        return None
    return f"header={header!r}: use one of {', '.join(HEADER_CHOICES)}"


def layout(path: Path, delimiter: str, header: str, columns: tuple[str, str, str], time: str = TIME_AUTO) -> _Layout:
    """How the file is laid out (delimiter, header, the columns' positions), from its first 64 KB;
    a missing file, an unknown column or a first line that fits no layout is an MfbenchError.

    ``time`` is the timestamp column (a name or a 0-based position), ``auto`` for the header's column
    named like :func:`is_time_name` if it has one, or ``none`` (or empty) for no timestamps."""
    check_file(path)
    with open(path, "rb") as handle:
        start = handle.read(1 << 16)
    if not start:
        raise mfbench.MfbenchError(f"{path} is an empty file")
    bom = 3 if start.startswith(b"\xef\xbb\xbf") else 0
    end = start.find(b"\n")
    raw_line = start[bom:] if end < 0 else start[bom:end]
    try:
        first = raw_line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise mfbench.MfbenchError(f"{path} line 1: not UTF-8 text; is it a ratings file?") from None
    if not first.strip():
        raise mfbench.MfbenchError(f"{path} line 1 is empty: expected a header or a first rating")
    sep = _delimiter(path, delimiter, first)
    fields = _split(first, sep)
    problem = header_problem(header)
    if problem:  # a direct caller of read_delimited; the dataset's check_params said so while planning
        raise mfbench.MfbenchError(problem)
    has_header = HEADER_CHOICES[header.lower()]
    time = time.strip()
    time_spec = None if time.lower() in TIME_OFF or time.lower() == TIME_AUTO else time
    by_name = [c for c in (*columns, time_spec or "0") if not c.isdigit()]
    if by_name and has_header is False:
        raise mfbench.MfbenchError(f"columns {by_name} are given by name but header=no; give 0-based positions")
    if has_header is None:  # ids may be text, but a rating is always a number: a header names it instead
        has_header = bool(by_name)
        if not by_name:
            rating = int(columns[2])
            has_header = rating < len(fields) and not _is_number(fields[rating])
            numeric = [p for p in map(int, columns) if p < len(fields) and _is_number(fields[p])]
        if has_header and not by_name and numeric:  # "1,2,x": a data row with a bad rating, not column names
            raise mfbench.MfbenchError(
                f"{path} line 1: rating {fields[rating].strip()!r} is not a number, and a header would not hold "
                f"the number {fields[numeric[0]].strip()!r}: fix the line, or pass header=yes if it is a header"
            )
    names = tuple(f.strip() for f in fields) if has_header else None
    if time.lower() == TIME_AUTO and names:
        time_spec = next((name for name in names if is_time_name(name)), None)
    positions = []
    for spec in (*columns, *([time_spec] if time_spec else [])):
        if spec.isdigit():
            position = int(spec)
        elif spec in names:
            position = names.index(spec)
        else:
            raise mfbench.MfbenchError(f"{path} has no column named {spec!r}; its header names {list(names)}")
        if position >= len(fields):
            raise mfbench.MfbenchError(
                f"{path} line 1 has {len(fields)} columns separated by {sep!r}, so column {position} does not exist"
            )
        positions.append(position)
    labels = tuple(names[p] if names else f"column {p}" for p in positions)
    offset = (bom + len(raw_line) + 1) if has_header else bom
    time_column, time_name = (positions[3], labels[3]) if time_spec else (None, None)
    return _Layout(path, sep, len(fields), names, offset, tuple(positions[:3]), labels[:3], time_column, time_name)


def _split(line: str, sep: str) -> list[str]:
    if '"' in line and len(sep) == 1:
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def _parse_column(a: np.ndarray, starts: np.ndarray, ends: np.ndarray, decimal: bool, whole: bool = False) -> np.ndarray | None:
    """Numbers in the fields ``a[starts:ends]`` (Horner's rule, one digit position at a time), or None.

    ``whole``: decimals that must be whole numbers ("978300760" or "978300760.0"), returned as int64.
    """
    lengths = ends - starts
    if len(lengths) == 0:
        return np.empty(0, dtype=np.float64 if decimal else np.int64)
    shortest, longest = int(lengths.min()), int(lengths.max())
    if shortest == 0 or longest > 17:
        return None
    value = np.zeros(len(starts), dtype=np.int64)
    digits_after_point = np.zeros(len(starts), dtype=np.int64)
    seen_point = np.zeros(len(starts), dtype=bool)
    last = len(a) - 1
    for k in range(longest):
        char = np.take(a, np.minimum(starts + k, last))
        active = lengths > k if k >= shortest else None
        digit = char - np.uint8(48)
        is_digit = digit < 10
        if active is not None:
            is_digit &= active
        if k == 0:
            negative = char == 45
            if not np.all(is_digit | negative):
                return None
        else:
            is_point = char == 46 if decimal else np.zeros(len(char), dtype=bool)
            if active is not None:
                is_point &= active
            bad = ~(is_digit | is_point) if active is None else active & ~(is_digit | is_point)
            if bad.any() or (is_point & seen_point).any():
                return None
            seen_point |= is_point
            digits_after_point += is_digit & seen_point
        np.multiply(value, 10, out=value, where=is_digit)
        np.add(value, digit, out=value, where=is_digit)
    if negative.any():
        if (lengths[negative] == 1).any():
            return None
        value[negative] = -value[negative]
    if not decimal:
        return value
    if (seen_point & (digits_after_point == 0)).any():  # "4." : let the line reader decide
        return None
    if whole:
        scale = _POW10_INT[digits_after_point]
        if (value % scale).any():  # a fraction of a tick: the line reader names the line
            return None
        return value // scale
    return value / _POW10[digits_after_point]


def _parse_fast(chunk: bytes, layout: _Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
    """The chunk's (users, items, values, times or None), or None where a line needs the careful reader."""
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n")
    sep = layout.delimiter.encode()
    if sep == b"::":
        chunk, sep = chunk.replace(b"::", b":"), b":"
    if len(sep) != 1:
        return None
    a = np.frombuffer(chunk, dtype=np.uint8)
    ends = np.flatnonzero((a == sep[0]) | (a == 10))
    n = layout.n_columns
    if len(ends) % n:
        return None
    terminators = a[ends].reshape(-1, n)
    if not ((terminators[:, -1] == 10).all() and (terminators[:, :-1] == sep[0]).all()):
        return None
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    starts, ends = starts.reshape(-1, n), ends.reshape(-1, n)
    out = []
    for position, decimal in zip(layout.columns, (False, False, True), strict=True):
        column = _parse_column(a, starts[:, position], ends[:, position], decimal)
        if column is None:
            return None
        out.append(column)
    times = None
    if layout.time_column is not None:
        times = _parse_column(a, starts[:, layout.time_column], ends[:, layout.time_column], True, whole=True)
        if times is None:
            return None
    return out[0], out[1], out[2].astype(np.float32), times


def _parse_time(text: str, label: str, where: str, line: str) -> int:
    """A timestamp field as an integer; anything else names the line and says how to do without timestamps."""
    if not text:
        raise mfbench.MfbenchError(f"{where}: {label} is empty: {line[:120]!r}; {_NO_TIMES}")
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number.is_integer()):
            raise mfbench.MfbenchError(
                f"{where}: {label} {text!r} is not a whole number (timestamps are integers: seconds, or any integer "
                f"clock); {_NO_TIMES}"
            ) from None
        value = int(number)
    if not -(2**63) <= value < 2**63:
        raise mfbench.MfbenchError(f"{where}: {label} {text!r} is beyond int64's range; {_NO_TIMES}")
    return value


_NO_TIMES = "fix the line, name another column with time=, or pass time=none to load the ratings without timestamps"


def _parse_lines(chunk: bytes, first_line: int, layout: _Layout, text_ids: bool) -> tuple[list, list, list, list | None]:
    """The careful reader: parses what it can, names the line of what it cannot."""
    path, sep, n = layout.path, layout.delimiter, layout.n_columns
    users, items, values = [], [], []
    time_column = layout.time_column
    times: list[int] | None = [] if time_column is not None else None
    for offset, raw in enumerate(chunk.split(b"\n")):
        number = first_line + offset
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise mfbench.MfbenchError(f"{path} line {number}: not UTF-8 text") from None
        if not line.strip():
            continue
        fields = _split(line, sep)
        if len(fields) != n:
            raise mfbench.MfbenchError(
                f"{path} line {number}: expected {n} fields separated by {sep!r}, found {len(fields)}: {line[:120]!r}"
            )
        ids = []
        for position, label in zip(layout.columns[:2], layout.names[:2], strict=True):
            text = fields[position].strip()
            if not text:
                raise mfbench.MfbenchError(f"{path} line {number}: {label} is empty: {line[:120]!r}")
            if text_ids:
                ids.append(text)
                continue
            try:
                value = int(text)
            except ValueError:
                raise _TextIds(number, label, text) from None
            if not -(2**63) <= value < 2**63:
                raise _TextIds(number, label, text)
            ids.append(value)
        text = fields[layout.columns[2]].strip()
        try:
            rating = float(text)
        except ValueError:
            raise mfbench.MfbenchError(
                f"{path} line {number}: {layout.names[2]} {text!r} is not a number: {line[:120]!r}"
            ) from None
        if not math.isfinite(rating):
            raise mfbench.MfbenchError(f"{path} line {number}: {layout.names[2]} {text!r} is not a finite number")
        if abs(rating) > FLOAT32_MAX:
            raise mfbench.MfbenchError(
                f"{path} line {number}: {layout.names[2]} {text!r} is beyond float32's range (±{FLOAT32_MAX:.3g}), "
                f"in which ratings are trained"
            )
        if times is not None and time_column is not None:
            label = layout.time_name or "timestamp"
            times.append(_parse_time(fields[time_column].strip(), label, f"{path} line {number}", line))
        users.append(ids[0])
        items.append(ids[1])
        values.append(rating)
    return users, items, values, times


def _chunks(layout: _Layout):
    """(bytes ending in a newline, number of its first line), about CHUNK_BYTES at a time."""
    line = 2 if layout.header is not None else 1
    with open(layout.path, "rb") as handle:
        handle.seek(layout.data_offset)
        carry = b""
        while True:
            block = handle.read(CHUNK_BYTES)
            if not block:
                break
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry, block = block[cut:], block[:cut]
            if block:
                yield block, line
                line += block.count(b"\n")
        carry = carry.rstrip(b"\r\n")
        if carry:
            yield carry + b"\n", line


def _count_lines(layout: _Layout) -> int:
    """An upper bound on the data rows: one per newline, plus a last line without one."""
    count = 1
    with open(layout.path, "rb") as handle:
        handle.seek(layout.data_offset)
        for block in iter(lambda: handle.read(1 << 24), b""):
            count += block.count(b"\n")
    return count


def _read(layout: _Layout, text_ids: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    # Columns are filled in place rather than concatenated from pieces: a second copy
    # of 25M rows costs 500 MB, and the freed pieces stay in the process's heap.
    capacity = _count_lines(layout)
    users = np.empty(capacity, dtype=object if text_ids else np.int64)
    items = np.empty(capacity, dtype=users.dtype)
    values = np.empty(capacity, dtype=np.float32)
    times = np.empty(capacity, dtype=np.int64) if layout.time_column is not None else None
    filled = 0
    for chunk, first_line in _chunks(layout):
        parsed = None if text_ids else _parse_fast(chunk, layout)
        if parsed is None:
            parsed = _parse_lines(chunk[:-1], first_line, layout, text_ids)
        stop = filled + len(parsed[2])
        users[filled:stop], items[filled:stop], values[filled:stop] = parsed[:3]
        if times is not None:
            times[filled:stop] = parsed[3]
        filled = stop
    if not filled:
        raise mfbench.MfbenchError(f"{layout.path} holds no ratings")
    users, items, values = users[:filled], items[:filled], values[:filled]
    if times is not None:
        times = times[:filled]
    if text_ids:
        users, items = users.astype(str), items.astype(str)
    return users, items, values, times


def read_delimited(
    path: str | Path,
    delimiter: str = "auto",
    header: str = "auto",
    columns: tuple[str, str, str] = ("0", "1", "2"),
    integer_ids: bool = False,
    time: str = TIME_AUTO,
) -> RawRatings:
    """Read (user, item, rating) columns, and timestamps when there are any, from delimited text.

    :param delimiter: "auto" (sniffed from the first line), a name in DELIMITER_NAMES, or the string itself.
    :param header: "auto" (a header when line 1's rating field is not a number, or columns are named),
        "yes" or "no".
    :param columns: user, item and rating columns: 0-based positions ("0") or header names ("userId").
    :param integer_ids: refuse ids that are not integers (naming the line) instead of keeping them as text.
    :param time: the timestamp column, by name or 0-based position; "auto" (a header column named
        ``timestamp`` or ``timestamp:float``, else none) or "none". Timestamps must be whole numbers.
    """
    found = layout(Path(path), delimiter, header, columns, time)
    try:
        users, items, values, times = _read(found, text_ids=False)
    except _TextIds as exc:
        number, label, text = exc.args
        if integer_ids:
            raise mfbench.MfbenchError(f"{found.path} line {number}: {label} {text!r} is not an integer id") from None
        users, items, values, times = _read(found, text_ids=True)
    return RawRatings(users, items, values, found.header, times)


def read_npz(path: str | Path) -> mfbench.Ratings:
    """Ratings from ``.npz``: a scipy.sparse matrix (indices kept, shape kept) or COO arrays (ids made dense),
    with an optional integer ``times`` (or ``timestamps``) array beside the COO arrays."""
    path = Path(path)
    check_file(path)
    times = None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "format" in archive.files and "shape" in archive.files:
                matrix = scipy.sparse.load_npz(path).tocoo()
                arrays, raw_ids = (matrix.row, matrix.col, matrix.data), False
            else:
                names = next(
                    (n for n in (("users", "items", "values"), ("row", "col", "data")) if set(n) <= set(archive.files)),
                    None,
                )
                if names is None:
                    raise mfbench.MfbenchError(
                        f"{path} holds arrays {sorted(archive.files)}; expected users/items/values, row/col/data, "
                        f"or a matrix saved with scipy.sparse.save_npz"
                    )
                arrays, raw_ids = tuple(archive[n] for n in names), True
                times = next((archive[n] for n in ("times", "timestamps") if n in archive.files), None)
    except mfbench.MfbenchError:
        raise
    except Exception as exc:  # a damaged archive fails in numpy, zipfile or zlib, each its own way
        raise mfbench.MfbenchError(f"cannot read {path} as a .npz archive: {type(exc).__name__}: {exc}") from None
    users, items, values = arrays
    if not (users.ndim == items.ndim == values.ndim == 1 and len(users) == len(items) == len(values)):
        raise mfbench.MfbenchError(
            f"{path}: ids and values must be 1-D arrays of one length, got shapes {users.shape}, {items.shape}, {values.shape}"
        )
    if len(values) == 0:
        raise mfbench.MfbenchError(f"{path} holds no ratings")
    if values.dtype.kind not in "iuf" or not np.isfinite(values).all():
        raise mfbench.MfbenchError(f"{path}: values must be finite numbers (dtype {values.dtype})")
    beyond = np.flatnonzero(np.abs(values.astype(np.float64)) > FLOAT32_MAX)
    if len(beyond):
        raise mfbench.MfbenchError(
            f"{path}: value {values[beyond[0]]!r} at index {beyond[0]} is beyond float32's range (±{FLOAT32_MAX:.3g})"
        )
    if not raw_ids:
        return mfbench.Ratings.from_arrays(users, items, values, matrix.shape[0], matrix.shape[1])
    for label, ids in (("users", users), ("items", items)):
        if ids.dtype.kind not in "iuU":
            raise mfbench.MfbenchError(f"{path}: {label} ids must be integers or strings, got dtype {ids.dtype}")
    if times is not None:
        too_late = times.dtype.kind == "u" and times.shape == values.shape and int(times.max()) >= 2**63
        if times.dtype.kind not in "iu" or times.shape != values.shape or too_late:
            raise mfbench.MfbenchError(
                f"{path}: times must be int64 integers, one per rating; got dtype {times.dtype} and shape {times.shape} "
                f"for {len(values)} ratings"
            )
        times = times.astype(np.int64)
    return RawRatings(users, items, values.astype(np.float32), times=times).to_ratings()
