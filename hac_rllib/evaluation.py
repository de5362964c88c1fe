"""Evaluating trained policies outside training: a checkpoint's greedy policy in the evaluation
simulator, next to the reference policies, with the Table-2 metrics (Total Reward, Depth, Reward
Variance) and their 95 % intervals. The session loop itself is ``envs.evaluation`` (RLlib-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from hac_rllib.training import RUN_FILE, TrainingError

MODULE_SUBDIR = Path("learner_group") / "learner" / "rl_module" / "default_policy"


def load_policy_module(checkpoint: str | Path):
    """The RLModule of an Algorithm checkpoint (no Algorithm, no Ray cluster needed)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = Path(checkpoint).absolute()
    module_dir = path / MODULE_SUBDIR
    if not module_dir.is_dir():
        raise TrainingError(f"{path} is not an algorithm checkpoint (no {MODULE_SUBDIR})")
    module = RLModule.from_checkpoint(str(module_dir))
    module.eval()
    return module


def greedy_policy(module):
    """obs -> slates with the module's greedy (noise-free, top-k) effect action."""

    def policy(obs: Dict[str, np.ndarray]) -> np.ndarray:
        tensors = {key: torch.from_numpy(np.asarray(value)) for key, value in obs.items()}
        return module.act(tensors, explore=False)["actions"].numpy()

    return policy


def _run_simulator(checkpoint: Path) -> Optional[str]:
    """The evaluation simulator recorded in the run directory a checkpoint belongs to."""
    for parent in (checkpoint.parent.parent, checkpoint.parent):
        run_file = parent / RUN_FILE
        if run_file.is_file():
            return json.loads(run_file.read_text()).get("eval_simulator")
    return None


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    simulator: Optional[str | Path] = None,
    sessions: int = 200,
    num_envs: int = 32,
    seed: int = 0,
    baselines: bool = True,
    oracle: bool = False,
) -> List[Dict[str, Any]]:
    """Rows of ``{"policy", "total_reward", "depth", "reward_variance", ...}``: the checkpoint's greedy
    policy and, when ``baselines``, random and popular slates in the same simulator and seed; with
    ``oracle`` also the greedy ranking by Ψ itself (an upper reference for myopic play)."""
    from envs.evaluation import OraclePolicy, PopularPolicy, RandomPolicy, evaluate_sessions
    from envs.simulator import HACSimulatorEnv

    torch.set_num_threads(1)
    checkpoint = Path(checkpoint).absolute()
    simulator = simulator or _run_simulator(checkpoint)
    if not simulator:
        raise TrainingError(f"no evaluation simulator recorded for {checkpoint}; pass --simulator")
    env = HACSimulatorEnv(str(simulator), num_envs=num_envs)
    policies = {"trained": greedy_policy(load_policy_module(checkpoint))}
    if baselines:
        policies["random"] = RandomPolicy.for_env(env, seed)
        policies["popular"] = PopularPolicy.for_env(env)
    if oracle:
        policies["oracle (ranks by Ψ)"] = OraclePolicy(env)
    rows = []
    for name, policy in policies.items():
        stats = evaluate_sessions(env, policy, sessions, seed)
        rows.append({"policy": name, **stats.as_dict()})
    return rows


def print_table(rows: List[Dict[str, Any]], title: str = "evaluation") -> None:
    """A rich table of Total Reward, Depth and Reward Variance with their 95 % intervals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("policy", "sessions", "Total Reward (95% CI)", "Depth (95% CI)", "Reward Variance (95% CI)"):
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for row in rows:
        table.add_row(
            row["policy"],
            str(row["n_sessions"]),
            _with_ci(row["total_reward"], row["total_reward_ci"]),
            _with_ci(row["depth"], row["depth_ci"]),
            _with_ci(row["reward_variance"], row["reward_variance_ci"]),
        )
    Console(width=max(Console().width, 120)).print(table)


def _with_ci(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
