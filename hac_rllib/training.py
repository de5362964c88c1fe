"""The training driver behind ``hac train`` / ``hac demo``: simulators on demand, RLlib iterations,
TensorBoard, atomic checkpoints, ``--resume`` and a clean stop on NaN losses.

A run directory holds ``run.json`` (what was asked, so ``--resume`` rebuilds the same config),
``simulators/`` (trained on demand), ``checkpoints/iter_NNNNNN`` plus a ``latest`` pointer,
``tensorboard/`` event files and ``results.jsonl`` (one flat line of metrics per iteration).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

RUN_FILE = "run.json"
LATEST = "latest"


class TrainingError(RuntimeError):
    """Training stopped for a reason the user can act on (the message says what and where)."""


@dataclass
class TrainRun:
    """Everything ``hac train`` needs; saved as ``run.json`` in the run directory."""

    out: str
    algo: str = "hac"
    data: Optional[str] = None  # dataset directory (simulators are trained from it if not given)
    train_simulator: Optional[str] = None
    eval_simulator: Optional[str] = None
    iterations: int = 10  # RLlib iterations (Algorithm.train() calls)
    steps_per_iteration: int = 100  # HAC steps (1 env step of B users + updates) per iteration
    seed: int = 0
    num_env_runners: int = 0
    num_envs: int = 32  # parallel users per EnvRunner
    eval_every: int = 1  # evaluate every N iterations (0 = never)
    eval_sessions: int = 100
    checkpoint_every: int = 5
    store_buffer: bool = False  # include the replay buffer in checkpoints (bigger, exact resume)
    sim_epochs: int = 10  # epochs for simulators trained on demand
    overrides: Dict[str, Any] = field(default_factory=dict)  # extra HACConfig.training(...) values

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "TrainRun":
        fields = {f.name for f in dataclasses.fields(cls)}
        raw = json.loads(Path(path).read_text())
        return cls(**{k: v for k, v in raw.items() if k in fields})


# --- simulators ------------------------------------------------------------------------------------


def ensure_simulators(run: TrainRun, log: Callable[[str], None] = print) -> tuple[str, str]:
    """The training (train split) and evaluation (all records) simulators: given, cached, or trained now."""
    if run.train_simulator and run.eval_simulator:
        return run.train_simulator, run.eval_simulator
    if not run.data:
        raise TrainingError("no simulators given and no --data to train them from")
    from envs.response import TrainConfig, train_response_model, write_fidelity_report

    sim_dir = Path(run.out) / "simulators"
    sim_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, given in (("train", run.train_simulator), ("all", run.eval_simulator)):
        path = Path(given) if given else sim_dir / f"{split}.pt"
        if not path.is_file():
            log(f"training the {'training' if split == 'train' else 'evaluation'} simulator on split '{split}' of {run.data}")
            ckpt = train_response_model(run.data, split, train_config=TrainConfig(epochs=run.sim_epochs, seed=run.seed), progress=True)
            ckpt.save(path)
            write_fidelity_report(ckpt, path)
        paths[split] = str(path.absolute())
    return paths["train"], paths["all"]


# --- config ----------------------------------------------------------------------------------------


def build_config(run: TrainRun, train_sim: str, eval_sim: str):
    """The algorithm config of a run (an RLlib AlgorithmConfig, Tune-able as is)."""
    from hac_rllib.algorithms import get_algorithm_config

    config = get_algorithm_config(run.algo)
    config.simulators(train=train_sim, evaluation=eval_sim if run.eval_every else None)
    config.env_runners(num_env_runners=run.num_env_runners, num_envs_per_env_runner=run.num_envs)
    config.debugging(seed=run.seed)
    config.training(steps_per_iteration=run.steps_per_iteration, store_buffer_in_checkpoints=run.store_buffer, **run.overrides)
    if run.eval_every:
        config.evaluation(evaluation_interval=run.eval_every, evaluation_duration=run.eval_sessions)
    config.fault_tolerance(restart_failed_env_runners=True)
    return config


def init_ray() -> None:
    """Join the cluster in RAY_ADDRESS (e.g. inside `ray job submit`), else start a local one on loopback."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep a local node on 127.0.0.1
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


# --- metrics ---------------------------------------------------------------------------------------

# Flat names (CleanRL style) for what users look at first; everything else keeps RLlib's nested path.
HEADLINE = {
    "env_runners/episode_return_mean": "train/episode_return_mean",
    "env_runners/episode_len_mean": "train/episode_len_mean",
    "evaluation/total_reward": "eval/total_reward",
    "evaluation/depth": "eval/depth",
    "evaluation/reward_variance": "eval/reward_variance",
}


