"""Shared reader mechanics: locating source files, fast delimited-text parsing with errors that name the
file and line, one-hot / multi-hot expansion, and raw interactions -> dense ids, feature tables and lists.

Every reader returns a :class:`ReaderOutput`; :mod:`envs.data.prepare` splits it by time and writes it.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from envs.data.errors import DataError
from envs.data.format import ListRecords
from envs.data.lists import build_list_records, dense_ids


class DataWarning(UserWarning):
    """Something worth a user's attention that does not stop preparation (a subset, missing features)."""


@dataclass
class ReaderOutput:
    """What a reader hands to ``prepare``: dense tables, all records (before the split), provenance."""

    items: pd.DataFrame  # item_id 1..N + numeric feature columns
    users: pd.DataFrame  # user_id 1..U + numeric feature columns
    records: ListRecords  # every logged list, any order
    sources: list[Path]  # files read, for meta.json checksums
    counts: dict[str, int]  # rows read per logical file, compared with the registry's official counts
    preprocessing: dict[str, Any] = field(default_factory=dict)
    raw_item_ids: np.ndarray | None = None  # raw id of dense item i at index i - 1
    raw_user_ids: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # warnings, also recorded in meta.json


def warn(notes: list[str], message: str) -> None:
    """Record a note for meta.json and emit it as a :class:`DataWarning` for the caller to show."""
    notes.append(message)
    warnings.warn(message, DataWarning, stacklevel=3)


# --- locating files --------------------------------------------------------------------------------


