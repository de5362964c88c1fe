"""KuaiRand readers (Kuaishou; Gao et al., CIKM'22): KuaiRand-1K and KuaiRand-Pure, the same treatment.

Appendix A.1: 50-core filtering, then a view with ``play_time_ms / duration_ms > 0.8`` is a positive.

* Logs: both ``log_standard_*`` logs; the randomly-exposed ``log_random_*`` log only when asked
  (``include_random_log``), since it comes from a different (uniform) exposure policy. Rows are kept
  in file order (standard logs by date, then the random log) so ties in time stay stable.
* Core filtering removes videos with fewer than ``core`` rows in the logs used. The paper filters
  videos only, and removing videos never changes another video's count, so one pass is already
  stable (iterating "until stable" would give the same result). ``core=0`` disables it.
* A zero or negative ``duration_ms`` counts as a negative (the ratio is undefined).
* Timestamps: lists are cut in ``time_ms`` order; record timestamps are stored in seconds.
* User features (``user_features_*.csv``): the categorical columns one-hot (missing values, e.g.
  ``onehot_feat12..17`` NaN, are their own category ``-1``), the four raw counts as ``log1p``. The
  three id-like columns with hundreds of values (``onehot_feat3``, ``7``, ``8``) are left out.
* Video features (``video_features_basic_*.csv``): ``video_type``, ``upload_type``, ``music_type``
  one-hot (NaN -> ``-1``), ``tag`` multi-hot, ``log1p(seconds)`` of the duration plus a missing flag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from envs.data.errors import DataError
from envs.data.readers._common import ReaderOutput, find_file, find_files, first_duplicate, from_interactions, multi_hot, one_hot, read_delimited, warn

LOG_COLUMNS = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
    "comment_stay_time", "is_profile_enter", "is_rand", "tab",
)  # fmt: skip
USED_LOG_COLUMNS = ("user_id", "video_id", "time_ms", "play_time_ms", "duration_ms")
WATCH_RATIO_ABOVE = 0.8
DEFAULT_CORE = 50

USER_ONE_HOT = (
    "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range",
    "onehot_feat0", "onehot_feat1", "onehot_feat2", "onehot_feat4", "onehot_feat5", "onehot_feat6",
    "onehot_feat9", "onehot_feat10", "onehot_feat11", "onehot_feat12", "onehot_feat13", "onehot_feat14",
    "onehot_feat15", "onehot_feat16", "onehot_feat17",
)  # fmt: skip
USER_LOG_COUNTS = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
USER_COLUMNS = (
    "user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num", "follow_user_num_range", "fans_user_num", "fans_user_num_range", "friend_user_num",
    "friend_user_num_range", "register_days", "register_days_range", *(f"onehot_feat{i}" for i in range(18)),
)  # fmt: skip
VIDEO_COLUMNS = (
    "video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status", "video_duration",
    "server_width", "server_height", "music_id", "music_type", "tag",
)  # fmt: skip
VIDEO_USED = ("video_id", "video_type", "upload_type", "music_type", "video_duration", "tag")


def _read_log(path: Path) -> pd.DataFrame:
    return read_delimited(
        path, sep=",", header=True, columns=LOG_COLUMNS, usecols=USED_LOG_COLUMNS, integer=USED_LOG_COLUMNS
    )


def _user_features(path: Path) -> pd.DataFrame:
    table = read_delimited(
        path, sep=",", header=True, quoted=True, columns=USER_COLUMNS, integer=["user_id", *USER_LOG_COUNTS],
        allow_missing=[c for c in USER_COLUMNS if c.startswith("onehot_feat")],
    )  # fmt: skip
    first_duplicate(table["user_id"], path, "user_id", 2)
    parts = [one_hot(table[c].fillna(-1), c) for c in USER_ONE_HOT]
    counts = np.log1p(np.clip(table[list(USER_LOG_COUNTS)].to_numpy(dtype=np.float64), 0, None)).astype(np.float32)
    parts.append(pd.DataFrame(counts, columns=[f"log1p_{c}" for c in USER_LOG_COUNTS], index=table.index))
    return pd.concat(parts, axis=1).set_index(table["user_id"].to_numpy())


def _video_features(path: Path, keep: np.ndarray) -> pd.DataFrame:
    table = read_delimited(
        path, sep=",", header=True, quoted=True, columns=VIDEO_COLUMNS, usecols=VIDEO_USED, integer=["video_id"],
        numeric=["music_type", "video_duration"], allow_missing=["music_type", "video_duration", "tag"],
    )  # fmt: skip
    first_duplicate(table["video_id"], path, "video_id", 2)
    table = table[table["video_id"].isin(keep)].reset_index(drop=True)  # the 1K table lists 4.4M videos
    duration_s = table["video_duration"].to_numpy(dtype=np.float64) / 1000.0
    missing = ~np.isfinite(duration_s) | (duration_s < 0)
    parts = [
        one_hot(table["video_type"], "video_type"),
        one_hot(table["upload_type"], "upload_type"),
        one_hot(table["music_type"].fillna(-1), "music_type"),
        multi_hot(table["tag"], ",", "tag"),
        pd.DataFrame(
            {
                "log1p_duration_s": np.where(missing, 0.0, np.log1p(np.where(missing, 0.0, duration_s))).astype(np.float32),
                "duration_missing": missing.astype(np.float32),
            }
        ),
    ]
    return pd.concat(parts, axis=1).set_index(table["video_id"].to_numpy())


def read_kuairand(
    source: Path, *, variant: str, k: int, max_history: int, include_random_log: bool = False, core: int | None = None
) -> ReaderOutput:
    """Logs + ``user_features_{variant}.csv`` + ``video_features_basic_{variant}.csv`` -> lists of k."""
    core = DEFAULT_CORE if core is None else core
    if core < 0:
        raise DataError(f"--core must be >= 0, got {core}")
    notes: list[str] = []
    standard = find_files(source, f"log_standard_*_{variant}.csv")
    random_logs = find_files(source, f"log_random_*_{variant}.csv") if include_random_log else []
    if not standard:
        if not random_logs:
            hint = "" if include_random_log else " (pass --include-random-log to use the random log alone)"
            raise DataError(f"missing files 'log_standard_*_{variant}.csv' (KuaiRand standard logs) in the source directory{hint}", path=source)
        warn(notes, f"no standard logs (log_standard_*_{variant}.csv) found: using only the random log")
    if include_random_log and not random_logs:
        raise DataError(f"--include-random-log given, but no 'log_random_*_{variant}.csv' in the source directory", path=source)

    frames, counts = [], {"log_standard_rows": 0, "log_random_rows": 0}
    for path in standard + random_logs:
        frame = _read_log(path)
        counts["log_random_rows" if path in random_logs else "log_standard_rows"] += len(frame)
        frames.append(frame)
    log = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    counts["log_users"] = int(log["user_id"].nunique())
    counts["log_videos"] = int(log["video_id"].nunique())

    videos = log["video_id"].to_numpy()
    if core > 0:
        uniq, inverse, n_per_video = np.unique(videos, return_inverse=True, return_counts=True)
        kept = n_per_video[inverse] >= core
        log = log[kept]
        if len(log) == 0:
            raise DataError(
                f"no interactions left after {core}-core filtering (the most frequent video has {n_per_video.max()} rows); lower --core",
                path=source,
            )
    play = log["play_time_ms"].to_numpy(dtype=np.float64)
    duration = log["duration_ms"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        label = ((duration > 0) & (play / np.where(duration > 0, duration, 1.0) > WATCH_RATIO_ABOVE)).astype(np.int8)

    user_path = find_file(source, f"user_features_{variant}.csv", what=f"KuaiRand-{variant} user features")
    video_path = find_file(source, f"video_features_basic_{variant}.csv", what=f"KuaiRand-{variant} video features")
    video_ids = log["video_id"].to_numpy()
    user_table = _user_features(user_path)
    video_table = _video_features(video_path, np.unique(video_ids))
    counts["user_features_rows"] = len(user_table)

    items, users, records, item_raw, user_raw = from_interactions(
        log["user_id"].to_numpy(),
        video_ids,
        log["time_ms"].to_numpy(),
        label,
        item_features=video_table,
        user_features=user_table,
        k=k,
        max_history=max_history,
        notes=notes,
    )
    records.timestamp = records.timestamp // 1000  # list order used milliseconds; stored in seconds
    return ReaderOutput(
        items=items,
        users=users,
        records=records,
        sources=[*standard, *random_logs, user_path, video_path],
        counts=counts,
        preprocessing={
            "positive": f"play_time_ms / duration_ms > {WATCH_RATIO_ABOVE} (duration_ms <= 0: negative)",
            "core": core,
            "core_filtering": "videos with fewer than `core` rows removed; one pass, which is stable since only videos are filtered",
            "include_random_log": bool(include_random_log),
            "rows_after_core_filtering": int(len(log)),
            "videos_after_core_filtering": int(len(item_raw)),
            "timestamp_unit": "s (lists cut in time_ms order)",
            "item_features": "video_type, upload_type, music_type one-hot; tag multi-hot; log1p(duration s) + missing flag",
            "user_features": f"{', '.join(USER_ONE_HOT)} one-hot (NaN = -1); log1p of {', '.join(USER_LOG_COUNTS)}",
        },
        raw_item_ids=item_raw,
        raw_user_ids=user_raw,
        notes=notes,
    )


def read_kuairand_1k(source: Path, **kw) -> ReaderOutput:
    return read_kuairand(source, variant="1k", **kw)


def read_kuairand_pure(source: Path, **kw) -> ReaderOutput:
    return read_kuairand(source, variant="pure", **kw)