def flatten(result: Mapping[str, Any], prefix: str = "") -> Dict[str, float]:
    out: Dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def headline(flat: Mapping[str, float]) -> Dict[str, float]:
    out = {new: flat[old] for old, new in HEADLINE.items() if old in flat}
    out.update({k: v for k, v in flat.items() if k.startswith(("losses/", "learning_rates/"))})
    return out


# --- checkpoints -----------------------------------------------------------------------------------


def save_checkpoint(algo, run_dir: Path, iteration: int) -> Path:
    """Save to a temporary directory, rename into place, then move the ``latest`` pointer."""
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"iter_{iteration:06d}"
    tmp = ckpt_dir / f".tmp_iter_{iteration:06d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.absolute()))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = ckpt_dir / (LATEST + ".tmp")
    pointer.write_text(final.name + "\n")
    os.replace(pointer, ckpt_dir / LATEST)
    return final


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if path.is_dir() else None


# --- the loop --------------------------------------------------------------------------------------


def train(run: TrainRun, *, resume: bool = False, log: Callable[[str], None] = print, progress: bool = True) -> Dict[str, Any]:
    """Train (or resume) a run; returns the last iteration's flat metrics."""
    import torch

    torch.set_num_threads(1)
    run_dir = Path(run.out).absolute()
    run.out = str(run_dir)
    if resume:
        saved = run_dir / RUN_FILE
        if not saved.is_file():
            raise TrainingError(f"nothing to resume: {saved} does not exist")
        wanted = run.iterations
        run = TrainRun.load(saved)
        run.iterations = max(wanted, run.iterations)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_sim, eval_sim = ensure_simulators(run, log)
    run.train_simulator, run.eval_simulator = train_sim, eval_sim
    run.save(run_dir / RUN_FILE)

    init_ray()
    from hac_rllib.algorithms.hac_learner import NonFiniteLossError

    try:
        config = build_config(run, train_sim, eval_sim)
        config.validate()
    except ValueError as e:  # config mistakes are the user's to fix: one clear message, no traceback
        raise TrainingError(f"invalid configuration: {e}") from None
    algo = config.build_algo()
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is not None:
            algo.restore_from_path(str(ckpt))
            start = algo.iteration
            log(f"resumed from {ckpt} at iteration {start}")
        else:
            log("no checkpoint yet: starting from scratch")

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    last: Dict[str, Any] = {}
    results_file = open(run_dir / "results.jsonl", "a")
    bar = _progress(progress, total=run.iterations, completed=start)
    try:
        for it in range(start, run.iterations):
            t0 = time.perf_counter()
            try:
                result = algo.train()
            except Exception as e:
                if _is_non_finite(e, NonFiniteLossError):
                    good = latest_checkpoint(run_dir)
                    raise TrainingError(
                        f"training stopped at iteration {it + 1}: {_root_message(e)}; "
                        f"the last good checkpoint is {good or 'none (no checkpoint was written yet)'}"
                    ) from None
                raise
            flat = flatten(result)
            flat["time/iteration_s"] = time.perf_counter() - t0
            step = int(result.get("training_iteration", it + 1))
            for key, value in flat.items():
                if math.isfinite(value):
                    writer.add_scalar(key, value, step)
            for key, value in headline(flat).items():
                writer.add_scalar(key, value, step)
            last = {"iteration": step, **headline(flat), **flat}
            results_file.write(json.dumps({"iteration": step, **headline(flat)}) + "\n")
            results_file.flush()
            bar.update(_describe(last))
            if run.checkpoint_every and (step % run.checkpoint_every == 0 or step == run.iterations):
                save_checkpoint(algo, run_dir, step)
    finally:
        bar.close()
        writer.close()
        results_file.close()
        algo.stop()
    return last


def _is_non_finite(e: BaseException, cls) -> bool:
    seen = e
    while seen is not None:
        if isinstance(seen, cls) or cls.__name__ in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _root_message(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    for line in text:
        if "_loss is" in line:
            return line.split("NonFiniteLossError:")[-1].strip()
    return text[-1] if text else type(e).__name__


def _describe(m: Mapping[str, Any]) -> str:
    parts = [f"it {m.get('iteration', '?')}"]
    for key, label in (("train/episode_return_mean", "return"), ("eval/total_reward", "eval"), ("losses/critic_loss", "critic")):
        if key in m:
            parts.append(f"{label} {m[key]:.3f}")
    return "  ".join(parts)


class _progress:
    """A rich progress bar when asked (and on a terminal), otherwise one log line per iteration."""

    def __init__(self, enabled: bool, total: int, completed: int):
        self.enabled = enabled
        self._bar = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
            )
            self._task = self._bar.add_task("", total=total, completed=completed)
            self._bar.start()

    def update(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
