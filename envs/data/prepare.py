"""``hac data prepare NAME``: source files -> the dataset directory of DESIGN.md.

NAME -> its reader (interactions cut into lists of k with positive histories; RL4RS: its logged slates)
-> :func:`split_by_time` (first 80 % of records train) -> :func:`write_dataset` (atomic). ``meta.json``
records the source files' sha256 (and whether they match the official release), the preprocessing
parameters, and whether the source is a subset of the official release (fewer rows than its official
counts), which is allowed with a warning. ``synthetic`` is generated instead of read.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from envs.data.download import dataset_cache, is_downloaded, sha256_of
from envs.data.errors import DataError, OutputExistsError
from envs.data.format import DEFAULT_MAX_HISTORY, DEFAULT_SLATE_SIZE, DEFAULT_TRAIN_FRACTION, write_dataset
from envs.data.lists import split_by_time
from envs.data.readers._common import DataWarning, ReaderOutput
from envs.data.registry import DatasetEntry, get_entry

if TYPE_CHECKING:
    from envs.data.synthetic import SyntheticParams

__all__ = ["prepare", "DataWarning", "default_k"]


def _readers() -> dict[str, Callable[..., ReaderOutput]]:
    from envs.data.readers import kuairand, movielens, rl4rs

    return {
        "ml1m": movielens.read_ml1m,
        "ml100k": movielens.read_ml100k,
        "ml-latest-small": movielens.read_ml_latest_small,
        "kuairand-1k": kuairand.read_kuairand_1k,
        "kuairand-pure": kuairand.read_kuairand_pure,
        "rl4rs": rl4rs.read_rl4rs,
    }


def default_k(name: str) -> int:
    """Slate size: 10 (Appendix A.1), RL4RS 9 (its logged slates)."""
    return 9 if get_entry(name).family == "rl4rs" else DEFAULT_SLATE_SIZE


def _subset(entry: DatasetEntry, out: ReaderOutput) -> tuple[bool | None, dict[str, Any], list[str]]:
    """Compare what was read with the official counts (or, lacking them, the official file sizes)."""
    detail: dict[str, Any] = {}
    messages: list[str] = []
    subset: bool | None = None
    for key, official in entry.expected.items():
        if key not in out.counts:
            continue
        got = int(out.counts[key])
        detail[key] = {"read": got, "official": official}
        if got < official:
            subset = True
            messages.append(f"{key}: {got:,} of the official {official:,}")
        elif got > official:
            messages.append(f"{key}: {got:,}, more than the official {official:,} (a different release?)")
        elif subset is None:
            subset = False
    if entry.approx_bytes and "rows" in entry.approx_bytes and not any(k in entry.expected for k in ("rows",)):
        read_bytes = sum(p.stat().st_size for p in out.sources if p.name != "item_info.csv")
        official = entry.approx_bytes["rows"]
        detail["log_bytes"] = {"read": read_bytes, "official_approx": official}
        if read_bytes < official // 2:
            subset = True
            messages.append(f"log files hold {read_bytes:,} bytes, the official dataset-B log about {official:,}")
        elif subset is None:
            subset = False
    return subset, detail, messages


def _sources_meta(entry: DatasetEntry, paths: list[Path], source: Path) -> dict[str, Any]:
    pinned = {m.path.rsplit("/", 1)[-1]: m for m in entry.members}
    out = {}
    for p in paths:
        d: dict[str, Any] = {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
        m = pinned.get(p.name)
        if m is not None and m.sha256:
            d["official_sha256"] = d["sha256"] == m.sha256
        try:
            key = p.relative_to(source).as_posix()
        except ValueError:
            key = str(p)
        out[key] = d
    return out


def _id_map_writer(raw: np.ndarray, id_col: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        table = pa.table({id_col: np.arange(1, len(raw) + 1, dtype=np.int64), "raw_id": pa.array(np.asarray(raw))})
        pq.write_table(table, path)

    return write


def prepare(
    name: str,
    out: str | Path,
    *,
    source: str | Path | None = None,
    cache_dir: str | Path | None = None,
    k: int | None = None,
    max_history: int = DEFAULT_MAX_HISTORY,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    overwrite: bool = False,
    include_random_log: bool = False,
    core: int | None = None,
    synthetic: "SyntheticParams | None" = None,
) -> Path:
    """Build the dataset directory ``out`` for dataset ``name``; returns its path.

    ``source`` is a folder holding the files (any layout below it); without it the download cache
    (``hac data download NAME``) is used. ``synthetic`` sets the generator's parameters (k, max_history
    and train_fraction still come from the arguments). Warnings (a subset, items without features) are emitted as
    :class:`DataWarning` and also recorded in ``meta.json``.
    """
    entry = get_entry(name)
    out = Path(out)
    if out.exists() and not overwrite:  # fail before the slow part; write_dataset checks again
        raise OutputExistsError("output directory exists already; choose another --out or pass --overwrite", path=out.absolute())
    if max_history < 0:
        raise DataError(f"--max-history must be >= 0, got {max_history}")
    k = default_k(entry.name) if k is None else k
    if k < 1:
        raise DataError(f"--k must be >= 1, got {k}")

    if entry.family == "synthetic":
        if source is not None:
            raise DataError("the synthetic dataset is generated; it takes no --source")
        from envs.data.synthetic import SyntheticParams, write_synthetic

        params = dataclasses.replace(synthetic or SyntheticParams(), k=k, max_history=max_history, train_fraction=train_fraction)
        return write_synthetic(out, params, overwrite=overwrite)

    if source is None:
        source = dataset_cache(entry.name, cache_dir)
        if not is_downloaded(entry.name, cache_dir):
            raise DataError(f"{entry.title} is not in the cache; run `hac data download {entry.name}` first or pass --source DIR", path=source)
    source = Path(source)
    if not source.is_dir():
        raise DataError("source directory does not exist", path=source)

    options: dict[str, Any] = {"k": k, "max_history": max_history}
    if entry.family == "kuairand":
        options.update(include_random_log=include_random_log, core=core)
    elif include_random_log or core is not None:
        raise DataError("--include-random-log and --core apply to KuaiRand only")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        result = _readers()[entry.name](source, **options)
    notes = list(result.notes)
    subset, subset_detail, subset_messages = _subset(entry, result)
    if subset:
        notes.append("subset of the official release: " + "; ".join(subset_messages))
    elif subset_messages:
        notes.append("; ".join(subset_messages))
    for w in caught:  # the reader's notes are in `notes` already; anything else is passed on unchanged
        if not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)

    train, test = split_by_time(result.records, train_fraction)
    meta = {
        "version": entry.version,
        "source": entry.name,
        "origin": entry.describe(),
        "subset": subset,
        "subset_detail": subset_detail,
        "warnings": notes,
        "preprocessing": {
            "k": k,
            "max_history": max_history,
            "train_fraction": train_fraction,
            "split": "by record timestamp: the first train_fraction of records train, the rest test",
            "lists": "each user's interactions in time order, cut into consecutive lists of k (the incomplete tail dropped); history = the user's positives before the list, most recent last"
            if entry.family != "rl4rs"
            else "RL4RS logged slates as they are",
            **result.preprocessing,
        },
        "source_counts": result.counts,
        "sources": _sources_meta(entry, result.sources, source),
    }
    extra = {}
    if result.raw_item_ids is not None:
        extra["item_ids.parquet"] = _id_map_writer(result.raw_item_ids, "item_id")
    if result.raw_user_ids is not None:
        extra["user_ids.parquet"] = _id_map_writer(result.raw_user_ids, "user_id")
    return write_dataset(
        out, name=entry.name, items=result.items, users=result.users, train=train, test=test, meta=meta, overwrite=overwrite, extra_files=extra
    )


def read_id_map(data_dir: str | Path, kind: str = "item") -> pd.DataFrame:
    """The dense id -> raw source id table (``item`` or ``user``) that prepare wrote beside the dataset."""
    path = Path(data_dir) / f"{kind}_ids.parquet"
    if not path.is_file():
        raise DataError("no id map (synthetic datasets have none)", path=path)
    return pq.read_table(path).to_pandas()
