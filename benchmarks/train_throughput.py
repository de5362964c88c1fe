"""HAC iterations per second through RLlib versus a plain PyTorch loop of the same networks and simulator.

A HAC iteration is the paper's: one environment step of the B = 32 simulated users, then one update
(Algorithm 1's four phases) at batch 64. The plain loop is the lower bound on this machine: the same
``HACModule`` networks, the same ``phases`` losses, the same simulator and flat buffer, no Ray.

    python benchmarks/train_throughput.py --out train_throughput.json

writes ``{"rllib_iters_per_s", "plain_iters_per_s", "ratio", ...}`` with ratio = plain / rllib
iterations per second (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_simulator(workdir: Path, n_users: int, n_items: int, n_records: int) -> str:
    """A simulator trained briefly on synthetic data: realistic sizes, its quality is irrelevant here."""
    from envs.data.synthetic import SyntheticParams, write_synthetic
    from envs.response import TrainConfig, train_response_model

    data = write_synthetic(workdir / "data", SyntheticParams(n_users=n_users, n_items=n_items, n_records=n_records, seed=0))
    ckpt = train_response_model(data, "train", train_config=TrainConfig(epochs=1, seed=0))
    return str(ckpt.save(workdir / "sim.pt"))


def plain_loop(simulator: str, iterations: int, warmup_steps: int, batch_size: int = 64, num_envs: int = 32) -> float:
    """Iterations per second of a Ray-free loop; returns the steady-state rate after the warm-up."""
    from ray.rllib.core.learner.utils import update_target_network
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from envs.simulator import HACSimulatorEnv
    from hac_rllib import transitions as T
    from hac_rllib.algorithms.hac import HACConfig
    from hac_rllib.algorithms.phases import hac_phases
    from hac_rllib.buffer import FlatReplayBuffer
    from hac_rllib.module import HACModule

    cfg = HACConfig()
    env = HACSimulatorEnv(simulator, num_envs=num_envs, seed=0)
    model_config = dict(cfg._hac_model_defaults, simulator=simulator, noise_std=cfg.noise_std, greedy_rate=cfg.greedy_rate)
    module = RLModuleSpec(
        module_class=HACModule,
        observation_space=env.single_observation_space,
        action_space=env.single_action_space,
        model_config=model_config,
    ).build()
    module.make_target_networks()
    policy_params = list(module.policy.parameters())
    optimizers = {
        "critic": torch.optim.Adam(module.critic.parameters(), lr=cfg.critic_lr, weight_decay=cfg.l2_coef),
        "actor": torch.optim.Adam(policy_params, lr=cfg.actor_lr, weight_decay=cfg.l2_coef),
        "align": torch.optim.Adam(policy_params, lr=cfg.actor_lr, weight_decay=cfg.l2_coef),
        "supervise": torch.optim.Adam(policy_params, lr=cfg.supervise_lr, weight_decay=cfg.l2_coef),
    }
    buffer = FlatReplayBuffer(cfg.replay_buffer_capacity, seed=0)
    obs, _ = env.reset(seed=0)
    resetting = np.zeros(num_envs, dtype=bool)

    def env_step(random_actions: bool) -> None:
        nonlocal obs, resetting
        with torch.no_grad():
            module.eval()
            out = module.act({k: torch.from_numpy(np.asarray(v)) for k, v in obs.items()}, explore=True, random_hyper_action=random_actions)
            module.train()
        slate = out["actions"].numpy()
        nxt, reward, term, trunc, info = env.step(slate)
        real = ~resetting
        buffer.add(
            {
                T.USER_ID: obs["user_id"][real], T.USER_FEATURES: obs["user_features"][real], T.HISTORY: obs["history"][real],
                T.NEXT_HISTORY: nxt["history"][real], T.SLATE: slate[real], T.HYPER_ACTION: out["hyper_action"].numpy()[real],
                T.FEEDBACK: np.asarray(info["feedback"])[real], T.REWARD: reward[real].astype(np.float32), T.DONE: term[real],
            }
        )
        resetting = term | trunc
        obs = nxt

    def update() -> None:
        b = {k: torch.from_numpy(v) for k, v in buffer.sample(batch_size).items()}
        for name, phase in hac_phases(cfg):
            loss, _ = phase(module, b, cfg)
            module.zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
        for main, target in module.get_target_network_pairs():
            update_target_network(main_net=main, target_net=target, tau=cfg.tau)

    while len(buffer) < cfg.num_steps_sampled_before_learning_starts:
        env_step(random_actions=True)
    for _ in range(warmup_steps):
        env_step(False)
        update()
    t0 = time.perf_counter()
    for _ in range(iterations):
        env_step(False)
        update()
    return iterations / (time.perf_counter() - t0)


def rllib_loop(simulator: str, iterations: int, warmup_steps: int, steps_per_iteration: int) -> float:
    """Iterations per second through HAC on RLlib (0 remote EnvRunners, the local learner)."""
    import ray

    from hac_rllib.algorithms.hac import HACConfig

    if not ray.is_initialized():
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray.init(include_dashboard=False, log_to_driver=False, num_cpus=2)
    config = HACConfig().simulators(train=simulator).training(steps_per_iteration=steps_per_iteration).debugging(seed=0)
    algo = config.build_algo()
    try:
        # the warm-up fills the buffer with random hyper-actions; then a few iterations to settle
        while len(algo.replay_buffer) < config.num_steps_sampled_before_learning_starts:
            algo.train()
        for _ in range(max(1, warmup_steps // steps_per_iteration)):
            algo.train()
        n_train = max(1, iterations // steps_per_iteration)
        t0 = time.perf_counter()
        for _ in range(n_train):
            algo.train()
        return n_train * steps_per_iteration / (time.perf_counter() - t0)
    finally:
        algo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--iterations", type=int, default=300, help="timed HAC iterations per path")
    parser.add_argument("--warmup", type=int, default=50, help="untimed iterations after the buffer warm-up")
    parser.add_argument("--steps-per-iteration", type=int, default=100, help="HAC steps per RLlib train() call")
    parser.add_argument("--n-items", type=int, default=2000)
    parser.add_argument("--simulator", help="an existing simulator checkpoint (default: train one on synthetic data)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        sim = args.simulator or make_simulator(Path(tmp), n_users=1000, n_items=args.n_items, n_records=20_000)
        plain = plain_loop(sim, args.iterations, args.warmup)
        rllib = rllib_loop(sim, args.iterations, args.warmup, args.steps_per_iteration)
    result = {
        "rllib_iters_per_s": rllib,
        "plain_iters_per_s": plain,
        "ratio": plain / rllib,
        "iterations_timed": args.iterations,
        "batch_size": 64,
        "num_users": 32,
        "n_items": args.n_items,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
