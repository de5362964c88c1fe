"""Algorithm 1's update phases, and the baselines' (Table 3), as loss computations on (module, batch, config).

Each returns ``(loss, metrics)`` without touching any optimizer, so the RLlib Learner and the plain
PyTorch loop of the throughput benchmark apply the very same computations. ``module`` is anything
with ``policy`` (a ``HyperActorPolicy``), the critics and target nets of ``HACModule``; ``batch``
holds the columns of ``hac_rllib.transitions`` as tensors.

``PHASES`` names every phase with the optimizer that applies it; a method (``methods.py``) is an
ordered list of these names. Critic phases compute the state without gradients, so a critic loss
never moves the actor or the item kernel.
"""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple

import torch
from ray.rllib.core.columns import Columns

from hac_rllib import transitions as T
from hac_rllib.algorithms import losses


def critic_phase(module, b, cfg):
    """L_TD on Q(s, a) = g(s, h(a)); the target from the target networks, (1 − d) bootstrapping."""
    policy = module.policy
    target_q = module.forward_target({Columns.NEXT_OBS: T.next_observation(b)})["target_q"]
    target = losses.td_target(b[T.REWARD].float(), b[T.DONE], target_q, cfg.gamma)
    with torch.no_grad():  # the critic loss must not move the actor or the kernel
        state = policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        implied = policy.inverse(b[T.SLATE])
    q = module.critic(state, implied)
    loss = losses.critic_loss(q, target)
    return loss, {
        "critic_loss": loss.item(),
        "q_mean": q.mean().item(),
        "q_std": q.std().item() if q.numel() > 1 else 0.0,
        "target_q_mean": target.mean().item(),
    }


def actor_phase(module, b, cfg):
    """L_QMax = −Q(s, Z) through the (just updated) critic; moves the actor and the kernel."""
    state = module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
    z = module.policy.hyper_action(state)
    loss = losses.actor_loss(module.critic(state, z))
    return loss, {"actor_loss": loss.item(), "hyper_action_norm": z.detach().norm(dim=-1).mean().item()}


def align_phase(module, b, cfg):
    """λ_h‖Z − h(top-k(Z))‖²; moves the actor and the kernel."""
    policy = module.policy
    z = policy.hyper_action(policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
    with torch.no_grad():
        greedy = policy.slate(z, b[T.SLATE].shape[1])
    loss = losses.align_loss(z, policy.inverse(greedy), cfg.hyper_align_coef)
    return loss, {"align_loss": loss.item()}


def supervise_phase(module, b, cfg):
    """BCE of σ(Φ(i)ᵀZ) against the feedback on the shown slate; moves the actor and the kernel."""
    policy = module.policy
    z = policy.hyper_action(policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
    logits = losses.slate_logits(z, policy.item_kernel(b[T.SLATE].long()))
    loss = losses.supervise_loss(logits, b[T.FEEDBACK])
    return loss, {"supervise_loss": loss.item()}


def _next_hyper_action(module, b, cfg, *, smoothing: bool):
    """(s', Z') from the target actor for the next observation; TD3 adds clipped Gaussian noise to Z'
    (target policy smoothing). No gradients."""
    with torch.no_grad():
        next_state = module.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        z = module.target_policy.hyper_action(next_state)
        if smoothing and cfg.target_noise_std > 0:
            noise = (cfg.target_noise_std * torch.randn_like(z)).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            z = z + noise
    return next_state, z


def _current_state(module, b) -> torch.Tensor:
    with torch.no_grad():
        return module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])


def hyper_critic_phase(module, b, cfg):
    """DDPG / PG-RA: L_TD on Q(s, Z) with the *stored* hyper-action (noise included) and the target
    Q'(s', Z'_target). Unlike HAC's critic, nothing here goes through the item kernel."""
    next_state, z_next = _next_hyper_action(module, b, cfg, smoothing=False)
    with torch.no_grad():
        target_q = module.target_critic(next_state, z_next)
    target = losses.td_target(b[T.REWARD].float(), b[T.DONE], target_q, cfg.gamma)
    q = module.critic(_current_state(module, b), b[T.HYPER_ACTION].float())
    loss = losses.critic_loss(q, target)
    return loss, {"critic_loss": loss.item(), "q_mean": q.mean().item(), "target_q_mean": target.mean().item()}


def twin_critic_phase(module, b, cfg):
    """TD3: both critics regress on r + γ(1 − d)·min(Q1', Q2')(s', Z' + clip(ε)) on the stored Z."""
    next_state, z_next = _next_hyper_action(module, b, cfg, smoothing=True)
    with torch.no_grad():
        target_q = torch.minimum(module.target_critic(next_state, z_next), module.target_critic_2(next_state, z_next))
    target = losses.td_target(b[T.REWARD].float(), b[T.DONE], target_q, cfg.gamma)
    state, z = _current_state(module, b), b[T.HYPER_ACTION].float()
    q1, q2 = module.critic(state, z), module.critic_2(state, z)
    loss = losses.critic_loss(q1, target) + losses.critic_loss(q2, target)
    return loss, {
        "critic_loss": loss.item(),
        "q_mean": q1.mean().item(),
        "q2_mean": q2.mean().item(),
        "target_q_mean": target.mean().item(),
    }


