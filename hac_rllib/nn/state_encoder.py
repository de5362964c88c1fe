"""The SASRec user-state encoder and hyper-actor of Appendix A.3 (paper Eq. 2-3)."""

from __future__ import annotations

import torch
from torch import nn


class SASRecStateEncoder(nn.Module):
    """s_t = StateEnc(Φ(x_1..x_t), u): a causal transformer over the history's kernel embeddings
    (plus a trainable positional embedding), with the encoded user vector appended as the last token.

    The user vector comes from a 2-layer MLP (hidden ``user_hidden``) on the user features, so that
    unseen users work too. The state is the transformer output at the user token, which attends to the
    whole history; padded positions are masked out as keys (the authors' code did not mask, reference §9 B14).
    """

    def __init__(
        self,
        *,
        dim: int = 32,
        max_history: int = 50,
        user_feature_dim: int = 0,
        user_hidden: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        ffn_dim: int = 64,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
    ):
        super().__init__()
        self.dim = dim
        self.max_history = max_history
        self.n_heads = n_heads
        self.position = nn.Embedding(max_history + 1, dim)
        nn.init.normal_(self.position.weight, std=0.1)
        if user_feature_dim > 0:
            self.user_encoder = nn.Sequential(
                nn.Linear(user_feature_dim, user_hidden), nn.ReLU(), nn.Linear(user_hidden, dim)
            )
        else:  # no observable user features: a learned "anonymous user" token
            self.user_encoder = None
            self.user_token = nn.Parameter(torch.zeros(dim))
        self.input_norm = nn.LayerNorm(dim)
        self.input_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=n_heads, dim_feedforward=ffn_dim, dropout=dropout, batch_first=True
        )
        # Dropout on the attention weights is set apart from the rest: on CPU its random masks cost
        # 5x the attention itself (reference-speed.md: dropout RNG is 35 % of the authors' step).
        layer.self_attn.dropout = attention_dropout
        self.transformer = nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)
        length = max_history + 1
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, history_embeddings: torch.Tensor, history_ids: torch.Tensor, user_features: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) kernel embeddings of the left-padded history, (B, L) ids, (B, d_u) -> (B, dim)."""
        b, length, _ = history_embeddings.shape
        if self.user_encoder is not None:
            user = self.user_encoder(user_features)
        else:
            user = self.user_token.expand(b, -1)
        seq = torch.cat([history_embeddings, user.unsqueeze(1)], dim=1)
        seq = seq + self.position.weight[: length + 1].unsqueeze(0)
        seq = self.input_dropout(self.input_norm(seq))
        out = self.transformer(seq, mask=self.attention_mask(history_ids))
        return out[:, -1]

    def attention_mask(self, history_ids: torch.Tensor) -> torch.Tensor:
        """(B * heads, L + 1, L + 1) bool, True = blocked: causal, padding keys blocked, but every
        position may see itself, so padded queries (which nothing reads) never produce NaN rows."""
        b, length = history_ids.shape
        pad = torch.cat([history_ids == 0, torch.zeros(b, 1, dtype=torch.bool, device=history_ids.device)], dim=1)
        mask = self.causal_mask[: length + 1, : length + 1].unsqueeze(0) | pad.unsqueeze(1)
        mask = mask & ~torch.eye(length + 1, dtype=torch.bool, device=mask.device).unsqueeze(0)
        return mask.repeat_interleave(self.n_heads, dim=0)


class HyperActor(nn.Module):
    """Z_t = Linear(s_t) (Eq. 3): the hyper-action, in the item kernel's space."""

    def __init__(self, state_dim: int = 32, action_dim: int = 32):
        super().__init__()
        self.head = nn.Linear(state_dim, action_dim)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.head(state)
