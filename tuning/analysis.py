"""Read a sweep from disk and aggregate it: per trial (final evaluation), per configuration (mean and
95 % CI over seeds), the best configuration.

Works from files only (``sweep.json`` and each trial's ``params.json`` / ``result.json`` /
``progress.csv`` / ``error.txt``), so a sweep copied off a cluster (``ray rsync-down``) can be
summarised and plotted without Ray. A plain Tune experiment directory without ``sweep.json`` works
too: its swept keys are the config values that differ between trials.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

MANIFEST = "sweep.json"
METRIC = "evaluation/total_reward"
MODE = "max"
# What a configuration is scored on: the last evaluation of each trial (greedy sessions in the
# evaluation simulator), as the paper reports its final numbers.
SCORES = ("evaluation/total_reward", "evaluation/depth", "evaluation/reward_variance")
POINT_KEY = "hac_point"  # config key of a trial's grid point (see tuning.sweep)
_DIR_RE = re.compile(r"^p(\d+)_s(-?\d+)_")
# Config keys that differ between trials without being hyperparameters.
_NOT_SWEPT = {"seed", POINT_KEY, "env_config", "evaluation_config", "__trial_info__", "callbacks_class"}


@dataclass
class TrialResult:
    """One trial's outcome, read from its directory."""

    name: str
    path: Path
    point: Optional[int]
    seed: Optional[int]
    config: Dict[str, Any]
    status: str  # "finished" | "errored" | "incomplete"
    iterations: int = 0
    final: Dict[str, float] = field(default_factory=dict)  # SCORES at the last evaluation
    curve: List[Tuple[int, float]] = field(default_factory=list)  # (iteration, total reward)
    error: Optional[str] = None
    started: Optional[float] = None  # wall-clock start of the first reported iteration
    ended: Optional[float] = None  # wall-clock time of the last reported iteration


@dataclass
class PointSummary:
    """One configuration over its seeds."""

    index: int
    values: Dict[str, Any]
    studies: Tuple[str, ...]
    seeds: List[int]
    n: int  # trials with a final evaluation
    n_errored: int
    n_incomplete: int
    mean: Dict[str, float]
    ci95: Dict[str, float]  # half-width of the t-interval over seeds (nan for one seed)
    per_seed: Dict[str, List[float]]


# --- reading ---------------------------------------------------------------------------------------