def _value_target(module, b, cfg) -> torch.Tensor:
    """r + γ(1 − d)·V'(s') with the target actor's encoder and the target value network."""
    with torch.no_grad():
        next_state = module.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        return losses.td_target(b[T.REWARD].float(), b[T.DONE], module.target_value_critic(next_state), cfg.gamma)


def value_phase(module, b, cfg):
    """A2C: TD error on V(s) (the critic of Table 3's A2C row)."""
    target = _value_target(module, b, cfg)
    v = module.value_critic(_current_state(module, b))
    loss = losses.critic_loss(v, target)
    return loss, {"critic_loss": loss.item(), "v_mean": v.mean().item(), "target_q_mean": target.mean().item()}


def policy_gradient_phase(module, b, cfg):
    """A2C: −A·log P(a|s) with P(a|s) = Π_{i∈a} softmax_I(Φ(i)ᵀZ) (Eq. 4-5) for the stored slate and
    A = clip(r + γ(1 − d)V'(s') − V(s)) from the (just updated) value network; moves actor and kernel."""
    target = _value_target(module, b, cfg)
    with torch.no_grad():
        advantage = (target - module.value_critic(_current_state(module, b))).clamp(-cfg.advantage_clip, cfg.advantage_clip)
    policy = module.policy
    z = policy.hyper_action(policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
    log_probs = torch.log_softmax(policy.scores(z), dim=-1)  # (B, N) over the item pool
    log_prob = losses.slate_log_prob(log_probs, b[T.SLATE])
    loss = losses.policy_gradient_loss(log_prob, advantage)
    metrics = {"advantage_mean": advantage.mean().item(), "log_prob_mean": log_prob.mean().item()}
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    if cfg.entropy_coef > 0:
        loss = loss - cfg.entropy_coef * entropy
    metrics["entropy"] = entropy.item()
    metrics["actor_loss"] = loss.item()
    return loss, metrics


def inverse_dynamics_phase(module, b, cfg):
    """PG-RA: −log P(a_t | s_t, s_{t+1}) = −Σ_{i∈a_t} log softmax_I(Φ(i)ᵀẐ), Ẑ = f(s_t, s_{t+1}).

    The states are inputs (no gradient), so this moves the inverse model and the item kernel only."""
    policy = module.policy
    with torch.no_grad():
        state = policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        next_state = policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
    implied = module.inverse_model(state, next_state)
    log_probs = torch.log_softmax(policy.scores(implied), dim=-1)
    loss = -losses.slate_log_prob(log_probs, b[T.SLATE]).mean()
    return loss, {"align_loss": loss.item()}


class Phase(NamedTuple):
    """One update: the loss, the optimizer that applies it, and whether a config switches it on."""

    optimizer: str
    fn: Callable
    enabled: Callable = lambda cfg: True


# Every phase any method runs, by name (methods.py lists them per method, in update order).
PHASES: Dict[str, Phase] = {
    "critic": Phase("critic", critic_phase),  # HAC: TD on Q(s, a) = g(s, h(a))
    "hyper_critic": Phase("critic", hyper_critic_phase),  # DDPG, PG-RA: TD on Q(s, Z_stored)
    "twin_critic": Phase("critic", twin_critic_phase),  # TD3
    "value": Phase("critic", value_phase),  # A2C: TD on V(s)
    "actor": Phase("actor", actor_phase),  # −Q(s, Z)
    "policy_gradient": Phase("actor", policy_gradient_phase),  # A2C
    "align": Phase("align", align_phase, lambda cfg: cfg.hyper_align_coef > 0),  # HAC Eq. 9
    "inverse_dynamics": Phase("align", inverse_dynamics_phase, lambda cfg: _align_lr(cfg) > 0),  # PG-RA
    "supervise": Phase("supervise", supervise_phase, lambda cfg: cfg.supervise_lr > 0),  # Eq. 10
}
ACTOR_PHASES = ("actor", "policy_gradient")


def _align_lr(cfg) -> float:
    return cfg.align_lr if cfg.align_lr is not None else cfg.actor_lr


def phases_for(names, cfg, update_index: int = 0):
    """(optimizer name, phase) for the named phases, in order, skipping those the config switches off
    and, with ``policy_delay`` d > 1 (TD3), the actor on all but every d-th update."""
    delay = int(getattr(cfg, "policy_delay", 1) or 1)
    steps = []
    for name in names:
        phase = PHASES[name]
        if not phase.enabled(cfg):
            continue
        if name in ACTOR_PHASES and delay > 1 and update_index % delay != 0:
            continue
        steps.append((phase.optimizer, phase.fn))
    return steps


def hac_phases(cfg):
    """(optimizer name, phase) in Algorithm 1's order; a switched-off loss is skipped, not zero-weighted."""
    return phases_for(("critic", "actor", "align", "supervise"), cfg)
