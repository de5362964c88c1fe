"""The synthetic dataset: the embedded default for the demo and the tests, with known long-term effects.

Ground truth (all drawn from one seed):

* items have a topic (one of ``n_topics``), a latent vector ``v_i`` near their topic's centre and a
  quality ``b_i``; users have a latent interest ``u`` built from two or three favourite topics;
* the click probability of item i for a user at time t is
  ``sigmoid(affinity * <u_t, v_i> + b_i + bias - boredom * repeats_t(topic_i))`` where ``repeats`` counts
  the item's topic among the user's last ``boredom_window`` positives (boredom with repeated topics);
* after each positive the interest drifts towards the clicked item: ``u <- (1 - drift) u + drift v_i``.

So a myopic recommender that keeps serving the currently best topic bores the user, while one that
varies topics earns more over a session: long-term effects exist and can be learned. What a model
may observe are noisy projections: item features (topic one-hot, noisy latent, noisy quality) and
user features (noisy initial interest, activity level). The logged lists come from a noisy
relevance-plus-popularity logging policy, cut into lists of k by the shared list builder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from envs.data.errors import DataError
from envs.data.format import DEFAULT_MAX_HISTORY, DEFAULT_SLATE_SIZE, DEFAULT_TRAIN_FRACTION, write_dataset
from envs.data.lists import build_list_records, split_by_time


@dataclass(frozen=True)
class SyntheticParams:
    """Every generating parameter; all of them are recorded in ``meta.json``."""

    n_users: int = 1000
    n_items: int = 2000
    n_records: int = 100_000  # logged lists (each of k items)
    k: int = DEFAULT_SLATE_SIZE
    max_history: int = DEFAULT_MAX_HISTORY
    train_fraction: float = DEFAULT_TRAIN_FRACTION
    latent_dim: int = 8
    n_topics: int = 20
    # Sharp preferences: the best slates for a user are clicked ~85 % of the time, random ones ~12 %,
    # the logged (noisy) ones ~21 %, so good recommending keeps users for many steps of a session.
    affinity: float = 6.0  # weight of <u, v>
    bias: float = -3.7  # global click bias
    quality_scale: float = 0.5  # std of item quality b_i
    boredom: float = 0.45  # logit penalty per repeat of a topic among recent positives
    boredom_window: int = 10
    drift: float = 0.05  # interest drift towards each clicked item
    logging_temperature: float = 3.0  # sharpness of the logging policy (0 = uniform)
    feature_noise: float = 0.3  # noise on the observable features
    seed: int = 0

    def validate(self) -> None:
        if self.n_users < 1 or self.n_items < self.k or self.k < 1:
            raise DataError(f"synthetic sizes need n_users >= 1 and n_items >= k >= 1: {self}")
        if self.n_records < self.n_users:
            raise DataError(f"n_records ({self.n_records}) must be at least n_users ({self.n_users})")
        if self.n_topics < 1 or self.latent_dim < 1 or self.boredom_window < 1:
            raise DataError("n_topics, latent_dim and boredom_window must be positive")


@dataclass
class SyntheticTruth:
    """The hidden world, saved as ``truth.npz`` so tests can compare learned models with it."""

    item_topic: np.ndarray  # (N + 1,) int, row 0 padding (-1)
    item_latent: np.ndarray  # (N + 1, d)
    item_quality: np.ndarray  # (N + 1,)
    user_latent: np.ndarray  # (U + 1, d) initial interests

    def click_logits(self, user_latent: np.ndarray, items: np.ndarray, repeats: np.ndarray, p: SyntheticParams):
        """Logits for (B, k) items given (B, d) current interests and (B, k) topic repeat counts."""
        dot = np.einsum("bd,bkd->bk", user_latent, self.item_latent[items])
        return p.affinity * dot + self.item_quality[items] + p.bias - p.boredom * repeats


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _make_world(p: SyntheticParams, rng: np.random.Generator) -> SyntheticTruth:
    d, t = p.latent_dim, p.n_topics
    centres = rng.normal(size=(t, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topic = rng.integers(0, t, size=p.n_items)
    v = centres[topic] + 0.35 * rng.normal(size=(p.n_items, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    quality = p.quality_scale * rng.normal(size=p.n_items)
    # users: a mix of 2-3 favourite topics
    n_fav = rng.integers(2, 4, size=p.n_users)
    weights = rng.dirichlet(np.ones(t) * 0.05, size=p.n_users)
    for u in range(p.n_users):  # keep only the n_fav strongest topics, renormalised
        keep = np.argsort(weights[u])[-n_fav[u] :]
        w = np.zeros(t)
        w[keep] = weights[u, keep] + 0.2
        weights[u] = w / w.sum()
    u_lat = weights @ centres + 0.2 * rng.normal(size=(p.n_users, d))
    u_lat /= np.linalg.norm(u_lat, axis=1, keepdims=True)
    pad = lambda a, fill=0.0: np.concatenate([np.full((1,) + a.shape[1:], fill, dtype=float), a.astype(float)])
    return SyntheticTruth(
        item_topic=np.concatenate([[-1], topic]).astype(np.int64),
        item_latent=pad(v),
        item_quality=pad(quality),
        user_latent=pad(u_lat),
    )


def _observable_tables(p: SyntheticParams, truth: SyntheticTruth, activity: np.ndarray, rng: np.random.Generator):
    n, u = p.n_items, p.n_users
    topic_onehot = np.eye(p.n_topics, dtype=np.float32)[truth.item_topic[1:]]
    items = {"item_id": np.arange(1, n + 1)}
    for j in range(p.n_topics):
        items[f"topic_{j}"] = topic_onehot[:, j]
    noisy_v = truth.item_latent[1:] + p.feature_noise * rng.normal(size=(n, p.latent_dim))
    for j in range(p.latent_dim):
        items[f"latent_{j}"] = noisy_v[:, j].astype(np.float32)
    items["quality"] = (truth.item_quality[1:] + p.feature_noise * rng.normal(size=n)).astype(np.float32)
    users = {"user_id": np.arange(1, u + 1)}
    noisy_u = truth.user_latent[1:] + p.feature_noise * rng.normal(size=(u, p.latent_dim))
    for j in range(p.latent_dim):
        users[f"interest_{j}"] = noisy_u[:, j].astype(np.float32)
    users["activity"] = np.log(activity).astype(np.float32)
    return pd.DataFrame(items), pd.DataFrame(users)


def simulate_logs(p: SyntheticParams, truth: SyntheticTruth, rng: np.random.Generator):
    """Run the logging policy against the true users; returns interaction columns and activity levels."""
    n_steps_per_user = _lists_per_user(p, rng)
    activity = n_steps_per_user / n_steps_per_user.mean()
    n_users, k, w = p.n_users, p.k, p.boredom_window
    u_t = truth.user_latent[1:].copy()
    recent = np.full((n_users, w), -1, dtype=np.int64)  # topics of the last w positives, ring buffer
    ring_pos = np.zeros(n_users, dtype=np.int64)
    popularity = np.log1p(rng.pareto(1.5, size=p.n_items))  # the logging system's popularity prior
    item_v = truth.item_latent[1:]

    # time: users start at different points of a 90-day window; lists every ~6 hours on average
    t0 = 1_600_000_000
    user_start = t0 + rng.integers(0, 60 * 86400, size=n_users)
    clock = user_start.astype(np.int64)

    users_out, items_out, ts_out, labels_out = [], [], [], []
    for step in range(int(n_steps_per_user.max())):
        active = np.flatnonzero(n_steps_per_user > step)
        b = len(active)
        # logging policy: noisy relevance (from a stale estimate of interests) plus popularity, Gumbel-top-k
        est = truth.user_latent[1:][active] + 0.5 * rng.normal(size=(b, p.latent_dim))
        logits = p.logging_temperature * (est @ item_v.T + 0.5 * popularity[None, :])
        slate = np.argpartition(-(logits + rng.gumbel(size=logits.shape)), k - 1, axis=1)[:, :k] + 1
        rng.shuffle(slate, axis=1)
        topics = truth.item_topic[slate]
        repeats = (topics[:, :, None] == recent[active][:, None, :]).sum(-1)
        prob = _sigmoid(truth.click_logits(u_t[active], slate, repeats, p))
        y = (rng.random(prob.shape) < prob).astype(np.int8)
        # emit: interactions one second apart inside a list
        users_out.append(np.repeat(active + 1, k))
        items_out.append(slate.reshape(-1))
        ts_out.append((clock[active][:, None] + np.arange(k)[None, :]).reshape(-1))
        labels_out.append(y.reshape(-1))
        # dynamics: drift towards every clicked item, boredom ring updated in slate order
        for j in range(k):
            hit = y[:, j] == 1
            rows = active[hit]
            if rows.size == 0:
                continue
            u_t[rows] = (1 - p.drift) * u_t[rows] + p.drift * item_v[slate[hit, j] - 1]
            recent[rows, ring_pos[rows] % w] = topics[hit, j]
            ring_pos[rows] += 1
        u_t[active] /= np.linalg.norm(u_t[active], axis=1, keepdims=True)
        clock[active] += k + rng.exponential(6 * 3600, size=b).astype(np.int64)
    cat = np.concatenate
    return cat(users_out), cat(items_out), cat(ts_out), cat(labels_out), activity


def _lists_per_user(p: SyntheticParams, rng: np.random.Generator) -> np.ndarray:
    act = rng.lognormal(0.0, 0.6, size=p.n_users)
    counts = np.maximum(1, np.floor(act / act.sum() * p.n_records)).astype(np.int64)
    # hand out the rounding remainder so the total is exactly n_records
    short = p.n_records - counts.sum()
    if short > 0:
        np.add.at(counts, rng.choice(p.n_users, size=short, replace=True, p=act / act.sum()), 1)
    elif short < 0:
        for i in np.argsort(-counts)[: -short]:
            counts[i] -= 1
    return counts


def generate(p: SyntheticParams):
    """Generate the synthetic world and logs in memory: (items, users, train, test, truth)."""
    p.validate()
    rng = np.random.default_rng(p.seed)
    truth = _make_world(p, rng)
    users_col, items_col, ts_col, labels_col, activity = simulate_logs(p, truth, rng)
    items, users = _observable_tables(p, truth, activity, rng)
    records = build_list_records(users_col, items_col, ts_col, labels_col, k=p.k, max_history=p.max_history)
    train, test = split_by_time(records, p.train_fraction)
    return items, users, train, test, truth


def write_synthetic(out_dir: str | Path, params: SyntheticParams | None = None, *, overwrite: bool = False) -> Path:
    """Generate and write the synthetic dataset directory (plus ``truth.npz``)."""
    p = params or SyntheticParams()
    items, users, train, test, truth = generate(p)
    meta = {
        "version": "1",
        "source": "synthetic",
        "subset": False,
        "preprocessing": {"k": p.k, "max_history": p.max_history, "train_fraction": p.train_fraction},
        "generator": dataclasses.asdict(p),
        "sources": {},
    }
    def write_truth(path: Path) -> None:
        with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez(f, **dataclasses.asdict(truth))

    return write_dataset(
        out_dir, name="synthetic", items=items, users=users, train=train, test=test, meta=meta, overwrite=overwrite,
        extra_files={"truth.npz": write_truth},
    )  # fmt: skip


def load_truth(data_dir: str | Path) -> SyntheticTruth:
    path = Path(data_dir) / "truth.npz"
    if not path.is_file():
        raise DataError("no truth.npz: only synthetic datasets carry their ground truth", path=path)
    with np.load(path) as z:
        return SyntheticTruth(**{f.name: z[f.name] for f in dataclasses.fields(SyntheticTruth)})
