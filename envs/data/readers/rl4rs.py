"""RL4RS dataset B reader (NetEase Fuxi; Wang et al.): its own logged slates of 9, not cut by us.

Raw format, ``@``-separated with a header:
``timestamp@session_id@sequence_id@exposed_items@user_feedback@user_seqfeature@user_protrait@item_feature@behavior_policy_id``.

* One record per row: ``slate`` = ``exposed_items`` (9 ids), ``feedback`` = ``user_feedback`` (9 labels),
  ``history`` = ``user_seqfeature`` (the user's earlier clicked items as RL4RS logged them, ``0`` = none),
  its last ``max_history`` ids, as HAC reads it. ``item_feature`` (360 numbers a row) is not needed:
  the same vectors are in ``item_info.csv``.
* Users: RL4RS has no user id. ``session_id`` is the only identity in the file, and each session
  carries one portrait (checked: a session whose portrait changes keeps its first, with a warning),
  so a user here is a session: dense ``user_id`` = rank of ``session_id``. Consecutive sessions of one
  real person cannot be linked reliably (portraits of different sessions differ), so they are not.
* User features: ``log(1 + portrait)`` element-wise (HAC's choice), negatives clipped to 0 first.
* Items: ``item_info.csv`` (space-separated: ``item_id item_vec price location special_item``), ids
  1..283 kept as they are; features = the 40-d ``item_vec``, ``log1p(price)``, ``location`` and
  ``special_item`` one-hot.
* Files: ``rl4rs_dataset_b_rl.csv`` (the session log) if present, else ``rl4rs_dataset_b_sl.csv``,
  else HAC's ``rl4rs_b_train.csv`` + ``rl4rs_b_test.csv`` (rows pooled; prepare re-splits by time).
  The raw ``timestamp`` is kept as it is (its unit is not documented).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from envs.data.errors import DataError
from envs.data.format import ListRecords
from envs.data.readers._common import ReaderOutput, find_file, find_files, first_duplicate, one_hot, read_delimited, warn

COLUMNS = (
    "timestamp", "session_id", "sequence_id", "exposed_items", "user_feedback", "user_seqfeature",
    "user_protrait", "item_feature", "behavior_policy_id",
)  # fmt: skip
USED = ("timestamp", "session_id", "sequence_id", "exposed_items", "user_feedback", "user_seqfeature", "user_protrait")
SLATE_SIZE = 9
ITEM_VEC_DIM = 40
LOG_FILE_CHOICES = (("rl4rs_dataset_b_rl.csv",), ("rl4rs_dataset_b_sl.csv",), ("rl4rs_b_train.csv", "rl4rs_b_test.csv"))


def log_files(source: Path) -> list[Path]:
    """The dataset-B log file(s) to read, by the preference order of the module docstring."""
    for names in LOG_FILE_CHOICES:
        found = [find_files(source, n) for n in names]
        if all(found):
            return [f[0] for f in found]
    raise DataError(
        "missing RL4RS dataset-B log: none of " + ", ".join(" + ".join(n) for n in LOG_FILE_CHOICES) + " in the source directory",
        path=source,
    )


def _parse_lists(values: pd.Series, path: Path, col: str, first_line: int, *, length: int | None, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Comma lists -> (flat values, per-row lengths), parsed in Arrow (no Python object per number, which
    matters for the 2 GB raw files); a fixed ``length`` is enforced and errors name the line."""
    lists = pc.split_pattern(pa.array(values.astype(str).to_numpy(dtype=object), type=pa.string()), ",")
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    if length is not None and (lengths != length).any():
        row = int(np.flatnonzero(lengths != length)[0])
        raise DataError(f"{col} must hold {length} comma-separated values, found {lengths[row]}", path=path, line=row + first_line)
    flat = pc.list_flatten(lists)
    try:
        out = pc.cast(flat, pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(out)
    except pa.ArrowInvalid:  # slow path, only to say where
        out = pd.to_numeric(pd.Series(flat.to_pylist()), errors="coerce").to_numpy()
        bad = np.isnan(out)
    if np.issubdtype(dtype, np.integer):
        bad |= np.isfinite(out) & (out != np.floor(out))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(np.cumsum(lengths), at, side="right"))
        kind = "an integer" if np.issubdtype(dtype, np.integer) else "a number"
        raise DataError(f"{col}: not {kind}: {flat[at].as_py()!r}", path=path, line=row + first_line)
    return out.astype(dtype), lengths


def _read_items(path: Path) -> pd.DataFrame:
    table = read_delimited(path, sep=" ", header=True, columns=["item_id", "item_vec", "price", "location", "special_item"],
                           integer=["item_id", "location", "special_item"], numeric=["price"])  # fmt: skip
    first_duplicate(table["item_id"], path, "item_id", 2)
    ids = table["item_id"].to_numpy()
    if not np.array_equal(np.sort(ids), np.arange(1, len(ids) + 1)):
        raise DataError(f"item ids must be exactly 1..{len(ids)} (RL4RS numbers its items densely)", path=path)
    vec, _ = _parse_lists(table["item_vec"], path, "item_vec", 2, length=ITEM_VEC_DIM, dtype=np.float32)
    vec = vec.reshape(len(table), ITEM_VEC_DIM)
    feats = pd.concat(
        [
            pd.DataFrame({"item_id": ids}),
            pd.DataFrame(vec, columns=[f"item_vec_{j}" for j in range(ITEM_VEC_DIM)]),
            pd.DataFrame({"log1p_price": np.log1p(np.clip(table["price"].to_numpy(np.float64), 0, None)).astype(np.float32)}),
            one_hot(table["location"], "location"),
            one_hot(table["special_item"], "special_item"),
        ],
        axis=1,
    )
    return feats.sort_values("item_id").reset_index(drop=True)


