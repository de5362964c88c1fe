"""MovieLens readers: ML-1M, ML-100K and ml-latest-small (GroupLens), the same treatment for all three.

Appendix A.1: a rating > 3 is a positive ("like"), anything else a negative (ml-latest-small's half
stars: 3.5 and up are positive). Item features: genres, multi-hot. User features: gender, age and
occupation one-hot (ML-100K's integer ages are put in ML-1M's age groups so both families look alike);
ml-latest-small publishes no user attributes, so its users get no feature columns (the format allows it).
Category layouts come from the whole feature file, not from the rated subset, so a sample and the full
release give the same columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from envs.data.readers._common import (
    ReaderOutput,
    check_range,
    find_file,
    first_duplicate,
    from_interactions,
    multi_hot,
    one_hot,
    read_delimited,
)

POSITIVE_RATING_ABOVE = 3
ML1M_AGE_GROUPS = (1, 18, 25, 35, 45, 50, 56)  # ML-1M's coded ages: under 18, 18-24, ..., 56+
NO_GENRE = "(no genres listed)"


def _ratings_output(ratings: pd.DataFrame, path: Path, first_line: int, *, items, users, k, max_history, sources, counts, preprocessing):
    notes: list[str] = []
    items_df, users_df, records, item_raw, user_raw = from_interactions(
        ratings["user"].to_numpy(),
        ratings["item"].to_numpy(),
        ratings["timestamp"].to_numpy(),
        (ratings["rating"].to_numpy() > POSITIVE_RATING_ABOVE).astype(np.int8),
        item_features=items,
        user_features=users,
        k=k,
        max_history=max_history,
        notes=notes,
    )
    counts = dict(counts, ratings=len(ratings), users=len(user_raw), items=len(item_raw))
    return ReaderOutput(
        items=items_df,
        users=users_df,
        records=records,
        sources=sources,
        counts=counts,
        preprocessing={"positive": f"rating > {POSITIVE_RATING_ABOVE}", **preprocessing},
        raw_item_ids=item_raw,
        raw_user_ids=user_raw,
        notes=notes,
    )


def _check_ratings(ratings: pd.DataFrame, path: Path, first_line: int, allowed: np.ndarray) -> None:
    r = ratings["rating"].to_numpy()
    check_range(ratings["rating"], np.isin(r, allowed), path, f"rating outside {allowed.min()}..{allowed.max()}", first_line)
    check_range(ratings["user"], ratings["user"].to_numpy() > 0, path, "user id must be positive", first_line)


def read_ml1m(source: Path, *, k: int, max_history: int) -> ReaderOutput:
    """``ratings.dat``, ``movies.dat`` (latin-1) and ``users.dat``, all ``::``-separated."""
    ratings_path = find_file(source, "ratings.dat", what="MovieLens-1M ratings")
    movies_path = find_file(source, "movies.dat", what="MovieLens-1M movies")
    users_path = find_file(source, "users.dat", what="MovieLens-1M users")
    cols = ["user", "item", "rating", "timestamp"]
    ratings = read_delimited(ratings_path, sep="::", columns=cols, integer=cols)
    _check_ratings(ratings, ratings_path, 1, np.arange(1, 6))

    movies = read_delimited(movies_path, sep="::", columns=["item", "title", "genres"], integer=["item"], encoding="latin-1")
    first_duplicate(movies["item"], movies_path, "movie id", 1)
    item_features = multi_hot(movies["genres"], "|", "genre").set_index(movies["item"].to_numpy())

    users = read_delimited(
        users_path, sep="::", columns=["user", "gender", "age", "occupation", "zip"], integer=["user", "age", "occupation"]
    )
    first_duplicate(users["user"], users_path, "user id", 1)
    check_range(users["gender"], users["gender"].isin(["F", "M"]).to_numpy(), users_path, "gender must be F or M", 1)
    check_range(users["age"], users["age"].isin(ML1M_AGE_GROUPS).to_numpy(), users_path, f"age must be one of {ML1M_AGE_GROUPS}", 1)
    check_range(users["occupation"], users["occupation"].between(0, 20).to_numpy(), users_path, "occupation must be 0..20", 1)
    user_features = pd.concat(
        [
            one_hot(users["gender"], "gender", ["F", "M"]),
            one_hot(users["age"], "age", ML1M_AGE_GROUPS),
            one_hot(users["occupation"], "occupation", range(21)),
        ],
        axis=1,
    ).set_index(users["user"].to_numpy())
    return _ratings_output(
        ratings,
        ratings_path,
        1,
        items=item_features,
        users=user_features,
        k=k,
        max_history=max_history,
        sources=[ratings_path, movies_path, users_path],
        counts={"movies_listed": len(movies), "users_listed": len(users)},
        preprocessing={"item_features": "genres multi-hot", "user_features": "gender, age group, occupation one-hot"},
    )


def _ml100k_age_group(age: np.ndarray) -> np.ndarray:
    """ML-100K integer ages -> ML-1M's age codes (1: under 18, 18: 18-24, ..., 56: 56+)."""
    bins = np.array([18, 25, 35, 45, 50, 56])
    return np.array(ML1M_AGE_GROUPS)[np.searchsorted(bins, age, side="right")]


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def read_ml100k(source: Path, *, k: int, max_history: int) -> ReaderOutput:
    """``u.data`` (tab-separated), ``u.item`` (``|``, latin-1, 19 genre flags), ``u.user`` (``|``)."""
    data_path = find_file(source, "u.data", what="MovieLens-100K ratings")
    item_path = find_file(source, "u.item", what="MovieLens-100K movies")
    user_path = find_file(source, "u.user", what="MovieLens-100K users")
    cols = ["user", "item", "rating", "timestamp"]
    ratings = read_delimited(data_path, sep="\t", columns=cols, integer=cols)
    _check_ratings(ratings, data_path, 1, np.arange(1, 6))

    genre_cols = [f"g{i}" for i in range(len(ML100K_GENRES))]
    item_cols = ["item", "title", "release", "video_release", "url", *genre_cols]
    movies = read_delimited(
        item_path, sep="|", columns=item_cols, integer=["item", *genre_cols], encoding="latin-1",
        allow_missing=["title", "release", "video_release", "url"],
    )  # fmt: skip
    first_duplicate(movies["item"], item_path, "movie id", 1)
    flags = movies[genre_cols].to_numpy()
    check_range(movies["item"], np.isin(flags, (0, 1)).all(axis=1), item_path, "genre flags must be 0 or 1 (movie id)", 1)
    item_features = pd.DataFrame(
        flags.astype(np.float32), columns=[f"genre={g}" for g in ML100K_GENRES], index=movies["item"].to_numpy()
    )

    users = read_delimited(user_path, sep="|", columns=["user", "age", "gender", "occupation", "zip"], integer=["user", "age"])
    first_duplicate(users["user"], user_path, "user id", 1)
    check_range(users["gender"], users["gender"].isin(["F", "M"]).to_numpy(), user_path, "gender must be F or M", 1)
    user_features = pd.concat(
        [
            one_hot(users["gender"], "gender", ["F", "M"]),
            one_hot(pd.Series(_ml100k_age_group(users["age"].to_numpy()), index=users.index), "age", ML1M_AGE_GROUPS),
            one_hot(users["occupation"], "occupation"),
        ],
        axis=1,
    ).set_index(users["user"].to_numpy())
    return _ratings_output(
        ratings,
        data_path,
        1,
        items=item_features,
        users=user_features,
        k=k,
        max_history=max_history,
        sources=[data_path, item_path, user_path],
        counts={"movies_listed": len(movies), "users_listed": len(users)},
        preprocessing={
            "item_features": "19 genre flags of u.item",
            "user_features": "gender one-hot, age in ML-1M's age groups one-hot, occupation one-hot",
        },
    )


