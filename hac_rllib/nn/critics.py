"""Critics of Appendix A.3: the shared critic g(s, z) (Eq. 6-8) and the value network V(s) of A2C."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, dropout: float = 0.0, layer_norm: bool = True) -> nn.Sequential:
    """Linear -> ReLU (-> LayerNorm) (-> Dropout) blocks, then a linear output (the authors' block layout)."""
    layers: list[nn.Module] = []
    prev = in_dim
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)


class QCritic(nn.Module):
    """g(s, z) -> Q: evaluates hyper-actions Z directly and effect-actions through z = h(a)."""

    def __init__(self, state_dim: int = 32, action_dim: int = 32, hidden: Sequence[int] = (256, 64), dropout: float = 0.0):
        super().__init__()
        self.net = mlp(state_dim + action_dim, hidden, 1, dropout=dropout)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action], dim=-1)).squeeze(-1)


class VCritic(nn.Module):
    """V(s) with the same hidden sizes as the Q critic (A2C)."""

    def __init__(self, state_dim: int = 32, hidden: Sequence[int] = (256, 64), dropout: float = 0.0):
        super().__init__()
        self.net = mlp(state_dim, hidden, 1, dropout=dropout)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).squeeze(-1)
