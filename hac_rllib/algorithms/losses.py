"""The HAC losses (paper Eq. 7-10) and the baselines' as plain functions of tensors, shared by every method of Table 3.

Keeping them free of RLlib makes each one testable on a hand-made batch and reusable by the baselines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def td_target(reward: torch.Tensor, done: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """r + γ(1 − d)Q'(s', a'): terminal transitions do not bootstrap.

    The authors' code multiplies by d instead (reference §9 B1), which bootstraps only terminal rows;
    we follow the paper's Eq. 7."""
    return reward + gamma * (1.0 - done.float()) * next_q.detach()


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_TD (Eq. 7): squared TD error of Q(s, a) against a fixed target."""
    return F.mse_loss(q, target.detach())


def actor_loss(q_of_hyper_action: torch.Tensor) -> torch.Tensor:
    """L_QMax (Eq. 8): maximise Q(s, Z) by minimising its negative."""
    return -q_of_hyper_action.mean()


def align_loss(hyper_action: torch.Tensor, implied_hyper_action: torch.Tensor, coef: float) -> torch.Tensor:
    """L_Hyper (Eq. 9) scaled by λ_h: ‖Z − Ẑ‖² with Ẑ = h(top-k(Z)).

    Averaged over dimensions as well as the batch (the authors' MSE), so λ_h keeps the scale of the
    paper's grid. Gradients reach both Z (the actor) and Ẑ (the item kernel)."""
    return coef * F.mse_loss(hyper_action, implied_hyper_action)


def supervise_loss(slate_logits: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:
    """L_BCE (Eq. 10): binary cross-entropy of σ(Φ(i)ᵀZ) against the user's response to each shown item."""
    return F.binary_cross_entropy_with_logits(slate_logits, feedback.float())


def slate_logits(hyper_action: torch.Tensor, slate_embeddings: torch.Tensor) -> torch.Tensor:
    """Φ(i)ᵀZ for the items of a slate: (B, dim) and (B, k, dim) -> (B, k)."""
    return (slate_embeddings * hyper_action.unsqueeze(1)).sum(-1)


def slate_log_prob(item_log_probs: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
    """log P(a) = Σ_{i∈a} log P(i) for slates of 1-based item ids: (B, N) and (B, k) -> (B,).

    Items are treated as independent draws (Eq. 4-5's product), as the paper and the authors' A2C and
    PG-RA do, rather than as a without-replacement sequence."""
    return item_log_probs.gather(1, slate.long() - 1).sum(-1)


def policy_gradient_loss(log_prob: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """−E[A·log P(a|s)]: the advantage is a constant weight (no gradient into the value network)."""
    return -(advantage.detach() * log_prob).mean()
