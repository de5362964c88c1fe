"""Readers on the real files in ../shared/data (when present) and on small files in the real schemas
written here; every prepared dataset is checked against an independent plain-Python statement of
Appendix A.1 (lists of k in time order, history = earlier positives of the same user)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from envs.data.errors import DataError
from envs.data.format import load_meta, load_records
from envs.data.info import check_dataset
from envs.data.prepare import DataWarning, prepare, read_id_map
from envs.data.readers import kuairand

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.readers._common.DataWarning")


# --- the reference -----------------------------------------------------------------------------------


def reference_lists(rows, k: int, max_history: int):
    """rows: (user, item, time, label) in file order -> the set of records Appendix A.1 defines."""
    by_user: dict = {}
    for i, (u, it, t, y) in enumerate(rows):
        by_user.setdefault(u, []).append((t, i, it, int(y)))
    out = set()
    for u, seq in by_user.items():
        seq.sort()
        positives: list = []
        for start in range(0, len(seq) - k + 1, k):
            chunk = seq[start : start + k]
            hist = positives[-max_history:] if max_history else []
            out.add((u, tuple(c[2] for c in chunk), tuple(c[3] for c in chunk), tuple(hist)))
            positives.extend(c[2] for c in chunk if c[3])
    return out


def prepared_lists(data_dir: Path):
    """The dataset's records with raw ids, as (user, slate, feedback, history) tuples."""
    items = read_id_map(data_dir, "item")["raw_id"].to_numpy()
    users = read_id_map(data_dir, "user")["raw_id"].to_numpy()
    rec = load_records(data_dir, "all")
    return {
        (
            users[rec.user_id[i] - 1].item(),
            tuple(items[rec.slate[i] - 1].tolist()),
            tuple(rec.feedback[i].tolist()),
            tuple(items[rec.history(i) - 1].tolist()),
        )
        for i in range(len(rec))
    }


def assert_sound(data_dir: Path, *, k: int, max_history: int = 50):
    """Format invariants plus: meta counts match the files, ids in range (0 free), split by time."""
    assert check_dataset(data_dir) == []
    meta = load_meta(data_dir)
    train, test = load_records(data_dir, "train"), load_records(data_dir, "test")
    assert meta["k"] == k and train.slate.shape[1] == k and test.slate.shape[1] == k
    assert (meta["n_train"], meta["n_test"]) == (len(train), len(test))
    assert train.timestamp.max() <= test.timestamp.min() == meta["split_timestamp"]
    assert abs(len(train) / (len(train) + len(test)) - 0.8) < 0.01 + 1 / (len(train) + len(test))
    assert train.history_lengths.max() <= max_history
    assert 0 not in train.slate and 0 not in train.history_values
    for s in meta["sources"].values():
        assert len(s["sha256"]) == 64
    return meta


# --- real files ---------------------------------------------------------------------------------------


def _read_sep(path: Path, sep: str, header: bool, encoding="utf-8"):
    with open(path, encoding=encoding) as f:
        lines = f.read().splitlines()
    return [ln.split(sep) for ln in lines[1 if header else 0 :] if ln]


def test_ml1m_sample(shared_data, tmp_path):
    src = shared_data / "ml1m-sample"
    with pytest.warns(DataWarning, match="subset of the official release"):
        out = prepare("ml1m", tmp_path / "ml1m", source=src)
    meta = assert_sound(out, k=10)
    assert meta["subset"] is True and meta["source_counts"]["ratings"] == 43_745
    assert meta["subset_detail"]["ratings"] == {"read": 43_745, "official": 1_000_209}
    assert meta["n_users"] == 300 and len(meta["user_feature_columns"]) == 2 + 7 + 21
    assert len(meta["item_feature_columns"]) == 18  # the 18 ML-1M genres
    rows = [(int(u), int(i), int(t), int(r) > 3) for u, i, r, t in _read_sep(src / "ratings.dat", "::", False)]
    assert prepared_lists(out) == reference_lists(rows, 10, 50)
    assert all(v.get("official_sha256", True) for v in meta["sources"].values())


