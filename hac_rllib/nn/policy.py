"""The hyper-actor policy π(a|s) = P(a|Z) P(Z|s): state encoder + hyper-action head + item kernel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hac_rllib.nn.item_kernel import ItemKernel, inverse_pool, score_items, select_slate
from hac_rllib.nn.state_encoder import HyperActor, SASRecStateEncoder


@dataclass(frozen=True)
class PolicyNetConfig:
    """Sizes of Appendix A.3 (the SASRec backbone shared by every method of Table 3)."""

    kernel_dim: int = 32
    max_history: int = 50
    user_hidden: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ffn_dim: int = 64
    dropout: float = 0.1  # embeddings, residual branches and feed-forward layers of the transformer
    attention_dropout: float = 0.0  # on the attention weights (the paper does not say; costly on CPU)
    use_item_id: bool = True


class HyperActorPolicy(nn.Module):
    """Everything the actor side needs: Φ, StateEnc and the hyper-action head.

    The kernel belongs to the actor, so the target actor carries a target kernel, and the alignment
    and supervision losses update the kernel together with the actor (Algorithm 1, lines 8-9).
    """

    def __init__(self, item_features: np.ndarray, user_feature_dim: int, cfg: PolicyNetConfig = PolicyNetConfig()):
        super().__init__()
        self.cfg = cfg
        self.item_kernel = ItemKernel(item_features, cfg.kernel_dim, use_item_id=cfg.use_item_id)
        self.state_encoder = SASRecStateEncoder(
            dim=cfg.kernel_dim,
            max_history=cfg.max_history,
            user_feature_dim=user_feature_dim,
            user_hidden=cfg.user_hidden,
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            ffn_dim=cfg.ffn_dim,
            dropout=cfg.dropout,
            attention_dropout=cfg.attention_dropout,
        )
        self.actor = HyperActor(cfg.kernel_dim, cfg.kernel_dim)

    @property
    def n_items(self) -> int:
        return self.item_kernel.n_items

    def encode_state(self, history: torch.Tensor, user_features: torch.Tensor) -> torch.Tensor:
        history = history.long()
        if history.shape[-1] > self.cfg.max_history:  # keep the most recent positions
            history = history[:, -self.cfg.max_history :]
        return self.state_encoder(self.item_kernel(history), history, user_features.float())

    def hyper_action(self, state: torch.Tensor) -> torch.Tensor:
        return self.actor(state)

    def scores(self, hyper_action: torch.Tensor) -> torch.Tensor:
        """(B, N) ranking scores of every candidate item."""
        return score_items(hyper_action, self.item_kernel.all_items())

    def slate(self, hyper_action: torch.Tensor, k: int, *, greedy_rate: float = 1.0, generator=None) -> torch.Tensor:
        return select_slate(self.scores(hyper_action), k, greedy_rate=greedy_rate, generator=generator)

    def inverse(self, slate: torch.Tensor) -> torch.Tensor:
        """Ẑ = h(a): the hyper-action implied by a slate, through the current kernel."""
        return inverse_pool(self.item_kernel(slate.long()))
