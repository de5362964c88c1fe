"""Interaction logs -> logged lists, and the time split (paper Appendix A.1), shared by every source.

Each user's interactions are sorted by time and cut into consecutive lists of k; the incomplete tail
list of each user is dropped. A list's history is the user's positives *before* the list (most recent
last, at most ``max_history``); its timestamp is the time of its first item, i.e. when it was shown.
Records are then split by time: the first ``train_fraction`` of records (ordered by timestamp) train,
the rest test, so no test record is older than a train record.

Everything is vectorised with numpy: 1M interactions become lists in about a second.
"""

from __future__ import annotations

import numpy as np

from envs.data.errors import DataError
from envs.data.format import ListRecords


def _gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(s, s + l)`` for every (s, l), and the CSR offsets of the pieces."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return idx, offsets


def build_list_records(
    user_id: np.ndarray,
    item_id: np.ndarray,
    timestamp: np.ndarray,
    label: np.ndarray,
    *,
    k: int,
    max_history: int,
) -> ListRecords:
    """Cut every user's time-ordered interactions into lists of ``k`` with their positive histories.

    Ties in time keep the input order (a stable sort), so readers should pass rows in file order.
    """
    user_id = np.asarray(user_id, dtype=np.int64)
    item_id = np.asarray(item_id, dtype=np.int64)
    timestamp = np.asarray(timestamp, dtype=np.int64)
    label = np.asarray(label).astype(np.int8)
    n = len(user_id)
    if not (len(item_id) == len(timestamp) == len(label) == n):
        raise DataError("interaction columns have different lengths")
    if k < 1 or max_history < 0:
        raise DataError(f"need k >= 1 and max_history >= 0, got k={k}, max_history={max_history}")

    order = np.lexsort((np.arange(n), timestamp, user_id))
    user_id, item_id, timestamp, label = user_id[order], item_id[order], timestamp[order], label[order]

    # per-user blocks in the sorted arrays
    boundaries = np.flatnonzero(np.diff(user_id)) + 1
    block_start = np.concatenate([[0], boundaries]).astype(np.int64)
    block_len = np.diff(np.concatenate([block_start, [n]]))
    n_lists = block_len // k
    # start index (in the sorted arrays) of every complete list
    list_user_start = np.repeat(block_start, n_lists)
    list_rank = np.arange(n_lists.sum()) - np.repeat(np.cumsum(n_lists) - n_lists, n_lists)
    list_start = list_user_start + list_rank * k

    # history: positives of the same user in [user_start, list_start), the last max_history of them
    positives = np.flatnonzero(label == 1)
    hi = np.searchsorted(positives, list_start)
    lo = np.maximum(np.searchsorted(positives, list_user_start), hi - max_history)
    gather, offsets = _gather_ranges(lo, hi - lo)
    history_values = item_id[positives[gather]]

    slate_index = list_start[:, None] + np.arange(k)[None, :]
    return ListRecords(
        user_id=user_id[list_start],
        timestamp=timestamp[list_start],
        history_offsets=offsets,
        history_values=history_values,
        slate=item_id[slate_index],
        feedback=label[slate_index],
    )


def split_by_time(records: ListRecords, train_fraction: float = 0.8) -> tuple[ListRecords, ListRecords]:
    """First ``train_fraction`` of records by timestamp -> train, the rest -> test (both in time order)."""
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = len(records)
    order = np.lexsort((np.arange(n), records.user_id, records.timestamp))
    cut = int(np.floor(train_fraction * n))
    return records.select(order[:cut]), records.select(order[cut:])


def dense_ids(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map raw ids to 1..M (0 stays free for padding); returns (dense ids, the sorted raw ids)."""
    uniques, inverse = np.unique(np.asarray(raw), return_inverse=True)
    return inverse.astype(np.int64) + 1, uniques
