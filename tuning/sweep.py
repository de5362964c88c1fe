"""The Tune driver behind ``hac tune``: a grid search of one method over grid points × seeds, scored
by the final evaluation Total Reward, resumable, and indifferent to failing trials.

How a sweep maps onto Tune:

* The trainable is the method's RLlib ``Algorithm`` class; ``param_space`` is its config as a dict
  with two ``tune.grid_search`` keys, the grid point (``hac_point``) and ``seed``. Each
  hyperparameter of the grid is a ``tune.sample_from`` that reads the point, so a grid of one-at-a-time
  studies (not a full product) is still one Tune grid search.
* Resources per trial come from RLlib (``Algorithm.default_resource_request``): with the default
  ``num_env_runners=0`` a trial is one process that samples and learns, asking 1 CPU, so two trials
  run at once on 2 CPUs and N on an N-CPU cluster. With EnvRunners, the main process and each runner
  ask 0.5 CPU (``--cpus-per-trial``, ``--cpus-per-env-runner``).
* Every grid point is validated in the driver first: an invalid config would otherwise crash the
  whole sweep inside Tune's resource request, not just its trial.
* ``FailureConfig(fail_fast=False)``: a trial that raises is recorded (``error.txt``) and the others
  go on. ``Tuner.restore`` resumes an interrupted sweep: finished trials stay as they are,
  unfinished ones continue from their last checkpoint, errored ones are retried from theirs.

A sweep directory holds ``sweep.json`` (the spec and the resolved grid), ``simulators/`` (trained once
and shared by every trial by absolute path), Tune's experiment state and one directory per trial
(``params.json``, ``result.json``, ``progress.csv``, TensorBoard events, checkpoints), plus
``events.jsonl`` (trial starts, ends and errors), ``summary.csv`` and ``trials.csv``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ray import tune

from tuning import analysis
from tuning.spaces import Grid, Point, get_grid

EVENTS = "events.jsonl"


class SweepError(RuntimeError):
    """The sweep cannot start or resume (the message says why and what to do)."""


@dataclass
class SweepSpec:
    """What ``hac tune`` was asked; saved in ``sweep.json`` (``None`` = the grid's default size)."""

    out: str
    algo: str = "hac"
    grid: str = "small"
    seeds: int = 3
    first_seed: int = 0
    data: Optional[str] = None
    train_simulator: Optional[str] = None
    eval_simulator: Optional[str] = None
    iterations: Optional[int] = None
    steps_per_iteration: Optional[int] = None
    eval_sessions: Optional[int] = None
    eval_every: int = 1
    num_envs: int = 32
    num_env_runners: int = 0
    cpus_per_trial: Optional[float] = None  # main process + local learner; None: 1 without EnvRunners, else 0.5
    cpus_per_env_runner: float = 0.5
    checkpoint_every: int = 5
    store_buffer: bool = False
    max_concurrent: int = 0  # 0 = as many as the resources allow
    max_failures: int = 0  # automatic retries of a failed trial from its last checkpoint (e.g. a preempted node)
    storage: Optional[str] = None  # Tune storage (s3://, gs://, or a shared path); default: next to out
    sim_epochs: int = 10
    overrides: Dict[str, Any] = field(default_factory=dict)

    @property
    def seed_list(self) -> List[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


@dataclass
class SweepOutcome:
    """What a finished (or interrupted) sweep produced."""

    sweep_dir: Path
    manifest: Dict[str, Any]
    trials: List[analysis.TrialResult]
    points: List[analysis.PointSummary]
    best: Optional[analysis.PointSummary]
    wall_s: float

    @property
    def errored(self) -> List[analysis.TrialResult]:
        return [t for t in self.trials if t.status == "errored"]

    @property
    def unfinished(self) -> int:
        return sum(p.n_incomplete for p in self.points)


# --- building the search -------------------------------------------------------------------------


def resolve_run(spec: SweepSpec, grid: Grid):
    """The TrainRun every trial shares: the grid's sizes unless the spec gives its own."""
    from hac_rllib.training import TrainRun

    sizes = dict(grid.run)
    overrides = {**dict(sizes.pop("overrides", {})), **spec.overrides}
    pick = lambda name, default: getattr(spec, name) if getattr(spec, name) is not None else sizes.get(name, default)  # noqa: E731
    return TrainRun(
        out=str(Path(spec.out).absolute()),
        algo=spec.algo,
        data=spec.data,
        train_simulator=spec.train_simulator,
        eval_simulator=spec.eval_simulator,
        iterations=int(pick("iterations", 10)),
        steps_per_iteration=int(pick("steps_per_iteration", 100)),
        seed=spec.first_seed,
        num_env_runners=spec.num_env_runners,
        num_envs=spec.num_envs,
        eval_every=spec.eval_every,
        eval_sessions=int(pick("eval_sessions", 100)),
        checkpoint_every=spec.checkpoint_every,
        store_buffer=spec.store_buffer,
        sim_epochs=spec.sim_epochs,
        overrides=overrides,
    )


def apply_resources(config, spec: SweepSpec):
    """Fractional CPUs so trials pack onto a node (see the module docstring)."""
    main = spec.cpus_per_trial if spec.cpus_per_trial is not None else (1.0 if spec.num_env_runners == 0 else 0.5)
    config.env_runners(num_env_runners=spec.num_env_runners, num_cpus_per_env_runner=spec.cpus_per_env_runner)
    config.learners(num_learners=0, num_cpus_per_learner=main)
    config.resources(num_cpus_for_main_process=main)
    return config


def trial_cpus(config) -> float:
    """CPUs one trial reserves (the sum of its placement group's bundles)."""
    pgf = config.algo_class.default_resource_request(config.to_dict())
    return float(sum(b.get("CPU", 0.0) for b in pgf.bundles))


def check_points(config, grid: Grid, points: Sequence[Point]) -> None:
    """Every grid key is a field of the method's config and every point passes its validate()."""
    unknown = [k for k in grid.keys() if not hasattr(config, k)]
    if unknown:
        raise SweepError(f"grid '{grid.name}' sets {unknown}, which {type(config).__name__} does not have")
    bad = []
    for p in points:
        c = config.copy(copy_frozen=False)
        c.update_from_dict(dict(p.values))
        try:
            c.validate()
        except Exception as e:  # noqa: BLE001 - any validation failure is reported with its point
            bad.append(f"point {p.index} {p.values}: {str(e).strip().splitlines()[-1]}")
    if bad:
        raise SweepError("invalid grid points (fix the grid or --set before spending compute):\n  " + "\n  ".join(bad))


def _point_value(table: Mapping[int, Mapping[str, Any]], key: str, config) -> Any:
    """``tune.sample_from`` body: the value of ``key`` at the trial's grid point."""
    return table[int(config[analysis.POINT_KEY])][key]


def param_space(config, points: Sequence[Point], seeds: Sequence[int]) -> Dict[str, Any]:
    space = config.to_dict()
    table = {p.index: dict(p.values) for p in points}
    space[analysis.POINT_KEY] = tune.grid_search([p.index for p in points])
    for key in points[0].values:
        space[key] = tune.sample_from(functools.partial(_point_value, table, key))
    space["seed"] = tune.grid_search(list(seeds))
    return space


def trial_name(trial) -> str:
    return f"p{int(trial.config[analysis.POINT_KEY]):03d}_s{trial.config['seed']}"


def trial_dirname(trial) -> str:
    return f"{trial_name(trial)}_{trial.trial_id}"


# --- progress and failures -----------------------------------------------------------------------


class SweepLog(tune.Callback):
    """One line per trial start / end / error on stdout, and the same as JSON lines in ``events.jsonl``
    (wall-clock times and how many trials were running: the evidence of concurrency).

    Tune pickles callbacks with the experiment, so a resumed sweep keeps logging here."""

    def __init__(self, path: str, echo: bool = True):
        self.path = path
        self.echo = echo

    def _event(self, kind: str, trials, trial, **extra) -> None:
        # Trials running once this event has happened: the trial itself counts after a start, not after an end.
        others = sum(1 for t in trials if t.status == "RUNNING" and t is not trial)
        running = others + (1 if kind in ("start", "restore") else 0)
        rec = {"time": time.time(), "event": kind, "trial": trial_name(trial), "trial_id": trial.trial_id, "running": running, **extra}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.echo:
            stamp = time.strftime("%H:%M:%S")
            detail = " ".join(f"{k}={v}" for k, v in extra.items() if k not in ("error_file",))
            print(f"[{stamp}] {kind:<8} {trial_name(trial)}  running={running}  {detail}".rstrip(), flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._event("start", trials, trial)

    def on_trial_restore(self, iteration, trials, trial, **info):
        self._event("restore", trials, trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        total = (r.get("evaluation") or {}).get("total_reward")
        extra = {"iteration": r.get("training_iteration")}
        if isinstance(total, (int, float)):
            extra["total_reward"] = round(float(total), 4)
        self._event("complete", trials, trial, **extra)

    def on_trial_error(self, iteration, trials, trial, **info):
        message = "see error.txt"
        try:
            err = trial.get_error()
            if err is not None:
                message = analysis._error_summary(str(err))
        except Exception:  # noqa: BLE001 - the message is a courtesy; the trial is marked errored anyway
            pass
        self._event("error", trials, trial, error=message, error_file=str(getattr(trial, "error_file", "") or ""))


def read_events(sweep_dir: Path) -> List[Dict[str, Any]]:
    path = Path(sweep_dir) / EVENTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- running -------------------------------------------------------------------------------------


def run_sweep(
    spec: SweepSpec,
    *,
    grid: Optional[Grid] = None,
    resume: bool = False,
    retry_errored: bool = True,
    callbacks: Sequence[Any] = (),
    log: Callable[[str], None] = print,
    verbose: int = 0,
) -> SweepOutcome:
    """Run (or resume) a sweep and summarise it; see the module docstring."""
    import torch

    from hac_rllib.algorithms import get_algorithm_config
    from hac_rllib.training import ensure_simulators, init_ray

    torch.set_num_threads(1)
    # num_to_keep=2 makes Tune snapshot its state at every checkpoint; that is intended, not a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    out = Path(spec.out).absolute()
    manifest_path = out / analysis.MANIFEST
    t0 = time.perf_counter()

    if resume:
        if not manifest_path.is_file():
            raise SweepError(f"nothing to resume: {manifest_path} does not exist")
        manifest = json.loads(manifest_path.read_text())
        algo_cls = get_algorithm_config(manifest["algo"]).algo_class
        init_ray()
        # Trials live in the sweep directory itself unless --storage put them elsewhere; using the
        # directory as found lets a sweep be moved or synced down before it is resumed.
        exp = manifest["experiment_path"] if manifest["spec"].get("storage") else str(out)
        if not tune.Tuner.can_restore(exp):
            raise SweepError(f"no Tune experiment state at {exp} (did the first run get past its start?)")
        log(f"resuming {exp}: finished trials are kept, unfinished ones continue from their last checkpoint"
            + (", errored ones are retried" if retry_errored else ""))
        # Tune stores classes in the config (env runner, learner) as placeholders; trials it has not
        # created yet need the original param_space back, rebuilt here from the manifest.
        tuner = tune.Tuner.restore(
            exp, trainable=algo_cls, param_space=_param_space_from_manifest(manifest),
            resume_unfinished=True, resume_errored=retry_errored,
        )
    else:
        storage = spec.storage or str(out.parent)
        exp = f"{storage.rstrip('/')}/{out.name}" if "://" in storage else str(Path(storage).absolute() / out.name)
        if manifest_path.exists() and tune.Tuner.can_restore(exp):
            raise SweepError(f"{out} already holds a sweep: use --resume to continue it, or another --out")
        # (a manifest without Tune state is a start that failed before any trial: start afresh)
        grid = grid or get_grid(spec.grid, spec.algo)
        spec.grid = grid.name
        run = resolve_run(spec, grid)
        out.mkdir(parents=True, exist_ok=True)
        train_sim, eval_sim = ensure_simulators(run, log)
        run.train_simulator, run.eval_simulator = train_sim, eval_sim
        config, points, cpus = plan(spec, grid, run, train_sim, eval_sim)
        seeds = spec.seed_list
        manifest = {
            "version": 1,
            "algo": spec.algo,
            "grid": grid.name,
            "grid_description": grid.description,
            "metric": analysis.METRIC,
            "mode": analysis.MODE,
            "keys": grid.keys(),
            "studies": [{"name": s.name, "vary": {k: list(v) for k, v in s.vary.items()}, "fixed": dict(s.fixed)} for s in grid.studies],
            "points": [{"index": p.index, "values": p.values, "studies": list(p.studies)} for p in points],
            "seeds": seeds,
            "stop": {"training_iteration": run.iterations},
            "trial_cpus": cpus,
            "experiment_path": exp,
            "simulators": {"train": train_sim, "evaluation": eval_sim},
            "run": dataclasses.asdict(run),
            "spec": dataclasses.asdict(spec),
        }
        _write_json(manifest_path, manifest)
        init_ray()
        import ray

        total_cpus = ray.cluster_resources().get("CPU", 0)
        log(f"sweep '{grid.name}' of {spec.algo}: {len(points)} configurations x {len(seeds)} seeds = {len(points) * len(seeds)} trials, "
            f"{run.iterations} iterations of {run.steps_per_iteration} steps each")
        if total_cpus >= cpus > 0:
            log(f"per trial {cpus:g} CPU; the cluster has {total_cpus:g} CPUs -> up to {int(total_cpus // cpus)} trials at once")
        else:
            log(f"per trial {cpus:g} CPU; the cluster has {total_cpus:g} CPUs now: trials wait for the autoscaler to add nodes")
        algo_cls = config.algo_class
        tuner = tune.Tuner(
            algo_cls,
            param_space=param_space(config, points, seeds),
            tune_config=tune.TuneConfig(
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_dirname,
                max_concurrent_trials=spec.max_concurrent or None,
            ),
            run_config=tune.RunConfig(
                name=out.name,
                storage_path=storage if "://" in storage else str(Path(storage).absolute()),
                stop={"training_iteration": run.iterations},
                failure_config=tune.FailureConfig(fail_fast=False, max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(
                    checkpoint_frequency=spec.checkpoint_every, checkpoint_at_end=True, num_to_keep=2
                ),
                callbacks=[SweepLog(str(out / EVENTS)), *callbacks],
                verbose=verbose,
            ),
        )
    tuner.fit()
    outcome = summarize_sweep(out)
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def _param_space_from_manifest(manifest: Mapping[str, Any]) -> Dict[str, Any]:
    """The exact param_space of the first run (Tune checks that its keys match)."""
    from hac_rllib.training import TrainRun, build_config

    fields = {f.name for f in dataclasses.fields(TrainRun)}
    run = TrainRun(**{k: v for k, v in manifest["run"].items() if k in fields})
    spec_fields = {f.name for f in dataclasses.fields(SweepSpec)}
    spec = SweepSpec(**{k: v for k, v in manifest["spec"].items() if k in spec_fields})
    config = apply_resources(build_config(run, run.train_simulator, run.eval_simulator), spec)
    points = [Point(int(p["index"]), dict(p["values"]), tuple(p.get("studies", ()))) for p in manifest["points"]]
    return param_space(config, points, manifest["seeds"])


def plan(spec: SweepSpec, grid: Grid, run=None, train_sim: str = "train.pt", eval_sim: str = "all.pt"):
    """The shared config (with resources), the checked grid points and the CPUs per trial.

    Needs no simulator files (``hac tune --dry-run`` uses placeholder paths)."""
    from hac_rllib.training import build_config

    run = run or resolve_run(spec, grid)
    config = apply_resources(build_config(run, train_sim, eval_sim), spec)
    defaults = {k: getattr(config, k, None) for k in grid.keys()}
    points = grid.points(defaults)
    check_points(config, grid, points)
    return config, points, trial_cpus(config)


def summarize_sweep(sweep_dir: Path, *, write: bool = True) -> SweepOutcome:
    """Read the sweep back from disk and write ``summary.csv``, ``trials.csv`` and ``best.json``."""
    sweep_dir = Path(sweep_dir).absolute()
    manifest = analysis.load_manifest(sweep_dir)
    trials = analysis.load_trials(sweep_dir)
    if manifest is None:
        manifest = analysis.infer_manifest(trials)
    points = analysis.summarize(trials, manifest)
    best = analysis.best_point(points)
    if write:
        keys = manifest["keys"]
        analysis.write_summary_csv(points, keys, sweep_dir / "summary.csv")
        analysis.write_trials_csv(trials, keys, sweep_dir / "trials.csv")
        if best is not None:
            _write_json(sweep_dir / "best.json", {
                "point": best.index, "values": best.values, "seeds": best.seeds, "metric": analysis.METRIC,
                "mean": best.mean, "ci95": best.ci95,
            })
    return SweepOutcome(sweep_dir, manifest, trials, points, best, 0.0)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