def read_ml_latest_small(source: Path, *, k: int, max_history: int) -> ReaderOutput:
    """``ratings.csv`` (half-star ratings) and ``movies.csv`` (quoted titles); no user attributes exist."""
    ratings_path = find_file(source, "ratings.csv", what="ml-latest-small ratings")
    movies_path = find_file(source, "movies.csv", what="ml-latest-small movies")
    ratings = read_delimited(
        ratings_path, sep=",", header=True, quoted=True, columns=["userId", "movieId", "rating", "timestamp"],
        integer=["userId", "movieId", "timestamp"], numeric=["rating"],
    ).rename(columns={"userId": "user", "movieId": "item"})  # fmt: skip
    _check_ratings(ratings, ratings_path, 2, np.arange(1, 11) / 2)
    movies = read_delimited(movies_path, sep=",", header=True, quoted=True, columns=["movieId", "title", "genres"], integer=["movieId"])
    first_duplicate(movies["movieId"], movies_path, "movie id", 2)
    item_features = multi_hot(movies["genres"], "|", "genre", ignore=[NO_GENRE]).set_index(movies["movieId"].to_numpy())
    return _ratings_output(
        ratings,
        ratings_path,
        2,
        items=item_features,
        users=None,
        k=k,
        max_history=max_history,
        sources=[ratings_path, movies_path],
        counts={"movies_listed": len(movies)},
        preprocessing={
            "item_features": f"genres multi-hot ({NO_GENRE!r} = all zeros)",
            "user_features": "none: ml-latest-small publishes no user attributes",
        },
    )
