"""Algorithm 1's update phases as loss computations on (module, batch, config).

Each returns ``(loss, metrics)`` without touching any optimizer, so the RLlib Learner and the plain
PyTorch loop of the throughput benchmark apply the very same computations. ``module`` is anything
with ``policy`` (a ``HyperActorPolicy``), ``critic`` and the target nets / ``forward_target`` of
``HACModule``; ``batch`` holds the columns of ``hac_rllib.transitions`` as tensors.
"""

from __future__ import annotations

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


def hac_phases(cfg):
    """(optimizer name, phase) in Algorithm 1's order; a switched-off loss is skipped, not zero-weighted."""
    steps = [("critic", critic_phase), ("actor", actor_phase)]
    if cfg.hyper_align_coef > 0:
        steps.append(("align", align_phase))
    if cfg.supervise_lr > 0:
        steps.append(("supervise", supervise_phase))
    return steps