def find_files(root: Path, pattern: str) -> list[Path]:
    """Files named like ``pattern`` (a glob on the file name) in ``root`` or, failing that, anywhere below it.

    Downloads keep the archive's folders (``ml-1m/ratings.dat``, ``KuaiRand-1K/data/...``) while users
    often pass the folder holding the files itself; both layouts work.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("source directory does not exist", path=root)
    direct = sorted(p for p in root.glob(pattern) if p.is_file())
    if direct:
        return direct
    return sorted(p for p in root.rglob(pattern) if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def find_file(root: Path, name: str, *, what: str = "") -> Path:
    """The single file ``name`` under ``root``; a clear error if it is missing or ambiguous."""
    found = find_files(root, name)
    if not found:
        hint = f" ({what})" if what else ""
        raise DataError(f"missing file {name!r}{hint} in the source directory", path=root)
    if len(found) > 1:
        raise DataError(f"{name!r} found {len(found)} times: {[str(p) for p in found]}; pass the folder that holds one copy", path=root)
    return found[0]


# --- delimited text --------------------------------------------------------------------------------

_LINE_RE = re.compile(r"line (\d+)")


def _line_of(path: Path, lineno: int, encoding: str) -> str:
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            if i == lineno:
                return raw.decode(encoding, errors="replace").rstrip("\r\n")
    return ""


def _count_fields(text: str, sep: str, quoted: bool = False) -> int:
    if not text:
        return 0
    if quoted and len(sep) == 1:
        return len(next(csv.reader([text], delimiter=sep)))
    return len(text.split(sep))


def _check_field_counts(path: Path, sep: str, n: int, skip: int) -> int | None:
    """The first line (1-based, after ``skip`` header lines) whose separator count is not ``n - 1``.

    pandas does not check rows when ``usecols`` is given, so the big unquoted logs (KuaiRand, RL4RS)
    are checked here: separators and newlines are located with numpy, 8 MB at a time (~0.3 s / 100 MB).
    """
    sep_byte, nl = ord(sep), ord("\n")
    line_no = 0  # lines completed so far
    carry = 0  # separators seen in the unfinished line
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            buf = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(buf == nl)
            seps = np.flatnonzero(buf == sep_byte)
            before = np.searchsorted(seps, ends)  # separators before each newline in this chunk
            per_line = np.diff(np.r_[0, before])
            if len(per_line):
                per_line[0] += carry
                carry = len(seps) - int(before[-1])
            else:
                carry += len(seps)
            first = 0 if line_no >= skip else skip - line_no
            bad = np.flatnonzero(per_line[first:] != n - 1)
            for b in bad:  # a blank line (0 separators) at the very end is tolerated by the caller
                return line_no + first + int(b) + 1
            line_no += len(per_line)
    if carry and carry != n - 1:  # last line without a newline
        return line_no + 1
    return None


def _read_csv(source: Any, sep: str, header: bool, quoted: bool, encoding: str, usecols: list[int] | None) -> pd.DataFrame:
    # low_memory (chunked tokenising) keeps a 500 MB log from needing several GB of token buffers
    return pd.read_csv(
        source,
        sep=sep,
        header=None,
        skiprows=1 if header else 0,
        skip_blank_lines=False,
        index_col=False,
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        encoding=encoding,
        usecols=usecols,
        low_memory=True,
    )


def read_delimited(
    path: Path,
    *,
    sep: str,
    columns: Sequence[str],
    header: bool = False,
    usecols: Sequence[str] | None = None,
    integer: Iterable[str] = (),
    numeric: Iterable[str] = (),
    encoding: str = "utf-8",
    quoted: bool = False,
    allow_missing: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a delimited text file fast (pandas' C parser) and check it strictly.

    ``sep='::'`` (MovieLens-1M) is rewritten to a tab in memory, which keeps the C parser (the python
    engine needed for multi-character separators is ~20x slower); a tab already in such a file is
    reported as a wrong separator. Checks: the file exists and has data rows, every row has exactly
    ``len(columns)`` fields, a header (if any) equals ``columns``, ``integer`` columns hold integers and
    ``numeric`` ones numbers; every failure names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("missing file", path=path)
    if path.stat().st_size == 0:
        raise DataError("empty file", path=path)
    columns = list(columns)
    n = len(columns)
    shown_sep = {"\t": "tab", " ": "space"}.get(sep, repr(sep))
    first_data_line = 2 if header else 1

    if header:
        first = _line_of(path, 1, encoding)
        found = next(csv.reader([first], delimiter=sep)) if len(sep) == 1 else first.split(sep)
        if [c.strip() for c in found] != columns:
            if _count_fields(first, sep) != n:
                raise DataError(
                    f"expected a header of {n} fields separated by {shown_sep} ({sep.join(columns)}), found {_count_fields(first, sep)} field(s): {first[:120]!r}",
                    path=path,
                    line=1,
                )
            raise DataError(f"unexpected header {found}; expected {columns}", path=path, line=1)

    def wrong_fields(line: int) -> DataError:
        text = _line_of(path, line, encoding)
        if not text.strip():
            return DataError("empty line", path=path, line=line)
        found = _count_fields(text, sep, quoted)
        return DataError(f"expected {n} fields separated by {shown_sep}, found {found}: {text[:120]!r}", path=path, line=line)

    # pandas takes the column count from the first row, so check that row ourselves
    if _count_fields(_line_of(path, first_data_line, encoding), sep, quoted) != n:
        if not _line_of(path, first_data_line, encoding) and header:
            raise DataError("no data rows", path=path, line=first_data_line)
        raise wrong_fields(first_data_line)

    if usecols is not None and not quoted and len(sep) == 1:
        bad_line = _check_field_counts(path, sep, n, first_data_line - 1)
        if bad_line is not None and _line_of(path, bad_line, encoding).strip():
            raise wrong_fields(bad_line)
        if bad_line is not None:  # a blank line: fine only if nothing but blank lines follows
            with open(path, "rb") as f:
                rest = [ln for i, ln in enumerate(f, start=1) if i > bad_line and ln.strip()]
            if rest:
                raise DataError("empty line", path=path, line=bad_line)

    source: Any = path
    read_sep = sep
    if sep == "::":
        data = path.read_bytes()
        tab = data.find(b"\t")
        if tab >= 0:
            line = data.count(b"\n", 0, tab) + 1
            raise DataError("found a tab, but this file's fields are separated by '::'", path=path, line=line)
        source, read_sep = io.BytesIO(data.replace(b"::", b"\t")), "\t"

    try:
        with warnings.catch_warnings():  # mixed types in a chunk are sorted out by the checks below
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = _read_csv(source, read_sep, header, quoted, encoding, None if usecols is None else [columns.index(c) for c in usecols])
    except pd.errors.EmptyDataError:
        raise DataError("no data rows", path=path, line=first_data_line) from None
    except pd.errors.ParserError as e:
        m = _LINE_RE.search(str(e))
        if not m:
            raise DataError(f"cannot parse ({e})", path=path) from None
        raise wrong_fields(int(m.group(1))) from None  # pandas counts physical lines, the header included
    except UnicodeDecodeError as e:
        raise _decode_error(path, encoding, e) from None

    # blank lines at the very end are harmless; blank lines inside are reported below
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any() and blank[-1]:
        last = len(blank) - int(np.argmin(blank[::-1])) if not blank.all() else 0
        frame = frame.iloc[:last]
    if len(frame) == 0:
        raise DataError("no data rows", path=path, line=first_data_line)
    # pandas returns usecols in file order, whatever order they were asked in
    frame.columns = columns if usecols is None else [c for c in columns if c in set(usecols)]

    allow_missing = set(allow_missing)
    check = [c for c in frame.columns if c not in allow_missing]
    missing = frame[check].isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing.any(axis=1))[0])
        line = row + first_data_line
        text = _line_of(path, line, encoding)
        if not text.strip() or _count_fields(text, sep, quoted) != n:
            raise wrong_fields(line)
        col = check[int(np.flatnonzero(missing[row])[0])]
        raise DataError(f"empty value in column {col!r}: {text[:120]!r}", path=path, line=line)

    for col in integer:
        if col in frame.columns:
            frame[col] = _as_integer(frame[col], col, path, first_data_line)
    for col in numeric:
        if col in frame.columns and not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = _as_number(frame[col], col, path, first_data_line)
    return frame


def _decode_error(path: Path, encoding: str, first: UnicodeDecodeError) -> DataError:
    """pandas reports the byte offset within a chunk; find the line by decoding the file line by line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as e:
                return DataError(f"not valid {encoding} text ({e.reason}, byte {raw[e.start:e.start + 1]!r} at column {e.start + 1})", path=path, line=lineno)
    return DataError(f"not valid {encoding} text ({first.reason})", path=path)


