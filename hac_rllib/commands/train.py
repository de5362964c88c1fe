"""``hac train``, ``hac evaluate`` and ``hac demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from hac_rllib.training import TrainingError


def _parse_overrides(values: List[str]) -> dict:
    """``--set name=value`` pairs; values are parsed as JSON when they can be (numbers, booleans)."""
    out = {}
    for item in values or []:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects name=value, got {item!r}")
        name, raw = item.split("=", 1)
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def train(
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, TensorBoard, results.jsonl)."),
    algo: str = typer.Option("hac", "--algo", help="Method to train."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset directory; simulators are trained from it on demand."),
    train_simulator: Optional[Path] = typer.Option(None, help="Training simulator checkpoint (else trained on --data's train split)."),
    eval_simulator: Optional[Path] = typer.Option(None, help="Evaluation simulator checkpoint (else trained on all of --data)."),
    iterations: int = typer.Option(10, help="RLlib iterations (Algorithm.train() calls)."),
    steps_per_iteration: int = typer.Option(100, help="HAC steps per iteration: one step of all users, then the updates."),
    seed: int = typer.Option(0, help="Random seed."),
    num_env_runners: int = typer.Option(0, help="Remote EnvRunners (0 = sample in the driver)."),
    num_envs: int = typer.Option(32, help="Parallel simulated users per EnvRunner."),
    eval_every: int = typer.Option(1, help="Evaluate every N iterations (0 = never)."),
    eval_sessions: int = typer.Option(100, help="Complete sessions per evaluation."),
    checkpoint_every: int = typer.Option(5, help="Checkpoint every N iterations (and at the end)."),
    store_buffer: bool = typer.Option(False, help="Keep the replay buffer in checkpoints (exact resume, bigger files)."),
    sim_epochs: int = typer.Option(10, help="Epochs for simulators trained on demand."),
    set_: List[str] = typer.Option([], "--set", help="Extra config values, e.g. --set actor_lr=1e-4 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
) -> None:
    """Train a recommender in the learned simulator with RLlib."""
    from hac_rllib.training import TrainRun, train as run_training

    run = TrainRun(
        out=str(out),
        algo=algo,
        data=str(data) if data else None,
        train_simulator=str(train_simulator) if train_simulator else None,
        eval_simulator=str(eval_simulator) if eval_simulator else None,
        iterations=iterations,
        steps_per_iteration=steps_per_iteration,
        seed=seed,
        num_env_runners=num_env_runners,
        num_envs=num_envs,
        eval_every=eval_every,
        eval_sessions=eval_sessions,
        checkpoint_every=checkpoint_every,
        store_buffer=store_buffer,
        sim_epochs=sim_epochs,
        overrides=_parse_overrides(set_),
    )
    last = run_training(run, resume=resume, log=typer.echo)
    keys = ["iteration", "train/episode_return_mean", "eval/total_reward", "eval/depth", "losses/critic_loss"]
    typer.echo("final: " + ", ".join(f"{k}={last[k]:.4g}" if isinstance(last.get(k), float) else f"{k}={last.get(k)}" for k in keys if k in last))


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint directory written by `hac train`."),
    simulator: Optional[Path] = typer.Option(None, help="Evaluation simulator (default: the run's own)."),
    sessions: int = typer.Option(200, help="Complete sessions to run."),
    num_envs: int = typer.Option(32, help="Parallel users."),
    seed: int = typer.Option(0, help="Random seed of the sessions."),
    baselines: bool = typer.Option(True, help="Also evaluate the random and popular reference policies."),
    oracle: bool = typer.Option(False, help="Also the greedy ranking by the simulator's own Ψ (an upper reference)."),
) -> None:
    """Greedy sessions of a trained policy in the evaluation simulator (Total Reward, Depth, Reward Variance)."""
    from hac_rllib.evaluation import evaluate_checkpoint, print_table

    rows = evaluate_checkpoint(checkpoint, simulator=simulator, sessions=sessions, num_envs=num_envs, seed=seed, baselines=baselines, oracle=oracle)
    print_table(rows, title=f"evaluation of {checkpoint}")


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the demo writes data, simulators and the run."),
    iterations: int = typer.Option(15, help="RLlib iterations of HAC training (100 HAC steps each)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Synthetic data -> both simulators -> HAC training -> evaluation against random and popular."""
    from hac_rllib.demo import run_demo

    run_demo(out, iterations=iterations, seed=seed, log=typer.echo)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("demo")(demo)


__all__ = ["register", "TrainingError"]
