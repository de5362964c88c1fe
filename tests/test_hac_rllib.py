"""HAC through RLlib end to end on the synthetic simulator: training, evaluation, checkpoints,
remote EnvRunners with fault tolerance, and learning that beats random slates."""

from __future__ import annotations

import numpy as np
import pytest

from hac_rllib.algorithms.hac import HACConfig

pytestmark = pytest.mark.slow


def short_config(train_sim: str, eval_sim: str, *, seed: int = 0, steps: int = 20, **training) -> HACConfig:
    defaults = dict(steps_per_iteration=steps, num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=32)
    defaults.update(training)
    return (
        HACConfig()
        .simulators(train=train_sim, evaluation=eval_sim)
        .training(**defaults)
        .evaluation(evaluation_interval=1, evaluation_duration=40)
        .debugging(seed=seed)
    )


def test_train_evaluate_checkpoint_and_restore(ray_session, small_simulators, tmp_path):
    train_sim, eval_sim = small_simulators
    algo = short_config(train_sim, eval_sim).build_algo()
    try:
        results = [algo.train() for _ in range(2)]
        last = results[-1]
        assert len(algo.replay_buffer) > 256, "transitions reach the flat replay buffer"
        for name in ("critic_loss", "actor_loss", "align_loss", "supervise_loss"):
            assert np.isfinite(last["losses"][name]), name
        assert last["learners"]["default_policy"]["num_module_steps_trained"] > 0
        ev = last["evaluation"]
        assert ev["n_sessions"] == 40 and 1 <= ev["depth"] <= 20
        assert -0.2 * 20 <= ev["total_reward"] <= 20 and ev["total_reward_ci"][0] <= ev["total_reward"] <= ev["total_reward_ci"][1]
        assert last["env_runners"]["num_env_steps_sampled_lifetime"] >= 2 * 20 * 32 * 0.5
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        weights = algo.learner_group.get_weights()
    finally:
        algo.stop()

    from ray.rllib.algorithms.algorithm import Algorithm

    restored = Algorithm.from_checkpoint(path)
    try:
        assert restored.iteration == 2
        for key, value in restored.learner_group.get_weights()["default_policy"].items():
            assert np.allclose(value, weights["default_policy"][key]), key
        assert restored.train()["training_iteration"] == 3
    finally:
        restored.stop()


def test_remote_env_runner_is_restarted_after_a_crash(ray_session, small_simulators):
    """A crashed EnvRunner is replaced by RLlib's fault tolerance and training goes on."""
    train_sim, _ = small_simulators
    config = (
        HACConfig()
        .simulators(train=train_sim)
        .training(steps_per_iteration=5, num_steps_sampled_before_learning_starts=64, train_batch_size_per_learner=16)
        .env_runners(num_env_runners=1, num_cpus_per_env_runner=0.5)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        algo.train()
        before = algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"), default=0)

        def crash(runner):
            import os

            os._exit(1)

        algo.env_runner_group.foreach_env_runner(crash, local_env_runner=False)
        for _ in range(3):  # the failed sample is dropped; the runner comes back within a few iterations
            algo.train()
        after = algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"), default=0)
        assert algo.env_runner_group.num_remote_worker_restarts() >= 1
        assert algo.env_runner_group.num_healthy_remote_workers() == 1
        assert after > before, "sampling continued after the restart"
    finally:
        algo.stop()


@pytest.mark.parametrize("seed", [0, 1])
def test_hac_learns_to_beat_random_slates(ray_session, small_simulators, seed):
    """After a short run, HAC's greedy Total Reward in the evaluation simulator clearly beats random."""
    from envs.evaluation import RandomPolicy, evaluate_sessions
    from envs.simulator import HACSimulatorEnv

    train_sim, eval_sim = small_simulators
    config = short_config(train_sim, eval_sim, seed=seed, steps=100, num_steps_sampled_before_learning_starts=1000)
    config.evaluation(evaluation_interval=4, evaluation_duration=300)
    algo = config.build_algo()
    try:
        for _ in range(4):
            result = algo.train()
    finally:
        algo.stop()
    hac = result["evaluation"]
    env = HACSimulatorEnv(eval_sim, num_envs=32)
    random = evaluate_sessions(env, RandomPolicy.for_env(env, seed), 300, seed=1_000_003 + seed)
    print(f"seed {seed}: HAC {hac['total_reward']:.3f} {hac['total_reward_ci']} depth {hac['depth']:.2f}; random {random.total_reward:.3f} depth {random.depth:.2f}")
    assert hac["total_reward"] > 1.5 * random.total_reward + 0.1, (hac["total_reward"], random.total_reward)
    assert hac["total_reward_ci"][0] > random.total_reward_ci[1], "the 95 % intervals must not overlap"
