"""The driver behind ``hac compare``: every method × seed through Ray Tune, then a Table-2-style report.

How it maps onto Tune: one ``tune.Tuner`` over the ``HAC`` Algorithm (every method of Table 3 is a
preset of it, ``config.method``), with a grid over ``method`` × ``seed``. Each method's full config
is built exactly as ``hac train --algo NAME`` builds it; the keys on which the methods differ are
``tune.sample_from`` lookups keyed by the trial's method, so ``params.json`` of every trial shows the
values that trial really ran with. Trials ask for fractional CPUs (``cpus_per_trial``, split between
the main process and, for Offline SL, its Ray Data bundle), so two fit on two CPUs and N on a
cluster, unchanged.

The report is built from the trial directories alone (``params.json`` + ``result.json``), so
``hac compare --report-only`` can redo it for a run copied off a cluster:

* ``report.md`` / ``report.csv``: Total Reward, Depth and Reward Variance of each method's *final*
  evaluation (greedy sessions in the evaluation simulator), mean ± half-width of the 95 % Student-t
  interval over seeds; best in bold, second best underlined (as Table 2); Random and Popular slates
  as reference rows; HAC's rank and margin.
* ``trials.csv``: one row per trial.
* ``curve_<metric>.png``: total reward and each loss over iterations, one line per method (mean over
  seeds) with a 95 % band.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from hac_rllib.algorithms.methods import METHODS, OFFLINE, TABLE_ORDER, get_method
from tuning.analysis import flatten_result, is_finite, mean_ci

MANIFEST = "compare.json"
TRIALS_DIR = "trials"
SCORES = (
    ("evaluation/total_reward", "Total Reward", "max"),
    ("evaluation/depth", "Depth", "max"),
    ("evaluation/reward_variance", "Reward Variance", "min"),  # lower = more stable across users (§3.1.4)
)
CURVES = (
    ("evaluation/total_reward", "Total Reward (evaluation simulator)"),
    ("env_runners/episode_return_mean", "Training episode return"),
    ("losses/critic_loss", "Critic loss (TD)"),
    ("losses/actor_loss", "Actor loss"),
    ("losses/align_loss", "Alignment loss (HAC Eq. 9 / PG-RA inverse dynamics)"),
    ("losses/supervise_loss", "Supervision loss (BCE, Eq. 10)"),
)


class CompareError(RuntimeError):
    """The comparison cannot run (the message says why)."""


@dataclass
class CompareSpec:
    """What ``hac compare`` was asked; saved in ``compare.json``."""

    out: str
    algos: List[str] = field(default_factory=lambda: list(TABLE_ORDER))
    seeds: int = 5
    first_seed: int = 0
    data: Optional[str] = None
    train_simulator: Optional[str] = None
    eval_simulator: Optional[str] = None
    iterations: int = 10
    steps_per_iteration: int = 100
    eval_sessions: int = 100
    eval_every: int = 1
    num_envs: int = 32
    sim_epochs: int = 10
    cpus_per_trial: float = 1.0  # everything one trial reserves (Offline SL: main process + Ray Data bundle)
    max_concurrent: int = 0  # 0: as many as the resources allow
    overrides: Dict[str, Any] = field(default_factory=dict)  # config values for every method

    @property
    def seed_list(self) -> List[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def check(self) -> None:
        problems = [f"unknown method {a!r}" for a in self.algos if a not in METHODS]
        if not self.algos:
            problems.append("no methods given")
        if len(set(self.algos)) != len(self.algos):
            problems.append("a method is listed twice")
        if self.seeds < 1:
            problems.append("--seeds must be >= 1")
        if self.iterations < 1 or self.steps_per_iteration < 1:
            problems.append("--iterations and --steps-per-iteration must be >= 1")
        if self.eval_every < 1 or self.iterations % self.eval_every:
            problems.append(f"--eval-every ({self.eval_every}) must divide --iterations ({self.iterations}): the report needs a final evaluation")
        if problems:
            raise CompareError("; ".join(problems) + f" (methods: {', '.join(TABLE_ORDER)})")


# --- configs and the Tune search space ---------------------------------------------------------------


def method_config(spec: CompareSpec, method: str, train_sim: str, eval_sim: str):
    """The config ``hac train --algo METHOD`` would build, with this comparison's sizes and CPUs.

    The comparison-wide ``overrides`` skip the keys the method pins (``--set supervise_lr=1e-3``
    must not switch the BCE of ``hac_no_bce`` back on)."""
    from hac_rllib.training import TrainRun, build_config

    run = TrainRun(
        out=spec.out,
        algo=method,
        iterations=spec.iterations,
        steps_per_iteration=spec.steps_per_iteration,
        seed=spec.first_seed,
        num_envs=spec.num_envs,
        eval_every=spec.eval_every,
        eval_sessions=spec.eval_sessions,
        overrides={k: v for k, v in spec.overrides.items() if k not in get_method(method).pinned},
    )
    config = build_config(run, train_sim, eval_sim)
    main = spec.cpus_per_trial
    if get_method(method).data == OFFLINE:  # the Ray Data bundle comes out of the trial's share
        config.training(offline_data_cpus=min(config.offline_data_cpus, spec.cpus_per_trial / 2))
        main = spec.cpus_per_trial - config.offline_data_cpus
    config.env_runners(num_env_runners=0)
    config.learners(num_learners=0, num_cpus_per_learner=main)
    config.resources(num_cpus_for_main_process=main)
    return config


def _by_method(table: Mapping[str, Any], spec) -> Any:
    """``tune.sample_from`` body: this trial's method's value of one config key."""
    return table[spec.config["method"]]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and the like: compare their text
        return repr(a) == repr(b)


def param_space(configs: Mapping[str, Any], seeds: Sequence[int]) -> Dict[str, Any]:
    """One Tune search space for all methods: shared keys as values, the rest looked up per method."""
    from ray import tune

    dicts = {m: c.to_dict() for m, c in configs.items()}
    methods = list(dicts)
    space: Dict[str, Any] = {}
    for key in dict.fromkeys(k for d in dicts.values() for k in d):
        values = [dicts[m].get(key) for m in methods]
        if all(_same(v, values[0]) for v in values[1:]):
            space[key] = values[0]
        else:
            space[key] = tune.sample_from(functools.partial(_by_method, {m: dicts[m].get(key) for m in methods}))
    space["method"] = tune.grid_search(methods)
    space["seed"] = tune.grid_search(list(seeds))
    return space


def trial_name(trial) -> str:
    return f"{trial.config['method']}_s{trial.config['seed']}"


def trial_dirname(trial) -> str:
    return f"{trial_name(trial)}_{trial.trial_id}"


def _callback_base():
    from ray import tune

    return tune.Callback


class ProgressLog(_callback_base()):
    """One line per trial start, end or error (with how many trials are running at once)."""

    def __init__(self, log: Callable[[str], None] = print):
        self.log = log

    def _line(self, kind: str, trials, trial, extra: str = "") -> None:
        running = sum(1 for t in trials if t.status == "RUNNING")
        self.log(f"[{time.strftime('%H:%M:%S')}] {kind:<8} {trial_name(trial):<24} running={running} {extra}".rstrip())

    def on_trial_start(self, iteration, trials, trial, **info):
        self._line("start", trials, trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        total = ((trial.last_result or {}).get("evaluation") or {}).get("total_reward")
        self._line("done", trials, trial, f"total_reward={total:.3f}" if isinstance(total, (int, float)) else "")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line("ERROR", trials, trial, "(see its error.txt)")


# --- running -------------------------------------------------------------------------------------------


def run_compare(spec: CompareSpec, *, log: Callable[[str], None] = print, verbose: int = 0) -> Dict[str, Any]:
    """Train the simulators (once), run every method × seed through Tune, write the report."""
    import torch
    from ray import tune

    from hac_rllib.training import TrainRun, TrainingError, ensure_simulators, init_ray
    from tuning.sweep import trial_cpus

    spec.check()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(spec.out).absolute()
    spec.out = str(out)
    if (out / TRIALS_DIR).exists():
        raise CompareError(f"{out} already holds a comparison: choose another --out (or --report-only to redo its report)")
    out.mkdir(parents=True, exist_ok=True)
    try:
        train_sim, eval_sim = ensure_simulators(
            TrainRun(
                out=str(out), data=spec.data, train_simulator=spec.train_simulator, eval_simulator=spec.eval_simulator,
                sim_epochs=spec.sim_epochs, seed=spec.first_seed,
            ),
            log,
        )
    except TrainingError as e:
        raise CompareError(str(e)) from None
    spec.train_simulator, spec.eval_simulator = train_sim, eval_sim

    configs = {}
    for method in spec.algos:
        config = method_config(spec, method, train_sim, eval_sim)
        try:
            config.validate()
        except ValueError as e:  # before any compute is spent
            raise CompareError(f"invalid configuration for {method}: {e}") from None
        configs[method] = config
    cpus = {m: trial_cpus(c) for m, c in configs.items()}
    manifest = {
        "version": 1,
        "spec": dataclasses.asdict(spec),
        "simulators": {"train": train_sim, "evaluation": eval_sim},
        "trial_cpus": cpus,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    _write_json(out / MANIFEST, manifest)

    init_ray()
    import ray

    total = ray.cluster_resources().get("CPU", 0)
    n_trials = len(spec.algos) * spec.seeds
    log(f"{len(spec.algos)} methods x {spec.seeds} seeds = {n_trials} trials of {spec.iterations} iterations x {spec.steps_per_iteration} steps; "
        f"{max(cpus.values()):g} CPU per trial on {total:g} CPUs")
    tuner = tune.Tuner(
        configs[spec.algos[0]].algo_class,
        param_space=param_space(configs, spec.seed_list),
        tune_config=tune.TuneConfig(
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_dirname,
            max_concurrent_trials=spec.max_concurrent or None,
        ),
        run_config=tune.RunConfig(
            name=TRIALS_DIR,
            storage_path=str(out),
            stop={"training_iteration": spec.iterations},
            failure_config=tune.FailureConfig(fail_fast=False, max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),  # one checkpoint per trial: the final policy
            callbacks=[ProgressLog(log)],
            verbose=verbose,
        ),
    )
    tuner.fit()
    wall = time.perf_counter() - t0
    manifest["wall_s"] = wall
    _write_json(out / MANIFEST, manifest)
    report = make_report(out, log=log)
    report["wall_s"] = wall
    return report


# --- reading the trials back ------------------------------------------------------------------------


@dataclass
class Trial:
    method: str
    seed: int
    path: Path
    status: str  # finished | errored | incomplete
    final: Dict[str, float]  # SCORES at the last evaluation
    rows: List[Dict[str, Any]]  # flat result rows, one per iteration
    wall_s: float = float("nan")


def read_trials(out: Path) -> List[Trial]:
    exp = Path(out) / TRIALS_DIR
    if not exp.is_dir():
        raise CompareError(f"no trials under {exp}")
    trials = []
    for d in sorted(p for p in exp.iterdir() if p.is_dir() and (p / "params.json").is_file()):
        try:
            params = json.loads((d / "params.json").read_text())
        except json.JSONDecodeError:
            continue
        rows = []
        if (d / "result.json").is_file():
            for line in (d / "result.json").read_text().splitlines():
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption
                raw.pop("config", None)
                rows.append(flatten_result(raw))
        final = {}
        for row in rows:
            if is_finite(row.get(SCORES[0][0])):
                final = {key: float(row[key]) for key, _, _ in SCORES if is_finite(row.get(key))}
        done = bool(rows and rows[-1].get("done"))
        status = "finished" if done and final else ("errored" if (d / "error.txt").is_file() else "incomplete")
        wall = float(rows[-1].get("time_total_s", float("nan"))) if rows else float("nan")
        trials.append(Trial(params.get("method", "hac"), int(params.get("seed", 0)), d, status, final, rows, wall))
    return trials


# --- the report ---------------------------------------------------------------------------------------


@dataclass
class MethodRow:
    method: str
    label: str
    seeds: List[int]
    n_failed: int
    mean: Dict[str, float]
    ci95: Dict[str, float]
    per_seed: Dict[str, List[float]]


def summarize(trials: Sequence[Trial]) -> List[MethodRow]:

    rows = []
    methods = [m for m in TABLE_ORDER if any(t.method == m for t in trials)]
    methods += sorted({t.method for t in trials} - set(methods))
    for m in methods:
        mine = sorted((t for t in trials if t.method == m), key=lambda t: t.seed)
        ok = [t for t in mine if t.status == "finished"]  # an interrupted trial's last evaluation is not final
        mean, ci, per_seed = {}, {}, {}
        for key, _, _ in SCORES:
            vals = [t.final[key] for t in ok if key in t.final]
            mean[key], ci[key] = mean_ci(vals)
            per_seed[key] = vals
        label = METHODS[m].label if m in METHODS else m
        rows.append(MethodRow(m, label, [t.seed for t in ok], len(mine) - len(ok), mean, ci, per_seed))
    return rows


def reference_rows(eval_sim: str, sessions: int, seeds: Sequence[int], num_envs: int = 32) -> List[MethodRow]:
    """Random and Popular slates in the evaluation simulator, with the same sessions and seeds."""
    from envs.evaluation import PopularPolicy, RandomPolicy, evaluate_sessions
    from envs.simulator import HACSimulatorEnv

    env = HACSimulatorEnv(eval_sim, num_envs=num_envs)
    rows = []
    for label, make in (("Random", lambda s: RandomPolicy.for_env(env, s)), ("Popular", lambda s: PopularPolicy.for_env(env))):
        stats = [evaluate_sessions(env, make(seed), sessions, seed=1_000_003 + seed) for seed in seeds]
        per_seed = {
            "evaluation/total_reward": [s.total_reward for s in stats],
            "evaluation/depth": [s.depth for s in stats],
            "evaluation/reward_variance": [s.reward_variance for s in stats],
        }
        mean, ci = {}, {}
        for key, vals in per_seed.items():
            mean[key], ci[key] = mean_ci(vals)
        rows.append(MethodRow(label.lower(), label, list(seeds), 0, mean, ci, per_seed))
    return rows


def _fmt(mean: float, half: float) -> str:
    if not is_finite(mean):
        return "–"
    return f"{mean:.3f} ± {half:.3f}" if is_finite(half) else f"{mean:.3f}"


def _ranks(rows: Sequence[MethodRow], key: str, mode: str) -> Dict[str, int]:
    scored = [r for r in rows if is_finite(r.mean.get(key))]
    scored.sort(key=lambda r: r.mean[key], reverse=(mode == "max"))
    return {r.method: i + 1 for i, r in enumerate(scored)}


def hac_standing(rows: Sequence[MethodRow]) -> Optional[Dict[str, Any]]:
    """HAC's rank on Total Reward among the compared methods and its margin over the best other one."""
    key = SCORES[0][0]
    ranks = _ranks(rows, key, "max")
    if "hac" not in ranks or len(ranks) < 2:
        return None
    by = {r.method: r for r in rows}
    others = sorted((r for r in rows if r.method != "hac" and is_finite(r.mean.get(key))), key=lambda r: -r.mean[key])
    best_other = others[0]
    margin = by["hac"].mean[key] - best_other.mean[key]
    # Welch's t-test over seeds: is the gap more than seed noise?
    p = float("nan")
    a, b = by["hac"].per_seed[key], best_other.per_seed[key]
    if len(a) >= 2 and len(b) >= 2:
        from scipy import stats

        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return {
        "rank": ranks["hac"],
        "of": len(ranks),
        "best_other": best_other.label,
        "margin": margin,
        "margin_pct": 100 * margin / abs(best_other.mean[key]) if best_other.mean[key] else float("nan"),
        "welch_p": p,
    }