def test_ml100k(shared_data, tmp_path):
    src = shared_data / "ml100k"
    out = prepare("ml100k", tmp_path / "ml100k", source=src, max_history=20)
    meta = assert_sound(out, k=10, max_history=20)
    assert meta["subset"] is False and meta["n_users"] == 943 and meta["n_items"] == 1682
    assert meta["sources"]["u.data"]["official_sha256"] is True
    rows = [(int(u), int(i), int(t), int(r) > 3) for u, i, r, t in _read_sep(src / "u.data", "\t", False)]
    assert prepared_lists(out) == reference_lists(rows, 10, 20)


def test_ml_latest_small_half_stars_and_no_user_features(shared_data, tmp_path):
    src = shared_data / "ml-latest-small"
    out = prepare("ml-latest-small", tmp_path / "mls", source=src, k=5)
    meta = assert_sound(out, k=5)
    assert meta["subset"] is False and meta["user_feature_columns"] == []
    assert "genre=(no genres listed)" not in meta["item_feature_columns"]
    rows = [(int(u), int(i), int(t), float(r) > 3) for u, i, r, t in _read_sep(src / "ratings.csv", ",", True)]
    assert any(float(r) == 3.5 for _, _, r, _ in _read_sep(src / "ratings.csv", ",", True))
    assert prepared_lists(out) == reference_lists(rows, 5, 50)


def test_rl4rs_sample_keeps_its_logged_slates(shared_data, tmp_path):
    src = shared_data / "rl4rs"
    with pytest.warns(DataWarning, match="subset"):
        out = prepare("rl4rs", tmp_path / "rl4rs", source=src)
    meta = assert_sound(out, k=9)
    assert meta["n_items"] == 283 and meta["n_users"] == 40 and meta["n_train"] + meta["n_test"] == 63
    assert len(meta["user_feature_columns"]) == 42 and len(meta["item_feature_columns"]) == 40 + 1 + 3 + 3
    rows = []
    for name in ("rl4rs_b_train.csv", "rl4rs_b_test.csv"):
        rows += _read_sep(src / name, "@", True)
    rec = load_records(out, "all")
    users = read_id_map(out, "user")["raw_id"].to_numpy()
    got = {(int(users[rec.user_id[i] - 1]), int(rec.timestamp[i]), tuple(rec.slate[i].tolist()), tuple(rec.feedback[i].tolist()), tuple(rec.history(i).tolist())) for i in range(len(rec))}
    want = set()
    for r in rows:
        hist = [int(x) for x in r[5].split(",") if int(x) != 0][-50:]
        want.add((int(r[1]), int(r[0]), tuple(int(x) for x in r[3].split(",")), tuple(int(x) for x in r[4].split(",")), tuple(hist)))
    assert got == want
    with pytest.raises(DataError, match="logged slates of 9"):
        prepare("rl4rs", tmp_path / "rl4rs10", source=src, k=10)


def _kuairand_pure_layout(shared_data: Path, tmp_path: Path) -> Path:
    """The random 1K log as the log, with KuaiRand-Pure's feature tables (same id space): links, not copies."""
    src = tmp_path / "kr"
    src.mkdir()
    kr = shared_data / "kuairand"
    (src / "log_random_4_22_to_5_08_pure.csv").symlink_to(kr / "log_random_4_22_to_5_08_1k.csv")
    (src / "user_features_pure.csv").symlink_to(kr / "user_features_pure.csv")
    (src / "video_features_basic_pure.csv").symlink_to(kr / "video_features_basic_pure.csv")
    return src


