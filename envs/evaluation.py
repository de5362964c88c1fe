"""Session evaluation in a simulator, independent of RLlib, and the reference policies.

:func:`evaluate_sessions` plays complete user sessions with any policy — a callable from the batched
observation dict to a ``(B, k)`` array of item ids — and reports the paper's online metrics with
95 % confidence intervals: **Total Reward** (mean over sessions of the summed step rewards), **Depth**
(mean number of slates per session) and **Reward Variance** (variance of the total reward across
sessions).

Only the first ``n_sessions`` sessions started after the evaluation's reset count, and evaluation
waits until every one of them has ended. (Stopping at the first N *finished* sessions would favour
short sessions, i.e. bad policies.) Rows that go on to start extra sessions keep running, and those
sessions are ignored.

Reference policies: :class:`RandomPolicy` (uniform slates), :class:`PopularPolicy` (the items with the
most positives in the records Ψ was fit on; by default the same slate for everyone, which is the
classic baseline; ``exclude_history=True`` skips items already in the user's history) and
:class:`OraclePolicy` (greedy: the top-k items by Ψ's own score for the current user state, which
maximises the expected immediate reward because Ψ scores items independently — an upper reference
for myopic play, not for whole sessions).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from envs.response import SimulatorCheckpoint
from envs.spaces import sample_slates

Policy = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass
class SessionStats:
    """Online metrics over ``n_sessions`` complete sessions; ``*_ci`` are 95 % intervals."""

    n_sessions: int
    total_reward: float
    total_reward_ci: tuple[float, float]
    depth: float
    depth_ci: tuple[float, float]
    reward_variance: float
    reward_variance_ci: tuple[float, float]
    avg_reward: float  # per slate: sum of rewards / sum of depths
    env_steps: int
    seconds: float
    session_rewards: np.ndarray  # (n_sessions,) in start order
    session_depths: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the per-session arrays)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("session_rewards", "session_depths")}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


def _mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    from scipy import stats

    n = x.size
    if n < 2:
        return (float("nan"), float("nan"))
    sem = x.std(ddof=1) / math.sqrt(n)
    if sem == 0:
        return (float(x.mean()), float(x.mean()))
    lo, hi = stats.t.interval(level, n - 1, loc=x.mean(), scale=sem)
    return (float(lo), float(hi))


def _variance_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Chi-square interval of the variance (exact for normal totals, approximate otherwise)."""
    from scipy import stats

    n = x.size
    if n < 2:
        return (float("nan"), float("nan"))
    ss = (n - 1) * x.var(ddof=1)
    a = (1 - level) / 2
    return (float(ss / stats.chi2.ppf(1 - a, n - 1)), float(ss / stats.chi2.ppf(a, n - 1)))


def summarize_sessions(rewards: np.ndarray, depths: np.ndarray, *, env_steps: int = 0, seconds: float = 0.0) -> SessionStats:
    rewards = np.asarray(rewards, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64)
    n = rewards.size
    return SessionStats(
        n_sessions=int(n),
        total_reward=float(rewards.mean()) if n else float("nan"),
        total_reward_ci=_mean_ci(rewards),
        depth=float(depths.mean()) if n else float("nan"),
        depth_ci=_mean_ci(depths),
        reward_variance=float(rewards.var(ddof=1)) if n > 1 else float("nan"),
        reward_variance_ci=_variance_ci(rewards),
        avg_reward=float(rewards.sum() / depths.sum()) if n and depths.sum() else float("nan"),
        env_steps=int(env_steps),
        seconds=float(seconds),
        session_rewards=rewards,
        session_depths=depths,
    )


def evaluate_sessions(
    env_or_simulator: Any,
    policy: Policy,
    n_sessions: int = 1000,
    seed: int | None = 0,
    *,
    num_envs: int = 256,
    env_kwargs: Mapping[str, Any] | None = None,
    max_steps: int = 1_000_000,
) -> SessionStats:
    """Run ``n_sessions`` complete sessions of ``policy`` and summarise them.

    ``env_or_simulator``: a NEXT_STEP-autoreset ``VectorEnv`` (e.g. :class:`HACSimulatorEnv`), or a
    checkpoint path / :class:`SimulatorCheckpoint`, from which an env with
    ``min(num_envs, n_sessions)`` rows and ``env_kwargs`` is built. The env is reset with ``seed``.
    """
    from envs.simulator import HACSimulatorEnv

    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    if isinstance(env_or_simulator, (str, os.PathLike, SimulatorCheckpoint)):
        env = HACSimulatorEnv(env_or_simulator, num_envs=min(num_envs, n_sessions), **dict(env_kwargs or {}))
    else:
        env = env_or_simulator
        if env_kwargs:
            raise ValueError("env_kwargs only apply when a simulator (not an env) is given")
    b = env.num_envs
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    session_of = np.where(np.arange(b) < n_sessions, np.arange(b), -1)
    next_id = min(b, n_sessions)
    ret = np.zeros(b)
    depth = np.zeros(b, dtype=np.int64)
    pending = np.zeros(b, dtype=bool)  # row ended last step: this step starts its next session
    totals = np.full(n_sessions, np.nan)
    depths = np.zeros(n_sessions, dtype=np.int64)
    finished, steps = 0, 0
    while finished < n_sessions:
        if steps >= max_steps:
            raise RuntimeError(f"{finished}/{n_sessions} sessions ended after {steps} steps (max_steps)")
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        steps += 1
        if pending.any():
            rows = np.flatnonzero(pending)
            ids = next_id + np.arange(rows.size)
            session_of[rows] = np.where(ids < n_sessions, ids, -1)
            next_id = min(n_sessions, next_id + rows.size)
            ret[rows] = 0.0
            depth[rows] = 0
        active = ~pending
        ret[active] += reward[active]
        depth[active] += 1
        done = (np.asarray(terminated) | np.asarray(truncated)) & active
        counted = done & (session_of >= 0)
        if counted.any():
            totals[session_of[counted]] = ret[counted]
            depths[session_of[counted]] = depth[counted]
            finished += int(counted.sum())
            session_of[counted] = -1
        pending = done
    return summarize_sessions(totals, depths, env_steps=steps * b, seconds=time.perf_counter() - t0)


