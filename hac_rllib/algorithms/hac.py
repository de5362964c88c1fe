"""HAC as an RLlib Algorithm: ``HACConfig`` (every hyperparameter of the paper) and ``HAC.training_step``.

One HAC step (the paper's "iteration", Algorithm 1 lines 5-9): every EnvRunner steps its B users once
with exploration, the transitions go to a flat replay buffer, then the Learner makes
``updates_per_env_step`` updates per vector step on minibatches of ``train_batch_size_per_learner``
and the new weights are synced to the EnvRunners. Until ``num_steps_sampled_before_learning_starts``
transitions are stored, acting uses random hyper-actions and nothing is learned (the warm-up).
One RLlib iteration (``Algorithm.train()``) runs ``steps_per_iteration`` HAC steps.

The same Algorithm runs every method of Table 3: ``config.method`` names a preset of
``hac_rllib.algorithms.methods`` (which phases the Learner runs, which module parts exist, and whether
the data are online interactions or the dataset's logged records). For the offline methods a step is
one update on a batch of logged records (``offline_data.LoggedRecordBatches``); the simulator is used
only for evaluation.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from envs.registration import RLLIB_ENV_NAME as SIMULATOR_ENV
from hac_rllib import transitions as T
from hac_rllib.buffer import FlatReplayBuffer
from hac_rllib.env_runner import SimulatorEnvRunner

REPLAY_BUFFER_STATE = "replay_buffer"
LOSS_NAMES = ("critic_loss", "actor_loss", "align_loss", "supervise_loss")
FLAT_METRICS = LOSS_NAMES + ("q_mean", "q_std", "target_q_mean", "advantage_mean", "entropy")


class HACConfig(AlgorithmConfig):
    """Configuration of HAC; defaults are the paper's (Appendix A.3) unless noted.

    Paper symbol -> field: learning rates of the actor / critic / supervision -> ``actor_lr`` /
    ``critic_lr`` / ``supervise_lr``; λ_h -> ``hyper_align_coef``; σ of the hyper-action noise ->
    ``noise_std``; γ -> ``gamma``; τ -> ``tau``; replay size -> ``replay_buffer_capacity``; the 2,000
    warm-up transitions -> ``num_steps_sampled_before_learning_starts``; batch 64 ->
    ``train_batch_size_per_learner``; 32 parallel users -> ``num_envs_per_env_runner``.

    ``method`` picks the Table 3 preset (``methods.METHODS``); build configs with
    ``hac_rllib.algorithms.get_algorithm_config(name)``, which also applies the preset's defaults.
    The baselines' own fields (TD3's ``policy_delay`` / ``target_noise_*``, A2C's ``advantage_clip`` /
    ``entropy_coef``, Offline SL's ``offline_data``) do nothing under HAC's defaults; PG-RA's
    inverse-dynamics step uses ``align_lr``, the SL methods' BCE step ``supervise_lr``.
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or HAC)
        self.method: str = "hac"  # the preset of Table 3 (see methods.py)
        # --- the paper's hyperparameters
        self.actor_lr: float = 1e-4
        self.critic_lr: float = 1e-3
        self.supervise_lr: float = 1e-4  # L_BCE's own learning rate; 0 switches the supervision off
        self.align_lr: Optional[float] = None  # the alignment step's lr; None = actor_lr
        self.hyper_align_coef: float = 0.1  # λ_h; 0 switches the alignment off
        self.noise_std: float = 0.1  # σ of the Gaussian noise on Z while exploring
        self.greedy_rate: float = 1.0  # probability of top-k (else softmax sampling) while exploring
        self.gamma: float = 0.9
        self.tau: float = 0.01
        self.l2_coef: float = 1e-5  # Adam weight decay on every optimizer (the authors' REG)
        self.grad_clip: Optional[float] = None
        self.replay_buffer_capacity: int = 100_000
        self.num_steps_sampled_before_learning_starts: int = 2000
        self.train_batch_size_per_learner = 64
        self.updates_per_env_step: float = 1.0  # replay ratio: updates per vector step of the B users
        self.steps_per_iteration: int = 100  # HAC steps per Algorithm.train() call
        self.store_buffer_in_checkpoints: bool = False
        self.lr = None  # unused: every optimizer has its own learning rate above
        # --- the baselines' own hyperparameters (inactive for HAC)
        self.policy_delay: int = 1  # TD3: actor (and target) updates every d-th update
        self.target_noise_std: float = 0.0  # TD3: target policy smoothing noise on Z'
        self.target_noise_clip: float = 0.5  # TD3: |noise| clip
        self.advantage_clip: float = 1.0  # A2C: advantages clipped to ±this (the authors' clamp)
        self.entropy_coef: float = 0.0  # A2C: entropy bonus on softmax_I(Φ(i)ᵀZ) (the authors: 0)
        self.offline_data: Optional[str] = None  # Offline SL: dataset dir; None = the training simulator's
        self.offline_data_cpus: float = 0.5  # Offline SL: CPUs of the Ray Data bundle (and per data task)
        # --- RLlib plumbing for a batched simulator
        self.env_runner_cls = SimulatorEnvRunner
        self.num_envs_per_env_runner = 32
        self.rollout_fragment_length = 1  # vector steps per EnvRunner per HAC step
        self.gym_env_vectorize_mode = "vector_entry_point"
        self.normalize_actions = False
        self.clip_actions = False
        self.min_time_s_per_iteration = 0
        self.min_sample_timesteps_per_iteration = 0
        self.min_train_timesteps_per_iteration = 0
        self.merge_env_runner_states = False  # no connector states to merge: the module sees raw observations
        self.broadcast_env_runner_states = False
        self.evaluation_duration = 100  # sessions per evaluation
        self.evaluation_duration_unit = "episodes"
        # Model sizes (Appendix A.3); anything in model_config overrides them.
        self._hac_model_defaults = {
            "kernel_dim": 32,
            "user_hidden": 128,
            "n_layers": 2,
            "n_heads": 4,
            "ffn_dim": 64,
            "dropout": 0.1,
            "attention_dropout": 0.0,
            "critic_hidden": (256, 64),
            "critic_dropout": 0.0,
            "use_item_id": True,
            "inverse_hidden": (256,),  # PG-RA's inverse-dynamics MLP (the authors' size)
        }

    def training(
        self,
        *,
        method=NotProvided,
        actor_lr=NotProvided,
        critic_lr=NotProvided,
        supervise_lr=NotProvided,
        align_lr=NotProvided,
        hyper_align_coef=NotProvided,
        noise_std=NotProvided,
        greedy_rate=NotProvided,
        tau=NotProvided,
        l2_coef=NotProvided,
        replay_buffer_capacity=NotProvided,
        num_steps_sampled_before_learning_starts=NotProvided,
        updates_per_env_step=NotProvided,
        steps_per_iteration=NotProvided,
        store_buffer_in_checkpoints=NotProvided,
        policy_delay=NotProvided,
        target_noise_std=NotProvided,
        target_noise_clip=NotProvided,
        advantage_clip=NotProvided,
        entropy_coef=NotProvided,
        offline_data=NotProvided,
        offline_data_cpus=NotProvided,
        **kwargs,
    ) -> "HACConfig":
        super().training(**kwargs)
        for name, value in list(locals().items()):
            if name not in ("self", "kwargs", "__class__") and value is not NotProvided:
                setattr(self, name, value)
        return self

    def simulators(self, train: str, evaluation: Optional[str] = None) -> "HACConfig":
        """Train in the simulator at ``train``; evaluate greedily in the one at ``evaluation`` (if given)."""
        import os

        self.environment(SIMULATOR_ENV, env_config={"simulator": os.path.abspath(train)})
        if evaluation is not None:
            self.evaluation(evaluation_config=AlgorithmConfig.overrides(env_config={"simulator": os.path.abspath(evaluation)}, explore=False))
            if not self.evaluation_interval:
                self.evaluation_interval = 1
        return self

    @property
    def method_spec(self):
        """The ``methods.Method`` preset this config runs."""
        from hac_rllib.algorithms.methods import get_method

        return get_method(self.method)

    @property
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        method = self.method_spec
        return (
            super()._model_config_auto_includes
            | self._hac_model_defaults
            | {
                "noise_std": self.noise_std,
                "greedy_rate": self.greedy_rate,
                "simulator": (self.env_config or {}).get("simulator"),
                "critic_type": method.critic_type,
                "inverse_dynamics": method.inverse_dynamics,
            }
        )

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from hac_rllib.module import HACModule

        return RLModuleSpec(module_class=HACModule)

    def get_default_learner_class(self):
        from hac_rllib.algorithms.hac_learner import HACLearner

        return HACLearner

    def validate(self) -> None:
        super().validate()
        problems = []
        from hac_rllib.algorithms.methods import METHODS
        from hac_rllib.algorithms.phases import phases_for

        if self.method not in METHODS:
            problems.append(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        elif not any(phases_for(METHODS[self.method].phases, self, u) for u in range(max(1, int(self.policy_delay or 1)))):
            problems.append(f"method {self.method!r} has nothing to learn: every one of its losses is switched off")
        for name in ("target_noise_std", "target_noise_clip", "entropy_coef"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.policy_delay, int) and self.policy_delay >= 1):
            problems.append(f"policy_delay must be an int >= 1, got {self.policy_delay!r}")
        if not (isinstance(self.advantage_clip, (int, float)) and self.advantage_clip > 0):
            problems.append(f"advantage_clip must be > 0, got {self.advantage_clip!r}")
        if not (isinstance(self.offline_data_cpus, (int, float)) and self.offline_data_cpus > 0):
            problems.append(f"offline_data_cpus must be > 0, got {self.offline_data_cpus!r}")
        for name in ("actor_lr", "critic_lr", "supervise_lr", "hyper_align_coef", "noise_std", "l2_coef"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if self.align_lr is not None and not (isinstance(self.align_lr, (int, float)) and self.align_lr >= 0):
            problems.append(f"align_lr must be None or >= 0, got {self.align_lr!r}")
        if not 0.0 <= self.greedy_rate <= 1.0:
            problems.append(f"greedy_rate must be in [0, 1], got {self.greedy_rate}")
        if not 0.0 <= self.gamma < 1.0:
            problems.append(f"gamma must be in [0, 1), got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            problems.append(f"tau must be in (0, 1], got {self.tau}")
        if self.train_batch_size_per_learner < 1:
            problems.append(f"train_batch_size_per_learner must be >= 1, got {self.train_batch_size_per_learner}")
        if self.replay_buffer_capacity < self.train_batch_size_per_learner:
            problems.append("replay_buffer_capacity must hold at least one training batch")
        if self.num_steps_sampled_before_learning_starts < 1:
            problems.append("num_steps_sampled_before_learning_starts must be >= 1")
        if not self.updates_per_env_step > 0:
            problems.append(f"updates_per_env_step must be > 0, got {self.updates_per_env_step}")
        if self.steps_per_iteration < 1:
            problems.append(f"steps_per_iteration must be >= 1, got {self.steps_per_iteration}")
        if self.num_envs_per_env_runner < 1:
            problems.append("num_envs_per_env_runner (parallel users) must be >= 1")
        if not (isinstance(self.env_runner_cls, type) and issubclass(self.env_runner_cls, SimulatorEnvRunner)):
            problems.append("env_runner_cls must be SimulatorEnvRunner (or a subclass): HAC needs flat transition batches")
        if not (isinstance(self.rollout_fragment_length, int) and self.rollout_fragment_length >= 1):
            problems.append(f"rollout_fragment_length (vector steps per HAC step) must be an int >= 1, got {self.rollout_fragment_length!r}")
        if self.env is None:
            problems.append("no simulator: call config.simulators(train=PATH) or config.environment(...)")
        if problems:
            raise ValueError("invalid HACConfig:\n  - " + "\n  - ".join(problems))


class HAC(Algorithm):
    """Hyper-Actor Critic (Liu et al., WWW'23) on RLlib's new API stack, and every baseline of its
    Table 3 as a preset (``config.method``)."""

    @classmethod
    def get_default_config(cls) -> HACConfig:
        return HACConfig()

    @classmethod
    def default_resource_request(cls, config):
        """RLlib's bundles, plus one for Ray Data's tasks when the method reads the logged records."""
        from ray.tune.execution.placement_groups import PlacementGroupFactory

        from hac_rllib.algorithms.methods import OFFLINE, get_method

        pgf = super().default_resource_request(config)
        cfg = config if isinstance(config, AlgorithmConfig) else cls.get_default_config().update_from_dict(config)
        if get_method(cfg.method).data != OFFLINE:
            return pgf
        return PlacementGroupFactory(bundles=list(pgf.bundles) + [{"CPU": float(cfg.offline_data_cpus)}], strategy=pgf.strategy)

    def setup(self, config) -> None:
        register_simulator_env()
        super().setup(config)
        self.replay_buffer = FlatReplayBuffer(self.config.replay_buffer_capacity, seed=self.config.seed)
        self._updates_owed = 0.0
        self._num_updates = 0  # lifetime learner updates; a resumed run never goes back to random acting
        self.offline_records = None
        from hac_rllib.algorithms.methods import OFFLINE

        if self.config.method_spec.data == OFFLINE:
            self.offline_records = self._build_offline_records()

    def _build_offline_records(self):
        from envs.response import load_response_model
        from hac_rllib.algorithms.offline_data import LoggedRecordBatches, dataset_dir_for

        simulator = (self.config.env_config or {}).get("simulator")
        if not simulator:
            raise ValueError("offline methods need the training simulator too: it fixes the history length and user features")
        data_dir = dataset_dir_for(self.config.offline_data, simulator)
        sim = load_response_model(simulator)
        return LoggedRecordBatches(
            data_dir,
            user_features=sim.user_features,
            max_history=sim.max_history,
            seed=self.config.seed or 0,
            num_cpus=self.config.offline_data_cpus,
        )

    # --- training ------------------------------------------------------------------------------------
    def training_step(self) -> None:
        step = self._offline_step if self.offline_records is not None else self._hac_step
        for _ in range(self.config.steps_per_iteration):
            step()

    def _offline_step(self) -> None:
        """One update on logged records (Offline SL): no simulator, no replay buffer."""
        cfg = self.config
        self._updates_owed += cfg.updates_per_env_step
        n_updates = int(self._updates_owed)
        if n_updates == 0:
            return
        self._updates_owed -= n_updates
        b = cfg.train_batch_size_per_learner
        self._learn(self.offline_records.next_batch(n_updates * b), b)
        self.metrics.log_value("offline_epoch", self.offline_records.epoch, window=1)

    def _hac_step(self) -> None:
        cfg = self.config
        # random hyper-actions only before the very first update: a run resumed without its buffer
        # refills it with its own policy's actions
        warmup = self._num_updates == 0 and len(self.replay_buffer) < cfg.num_steps_sampled_before_learning_starts
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            batches, runner_metrics = synchronous_parallel_sample(
                worker_set=self.env_runner_group,
                concat=False,
                sample_timeout_s=cfg.sample_timeout_s,
                random_actions=warmup,
                _uses_new_env_runners=True,
                _return_metrics=True,
            )
        self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        for batch in batches:
            self.replay_buffer.add(batch)
        if len(self.replay_buffer) < cfg.num_steps_sampled_before_learning_starts:
            return
        self._updates_owed += cfg.updates_per_env_step * cfg.rollout_fragment_length * max(1, len(batches))
        n_updates = int(self._updates_owed)
        if n_updates == 0:
            return
        self._updates_owed -= n_updates
        b = cfg.train_batch_size_per_learner
        self._learn(self.replay_buffer.sample(n_updates * b), b)
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)

    def _learn(self, sample: Dict[str, np.ndarray], minibatch_size: int) -> None:
        """Learner updates on ``sample`` (one per minibatch), then the flat loss metrics."""
        n = len(next(iter(sample.values())))
        self._num_updates += n // minibatch_size
        train_batch = MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(sample)}, env_steps=n)
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            results = self.learner_group.update(
                batch=train_batch,
                minibatch_size=minibatch_size,
                num_epochs=1,
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
                },
            )
        self.metrics.aggregate(results, key=LEARNER_RESULTS)
        self._log_flat_losses()

    def _log_flat_losses(self) -> None:
        """Mirror the learner's losses, Q statistics and learning rates under flat names
        (``losses/critic_loss``, ``learning_rates/critic``, ...) for plots and Tune."""
        for name in FLAT_METRICS:
            value = self._peek_learner(name)
            if value is not None:
                self.metrics.log_value(("losses", name), value, window=1)
        for optimizer in ("critic", "actor", "align", "supervise"):
            value = self._peek_learner(f"{optimizer}_learning_rate")
            if value is not None:
                self.metrics.log_value(("learning_rates", optimizer), value, window=1)

    def _peek_learner(self, name: str):
        """The learner's last value of ``name``, or None when this method never logs it
        (``MetricsLogger.peek`` raises for a missing key when its default is None)."""
        try:
            return self.metrics.peek((LEARNER_RESULTS, DEFAULT_MODULE_ID, name))
        except KeyError:
            return None

    def cleanup(self) -> None:
        if getattr(self, "offline_records", None) is not None:
            self.offline_records.close()
        super().cleanup()

    # --- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, parallel_train_future=None) -> Dict[str, Any]:
        """Greedy sessions in the evaluation simulator: Total Reward, Depth, Reward Variance (95 % CIs)."""
        from envs.evaluation import summarize_sessions

        group = self.eval_env_runner_group
        if group is None:
            raise ValueError("no evaluation simulator: call config.simulators(train=..., evaluation=...)")
        group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)
        n = int(self.config.evaluation_duration)
        if group.num_remote_env_runners() == 0:
            parts = [group.local_env_runner.evaluate_sessions(n, seed=self._eval_seed())]
        else:
            k = group.num_remote_env_runners()
            shares = [n // k + (i < n % k) for i in range(k)]
            seed = self._eval_seed()
            parts = group.foreach_env_runner(
                lambda runner, shares=shares, seed=seed: runner.evaluate_sessions(shares[runner.worker_index - 1], seed=seed + runner.worker_index),
                local_env_runner=False,
            )
        rewards = np.concatenate([p["session_rewards"] for p in parts])
        depths = np.concatenate([p["session_depths"] for p in parts])
        return summarize_sessions(rewards, depths).as_dict()

    def _eval_seed(self) -> int:
        return int((self.config.seed or 0) + 1_000_003 + self.iteration)

    # --- checkpoints ---------------------------------------------------------------------------------
    def get_state(self, components=None, *, not_components=None, **kwargs) -> Dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state["updates_owed"] = self._updates_owed
        state["num_updates"] = self._num_updates
        if self.offline_records is not None:
            state["offline_epoch"] = self.offline_records.epoch
        if self.config.store_buffer_in_checkpoints:
            state[REPLAY_BUFFER_STATE] = self.replay_buffer.get_state()
        return state

    def set_state(self, state: Dict[str, Any]) -> None:
        super().set_state(state)
        self._updates_owed = float(state.get("updates_owed", 0.0))
        self._num_updates = int(state.get("num_updates", 0))
        if self.offline_records is not None and "offline_epoch" in state:
            self.offline_records.epoch = int(state["offline_epoch"])  # the next epoch reshuffles with a new seed
        if REPLAY_BUFFER_STATE in state:
            self.replay_buffer.set_state(state[REPLAY_BUFFER_STATE])


def register_simulator_env() -> None:
    """Register the batched simulator with RLlib's env registry under ``hac-simulator``.

    Called in every process that builds HAC (driver; EnvRunners read Ray's shared registry)."""
    from envs.registration import register_rllib_env

    register_rllib_env(SIMULATOR_ENV)
