"""The training driver behind `hac train`: resume, NaN stops that keep the last good checkpoint,
config errors, TensorBoard output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hac_rllib.training import TrainingError, TrainRun, latest_checkpoint, train

pytestmark = pytest.mark.slow

FAST = {"num_steps_sampled_before_learning_starts": 64, "train_batch_size_per_learner": 16}


def small_run(out: Path, sims, **kw) -> TrainRun:
    train_sim, eval_sim = sims
    defaults = dict(
        out=str(out), train_simulator=train_sim, eval_simulator=eval_sim, iterations=2, steps_per_iteration=5,
        eval_every=0, checkpoint_every=1, overrides=dict(FAST),
    )
    defaults.update(kw)
    return TrainRun(**defaults)


def iterations_logged(out: Path) -> list[int]:
    return [json.loads(line)["iteration"] for line in (out / "results.jsonl").read_text().splitlines()]


def test_resume_continues_from_the_latest_checkpoint(ray_session, small_simulators, tmp_path):
    out = tmp_path / "run"
    train(small_run(out, small_simulators, store_buffer=True), progress=False, log=lambda s: None)
    assert latest_checkpoint(out).name == "iter_000002"
    messages = []
    last = train(TrainRun(out=str(out), iterations=4), resume=True, progress=False, log=messages.append)
    assert any("resumed from" in m and "iteration 2" in m for m in messages)
    assert last["iteration"] == 4 and iterations_logged(out) == [1, 2, 3, 4]
    assert latest_checkpoint(out).name == "iter_000004"
    assert list((out / "tensorboard").glob("events.out.tfevents.*")), "TensorBoard event files outside Tune"

    from ray.rllib.algorithms.algorithm import Algorithm

    algo = Algorithm.from_checkpoint(str(out / "checkpoints" / "iter_000004"))
    try:
        assert algo.iteration == 4
        assert len(algo.replay_buffer) > 4 * 5 * 20, "the replay buffer was kept in the checkpoints"
        state = algo.learner_group.get_state()["learner"]["optimizer"]
        assert {"default_policy_critic", "default_policy_actor", "default_policy_align", "default_policy_supervise"} <= set(state)
    finally:
        algo.stop()


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(ray_session, small_simulators, tmp_path, monkeypatch):
    from hac_rllib.algorithms import phases

    calls = {"n": 0}
    real = phases.PHASES["supervise"]

    def poisoned(module, b, cfg):
        loss, metrics = real.fn(module, b, cfg)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 12 else loss), metrics

    monkeypatch.setitem(phases.PHASES, "supervise", phases.Phase(real.optimizer, poisoned, real.enabled))
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        train(small_run(out, small_simulators, iterations=6), progress=False, log=lambda s: None)
    text = str(err.value)
    assert "supervise_loss is nan" in text and "iter_00000" in text
    good = latest_checkpoint(out)
    assert good is not None and good.name in text
    from hac_rllib.evaluation import load_policy_module

    module = load_policy_module(good)
    assert all(torch.isfinite(p).all() for p in module.parameters()), "the kept checkpoint has finite weights"


def test_invalid_configuration_is_one_clear_error(ray_session, small_simulators, tmp_path):
    run = small_run(tmp_path / "run", small_simulators, overrides={"tau": 0.0, "greedy_rate": 2.0})
    with pytest.raises(TrainingError, match="invalid configuration") as err:
        train(run, progress=False, log=lambda s: None)
    assert "tau must be in (0, 1], got 0.0" in str(err.value) and "greedy_rate must be in [0, 1], got 2.0" in str(err.value)


def test_resume_without_a_run_directory_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(TrainRun(out=str(tmp_path / "missing")), resume=True, progress=False)


def test_hac_cli_train_then_evaluate(ray_session, small_simulators, tmp_path):
    """`hac train` and `hac evaluate` through the real CLI entry point."""
    from typer.testing import CliRunner

    from hac_rllib.cli import app

    train_sim, eval_sim = small_simulators
    out = tmp_path / "cli-run"
    runner = CliRunner()
    result = runner.invoke(app, [
        "train", "--out", str(out), "--train-simulator", train_sim, "--eval-simulator", eval_sim,
        "--iterations", "2", "--steps-per-iteration", "5", "--eval-sessions", "20", "--checkpoint-every", "2",
        "--set", "num_steps_sampled_before_learning_starts=64", "--set", "train_batch_size_per_learner=16",
    ])
    assert result.exit_code == 0, result.output
    assert "final: iteration=2" in result.output and "eval/total_reward=" in result.output
    result = runner.invoke(app, ["evaluate", str(out / "checkpoints" / "iter_000002"), "--sessions", "30"])
    assert result.exit_code == 0, result.output
    for name in ("trained", "random", "popular", "Total Reward"):
        assert name in result.output