def test_kuairand_random_log_with_pure_feature_tables(shared_data, tmp_path):
    src = _kuairand_pure_layout(shared_data, tmp_path)
    with pytest.raises(DataError, match="log_standard"):
        prepare("kuairand-pure", tmp_path / "no", source=src)
    with pytest.raises(DataError, match="50-core"):  # no random-log video has 50 rows
        prepare("kuairand-pure", tmp_path / "no", source=src, include_random_log=True)
    out = prepare("kuairand-pure", tmp_path / "kr-out", source=src, include_random_log=True, core=5)
    meta = assert_sound(out, k=10)
    assert meta["subset"] is True and meta["preprocessing"]["core"] == 5
    assert meta["n_users"] == 1000 and meta["source_counts"]["log_random_rows"] == 43_028
    with open(src / "log_random_4_22_to_5_08_pure.csv") as f:
        log = list(csv.DictReader(f))
    counts: dict = {}
    for r in log:
        counts[r["video_id"]] = counts.get(r["video_id"], 0) + 1
    rows = [
        (int(r["user_id"]), int(r["video_id"]), int(r["time_ms"]), int(r["duration_ms"]) > 0 and int(r["play_time_ms"]) / int(r["duration_ms"]) > 0.8)
        for r in log
        if counts[r["video_id"]] >= 5
    ]
    assert meta["n_items"] == len({r[1] for r in rows})
    assert prepared_lists(out) == reference_lists(rows, 10, 50)
    assert "duration_missing" in meta["item_feature_columns"] and "tag=39" in meta["item_feature_columns"]


def test_kuairand_1k_user_features_table(shared_data):
    feats = kuairand._user_features(shared_data / "kuairand" / "user_features_1k.csv")
    assert feats.shape[0] == 1000 and feats.index.min() == 0
    assert np.isfinite(feats.to_numpy()).all()
    for col in kuairand.USER_ONE_HOT:  # one-hot: exactly one column of each group is set
        group = [c for c in feats.columns if c.startswith(col + "=")]
        assert (feats[group].sum(axis=1) == 1).all(), col


# --- small files in the real schemas -------------------------------------------------------------------


