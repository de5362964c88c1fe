"""PG-RA's inverse-dynamics model (Chandak et al. 2019; the paper's DDPG-RA baseline, Table 3).

It infers the action representation from a transition: Ẑ = f(s_t, s_{t+1}). Scored against the item
kernel like a hyper-action, Ẑ gives P(a_t | s_t, s_{t+1}) = Π_{i ∈ a_t} softmax_I(Φ(i)ᵀẐ), and
maximising it shapes the kernel from the observed effect of each slate. It never acts and never feeds
the critic (reference-code-spec §5.8).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hac_rllib.nn.critics import mlp


class InverseDynamics(nn.Module):
    """MLP on [s_t ; s_{t+1}] -> a ``action_dim`` vector in the item kernel's space.

    The authors' sizes: one hidden layer of 256 with LayerNorm (and dropout 0.1, here a parameter)."""

    def __init__(self, state_dim: int = 32, action_dim: int = 32, hidden: Sequence[int] = (256,), dropout: float = 0.0):
        super().__init__()
        self.net = mlp(2 * state_dim, hidden, action_dim, dropout=dropout)

    def forward(self, state: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, next_state], dim=-1))
