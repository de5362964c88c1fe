"""``hac report SWEEP_DIR``: the paper's sensitivity figures (5, 7, 9, 10, ...) from a sweep on disk.

One PNG per swept hyperparameter: x = its values (evenly spaced, so 0 and log-spaced rates share an
axis, as in the paper), y = the final evaluation Total Reward, Depth and Reward Variance; a line
through the mean over seeds, a band for the 95 % t-interval, and each seed as a dot.

Which trials make a curve: a one-at-a-time study (the ``sensitivity`` and ``small`` grids) is its
own curve. In a study that varies several keys at once (the ``appendix`` product) the curve of one
key holds the others at the study's best configuration, so every point on it differs in one thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tuning import analysis
from tuning.spaces import FIGURES, LABELS

PANELS = (
    ("evaluation/total_reward", "Total Reward"),
    ("evaluation/depth", "Depth"),
    ("evaluation/reward_variance", "Reward Variance"),
)


@dataclass
class Curve:
    """The points of one sensitivity figure."""

    key: str
    study: str
    held: Dict[str, Any]  # the other swept keys' values along the curve
    points: List[analysis.PointSummary] = field(default_factory=list)

    @property
    def x(self) -> List[Any]:
        return [p.values[self.key] for p in self.points]


def curves(manifest: Mapping[str, Any], points: Sequence[analysis.PointSummary]) -> List[Curve]:
    by_index = {p.index: p for p in points}
    out: List[Curve] = []
    for study in manifest["studies"]:
        members = [by_index[p["index"]] for p in manifest["points"] if study["name"] in p.get("studies", ()) and p["index"] in by_index]
        vary = [k for k, v in study["vary"].items() if len(v) > 1]
        if not members or not vary:
            continue
        anchor = analysis.best_point(members) or members[0]
        for key in vary:
            others = [k for k in vary if k != key]
            on_curve = [p for p in members if all(_same(p.values.get(k), anchor.values.get(k)) for k in others)]
            on_curve.sort(key=lambda p: _sort_key(p.values.get(key)))
            if len(on_curve) >= 2:
                held = {k: anchor.values.get(k) for k in others} | dict(study.get("fixed", {}))
                out.append(Curve(key=key, study=study["name"], held=held, points=on_curve))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)), abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _sort_key(v: Any):
    return (0, float(v)) if isinstance(v, (int, float)) else (1, str(v))


def plot_curve(curve: Curve, path: Path, *, title_extra: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    xs = np.arange(len(curve.points))
    labels = [analysis.fmt_value(v) for v in curve.x]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), constrained_layout=True)
    for ax, (metric, name) in zip(axes, PANELS):
        mean = np.array([p.mean[metric] for p in curve.points], dtype=float)
        half = np.array([p.ci95[metric] for p in curve.points], dtype=float)
        band = np.isfinite(half)
        ax.plot(xs, mean, marker="o", color="C0", label="mean over seeds")
        if band.any():
            lo, hi = np.where(band, mean - half, mean), np.where(band, mean + half, mean)
            ax.fill_between(xs, lo, hi, color="C0", alpha=0.2, label="95% CI")
        for i, p in enumerate(curve.points):
            ys = [v for v in p.per_seed[metric] if np.isfinite(v)]
            ax.scatter([i] * len(ys), ys, s=10, color="0.35", alpha=0.6, zorder=3, label="seeds" if i == 0 else None)
        ax.set_xticks(xs, labels)
        ax.set_xlabel(LABELS.get(curve.key, curve.key))
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    held = ", ".join(f"{k}={analysis.fmt_value(v)}" for k, v in curve.held.items())
    fig.suptitle(
        f"Effect of {LABELS.get(curve.key, curve.key)}"
        + (f" (cf. paper {FIGURES[curve.key]})" if curve.key in FIGURES else "")
        + (f"\n{held}" if held else "") + (f"  {title_extra}" if title_extra else ""),
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_report(sweep_dir: Path, out: Optional[Path] = None) -> Dict[str, Any]:
    """Write one PNG per swept hyperparameter plus ``report.json`` (the plotted numbers)."""
    from tuning.sweep import summarize_sweep

    sweep_dir = Path(sweep_dir).absolute()
    out = Path(out).absolute() if out else sweep_dir / "report"
    outcome = summarize_sweep(sweep_dir)
    found = curves(outcome.manifest, outcome.points)
    n_by_key: Dict[str, int] = {}
    for c in found:
        n_by_key[c.key] = n_by_key.get(c.key, 0) + 1
    figures = []
    for c in found:
        name = f"sensitivity_{c.key}" + (f"_{c.study}" if n_by_key[c.key] > 1 and c.study != c.key else "") + ".png"
        seeds = sorted({s for p in c.points for s in p.seeds})
        path = plot_curve(c, out / name, title_extra=f"[{outcome.manifest.get('algo', '')}, {len(seeds)} seeds]")
        figures.append({
            "png": str(path),
            "key": c.key,
            "study": c.study,
            "held": c.held,
            "points": [
                {
                    "value": p.values[c.key],
                    "n": p.n,
                    **{m.split("/")[-1]: {"mean": p.mean[m], "ci95": p.ci95[m], "per_seed": p.per_seed[m]} for m, _ in PANELS},
                }
                for p in c.points
            ],
        })
    best = outcome.best
    report = {
        "sweep": str(sweep_dir),
        "algo": outcome.manifest.get("algo"),
        "grid": outcome.manifest.get("grid"),
        "trials": {s: sum(t.status == s for t in outcome.trials) for s in ("finished", "errored", "incomplete")},
        "best": None if best is None else {"point": best.index, "values": best.values, "mean": best.mean, "ci95": best.ci95, "n": best.n},
        "figures": figures,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_no_nan(report), indent=2, default=str) + "\n")
    report["outcome"] = outcome
    return report


def _no_nan(o: Any) -> Any:
    """Strict JSON: NaN (a CI from one seed) becomes null."""
    if isinstance(o, float):
        return o if o == o and abs(o) != float("inf") else None
    if isinstance(o, dict):
        return {k: _no_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_no_nan(v) for v in o]
    return o