def _write(path: Path, text: str, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _tiny_ml1m(root: Path, ratings: str | None = None) -> Path:
    if ratings is None:
        lines = []
        for u in (1, 2):
            for j in range(23):  # 2 lists of 10 each, 3 left over
                lines.append(f"{u}::{100 + (j * 7 + u) % 13}::{1 + (j + u) % 5}::{978300000 + 1000 * u + j}")
        ratings = "\n".join(lines) + "\n"
    _write(root / "ratings.dat", ratings)
    genres = ["Animation|Children's|Comedy", "Drama", "Comedy|Romance", "Sci-Fi", "Action|Thriller"]
    _write(root / "movies.dat", "".join(f"{100 + i}::Caf\xe9: Movie {i} (1995)::{genres[i % 5]}\n" for i in range(13)), encoding="latin-1")
    _write(root / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    return root


def test_tiny_ml1m_lists_histories_and_features(tmp_path):
    src = _tiny_ml1m(tmp_path / "src")
    out = prepare("ml1m", tmp_path / "out", source=src, k=10, max_history=3)
    meta = assert_sound(out, k=10, max_history=3)
    rec = load_records(out, "all")
    assert len(rec) == 4 and meta["n_users"] == 2 and meta["n_items"] == 13
    rows = [(int(u), int(i), int(t), int(r) > 3) for u, i, r, t in (ln.split("::") for ln in (src / "ratings.dat").read_text().split())]
    assert prepared_lists(out) == reference_lists(rows, 10, 3)
    # every history is a suffix of the user's earlier positives (checked above); the first list of a user has none
    first = [i for i in range(len(rec)) if rec.timestamp[i] == rec.timestamp[rec.user_id == rec.user_id[i]].min()]
    assert all(len(rec.history(i)) == 0 for i in first)
    import pyarrow.parquet as pq

    users = pq.read_table(out / "users.parquet").to_pandas().set_index("user_id")
    assert users.loc[1, "gender=F"] == 1 and users.loc[2, "age=56"] == 1 and users.loc[2, "occupation=16"] == 1
    items = pq.read_table(out / "items.parquet").to_pandas()
    assert set(items.columns) >= {"genre=Animation", "genre=Children's", "genre=Sci-Fi"}
    assert (items.drop(columns="item_id").sum(axis=1) >= 1).all()


LOG_HEADER = ",".join(kuairand.LOG_COLUMNS)


def _kr_row(user, video, time_ms, play, duration):
    date = 20220422
    return f"{user},{video},{date},1200,{time_ms},1,0,0,0,0,0,0,{play},{duration},0,0,0,0,1"


def _tiny_kuairand(root: Path, variant="1k", *, random_rows=()) -> Path:
    rows = []
    t = 1_650_600_000_000
    for user in (0, 1):
        for j in range(24):
            video = 5 if (user, j) == (0, 23) else (j + 2 * user) % 5  # video 5 is rare
            duration = 0 if (user, j) == (1, 5) else 10_000
            rows.append(_kr_row(user, video, t + 777 * j + user, play=(9_000 if (j + user) % 3 else 2_000), duration=duration))
    half = len(rows) // 2
    _write(root / f"log_standard_4_08_to_4_21_{variant}.csv", LOG_HEADER + "\n" + "\n".join(rows[:half]) + "\n")
    _write(root / f"log_standard_4_22_to_5_08_{variant}.csv", LOG_HEADER + "\n" + "\n".join(rows[half:]) + "\n")
    if random_rows:
        _write(root / f"log_random_4_22_to_5_08_{variant}.csv", LOG_HEADER + "\n" + "\n".join(random_rows) + "\n")
    ucols = list(kuairand.USER_COLUMNS)
    urows = []
    for u in range(3):
        vals = {c: "0" for c in ucols}
        vals.update(user_id=str(u), user_active_degree=["full_active", "high_active", "UNKNOWN"][u], follow_user_num_range='"(0,10]"', onehot_feat12="" if u == 2 else "1.0")
        urows.append(",".join(vals[c] for c in ucols))
    _write(root / f"user_features_{variant}.csv", ",".join(ucols) + "\n" + "\n".join(urows) + "\n")
    vrows = [f"{v},7,NORMAL,2022-04-10,{'Web' if v % 2 else 'Kmovie'},0.0,{'' if v == 3 else 20000.0},720.0,1280.0,1,{'' if v == 4 else 9.0},\"{v},{v + 10}\"" for v in range(7)]
    _write(root / f"video_features_basic_{variant}.csv", ",".join(kuairand.VIDEO_COLUMNS) + "\n" + "\n".join(vrows) + "\n")
    return root


def test_tiny_kuairand_log_with_its_19_columns(tmp_path):
    src = _tiny_kuairand(tmp_path / "src", random_rows=[_kr_row(0, 5, 1_650_700_000_000, 10, 10)])
    out = prepare("kuairand-1k", tmp_path / "out", source=src, core=0)
    meta = assert_sound(out, k=10)
    assert meta["preprocessing"]["include_random_log"] is False and meta["source_counts"]["log_standard_rows"] == 48
    rows = []
    for name in sorted(p.name for p in src.glob("log_standard_*")):
        for r in csv.DictReader(open(src / name)):
            d, p = int(r["duration_ms"]), int(r["play_time_ms"])
            rows.append((int(r["user_id"]), int(r["video_id"]), int(r["time_ms"]), d > 0 and p / d > 0.8))
    assert prepared_lists(out) == reference_lists(rows, 10, 50)

    # 50-core on this log removes everything; core=2 removes the rare video 5 only
    with pytest.raises(DataError, match="core"):
        prepare("kuairand-1k", tmp_path / "none", source=src)
    out2 = prepare("kuairand-1k", tmp_path / "out2", source=src, core=2)
    assert set(read_id_map(out2, "item")["raw_id"]) == {0, 1, 2, 3, 4}
    assert prepared_lists(out2) == reference_lists([r for r in rows if r[1] != 5], 10, 50)

    # the random log joins only when asked
    out_r = prepare("kuairand-1k", tmp_path / "out_r", source=src, core=0, include_random_log=True)
    assert load_meta(out_r)["source_counts"]["log_random_rows"] == 1

    import pyarrow.parquet as pq

    items = pq.read_table(out / "items.parquet").to_pandas().set_index("item_id")
    raw = read_id_map(out, "item").set_index("raw_id")["item_id"]
    assert items.loc[raw[3], "duration_missing"] == 1 and items.loc[raw[4], "music_type=-1"] == 1
    assert items.loc[raw[2], "tag=2"] == 1 and items.loc[raw[2], "tag=12"] == 1
    users = pq.read_table(out / "users.parquet").to_pandas()
    # the layout comes from the whole table (user 2 has the NaN), the rows only from users in the log
    assert (users["onehot_feat12=-1"] == 0).all() and (users["onehot_feat12=1"] == 1).all() and len(users) == 2


def test_tiny_rl4rs_rows(tmp_path):
    header = "@".join(["timestamp", "session_id", "sequence_id", "exposed_items", "user_feedback", "user_seqfeature", "user_protrait", "item_feature", "behavior_policy_id"])
    portrait = ",".join(["3"] * 5)
    rows = [
        f"100@7@1@1,2,3,4,5,6,7,8,9@1,0,1,0,1,0,1,0,1@@{portrait}@0.1@1",  # an empty history field
        f"100@7@2@2,3,4,5,6,7,8,9,10@0,0,0,0,0,0,0,0,1@1,3,5@{portrait}@0.1@1",
        f"50@8@1@9,8,7,6,5,4,3,2,1@1,1,1,1,1,1,1,1,1@4,0,6@{portrait}@0.1@1",
    ]
    src = tmp_path / "src"
    _write(src / "rl4rs_dataset_b_rl.csv", header + "\n" + "\n".join(rows) + "\n")
    vec = ",".join(["0.5"] * 40)
    _write(src / "item_info.csv", "item_id item_vec price location special_item\n" + "".join(f"{i} {vec} {i}.0 {1 + i % 3} 0\n" for i in range(1, 11)))
    out = prepare("rl4rs", tmp_path / "out", source=src, train_fraction=0.5, max_history=2)
    meta = load_meta(out)
    assert check_dataset(out) == []
    rec = load_records(out, "all")
    assert rec.timestamp.tolist() == [50, 100, 100]
    assert [rec.history(i).tolist() for i in range(3)] == [[4, 6], [], [3, 5]]
    assert rec.user_id.tolist() == [2, 1, 1] and meta["n_users"] == 2
    import pyarrow.parquet as pq

    users = pq.read_table(out / "users.parquet").to_pandas()
    assert np.allclose(users["portrait_0"], np.log(4.0))


# --- bad input: the error names the file and the line --------------------------------------------------


@pytest.mark.parametrize(
    "ratings,line,message",
    [
        ("1::10::5::978300760\n1::11::4\n", 2, "expected 4 fields separated by '::', found 3"),
        ("1::10::5::978300760\n1::11::4::978300761::9\n", 2, "expected 4 fields separated by '::', found 5"),
        ("1::10::5::978300760\n1::x11::4::978300761\n", 2, "not a number: 'x11'"),
        ("1::10::5::978300760\n1::11::4.5::978300761\n", 2, "not an integer"),
        ("1::10::5::978300760\n1::11::7::978300761\n", 2, "rating outside 1..5"),
        ("1::10::5::978300760\n\n1::11::4::978300761\n", 2, "empty line"),
        ("1::10::5::978300760\n1\t11\t4\t978300761\n", 2, "found a tab"),
        ("1,10,5,978300760\n", 1, "expected 4 fields separated by '::', found 1"),
    ],
)
def test_bad_ratings_lines_are_named(tmp_path, ratings, line, message):
    src = _tiny_ml1m(tmp_path / "src", ratings=ratings)
    with pytest.raises(DataError) as e:
        prepare("ml1m", tmp_path / "out", source=src)
    assert e.value.path == str(src / "ratings.dat") and e.value.line == line, str(e.value)
    assert message in str(e.value) and f"ratings.dat, line {line}" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_missing_and_empty_files(tmp_path):
    src = _tiny_ml1m(tmp_path / "src")
    (src / "users.dat").unlink()
    with pytest.raises(DataError, match="missing file 'users.dat'"):
        prepare("ml1m", tmp_path / "out", source=src)
    _write(src / "users.dat", "")
    with pytest.raises(DataError, match="empty file") as e:
        prepare("ml1m", tmp_path / "out", source=src)
    assert e.value.path.endswith("users.dat")
    with pytest.raises(DataError, match="source directory does not exist"):
        prepare("ml100k", tmp_path / "out", source=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def test_bad_kuairand_header_and_csv_rows(tmp_path):
    src = _tiny_kuairand(tmp_path / "src")
    log = src / "log_standard_4_08_to_4_21_1k.csv"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0].replace("time_ms", "time")] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="unexpected header") as e:
        prepare("kuairand-1k", tmp_path / "out", source=src, core=0)
    assert e.value.line == 1 and e.value.path == str(log)
    log.write_text("\n".join(lines[:3] + [lines[3] + ",1,2"] + lines[4:]) + "\n")
    with pytest.raises(DataError, match="expected 19 fields separated by ',', found 21") as e:
        prepare("kuairand-1k", tmp_path / "out", source=src, core=0)
    assert e.value.line == 4
    log.write_text("\n".join(lines[:5] + [lines[5].replace(",1200,", ",1200,abc").replace(",1,0,0,0,0,0,0,", ",1,0,0,0,0,0,0,")] + lines[6:]) + "\n")
    lines5 = lines[5].split(",")
    lines5[12] = "9o0"
    log.write_text("\n".join(lines[:5] + [",".join(lines5)] + lines[6:]) + "\n")
    with pytest.raises(DataError, match="play_time_ms.*not a number") as e:
        prepare("kuairand-1k", tmp_path / "out", source=src, core=0)
    assert e.value.line == 6
    log.write_text(lines[0] + "\n")
    with pytest.raises(DataError, match="no data rows"):
        prepare("kuairand-1k", tmp_path / "out", source=src, core=0)


