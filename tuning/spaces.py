"""Search spaces: the grids of the paper's Appendix A.3 per method, its sensitivity studies, and a
``small`` grid that finishes on a 2-core machine.

A grid is a list of *studies*. Inside a study the ``vary`` values form a cartesian product and the
``fixed`` values are held; every other hyperparameter keeps the method's default (or the user's
``--set``). One-value-at-a-time studies are how the paper's sensitivity figures were made (Figures
5, 7, 9-12), and they keep ``hac report`` honest: each curve changes one thing. Points that different
studies share (the default configuration) are run once.

Where the values come from:

* Appendix A.3 (exact): actor lr, critic lr and σ for every RL method; λ_h for HAC; the DDPG-RA
  alignment lr; the offline SL lr and L2 coefficient.
* Supervision lr (Eq. 10, Figures 5 and 12): the paper gives no list. We use the values it and the
  authors' run scripts name: 1e-3 (§3.3: "too large" on KuaiRand), 1e-4 and 1e-5 (``train_hac.sh``),
  5e-5 (``test.sh``), 5e-4 (``train_online_sasrec.sh``); 0 (no supervision, Figure 4) only in the
  one-at-a-time study, since in the full grid it is the separate ablation ``hac_no_bce``.
* Greedy rate (Figure 10): no values are given; we use 0, 0.25, 0.5, 0.75 and 1 with σ = 0, as the
  figure's caption says.
* L2 coefficient of the RL methods: the authors fix it at 1e-5 (REG) and never search it, so the RL
  grids do not either; it is searched only for the SL methods, as in A.3.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

# --- Appendix A.3 values ---------------------------------------------------------------------------
ACTOR_LR = (5e-4, 1e-4, 5e-5, 1e-5, 5e-6, 1e-6)
CRITIC_LR = (1e-3, 1e-4, 1e-5)
NOISE_STD = (0.1, 0.01, 0.001)  # σ of the Gaussian noise on the hyper-action
HYPER_ALIGN_COEF = (0.001, 0.01, 0.1, 1.0)  # λ_h
DDPG_RA_ALIGN_LR = (5e-5, 1e-5, 5e-6, 1e-6)
OFFLINE_SL_LR = (5e-4, 1e-4, 5e-5, 1e-5)
OFFLINE_SL_L2 = (1e-4, 5e-5, 1e-5, 5e-6)
# --- from the paper's text and the authors' scripts (see the module docstring) ---------------------
SUPERVISE_LR = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
SUPERVISE_LR_STUDY = (0.0,) + SUPERVISE_LR
GREEDY_RATE = (0.0, 0.25, 0.5, 0.75, 1.0)

# Paper figure each hyperparameter's sensitivity plot corresponds to (for titles and the report).
FIGURES: Dict[str, str] = {
    "supervise_lr": "Figures 5 and 12",
    "hyper_align_coef": "Figures 7 and 13",
    "noise_std": "Figure 9",
    "greedy_rate": "Figure 10",
    "actor_lr": "Figure 11",
}
LABELS: Dict[str, str] = {
    "supervise_lr": "supervision learning rate (Eq. 10)",
    "hyper_align_coef": "hyper-action alignment λ_h (Eq. 9)",
    "noise_std": "hyper-action noise σ",
    "greedy_rate": "greedy top-k rate (σ = 0)",
    "actor_lr": "actor learning rate",
    "critic_lr": "critic learning rate",
    "align_lr": "alignment learning rate",
    "l2_coef": "L2 coefficient",
}

FALLBACK = "*"  # key of the space used for a method without its own entry

# The field names are the config attributes of each method (HACConfig's for HAC and its ablations;
# the baselines of Table 3 are expected to reuse them: ``align_lr`` for DDPG-RA's inverse-model step,
# ``supervise_lr`` / ``l2_coef`` for the BCE step of the SL methods). A sweep checks that every name
# exists on the method's config before it starts, so a renamed field fails loudly, not silently.
_COMMON_RL = {"actor_lr": ACTOR_LR, "critic_lr": CRITIC_LR, "noise_std": NOISE_STD}
APPENDIX: Dict[str, Dict[str, Tuple[float, ...]]] = {
    "hac": {**_COMMON_RL, "hyper_align_coef": HYPER_ALIGN_COEF, "supervise_lr": SUPERVISE_LR},
    "hac_no_bce": {**_COMMON_RL, "hyper_align_coef": HYPER_ALIGN_COEF},
    "hac_no_hyper": {**_COMMON_RL, "supervise_lr": SUPERVISE_LR},
    # Figure 10's variant explores by sampling slates with σ = 0: its knob is the greedy rate, not σ.
    "hac_effect_explore": {"actor_lr": ACTOR_LR, "critic_lr": CRITIC_LR, "greedy_rate": GREEDY_RATE},
    "ddpg": dict(_COMMON_RL),
    "td3": dict(_COMMON_RL),
    "ddpg_ra": {**_COMMON_RL, "align_lr": DDPG_RA_ALIGN_LR},
    "a2c": {"actor_lr": ACTOR_LR, "critic_lr": CRITIC_LR},  # A2C explores by sampling: σ = 0
    "offline_sl": {"supervise_lr": OFFLINE_SL_LR, "l2_coef": OFFLINE_SL_L2},
    "online_sl": {"supervise_lr": OFFLINE_SL_LR, "l2_coef": OFFLINE_SL_L2},
    FALLBACK: dict(_COMMON_RL),
}


@dataclass(frozen=True)
class Study:
    """One block of a grid: the cartesian product of ``vary``, with ``fixed`` held."""

    name: str
    vary: Mapping[str, Sequence[Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def assignments(self) -> List[Dict[str, Any]]:
        keys = list(self.vary)
        return [{**self.fixed, **dict(zip(keys, combo))} for combo in itertools.product(*(self.vary[k] for k in keys))]


@dataclass(frozen=True)
class Point:
    """One configuration of a grid: a value for every key the grid touches, and the studies it is in."""

    index: int
    values: Dict[str, Any]
    studies: Tuple[str, ...]


@dataclass(frozen=True)
class Grid:
    """A named search space: its studies, and run-size defaults (iterations, ...) that suit it."""

    name: str
    studies: Tuple[Study, ...]
    run: Mapping[str, Any] = field(default_factory=dict)  # TrainRun-style sizes; CLI options override
    description: str = ""

    def keys(self) -> List[str]:
        out: List[str] = []
        for s in self.studies:
            for k in list(s.vary) + list(s.fixed):
                if k not in out:
                    out.append(k)
        return out

    def points(self, defaults: Mapping[str, Any]) -> List[Point]:
        """Distinct configurations, in study order; ``defaults`` fills the keys a study leaves alone.

        Two studies that reach the same configuration (e.g. both at the default) share one point."""
        keys = self.keys()
        missing = [k for k in keys if k not in defaults]
        if missing:
            raise KeyError(f"no default value for {missing}")
        found: Dict[Tuple, Tuple[Dict[str, Any], List[str]]] = {}
        for study in self.studies:
            for assignment in study.assignments():
                values = {k: assignment.get(k, defaults[k]) for k in keys}
                key = tuple((k, _canonical(values[k])) for k in keys)
                if key not in found:
                    found[key] = (values, [])
                if study.name not in found[key][1]:
                    found[key][1].append(study.name)
        return [Point(i, values, tuple(studies)) for i, (values, studies) in enumerate(found.values())]


def _canonical(value: Any) -> Any:
    """A hashable, rounding-proof key for a value (dict values such as env_config included)."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.12g}")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def one_at_a_time(space: Mapping[str, Sequence[Any]]) -> Tuple[Study, ...]:
    return tuple(Study(name=k, vary={k: tuple(v)}) for k, v in space.items())


