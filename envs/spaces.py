"""The slate action space: k distinct item ids out of 1..n_items.

A plain ``MultiDiscrete([n_items] * k)`` would let random policies (``action_space.sample()``,
RLlib's random warm-up) and gymnasium's checkers produce slates with repeated items, which the
simulator rejects. :class:`SlateSpace` keeps ``MultiDiscrete``'s layout (so every library that knows
``MultiDiscrete`` can read it) but samples without replacement and rejects duplicates.

It can carry leading batch dimensions: :func:`gymnasium.vector.utils.batch_space` of a
``SlateSpace`` is a ``SlateSpace`` of shape ``(B, k)`` (gymnasium would otherwise turn it into an
integer ``Box``), so the batched space of the vector env also samples valid slates.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.spaces import MultiDiscrete
from gymnasium.vector.utils import batch_space


class SlateSpace(MultiDiscrete):
    """``k`` distinct item ids in ``1..n_items`` (0 is padding and never a valid item)."""

    def __init__(
        self,
        n_items: int,
        k: int,
        *,
        batch_shape: Sequence[int] = (),
        seed: int | np.random.Generator | None = None,
    ):
        n_items, k = int(n_items), int(k)
        if k < 1 or n_items < k:
            raise ValueError(f"a slate needs 1 <= k <= n_items, got k={k}, n_items={n_items}")
        self.n_items = n_items
        self.k = k
        self.batch_shape = tuple(int(b) for b in batch_shape)
        shape = self.batch_shape + (k,)
        super().__init__(
            np.full(shape, n_items, dtype=np.int64),
            dtype=np.int64,
            seed=seed,
            start=np.ones(shape, dtype=np.int64),
        )

    # --- sampling --------------------------------------------------------------------------------
    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """Uniform slates (sets in random order) without repeated items.

        ``mask`` may be an ``(n_items,)`` 0/1 array of allowed items (index 0 = item 1), shared by
        every row; per-position masks and ``probability`` make no sense for a set and are refused.
        """
        if probability is not None:
            raise ValueError("SlateSpace.sample does not support `probability`")
        rows = int(np.prod(self.batch_shape)) if self.batch_shape else 1
        if mask is None:
            out = sample_slates(self.np_random, self.n_items, self.k, rows)
        else:
            allowed = np.flatnonzero(np.asarray(mask).reshape(-1))
            if np.asarray(mask).size != self.n_items:
                raise ValueError(f"mask must have n_items={self.n_items} entries, got shape {np.shape(mask)}")
            if allowed.size < self.k:
                raise ValueError(f"mask allows {allowed.size} items, fewer than k={self.k}")
            out = allowed[sample_slates(self.np_random, allowed.size, self.k, rows) - 1] + 1
        return out.reshape(self.shape).astype(np.int64, copy=False)

    def contains(self, x: Any) -> bool:
        if not super().contains(x):
            return False
        rows = np.asarray(x).reshape(-1, self.k)
        return not has_duplicates(rows).any()

    # --- cosmetics -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        batch = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        return f"SlateSpace(n_items={self.n_items}, k={self.k}{batch})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, SlateSpace)
            and other.n_items == self.n_items
            and other.k == self.k
            and other.batch_shape == self.batch_shape
        )

    __hash__ = None  # mutable RNG state; like other gymnasium spaces, not hashable


@batch_space.register(SlateSpace)
def _batch_slate_space(space: SlateSpace, n: int = 1) -> SlateSpace:
    from copy import deepcopy

    return SlateSpace(space.n_items, space.k, batch_shape=(n,) + space.batch_shape, seed=deepcopy(space.np_random))


def has_duplicates(slates: np.ndarray) -> np.ndarray:
    """(R,) bool: does row r of an (R, k) id array repeat an id?"""
    s = np.sort(slates, axis=1)
    return (s[:, 1:] == s[:, :-1]).any(axis=1)


def sample_slates(rng: np.random.Generator, n_items: int, k: int, rows: int) -> np.ndarray:
    """(rows, k) ids in 1..n_items, each row without repetition, uniform over ordered k-tuples.

    Rejection (redraw a row that repeats an id) costs O(rows * k) when k << n_items, where a
    per-row permutation of a 100,000-item pool would dominate a simulator step.
    """
    if 2 * k > n_items:  # dense case: partial permutations
        keys = rng.random((rows, n_items))
        idx = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n_items else np.arange(n_items)[None].repeat(rows, 0)
        order = np.argsort(np.take_along_axis(keys, idx, axis=1), axis=1)  # random order within the set
        return np.take_along_axis(idx, order, axis=1) + 1
    out = rng.integers(1, n_items + 1, size=(rows, k), dtype=np.int64)
    bad = has_duplicates(out)
    while bad.any():
        idx = np.flatnonzero(bad)
        out[idx] = rng.integers(1, n_items + 1, size=(idx.size, k), dtype=np.int64)
        bad[idx] = has_duplicates(out[idx])
    return out