def test_bad_rl4rs_rows_are_named_by_file_and_line(shared_data, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "item_info.csv").symlink_to(shared_data / "rl4rs" / "item_info.csv")
    lines = (shared_data / "rl4rs" / "rl4rs_b_test.csv").read_text().splitlines()
    (src / "rl4rs_b_train.csv").symlink_to(shared_data / "rl4rs" / "rl4rs_b_train.csv")
    bad = lines[4].split("@")
    bad[3] = ",".join(bad[3].split(",")[:8])
    _write(src / "rl4rs_b_test.csv", "\n".join(lines[:4] + ["@".join(bad)] + lines[5:]) + "\n")
    with pytest.raises(DataError, match="exposed_items must hold 9") as e:
        prepare("rl4rs", tmp_path / "out", source=src)
    assert e.value.path == str(src / "rl4rs_b_test.csv") and e.value.line == 5
    bad = lines[2].split("@")
    bad[3] = bad[3].replace(",", ",999,", 1).rsplit(",", 1)[0]
    _write(src / "rl4rs_b_test.csv", "\n".join(lines[:2] + ["@".join(bad)] + lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"1\.\.283") as e:
        prepare("rl4rs", tmp_path / "out", source=src)
    assert e.value.line == 3


@pytest.mark.parametrize(
    "ratings,line,message",
    [
        ("userId,movieId,rating,timestamp\n1,1,4.0,9\n1,3,4.0,9,7\n", 3, "expected 4 fields separated by ',', found 5"),
        ("userId,movieId,rating,timestamp\n1,1,4.0,9\n1,3,4.25,9\n", 3, "rating outside 0.5..5.0"),
        (b"userId,movieId,rating,timestamp\n1,1,4.0,9\n1,\xff3,4.0,9\n", 3, "not valid utf-8"),
        ("userId;movieId;rating;timestamp\n1;1;4.0;9\n", 1, "expected a header of 4 fields separated by ','"),
        ("userId,movieId,rating,timestamp\n", 2, "no data rows"),
    ],
)
def test_bad_csv_with_a_header_names_the_physical_line(tmp_path, ratings, line, message):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ratings.csv").write_bytes(ratings if isinstance(ratings, bytes) else ratings.encode())
    (src / "movies.csv").write_text('movieId,title,genres\n1,"A, the (1999)",Drama\n3,B (2000),(no genres listed)\n')
    with pytest.raises(DataError) as e:
        prepare("ml-latest-small", tmp_path / "out", source=src, k=1)
    assert e.value.path == str(src / "ratings.csv") and e.value.line == line and message in str(e.value), str(e.value)