def _as_number(values: pd.Series, col: str, path: Path, first_line: int) -> pd.Series:
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"column {col!r} is not a number: {values.iloc[row]!r}", path=path, line=row + first_line)
    return parsed


def _as_integer(values: pd.Series, col: str, path: Path, first_line: int) -> pd.Series:
    if pd.api.types.is_integer_dtype(values):
        return values.astype(np.int64)
    parsed = _as_number(values, col, path, first_line)
    frac = parsed.notna() & (parsed != np.floor(parsed))
    if frac.any():
        row = int(np.flatnonzero(frac.to_numpy())[0])
        raise DataError(f"column {col!r} is not an integer: {values.iloc[row]!r}", path=path, line=row + first_line)
    if parsed.isna().any():
        return parsed
    return parsed.astype(np.int64)


def first_duplicate(ids: pd.Series, path: Path, what: str, first_line: int) -> None:
    """Raise naming the line of the first repeated id (feature tables must list each id once)."""
    dup = ids.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(f"{what} {ids.iloc[row]!r} listed twice", path=path, line=row + first_line)


def check_range(values: pd.Series | np.ndarray, ok: np.ndarray, path: Path, what: str, first_line: int) -> None:
    """Raise naming the first line whose value fails ``ok``."""
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        v = values.iloc[row] if isinstance(values, pd.Series) else values[row]
        raise DataError(f"{what}: {v!r}", path=path, line=row + first_line)


# --- feature expansion -----------------------------------------------------------------------------


def one_hot(values: pd.Series, prefix: str, categories: Sequence[Any] | None = None) -> pd.DataFrame:
    """Numeric one-hot columns ``prefix=value``; categories sorted (or given), so layouts are reproducible."""
    if categories is None:
        categories = sorted(pd.unique(values.dropna()), key=_sort_key)
    codes = pd.Categorical(values, categories=list(categories)).codes
    out = np.zeros((len(values), len(categories)), dtype=np.float32)
    rows = np.flatnonzero(codes >= 0)
    out[rows, codes[rows]] = 1.0
    return pd.DataFrame(out, columns=[f"{prefix}={_label(c)}" for c in categories], index=values.index)


def multi_hot(values: pd.Series, sep: str, prefix: str, ignore: Sequence[str] = ()) -> pd.DataFrame:
    """Numeric multi-hot columns ``prefix=token`` from ``sep``-joined token strings (e.g. genres)."""
    dummies = values.fillna("").astype(str).str.get_dummies(sep=sep)
    keep = sorted((c for c in dummies.columns if c and c not in ignore), key=_sort_key)
    out = dummies[keep].astype(np.float32)
    out.columns = [f"{prefix}={c}" for c in keep]
    return out


def _sort_key(v: Any) -> tuple:
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _label(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


# --- interactions -> dataset -------------------------------------------------------------------------


def _feature_table(dense_raw: np.ndarray, features: pd.DataFrame | None, id_col: str, what: str, notes: list[str]) -> pd.DataFrame:
    """Rows for raw ids ``dense_raw`` (dense id i+1 at index i); ids without a feature row get zeros."""
    table = pd.DataFrame({id_col: np.arange(1, len(dense_raw) + 1, dtype=np.int64)})
    if features is None or features.shape[1] == 0:
        return table
    feats = features.reindex(dense_raw)
    absent = feats.isna().all(axis=1).to_numpy()
    if absent.any():
        warn(notes, f"{int(absent.sum())} of {len(dense_raw)} {what} have no feature row; their features are zeros (e.g. raw id {dense_raw[absent][0]!r})")
    feats = feats.fillna(0.0).astype(np.float32).reset_index(drop=True)
    return pd.concat([table, feats], axis=1)


def from_interactions(
    user_raw: np.ndarray,
    item_raw: np.ndarray,
    timestamp: np.ndarray,
    label: np.ndarray,
    *,
    item_features: pd.DataFrame | None,
    user_features: pd.DataFrame | None,
    k: int,
    max_history: int,
    notes: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame, ListRecords, np.ndarray, np.ndarray]:
    """Dense ids (1..N / 1..U over the ids in the log), feature tables indexed by raw id -> dense rows, lists.

    Rows must come in file order: time ties keep it (build_list_records sorts stably).
    """
    users_dense, user_uniques = dense_ids(user_raw)
    items_dense, item_uniques = dense_ids(item_raw)
    records = build_list_records(users_dense, items_dense, timestamp, label, k=k, max_history=max_history)
    if len(records) == 0:
        raise DataError(f"no user has {k} interactions, so no list of k={k} can be built; lower --k or use more data")
    items = _feature_table(item_uniques, item_features, "item_id", "items", notes)
    users = _feature_table(user_uniques, user_features, "user_id", "users", notes)
    return items, users, records, item_uniques, user_uniques