def write_csv(rows: Sequence[MethodRow], refs: Sequence[MethodRow], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        header = ["method", "label", "kind", "n_seeds", "n_failed"]
        for key, _, _ in SCORES:
            name = key.split("/")[-1]
            header += [f"{name}_mean", f"{name}_ci95"]
        w.writerow(header)
        for kind, group in (("method", rows), ("reference", refs)):
            for r in group:
                line = [r.method, r.label, kind, len(r.seeds), r.n_failed]
                for key, _, _ in SCORES:
                    line += [f"{r.mean[key]:.6g}", f"{r.ci95[key]:.6g}"]
                w.writerow(line)
    return path


def write_trials_csv(trials: Sequence[Trial], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "seed", "status", "iterations", "wall_s"] + [k.split("/")[-1] for k, _, _ in SCORES] + ["path"])
        for t in sorted(trials, key=lambda t: (t.method, t.seed)):
            iters = t.rows[-1].get("training_iteration", len(t.rows)) if t.rows else 0
            w.writerow([t.method, t.seed, t.status, iters, f"{t.wall_s:.1f}"] + [f"{t.final.get(k, float('nan')):.6g}" for k, _, _ in SCORES] + [t.path.name])
    return path


def markdown_table(rows: Sequence[MethodRow], refs: Sequence[MethodRow]) -> str:
    ranks = {key: _ranks(rows, key, mode) for key, _, mode in SCORES}
    head = "| Method | " + " | ".join(label for _, label, _ in SCORES) + " | Seeds |"
    lines = [head, "|" + "---|" * (len(SCORES) + 2)]
    for r in rows:
        cells = []
        for key, _, _ in SCORES:
            text = _fmt(r.mean[key], r.ci95[key])
            rank = ranks[key].get(r.method)
            cells.append(f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text)
        seeds = f"{len(r.seeds)}" + (f" ({r.n_failed} failed)" if r.n_failed else "")
        lines.append(f"| {r.label} | " + " | ".join(cells) + f" | {seeds} |")
    for r in refs:
        cells = [_fmt(r.mean[key], r.ci95[key]) for key, _, _ in SCORES]
        lines.append(f"| *{r.label} (reference)* | " + " | ".join(cells) + f" | {len(r.seeds)} |")
    return "\n".join(lines)


