"""``hac data info DIR``: what a dataset directory holds, computed from its files (not just echoed from
``meta.json``), plus :func:`check_dataset`, the invariants every consumer relies on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from envs.data.format import ListRecords, load_meta, load_records

_UNIX_1973 = 100_000_000  # smaller timestamps are not Unix seconds of a real log (RL4RS keeps its own unit)


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    if ts < _UNIX_1973:
        return str(ts)
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def split_stats(rec: ListRecords) -> dict[str, Any]:
    n = len(rec)
    if n == 0:
        return {"records": 0}
    lengths = rec.history_lengths
    return {
        "records": n,
        "users": int(np.unique(rec.user_id).size),
        "items shown": int(np.unique(rec.slate).size),
        "positive rate": float(rec.feedback.mean()),
        "history mean": float(lengths.mean()),
        "history median": float(np.median(lengths)),
        "history max": int(lengths.max()),
        "empty history": float((lengths == 0).mean()),
        "first": int(rec.timestamp.min()),
        "last": int(rec.timestamp.max()),
    }


def summarize(data_dir: str | Path) -> dict[str, Any]:
    data_dir = Path(data_dir)
    meta = load_meta(data_dir)
    splits = {s: split_stats(load_records(data_dir, s)) for s in ("train", "test")}
    return {"meta": meta, "splits": splits, "problems": check_dataset(data_dir)}


def check_dataset(data_dir: str | Path) -> list[str]:
    """Problems found (empty when the directory is sound): counts in meta.json match the files, ids are in
    range with 0 free for padding, slates have k items, feedback is 0/1, and the split is by time."""
    data_dir = Path(data_dir)
    meta = load_meta(data_dir)
    problems = []
    items = pq.read_table(data_dir / "items.parquet").column("item_id").to_numpy()
    users = pq.read_table(data_dir / "users.parquet").column("user_id").to_numpy()
    n_items, n_users, k = meta.get("n_items"), meta.get("n_users"), meta.get("k")
    if len(items) != n_items or not np.array_equal(np.sort(items), np.arange(1, len(items) + 1)):
        problems.append(f"items.parquet has {len(items)} ids, not exactly 1..{n_items}")
    if len(users) != n_users or not np.array_equal(np.sort(users), np.arange(1, len(users) + 1)):
        problems.append(f"users.parquet has {len(users)} ids, not exactly 1..{n_users}")
    for what, col in (("item", "item_feature_columns"), ("user", "user_feature_columns")):
        names = [c for c in pq.read_schema(data_dir / f"{what}s.parquet").names if c != f"{what}_id"]
        if col in meta and names != meta[col]:
            problems.append(f"{what}s.parquet feature columns differ from meta.json {col}")
    recs = {}
    for split in ("train", "test"):
        rec = recs[split] = load_records(data_dir, split)
        if len(rec) != meta.get(f"n_{split}"):
            problems.append(f"{split}.parquet has {len(rec)} records, meta.json says {meta.get(f'n_{split}')}")
        if not len(rec):
            continue
        if rec.k != k:
            problems.append(f"{split} slates have {rec.k} items, meta.json says k={k}")
        if rec.slate.min() < 1 or rec.slate.max() > len(items):
            problems.append(f"{split} slate ids outside 1..{len(items)}")
        hv = rec.history_values
        if len(hv) and (hv.min() < 1 or hv.max() > len(items)):
            problems.append(f"{split} history ids outside 1..{len(items)} (0 is padding and never stored)")
        if rec.user_id.min() < 1 or rec.user_id.max() > len(users):
            problems.append(f"{split} user ids outside 1..{len(users)}")
        if not np.isin(rec.feedback, (0, 1)).all():
            problems.append(f"{split} feedback not 0/1")
        max_history = meta.get("preprocessing", {}).get("max_history")
        if max_history is not None and rec.history_lengths.max() > max_history:
            problems.append(f"{split} histories longer than max_history={max_history}")
    if len(recs["train"]) and len(recs["test"]) and recs["train"].timestamp.max() > recs["test"].timestamp.min():
        problems.append("a train record is newer than a test record: the split is not by time")
    return problems


def render_info(data_dir: str | Path, console=None) -> dict[str, Any]:
    """Print the summary as rich tables; returns it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = summarize(data_dir)
    meta = s["meta"]
    head = Table(title=f"{meta.get('name')}  ({Path(data_dir)})", show_header=False)
    head.add_column("", style="bold")
    head.add_column("")
    pre = meta.get("preprocessing", {})
    rows = [
        ("version", str(meta.get("version", "-"))),
        ("k (slate size)", str(meta.get("k"))),
        ("items", f"{meta.get('n_items'):,}  ({len(meta.get('item_feature_columns', []))} feature columns)"),
        ("users", f"{meta.get('n_users'):,}  ({len(meta.get('user_feature_columns', []))} feature columns)"),
        ("max history", str(pre.get("max_history", "-"))),
        ("split", f"{pre.get('train_fraction', '-')} train by time; test starts {_when(meta.get('split_timestamp'))}"),
        ("subset", {True: "yes: fewer rows than the official release", False: "no", None: "unknown"}[meta.get("subset")]),
    ]
    for key in ("positive", "core", "include_random_log"):
        if key in pre:
            rows.append((key, str(pre[key])))
    for r in rows:
        head.add_row(*r)
    console.print(head)

    table = Table(title="records")
    table.add_column("")
    for split in ("train", "test"):
        table.add_column(split, justify="right")
    keys = [k for k in s["splits"]["train"] if k != "records"] or list(s["splits"]["test"])
    for key in ["records", *[k for k in keys if k != "records"]]:
        cells = []
        for split in ("train", "test"):
            v = s["splits"][split].get(key)
            if v is None:
                cells.append("-")
            elif key in ("first", "last"):
                cells.append(_when(v))
            elif key in ("positive rate", "empty history"):
                cells.append(f"{v:.1%}")
            elif isinstance(v, float):
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v:,}")
        table.add_row(key, *cells)
    console.print(table)
    for w in meta.get("warnings", []):
        console.print(f"[yellow]note:[/yellow] {w}")
    for p in s["problems"]:
        console.print(f"[red]problem:[/red] {p}")
    return s
