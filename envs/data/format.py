"""The dataset directory: one on-disk format for every source (DESIGN.md, "Dataset directory").

A dataset directory holds

* ``items.parquet``  -- ``item_id`` (1..N, 0 is padding everywhere) plus numeric feature columns,
* ``users.parquet``  -- ``user_id`` (1..U, 0 is padding) plus numeric feature columns,
* ``train.parquet`` / ``test.parquet`` -- one row per logged list: ``user_id``, ``timestamp``,
  ``history`` (earlier positives, most recent last), ``slate`` (k item ids), ``feedback`` (k labels 0/1),
* ``meta.json`` -- name, k, counts, split time, preprocessing parameters and source checksums.

Feature columns are plain numeric columns (categoricals are one-hot / multi-hot expanded by the reader),
so every consumer gets a dense ``float32`` matrix with :func:`load_item_features` /
:func:`load_user_features` whose row 0 is the all-zero padding row.

Writing is atomic: :func:`write_dataset` builds the directory under a temporary name beside the target
and renames it into place, so an interrupted prepare never leaves a half-written dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from envs.data.errors import DataError, OutputExistsError

FORMAT_VERSION = 1
SPLITS = ("train", "test")
RECORD_COLUMNS = ("user_id", "timestamp", "history", "slate", "feedback")
DEFAULT_MAX_HISTORY = 50
DEFAULT_SLATE_SIZE = 10
DEFAULT_TRAIN_FRACTION = 0.8


@dataclass
class ListRecords:
    """Logged lists in columnar form: the in-memory twin of ``train.parquet`` / ``test.parquet``.

    ``history_offsets`` / ``history_values`` hold the ragged histories (CSR layout), which keeps a
    million records cheap; :meth:`padded_history` gives the left-padded matrix models consume.
    """

    user_id: np.ndarray  # (R,) int64
    timestamp: np.ndarray  # (R,) int64
    history_offsets: np.ndarray  # (R + 1,) int64
    history_values: np.ndarray  # (sum of lengths,) int64
    slate: np.ndarray  # (R, k) int64
    feedback: np.ndarray  # (R, k) int8

    def __len__(self) -> int:
        return int(self.user_id.shape[0])

    @property
    def k(self) -> int:
        return int(self.slate.shape[1])

    @property
    def history_lengths(self) -> np.ndarray:
        return np.diff(self.history_offsets)

    def history(self, i: int) -> np.ndarray:
        return self.history_values[self.history_offsets[i] : self.history_offsets[i + 1]]

    def padded_history(self, max_len: int) -> np.ndarray:
        """(R, max_len) int64, left-padded with 0, keeping the most recent ``max_len`` ids (most recent last)."""
        n = len(self)
        out = np.zeros((n, max_len), dtype=np.int64)
        lengths = np.minimum(self.history_lengths, max_len)
        if n == 0 or lengths.sum() == 0:
            return out
        rows = np.repeat(np.arange(n), lengths)
        # position within the kept tail of each history, counted from its end
        ends = self.history_offsets[1:]
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        src = np.repeat(ends - lengths, lengths) + within
        cols = np.repeat(max_len - lengths, lengths) + within
        out[rows, cols] = self.history_values[src]
        return out

    def select(self, index: np.ndarray) -> "ListRecords":
        """A subset of rows (boolean mask or integer index), histories included."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        lengths = self.history_lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        starts = self.history_offsets[index]
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return ListRecords(
            user_id=self.user_id[index],
            timestamp=self.timestamp[index],
            history_offsets=offsets,
            history_values=self.history_values[gather],
            slate=self.slate[index],
            feedback=self.feedback[index],
        )

    @staticmethod
    def concat(parts: list["ListRecords"]) -> "ListRecords":
        parts = [p for p in parts if len(p)] or parts[:1]
        values = np.concatenate([p.history_values for p in parts])
        lengths = np.concatenate([p.history_lengths for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return ListRecords(
            user_id=np.concatenate([p.user_id for p in parts]),
            timestamp=np.concatenate([p.timestamp for p in parts]),
            history_offsets=offsets,
            history_values=values,
            slate=np.concatenate([p.slate for p in parts]),
            feedback=np.concatenate([p.feedback for p in parts]),
        )

    # --- Arrow / Parquet -------------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        k = self.k
        n = len(self)
        slate_offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
        return pa.table(
            {
                "user_id": pa.array(self.user_id.astype(np.int64)),
                "timestamp": pa.array(self.timestamp.astype(np.int64)),
                "history": pa.ListArray.from_arrays(
                    pa.array(self.history_offsets.astype(np.int32)),
                    pa.array(self.history_values.astype(np.int32)),
                ),
                "slate": pa.ListArray.from_arrays(slate_offsets, pa.array(self.slate.reshape(-1).astype(np.int32))),
                "feedback": pa.ListArray.from_arrays(
                    slate_offsets, pa.array(self.feedback.reshape(-1).astype(np.int8))
                ),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table, *, path: str | Path = "<table>") -> "ListRecords":
        missing = [c for c in RECORD_COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(f"missing record columns {missing}; expected {list(RECORD_COLUMNS)}", path=path)
        n = table.num_rows

        def flat(name: str) -> tuple[np.ndarray, np.ndarray]:
            col = table.column(name).combine_chunks()
            offsets = col.offsets.to_numpy().astype(np.int64)
            values = col.values.to_numpy(zero_copy_only=False).astype(np.int64)
            return offsets - offsets[0], values[offsets[0] : offsets[-1]]

        h_off, h_val = flat("history")
        s_off, s_val = flat("slate")
        f_off, f_val = flat("feedback")
        lengths = np.diff(s_off)
        if n and (lengths.min() != lengths.max() or not np.array_equal(lengths, np.diff(f_off))):
            raise DataError("slates and feedback must all have the same length k", path=path)
        k = int(lengths[0]) if n else 0
        return cls(
            user_id=table.column("user_id").to_numpy().astype(np.int64),
            timestamp=table.column("timestamp").to_numpy().astype(np.int64),
            history_offsets=h_off,
            history_values=h_val,
            slate=s_val.reshape(n, k),
            feedback=f_val.reshape(n, k).astype(np.int8),
        )


# --- writing ---------------------------------------------------------------------------------------


def _feature_frame(frame: pd.DataFrame, id_col: str, what: str) -> pd.DataFrame:
    if id_col not in frame.columns:
        raise DataError(f"{what} table has no {id_col!r} column")
    ids = frame[id_col].to_numpy()
    if len(ids) and not np.array_equal(np.sort(ids), np.arange(1, len(ids) + 1)):
        raise DataError(f"{what} ids must be exactly 1..{len(ids)} (0 is reserved for padding)")
    for c in frame.columns:
        if c != id_col and not pd.api.types.is_numeric_dtype(frame[c]):
            raise DataError(f"{what} feature column {c!r} is not numeric (dtype {frame[c].dtype})")
    return frame.sort_values(id_col).reset_index(drop=True)


def _atomic_write_json(path: Path, obj: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def record_stats(records: ListRecords) -> dict[str, Any]:
    """Counts and statistics that ``meta.json`` stores and ``hac data info`` prints."""
    n = len(records)
    lengths = records.history_lengths
    out: dict[str, Any] = {"n_records": n}
    if n:
        out.update(
            n_users=int(np.unique(records.user_id).size),
            positive_rate=float(records.feedback.mean()),
            history_length_mean=float(lengths.mean()),
            history_length_max=int(lengths.max()),
            empty_history_fraction=float((lengths == 0).mean()),
            time_min=int(records.timestamp.min()),
            time_max=int(records.timestamp.max()),
        )
    return out


def write_dataset(
    out_dir: str | Path,
    *,
    name: str,
    items: pd.DataFrame,
    users: pd.DataFrame,
    train: ListRecords,
    test: ListRecords,
    meta: Mapping[str, Any],
    overwrite: bool = False,
    extra_files: Mapping[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Validate and write a dataset directory atomically; returns its path.

    ``meta`` carries the source-specific entries (preprocessing parameters, source checksums, subset
    notes); counts, k and the split time are computed here so they always match the files.
    ``extra_files`` maps a file name to a function that writes it (given its path), so side files such as
    raw-id maps or the synthetic ground truth are part of the same atomic rename.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not overwrite:
        raise OutputExistsError("output directory exists already; choose another --out or pass --overwrite", path=out_dir)
    items = _feature_frame(items, "item_id", "item")
    users = _feature_frame(users, "user_id", "user")
    n_items, n_users = len(items), len(users)
    k = train.k if len(train) else test.k
    for split, rec in (("train", train), ("test", test)):
        validate_records(rec, n_items=n_items, n_users=n_users, k=k, where=f"{split} records")

    full_meta: dict[str, Any] = {
        "name": name,
        "format_version": FORMAT_VERSION,
        "k": k,
        "n_items": n_items,
        "n_users": n_users,
        "n_train": len(train),
        "n_test": len(test),
        "item_feature_columns": [c for c in items.columns if c != "item_id"],
        "user_feature_columns": [c for c in users.columns if c != "user_id"],
        "split_timestamp": int(test.timestamp.min()) if len(test) else None,
        "split_date": _iso(int(test.timestamp.min())) if len(test) else None,
        "train_stats": record_stats(train),
        "test_stats": record_stats(test),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    full_meta.update(meta)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a dataset is meant to be shared
    try:
        pq.write_table(pa.Table.from_pandas(items, preserve_index=False), tmp / "items.parquet")
        pq.write_table(pa.Table.from_pandas(users, preserve_index=False), tmp / "users.parquet")
        pq.write_table(train.to_arrow(), tmp / "train.parquet")
        pq.write_table(test.to_arrow(), tmp / "test.parquet")
        for fname, write in (extra_files or {}).items():
            if Path(fname).name != fname or fname in {"items.parquet", "users.parquet", "train.parquet", "test.parquet", "meta.json"}:
                raise ValueError(f"extra file name {fname!r} must be a plain name not used by the format")
            write(tmp / fname)
        _atomic_write_json(tmp / "meta.json", full_meta)
        if out_dir.exists():  # overwrite: move the old one aside only once the new one is complete
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _iso(ts: int) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


def validate_records(rec: ListRecords, *, n_items: int, n_users: int, k: int, where: str) -> None:
    """The invariants every consumer relies on; violations are bugs in a reader, reported loudly."""
    if len(rec) == 0:
        return
    if rec.k != k:
        raise DataError(f"{where}: slates have {rec.k} items, expected k={k}")
    if rec.slate.min() < 1 or rec.slate.max() > n_items:
        raise DataError(f"{where}: slate item ids outside 1..{n_items}")
    if len(rec.history_values) and (rec.history_values.min() < 1 or rec.history_values.max() > n_items):
        raise DataError(f"{where}: history item ids outside 1..{n_items}")
    if rec.user_id.min() < 1 or rec.user_id.max() > n_users:
        raise DataError(f"{where}: user ids outside 1..{n_users}")
    if not np.isin(rec.feedback, (0, 1)).all():
        raise DataError(f"{where}: feedback labels must be 0 or 1")


# --- reading ---------------------------------------------------------------------------------------


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError("missing file of the dataset directory (was it built by `hac data prepare`?)", path=path)
    return path


def load_meta(data_dir: str | Path) -> dict[str, Any]:
    path = _require(Path(data_dir) / "meta.json")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path=path, line=e.lineno) from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"format_version {meta.get('format_version')!r}, this library reads {FORMAT_VERSION}", path=path)
    return meta


def load_records(data_dir: str | Path, split: str) -> ListRecords:
    """Records of one split: ``train``, ``test`` or ``all`` (train then test, i.e. in time order)."""
    if split == "all":
        return ListRecords.concat([load_records(data_dir, s) for s in SPLITS])
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {SPLITS + ('all',)}")
    path = _require(Path(data_dir) / f"{split}.parquet")
    return ListRecords.from_arrow(pq.read_table(path), path=path)


def _load_features(path: Path, id_col: str) -> tuple[np.ndarray, list[str]]:
    table = pq.read_table(_require(path)).to_pandas()
    if id_col not in table.columns:
        raise DataError(f"no {id_col!r} column", path=path)
    table = table.sort_values(id_col)
    cols = [c for c in table.columns if c != id_col]
    feats = np.zeros((len(table) + 1, len(cols)), dtype=np.float32)
    if cols:
        feats[table[id_col].to_numpy()] = table[cols].to_numpy(dtype=np.float32)
    return feats, cols


def load_item_features(data_dir: str | Path) -> np.ndarray:
    """(N + 1, d_item) float32; row 0 is the all-zero padding item."""
    return _load_features(Path(data_dir) / "items.parquet", "item_id")[0]


def load_user_features(data_dir: str | Path) -> np.ndarray:
    """(U + 1, d_user) float32; row 0 is the all-zero padding user."""
    return _load_features(Path(data_dir) / "users.parquet", "user_id")[0]