def appendix_space(algo: str) -> Dict[str, Tuple[Any, ...]]:
    """The Appendix A.3 values searched for ``algo`` (the fallback space for a method without one)."""
    return dict(APPENDIX.get(algo, APPENDIX[FALLBACK]))


# Run sizes. The paper trains 50,000 HAC steps (= 500 iterations of 100) and scores on the last
# ones; ``small`` is sized to finish in minutes on 2 cores, which is enough to exercise everything
# and to see gross effects, not to reproduce the paper's numbers.
PAPER_RUN = {"iterations": 500, "steps_per_iteration": 100, "eval_sessions": 100}
SMALL_RUN = {
    "iterations": 6,
    "steps_per_iteration": 20,
    "eval_sessions": 50,
    "overrides": {"num_steps_sampled_before_learning_starts": 320},
}


def get_grid(name: str, algo: str) -> Grid:
    """``appendix`` (the full A.3 product), ``sensitivity`` (one value at a time, the paper's figures)
    or ``small`` (a few points of the sensitivity studies)."""
    space = appendix_space(algo)
    if name == "appendix":
        n = math.prod(len(v) for v in space.values())
        return Grid(
            "appendix",
            (Study("appendix", space),),
            run=PAPER_RUN,
            description=f"Appendix A.3 grid for {algo}: the product of {', '.join(space)} ({n} configurations)",
        )
    if name == "sensitivity":
        studies = one_at_a_time(_with_supervision_off(space))
        if "noise_std" in space and algo.startswith("hac"):
            studies += (Study("greedy_rate", {"greedy_rate": GREEDY_RATE}, fixed={"noise_std": 0.0}),)
        return Grid("sensitivity", studies, run=PAPER_RUN, description=f"one hyperparameter at a time around {algo}'s defaults")
    if name == "small":
        hac_small = (
            Study("supervise_lr", {"supervise_lr": (0.0, 1e-4, 1e-3)}),
            Study("hyper_align_coef", {"hyper_align_coef": (0.01, 0.1, 1.0)}),
            Study("noise_std", {"noise_std": (0.001, 0.01, 0.1)}),
            Study("greedy_rate", {"greedy_rate": (0.0, 0.5, 1.0)}, fixed={"noise_std": 0.0}),
        )
        if algo.startswith("hac"):  # HAC and its variants: the studies of the knobs they keep
            keep = set(space) | ({"greedy_rate"} if "noise_std" in space else set())
            studies = tuple(s for s in hac_small if set(s.vary) <= keep)
        else:
            studies = tuple(Study(k, {k: tuple(v)[:2]}) for k, v in list(space.items())[:2])
        return Grid("small", studies, run=SMALL_RUN, description=f"a few one-at-a-time points for {algo}; minutes on 2 CPUs")
    raise ValueError(f"unknown grid {name!r}; choose one of {GRID_NAMES}")


def _with_supervision_off(space: Dict[str, Tuple[Any, ...]]) -> Dict[str, Tuple[Any, ...]]:
    if "supervise_lr" in space and space["supervise_lr"] == SUPERVISE_LR:
        space = {**space, "supervise_lr": SUPERVISE_LR_STUDY}
    return space


GRID_NAMES = ("appendix", "sensitivity", "small")
