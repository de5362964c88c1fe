"""The learned user simulator as a batched ``gymnasium.vector.VectorEnv`` (paper §3.1.2, Appendix A.2).

``HACSimulatorEnv`` simulates ``num_envs`` users at once with one batched torch forward of the frozen
response model Ψ (:mod:`envs.response`) per step; no Python loop runs over users.

One step, for every row b that is not being reset:

* the action is a slate ``a_b`` of k distinct item ids in 1..n_items (anything else raises ``ValueError``);
* responses ``y_bi ~ Bernoulli(sigmoid(Ψ(user_b, history_b, a_bi)))``, independently per item;
* reward ``r_b = mean_i( positive_reward if y_bi else negative_reward )`` — with the defaults (+1, −0.2),
  ``r_b ∈ [−0.2, 1]``;
* the positive items are appended to the history in slate order (most recent last; the oldest drop out);
* **leave model** — a temper budget ``T`` starts at ``initial_temper`` (20) and after each slate falls by
  ``1 + c · (1 − r_b)`` with ``c = leave_cost`` (default k, as in the authors' code). The user leaves
  (``terminated``) when ``T < 1``. As the fall is at least 1, no session lasts more than
  ``floor(initial_temper)`` = 20 steps; worse slates end sessions sooner (with k = 10 a slate with no
  positive costs 13 points, so such users leave after 2 steps).
* ``truncated`` is set only when a session reaches ``max_depth`` steps without the temper running out,
  i.e. never with the defaults (max_depth 20 = the temper's own cap). It marks a time limit, not a
  user's choice, so RL code should bootstrap there.

Autoreset is gymnasium's NEXT_STEP mode (what RLlib expects): the step that reports a row done returns
that user's last observation; on the next ``step`` the row's action is ignored (not validated), a new
user is drawn uniformly from the logged start states (user id, history) of the records Ψ was fit on,
and the row reports reward 0, not done and zero feedback.

Infos (dicts of arrays, each key with gymnasium's ``_key`` mask): ``feedback`` (B, k) int8 of the
slate just shown (masked off for rows being reset); when a session ends (terminated or truncated),
``session_reward`` (its total reward) and ``session_depth`` (its number of slates).

Randomness comes from a numpy Generator (new users) and a torch Generator (responses) owned by the
env and both derived from the seed, so the same seed gives the same trajectories.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.response import ResponseModel, SimulatorCheckpoint, load_response_model
from envs.spaces import SlateSpace, has_duplicates

__all__ = [
    "HACSimulatorEnv",
    "HACSimulatorSingleEnv",
    "ResponseScorer",
    "append_positives",
    "observation_space_for",
]


class ResponseScorer:
    """Frozen Ψ with its item and user embeddings computed once (Ψ never changes inside a simulator).

    Also what the greedy oracle uses to rank the whole catalogue for a user state.
    """

    def __init__(self, model: ResponseModel, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        if model.global_bias.device != self.device:  # a copy: the (cached, shared) checkpoint keeps its device
            model = copy.deepcopy(model).to(self.device)
        self.model = model.eval().requires_grad_(False)
        self.dim = model.config.dim
        with torch.no_grad():
            self.tables = model.inference_tables()
            self.item_table = self.tables["items"]  # (N + 1, dim + 1), last column = bias
            self.user_table = self.tables["users"]  # (U + 1, dim)
            self._item_vectors_t = self.item_table[:, : self.dim].t().contiguous()  # (dim, N + 1)
            self._item_bias = self.item_table[:, self.dim] + model.global_bias

    #: rows per forward chunk: a (256, L, 4·dim) working set stays in cache; at B = 1024 one chunk
    #: was ~20 % slower per row on the 2-core reference machine (8 MiB L3)
    chunk_rows = 256

    @torch.no_grad()
    def state(self, user_ids: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B, dim) user states."""
        b, c = user_ids.shape[0], self.chunk_rows
        if b <= c:
            return self.model.cached_user_state(self.tables, user_ids, history)
        return torch.cat([self.model.cached_user_state(self.tables, user_ids[i : i + c], history[i : i + c])
                          for i in range(0, b, c)])

    @torch.no_grad()
    def slate_logits(self, state: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
        return self.model.score(state, self.item_table[slate])

    @torch.no_grad()
    def all_logits(self, state: torch.Tensor) -> torch.Tensor:
        """(B, N + 1) logits of every item; column 0 (padding) is −inf."""
        out = torch.addmm(self._item_bias, state, self._item_vectors_t).add_(self.model.user_bias_head(state))
        out[:, 0] = float("-inf")
        return out


def append_positives(history: torch.Tensor, new_items: torch.Tensor) -> torch.Tensor:
    """Append the non-zero ids of ``new_items`` (B, k) to left-padded ``history`` (B, L), keeping the last L.

    Vectorised: every non-zero id of ``[history, new_items]`` goes to column ``L − (its rank from the
    right)``; zeros and ids pushed out go to a spare column that is dropped. Returns a new tensor.
    """
    b, length = history.shape
    seq = torch.cat([history, new_items], dim=1)
    nonzero = seq != 0
    rank = nonzero.flip(1).cumsum(1).flip(1)  # 1 for the most recent non-zero id
    target = length - rank
    target = torch.where(nonzero & (target >= 0), target, torch.full_like(target, length))
    out = torch.zeros(b, length + 1, dtype=history.dtype, device=history.device)
    out.scatter_(1, target, seq)
    return out[:, :length].contiguous()


def observation_space_for(n_users: int, n_items: int, user_feature_dim: int, max_history: int) -> spaces.Dict:
    """The single-user observation space: what a real recommender could see."""
    return spaces.Dict(
        {
            "user_id": spaces.Box(0, n_users, shape=(), dtype=np.int64),
            "user_features": spaces.Box(-np.inf, np.inf, shape=(user_feature_dim,), dtype=np.float32),
            "history": spaces.Box(0, n_items, shape=(max_history,), dtype=np.int64),
        }
    )


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> SimulatorCheckpoint:
    return load_response_model(path)


def _resolve(simulator: str | os.PathLike | SimulatorCheckpoint) -> SimulatorCheckpoint:
    """A checkpoint object from a path (loaded once per process and file version) or an object."""
    if isinstance(simulator, SimulatorCheckpoint):
        return simulator
    if isinstance(simulator, (str, os.PathLike)):
        p = Path(simulator).expanduser().absolute()
        if not p.is_file():
            return load_response_model(p)  # raises the clear "no such checkpoint" error
        st = p.stat()
        return _load_cached(str(p), st.st_mtime_ns, st.st_size)
    raise TypeError(f"simulator must be a checkpoint path or a SimulatorCheckpoint, got {type(simulator).__name__}")


def _same_dataset(expected: str, actual: str) -> bool:
    norm = lambda s: "".join(ch for ch in s.lower() if ch.isalnum())  # noqa: E731
    return norm(actual).startswith(norm(expected))


class HACSimulatorEnv(VectorEnv):
    """B simulated users in parallel; see the module docstring for the dynamics and the leave model."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        simulator: str | os.PathLike | SimulatorCheckpoint,
        num_envs: int = 32,
        *,
        seed: int | None = None,
        positive_reward: float = 1.0,
        negative_reward: float = -0.2,
        initial_temper: float = 20.0,
        leave_cost: float | None = None,
        max_depth: int = 20,
        device: str | torch.device = "cpu",
        dataset: str | None = None,
    ):
        """``dataset``, when given (the registered ``hac/<Dataset>-v0`` ids set it), must match the
        checkpoint's dataset: a guard against evaluating in another dataset's simulator."""
        sim = _resolve(simulator)
        if dataset is not None and not _same_dataset(dataset, sim.dataset):
            raise ValueError(f"this env id is for dataset {dataset!r} but the simulator was trained on {sim.dataset!r}")
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if initial_temper < 1:
            raise ValueError(f"initial_temper must be >= 1 (a user leaves once the temper is < 1), got {initial_temper}")
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self.simulator = sim
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.n_items = sim.n_items
        self.n_users = sim.n_users
        self.k = sim.k
        self.max_history = sim.max_history
        self.dataset = sim.dataset
        self.item_features = sim.item_features
        self.user_features = sim.user_features
        self.positive_reward = float(positive_reward)
        self.negative_reward = float(negative_reward)
        self.initial_temper = float(initial_temper)
        self.leave_cost = float(self.k if leave_cost is None else leave_cost)
        self.max_depth = int(max_depth)

        self.single_observation_space = observation_space_for(
            self.n_users, self.n_items, self.user_features.shape[1], self.max_history
        )
        self.single_action_space = SlateSpace(self.n_items, self.k)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self.scorer = ResponseScorer(sim.model, self.device)
        self._start_users = torch.as_tensor(sim.start_user_ids, dtype=torch.long, device=self.device)
        self._start_histories = torch.as_tensor(sim.start_histories, dtype=torch.long, device=self.device)
        if self._start_users.numel() == 0:
            raise ValueError("the simulator has no logged start states to draw users from")
        self._placeholder_slate = torch.arange(1, self.k + 1, device=self.device)

        self._init_seed = seed
        self._seeded = False
        self._torch_gen: torch.Generator | None = None
        b = self.num_envs
        self._users = torch.zeros(b, dtype=torch.long, device=self.device)
        self._history = torch.zeros(b, self.max_history, dtype=torch.long, device=self.device)
        self._temper = np.full(b, self.initial_temper)
        self._depth = np.zeros(b, dtype=np.int64)
        self._return = np.zeros(b, dtype=np.float64)
        self._autoreset = np.zeros(b, dtype=bool)
        self._started = False

    # --- seeding / reset -------------------------------------------------------------------------
    def _seed(self, seed: int | list[int] | None) -> None:
        if isinstance(seed, (list, tuple, np.ndarray)):
            seed = int(np.random.SeedSequence([int(s) for s in seed]).generate_state(1, np.uint64)[0] >> 1)
        self._np_random, self._np_random_seed = seeding.np_random(seed)
        torch_seed = int(self._np_random.integers(0, 2**62))
        self._torch_gen = torch.Generator(device=self.device).manual_seed(torch_seed)
        self.action_space.seed(int(self._np_random.integers(0, 2**31)))
        self.single_action_space.seed(int(self._np_random.integers(0, 2**31)))
        self._seeded = True

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """New users in every row (or only in ``options["reset_mask"]`` rows)."""
        if seed is not None:
            self._seed(seed)
        elif not self._seeded:
            self._seed(self._init_seed)
        mask = np.ones(self.num_envs, dtype=bool)
        if options and options.get("reset_mask") is not None:
            mask = np.asarray(options["reset_mask"], dtype=bool).reshape(self.num_envs)
            if not self._started and not mask.all():
                raise ValueError("the first reset must reset every row")
        users, history = self._users.clone(), self._history.clone()
        self._draw_users(np.flatnonzero(mask), users, history)
        self._users, self._history = users, history
        self._temper[mask] = self.initial_temper
        self._depth[mask] = 0
        self._return[mask] = 0.0
        self._autoreset[mask] = False
        self._started = True
        return self._observation(), {}

    def _draw_users(self, rows: np.ndarray, users: torch.Tensor, history: torch.Tensor) -> None:
        if rows.size == 0:
            return
        idx = torch.from_numpy(self._np_random.integers(0, self._start_users.shape[0], size=rows.size)).to(self.device)
        rows_t = torch.from_numpy(rows).to(self.device)
        users[rows_t] = self._start_users[idx]
        history[rows_t] = self._start_histories[idx]

    def _observation(self) -> dict[str, np.ndarray]:
        users = self._users.cpu().numpy()
        return {
            "history": self._history.cpu().numpy(),
            "user_features": self.user_features[users],
            "user_id": users,
        }

    # --- step --------------------------------------------------------------------------------------
    def _validate(self, slates: np.ndarray, check: np.ndarray) -> None:
        bad_range = ((slates < 1) | (slates > self.n_items)).any(axis=1) & check
        if bad_range.any():
            row = int(np.flatnonzero(bad_range)[0])
            what = "contains padding id 0" if (slates[row] == 0).any() else f"has ids outside 1..{self.n_items}"
            raise ValueError(
                f"invalid slate in row {row}: {slates[row].tolist()} {what} "
                f"({int(bad_range.sum())} invalid row(s) in this batch)"
            )
        dup = has_duplicates(slates) & check
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise ValueError(
                f"invalid slate in row {row}: {slates[row].tolist()} repeats an item "
                f"({int(dup.sum())} invalid row(s) in this batch)"
            )

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        slates = np.asarray(actions)
        b, k = self.num_envs, self.k
        if slates.shape != (b, k):
            raise ValueError(f"actions must have shape (num_envs, k) = {(b, k)}, got {slates.shape}")
        if not np.issubdtype(slates.dtype, np.integer):
            if not (np.issubdtype(slates.dtype, np.floating) and np.all(slates == np.round(slates))):
                raise ValueError(f"slates must hold integer item ids, got dtype {slates.dtype}")
        slates = slates.astype(np.int64, copy=False)
        resetting = self._autoreset
        active = ~resetting
        self._validate(slates, active)

        slate_t = torch.from_numpy(slates).to(self.device)
        any_reset = bool(resetting.any())
        if any_reset:  # placeholder ids for ignored rows, so one batched forward serves all rows
            slate_t = slate_t.clone()
            slate_t[torch.from_numpy(resetting).to(self.device)] = self._placeholder_slate
        with torch.no_grad():
            state = self.scorer.state(self._users, self._history)
            probs = torch.sigmoid(self.scorer.slate_logits(state, slate_t))
            clicks = torch.rand(probs.shape, generator=self._torch_gen, device=self.device) < probs
            item_reward = torch.where(
                clicks,
                torch.tensor(self.positive_reward, device=self.device),
                torch.tensor(self.negative_reward, device=self.device),
            )
            reward_t = item_reward.mean(dim=1)
            history = append_positives(self._history, torch.where(clicks, slate_t, torch.zeros_like(slate_t)))
        reward = reward_t.cpu().numpy().astype(np.float64)
        feedback = clicks.cpu().numpy().astype(np.int8)

        users = self._users
        if any_reset:
            rows = np.flatnonzero(resetting)
            users = users.clone()
            self._draw_users(rows, users, history)
            reward[rows] = 0.0
            feedback[rows] = 0
            self._temper[rows] = self.initial_temper
            self._depth[rows] = 0
            self._return[rows] = 0.0
        self._users, self._history = users, history

        self._temper[active] -= 1.0 + self.leave_cost * (1.0 - reward[active])
        self._depth[active] += 1
        self._return[active] += reward[active]
        terminated = active & (self._temper < 1.0)
        truncated = active & ~terminated & (self._depth >= self.max_depth)
        done = terminated | truncated
        self._autoreset = done

        infos: dict[str, Any] = {"feedback": feedback, "_feedback": active.copy()}
        if done.any():
            infos["session_reward"] = np.where(done, self._return, 0.0).astype(np.float32)
            infos["_session_reward"] = done.copy()
            infos["session_depth"] = np.where(done, self._depth, 0).astype(np.int64)
            infos["_session_depth"] = done.copy()
        return self._observation(), reward.astype(np.float32), terminated, truncated, infos

    def __repr__(self) -> str:
        return (
            f"HACSimulatorEnv(dataset={self.dataset!r}, num_envs={self.num_envs}, n_items={self.n_items}, k={self.k}, "
            f"split={self.simulator.split!r})"
        )


class HACSimulatorSingleEnv(gym.Env):
    """One simulated user as a plain ``gymnasium.Env`` (for ``gym.make``, env checkers, sync vectorisation).

    Same dynamics as :class:`HACSimulatorEnv` with one row; here the caller resets after a session ends.
    """

    metadata = {"render_modes": []}

    def __init__(self, simulator: str | os.PathLike | SimulatorCheckpoint, **kwargs: Any):
        self._vec = HACSimulatorEnv(simulator, num_envs=1, **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        for name in ("n_items", "n_users", "k", "max_history", "dataset", "item_features", "user_features", "simulator"):
            setattr(self, name, getattr(self._vec, name))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            super().reset(seed=seed)  # keeps gymnasium's own np_random bookkeeping consistent
        obs, _ = self._vec.reset(seed=seed)
        self._done = False
        return self._single(obs), {}

    def step(self, action):
        if getattr(self, "_done", True):
            raise RuntimeError("the session has ended (or never started): call reset()")
        obs, reward, terminated, truncated, infos = self._vec.step(np.asarray(action).reshape(1, -1))
        info: dict[str, Any] = {"feedback": infos["feedback"][0]}
        if "session_reward" in infos:
            info["session_reward"] = float(infos["session_reward"][0])
            info["session_depth"] = int(infos["session_depth"][0])
        self._done = bool(terminated[0] or truncated[0])
        return self._single(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    @staticmethod
    def _single(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: np.array(value[0]) for key, value in obs.items()}


# importing the registration module registers the gymnasium ids: `gym.make("hac/ML1M-v0", ...)` works
# once envs.simulator is imported
from envs import registration as _registration  # noqa: E402,F401
