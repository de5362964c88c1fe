"""An EnvRunner for batched simulators: one VectorEnv of B users, flat transition columns out.

RLlib's stock ``SingleAgentEnvRunner`` keeps one episode object per simulated user (~0.2 ms per
user-step on a 2-core machine), which would dominate a HAC iteration. This runner steps the whole
``HACSimulatorEnv`` with one module call per step and returns numpy columns ready for the flat replay
buffer, while keeping what RLlib's EnvRunner contract gives: weight sync through ``set_state``,
checkpointing, fault tolerance and remote scaling through the EnvRunnerGroup.

NEXT_STEP autoreset: the step after a user leaves only brings the next user into that slot; its
action is ignored and its "transition" is not real, so it is not returned.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Collection, Dict, Optional, Union

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.core import COMPONENT_RL_MODULE, DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.env import INPUT_ENV_SINGLE_SPACES, INPUT_ENV_SPACES
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.env_runner import EnvRunner
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import (
    EPISODE_LEN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.tune.registry import ENV_CREATOR, _global_registry

from hac_rllib import transitions as T
from hac_rllib.module import HYPER_ACTION

logger = logging.getLogger(__name__)


def make_vector_env(config, *, worker_index: int = 0, num_workers: int = 0) -> gym.vector.VectorEnv:
    """Build the batched simulator of ``config.env`` with ``num_envs_per_env_runner`` users.

    Accepts an RLlib-registered creator name, a callable, or a gymnasium id with a vector entry point."""
    num_envs = int(config.num_envs_per_env_runner)
    env_ctx = EnvContext(dict(config.env_config or {}), worker_index=worker_index, num_workers=num_workers)
    if not config.env:
        raise ValueError("config.env is not set: pass a simulator, e.g. config.environment('hac-simulator', env_config={'simulator': PATH})")
    if isinstance(config.env, str) and _global_registry.contains(ENV_CREATOR, config.env):
        env = _global_registry.get(ENV_CREATOR, config.env)(env_ctx | {"num_envs": num_envs})
    elif callable(config.env):
        env = config.env(env_ctx | {"num_envs": num_envs})
    else:
        env = gym.make_vec(config.env, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_ctx)
    if env.num_envs != num_envs:
        raise ValueError(f"the simulator has {env.num_envs} users, expected num_envs_per_env_runner={num_envs}")
    return env


def to_torch_obs(obs: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.asarray(value)) for key, value in obs.items()}


class SimulatorEnvRunner(EnvRunner, Checkpointable):
    """Samples B users at once from a ``HACSimulatorEnv`` with the (inference-only) RLModule."""

    def __init__(self, *, config, **kwargs):
        super().__init__(config=config, **kwargs)
        self._weights_seq_no = 0
        self.env = None
        self.make_env()
        self.make_module()
        self._obs: Optional[Dict[str, np.ndarray]] = None
        self._resetting = np.zeros(self.num_envs, dtype=bool)
        self._session_return = np.zeros(self.num_envs, dtype=np.float64)
        self._session_len = np.zeros(self.num_envs, dtype=np.int64)

    # --- construction --------------------------------------------------------------------------------
    def make_env(self) -> None:
        if self.env is not None:
            try:
                self.env.close()
            except Exception as e:  # a broken env must not prevent its replacement
                logger.warning("closing the old simulator failed: %s", e)
        self.env = make_vector_env(self.config, worker_index=self.worker_index or 0, num_workers=self.num_workers or 0)
        self.num_envs = self.env.num_envs
        self._obs = None

    def make_module(self) -> None:
        spec = self.config.get_rl_module_spec(spaces=self.get_spaces(), inference_only=True)
        self.module = spec.build()
        self.module.eval()

    def get_spaces(self):
        return {
            INPUT_ENV_SPACES: (self.env.observation_space, self.env.action_space),
            INPUT_ENV_SINGLE_SPACES: (self.env.single_observation_space, self.env.single_action_space),
            DEFAULT_MODULE_ID: (self.env.single_observation_space, self.env.single_action_space),
        }

    def assert_healthy(self):
        assert self.env is not None and self.module is not None

    # --- sampling ------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._obs, _ = self.env.reset(seed=self._seed)
        self._resetting[:] = False
        self._session_return[:] = 0.0
        self._session_len[:] = 0

    def act(self, obs: Dict[str, np.ndarray], *, explore: bool, random_actions: bool = False) -> Dict[str, np.ndarray]:
        out = self.module.act(to_torch_obs(obs), explore=explore, random_hyper_action=random_actions)
        return {T.SLATE: out[Columns.ACTIONS].numpy(), T.HYPER_ACTION: out[HYPER_ACTION].numpy()}

    def sample(
        self,
        *,
        num_timesteps: Optional[int] = None,
        explore: bool = True,
        random_actions: bool = False,
        force_reset: bool = False,
        **kwargs,
    ) -> Dict[str, np.ndarray]:
        """Step all B users ``ceil(num_timesteps / B)`` times (default: ``rollout_fragment_length``
        vector steps) and return the real transitions as columns (see ``hac_rllib.transitions``)."""
        if self._obs is None or force_reset:
            self._reset()
        if num_timesteps is None:
            fragment = self.config.rollout_fragment_length
            n_steps = int(fragment) if isinstance(fragment, int) else 1
        else:
            n_steps = max(1, math.ceil(num_timesteps / self.num_envs))
        parts: list[Dict[str, np.ndarray]] = []
        finished_returns: list[float] = []
        finished_lens: list[int] = []
        for _ in range(n_steps):
            obs = self._obs
            action = self.act(obs, explore=explore, random_actions=random_actions)
            next_obs, reward, terminated, truncated, infos = self.env.step(action[T.SLATE])
            real = ~self._resetting
            done = np.asarray(terminated) | np.asarray(truncated)
            parts.append(
                {
                    T.USER_ID: obs["user_id"][real],
                    T.USER_FEATURES: obs["user_features"][real],
                    T.HISTORY: obs["history"][real],
                    T.NEXT_HISTORY: next_obs["history"][real],
                    T.SLATE: action[T.SLATE][real],
                    T.HYPER_ACTION: action[T.HYPER_ACTION][real],
                    T.FEEDBACK: np.asarray(infos["feedback"])[real],
                    T.REWARD: np.asarray(reward, dtype=np.float32)[real],
                    T.DONE: np.asarray(terminated)[real],
                }
            )
            self._session_return[real] += reward[real]
            self._session_len[real] += 1
            ended = real & done
            if ended.any():
                finished_returns.extend(self._session_return[ended].tolist())
                finished_lens.extend(self._session_len[ended].tolist())
                self._session_return[ended] = 0.0
                self._session_len[ended] = 0
            self._resetting = done
            self._obs = next_obs
        batch = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        self._log_sample_metrics(len(batch[T.REWARD]), finished_returns, finished_lens)
        return batch

    def _log_sample_metrics(self, n_steps: int, returns: list[float], lengths: list[int]) -> None:
        self.num_env_steps_sampled_lifetime += n_steps
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, n_steps, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, n_steps, reduce="lifetime_sum", with_throughput=True)
        self.metrics.log_value(NUM_EPISODES, len(returns), reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, len(returns), reduce="lifetime_sum")
        win = max(1, int(math.ceil(self.config.metrics_num_episodes_for_smoothing / (self.config.num_env_runners or 1))))
        for ret, length in zip(returns, lengths):
            self.metrics.log_value(EPISODE_RETURN_MEAN, ret, window=win)
            self.metrics.log_value(EPISODE_LEN_MEAN, length, window=win)
            self.metrics.log_value(EPISODE_RETURN_MIN, ret, reduce="min", window=win)
            self.metrics.log_value(EPISODE_RETURN_MAX, ret, reduce="max", window=win)

    def get_metrics(self):
        return self.metrics.reduce()

    # --- evaluation ----------------------------------------------------------------------------------
    def evaluate_sessions(self, num_sessions: int, seed: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Greedy sessions in this runner's simulator; per-session totals and depths, so the
        Algorithm can pool several runners before computing means and intervals."""
        from envs.evaluation import evaluate_sessions

        policy = lambda obs: self.act(obs, explore=False)[T.SLATE]  # noqa: E731
        stats = evaluate_sessions(self.env, policy, num_sessions, seed=self._seed if seed is None else seed)
        self._obs = None  # the sessions moved the env on: a later sample() starts afresh
        return {"session_rewards": stats.session_rewards, "session_depths": stats.session_depths}

    # --- state ---------------------------------------------------------------------------------------
    def get_state(
        self,
        components: Optional[Union[str, Collection[str]]] = None,
        *,
        not_components: Optional[Union[str, Collection[str]]] = None,
        **kwargs,
    ) -> Dict[str, Any]:
        state: Dict[str, Any] = {NUM_ENV_STEPS_SAMPLED_LIFETIME: self.num_env_steps_sampled_lifetime}
        if self._check_component(COMPONENT_RL_MODULE, components, not_components):
            state[COMPONENT_RL_MODULE] = self.module.get_state(
                components=self._get_subcomponents(COMPONENT_RL_MODULE, components),
                not_components=self._get_subcomponents(COMPONENT_RL_MODULE, not_components),
                **kwargs,
            )
            state[WEIGHTS_SEQ_NO] = self._weights_seq_no
        return state

    def set_state(self, state: Dict[str, Any]) -> None:
        if COMPONENT_RL_MODULE in state:
            seq_no = state.get(WEIGHTS_SEQ_NO, 0)
            if seq_no == 0 or self._weights_seq_no < seq_no:
                module_state = state[COMPONENT_RL_MODULE]
                if isinstance(module_state, ray.ObjectRef):
                    module_state = ray.get(module_state)
                if isinstance(module_state, dict) and DEFAULT_MODULE_ID in module_state:
                    module_state = module_state[DEFAULT_MODULE_ID]  # the learners hold a MultiRLModule
                self.module.set_state(module_state)
            if seq_no > 0:
                self._weights_seq_no = seq_no
        if NUM_ENV_STEPS_SAMPLED_LIFETIME in state:
            self.num_env_steps_sampled_lifetime = state[NUM_ENV_STEPS_SAMPLED_LIFETIME]

    def get_ctor_args_and_kwargs(self):
        return ((), {"config": self.config})

    def get_metadata(self):
        return Checkpointable.get_metadata(self)

    def get_checkpointable_components(self):
        return [(COMPONENT_RL_MODULE, self.module)]

    def stop(self) -> None:
        if self.env is not None:
            self.env.close()
