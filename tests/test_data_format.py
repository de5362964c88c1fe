"""Invariants of the dataset format (format.py), the list builder (lists.py) and the synthetic generator."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from envs.data.errors import DataError, OutputExistsError
from envs.data.format import ListRecords, load_item_features, load_meta, load_records, load_user_features, write_dataset
from envs.data.info import check_dataset
from envs.data.lists import build_list_records, dense_ids, split_by_time
from envs.data.synthetic import SyntheticParams, generate, load_truth


def _records(histories, k=2, seed=0):
    rng = np.random.default_rng(seed)
    n = len(histories)
    lengths = np.array([len(h) for h in histories])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return ListRecords(
        user_id=np.arange(1, n + 1),
        timestamp=np.arange(n) * 10,
        history_offsets=offsets,
        history_values=np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if n else np.zeros(0, np.int64),
        slate=rng.integers(1, 9, size=(n, k)),
        feedback=rng.integers(0, 2, size=(n, k)).astype(np.int8),
    )


def _same(a: ListRecords, b: ListRecords) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("user_id", "timestamp", "history_offsets", "history_values", "slate", "feedback")
    )


def test_padded_history_left_pads_and_keeps_the_most_recent():
    rec = _records([[], [5], [1, 2, 3], [4, 5, 6, 7, 8]])
    assert rec.padded_history(3).tolist() == [[0, 0, 0], [0, 0, 5], [1, 2, 3], [6, 7, 8]]
    assert rec.padded_history(5)[3].tolist() == [4, 5, 6, 7, 8]
    assert rec.padded_history(1)[:, 0].tolist() == [0, 5, 3, 8]


def test_select_and_concat_round_trip():
    rng = np.random.default_rng(1)
    rec = _records([list(rng.integers(1, 9, size=rng.integers(0, 6))) for _ in range(50)], k=3)
    mask = rng.random(50) < 0.4
    parts = ListRecords.concat([rec.select(mask), rec.select(~mask)])
    order = np.r_[np.flatnonzero(mask), np.flatnonzero(~mask)]
    assert _same(parts, rec.select(order))
    for i, j in enumerate(order):
        assert parts.history(i).tolist() == rec.history(j).tolist()
    assert _same(ListRecords.from_arrow(rec.to_arrow()), rec)
    assert len(rec.select(np.zeros(50, dtype=bool))) == 0


def _reference_lists(user, item, ts, label, k, max_history):
    """A plain-Python statement of Appendix A.1, to check the vectorised builder against."""
    by_user: dict[int, list] = {}
    for i in range(len(user)):
        by_user.setdefault(int(user[i]), []).append((int(ts[i]), i, int(item[i]), int(label[i])))
    out = []
    for u, seq in by_user.items():
        seq.sort()
        positives: list[int] = []
        for start in range(0, len(seq) - k + 1, k):
            chunk = seq[start : start + k]
            hist = positives[-max_history:] if max_history else []
            out.append((u, chunk[0][0], tuple(c[2] for c in chunk), tuple(c[3] for c in chunk), tuple(hist)))
            positives.extend(c[2] for c in chunk if c[3])
    return sorted(out)


def _as_tuples(rec: ListRecords):
    return sorted(
        (int(rec.user_id[i]), int(rec.timestamp[i]), tuple(rec.slate[i].tolist()), tuple(rec.feedback[i].tolist()), tuple(rec.history(i).tolist()))
        for i in range(len(rec))
    )


@pytest.mark.parametrize("k,max_history", [(3, 4), (1, 2), (5, 0), (4, 50)])
def test_build_list_records_matches_the_definition(k, max_history):
    rng = np.random.default_rng(k)
    n = 400
    user = rng.integers(1, 12, size=n)
    ts = rng.integers(0, 60, size=n)  # many ties: the stable order must decide
    item = rng.integers(1, 30, size=n)
    label = rng.integers(0, 2, size=n)
    rec = build_list_records(user, item, ts, label, k=k, max_history=max_history)
    assert rec.k == k
    assert _as_tuples(rec) == _reference_lists(user, item, ts, label, k, max_history)


def test_build_list_records_rejects_bad_arguments():
    with pytest.raises(DataError):
        build_list_records([1], [1], [1], [1, 0], k=1, max_history=1)
    with pytest.raises(DataError):
        build_list_records([1], [1], [1], [1], k=0, max_history=1)


def test_split_by_time_puts_every_test_record_after_every_train_record():
    rng = np.random.default_rng(2)
    rec = _records([[1]] * 101)
    rec.timestamp = rng.permutation(101) * 7
    train, test = split_by_time(rec, 0.8)
    assert len(train) == 80 and len(test) == 21
    assert train.timestamp.max() < test.timestamp.min()
    assert np.all(np.diff(train.timestamp) >= 0) and np.all(np.diff(test.timestamp) >= 0)
    with pytest.raises(DataError):
        split_by_time(rec, 1.0)


def test_dense_ids_start_at_one():
    dense, uniques = dense_ids(np.array([50, 7, 50, 9]))
    assert dense.tolist() == [3, 1, 3, 2] and uniques.tolist() == [7, 9, 50]


def _tables(n_items=8, n_users=4):
    items = pd.DataFrame({"item_id": np.arange(n_items, 0, -1), "f": np.arange(n_items, 0, -1, dtype=np.float32)})
    users = pd.DataFrame({"user_id": np.arange(1, n_users + 1)})
    return items, users


def test_write_dataset_counts_padding_and_atomicity(tmp_path):
    items, users = _tables()
    rec = _records([[1, 2], [3], [], [4, 5, 6]])
    train, test = split_by_time(rec, 0.5)
    out = write_dataset(tmp_path / "d", name="t", items=items, users=users, train=train, test=test, meta={"x": 1})
    meta = load_meta(out)
    assert (meta["n_items"], meta["n_users"], meta["n_train"], meta["n_test"], meta["k"]) == (8, 4, 2, 2, 2)
    assert meta["split_timestamp"] == int(test.timestamp.min()) and meta["x"] == 1
    feats = load_item_features(out)
    assert feats.shape == (9, 1) and feats[0, 0] == 0 and feats[3, 0] == 3  # row 0 = padding, rows by id
    assert load_user_features(out).shape == (5, 0)  # no feature columns is allowed
    assert _same(load_records(out, "all"), ListRecords.concat([train, test]))
    assert check_dataset(out) == []

    with pytest.raises(OutputExistsError) as e:
        write_dataset(out, name="t", items=items, users=users, train=train, test=test, meta={})
    assert str(out) in str(e.value)

    def broken(path):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):  # a failure while writing leaves the old directory intact, no temp dirs
        write_dataset(out, name="t2", items=items, users=users, train=train, test=test, meta={}, overwrite=True, extra_files={"x.bin": broken})
    assert load_meta(out)["name"] == "t"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]

    write_dataset(out, name="t3", items=items, users=users, train=train, test=test, meta={}, overwrite=True, extra_files={"x.bin": lambda p: p.write_bytes(b"1")})
    assert load_meta(out)["name"] == "t3" and (out / "x.bin").read_bytes() == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_write_dataset_rejects_out_of_range_ids(tmp_path):
    items, users = _tables(n_items=3)
    rec = _records([[1], [9]])
    rec.slate[:] = 1
    with pytest.raises(DataError, match="history item ids outside"):
        write_dataset(tmp_path / "d", name="t", items=items, users=users, train=rec.select([0]), test=rec.select([1]), meta={})
    assert not (tmp_path / "d").exists()


def test_meta_corruption_is_reported_with_its_line(tmp_path):
    items, users = _tables()
    rec = _records([[1], [2]])
    out = write_dataset(tmp_path / "d", name="t", items=items, users=users, train=rec.select([0]), test=rec.select([1]), meta={})
    (out / "meta.json").write_text('{\n  "name": "t",\n  oops\n}')
    with pytest.raises(DataError, match=r"meta.json, line 3"):
        load_meta(out)


def test_synthetic_is_deterministic_by_seed():
    p = SyntheticParams(n_users=40, n_items=60, n_records=600, seed=3)
    a, b = generate(p), generate(p)
    c = generate(SyntheticParams(n_users=40, n_items=60, n_records=600, seed=4))
    assert a[0].equals(b[0]) and a[1].equals(b[1]) and _same(a[2], b[2]) and _same(a[3], b[3])
    assert not _same(a[2], c[2])
    train, test = a[2], a[3]
    assert len(train) + len(test) == 600 and train.timestamp.max() <= test.timestamp.min()


def test_small_synthetic_dataset_is_sound(small_synthetic):
    assert check_dataset(small_synthetic) == []
    meta = json.loads((small_synthetic / "meta.json").read_text())
    assert meta["n_train"] + meta["n_test"] == 16_000
    truth = load_truth(small_synthetic)
    assert truth.item_latent.shape[0] == meta["n_items"] + 1