def load_manifest(sweep_dir: Path) -> Optional[Dict[str, Any]]:
    path = Path(sweep_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def experiment_dir(sweep_dir: Path, manifest: Optional[Mapping[str, Any]] = None) -> Path:
    """Where the trial directories are: ``sweep_dir`` itself unless the sweep stored them elsewhere."""
    manifest = manifest if manifest is not None else load_manifest(sweep_dir)
    exp = (manifest or {}).get("experiment_path")
    custom = ((manifest or {}).get("spec") or {}).get("storage")
    if custom and exp and "://" not in str(exp) and Path(exp).is_dir():
        return Path(exp)
    return Path(sweep_dir)


def load_trials(sweep_dir: Path) -> List[TrialResult]:
    """Every trial directory of the sweep (one with params.json, result.json, progress.csv or error.txt)."""
    exp = experiment_dir(sweep_dir)
    out = []
    for d in sorted(p for p in exp.iterdir() if p.is_dir()):
        if any((d / f).is_file() for f in ("params.json", "result.json", "progress.csv", "error.txt")):
            out.append(read_trial(d))
    return out


def read_trial(d: Path) -> TrialResult:
    config: Dict[str, Any] = {}
    if (d / "params.json").is_file():
        try:
            config = json.loads((d / "params.json").read_text())
        except json.JSONDecodeError:
            config = {}
    rows = _read_rows(d)
    point, seed = config.get(POINT_KEY), config.get("seed")
    m = _DIR_RE.match(d.name)
    if m:
        point = int(m.group(1)) if point is None else point
        seed = int(m.group(2)) if seed is None else seed
    done = bool(rows and rows[-1].get("done"))
    error = None
    if (d / "error.txt").is_file():
        error = _error_summary((d / "error.txt").read_text(errors="replace"))
    status = "finished" if done else ("errored" if error else "incomplete")
    t = TrialResult(name=d.name, path=d, point=point, seed=seed, config=config, status=status, error=error)
    if rows:
        t.iterations = int(rows[-1].get("training_iteration", len(rows)))
        first = rows[0]
        t.started = _f(first.get("timestamp")) - (_f(first.get("time_this_iter_s")) or 0.0) if first.get("timestamp") is not None else None
        t.ended = _f(rows[-1].get("timestamp"))
        for row in rows:
            value = row.get(METRIC)
            if is_finite(value):
                t.curve.append((int(row.get("training_iteration", 0)), float(value)))
                t.final = {k: float(row[k]) for k in SCORES if is_finite(row.get(k))}
                t.final["iteration"] = float(row.get("training_iteration", 0))
    return t


def _read_rows(d: Path) -> List[Dict[str, Any]]:
    """Flat result rows: result.json (JSON lines, nested) or else progress.csv (already flat)."""
    rows: List[Dict[str, Any]] = []
    if (d / "result.json").is_file():
        for line in (d / "result.json").read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption
            raw.pop("config", None)
            rows.append(flatten_result(raw))
        if rows:
            return rows
    if (d / "progress.csv").is_file():
        with open(d / "progress.csv", newline="") as f:
            for row in csv.DictReader(f):
                rows.append({k: _parse(v) for k, v in row.items() if k is not None})
    return rows


def flatten_result(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten_result(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _parse(v: str) -> Any:
    if v in ("True", "False"):
        return v == "True"
    try:
        return float(v) if any(c in v for c in ".eEn") else int(v)
    except (TypeError, ValueError):
        return v


def _f(v: Any) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def is_finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _error_summary(text: str) -> str:
    """The most telling line of a Tune error.txt: the last 'SomethingError: message' line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Exit)\b.*:", ln):
            return ln[:300]
    return (lines[-1] if lines else "unknown error")[:300]


# --- aggregating -----------------------------------------------------------------------------------


def mean_ci(values: Sequence[float], level: float = 0.95) -> Tuple[float, float]:
    """Mean and the half-width of the Student-t confidence interval (nan half-width for n < 2)."""
    vals = [float(v) for v in values if is_finite(v)]
    n = len(vals)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(vals) / n
    if n < 2:
        return mean, float("nan")
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))


def infer_manifest(trials: Sequence[TrialResult]) -> Dict[str, Any]:
    """A manifest for a Tune directory that ``hac tune`` did not write: one study over the config
    keys whose (scalar) values differ between trials."""
    configs = [t.config for t in trials if t.config]
    keys = sorted({k for c in configs for k, v in c.items() if k not in _NOT_SWEPT and _is_scalar(v)})
    varying = [k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]
    points: Dict[str, int] = {}
    manifest_points = []
    for t in trials:
        values = {k: t.config.get(k) for k in varying}
        key = json.dumps(values, sort_keys=True)
        if key not in points:
            points[key] = len(points)
            manifest_points.append({"index": points[key], "values": values, "studies": ["grid"]})
        t.point = points[key]
    vary = {k: sorted({c.get(k) for c in configs if c.get(k) is not None}) for k in varying}
    return {"keys": varying, "studies": [{"name": "grid", "vary": vary, "fixed": {}}], "points": manifest_points, "inferred": True}


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool))


def summarize(trials: Sequence[TrialResult], manifest: Mapping[str, Any]) -> List[PointSummary]:
    """Per configuration of the manifest: mean and 95 % CI over seeds of each score."""
    by_point: Dict[int, List[TrialResult]] = {}
    for t in trials:
        if t.point is not None:
            by_point.setdefault(int(t.point), []).append(t)
    out = []
    for p in manifest["points"]:
        ts = sorted(by_point.get(int(p["index"]), []), key=lambda t: (t.seed is None, t.seed))
        scored = [t for t in ts if t.status == "finished" and METRIC in t.final]
        per_seed = {k: [t.final.get(k, float("nan")) for t in scored] for k in SCORES}
        mean, ci = {}, {}
        for k in SCORES:
            mean[k], ci[k] = mean_ci(per_seed[k])
        out.append(
            PointSummary(
                index=int(p["index"]),
                values=dict(p["values"]),
                studies=tuple(p.get("studies", ())),
                seeds=[t.seed for t in scored],
                n=len(scored),
                n_errored=sum(t.status == "errored" for t in ts),
                n_incomplete=sum(t.status == "incomplete" for t in ts) + max(0, len(manifest.get("seeds", [])) - len(ts)),
                mean=mean,
                ci95=ci,
                per_seed=per_seed,
            )
        )
    return out


def best_point(points: Iterable[PointSummary], metric: str = METRIC) -> Optional[PointSummary]:
    scored = [p for p in points if p.n > 0 and is_finite(p.mean.get(metric))]
    return max(scored, key=lambda p: p.mean[metric]) if scored else None


# --- writing ---------------------------------------------------------------------------------------


def write_summary_csv(points: Sequence[PointSummary], keys: Sequence[str], path: Path) -> Path:
    best = best_point(points)
    fields = ["point", *keys, "studies", "n_seeds", "n_errored", "n_incomplete"]
    for k in SCORES:
        short = k.split("/")[-1]
        fields += [f"{short}_mean", f"{short}_ci95", f"{short}_lo", f"{short}_hi"]
    fields.append("best")
    tmp = Path(path).with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for p in points:
            row = {"point": p.index, **{k: p.values.get(k) for k in keys}, "studies": "|".join(p.studies)}
            row.update(n_seeds=p.n, n_errored=p.n_errored, n_incomplete=p.n_incomplete, best=int(best is not None and p.index == best.index))
            for k in SCORES:
                short = k.split("/")[-1]
                m, h = p.mean[k], p.ci95[k]
                row.update({f"{short}_mean": m, f"{short}_ci95": h, f"{short}_lo": m - h if is_finite(h) else m, f"{short}_hi": m + h if is_finite(h) else m})
            w.writerow(row)
    tmp.replace(path)
    return Path(path)


def write_trials_csv(trials: Sequence[TrialResult], keys: Sequence[str], path: Path) -> Path:
    fields = ["trial", "point", "seed", *keys, "status", "iterations", *SCORES, "error"]
    tmp = Path(path).with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for t in trials:
            w.writerow(
                {"trial": t.name, "point": t.point, "seed": t.seed, **{k: t.config.get(k) for k in keys}, "status": t.status,
                 "iterations": t.iterations, **{k: t.final.get(k) for k in SCORES}, "error": t.error or ""}
            )
    tmp.replace(path)
    return Path(path)


def fmt_value(v: Any) -> str:
    """Compact hyperparameter values for tables and tick labels (1e-05, 0.001, 0.5, 0)."""
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:g}"
    return str(v)


def fmt_ci(mean: float, half: float, digits: int = 3) -> str:
    if not is_finite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if is_finite(half) else f"{mean:.{digits}f}"


SHORT = {
    "supervise_lr": "sup. lr", "hyper_align_coef": "λ_h", "noise_std": "σ", "greedy_rate": "greedy",
    "actor_lr": "actor lr", "critic_lr": "critic lr", "align_lr": "align lr", "l2_coef": "L2",
}


def make_console():
    """A rich console; wide when writing to a file or a job log (rich would wrap at 80 columns)."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def print_summary(points: Sequence[PointSummary], keys: Sequence[str], *, title: str, console=None) -> None:
    """The per-configuration table (rich): hyperparameters, seeds, scores as mean ± 95 % CI."""
    from rich.table import Table

    console = console or make_console()
    best = best_point(points)
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    for k in keys:
        table.add_column(SHORT.get(k, k), justify="right")
    table.add_column("seeds", justify="right")
    table.add_column("total reward", justify="right")
    table.add_column("depth", justify="right")
    table.add_column("reward var.", justify="right")
    table.add_column("failed", justify="right")
    for p in points:
        failed = f"{p.n_errored}" + (f" (+{p.n_incomplete} unfinished)" if p.n_incomplete else "")
        style = "bold green" if best is not None and p.index == best.index else None
        table.add_row(
            str(p.index), *[fmt_value(p.values.get(k)) for k in keys], str(p.n),
            fmt_ci(p.mean[SCORES[0]], p.ci95[SCORES[0]]), fmt_ci(p.mean[SCORES[1]], p.ci95[SCORES[1]], 2),
            fmt_ci(p.mean[SCORES[2]], p.ci95[SCORES[2]]), failed, style=style,
        )
    console.print(table)
    console.print("mean ± half-width of the 95 % t-interval over seeds; score = the trial's last evaluation (greedy sessions in the evaluation simulator)")
