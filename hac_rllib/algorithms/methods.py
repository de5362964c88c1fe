"""Every method of the paper's Table 3 (and the ablations of §3.4) as a preset of the HAC machinery.

The paper's claim is that these methods are one framework with different switches; here that is
literal. A method is: which update phases run, in which order (``phases.PHASES``); which module parts
each optimizer trains; which critic the module builds; where the training data comes from; and the
config values it changes from HAC's defaults. The Learner, the RLModule, the replay buffer, the
EnvRunner and the evaluation are shared; nothing here is a copy of a learner.

Optimizer parts: ``policy`` (state encoder + hyper-action head + item kernel Φ), ``critics`` (the
module's Q / twin Q / V networks), ``inverse_model`` (PG-RA) and ``item_kernel`` (Φ alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Tuple

ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # as the paper's tables write it
    summary: str  # its row of Table 3, in words
    phases: Tuple[str, ...]  # update order; names of ``phases.PHASES``
    optimizers: Mapping[str, Tuple[str, ...]]  # optimizer name -> module parts it trains
    critic_type: str = "q"  # "q" | "twin_q" | "v" | "none" (see HACModule)
    inverse_dynamics: bool = False
    data: str = ONLINE  # ONLINE: replay buffer of simulator interactions; OFFLINE: the logged records
    defaults: Mapping[str, Any] = field(default_factory=dict)  # HACConfig values that differ from HAC's
    # defaults that make the method what it is (an ablation's switched-off loss, A2C's exploration):
    # settings meant for every method of a comparison (``hac compare --set``) leave these alone
    pinned: Tuple[str, ...] = ()

    @property
    def has_critic(self) -> bool:
        return self.critic_type != "none"


_HAC_OPTIMIZERS = {"critic": ("critics",), "actor": ("policy",), "align": ("policy",), "supervise": ("policy",)}
_DDPG_OPTIMIZERS = {"critic": ("critics",), "actor": ("policy",)}
_SL_OPTIMIZERS = {"supervise": ("policy",)}
_NO_HAC_EXTRAS = {"hyper_align_coef": 0.0, "supervise_lr": 0.0}  # so a method's config says what it runs


def _hac(name: str, label: str, summary: str, **defaults: Any) -> Method:
    return Method(name, label, summary, ("critic", "actor", "align", "supervise"), _HAC_OPTIMIZERS, defaults=defaults, pinned=tuple(defaults))


METHODS: Dict[str, Method] = {
    m.name: m
    for m in (
        _hac("hac", "HAC", "actor −Q(s, Z); critic TD on Q(s, a) = g(s, h(a)); alignment Eq. 9; BCE Eq. 10"),
        _hac("hac_no_bce", "HAC w/o L_BCE", "HAC without the supervision (§3.4)", supervise_lr=0.0),
        _hac("hac_no_hyper", "HAC w/o L_Hyper", "HAC without the hyper-action alignment (§3.4)", hyper_align_coef=0.0),
        _hac(
            "hac_effect_explore",
            "HAC (effect-action exploration)",
            "HAC exploring by sampling slates (top-k at rate 0.5), no noise on Z (Figure 10)",
            greedy_rate=0.5,
            noise_std=0.0,
        ),
        Method(
            "ddpg",
            "DDPG",
            "actor −Q(s, Z); critic TD on Q(s, Z) with the stored hyper-action; Gaussian noise on Z",
            ("hyper_critic", "actor"),
            _DDPG_OPTIMIZERS,
            defaults=dict(_NO_HAC_EXTRAS),
            pinned=tuple(_NO_HAC_EXTRAS),
        ),
        Method(
            "td3",
            "TD3",
            "DDPG with twin critics (min in the target), target policy smoothing, delayed actor updates",
            ("twin_critic", "actor"),
            _DDPG_OPTIMIZERS,
            critic_type="twin_q",
            defaults={**_NO_HAC_EXTRAS, "policy_delay": 2, "target_noise_std": 0.2, "target_noise_clip": 0.5},
            pinned=tuple(_NO_HAC_EXTRAS),
        ),
        Method(
            "ddpg_ra",
            "PG-RA",
            "DDPG plus an inverse-dynamics model: −log P(a_t | s_t, s_{t+1}) trains it and the item kernel",
            ("hyper_critic", "actor", "inverse_dynamics"),
            {**_DDPG_OPTIMIZERS, "align": ("inverse_model", "item_kernel")},
            inverse_dynamics=True,
            defaults={**_NO_HAC_EXTRAS, "align_lr": 1e-5},
            pinned=tuple(_NO_HAC_EXTRAS),
        ),
        Method(
            "a2c",
            "A2C",
            "policy gradient on P(a|s) with advantage from V(s); TD on V(s); categorical slate sampling, σ = 0",
            ("value", "policy_gradient"),
            _DDPG_OPTIMIZERS,
            critic_type="v",
            # actor lr at the top of the paper's grid: the gradient of a sampled slate's log-prob is
            # spread over a softmax across the whole pool, and at HAC's 1e-4 A2C barely moved in
            # short runs (0.19 vs HAC's 0.63 total reward after 400 steps on the synthetic simulator)
            defaults={**_NO_HAC_EXTRAS, "noise_std": 0.0, "greedy_rate": 0.0, "actor_lr": 5e-4},
            pinned=(*_NO_HAC_EXTRAS, "noise_std", "greedy_rate"),
        ),
        Method(
            "online_sl",
            "Online SL",
            "BCE (Eq. 10) on the online interactions in the replay buffer; no RL losses",
            ("supervise",),
            _SL_OPTIMIZERS,
            critic_type="none",
            defaults={"hyper_align_coef": 0.0},
            pinned=("hyper_align_coef",),
        ),
        Method(
            "offline_sl",
            "Offline SL",
            "BCE (Eq. 10) on the dataset's logged training records; no simulator in the training loop",
            ("supervise",),
            _SL_OPTIMIZERS,
            critic_type="none",
            data=OFFLINE,
            defaults={"hyper_align_coef": 0.0},
            pinned=("hyper_align_coef",),
        ),
    )
}

# Table 2's row order (SL, then the RL baselines, then HAC and its variants).
TABLE_ORDER = ("offline_sl", "online_sl", "a2c", "ddpg", "td3", "ddpg_ra", "hac", "hac_no_bce", "hac_no_hyper", "hac_effect_explore")


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}") from None


def make_config(name: str):
    """A fresh ``HACConfig`` for method ``name``: HAC's defaults, then the method's."""
    from hac_rllib.algorithms.hac import HACConfig

    method = get_method(name)
    return HACConfig().training(method=method.name, **dict(method.defaults))