# ================================================================================================
# Reference policies
# ================================================================================================


class RandomPolicy:
    """Uniformly random slates of distinct items."""

    def __init__(self, n_items: int, k: int, seed: int | None = None):
        self.n_items, self.k = int(n_items), int(k)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def for_env(cls, env: Any, seed: int | None = None) -> "RandomPolicy":
        return cls(env.n_items, env.k, seed)

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return sample_slates(self.rng, self.n_items, self.k, len(obs["user_id"]))


class PopularPolicy:
    """The k items with the most positives in the logged records Ψ was fit on.

    ``exclude_history=False`` (default): one slate for everyone, the classic popularity baseline.
    ``exclude_history=True``: the most popular items not yet in the user's history.
    """

    def __init__(self, item_positive_counts: np.ndarray, k: int, *, exclude_history: bool = False):
        counts = np.asarray(item_positive_counts, dtype=np.float64).copy()
        counts[0] = -np.inf  # padding is never recommended
        self.ranked = np.argsort(-counts, kind="stable")  # ids, most popular first
        self.ranked = self.ranked[self.ranked != 0]
        self.k = int(k)
        self.exclude_history = exclude_history

    @classmethod
    def for_simulator(cls, simulator: SimulatorCheckpoint, **kwargs: Any) -> "PopularPolicy":
        return cls(simulator.item_positive_counts, simulator.k, **kwargs)

    @classmethod
    def for_env(cls, env: Any, **kwargs: Any) -> "PopularPolicy":
        return cls.for_simulator(env.simulator, **kwargs)

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        b = len(obs["user_id"])
        if not self.exclude_history:
            return np.broadcast_to(self.ranked[: self.k], (b, self.k)).copy()
        hist = np.asarray(obs["history"])
        cand = self.ranked[: self.k + hist.shape[1]]  # enough candidates whatever the history holds
        seen = (cand[None, :, None] == hist[:, None, :]).any(-1)  # (B, C)
        first = np.argsort(seen, axis=1, kind="stable")[:, : self.k]  # unseen first, in popularity order
        return cand[first]


class OraclePolicy:
    """Greedy by Ψ itself: the top-k items of the whole catalogue by Ψ's logit for the current state.

    Because Ψ scores items independently, this maximises the expected immediate reward; it is the
    upper reference for myopic play (it ignores how the slate changes the history and the temper).
    """

    def __init__(self, simulator_or_env: Any, *, exclude_history: bool = False, device: str | torch.device = "cpu",
                 max_scores_per_chunk: int = 16_000_000):
        from envs.simulator import HACSimulatorEnv, ResponseScorer

        if isinstance(simulator_or_env, HACSimulatorEnv):
            self.scorer, self.k = simulator_or_env.scorer, simulator_or_env.k
        else:
            sim = simulator_or_env
            if isinstance(sim, (str, os.PathLike)):
                from envs.response import load_response_model

                sim = load_response_model(sim)
            self.scorer, self.k = ResponseScorer(sim.model, device), sim.k
        self.exclude_history = exclude_history
        self.chunk = max(1, max_scores_per_chunk // self.scorer.item_table.shape[0])

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        dev = self.scorer.device
        users = torch.as_tensor(np.asarray(obs["user_id"]), dtype=torch.long, device=dev)
        hist = torch.as_tensor(np.asarray(obs["history"]), dtype=torch.long, device=dev)
        out = []
        with torch.no_grad():
            for i in range(0, users.shape[0], self.chunk):
                h = hist[i : i + self.chunk]
                logits = self.scorer.all_logits(self.scorer.state(users[i : i + self.chunk], h))
                if self.exclude_history:
                    logits.scatter_(1, h, float("-inf"))
                out.append(torch.topk(logits, self.k, dim=1).indices)
        return torch.cat(out).cpu().numpy()


REFERENCE_POLICIES = ("random", "popular", "oracle")


def evaluate_reference_policies(
    simulator: Any,
    n_sessions: int = 1000,
    seed: int = 0,
    *,
    num_envs: int = 256,
    policies: tuple[str, ...] = REFERENCE_POLICIES,
    env_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, SessionStats]:
    """Random / popular / oracle in one simulator, each from the same seed (same first users)."""
    from envs.simulator import HACSimulatorEnv

    env = HACSimulatorEnv(simulator, num_envs=min(num_envs, n_sessions), **dict(env_kwargs or {}))
    makers: dict[str, Callable[[], Policy]] = {
        "random": lambda: RandomPolicy.for_env(env, seed),
        "popular": lambda: PopularPolicy.for_env(env),
        "popular-unseen": lambda: PopularPolicy.for_env(env, exclude_history=True),
        "oracle": lambda: OraclePolicy(env),
        "oracle-unseen": lambda: OraclePolicy(env, exclude_history=True),
    }
    unknown = set(policies) - set(makers)
    if unknown:
        raise ValueError(f"unknown reference policies {sorted(unknown)}; choose from {sorted(makers)}")
    return {name: evaluate_sessions(env, makers[name](), n_sessions, seed) for name in policies}