def plot_curves(trials: Sequence[Trial], out: Path, *, references: Sequence[MethodRow] = (), steps_per_iteration: Optional[int] = None) -> List[Path]:
    """One PNG per curve metric: mean over seeds per method, with a 95 % t-band (and the reference
    policies' level on the total reward plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    import numpy as np

    methods = [m for m in TABLE_ORDER if any(t.method == m for t in trials)]
    methods += sorted({t.method for t in trials} - set(methods))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(TABLE_ORDER)}
    paths = []
    for key, title in CURVES:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        drawn = 0
        for m in methods:
            series: Dict[int, List[float]] = {}
            for t in trials:
                if t.method != m:
                    continue
                for row in t.rows:
                    if is_finite(row.get(key)):
                        series.setdefault(int(row.get("training_iteration", 0)), []).append(float(row[key]))
            if not series:
                continue
            xs = np.array(sorted(series))
            cis = [mean_ci(series[x]) for x in xs]  # one seed: no band
            means = np.array([mean for mean, _ in cis])
            half = np.nan_to_num(np.array([h for _, h in cis]), nan=0.0)
            color = colors.get(m, "black")
            label = METHODS[m].label if m in METHODS else m
            style = "-" if m.startswith("hac") else "--"
            ax.plot(xs, means, style, color=color, label=label, linewidth=2.2 if m == "hac" else 1.4, marker="o" if len(xs) < 15 else None, markersize=3)
            ax.fill_between(xs, means - half, means + half, color=color, alpha=0.15, linewidth=0)
            drawn += 1
        if drawn and key == SCORES[0][0]:
            for ref, style in zip(references, (":", "-.")):
                if is_finite(ref.mean.get(key)):
                    ax.axhline(ref.mean[key], color="gray", linestyle=style, linewidth=1.2, label=f"{ref.label} slates")
        if drawn:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("iteration" + (f" ({steps_per_iteration} steps each)" if steps_per_iteration else ""))
            ax.set_title(title + " — mean over seeds, 95 % band")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, ncol=2)
            fig.tight_layout()
            path = out / f"curve_{key.split('/')[-1]}.png"
            fig.savefig(path, dpi=110)
            paths.append(path)
        plt.close(fig)
    return paths


def make_report(out: Path, *, log: Callable[[str], None] = print, references: bool = True) -> Dict[str, Any]:
    """Read the trials of ``out`` and write report.md, report.csv, trials.csv and the curve PNGs."""
    out = Path(out).absolute()
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).is_file() else {}
    spec = manifest.get("spec", {})
    trials = read_trials(out)
    if not trials:
        raise CompareError(f"no trial results under {out / TRIALS_DIR}")
    rows = summarize(trials)
    refs: List[MethodRow] = []
    eval_sim = (manifest.get("simulators") or {}).get("evaluation")
    if references and eval_sim and Path(eval_sim).is_file():
        seeds = sorted({t.seed for t in trials})
        refs = reference_rows(eval_sim, int(spec.get("eval_sessions", 100)), seeds, int(spec.get("num_envs", 32)))
    standing = hac_standing(rows)
    write_csv(rows, refs, out / "report.csv")
    write_trials_csv(trials, out / "trials.csv")
    plots = plot_curves(trials, out, references=refs, steps_per_iteration=spec.get("steps_per_iteration"))
    wall = manifest.get("wall_s")

    lines = ["# Method comparison (Table 2 style)", ""]
    if spec:
        lines += [
            f"Methods trained in the training simulator and evaluated greedily in the evaluation simulator "
            f"({spec.get('eval_sessions')} sessions per evaluation; the table is each trial's final evaluation). "
            f"{spec.get('iterations')} iterations × {spec.get('steps_per_iteration')} steps "
            f"(= {int(spec.get('iterations', 0)) * int(spec.get('steps_per_iteration', 0))} updates) per trial, "
            f"seeds {spec.get('first_seed', 0)}..{int(spec.get('first_seed', 0)) + int(spec.get('seeds', 1)) - 1}.",
            "",
            f"Data: `{spec.get('data')}`; simulators: `{(manifest.get('simulators') or {}).get('train')}` (train), `{eval_sim}` (evaluation).",
            "",
        ]
        if spec.get("overrides"):
            lines += [
                "Settings for every method (except where a method pins the key, e.g. an ablation's switched-off loss): "
                + ", ".join(f"`{k}={v}`" for k, v in spec["overrides"].items()) + ".",
                "",
            ]
    lines += [
        "Mean ± half-width of the 95 % Student-t interval over seeds. **Best**, <u>second best</u>; "
        "Reward Variance is the variance of the total reward across users (lower = more stable), not across seeds.",
        "",
        markdown_table(rows, refs),
        "",
    ]
    if standing:
        verdict = "ranks first" if standing["rank"] == 1 else f"ranks {standing['rank']} of {standing['of']}"
        lines.append(
            f"HAC {verdict} on Total Reward: {standing['margin']:+.3f} ({standing['margin_pct']:+.1f} %) against the best other method "
            f"({standing['best_other']})"
            + (f"; Welch's t-test over seeds p = {standing['welch_p']:.3g}." if is_finite(standing["welch_p"]) else " (one seed: no test).")
        )
        lines.append("")
    failed = [t for t in trials if t.status != "finished"]
    if failed:
        lines.append("Trials without a final evaluation: " + ", ".join(f"{t.method} seed {t.seed} ({t.status})" for t in failed))
        lines.append("")
    if wall:
        lines.append(f"Wall time: {wall / 60:.1f} min (simulators, all trials and this report).")
        lines.append("")
    lines.append("Curves: " + ", ".join(f"[{p.name}]({p.name})" for p in plots))
    lines.append("")
    (out / "report.md").write_text("\n".join(lines))
    log((out / "report.md").read_text())
    return {"rows": rows, "references": refs, "hac": standing, "plots": plots, "trials": trials, "report": out / "report.md"}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