def read_rl4rs(source: Path, *, k: int, max_history: int) -> ReaderOutput:
    """Dataset-B rows -> one record each; users are sessions; items from ``item_info.csv``."""
    if k != SLATE_SIZE:
        raise DataError(f"RL4RS records are its logged slates of {SLATE_SIZE} items; --k {k} is not possible")
    notes: list[str] = []
    item_path = find_file(source, "item_info.csv", what="RL4RS item vectors")
    items = _read_items(item_path)
    n_items = len(items)

    paths = log_files(source)
    parts = []
    for path in paths:
        frame = read_delimited(
            path, sep="@", header=True, columns=COLUMNS, usecols=USED, integer=["timestamp", "session_id", "sequence_id"],
            allow_missing=["user_seqfeature"],
        )  # fmt: skip
        frame["user_seqfeature"] = frame["user_seqfeature"].fillna("0")  # an empty history, like RL4RS's own "0"
        frame["_line"] = np.arange(2, len(frame) + 2)
        frame["_file"] = len(parts)
        parts.append(frame)
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.sort_values(["session_id", "sequence_id", "timestamp"], kind="stable").reset_index(drop=True)

    def fail_at(row: int, message: str):
        """Rows were pooled and sorted: name the file and line the row came from."""
        raise DataError(message, path=paths[int(rows["_file"].iloc[row])], line=int(rows["_line"].iloc[row]))

    def parse(col: str, length: int | None, dtype):
        try:
            return _parse_lists(rows[col], Path("rows"), col, 0, length=length, dtype=dtype)
        except DataError as e:
            fail_at(e.line, str(e).split(": ", 1)[1])

    slate, _ = parse("exposed_items", SLATE_SIZE, np.int64)
    slate = slate.reshape(-1, SLATE_SIZE)
    feedback, _ = parse("user_feedback", SLATE_SIZE, np.int64)
    feedback = feedback.reshape(-1, SLATE_SIZE)
    for name, arr, ok in (
        ("exposed_items", slate, (slate >= 1) & (slate <= n_items)),
        ("user_feedback", feedback, np.isin(feedback, (0, 1))),
    ):
        if not ok.all():
            row = int(np.flatnonzero(~ok.all(axis=1))[0])
            fail_at(row, f"{name}: values must be in {'1..%d (item_info.csv)' % n_items if name == 'exposed_items' else '{0, 1}'}, found {arr[row].tolist()}")

    hist, hist_len = parse("user_seqfeature", None, np.int64)
    if ((hist < 0) | (hist > n_items)).any():
        row = int(np.repeat(np.arange(len(rows)), hist_len)[np.flatnonzero((hist < 0) | (hist > n_items))[0]])
        fail_at(row, f"user_seqfeature: item ids must be in 0..{n_items} (0 = none)")
    # drop the 0 placeholders, then keep each row's last max_history ids
    row_of = np.repeat(np.arange(len(rows)), hist_len)
    keep = hist != 0
    hist, row_of = hist[keep], row_of[keep]
    lengths = np.bincount(row_of, minlength=len(rows))
    ends = np.cumsum(lengths)
    rank_from_end = ends[row_of] - np.arange(len(hist)) - 1
    keep = rank_from_end < max_history
    hist, row_of = hist[keep], row_of[keep]
    lengths = np.bincount(row_of, minlength=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    portrait, _ = parse("user_protrait", None, np.float64)
    dims = rows["user_protrait"].astype(str).str.count(",").to_numpy() + 1
    if (dims != dims[0]).any():
        row = int(np.flatnonzero(dims != dims[0])[0])
        fail_at(row, f"user_protrait: the portrait has {dims[row]} values, the first row has {dims[0]}")
    portrait = portrait.reshape(len(rows), int(dims[0]))

    sessions = rows["session_id"].to_numpy()
    session_ids, user_id = np.unique(sessions, return_inverse=True)
    first_row = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]])  # rows are sorted by session
    changed = (portrait != portrait[first_row][user_id]).any(axis=1)
    if changed.any():
        warn(notes, f"{int(np.unique(user_id[changed]).size)} session(s) change their portrait between rows; each keeps its first")
    user_feats = np.log1p(np.clip(portrait[first_row], 0, None)).astype(np.float32)
    users = pd.concat(
        [pd.DataFrame({"user_id": np.arange(1, len(session_ids) + 1)}), pd.DataFrame(user_feats, columns=[f"portrait_{j}" for j in range(user_feats.shape[1])])],
        axis=1,
    )

    records = ListRecords(
        user_id=user_id.astype(np.int64) + 1,
        timestamp=rows["timestamp"].to_numpy(np.int64),
        history_offsets=offsets,
        history_values=hist.astype(np.int64),
        slate=slate,
        feedback=feedback.astype(np.int8),
    )
    return ReaderOutput(
        items=items,
        users=users,
        records=records,
        sources=[*paths, item_path],
        counts={"rows": len(rows), "sessions": len(session_ids), "items_listed": n_items},
        preprocessing={
            "positive": "user_feedback as logged",
            "records": f"one per logged row: its slate of {SLATE_SIZE} and feedback; history = user_seqfeature (0 = none), last max_history",
            "users": "one per session_id (RL4RS has no user id); features log(1 + portrait), negatives clipped to 0",
            "item_features": "item_vec (40), log1p(price), location and special_item one-hot",
            "log_files": [p.name for p in paths],
            "timestamp_unit": "raw RL4RS timestamp (unit undocumented)",
        },
        raw_item_ids=np.arange(1, n_items + 1),
        raw_user_ids=session_ids,
        notes=notes,
    )
